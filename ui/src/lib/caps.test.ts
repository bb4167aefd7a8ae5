import { describe, expect, it } from 'vitest';
import { canCreate, canEdit, canManage, canTestRun } from './caps';

const admin = { role: 'admin' as const };
const dev = { role: 'developer' as const };
const observer = { role: 'observer' as const };

describe('caps', () => {
  it('observers change nothing, whatever the object says', () => {
    expect(canCreate(observer, 'pipeline')).toEqual({ ok: false, why: 'Observers can read but not change pipelines.' });
    expect(canEdit(observer, { can_edit: true }, 'dataset').why).toBe('Observers can read but not change datasets.');
    expect(canManage(observer, { can_manage: true }, 'custom_node').why).toBe('Observers can read but not change custom nodes.');
    expect(canTestRun(observer).ok).toBe(false);
  });
  it('a team read grant: read only, and the owner is named', () => {
    const shared = { owner: 'alice', can_edit: false, can_manage: false };
    expect(canEdit(dev, shared, 'pipeline')).toEqual({
      ok: false,
      why: 'You can read this pipeline through a team but not change it: ask its owner (alice) for edit access.',
    });
    expect(canManage(dev, shared, 'pipeline').why).toBe('Only the owner of this pipeline (alice) or an admin can rename, delete or share it.');
  });
  it('a team edit grant: edit but not manage', () => {
    const shared = { owner: 'alice', can_edit: true, can_manage: false };
    expect(canEdit(dev, shared, 'custom_node').ok).toBe(true);
    expect(canManage(dev, shared, 'custom_node').ok).toBe(false);
  });
  it('owners and admins do everything; new objects (no flags) are the caller’s', () => {
    expect(canManage(admin, { can_edit: true, can_manage: true }, 'pipeline').ok).toBe(true);
    expect(canEdit(dev, {}, 'pipeline').ok).toBe(true);
    expect(canCreate(dev, 'dataset').ok).toBe(true);
    expect(canCreate(null, 'dataset').ok).toBe(false);
  });
});

describe('caps of the live side', () => {
  it('observers see strategies and instances but change nothing', () => {
    expect(canCreate(observer, 'strategy').why).toBe('Observers can read but not change strategies.');
    expect(canEdit(observer, { can_edit: true }, 'instance').why).toBe('Observers can read but not change strategy instances.');
  });
  it('someone else’s instance: only its owner or an admin changes it (no team grants)', () => {
    expect(canEdit(dev, { owner: 'alice', can_edit: false }, 'instance')).toEqual({
      ok: false,
      why: 'Only the owner of this instance (alice) or an admin can change it.',
    });
    expect(canEdit(admin, { owner: 'alice', can_edit: true }, 'strategy').ok).toBe(true);
  });
});
