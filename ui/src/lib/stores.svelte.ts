/** App-wide data several pages share: the node catalog, the pipeline list, the API config. */
import { api, items } from './api';
import type { AppConfig, Dataset, NodeSpec, PipelineSummary } from './types';

export const catalog = $state<{ nodes: NodeSpec[]; loaded: boolean; error: string | null }>({
  nodes: [],
  loaded: false,
  error: null,
});

let catalogLoading: Promise<void> | null = null;
export function loadCatalog(force = false): Promise<void> {
  if (catalogLoading && !force) return catalogLoading;
  catalogLoading = api
    .get<NodeSpec[] | { items: NodeSpec[] }>('/api/nodes')
    .then((r) => {
      catalog.nodes = items(r);
      catalog.loaded = true;
      catalog.error = null;
    })
    .catch((e) => {
      catalog.error = e instanceof Error ? e.message : String(e);
      catalogLoading = null;
    });
  return catalogLoading;
}

export const pipelines = $state<{ items: PipelineSummary[]; loaded: boolean; error: string | null }>({
  items: [],
  loaded: false,
  error: null,
});

export async function refreshPipelines(): Promise<void> {
  try {
    pipelines.items = items(await api.get<PipelineSummary[] | { items: PipelineSummary[] }>('/api/pipelines?limit=200'));
    pipelines.error = null;
  } catch (e) {
    pipelines.error = e instanceof Error ? e.message : String(e);
  } finally {
    pipelines.loaded = true;
  }
}

export const datasets = $state<{ items: Dataset[]; loaded: boolean }>({ items: [], loaded: false });

export async function refreshDatasets(): Promise<void> {
  datasets.items = items(await api.get<Dataset[] | { items: Dataset[] }>('/api/datasets?limit=200'));
  datasets.loaded = true;
}

export const config = $state<AppConfig>({ mlflow_ui_url: null, prefect_ui_url: null });

export async function loadConfig(): Promise<void> {
  try {
    Object.assign(config, await api.get<AppConfig>('/api/config'));
  } catch {
    /* optional: links are simply not shown */
  }
}
