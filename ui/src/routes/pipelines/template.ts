/** The source a new pipeline starts from. */
export function newPipelineSource(name: string, title: string): string {
  return `# ${title || name}
pipeline ${name} "${(title || name).replace(/["\\]/g, '')}"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
`;
}

/** Pipeline names are DSL identifiers. */
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
