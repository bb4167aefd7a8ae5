/** A slice of GET /api/nodes, shaped like pydantic's model_json_schema() output. */
import type { NodeSpec } from '../../types';

const port = (name: string, type: string, extra: Partial<NodeSpec['inputs'][0]> = {}) => ({
  name,
  type,
  doc: '',
  optional: false,
  variadic: false,
  columns: null,
  ...extra,
});

export const CATALOG: NodeSpec[] = [
  {
    name: 'csv_ohlcv',
    version: '1.0.0',
    category: 'data',
    summary: 'OHLCV bars from a CSV file',
    doc: 'Reads a CSV file.',
    inputs: [],
    outputs: [port('bars', 'ohlcv', { columns: ['open', 'high', 'low', 'close', 'volume'] })],
    params_schema: {
      properties: {
        path: { type: 'string', title: 'Path', description: 'CSV file path' },
        symbol: { anyOf: [{ type: 'string' }, { type: 'null' }], default: null, title: 'Symbol' },
        timezone: { type: 'string', default: 'UTC', title: 'Timezone' },
        start: {
          anyOf: [{ type: 'string', format: 'date' }, { type: 'string', format: 'date-time' }, { type: 'null' }],
          default: null,
          title: 'Start',
        },
      },
      required: ['path'],
    },
    metric_keys: [],
    runtime: 'builtin',
  },
  {
    name: 'dataset_ohlcv',
    version: '1.0.0',
    category: 'data',
    summary: 'A web-app dataset',
    doc: '',
    inputs: [],
    outputs: [port('bars', 'ohlcv', { columns: ['open', 'high', 'low', 'close', 'volume'] })],
    params_schema: { properties: { name: { type: 'string', title: 'Name' } }, required: ['name'] },
    metric_keys: [],
    runtime: 'builtin',
  },
  {
    name: 'sma',
    version: '1.0.0',
    category: 'indicators',
    summary: 'Simple moving average',
    doc: 'Rolling mean, first window-1 values NaN.',
    inputs: [port('series', 'series')],
    outputs: [port('value', 'series')],
    params_schema: {
      properties: { window: { type: 'integer', minimum: 1, default: 20, title: 'Window', description: 'Bars in the window' } },
    },
    metric_keys: [],
    runtime: 'builtin',
  },
  {
    name: 'crossover',
    version: '1.0.0',
    category: 'signals',
    summary: 'Long/short on crossings',
    doc: '',
    inputs: [port('fast', 'series'), port('slow', 'series')],
    outputs: [port('signal', 'signal')],
    params_schema: {
      properties: { mode: { enum: ['long_short', 'long_only'], type: 'string', default: 'long_short', title: 'Mode' } },
    },
    metric_keys: [],
    runtime: 'builtin',
  },
  {
    name: 'backtest',
    version: '1.0.0',
    category: 'backtest',
    summary: 'Bar backtest',
    doc: '',
    inputs: [port('data', 'ohlcv'), port('signal', 'signal')],
    outputs: [
      port('equity', 'equity', { columns: ['equity', 'cash', 'position', 'drawdown'] }),
      port('trades', 'trades'),
      port('metrics', 'metrics'),
    ],
    params_schema: {
      properties: {
        cash: { type: 'number', exclusiveMinimum: 0, default: 100000, title: 'Cash' },
        fee_bps: { type: 'number', minimum: 0, default: 0, title: 'Fee Bps' },
        lot_size: { anyOf: [{ type: 'number', exclusiveMinimum: 0 }, { type: 'null' }], default: null, title: 'Lot Size' },
        log: { type: 'boolean', default: false, title: 'Log' },
        how: { $ref: '#/$defs/How', default: 'mean' },
      },
      $defs: { How: { enum: ['and', 'or', 'mean'], title: 'How', type: 'string' } },
    },
    metric_keys: ['sharpe', 'total_return', 'max_drawdown'],
    runtime: 'builtin',
  },
];
