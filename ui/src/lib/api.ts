/**
 * The one fetch wrapper: JSON in and out, the bearer token on every call, `{detail}` errors
 * turned into `ApiError`, a 401 signs the user out.
 */
import { session, signOut } from './session.svelte';
import { navigate } from './router.svelte';
import type { Diagnostic } from './types';

export class ApiError extends Error {
  constructor(
    public status: number,
    public detail: unknown,
  ) {
    super(messageOf(status, detail));
  }

  /** DSL diagnostics carried by a 422, if any. */
  get diagnostics(): Diagnostic[] {
    const d = this.detail as { diagnostics?: Diagnostic[] } | null;
    return Array.isArray(d?.diagnostics) ? d.diagnostics : [];
  }
}

function messageOf(status: number, detail: unknown): string {
  if (typeof detail === 'string') return detail;
  if (detail && typeof detail === 'object') {
    const d = detail as { message?: unknown; msg?: unknown };
    if (typeof d.message === 'string') return d.message;
    if (Array.isArray(detail)) {
      // FastAPI's request validation errors: [{loc, msg, type}]
      return detail.map((e: { loc?: unknown[]; msg?: string }) => `${(e.loc ?? []).join('.')}: ${e.msg}`).join('; ');
    }
  }
  return `HTTP ${status}`;
}

export function authHeaders(): Record<string, string> {
  return session.token ? { Authorization: `Bearer ${session.token}` } : {};
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders() };
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  if (res.status === 401 && !path.startsWith('/api/auth/login') && !path.startsWith('/api/shared/')) {
    signOut();
    navigate('/login');
  }
  if (!res.ok) {
    let detail: unknown = null;
    try {
      detail = (await res.json()).detail;
    } catch {
      detail = res.statusText || null;
    }
    throw new ApiError(res.status, detail);
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: <T = void>(path: string) => request<T>('DELETE', path),
};

/** Lists come as `{items, total}` (paged routes) or as a bare array: accept both. */
export function items<T>(x: T[] | { items: T[] } | null | undefined): T[] {
  if (!x) return [];
  return Array.isArray(x) ? x : (x.items ?? []);
}

/** Download an authenticated file (exports) by fetching it and saving the blob. */
export async function download(path: string, filename: string): Promise<void> {
  const res = await fetch(path, { headers: authHeaders() });
  if (!res.ok) throw new ApiError(res.status, (await res.json().catch(() => null))?.detail ?? res.statusText);
  saveBlob(await res.blob(), filename);
}

export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
