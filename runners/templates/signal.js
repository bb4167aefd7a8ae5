// Template: a signal. +1 when x rose over `lookback` bars, -1 when it fell, else 0.
function run(inputs, params) {
  const x = inputs.x.values;
  const k = params.lookback;
  const out = new Float64Array(x.length);
  for (let i = k; i < x.length; i++) {
    const change = x[i] - x[i - k];
    out[i] = Number.isNaN(change) ? 0 : Math.sign(change);
  }
  return { signal: out };
}

module.exports = { run };
