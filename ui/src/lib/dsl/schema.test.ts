import { describe, expect, it } from 'vitest';
import { CATALOG } from './__fixtures__/catalog';
import { checkValue, paramFields } from './schema';

const fields = (name: string) => paramFields(CATALOG.find((n) => n.name === name)!.params_schema);

describe('paramFields', () => {
  it('reads ints with bounds and defaults', () => {
    const [w] = fields('sma');
    expect(w).toMatchObject({ name: 'window', kind: 'int', minimum: 1, default: 20, hasDefault: true, required: false, nullable: false });
    expect(w.typeLabel).toBe('int ≥ 1');
    expect(w.description).toBe('Bars in the window');
  });

  it('reads nullable numbers, enums (inline and $ref), booleans and required strings', () => {
    const f = Object.fromEntries(fields('backtest').map((x) => [x.name, x]));
    expect(f.cash).toMatchObject({ kind: 'number', exclusiveMinimum: 0 });
    expect(f.lot_size).toMatchObject({ kind: 'number', nullable: true, exclusiveMinimum: 0, default: null });
    expect(f.lot_size.typeLabel).toBe('float > 0 | none');
    expect(f.log.kind).toBe('bool');
    expect(f.how).toMatchObject({ kind: 'enum', enumValues: ['and', 'or', 'mean'], default: 'mean' });
    const c = Object.fromEntries(fields('csv_ohlcv').map((x) => [x.name, x]));
    expect(c.path).toMatchObject({ kind: 'string', required: true, hasDefault: false });
    expect(c.symbol).toMatchObject({ kind: 'string', nullable: true });
    expect(c.start).toMatchObject({ kind: 'date', nullable: true, format: 'date' });
    expect(fields('crossover')[0]).toMatchObject({ kind: 'enum', enumValues: ['long_short', 'long_only'] });
  });

  it('is empty for missing schemas', () => {
    expect(paramFields(undefined)).toEqual([]);
    expect(paramFields({})).toEqual([]);
  });
});

describe('checkValue', () => {
  it('enforces kinds and bounds', () => {
    const [w] = fields('sma');
    expect(checkValue(w, 5)).toBeNull();
    expect(checkValue(w, 0)).toMatch(/≥ 1/);
    expect(checkValue(w, 2.5)).toMatch(/integer/);
    expect(checkValue(w, null)).toMatch(/none/);
    const cash = fields('backtest').find((f) => f.name === 'cash')!;
    expect(checkValue(cash, 0)).toMatch(/> 0/);
    const lot = fields('backtest').find((f) => f.name === 'lot_size')!;
    expect(checkValue(lot, null)).toBeNull();
  });
});
