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

/** The password is temporary (generated, or set by an admin): only the "choose a new
 * password" screen is shown until it is changed (the API refuses everything else). */
export function mustChangePassword(): boolean {
  return session.user?.must_change_password === true;
}

/** Observers read only: no edit, save or run controls (lib/caps.ts says why, per object). */
export function canWrite(): boolean {
  return session.user !== null && session.user.role !== 'observer';
}
