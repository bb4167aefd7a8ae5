/** The API's JSON shapes (docs/api-contract.md). */
import type { ParamsSchema } from './dsl/schema';

export type Role = 'admin' | 'developer' | 'observer';
export interface User {
  id: number | string;
  username: string;
  role: Role;
}

export type Severity = 'error' | 'warning' | 'info';
export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  line: number;
  col: number;
  end_line: number;
  end_col: number;
  hint: string | null;
  suggestions: string[];
}

export interface OutlineStep {
  id: string;
  type: string;
  line: number;
  col: number;
  end_line: number;
  end_col: number;
  inputs: string[];
  params: Record<string, unknown>;
}

export interface ValidateResult {
  ok: boolean;
  diagnostics: Diagnostic[];
  outline: OutlineStep[];
  ir: unknown | null;
  ir_hash: string | null;
}

export interface PortSpec {
  name: string;
  type: string;
  doc: string;
  optional: boolean;
  variadic: boolean;
  columns: string[] | null;
}

export interface NodeSpec {
  name: string;
  version: string;
  category: string;
  summary: string;
  doc: string;
  inputs: PortSpec[];
  outputs: PortSpec[];
  params_schema: ParamsSchema;
  metric_keys: string[];
  runtime: string;
  /** A custom node (docs/custom-nodes.md): its `runtime` is the language, `use` = `name@version`. */
  custom?: boolean;
  use?: string;
}

export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export type NodeState = 'pending' | 'running' | 'completed' | 'cached' | 'failed' | 'cancelled';

export interface RunMetricsPreview {
  sharpe: number | null;
  total_return: number | null;
  max_drawdown: number | null;
  num_trades: number | null;
}

export interface RunSummary {
  id: string | number;
  pipeline_id: string | number;
  version: number;
  status: RunStatus;
  trigger: 'manual' | 'schedule';
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  metrics: RunMetricsPreview | null;
}

export interface Run extends RunSummary {
  node_states: Record<string, NodeState>;
  error: string | null;
  mlflow_run_id: string | null;
  mlflow_url: string | null;
  prefect_flow_run_id: string | null;
  prefect_url: string | null;
  ir_hash: string | null;
}

export interface LogLine {
  seq: number;
  ts: string;
  node_id: string | null;
  level: string;
  message: string;
}

export interface EquityPoint {
  ts: string;
  equity: number;
  drawdown: number;
}

export type Trade = Record<string, unknown>;

export interface Results {
  metrics: Record<string, unknown>;
  equity: EquityPoint[];
  trades: Trade[];
  /** All the run's trades; `trades` holds the first 10,000 of them. */
  trades_total?: number;
}

export interface VersionSummary {
  number: number;
  message: string | null;
  created_at: string;
  ir_hash: string | null;
  author: string | null;
}

export interface Version extends VersionSummary {
  source: string;
}

export interface PipelineSummary {
  id: string | number;
  name: string;
  title: string | null;
  owner: string;
  created_at: string;
  updated_at: string;
  latest_version: number;
  last_run: RunSummary | null;
}

export interface Pipeline {
  id: string | number;
  name: string;
  title: string | null;
  owner: string;
  created_at: string;
  updated_at: string;
  version: Version;
}

export interface Dataset {
  id: string | number;
  name: string;
  rows: number;
  start: string | null;
  end: string | null;
  columns: string[];
  sha256: string;
  created_at: string;
}

export interface Share {
  token: string;
  url: string;
  kind: 'run' | 'pipeline';
  target_id: string | number;
  created_at: string;
}

/** What a share link shows, named by the API (`run_id` for a run link). */
export interface ShareTarget {
  pipeline_id: string | number;
  pipeline_name: string;
  pipeline_title: string | null;
  run_id: string | number | null;
}

/** A share link as `GET /api/shares` lists it: `target` is null once the shared object is deleted. */
export interface ShareListItem extends Share {
  owner: string;
  revoked_at: string | null;
  target: ShareTarget | null;
}

export interface SharedView {
  kind: 'run' | 'pipeline';
  pipeline: { name: string; title: string | null; source: string; version: number };
  run: Run | null;
  results: Results | null;
}

export interface AppConfig {
  mlflow_ui_url: string | null;
  prefect_ui_url: string | null;
}

export interface Schedule {
  id: number | string;
  cron: string | null;
  interval_seconds: number | null;
  timezone: string;
  active: boolean;
  prefect_deployment_id: string | null;
}
