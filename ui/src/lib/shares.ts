/**
 * The Share links page's pure logic: what a link points at (as text and in-app links), its
 * status, and paging over `GET /api/shares` (`{items, total}` with `?offset=&limit=`, newest
 * first; revoked links only with `include_revoked=true`). Each item names its target and owner.
 */
import type { ShareListItem } from './types';

/** One piece of the "what is shared" cell: plain text or an in-app link. */
export interface LabelPart {
  text: string;
  href?: string;
}

type Labelled = Pick<ShareListItem, 'kind' | 'target_id' | 'target'>;

/**
 * "What is shared" as parts: a pipeline's title or name (linked), or "Run #12" (linked) "of"
 * its pipeline (linked); "Pipeline #3" "(deleted)", unlinked, once the target is gone. Text
 * only: the caller renders each part as text.
 */
export function targetLabel(s: Labelled): LabelPart[] {
  const t = s.target;
  const id = String(s.kind === 'run' && t?.run_id != null ? t.run_id : s.target_id);
  const head = s.kind === 'run' ? `Run #${id}` : `Pipeline #${id}`;
  if (!t) return [{ text: head }, { text: '(deleted)' }];
  const pipe: LabelPart = { text: t.pipeline_title || t.pipeline_name, href: `/pipelines/${encodeURIComponent(String(t.pipeline_id))}` };
  return s.kind === 'run' ? [{ text: head, href: `/runs/${encodeURIComponent(id)}` }, { text: 'of' }, pipe] : [pipe];
}

/** The pipeline's name under its title, when it has a title that says something else. */
export function subName(s: Pick<ShareListItem, 'target'>): string | null {
  const t = s.target;
  if (!t?.pipeline_title || t.pipeline_title === t.pipeline_name) return null;
  return t.pipeline_name;
}

export type ShareStatus = 'active' | 'revoked' | 'expired' | 'target deleted';

/** The expiry fields (optional so older shapes still type-check). */
type Expiring = { expired?: boolean; expires_at?: string | null };

/**
 * A link's status: revoked (it says so whatever its target), else expired (past its
 * `expires_at`: it says it expired), else "target deleted" when what it shared is gone
 * (`target: null`: the link shows "not found" but can still be revoked), else active.
 */
export function shareStatus(s: Pick<ShareListItem, 'revoked_at' | 'target'> & Expiring): ShareStatus {
  if (s.revoked_at) return 'revoked';
  if (s.expired) return 'expired';
  return s.target ? 'active' : 'target deleted';
}

/** What a status means, for its badge's tooltip. */
export function statusHint(s: Pick<ShareListItem, 'kind' | 'revoked_at' | 'target'> & Expiring): string {
  const status = shareStatus(s);
  if (status === 'revoked') return 'Revoked: the link shows "not found"';
  if (status === 'expired') return 'Expired: the link says it expired and shows nothing';
  if (status === 'target deleted') return `The shared ${s.kind} was deleted: the link shows "not found"`;
  return 'Anyone with the link can view it, read-only';
}

/**
 * The count beside the page title. Revoked-included lists count every link. Otherwise the API's
 * `total` counts links not revoked, some of which may point at deleted objects; only the rows
 * loaded show which. With the whole list on this page the count is exact ("3 active · 1 target
 * deleted"); across pages it says how many links there are and how many of this page's are dead,
 * rather than an "active" figure it cannot know. `left`: links revoked on this page since it
 * loaded that have left the server's list.
 */
export function countLabel(
  rows: Pick<ShareListItem, 'revoked_at' | 'target'>[],
  view: { total: number; offset: number; left: number; withRevoked: boolean },
): string {
  if (view.withRevoked) return `${view.total} link${view.total === 1 ? '' : 's'}, revoked included`;
  const dead = rows.filter((r) => shareStatus(r) === 'target deleted').length;
  const whole = view.offset === 0 && rows.length >= view.total;
  if (whole) {
    const active = rows.filter((r) => shareStatus(r) === 'active').length;
    return `${active} active${dead ? ` · ${dead} target deleted` : ''}`;
  }
  const live = view.total - view.left;
  return `${live} link${live === 1 ? '' : 's'}${dead ? ` · ${dead} on this page target deleted` : ''}`;
}

/** The list URL for a page: revoked links only when asked for. */
export function sharesQuery(offset: number, limit: number, includeRevoked: boolean): string {
  return `/api/shares?offset=${offset}&limit=${limit}${includeRevoked ? '&include_revoked=true' : ''}`;
}

export interface PageView {
  /** 1-based first and last row shown (0, 0 when empty). */
  from: number;
  to: number;
  hasPrev: boolean;
  hasNext: boolean;
}

/** The pager for a page loaded at `offset` with `shown` rows out of `total`. */
export function pageView(offset: number, shown: number, total: number): PageView {
  return {
    from: shown ? offset + 1 : 0,
    to: offset + shown,
    hasPrev: offset > 0,
    hasNext: shown > 0 && offset + shown < total,
  };
}

/**
 * Where the next page starts. `left`: links on this page revoked since it loaded that have
 * left the server's list (0 when revoked links are listed too).
 */
export function nextOffset(offset: number, shown: number, left: number): number {
  return Math.max(0, offset + shown - left);
}

export function prevOffset(offset: number, limit: number): number {
  return Math.max(0, offset - limit);
}

/** A link's expiry for the list: "never", "in 6 d", "in 3 h", or "expired 2 h ago". */
export function expiryText(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((t - now) / 1000);
  if (s <= 0) {
    const ago = -s;
    if (ago < 3600) return `expired ${Math.max(1, Math.round(ago / 60))} min ago`;
    if (ago < 86400) return `expired ${Math.round(ago / 3600)} h ago`;
    return `expired ${Math.round(ago / 86400)} d ago`;
  }
  if (s < 3600) return `in ${Math.max(1, Math.round(s / 60))} min`;
  if (s < 86400) return `in ${Math.round(s / 3600)} h`;
  return `in ${Math.round(s / 86400)} d`;
}
