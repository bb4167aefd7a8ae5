/** The source a new pipeline starts from (the title is a DSL string: JSON escapes). */
export function newPipelineSource(name: string, title: string): string {
  return `# ${title || name}
pipeline ${name} ${JSON.stringify(title || name)}

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
`;
}

/** Pipeline names are DSL identifiers. */
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const NAME_MAX = 100;
/** Titles (the `pipeline NAME "Title"` header) are free text up to this many characters. */
export const TITLE_MAX = 120;

/** Why `name` cannot be a pipeline's name (a sentence saying what to type), or null. */
export function nameProblem(name: string): string | null {
  if (!name) return 'Type a name: letters, digits and “_”, not starting with a digit, e.g. sma_crossover.';
  if (name.length > NAME_MAX) return `The name is ${name.length} characters long; the limit is ${NAME_MAX}.`;
  if (/^[0-9]/.test(name)) return `A name cannot start with a digit: try “p_${name}”.`;
  if (!NAME_RE.test(name)) {
    const suggestion = name.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+(?=[0-9])/, 'p_');
    return `Use only letters, digits and “_” (no spaces or punctuation), e.g. “${suggestion}”.`;
  }
  return null;
}

/** Why `title` cannot be a title, or null. */
export function titleProblem(title: string): string | null {
  if (title.length > TITLE_MAX) return `The title is ${title.length} characters long; the limit is ${TITLE_MAX}. Shorten it.`;
  return null;
}

/**
 * An identifier's copy is `name_copy`, then `name_copy_2`...; an older free-text name gets
 * " (copy)", " (copy 2)"...: the first not in `taken` (as the API's default).
 */
export function copyName(name: string, taken: Iterable<string>): string {
  if (!NAME_RE.test(name)) return copyOf(name, taken, NAME_MAX);
  const used = new Set(taken);
  const base = name.replace(/_copy(_\d+)?$/, '');
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? '_copy' : `_copy_${n}`;
    const candidate = base.slice(0, NAME_MAX - suffix.length) + suffix;
    if (!used.has(candidate)) return candidate;
  }
}

/** `title (copy)`, else `title (copy 2)`, ... : the first not in `taken` (as the API's default). */
export function copyTitle(title: string, taken: Iterable<string>): string {
  return copyOf(title, taken, TITLE_MAX);
}

function copyOf(text: string, taken: Iterable<string>, limit: number): string {
  const used = new Set(taken);
  const base = text.replace(/ \(copy(?: \d+)?\)$/, '');
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? ' (copy)' : ` (copy ${n})`;
    const candidate = base.slice(0, limit - suffix.length) + suffix;
    if (!used.has(candidate)) return candidate;
  }
}
