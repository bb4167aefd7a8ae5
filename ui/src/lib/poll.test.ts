import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { every } from './poll';

/** A stand-in for `document`: its visibility and its listeners. */
function fakeDocument() {
  const listeners = new Set<() => void>();
  const doc = {
    visibilityState: 'visible' as 'visible' | 'hidden',
    addEventListener: (_: string, fn: () => void) => listeners.add(fn),
    removeEventListener: (_: string, fn: () => void) => listeners.delete(fn),
    set(state: 'visible' | 'hidden') {
      doc.visibilityState = state;
      for (const fn of listeners) fn();
    },
    listeners,
  };
  return doc;
}

describe('every', () => {
  let doc: ReturnType<typeof fakeDocument>;
  beforeEach(() => {
    vi.useFakeTimers();
    doc = fakeDocument();
    vi.stubGlobal('document', doc);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('calls at once, then every interval while visible; never while hidden; at once again when shown', async () => {
    const fn = vi.fn();
    const stop = every(2000, fn);
    await vi.advanceTimersByTimeAsync(0);
    expect(fn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(4000);
    expect(fn).toHaveBeenCalledTimes(3);
    doc.set('hidden');
    await vi.advanceTimersByTimeAsync(60000);
    expect(fn).toHaveBeenCalledTimes(3);
    doc.set('visible');
    await vi.advanceTimersByTimeAsync(0);
    expect(fn).toHaveBeenCalledTimes(4);
    stop();
    await vi.advanceTimersByTimeAsync(10000);
    expect(fn).toHaveBeenCalledTimes(4);
    expect(doc.listeners.size).toBe(0);
  });

  it('does not start while hidden, and waits for a slow call instead of overlapping it', async () => {
    doc.visibilityState = 'hidden';
    let resolve: () => void = () => {};
    let calls = 0;
    const stop = every(1000, () => {
      calls++;
      return new Promise<void>((r) => (resolve = r));
    });
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toBe(0);
    doc.set('visible');
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toBe(1); // still waiting for the first answer
    resolve();
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(2);
    stop();
  });

  it('goes on after a failing call', async () => {
    const fn = vi.fn().mockRejectedValueOnce(new Error('HTTP 500')).mockResolvedValue(undefined);
    const stop = every(1000, fn);
    await vi.advanceTimersByTimeAsync(2000);
    expect(fn).toHaveBeenCalledTimes(3);
    stop();
  });
});
