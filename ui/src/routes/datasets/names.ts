/** Dataset names: the rule the API applies to new datasets, and a name made from a file name. */

export const DATASET_NAME_MAX = 64;
export const DATASET_NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
export const DATASET_NAME_RULE =
  "Dataset names use letters, digits, '_' and '-', start with a letter, at most 64 characters, e.g. goog_daily.";

/** A valid dataset name made from a file's name: `GOOG 1d (2020).csv` -> `GOOG_1d_2020`. */
export function datasetNameFromFile(fileName: string): string {
  let base = fileName.replace(/\.[A-Za-z0-9]{1,5}$/, '');
  base = base.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/_+/g, '_').replace(/^[_-]+|[_-]+$/g, '');
  if (!/^[A-Za-z]/.test(base)) base = `data_${base}`.replace(/_+$/, '');
  return base.slice(0, DATASET_NAME_MAX).replace(/[_-]+$/, '') || 'data';
}
