/** Who is signed in: the bearer token (kept in localStorage) and the user it belongs to. */
import type { User } from './types';

const KEY = 'alphaforge.token';

export const session = $state<{ token: string | null; user: User | null }>({
  token: typeof localStorage !== 'undefined' ? localStorage.getItem(KEY) : null,
  user: null,
});

export function signIn(token: string, user: User): void {
  session.token = token;
  session.user = user;
  localStorage.setItem(KEY, token);
}

export function signOut(): void {
  session.token = null;
  session.user = null;
  localStorage.removeItem(KEY);
}

/** Observers read only: no edit, save or run controls. */
export function canWrite(): boolean {
  return session.user !== null && session.user.role !== 'observer';
}
