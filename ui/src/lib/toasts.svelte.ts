/** Toast notifications: `toast.success("...")` etc.; shown by <Toasts/>. */

export type ToastKind = 'info' | 'success' | 'warning' | 'error';
export interface Toast {
  id: number;
  kind: ToastKind;
  message: string;
  href?: string;
}

export const toasts = $state<Toast[]>([]);
let next = 1;

function push(kind: ToastKind, message: string, href?: string, ms = kind === 'error' ? 8000 : 4500): void {
  const id = next++;
  toasts.push({ id, kind, message, href });
  if (toasts.length > 4) toasts.splice(0, toasts.length - 4); // keep the newest few
  setTimeout(() => dismiss(id), ms);
}

export function dismiss(id: number): void {
  const i = toasts.findIndex((t) => t.id === id);
  if (i >= 0) toasts.splice(i, 1);
}

export const toast = {
  info: (m: string, href?: string) => push('info', m, href),
  success: (m: string, href?: string) => push('success', m, href),
  warning: (m: string, href?: string) => push('warning', m, href),
  error: (m: unknown, href?: string) => push('error', m instanceof Error ? m.message : String(m), href),
};
