"""Custom nodes as pipelines see them: ``use`` resolution, usage, and the on-disk store.

:class:`OwnerNodeResolver` is the :class:`dsl.nodespec.NodeResolver` every compile in the API
uses, over one owner's live nodes. :func:`record_uses` stores which node versions a saved
pipeline version pinned; :func:`users_of` turns that into "in use" (the latest version of a live
pipeline, or the pipeline version of a pending or running run). :func:`publish_manifests` writes
the manifests a pipeline version pins into the :class:`ManifestStore` a run reads them from.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, or_, select

from api.errors import Conflict
from api.models.custom_node import CustomNode, CustomNodeUse, CustomNodeVersion
from api.models.pipeline import Pipeline, PipelineVersion
from api.models.run import ACTIVE_STATUSES, Run
from api.models.team import TeamGrant, TeamMember
from api.settings import ApiSettings
from dsl.ir import PipelineIR
from dsl.nodespec import ResolvedNode, ResolveError
from dsl.semver import SemVer, parse_range
from flows.customnodes import CustomNodeManifest, ManifestStore

__all__ = [
    "OwnerNodeResolver",
    "Usage",
    "manifest_of",
    "manifest_store",
    "publish_manifests",
    "record_uses",
    "usable_node_names",
    "users_of",
]


def manifest_store(settings: ApiSettings) -> ManifestStore:
    """The on-disk store flow runs read custom node code from."""
    return ManifestStore(settings.custom_nodes_dir)


def manifest_of(version: CustomNodeVersion) -> CustomNodeManifest:
    """The stored version's manifest."""
    return CustomNodeManifest.model_validate_json(version.manifest_json)


def _live_node(session: Session, owner_id: int, name: str) -> CustomNode | None:
    """The live node ``name`` a pipeline of ``owner_id`` means: their own, else one a team of
    theirs was granted (the oldest, when two teams share a node of that name) — the same rule as
    datasets (:func:`api.services.datasets.dataset_paths`)."""
    own = session.exec(
        select(CustomNode).where(
            CustomNode.owner_id == owner_id,
            CustomNode.name == name,
            col(CustomNode.deleted_at).is_(None),
        )
    ).first()
    if own is not None:
        return own
    return session.exec(
        select(CustomNode)
        .where(
            col(CustomNode.id).in_(_granted_node_ids(owner_id)),
            CustomNode.name == name,
            col(CustomNode.deleted_at).is_(None),
        )
        .order_by(col(CustomNode.id))
    ).first()


def _granted_node_ids(owner_id: int) -> Any:
    """SELECT the ids of custom nodes granted (read or edit) to a team ``owner_id`` is in."""
    return (
        select(TeamGrant.target_id)
        .join(TeamMember, col(TeamMember.team_id) == TeamGrant.team_id)
        .where(TeamMember.user_id == owner_id, TeamGrant.kind == "custom_node")
    )


def usable_node_names(session: Session, owner_id: int) -> list[str]:
    """The names ``use`` resolves for ``owner_id``: their live nodes and team-shared ones."""
    names = session.exec(
        select(CustomNode.name).where(
            or_(
                CustomNode.owner_id == owner_id,
                col(CustomNode.id).in_(_granted_node_ids(owner_id)),
            ),
            col(CustomNode.deleted_at).is_(None),
        )
    ).all()
    return sorted(set(names))


def live_versions(session: Session, node_id: int) -> list[CustomNodeVersion]:
    """A node's live versions, newest (highest) first."""
    rows = session.exec(
        select(CustomNodeVersion).where(
            CustomNodeVersion.node_id == node_id, col(CustomNodeVersion.deleted_at).is_(None)
        )
    ).all()
    return sorted(rows, key=lambda v: SemVer.parse(v.version).key(), reverse=True)


def lookahead_warning(version: CustomNodeVersion, name: str) -> str | None:
    """The AF407 warning of a version whose look-ahead check failed, else None."""
    if version.lookahead_status != "fail":
        return None
    message = json.loads(version.lookahead_json).get("message", "")
    return f"{name}@{version.version} failed the look-ahead check: {message}"


class OwnerNodeResolver:
    """Resolves ``use name@spec`` over one owner's live custom nodes: the highest live version
    in the range wins; a failed look-ahead check becomes a warning."""

    def __init__(self, session: Session, owner_id: int) -> None:
        self.session = session
        self.owner_id = owner_id

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        """The exact version ``use name@spec`` means (:class:`ResolveError` if none)."""
        node = _live_node(self.session, self.owner_id, name)
        if node is None or node.id is None:
            raise ResolveError(
                f"no custom node called {name!r} is yours or shared with a team of yours"
                f"{self._close(name)}"
            )
        try:
            wanted = parse_range(spec)
        except ValueError as exc:
            raise ResolveError(str(exc)) from None
        versions = live_versions(self.session, node.id)
        best = next((v for v in versions if wanted.matches(SemVer.parse(v.version))), None)
        if best is None:
            have = ", ".join(v.version for v in reversed(versions)) or "none"
            raise ResolveError(f"no version of {name} matches {spec} (versions: {have})")
        warning = lookahead_warning(best, name)
        return ResolvedNode.from_manifest(manifest_of(best), (warning,) if warning else ())

    def _close(self, name: str) -> str:
        close = difflib.get_close_matches(name, usable_node_names(self.session, self.owner_id), n=1)
        return f"; did you mean {close[0]!r}?" if close else ""


def record_uses(session: Session, version: PipelineVersion, owner_id: int, ir: PipelineIR) -> None:
    """Store which node versions ``version``'s ``use`` pins resolved to (flushed ``version``)."""
    for pin in ir.uses:
        node = _live_node(session, owner_id, pin.name)
        if node is None:
            continue
        node_version = session.exec(
            select(CustomNodeVersion).where(
                CustomNodeVersion.node_id == node.id,
                CustomNodeVersion.version == pin.version,
                col(CustomNodeVersion.deleted_at).is_(None),
            )
        ).first()
        if node_version is not None and node_version.id is not None:
            session.add(
                CustomNodeUse(pipeline_version_id=version.id or 0, node_version_id=node_version.id)
            )


@dataclass
class Usage:
    """Who uses a node version: live pipelines (latest version) and unfinished runs."""

    pipelines: list[tuple[int, str]] = field(default_factory=list)
    runs: list[tuple[int, str]] = field(default_factory=list)

    def describe(self) -> str:
        """``pipeline 'x' (its latest version), run 7 (running)``."""
        parts = [f"pipeline {name!r} (its latest version)" for _, name in self.pipelines]
        parts += [f"run {run_id} ({status})" for run_id, status in self.runs]
        return ", ".join(parts)


def users_of(session: Session, version_ids: list[int]) -> dict[int, Usage]:
    """Usage per node version id (only versions that are in use appear)."""
    out: dict[int, Usage] = defaultdict(Usage)
    if not version_ids:
        return out
    uses = col(CustomNodeUse.node_version_id).in_(version_ids)
    pipeline_rows = session.exec(
        select(CustomNodeUse.node_version_id, Pipeline.id, Pipeline.name)
        .join(PipelineVersion, col(PipelineVersion.id) == CustomNodeUse.pipeline_version_id)
        .join(
            Pipeline,
            (col(Pipeline.id) == PipelineVersion.pipeline_id)
            & (col(Pipeline.latest_version) == PipelineVersion.number),
        )
        .where(uses, col(Pipeline.deleted_at).is_(None))
        .order_by(col(Pipeline.id))
    ).all()
    for vid, pid, name in pipeline_rows:
        out[vid].pipelines.append((pid or 0, name))
    run_rows = session.exec(
        select(CustomNodeUse.node_version_id, Run.id, Run.status)
        .join(PipelineVersion, col(PipelineVersion.id) == CustomNodeUse.pipeline_version_id)
        .join(
            Run,
            (col(Run.pipeline_id) == PipelineVersion.pipeline_id)
            & (col(Run.version) == PipelineVersion.number),
        )
        .where(uses, col(Run.status).in_(ACTIVE_STATUSES))
        .order_by(col(Run.id))
    ).all()
    for vid, run_id, status in run_rows:
        out[vid].runs.append((run_id or 0, status))
    return out


def publish_manifests(
    session: Session, settings: ApiSettings, owner_id: int, version: PipelineVersion
) -> list[str]:
    """Put every manifest ``version``'s IR pins into the store (idempotent); returns them as
    ``name@version`` (for the audit log: who ran what code).

    409 when a pinned node version has been deleted since: the pipeline must be saved again.
    """
    ir = PipelineIR.from_json(version.ir_json)
    wanted = {(n.type, n.code_hash) for n in ir.nodes if n.runtime != "builtin" and n.code_hash}
    if not wanted:
        return []
    rows = session.exec(
        select(CustomNodeVersion, CustomNode)
        .join(CustomNodeUse, col(CustomNodeUse.node_version_id) == CustomNodeVersion.id)
        .join(CustomNode, col(CustomNode.id) == CustomNodeVersion.node_id)
        .where(CustomNodeUse.pipeline_version_id == version.id)
    ).all()
    found: dict[tuple[str, str], CustomNodeVersion] = {}
    for node_version, node in rows:
        if node_version.deleted_at is None and node.deleted_at is None:
            found[(node.name, node_version.code_hash)] = node_version
    store = manifest_store(settings)
    published: list[str] = []
    for name, code_hash in sorted(wanted):
        pinned = found.get((name, code_hash)) or _by_hash(session, owner_id, name, code_hash)
        if pinned is None:
            raise Conflict(
                f"version {version.number} of this pipeline uses custom node {name!r} "
                f"(code {code_hash[:12]}), which has been deleted; save the pipeline again "
                "to resolve its `use` pins anew"
            )
        store.put(manifest_of(pinned))
        published.append(f"{name}@{pinned.version}")
    return published


def _by_hash(
    session: Session, owner_id: int, name: str, code_hash: str
) -> CustomNodeVersion | None:
    return session.exec(
        select(CustomNodeVersion)
        .join(CustomNode, col(CustomNode.id) == CustomNodeVersion.node_id)
        .where(
            CustomNode.owner_id == owner_id,
            CustomNode.name == name,
            col(CustomNode.deleted_at).is_(None),
            CustomNodeVersion.code_hash == code_hash,
            col(CustomNodeVersion.deleted_at).is_(None),
        )
    ).first()
