/**
 * Polling that stops when nobody looks: `every(ms, fn)` calls `fn` now and then every `ms` while
 * the page is visible (`document.visibilityState`), again as soon as it becomes visible, and
 * never while it is hidden; one call at a time (a slow answer is not overtaken). Returns the
 * stop function (a component's `onMount` / `$effect` cleanup). The live dashboard's widgets are
 * rendered on demand only (seed 001 §10): a hidden tab must not keep asking for them.
 */
export function every(ms: number, fn: () => Promise<unknown> | unknown): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  let busy = false;

  const visible = () => typeof document === 'undefined' || document.visibilityState === 'visible';

  async function tick() {
    timer = null;
    if (stopped || !visible()) return; // resumed by the visibility change
    if (!busy) {
      busy = true;
      try {
        await fn();
      } catch {
        /* the caller shows its own errors; polling goes on */
      } finally {
        busy = false;
      }
    }
    if (!stopped && visible() && timer === null) timer = setTimeout(tick, ms);
  }

  function onVisibility() {
    if (stopped) return;
    if (visible()) {
      if (timer !== null) clearTimeout(timer);
      void tick();
    } else if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
  }

  document.addEventListener('visibilitychange', onVisibility);
  void tick();
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
