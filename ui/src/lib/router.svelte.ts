/**
 * A small history-API router: the current path and query as state, `navigate()`, and a click
 * handler that turns same-origin `<a href="/...">` clicks into client-side navigation.
 */

export const route = $state<{ path: string; query: URLSearchParams }>({
  path: typeof location !== 'undefined' ? location.pathname : '/',
  query: new URLSearchParams(typeof location !== 'undefined' ? location.search : ''),
});

function sync(): void {
  route.path = location.pathname;
  route.query = new URLSearchParams(location.search);
}

let guard: (() => boolean) | null = null;

/** A page with unsaved work can veto in-app navigation (`guard` returns false to stay). */
export function setNavigationGuard(fn: (() => boolean) | null): void {
  guard = fn;
}

/** Guard unsaved work while a page is mounted: the browser asks before the tab closes or
 * reloads, and in-app navigation confirms ``Leave this <what>? ...``. Returns the undo (for
 * ``onMount``'s cleanup). */
export function guardUnsaved(isDirty: () => boolean, what: string): () => void {
  const onLeave = (e: BeforeUnloadEvent) => {
    if (isDirty()) e.preventDefault();
  };
  window.addEventListener('beforeunload', onLeave);
  setNavigationGuard(
    () => !isDirty() || confirm(`Leave this ${what}? Your unsaved changes will be lost.`),
  );
  return () => {
    setNavigationGuard(null);
    window.removeEventListener('beforeunload', onLeave);
  };
}

export function navigate(to: string, replace = false): void {
  const url = new URL(to, location.href);
  if (guard && !guard()) return;
  if (url.pathname + url.search === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', url.pathname + url.search + url.hash);
  else history.pushState(null, '', url.pathname + url.search + url.hash);
  sync();
  window.scrollTo(0, 0);
}

export function startRouter(): () => void {
  const onPop = () => sync();
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download')) return;
    const href = a.getAttribute('href');
    if (!href || !href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/')) return;
    e.preventDefault();
    navigate(href);
  };
  window.addEventListener('popstate', onPop);
  document.addEventListener('click', onClick);
  return () => {
    window.removeEventListener('popstate', onPop);
    document.removeEventListener('click', onClick);
  };
}

export { match } from './match';
