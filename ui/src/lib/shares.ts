/**
 * The Share links page's pure logic: what a link points at (as text and an in-app link), its
 * status, and paging over `GET /api/shares` (`{items, total}` with `?offset=&limit=`).
 *
 * The API lists live links only, newest first, and says nothing of the target's name or the
 * link's creator: the page looks the target up (`GET /api/pipelines/{id}`, `GET /api/runs/{id}`)
 * and marks links revoked in this session itself.
 */
import type { Share } from './types';

/** A listed link; `owner` / `revoked_at` are read if a later API sends them. */
export type ShareRow = Share & { owner?: string | null; revoked_at?: string | null };

/** What a link's target resolved to. `undefined` while loading. */
export type TargetInfo =
  | {
      state: 'ok';
      pipelineId: string | number;
      pipelineName: string;
      pipelineTitle: string | null;
      pipelineOwner: string | null;
      runId?: string | number;
    }
  /** The target is deleted (or no longer visible): the link shows "not found" too. */
  | { state: 'gone' }
  | { state: 'error'; message: string };

/** One piece of the "what is shared" cell: plain text or an in-app link. */
export interface LabelPart {
  text: string;
  href?: string;
  mono?: boolean;
}

/** The key a target is cached under: `pipeline:3`, `run:12`. */
export function targetKey(s: Pick<Share, 'kind' | 'target_id'>): string {
  return `${s.kind}:${s.target_id}`;
}

/**
 * "What is shared" as parts: a pipeline's title or name (linked), or "Run #12" (linked) "of"
 * its pipeline (linked). Text only: the caller renders each part as text.
 */
export function targetLabel(s: Pick<Share, 'kind' | 'target_id'>, info: TargetInfo | undefined): LabelPart[] {
  const id = String(s.target_id);
  const enc = encodeURIComponent(id);
  const head: LabelPart =
    s.kind === 'run' ? { text: `Run #${id}`, href: `/runs/${enc}` } : { text: `Pipeline #${id}`, href: `/pipelines/${enc}` };
  if (info === undefined) return [head];
  if (info.state === 'gone') return [{ text: head.text }, { text: s.kind === 'run' ? '(run deleted)' : '(pipeline deleted)' }];
  if (info.state === 'error') return [head];
  const pipe: LabelPart = { text: info.pipelineTitle || info.pipelineName, href: `/pipelines/${encodeURIComponent(String(info.pipelineId))}` };
  return s.kind === 'run' ? [head, { text: 'of' }, pipe] : [pipe];
}

/** The pipeline's name under its title, when it has a title that says something else. */
export function subName(info: TargetInfo | undefined): string | null {
  if (info?.state !== 'ok' || !info.pipelineTitle || info.pipelineTitle === info.pipelineName) return null;
  return info.pipelineName;
}

export type ShareStatus = 'active' | 'revoked';

export function shareStatus(s: Pick<ShareRow, 'revoked_at'>, revokedHere: ReadonlySet<string>, token: string): ShareStatus {
  return s.revoked_at || revokedHere.has(token) ? 'revoked' : 'active';
}

/**
 * Who made the link, for an admin's "Owner" column: the API's `owner` when it sends one,
 * else the shared pipeline's owner (`byPipeline`: true) — the API does not name a link's creator.
 */
export function ownerOf(s: Pick<ShareRow, 'owner'>, info: TargetInfo | undefined): { text: string; byPipeline: boolean } {
  if (s.owner) return { text: s.owner, byPipeline: false };
  if (info?.state === 'ok' && info.pipelineOwner) return { text: info.pipelineOwner, byPipeline: true };
  return { text: '—', byPipeline: false };
}

export interface PageView {
  /** 1-based first and last row shown (0, 0 when empty). */
  from: number;
  to: number;
  hasPrev: boolean;
  hasNext: boolean;
}

/** The pager for a page loaded at `offset` with `shown` rows out of `total` live links. */
export function pageView(offset: number, shown: number, total: number): PageView {
  return {
    from: shown ? offset + 1 : 0,
    to: offset + shown,
    hasPrev: offset > 0,
    hasNext: shown > 0 && offset + shown < total,
  };
}

/** Where the next page starts: links revoked on this page have left the server's list. */
export function nextOffset(offset: number, shown: number, revoked: number): number {
  return Math.max(0, offset + shown - revoked);
}

export function prevOffset(offset: number, limit: number): number {
  return Math.max(0, offset - limit);
}
