/**
 * The `.af` language as Python defines it: `src/generated/language.json`, written by
 * `scripts/export_ui_contracts.py` (run by `scripts/build_ui.sh`) from dsl/keywords.py, the
 * duration units, the built-in node catalog and nodes/codes.py. The UI keeps no copy of its own:
 * the lexer, Monaco's highlighter, completion and hovers read these.
 */
import spec from '../../generated/language.json';
import type { NodeSpec } from '../types';

export interface CodeInfo {
  title: string;
  kinds: ('diagnostic' | 'error')[];
  severities: ('error' | 'warning' | 'info')[];
  layer: string;
}

/** Words that start a statement or a block, or join its parts (completion offers them). */
export const KEYWORDS: readonly string[] = spec.statement_keywords;
/** `true`, `false`, `none`. */
export const CONSTANTS: readonly string[] = spec.constants;
/** `and`, `or`, `not` (in `where` constraints). */
export const WORD_OPERATORS: readonly string[] = spec.word_operators;
/** Every reserved word: never a step, param or loop name. */
export const RESERVED: readonly string[] = spec.keywords;
/** `maximize`, `minimize`: meaningful after `objective` only (highlighted, not reserved). */
export const OBJECTIVE_DIRECTIONS: readonly string[] = spec.objective_directions;
/** One line of documentation per keyword (completion details, hovers). */
export const KEYWORD_DOCS: Readonly<Record<string, string>> = spec.keyword_docs;
/** Duration suffixes (`30d`, `6M`). */
export const DURATION_UNITS: readonly string[] = spec.duration_units;
export const SWEEP_METHODS: readonly string[] = spec.sweep_methods;
/** Port types whose columns a reference `step.column` selects (the first such output's). */
export const FRAME_LIKE_TYPES: readonly string[] = spec.frame_like_types;
/** The built-in node catalog (what `GET /api/nodes` lists before the caller's custom nodes). */
export const BUILTIN_NODES = spec.nodes as unknown as readonly NodeSpec[];
export const BUILTIN_TYPES: readonly string[] = BUILTIN_NODES.map((n) => n.name);
/** Every diagnostic and error code (docs/codes.md). */
export const CODES = spec.codes as Readonly<Record<string, CodeInfo>>;

/** Codes of blocks that compile but do not run in this version (the Run button warns). */
export const NOT_EXECUTED_CODE = 'AF008';
