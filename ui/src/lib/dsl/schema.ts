/**
 * A node's params JSON Schema (pydantic's `model_json_schema()`) reduced to what a form and the
 * completion/hover providers need: one `ParamField` per property.
 */

export type FieldKind = 'int' | 'number' | 'bool' | 'enum' | 'string' | 'date' | 'list' | 'any';

export interface ParamField {
  name: string;
  kind: FieldKind;
  nullable: boolean;
  required: boolean;
  hasDefault: boolean;
  default: unknown;
  description: string;
  title: string;
  enumValues: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  /** `date`/`date-time` for date fields. */
  format?: string;
  /** A short type label: `int ≥ 1`, `float | none`, `"and" | "or"`. */
  typeLabel: string;
}

type Schema = Record<string, unknown>;

export interface ParamsSchema {
  properties?: Record<string, Schema>;
  required?: string[];
  $defs?: Record<string, Schema>;
  definitions?: Record<string, Schema>;
}

function deref(s: Schema, root: ParamsSchema): Schema {
  const ref = s.$ref;
  if (typeof ref !== 'string') return s;
  const name = ref.split('/').pop() ?? '';
  const target = root.$defs?.[name] ?? root.definitions?.[name];
  return target ? { ...target, ...s, $ref: undefined } : s;
}

/** The fields of a params schema, in declaration order. */
export function paramFields(schema: ParamsSchema | null | undefined): ParamField[] {
  if (!schema?.properties) return [];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, raw]) => toField(name, raw, required.has(name), schema));
}

function toField(name: string, raw: Schema, required: boolean, root: ParamsSchema): ParamField {
  const s = deref(raw, root);
  const variants = ((s.anyOf ?? s.oneOf) as Schema[] | undefined)?.map((v) => deref(v, root)) ?? [s];
  const nullable = variants.some((v) => v.type === 'null') || (Array.isArray(s.type) && s.type.includes('null'));
  const concrete = variants.filter((v) => v.type !== 'null');
  const main: Schema = concrete.length === 1 ? { ...concrete[0] } : concrete.length === 0 ? {} : { anyOf: concrete };
  const field: ParamField = {
    name,
    kind: 'any',
    nullable,
    required,
    hasDefault: 'default' in s,
    default: s.default,
    description: String(s.description ?? ''),
    title: String(s.title ?? name),
    enumValues: [],
    typeLabel: '',
  };
  const type = Array.isArray(main.type) ? main.type.find((t) => t !== 'null') : main.type;
  const enumValues = (main.enum as unknown[] | undefined) ?? ('const' in main ? [main.const] : undefined);
  if (enumValues) {
    field.kind = 'enum';
    field.enumValues = enumValues;
  } else if (type === 'integer') field.kind = 'int';
  else if (type === 'number') field.kind = 'number';
  else if (type === 'boolean') field.kind = 'bool';
  else if (type === 'array') field.kind = 'list';
  else if (type === 'string') {
    const format = main.format as string | undefined;
    field.kind = format === 'date' || format === 'date-time' ? 'date' : 'string';
    field.format = format;
  } else if (main.anyOf) {
    const formats = (main.anyOf as Schema[]).map((v) => v.format);
    if (formats.every((f) => f === 'date' || f === 'date-time')) {
      field.kind = 'date';
      field.format = 'date';
    }
  }
  for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const) {
    if (typeof main[k] === 'number') field[k] = main[k] as number;
  }
  field.typeLabel = typeLabel(field);
  return field;
}

function typeLabel(f: ParamField): string {
  let base: string;
  switch (f.kind) {
    case 'int':
      base = 'int';
      break;
    case 'number':
      base = 'float';
      break;
    case 'bool':
      base = 'bool';
      break;
    case 'enum':
      base = f.enumValues.map((v) => JSON.stringify(v)).join(' | ');
      break;
    case 'date':
      base = 'date';
      break;
    case 'list':
      base = 'list';
      break;
    case 'string':
      base = 'str';
      break;
    default:
      base = 'any';
  }
  const bounds: string[] = [];
  if (f.minimum !== undefined) bounds.push(`≥ ${f.minimum}`);
  if (f.exclusiveMinimum !== undefined) bounds.push(`> ${f.exclusiveMinimum}`);
  if (f.maximum !== undefined) bounds.push(`≤ ${f.maximum}`);
  if (f.exclusiveMaximum !== undefined) bounds.push(`< ${f.exclusiveMaximum}`);
  return [base + (bounds.length ? ' ' + bounds.join(', ') : ''), f.nullable ? 'none' : ''].filter(Boolean).join(' | ');
}

/** A value the form holds, checked against the field: an error message, or null when valid. */
export function checkValue(f: ParamField, v: unknown): string | null {
  if (v === null) return f.nullable ? null : `${f.name} cannot be none`;
  if (f.kind === 'int' || f.kind === 'number') {
    if (typeof v !== 'number' || Number.isNaN(v)) return 'a number is required';
    if (f.kind === 'int' && !Number.isInteger(v)) return 'an integer is required';
    if (f.minimum !== undefined && v < f.minimum) return `must be ≥ ${f.minimum}`;
    if (f.maximum !== undefined && v > f.maximum) return `must be ≤ ${f.maximum}`;
    if (f.exclusiveMinimum !== undefined && v <= f.exclusiveMinimum) return `must be > ${f.exclusiveMinimum}`;
    if (f.exclusiveMaximum !== undefined && v >= f.exclusiveMaximum) return `must be < ${f.exclusiveMaximum}`;
  }
  if (f.kind === 'enum' && !f.enumValues.some((e) => e === v)) return `one of ${f.typeLabel}`;
  return null;
}
