/**
 * What the signed-in user may do with an object, and why not: the one place the UI decides
 * which controls are enabled. The API sends `can_edit` / `can_manage` on every pipeline,
 * dataset and custom node (role + ownership + team grants, `api/services/access.py`); this
 * turns them into a yes/no with a sentence for the tooltip of a disabled control.
 */
import type { User } from './types';

export type Kind = 'pipeline' | 'dataset' | 'custom_node' | 'strategy' | 'instance' | 'stream';

/** `ok` false: the control is disabled and `why` is its tooltip. */
export interface Cap {
  ok: boolean;
  why: string;
}

const PLURAL: Record<Kind, string> = {
  pipeline: 'pipelines',
  dataset: 'datasets',
  custom_node: 'custom nodes',
  strategy: 'strategies',
  instance: 'strategy instances',
  stream: 'stream deployments',
};
const SINGULAR: Record<Kind, string> = { pipeline: 'pipeline', dataset: 'dataset', custom_node: 'node', strategy: 'strategy', instance: 'instance', stream: 'stream deployment' };
/** Strategies, instances and stream deployments have no team grants: only their owner and
 * admins change them. */
const OWNER_ONLY = new Set<Kind>(['strategy', 'instance', 'stream']);

const YES: Cap = { ok: true, why: '' };

/** What an object carries about the caller's rights (absent: the caller's own new object). */
export interface Guarded {
  owner?: string;
  can_edit?: boolean;
  can_manage?: boolean;
}

function roleBlock(user: Pick<User, 'role'> | null, kind: Kind): Cap | null {
  if (!user) return { ok: false, why: 'Sign in to change anything.' };
  if (user.role === 'observer') return { ok: false, why: `Observers can read but not change ${PLURAL[kind]}.` };
  return null;
}

/** Create a new pipeline / upload a dataset / write a node: every role but observer. */
export function canCreate(user: Pick<User, 'role'> | null, kind: Kind): Cap {
  return roleBlock(user, kind) ?? YES;
}

/** Save, restore, run, schedule (a pipeline); save a version (a node); delete (a dataset). */
export function canEdit(user: Pick<User, 'role'> | null, obj: Guarded, kind: Kind): Cap {
  const blocked = roleBlock(user, kind);
  if (blocked) return blocked;
  if (obj.can_edit === false) {
    const owner = obj.owner ? ` (${obj.owner})` : '';
    if (OWNER_ONLY.has(kind)) return { ok: false, why: `Only the owner of this ${SINGULAR[kind]}${owner} or an admin can change it.` };
    return { ok: false, why: `You can read this ${SINGULAR[kind]} through a team but not change it: ask its owner${owner} for edit access.` };
  }
  return YES;
}

/** Rename, delete, share by link, share with teams: the owner or an admin. */
export function canManage(user: Pick<User, 'role'> | null, obj: Guarded, kind: Kind): Cap {
  const blocked = roleBlock(user, kind);
  if (blocked) return blocked;
  if (obj.can_manage === false) {
    const owner = obj.owner ? ` (${obj.owner})` : '';
    return { ok: false, why: `Only the owner of this ${SINGULAR[kind]}${owner} or an admin can rename, delete or share it.` };
  }
  return YES;
}

/** Test-run a node's code (runs on a worker): every role but observer. */
export function canTestRun(user: Pick<User, 'role'> | null): Cap {
  if (user?.role === 'observer') return { ok: false, why: 'Observers can read nodes but not run their code.' };
  return user ? YES : { ok: false, why: 'Sign in to run a node.' };
}

/** Admin pages (users, teams). */
export function isAdmin(user: Pick<User, 'role'> | null): boolean {
  return user?.role === 'admin';
}
