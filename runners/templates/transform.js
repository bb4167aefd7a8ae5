// Template: a frame transform. Bar features from OHLCV: simple return and relative range.
// inputs.bars = { index: [ISO timestamps], columns: { open, high, low, close, volume } }
function run(inputs, params) {
  const { high, low, close } = inputs.bars.columns;
  const n = close.length;
  const ret = new Float64Array(n);
  const range = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    ret[i] = i === 0 ? NaN : close[i] / close[i - 1] - 1; // NaN is written as null
    range[i] = (high[i] - low[i]) / close[i];
  }
  return { features: { columns: { ret, range } } };
}

module.exports = { run };
