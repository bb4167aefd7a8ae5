"""The custom-node registry (docs/custom-nodes.md): nodes with immutable semver versions.

A save validates the whole manifest at the door (422 with every error and where), has a worker
run the look-ahead check in the sandbox (:mod:`api.services.node_lab`; its verdict is stored,
never blocks the save), writes the
manifest into the on-disk store runs read from, and adds a version; an unchanged manifest adds
nothing. Who may see what follows pipelines: owners their own, admins and observers all; the
routes keep observers from writing. ``use`` resolution lives in
:mod:`api.services.node_resolution` (:class:`OwnerNodeResolver`, re-exported here).
"""

from __future__ import annotations

import difflib
import json
import logging
from typing import Any

from sqlmodel import Session, col, func, select

from api.errors import ApiError, Conflict, NotFound
from api.models.common import Page, as_utc, utcnow
from api.models.custom_node import (
    CustomNode,
    CustomNodePublic,
    CustomNodeSummary,
    CustomNodeVersion,
    InUse,
    Lookahead,
    Manifest,
    ManifestChange,
    ManifestIn,
    NodeDiff,
    NodeVersion,
)
from api.models.language import NodeSpec
from api.models.user import User
from api.services import audit, node_lab
from api.services.access import (
    Level,
    caps_for,
    commit_or_conflict,
    edit_granted,
    get_owned,
    username_of,
    visible,
)
from api.services.manifests import catalog_entry, manifest_in_to_manifest
from api.services.node_resolution import (
    OwnerNodeResolver,
    live_versions,
    manifest_of,
    manifest_store,
    users_of,
)
from api.services.sandbox_limits import SandboxBusy, SandboxLimits
from api.settings import ApiSettings
from dsl.semver import SemVer, bump_patch
from flows.customnodes import CustomNodeManifest

__all__ = [
    "OwnerNodeResolver",
    "catalog",
    "create",
    "delete",
    "delete_version",
    "diff",
    "get_node",
    "get_version",
    "list_nodes",
    "list_versions",
    "lookahead_check",
    "public",
    "save",
]

log = logging.getLogger(__name__)
_COMPARED = ("summary", "inputs", "outputs", "params_schema", "resources", "code_format")


def lookahead_check(
    manifest: CustomNodeManifest,
    settings: ApiSettings,
    limits: SandboxLimits | None = None,
    user: User | None = None,
) -> dict[str, Any]:
    """The look-ahead verdict of ``manifest``, checked in the sandbox on a worker, in one of
    ``user``'s sandbox slots when ``limits`` are given. Never raises: no worker or no sandbox →
    ``skipped``, no free slot (after the queue's wait) → ``skipped`` with the limit's sentence,
    anything else going wrong (a timeout included) → ``error``, each with the reason. Call it
    without an open transaction: a worker takes seconds."""
    try:
        if limits is None:
            return node_lab.lookahead(settings, manifest)
        with limits.slot((user.id or 0) if user is not None else 0):
            return node_lab.lookahead(settings, manifest)
    except SandboxBusy as exc:
        return {"status": "skipped", "message": f"the check did not run: {exc.detail}"}
    except node_lab.SandboxMissing as exc:
        reason = str(exc.detail).removeprefix("no sandbox is available to run user code: ")
        return {"status": "skipped", "message": f"no sandbox is available: {reason}"}
    except Exception as exc:  # the check must never block a save
        log.exception("look-ahead check of %s@%s failed", manifest.name, manifest.version)
        detail = exc.detail if isinstance(exc, ApiError) else exc
        return {"status": "error", "message": f"the look-ahead check could not run: {detail}"}


def get_node(
    session: Session, user: User, node_id: int, *, lock: bool = False, level: Level = Level.READ
) -> CustomNode:
    """The live node if ``user`` may see it, else NotFound (also for someone else's); 403 if
    they may see it but not act on it at ``level``."""
    return get_owned(session, user, CustomNode, node_id, "custom node", lock=lock, level=level)


def _version(session: Session, node: CustomNode, version: str) -> CustomNodeVersion:
    row = session.exec(
        select(CustomNodeVersion).where(
            CustomNodeVersion.node_id == node.id,
            CustomNodeVersion.version == version,
            col(CustomNodeVersion.deleted_at).is_(None),
        )
    ).first()
    if row is None:
        raise NotFound(f"version {version} of {node.name} not found")
    return row


def _lookahead(row: CustomNodeVersion) -> Lookahead:
    return Lookahead.model_validate(json.loads(row.lookahead_json))


def _node_version(
    row: CustomNodeVersion, in_use: list[InUse], *, with_code: bool = True
) -> NodeVersion:
    manifest = Manifest.model_validate(json.loads(row.manifest_json))
    if not with_code:
        manifest = manifest.model_copy(update={"code": None})
    return NodeVersion(
        version=row.version,
        code_hash=row.code_hash,
        created_at=as_utc(row.created_at),
        message=row.message,
        manifest=manifest,
        lookahead=_lookahead(row),
        in_use_by=in_use,
    )


def _in_use(session: Session, rows: list[CustomNodeVersion]) -> dict[int, list[InUse]]:
    usage = users_of(session, [r.id for r in rows if r.id is not None])
    return {
        vid: [InUse(pipeline_id=pid, pipeline_name=name) for pid, name in u.pipelines]
        for vid, u in usage.items()
    }


def public(session: Session, node: CustomNode, user: User | None = None) -> CustomNodePublic:
    """The node with its latest version (and what ``user`` may do with it, when given)."""
    latest = _version(session, node, node.latest_version)
    caps = (
        caps_for(
            user, node, edit_grant=bool(edit_granted(session, user, CustomNode, [node.id or 0]))
        )
        if user is not None
        else None
    )
    return CustomNodePublic(
        id=node.id or 0,
        name=node.name,
        owner=username_of(session, node.owner_id),
        language=node.language,  # type: ignore[arg-type]
        created_at=as_utc(node.created_at),
        updated_at=as_utc(node.updated_at),
        version=_node_version(latest, _in_use(session, [latest]).get(latest.id or 0, [])),
        can_edit=caps.can_edit if caps else False,
        can_manage=caps.can_manage if caps else False,
    )


def _ensure_name_free(session: Session, owner_id: int, name: str) -> None:
    taken = session.exec(
        select(CustomNode.id).where(
            CustomNode.owner_id == owner_id,
            CustomNode.name == name,
            col(CustomNode.deleted_at).is_(None),
        )
    ).first()
    if taken is not None:
        raise Conflict(f"you already have a custom node called {name!r}")


def _add_version(
    session: Session,
    settings: ApiSettings,
    node: CustomNode,
    author: User,
    manifest: CustomNodeManifest,
    message: str,
    lookahead: dict[str, Any],
) -> CustomNodeVersion:
    verdict = Lookahead.model_validate(lookahead)
    now = utcnow()
    row = CustomNodeVersion(
        node_id=node.id or 0,
        version=manifest.version,
        manifest_json=manifest.model_dump_json(),
        code_hash=manifest.code_hash(),
        message=message,
        lookahead_status=verdict.status,
        lookahead_json=verdict.model_dump_json(),
        author_id=author.id or 0,
        created_at=now,
    )
    node.latest_version, node.updated_at = manifest.version, now
    session.add(node)
    session.add(row)
    manifest_store(settings).put(manifest)  # before the commit: no version the store lacks
    return row


def create(
    session: Session,
    user: User,
    data: ManifestIn,
    settings: ApiSettings,
    *,
    limits: SandboxLimits | None = None,
) -> CustomNodePublic:
    """A new node with its first version (default ``1.0.0``); 409 on a duplicate name. The
    look-ahead check runs in a sandbox slot of ``limits`` (when given) with no transaction
    open: no database connection is held while a worker runs the node."""
    manifest = manifest_in_to_manifest(data, data.version or "1.0.0", check_builtin=True)
    _ensure_name_free(session, user.id or 0, manifest.name)
    session.commit()  # ends the read-only transaction: its connection goes back to the pool
    verdict = lookahead_check(manifest, settings, limits, user)
    node = CustomNode(
        owner_id=user.id or 0,
        name=manifest.name,
        language=manifest.language,
        latest_version=manifest.version,
    )
    session.add(node)
    session.flush()
    row = _add_version(
        session, settings, node, user, manifest, data.message or "Initial version", verdict
    )
    audit.record(
        session, user, "custom_node.create", "custom_node", node.id,
        name=node.name, version=row.version, code_hash=row.code_hash,
    )  # fmt: skip
    commit_or_conflict(session, f"you already have a custom node called {manifest.name!r}")
    return public(session, node, user)


def _all_versions(session: Session, node: CustomNode) -> list[SemVer]:
    """Every version ever stored, deleted ones too: their numbers are never reused."""
    rows = session.exec(
        select(CustomNodeVersion.version).where(CustomNodeVersion.node_id == node.id)
    ).all()
    return [SemVer.parse(v) for v in rows]


def _same_content(a: CustomNodeManifest, b: CustomNodeManifest) -> bool:
    return a.model_dump(exclude={"version"}) == b.model_dump(exclude={"version"})


def save(
    session: Session,
    user: User,
    node_id: int,
    data: ManifestIn,
    settings: ApiSettings,
    *,
    limits: SandboxLimits | None = None,
) -> CustomNodePublic:
    """Save ``data`` as the node's next version; an unchanged manifest adds nothing.

    409 when ``version`` is not greater than every version so far; 422 when ``name`` or
    ``language`` differ from the node's.
    """
    node = get_node(session, user, node_id, level=Level.EDIT)
    latest = manifest_of(_version(session, node, node.latest_version))
    highest = max(_all_versions(session, node))
    manifest = manifest_in_to_manifest(
        data, data.version or bump_patch(str(highest)), fixed=(node.name, node.language)
    )
    if _same_content(manifest, latest) and data.version in (None, latest.version):
        session.rollback()
        return public(session, node, user)
    if SemVer.parse(manifest.version) <= highest:
        raise Conflict(
            f"version {manifest.version} is not greater than {highest}, the highest version of "
            f"{node.name} so far; versions never change"
        )
    session.commit()  # ends the read-only transaction: no connection held during the check
    verdict = lookahead_check(manifest, settings, limits, user)  # slow: before the row lock
    node = get_node(session, user, node_id, lock=True, level=Level.EDIT)
    if SemVer.parse(manifest.version) <= max(_all_versions(session, node)):
        raise Conflict("the node was changed concurrently; reload and retry")
    row = _add_version(session, settings, node, user, manifest, data.message or "", verdict)
    audit.record(
        session, user, "custom_node.update", "custom_node", node.id,
        version=row.version, code_hash=row.code_hash,
    )  # fmt: skip
    commit_or_conflict(session, f"version {manifest.version} of {node.name} already exists")
    return public(session, node, user)


def list_nodes(session: Session, user: User, *, offset: int, limit: int) -> Page[CustomNodeSummary]:
    """Visible live nodes, newest first."""
    where = visible(CustomNode, user)
    rows = session.exec(
        select(CustomNode, User.username)
        .join(User, col(User.id) == CustomNode.owner_id)
        .where(*where)
        .order_by(col(CustomNode.created_at).desc(), col(CustomNode.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.exec(select(func.count()).select_from(CustomNode).where(*where)).one()
    granted = edit_granted(session, user, CustomNode, [n.id or 0 for n, _ in rows])
    items = []
    for node, username in rows:
        versions = live_versions(session, node.id or 0)
        latest = versions[0]
        items.append(
            CustomNodeSummary(
                id=node.id or 0,
                name=node.name,
                owner=username,
                language=node.language,  # type: ignore[arg-type]
                summary=manifest_of(latest).summary,
                latest_version=latest.version,
                versions=len(versions),
                lookahead_status=latest.lookahead_status,  # type: ignore[arg-type]
                created_at=as_utc(node.created_at),
                updated_at=as_utc(node.updated_at),
                **vars(caps_for(user, node, edit_grant=node.id in granted)),
            )
        )
    return Page(items=items, total=total)


def list_versions(session: Session, user: User, node_id: int) -> list[NodeVersion]:
    """The live versions without their code, newest first."""
    node = get_node(session, user, node_id)
    rows = live_versions(session, node.id or 0)
    in_use = _in_use(session, rows)
    return [_node_version(r, in_use.get(r.id or 0, []), with_code=False) for r in rows]


def get_version(session: Session, user: User, node_id: int, version: str) -> NodeVersion:
    """One live version with its code."""
    row = _version(session, get_node(session, user, node_id), version)
    return _node_version(row, _in_use(session, [row]).get(row.id or 0, []))


def diff(session: Session, user: User, node_id: int, a: str, b: str) -> NodeDiff:
    """Version ``a`` → ``b``: the code as a unified diff, other fields as changes."""
    node = get_node(session, user, node_id)
    ma, mb = manifest_of(_version(session, node, a)), manifest_of(_version(session, node, b))
    lines = difflib.unified_diff(
        ma.code.splitlines(keepends=True),
        mb.code.splitlines(keepends=True),
        fromfile=f"{node.name}@{a}",
        tofile=f"{node.name}@{b}",
    )
    unified = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    da, db = ma.model_dump(mode="json"), mb.model_dump(mode="json")
    changes = [
        ManifestChange.model_validate({"field": f, "from": da[f], "to": db[f]})
        for f in _COMPARED
        if da[f] != db[f]
    ]
    return NodeDiff(from_version=a, to_version=b, unified=unified, manifest_changes=changes)


def delete_version(session: Session, user: User, node_id: int, version: str) -> None:
    """Delete one version (its number is never reused); 409 while it is in use or when it is
    the node's only version."""
    node = get_node(session, user, node_id, lock=True, level=Level.MANAGE)
    row = _version(session, node, version)
    usage = users_of(session, [row.id or 0]).get(row.id or 0)
    if usage is not None:
        raise Conflict(f"{node.name}@{version} is in use by {usage.describe()}")
    remaining = [v for v in live_versions(session, node.id or 0) if v.id != row.id]
    if not remaining:
        raise Conflict(f"{version} is the only version of {node.name}: delete the node instead")
    row.deleted_at = node.updated_at = utcnow()
    node.latest_version = remaining[0].version
    session.add(row)
    session.add(node)
    audit.record(
        session, user, "custom_node.delete_version", "custom_node", node.id,
        name=node.name, version=version, code_hash=row.code_hash,
    )  # fmt: skip
    session.commit()


def delete(session: Session, user: User, node_id: int) -> None:
    """Soft delete: gone everywhere, the name free again; 409 while any version is in use."""
    node = get_node(session, user, node_id, lock=True, level=Level.MANAGE)
    rows = live_versions(session, node.id or 0)
    usage = users_of(session, [r.id or 0 for r in rows])
    if usage:
        by_version = {r.id: r.version for r in rows}
        used = "; ".join(f"{by_version[vid]}: {u.describe()}" for vid, u in usage.items())
        raise Conflict(f"{node.name} is in use ({used})")
    node.deleted_at = utcnow()
    session.add(node)
    audit.record(session, user, "custom_node.delete", "custom_node", node.id, name=node.name)
    session.commit()


def catalog(session: Session, user: User) -> list[NodeSpec]:
    """The caller's own live custom nodes (latest version each), as catalog entries."""
    nodes = session.exec(
        select(CustomNode)
        .where(CustomNode.owner_id == user.id, col(CustomNode.deleted_at).is_(None))
        .order_by(col(CustomNode.name))
    ).all()
    return [catalog_entry(n.name, _version(session, n, n.latest_version)) for n in nodes]
