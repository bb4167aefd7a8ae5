/** How a run is named on screen: its pipeline's title (else name) and its number. Pure. */

interface Named {
  id: number;
  pipeline_id: number;
  pipeline_name?: string | null;
  pipeline_title?: string | null;
}

/** The pipeline's title, else its name, else "pipeline <id>" (a run of a deleted pipeline). */
export function pipelineLabel(r: Named): string {
  return r.pipeline_title?.trim() || r.pipeline_name || `pipeline ${r.pipeline_id}`;
}

/** "Moving Average Crossover · run #12". */
export function runName(r: Named): string {
  return `${pipelineLabel(r)} · run #${r.id}`;
}
