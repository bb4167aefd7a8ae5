import { describe, expect, it } from 'vitest';
import { subName, nextOffset, ownerOf, pageView, prevOffset, shareStatus, targetKey, targetLabel, type TargetInfo } from './shares';

const ok = (over: Partial<Extract<TargetInfo, { state: 'ok' }>> = {}): TargetInfo => ({
  state: 'ok',
  pipelineId: 3,
  pipelineName: 'sma_crossover',
  pipelineTitle: 'SMA',
  pipelineOwner: 'alice',
  ...over,
});

describe('targetLabel', () => {
  it('names a shared pipeline, linked', () => {
    expect(targetLabel({ kind: 'pipeline', target_id: 3 }, ok())).toEqual([{ text: 'SMA', href: '/pipelines/3' }]);
    expect(targetLabel({ kind: 'pipeline', target_id: 3 }, ok({ pipelineTitle: null }))).toEqual([{ text: 'sma_crossover', href: '/pipelines/3' }]);
  });
  it('names a shared run and its pipeline, both linked', () => {
    expect(targetLabel({ kind: 'run', target_id: 12 }, ok({ runId: 12 }))).toEqual([
      { text: 'Run #12', href: '/runs/12' },
      { text: 'of' },
      { text: 'SMA', href: '/pipelines/3' },
    ]);
  });
  it('falls back to the id while loading or on errors', () => {
    expect(targetLabel({ kind: 'pipeline', target_id: 3 }, undefined)).toEqual([{ text: 'Pipeline #3', href: '/pipelines/3' }]);
    expect(targetLabel({ kind: 'run', target_id: 4 }, { state: 'error', message: 'x' })).toEqual([{ text: 'Run #4', href: '/runs/4' }]);
  });
  it('says when the target is gone, without a link', () => {
    expect(targetLabel({ kind: 'pipeline', target_id: 3 }, { state: 'gone' })).toEqual([{ text: 'Pipeline #3' }, { text: '(pipeline deleted)' }]);
    expect(targetLabel({ kind: 'run', target_id: 4 }, { state: 'gone' })).toEqual([{ text: 'Run #4' }, { text: '(run deleted)' }]);
  });
  it('keeps user text as text and encodes ids in hrefs', () => {
    const parts = targetLabel({ kind: 'pipeline', target_id: 'a/b' }, ok({ pipelineId: 'x?y', pipelineTitle: '<img src=x>' }));
    expect(parts).toEqual([{ text: '<img src=x>', href: '/pipelines/x%3Fy' }]);
    expect(targetLabel({ kind: 'run', target_id: '1/2' }, undefined)[0].href).toBe('/runs/1%2F2');
  });
});

describe('subName', () => {
  it("shows the name under a title only when they differ", () => {
    expect(subName(ok())).toBe('sma_crossover');
    expect(subName(ok({ pipelineTitle: 'sma_crossover' }))).toBeNull();
    expect(subName(ok({ pipelineTitle: null }))).toBeNull();
    expect(subName({ state: 'gone' })).toBeNull();
    expect(subName(undefined)).toBeNull();
  });
});

describe('targetKey / shareStatus / ownerOf', () => {
  it('keys by kind and id', () => {
    expect(targetKey({ kind: 'run', target_id: 5 })).toBe('run:5');
    expect(targetKey({ kind: 'pipeline', target_id: 5 })).toBe('pipeline:5');
  });
  it('is revoked when revoked here or when the API says so', () => {
    expect(shareStatus({}, new Set(), 't')).toBe('active');
    expect(shareStatus({}, new Set(['t']), 't')).toBe('revoked');
    expect(shareStatus({ revoked_at: '2024-01-01T00:00:00Z' }, new Set(), 't')).toBe('revoked');
  });
  it("prefers the API's owner, else the pipeline's", () => {
    expect(ownerOf({ owner: 'bob' }, ok())).toEqual({ text: 'bob', byPipeline: false });
    expect(ownerOf({}, ok())).toEqual({ text: 'alice', byPipeline: true });
    expect(ownerOf({}, { state: 'gone' })).toEqual({ text: '—', byPipeline: false });
    expect(ownerOf({}, undefined)).toEqual({ text: '—', byPipeline: false });
  });
});

describe('paging', () => {
  it('shows the range and which way there is more', () => {
    expect(pageView(0, 25, 60)).toEqual({ from: 1, to: 25, hasPrev: false, hasNext: true });
    expect(pageView(25, 25, 60)).toEqual({ from: 26, to: 50, hasPrev: true, hasNext: true });
    expect(pageView(50, 10, 60)).toEqual({ from: 51, to: 60, hasPrev: true, hasNext: false });
    expect(pageView(0, 0, 0)).toEqual({ from: 0, to: 0, hasPrev: false, hasNext: false });
  });
  it('does not skip links when some on this page were revoked', () => {
    // 25 shown at 0, 2 revoked: the server's 26th live link is now at offset 23
    expect(nextOffset(0, 25, 2)).toBe(23);
    expect(nextOffset(25, 25, 0)).toBe(50);
    expect(prevOffset(23, 25)).toBe(0);
    expect(prevOffset(50, 25)).toBe(25);
  });
});
