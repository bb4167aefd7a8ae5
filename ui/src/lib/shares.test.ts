import { describe, expect, it } from 'vitest';
import { countLabel, expiryText, nextOffset, pageView, prevOffset, shareStatus, sharesQuery, statusHint, subName, targetLabel } from './shares';
import type { ShareTarget } from './types';

const target = (over: Partial<ShareTarget> = {}): ShareTarget => ({
  pipeline_id: 3,
  pipeline_name: 'sma_crossover',
  pipeline_title: 'SMA',
  run_id: null,
  ...over,
});

describe('targetLabel', () => {
  it('names a shared pipeline, linked', () => {
    expect(targetLabel({ kind: 'pipeline', target_id: 3, target: target() })).toEqual([{ text: 'SMA', href: '/pipelines/3' }]);
    expect(targetLabel({ kind: 'pipeline', target_id: 3, target: target({ pipeline_title: null }) })).toEqual([
      { text: 'sma_crossover', href: '/pipelines/3' },
    ]);
  });
  it('names a shared run and its pipeline, both linked', () => {
    expect(targetLabel({ kind: 'run', target_id: 12, target: target({ pipeline_id: 4, run_id: 12 }) })).toEqual([
      { text: 'Run #12', href: '/runs/12' },
      { text: 'of' },
      { text: 'SMA', href: '/pipelines/4' },
    ]);
  });
  it('says "(deleted)", without a link, once the target is gone', () => {
    expect(targetLabel({ kind: 'pipeline', target_id: 3, target: null })).toEqual([{ text: 'Pipeline #3' }, { text: '(deleted)' }]);
    expect(targetLabel({ kind: 'run', target_id: 4, target: null })).toEqual([{ text: 'Run #4' }, { text: '(deleted)' }]);
  });
  it('keeps user text as text and encodes ids in hrefs', () => {
    // Ids are integers in the API's schema; the hrefs encode them anyway (a defence, tested
    // with strings the types do not allow).
    const id = (s: string) => s as unknown as number;
    const parts = targetLabel({ kind: 'pipeline', target_id: id('a/b'), target: target({ pipeline_id: id('x?y'), pipeline_title: '<img src=x>' }) });
    expect(parts).toEqual([{ text: '<img src=x>', href: '/pipelines/x%3Fy' }]);
    expect(targetLabel({ kind: 'run', target_id: id('1/2'), target: target({ run_id: id('1/2') }) })[0].href).toBe('/runs/1%2F2');
  });
});

describe('subName', () => {
  it('shows the name under a title only when they differ', () => {
    expect(subName({ target: target() })).toBe('sma_crossover');
    expect(subName({ target: target({ pipeline_title: 'sma_crossover' }) })).toBeNull();
    expect(subName({ target: target({ pipeline_title: null }) })).toBeNull();
    expect(subName({ target: null })).toBeNull();
  });
});

describe('shareStatus / sharesQuery', () => {
  it('is revoked when the link has a revoked time', () => {
    expect(shareStatus({ revoked_at: null, target: target() })).toBe('active');
    expect(shareStatus({ revoked_at: '2024-01-01T00:00:00Z', target: target() })).toBe('revoked');
  });
  it('is "target deleted", not active, once what it shared is gone', () => {
    expect(shareStatus({ revoked_at: null, target: null })).toBe('target deleted');
    // revoked says more: the link was turned off on purpose
    expect(shareStatus({ revoked_at: '2024-01-01T00:00:00Z', target: null })).toBe('revoked');
  });
  it('explains each status in its tooltip', () => {
    expect(statusHint({ kind: 'run', revoked_at: null, target: null })).toBe('The shared run was deleted: the link shows "not found"');
    expect(statusHint({ kind: 'pipeline', revoked_at: 'x', target: null })).toMatch(/^Revoked/);
    expect(statusHint({ kind: 'pipeline', revoked_at: null, target: target() })).toMatch(/read-only/);
  });
  it('asks for revoked links only when they are shown', () => {
    expect(sharesQuery(0, 25, false)).toBe('/api/shares?offset=0&limit=25');
    expect(sharesQuery(25, 25, true)).toBe('/api/shares?offset=25&limit=25&include_revoked=true');
  });
});

describe('paging', () => {
  it('shows the range and which way there is more', () => {
    expect(pageView(0, 25, 60)).toEqual({ from: 1, to: 25, hasPrev: false, hasNext: true });
    expect(pageView(25, 25, 60)).toEqual({ from: 26, to: 50, hasPrev: true, hasNext: true });
    expect(pageView(50, 10, 60)).toEqual({ from: 51, to: 60, hasPrev: true, hasNext: false });
    expect(pageView(0, 0, 0)).toEqual({ from: 0, to: 0, hasPrev: false, hasNext: false });
  });
  it('does not skip links when some on this page were revoked and left the list', () => {
    // 25 shown at 0, 2 revoked: the server's 26th live link is now at offset 23
    expect(nextOffset(0, 25, 2)).toBe(23);
    expect(nextOffset(25, 25, 0)).toBe(50);
    expect(prevOffset(23, 25)).toBe(0);
    expect(prevOffset(50, 25)).toBe(25);
  });
});

describe('countLabel', () => {
  const live = { revoked_at: null, target: target() };
  const dead = { revoked_at: null, target: null };
  const revoked = { revoked_at: '2024-01-01T00:00:00Z', target: target() };
  const view = (over: Partial<Parameters<typeof countLabel>[1]> = {}) => ({ total: 0, offset: 0, left: 0, withRevoked: false, ...over });

  it('does not count links to deleted objects as active', () => {
    expect(countLabel([live, dead, live], view({ total: 3 }))).toBe('2 active · 1 target deleted');
    expect(countLabel([dead], view({ total: 1 }))).toBe('0 active · 1 target deleted');
    expect(countLabel([live, live], view({ total: 2 }))).toBe('2 active');
    expect(countLabel([], view())).toBe('0 active');
  });
  it('drops links revoked on this page from the active count', () => {
    expect(countLabel([revoked, live, dead], view({ total: 3, left: 1 }))).toBe('1 active · 1 target deleted');
  });
  it('claims no active figure when other pages are not loaded', () => {
    const page = [live, dead, ...Array.from({ length: 23 }, () => live)];
    expect(countLabel(page, view({ total: 60 }))).toBe('60 links · 1 on this page target deleted');
    expect(countLabel(page.slice(0, 10), view({ total: 60, offset: 50 }))).toBe('60 links · 1 on this page target deleted');
    expect(countLabel([live, revoked], view({ total: 30, left: 1 }))).toBe('29 links');
  });
  it('counts every link when revoked ones are listed', () => {
    expect(countLabel([revoked, dead], view({ total: 2, withRevoked: true }))).toBe('2 links, revoked included');
    expect(countLabel([revoked], view({ total: 1, withRevoked: true }))).toBe('1 link, revoked included');
  });
});

describe('expiry', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');
  it('says when a link stops working, or that it did', () => {
    expect(expiryText(null, now)).toBe('never');
    expect(expiryText('2026-12-11T12:00:00Z', now)).toBe('in 7 d');
    expect(expiryText('2026-12-04T15:00:00Z', now)).toBe('in 3 h');
    expect(expiryText('2026-12-04T12:20:00Z', now)).toBe('in 20 min');
    expect(expiryText('2026-12-04T10:00:00Z', now)).toBe('expired 2 h ago');
    expect(expiryText('2026-12-01T12:00:00Z', now)).toBe('expired 3 d ago');
  });
  it('an expired link is "expired" unless revoked', () => {
    const t = { pipeline_id: 1, pipeline_name: 'p', pipeline_title: null, run_id: null };
    expect(shareStatus({ revoked_at: null, target: t, expired: true })).toBe('expired');
    expect(shareStatus({ revoked_at: 'x', target: t, expired: true })).toBe('revoked');
    expect(statusHint({ kind: 'pipeline', revoked_at: null, target: t, expired: true })).toMatch(/^Expired/);
  });
});
