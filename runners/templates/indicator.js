// Template: an indicator. Exponential moving average of the input series.
// inputs.x = { name, index: [ISO timestamps], values: Float64Array }
function run(inputs, params) {
  const x = inputs.x.values;
  const alpha = 2 / (params.span + 1);
  const out = new Float64Array(x.length);
  let prev = NaN;
  for (let i = 0; i < x.length; i++) {
    prev = i === 0 ? x[0] : prev + alpha * (x[i] - prev);
    out[i] = prev;
  }
  console.log(`ema over ${x.length} rows, span=${params.span}`);
  return { ema: out }; // same index as the input
}

module.exports = { run };
