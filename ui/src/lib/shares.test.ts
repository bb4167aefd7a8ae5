import { describe, expect, it } from 'vitest';
import { nextOffset, pageView, prevOffset, shareStatus, sharesQuery, subName, targetLabel } from './shares';
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
    const parts = targetLabel({ kind: 'pipeline', target_id: 'a/b', target: target({ pipeline_id: 'x?y', pipeline_title: '<img src=x>' }) });
    expect(parts).toEqual([{ text: '<img src=x>', href: '/pipelines/x%3Fy' }]);
    expect(targetLabel({ kind: 'run', target_id: '1/2', target: target({ run_id: '1/2' }) })[0].href).toBe('/runs/1%2F2');
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
    expect(shareStatus({ revoked_at: null })).toBe('active');
    expect(shareStatus({ revoked_at: '2024-01-01T00:00:00Z' })).toBe('revoked');
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
