/**
 * The API's JSON shapes, taken from `src/generated/api.d.ts` — generated from the API's OpenAPI
 * schema by `scripts/build_ui.sh` (scripts/export_ui_contracts.py + openapi-typescript); never
 * written by hand. Response bodies always carry every field (the API serialises defaults), so
 * `Out<T>` makes the fields OpenAPI marks optional (they have defaults) required.
 */
import type { components } from '../generated/api';
import type { ParamsSchema } from './dsl/schema';

type S = components['schemas'];
/** A response model: every field present (defaults are serialised). */
export type Out<T> = { [K in keyof T]-?: T[K] };

export type Role = S['Role'];
export type User = Out<S['UserPublic']>;

export type Diagnostic = Out<S['DiagnosticOut']>;
export type Severity = Diagnostic['severity'];
export type OutlineStep = Out<S['OutlineItem']>;
export interface ValidateResult extends Omit<Out<S['ValidateResponse']>, 'diagnostics' | 'outline'> {
  diagnostics: Diagnostic[];
  outline: OutlineStep[];
}

export type PortSpec = Out<S['PortSpec']>;
/** A catalog entry; `params_schema` is pydantic's JSON Schema of the params (OpenAPI: an object). */
export interface NodeSpec extends Omit<Out<S['NodeSpec']>, 'params_schema' | 'inputs' | 'outputs' | 'custom' | 'use'> {
  inputs: PortSpec[];
  outputs: PortSpec[];
  params_schema: ParamsSchema;
  /** A custom node (docs/custom-nodes.md): its `runtime` is the language, `use` = `name@version`. */
  custom?: boolean;
  use?: string | null;
}

export type RunStatus = S['RunStatus'];
export type NodeState = S['RunPublic']['node_states'][string];
export type RunMetricsPreview = Out<S['MetricsPreview']>;
export type RunSummary = Out<S['RunSummary']>;
/** A run; `models`: what it trained (each model's fields all present). */
export interface Run extends Omit<Out<S['RunPublic']>, 'models'> {
  models: RunModel[];
}
export type LogLine = Out<S['LogLine']>;
export type EquityPoint = Out<S['EquityPoint']>;
export type Trade = S['RunResults']['trades'][number];
export type Results = Out<S['RunResults']>;
export type PriceBar = Out<S['PriceBar']>;
export type Benchmark = Out<S['Benchmark']>;
export type MonthlyRow = Out<S['MonthlyReturns']>;
export type RunAnalysis = Out<S['RunAnalysis']>;
export type RunModel = Out<S['RunModel']>;
export type ModelEpoch = Out<S['ModelEpoch']>;
export type RegisteredModel = Out<S['RegisteredModelPublic']>;
export type RegisteredVersion = Out<S['RegisteredVersionPublic']>;

export type VersionSummary = Out<S['VersionSummary']>;
export type Version = Out<S['VersionPublic']>;
export type PipelineSummary = Out<S['PipelineSummary']>;
export type Pipeline = Out<S['PipelinePublic']>;
export type Dataset = Out<S['DatasetPublic']>;
/** One symbol of a catalog version: bars and time range. */
export type SymbolRange = Out<S['SymbolRange']>;
/** A catalog version of a dataset (immutable, named by its content hash). */
export interface DatasetVersion extends Omit<Out<S['DatasetVersionPublic']>, 'symbols'> {
  symbols: SymbolRange[];
}
/** What a tick (order-book) version holds: events, time range, per symbol counts and prices. */
export type TickSummary = Out<S['TickSummary']>;
export type TickSymbolSummary = Out<S['TickSymbolSummary']>;
/** A version with its validation report (see `lib/catalog.ts` for the report's shape). */
export interface DatasetVersionDetail extends Omit<Out<S['DatasetVersionDetail']>, 'symbols' | 'report'> {
  symbols: SymbolRange[];
  report: Record<string, unknown>;
}
/** One symbol's bars of a version, parallel arrays (`t` in epoch seconds). */
export type Candles = Out<S['Candles']>;
/** An output port of a step that ran; `primary`: the step whose metrics are the run's. */
export type RunOutput = Out<S['RunOutput']>;
/** A table or series a step produced, column-major (`data[i]` is `columns[i]`). */
export type OutputFrame = Out<S['OutputFrame']>;
export type TickFill = Out<S['TickFill']>;
/** A tick backtest's chart data (GET /api/runs/{id}/tick-chart). */
export interface TickChartData extends Omit<Out<S['TickChart']>, 'fills'> {
  fills: TickFill[];
}

/** What a share link shows, named by the API (`run_id` for a run link). */
export type ShareTarget = Out<S['ShareTarget']>;
/** A share link as `GET /api/shares` lists it: `target` is null once the shared object is deleted. */
export type ShareListItem = Out<S['SharePublic']>;
export type Share = ShareListItem;
/** `GET /api/shared/{token}`: the API declares `run` and `results` as objects; they are these. */
export interface SharedView extends Omit<Out<S['SharedView']>, 'run' | 'results' | 'analysis'> {
  run: Run | null;
  results: Results | null;
  analysis?: RunAnalysis | null;
}

export type AppConfig = Out<S['ClientConfig']>;
export type Schedule = Out<S['SchedulePublic']>;
export type Team = Out<S['TeamPublic']>;
export type TeamGrant = Out<S['GrantPublic']>;
export type GrantAccess = S['Access'];

export type SweepStatus = S['SweepSummary']['status'];
export type SweepSummary = Out<S['SweepSummary']>;
export type FoldRow = Out<S['FoldRow']>;
export type Overfit = Out<S['Overfit']>;
export type BestTrial = Out<S['BestTrial']>;
export interface SweepRecord extends Omit<Out<S['SweepRecord']>, 'best' | 'overfit' | 'folds'> {
  best: BestTrial | null;
  overfit: Overfit | null;
  folds: FoldRow[] | null;
}
export interface Sweep extends Omit<Out<S['SweepPublic']>, 'record'> {
  record: SweepRecord | null;
}
export type TrialRow = Out<S['TrialItem']>;
export interface TrialPage extends Omit<Out<S['TrialPage']>, 'items'> {
  items: TrialRow[];
}
export type HeatmapCell = Out<S['HeatmapCell']>;
export type Heatmap = Out<S['Heatmap']>;
export type OosPoint = Out<S['OosPoint']>;
export interface OosEquity extends Omit<Out<S['OosEquity']>, 'points'> {
  points: OosPoint[];
}

// The live side (`/api/strategies`, `/api/instances`; lib/live.ts has the dashboard's logic).
export type LiveMode = S['InstancePublic']['mode'];
export type StrategySummary = Out<S['StrategySummary']>;
export type StrategyVersion = Out<S['StrategyVersionPublic']>;
export interface Strategy extends Omit<Out<S['StrategyPublic']>, 'latest'> {
  latest: StrategyVersion;
}
export type LivePosition = Out<S['PositionPublic']>;
export interface Instance extends Omit<Out<S['InstancePublic']>, 'positions'> {
  positions: LivePosition[];
}
export type InstanceCreate = S['InstanceCreate'];
export type InstancePatch = S['InstancePatch'];
export type InstanceEvent = Out<S['InstanceEventPublic']>;
export interface InstanceEventPage extends Omit<Out<S['Page_InstanceEventPublic_']>, 'items'> {
  items: InstanceEvent[];
}
export type InstanceOrder = Out<S['InstanceOrderPublic']>;
export type InstanceChange = Out<S['InstanceChangePublic']>;
/** `POST /api/instances/{id}/widgets`: `widgets` are render()'s dicts (lib/live.ts reads them). */
export type WidgetsReply = Out<S['WidgetsPublic']>;
/** `GET /api/streams`: a deployed stream pipeline (or, `id` null, one run from a terminal) with
 * its status and last health snapshot (lib/live.ts reads its sinks). */
export type StreamPipeline = Out<S['StreamDeploymentPublic']>;
/** `GET /api/streams/{id}`: a deployment with its text and the list of its texts. */
export type StreamDetail = Out<S['StreamDeploymentDetail']>;
