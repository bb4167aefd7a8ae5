import { describe, expect, it } from 'vitest';
import {
  apiFieldErrors,
  codeErrorMark,
  fieldLabel,
  buildManifest,
  cellText,
  compareSemver,
  emptyParamRow,
  errorAt,
  errorsFor,
  formFromManifest,
  inUseMessage,
  majorMinor,
  nextPatch,
  parseUnified,
  previewRows,
  rowsToSchema,
  schemaToRows,
  useLine,
  verdictTone,
  type Manifest,
} from './customNodes';

const TEMPLATE: Manifest = {
  name: 'template_transform',
  version: '1.0.0',
  language: 'wasm',
  summary: 'Bar features',
  inputs: [{ name: 'bars', type: 'ohlcv' }],
  outputs: [{ name: 'features', type: 'frame', columns: ['ret', 'range'] }],
  params_schema: {
    type: 'object',
    properties: {
      span: { type: 'integer', minimum: 1, maximum: 10000, default: 20, description: 'bars' },
      mode: { type: 'string', enum: ['a', 'b'], default: 'a' },
      on: { type: 'boolean', default: false },
    },
    required: ['span'],
  },
  resources: { memory_mb: 256, cpus: 1.5 },
  code: '(module)',
  code_format: 'wat',
};

describe('versions', () => {
  it('defaults a save to the next patch', () => {
    expect(nextPatch('1.0.0')).toBe('1.0.1');
    expect(nextPatch('2.9.19')).toBe('2.9.20');
    expect(nextPatch('1.2.3-rc.1')).toBe('1.2.3');
    expect(nextPatch('junk')).toBe('junk');
  });
  it('pins MAJOR.MINOR in a use line', () => {
    expect(majorMinor('1.4.2')).toBe('1.4');
    expect(useLine('my_rsi', '1.4.2')).toBe('use my_rsi@1.4');
  });
  it('orders versions numerically with pre-releases first', () => {
    const vs = ['1.10.0', '1.2.0', '1.2.0-rc.1', '0.9.9'].sort(compareSemver);
    expect(vs).toEqual(['0.9.9', '1.2.0-rc.1', '1.2.0', '1.10.0']);
  });
});

describe('params table ↔ JSON Schema', () => {
  it('reads properties into rows, keeping keys the table does not edit', () => {
    const rows = schemaToRows(TEMPLATE.params_schema);
    expect(rows.map((r) => [r.name, r.type, r.default, r.min, r.max, r.required])).toEqual([
      ['span', 'integer', '20', '1', '10000', true],
      ['mode', 'string', 'a', '', '', false],
      ['on', 'boolean', 'false', '', '', false],
    ]);
    expect(rows[1].extra).toEqual({ enum: ['a', 'b'] });
    expect(rows[0].description).toBe('bars');
  });

  it('round-trips a schema through the table', () => {
    const { schema, errors } = rowsToSchema(schemaToRows(TEMPLATE.params_schema));
    expect(errors).toEqual([]);
    expect(schema).toEqual(TEMPLATE.params_schema);
  });

  it('types defaults and bounds by the row type', () => {
    const row = { ...emptyParamRow(), name: 'k', type: 'number', default: '2.5', min: '0', max: '1_000' };
    expect(rowsToSchema([row]).schema).toEqual({ type: 'object', properties: { k: { type: 'number', default: 2.5, minimum: 0, maximum: 1000 } } });
    const b = { ...emptyParamRow(), name: 'flag', type: 'boolean', default: 'TRUE' };
    expect(rowsToSchema([b]).schema.properties).toEqual({ flag: { type: 'boolean', default: true } });
    const s = { ...emptyParamRow(), name: 'label', type: 'string', default: ' x ' };
    expect(rowsToSchema([s]).schema.properties).toEqual({ label: { type: 'string', default: ' x ' } });
    const none = { ...emptyParamRow(), name: 'n', type: 'integer' };
    expect(rowsToSchema([none]).schema.properties).toEqual({ n: { type: 'integer' } });
  });

  it('names the cell that is wrong', () => {
    const rows = [
      { ...emptyParamRow(), name: 'a', type: 'integer', default: '1.5' },
      { ...emptyParamRow(), name: 'a', type: 'number' },
      { ...emptyParamRow(), name: '', type: 'number' },
      { ...emptyParamRow(), name: 'b', type: 'string', min: '1' },
      { ...emptyParamRow(), name: 'c', type: 'number', default: '5', min: '10' },
      { ...emptyParamRow(), name: 'd', type: 'boolean', default: 'yes' },
    ];
    const { errors } = rowsToSchema(rows);
    expect(errors.map((e) => e.field)).toEqual(['params.0.default', 'params.1.name', 'params.2.name', 'params.3.min', 'params.4.default', 'params.5.default']);
  });
});

describe('manifest form', () => {
  it('builds back the manifest it was made from', () => {
    const form = formFromManifest(TEMPLATE);
    expect(form.outputs[0].columns).toBe('ret, range');
    expect(form.memory_mb).toBe('256');
    const { manifest, errors } = buildManifest(form, '  first  ');
    expect(errors).toEqual([]);
    expect(manifest).toEqual({ ...TEMPLATE, message: 'first' });
  });

  it('drops columns from non-frame outputs and an empty version', () => {
    const form = formFromManifest({ ...TEMPLATE, language: 'python', code_format: 'source', outputs: [{ name: 'v', type: 'series' }] });
    form.outputs[0].columns = 'a, b';
    form.version = '';
    const { manifest } = buildManifest(form);
    expect(manifest.outputs).toEqual([{ name: 'v', type: 'series' }]);
    expect('version' in manifest).toBe(false);
    expect('message' in manifest).toBe(false);
  });

  it('reports bad names, types, frame columns and resources by field', () => {
    const form = formFromManifest(TEMPLATE);
    form.name = 'Bad Name';
    form.version = '1.0';
    form.inputs.push({ name: 'm', type: 'metrics', columns: '', doc: '' });
    form.outputs[0].columns = ' , ';
    form.memory_mb = '-5';
    form.wall_s = 'soon';
    const { errors } = buildManifest(form);
    expect(errors.map((e) => e.field)).toEqual(['name', 'version', 'inputs.1.type', 'outputs.0.columns', 'resources.memory_mb', 'resources.wall_s']);
    expect(errorsFor(errors, 'resources')).toHaveLength(2);
    expect(errorAt(errors, 'outputs.0.columns')).toMatch(/columns/);
  });

  it('takes a model output from a Python node only', () => {
    const form = formFromManifest(TEMPLATE);
    form.language = 'python';
    form.code_format = 'source';
    form.outputs.push({ name: 'model', type: 'model', columns: '', doc: '' });
    expect(buildManifest(form).errors).toEqual([]);
    expect(buildManifest(form).manifest.outputs[1]).toEqual({ name: 'model', type: 'model' });
    form.language = 'javascript';
    const { errors } = buildManifest(form);
    expect(errors.map((e) => e.field)).toEqual(['outputs.1.type']);
    expect(errorAt(errors, 'outputs.1.type')).toMatch(/only a Python node/);
  });

  it('refuses duplicate port names and a node without outputs', () => {
    const form = formFromManifest(TEMPLATE);
    form.inputs[0].name = 'features';
    expect(buildManifest(form).errors.map((e) => e.field)).toEqual(['outputs']);
    form.outputs = [];
    expect(buildManifest(form).errors.map((e) => e.field)).toContain('outputs');
  });
});

describe('API errors', () => {
  it('labels manifest fields the way a person reads them', () => {
    expect(fieldLabel('params_schema.properties.label.type')).toBe("param 'label' type");
    expect(fieldLabel('params_schema.properties.span')).toBe("param 'span'");
    expect(fieldLabel('outputs.0.type')).toBe('output 1 type');
    expect(fieldLabel('inputs.2')).toBe('input 3');
    expect(fieldLabel('params.1.default')).toBe('param 2 default');
    expect(fieldLabel('resources.wall_s')).toBe('resources wall_s');
    expect(fieldLabel('version')).toBe('version');
  });
  it('maps a 422 detail to manifest fields', () => {
    const detail = {
      message: 'invalid manifest',
      errors: [
        { loc: ['body', 'outputs', 0, 'columns'], msg: 'wasm frame needs columns' },
        { loc: ['version'], msg: 'not semver' },
        { loc: [], msg: 'wasm does not assemble' },
      ],
    };
    expect(apiFieldErrors(detail)).toEqual([
      { field: 'outputs.0.columns', msg: 'wasm frame needs columns' },
      { field: 'version', msg: 'not semver' },
      { field: 'manifest', msg: 'wasm does not assemble' },
    ]);
    expect(apiFieldErrors([{ loc: ['body', 'manifest', 'name'], msg: 'x' }])).toEqual([{ field: 'name', msg: 'x' }]);
    expect(apiFieldErrors('plain')).toEqual([]);
  });

  it('says which pipelines use a version', () => {
    expect(inUseMessage({ message: 'version 1.0.0 is in use', in_use_by: [{ pipeline_id: 1, pipeline_name: 'alpha' }] }, 'x')).toBe(
      'version 1.0.0 is in use (in use by alpha)',
    );
    expect(inUseMessage({ message: 'in use by alpha', in_use_by: [{ pipeline_id: 1, pipeline_name: 'alpha' }] }, 'x')).toBe('in use by alpha');
    expect(inUseMessage('in use by beta', 'x')).toBe('in use by beta');
    expect(inUseMessage(null, 'HTTP 409')).toBe('HTTP 409');
  });
});

describe('previews, diffs, verdicts', () => {
  const row = (i: number) => [i];
  it('joins head and tail with one gap row', () => {
    const p = { type: 'series', rows: 300, columns: ['v'], head: [0, 1, 2].map(row), tail: [297, 298, 299].map(row) };
    const r = previewRows(p);
    expect(r.map((x) => (x.kind === 'gap' ? `…${x.skipped}` : x.index))).toEqual([0, 1, 2, '…294', 297, 298, 299]);
  });
  it('does not repeat rows when head and tail overlap', () => {
    const p = { type: 'series', rows: 4, columns: ['v'], head: [0, 1, 2, 3].map(row), tail: [1, 2, 3].map(row) };
    expect(previewRows(p).map((x) => (x.kind === 'row' ? x.index : 'gap'))).toEqual([0, 1, 2, 3]);
  });
  it('formats cells', () => {
    expect(cellText(null)).toBe('NaN');
    expect(cellText(1.23456789)).toBe('1.23457');
    expect(cellText(3)).toBe('3');
    expect(cellText('2024-01-02T00:00:00Z')).toBe('2024-01-02');
    expect(cellText('2024-01-02T10:00:00Z')).toBe('2024-01-02T10:00:00Z');
  });
  it('numbers unified diff lines', () => {
    const d = parseUnified('--- a\n+++ b\n@@ -3,2 +3,2 @@\n ctx\n-old\n+new\n');
    expect(d.map((l) => [l.kind, l.old, l.new])).toEqual([
      ['file', null, null],
      ['file', null, null],
      ['hunk', null, null],
      ['ctx', 3, 3],
      ['del', 4, null],
      ['add', null, 4],
    ]);
  });
  it('colours verdicts', () => {
    expect(verdictTone('pass')).toBe('success');
    expect(verdictTone('fail')).toBe('error');
    expect(verdictTone('error')).toBe('neutral');
    expect(verdictTone('skipped')).toBe('neutral');
    expect(verdictTone(null)).toBe('neutral');
  });
});

describe('test-run errors in the code', () => {
  const failed = (error: string | null, status: 'failed' | 'completed' = 'failed') => ({
    status, error_kind: 'USER_ERROR', error, logs: [], wall_s: 1, inputs: {}, outputs: {},
  });
  it("finds the line the sandbox names and keeps the error's own words", () => {
    expect(codeErrorMark(failed("node 'n' failed (exit 1): RangeError: x too big: 2 (line 2 of the node's code)")))
      .toEqual({ line: 2, message: 'RangeError: x too big: 2' });
    expect(codeErrorMark(failed("ValueError: (a) (line 14 of the node's code)"))).toEqual({ line: 14, message: 'ValueError: (a)' });
  });
  it('has no mark without a line, without an error or after a success', () => {
    expect(codeErrorMark(failed("node 'n' ran past its 30 s wall time"))).toBeNull();
    expect(codeErrorMark(failed(null))).toBeNull();
    expect(codeErrorMark(failed("x (line 2 of the node's code)", 'completed'))).toBeNull();
    expect(codeErrorMark(null)).toBeNull();
  });
});
