"""Pipelines: immutable versions, history, diff, restore, fork, rename and soft delete.

Every change of source adds a :class:`PipelineVersion` whose IR was compiled once, here; an
unchanged source adds nothing. Who may see what: owners their own, admins and observers all
(observers never reach the writing functions: the routes refuse them with 403). Anything a
caller may not see is reported exactly like something that does not exist (404).
"""

from __future__ import annotations

import difflib
import re

from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from api.errors import Conflict, NotFound, Unprocessable
from api.models.common import Page, as_utc, utcnow
from api.models.pipeline import (
    IDENTIFIER_PATTERN,
    NAME_MAX,
    TITLE_MAX,
    DiffResponse,
    Pipeline,
    PipelineCreate,
    PipelinePublic,
    PipelineSummary,
    PipelineVersion,
    VersionPublic,
    VersionSummary,
)
from api.models.run import Run, RunSummary
from api.models.user import User
from api.services import audit, datasets
from api.services.access import (
    Level,
    caps_for,
    commit_or_conflict,
    edit_granted,
    get_owned,
    username_of,
    visible,
)
from api.services.catalog import OwnerDatasetResolver
from api.services.language import Compiled, compile_text, require_ir
from api.services.node_resolution import OwnerNodeResolver, record_uses
from api.settings import ApiSettings
from dsl.compiler import DatasetSeverity, with_title
from dsl.ir import PipelineIR
from live.strategyrefs import StoreStrategyResolver
from live.tables import Strategy


def compile_for(
    session: Session,
    source: str,
    owner_id: int,
    settings: ApiSettings,
    *,
    dataset_severity: DatasetSeverity = "warning",
) -> Compiled:
    """Compile ``source`` with ``use`` pins resolved over ``owner_id``'s custom nodes and
    dataset names checked against the owner's datasets: an unknown one is an error where the
    editor validates (``dataset_severity="error"``) and a warning where a pipeline is saved, so
    a pipeline can be written (and kept) before its data is uploaded. A step reading
    ``.volume`` of a dataset stored without volume is warned about (AF210). ``dataset(...)``
    references resolve to exact versions of the datasets the owner may read (AF212), and
    ``strategy_backtest``'s ``strategy`` to a module the owner may read (AF220)."""
    visible = datasets.visible_datasets(session, owner_id)
    return compile_text(
        source,
        settings,
        OwnerNodeResolver(session, owner_id),
        datasets={n for n, d in visible.items() if datasets.has_file(d)},
        dataset_severity=dataset_severity,
        datasets_without_volume={n for n, d in visible.items() if not datasets.has_volume(d)},
        catalog=OwnerDatasetResolver(settings, visible),
        strategies=owner_strategies(session, owner_id) if "strategy_backtest" in source else None,
    )


def owner_strategies(session: Session, owner_id: int) -> StoreStrategyResolver:
    """``strategy_backtest``'s modules as ``owner_id`` may read them (their own of a name
    first, then the one other they can see)."""
    user = session.get(User, owner_id)
    where = (
        visible(Strategy, user)
        if user is not None
        else [col(Strategy.deleted_at).is_(None), col(Strategy.owner_id) == owner_id]
    )
    return StoreStrategyResolver(session, owner_id, where)


def get_pipeline(
    session: Session,
    user: User,
    pipeline_id: int,
    *,
    lock: bool = False,
    level: Level = Level.READ,
) -> Pipeline:
    """The live pipeline if ``user`` may see it, else NotFound (also for someone else's); 403
    if they may see it but not act on it at ``level`` (``services.access``)."""
    return get_owned(session, user, Pipeline, pipeline_id, "pipeline", lock=lock, level=level)


def _ensure_name_free(session: Session, owner_id: int, name: str, exclude: int | None) -> None:
    query = select(Pipeline.id).where(
        Pipeline.owner_id == owner_id, Pipeline.name == name, col(Pipeline.deleted_at).is_(None)
    )
    if exclude is not None:
        query = query.where(Pipeline.id != exclude)
    if session.exec(query).first() is not None:
        raise Conflict(f"you already have a pipeline called {name!r}")


def version_of(session: Session, pipeline_id: int | None, number: int) -> PipelineVersion:
    """Version ``number`` of the pipeline ``pipeline_id``; NotFound (404) if there is none."""
    version = session.exec(
        select(PipelineVersion).where(
            PipelineVersion.pipeline_id == pipeline_id, PipelineVersion.number == number
        )
    ).first()
    if version is None:
        raise NotFound(f"version {number} not found")
    return version


def _version_public(session: Session, v: PipelineVersion) -> VersionPublic:
    return VersionPublic(
        number=v.number,
        message=v.message,
        created_at=as_utc(v.created_at),
        ir_hash=v.ir_hash,
        author=username_of(session, v.author_id),
        source=v.source,
    )


def public(session: Session, pipeline: Pipeline, user: User | None = None) -> PipelinePublic:
    """The pipeline with its latest version, as the API shows it (with what ``user`` may do
    with it, when given)."""
    latest = version_of(session, pipeline.id, pipeline.latest_version)
    caps = (
        caps_for(
            user,
            pipeline,
            edit_grant=bool(edit_granted(session, user, Pipeline, [pipeline.id or 0])),
        )
        if user is not None
        else None
    )
    return PipelinePublic(
        id=pipeline.id or 0,
        name=pipeline.name,
        title=pipeline.title,
        owner=username_of(session, pipeline.owner_id),
        created_at=as_utc(pipeline.created_at),
        updated_at=as_utc(pipeline.updated_at),
        version=_version_public(session, latest),
        can_edit=caps.can_edit if caps else False,
        can_manage=caps.can_manage if caps else False,
    )


def _add_version(
    session: Session,
    pipeline: Pipeline,
    author: User,
    source: str,
    message: str,
    ir: PipelineIR,
) -> PipelineVersion:
    """Append ``source`` (already compiled to ``ir``) as the next version."""
    now = utcnow()
    pipeline.latest_version += 1
    pipeline.title = ir.title
    pipeline.updated_at = now
    version = PipelineVersion(
        pipeline_id=pipeline.id or 0,
        number=pipeline.latest_version,
        source=source,
        ir_json=ir.to_json(indent=None),
        ir_hash=ir.content_hash(),
        message=message,
        author_id=author.id or 0,
        created_at=now,
    )
    session.add(pipeline)
    session.add(version)
    session.flush()
    record_uses(session, version, pipeline.owner_id, ir)
    return version


def _new_pipeline(
    session: Session,
    owner: User,
    name: str,
    source: str,
    message: str,
    settings: ApiSettings,
    forked_from: int | None = None,
) -> Pipeline:
    _ensure_name_free(session, owner.id or 0, name, None)
    ir = require_ir(compile_for(session, source, owner.id or 0, settings))  # before any write
    pipeline = Pipeline(name=name, owner_id=owner.id or 0, forked_from_id=forked_from)
    session.add(pipeline)
    session.flush()
    _add_version(session, pipeline, owner, source, message, ir)
    return pipeline


def create(
    session: Session, user: User, data: PipelineCreate, settings: ApiSettings
) -> PipelinePublic:
    """A new pipeline with version 1 (409 on a duplicate name, 422 on DSL errors)."""
    pipeline = _new_pipeline(
        session, user, data.name, data.source, data.message or "Initial version", settings
    )
    audit.record(session, user, "pipeline.create", "pipeline", pipeline.id, name=data.name)
    commit_or_conflict(session, f"you already have a pipeline called {data.name!r}")
    return public(session, pipeline, user)


def list_pipelines(
    session: Session, user: User, *, offset: int, limit: int
) -> Page[PipelineSummary]:
    """Visible live pipelines, most recently updated first."""
    owner = aliased(User)
    where = visible(Pipeline, user)
    rows = session.exec(
        select(Pipeline, owner.username)
        .join(owner, owner.id == Pipeline.owner_id)  # type: ignore[arg-type]
        .where(*where)
        .order_by(col(Pipeline.updated_at).desc(), col(Pipeline.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.exec(select(func.count()).select_from(Pipeline).where(*where)).one()
    ids = [p.id for p, _ in rows if p.id is not None]
    last_runs = _last_runs(session, ids)
    granted = edit_granted(session, user, Pipeline, ids)
    items = [
        PipelineSummary(
            id=p.id or 0,
            name=p.name,
            title=p.title,
            owner=username,
            created_at=as_utc(p.created_at),
            updated_at=as_utc(p.updated_at),
            latest_version=p.latest_version,
            last_run=last_runs.get(p.id or 0),
            **vars(caps_for(user, p, edit_grant=p.id in granted)),
        )
        for p, username in rows
    ]
    return Page(items=items, total=total)


def _last_runs(session: Session, pipeline_ids: list[int]) -> dict[int, RunSummary]:
    """The newest run of each of these pipelines, in one query (index ``(pipeline_id, id)``)."""
    if not pipeline_ids:
        return {}
    newest = (
        select(func.max(Run.id))
        .where(col(Run.pipeline_id).in_(pipeline_ids))
        .group_by(col(Run.pipeline_id))
    )
    rows = session.exec(
        select(Run, Pipeline.name, Pipeline.title).join(Pipeline).where(col(Run.id).in_(newest))
    ).all()
    return {run.pipeline_id: RunSummary.of(run, name, title) for run, name, title in rows}


def update(
    session: Session,
    user: User,
    pipeline_id: int,
    source: str,
    message: str | None,
    settings: ApiSettings,
) -> PipelinePublic:
    """Save ``source`` as a new version; an unchanged source changes nothing, unless its
    ``use`` pins now resolve to other custom node versions (then it is saved re-resolved)."""
    pipeline = get_pipeline(session, user, pipeline_id, lock=True, level=Level.EDIT)
    latest = version_of(session, pipeline.id, pipeline.latest_version)
    if latest.source == source:
        ir = _re_resolved(session, pipeline, latest, settings)
        if ir is None:
            session.rollback()
            return public(session, pipeline, user)
        message = message or "Re-resolve custom node versions"
    else:
        ir = require_ir(compile_for(session, source, pipeline.owner_id, settings))
    version = _add_version(session, pipeline, user, source, message or "", ir)
    audit.record(session, user, "pipeline.update", "pipeline", pipeline.id, version=version.number)
    commit_or_conflict(session, "the pipeline was changed concurrently; reload and retry")
    return public(session, pipeline, user)


def _re_resolved(
    session: Session, pipeline: Pipeline, latest: PipelineVersion, settings: ApiSettings
) -> PipelineIR | None:
    """The latest source recompiled, if it uses custom nodes and its pins resolve differently
    now (a newer version in range, a deleted one replaced); else None."""
    if not PipelineIR.from_json(latest.ir_json).uses:
        return None
    compiled = compile_for(session, latest.source, pipeline.owner_id, settings)
    if compiled.ir is None or compiled.ir_hash == latest.ir_hash:
        return None
    return compiled.ir


def _retitled(text: str, title: str) -> str:
    """``text`` with its `pipeline` header's title set to ``title`` (422 when it cannot be)."""
    out = with_title(text, title)
    if out is None:
        raise Unprocessable(
            "The title is written in the `pipeline` line of the source, which does not parse; "
            "fix the source in the editor first."
        )
    return out


def rename(
    session: Session,
    user: User,
    pipeline_id: int,
    name: str,
    settings: ApiSettings,
    title: str | None = None,
) -> PipelinePublic:
    """Give the pipeline a new name (409 if the owner has another one called that) and, when
    ``title`` is given and differs, a new version whose `pipeline` header carries it."""
    pipeline = get_pipeline(session, user, pipeline_id, lock=True, level=Level.MANAGE)
    changed = False
    if pipeline.name != name:
        _ensure_name_free(session, pipeline.owner_id, name, pipeline.id)
        old, pipeline.name, pipeline.updated_at = pipeline.name, name, utcnow()
        session.add(pipeline)
        audit.record(session, user, "pipeline.rename", "pipeline", pipeline.id, old=old, new=name)
        changed = True
    if title is not None and title != (pipeline.title or ""):
        latest = version_of(session, pipeline.id, pipeline.latest_version)
        source = _retitled(latest.source, title)
        ir = require_ir(compile_for(session, source, pipeline.owner_id, settings))
        _add_version(session, pipeline, user, source, "Rename title", ir)
        changed = True
    if changed:
        commit_or_conflict(session, f"a pipeline called {name!r} already exists")
    else:
        session.rollback()
    return public(session, pipeline, user)


def _live_names_and_titles(session: Session, owner_id: int) -> tuple[set[str], set[str]]:
    rows = session.exec(
        select(Pipeline.name, Pipeline.title).where(
            Pipeline.owner_id == owner_id, col(Pipeline.deleted_at).is_(None)
        )
    ).all()
    return {n for n, _ in rows}, {t for _, t in rows if t}


def copy_name(name: str, taken: set[str]) -> str:
    """An identifier's copy is ``name_copy``, then ``name_copy_2``...; other names get
    `` (copy)``, then `` (copy 2)``... (the first not in ``taken``, within the length limit)."""
    if not re.fullmatch(IDENTIFIER_PATTERN, name):
        return _copy_of(name, taken, NAME_MAX)
    base = re.sub(r"_copy(_\d+)?$", "", name)
    return _first_free(base, "_copy", "_copy_{n}", taken, NAME_MAX)


def _copy_of(text: str, taken: set[str], limit: int) -> str:
    base = re.sub(r" \(copy(?: \d+)?\)$", "", text)
    return _first_free(base, " (copy)", " (copy {n})", taken, limit)


def _first_free(base: str, first: str, nth: str, taken: set[str], limit: int) -> str:
    """``base + first``, else ``base + nth`` with n = 2, 3...: the first not in ``taken``,
    ``base`` cut so that the whole fits in ``limit`` characters."""
    n = 1
    while True:
        suffix = first if n == 1 else nth.format(n=n)
        candidate = base[: limit - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def copy_title(title: str, taken: set[str]) -> str:
    """``title (copy)``, else ``title (copy 2)``... (the first not in ``taken``), kept within
    the title length limit."""
    return _copy_of(title, taken, TITLE_MAX)


def delete(session: Session, user: User, pipeline_id: int) -> None:
    """Soft delete: hidden everywhere, versions kept, the name free again."""
    pipeline = get_pipeline(session, user, pipeline_id, lock=True, level=Level.MANAGE)
    pipeline.deleted_at = utcnow()
    session.add(pipeline)
    audit.record(session, user, "pipeline.delete", "pipeline", pipeline.id, name=pipeline.name)
    session.commit()


def list_versions(session: Session, user: User, pipeline_id: int) -> list[VersionSummary]:
    """The history, newest first."""
    pipeline = get_pipeline(session, user, pipeline_id)
    author = aliased(User)
    rows = session.exec(
        select(PipelineVersion, author.username)
        .join(author, author.id == PipelineVersion.author_id)  # type: ignore[arg-type]
        .where(PipelineVersion.pipeline_id == pipeline.id)
        .order_by(col(PipelineVersion.number).desc())
    ).all()
    return [
        VersionSummary(
            number=v.number,
            message=v.message,
            created_at=as_utc(v.created_at),
            ir_hash=v.ir_hash,
            author=username,
        )
        for v, username in rows
    ]


def get_version(session: Session, user: User, pipeline_id: int, number: int) -> VersionPublic:
    """One version with its source."""
    pipeline = get_pipeline(session, user, pipeline_id)
    return _version_public(session, version_of(session, pipeline.id, number))


def diff(session: Session, user: User, pipeline_id: int, a: int, b: int) -> DiffResponse:
    """A unified diff from version ``a`` to version ``b``."""
    pipeline = get_pipeline(session, user, pipeline_id)
    va, vb = version_of(session, pipeline.id, a), version_of(session, pipeline.id, b)
    lines = difflib.unified_diff(
        va.source.splitlines(keepends=True),
        vb.source.splitlines(keepends=True),
        fromfile=f"{pipeline.name}@v{a}",
        tofile=f"{pipeline.name}@v{b}",
    )
    unified = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return DiffResponse(from_version=a, to_version=b, unified=unified)


def restore(
    session: Session, user: User, pipeline_id: int, number: int, settings: ApiSettings
) -> PipelinePublic:
    """A new version with version ``number``'s source (recompiled: 422 if it no longer is valid).

    Restoring the source the latest version already has adds nothing.
    """
    pipeline = get_pipeline(session, user, pipeline_id, lock=True, level=Level.EDIT)
    old = version_of(session, pipeline.id, number)
    if version_of(session, pipeline.id, pipeline.latest_version).source == old.source:
        session.rollback()
        return public(session, pipeline, user)
    ir = require_ir(compile_for(session, old.source, pipeline.owner_id, settings))
    version = _add_version(session, pipeline, user, old.source, f"Restore version {number}", ir)
    audit.record(
        session, user, "pipeline.restore", "pipeline", pipeline.id,
        restored=number, version=version.number,
    )  # fmt: skip
    commit_or_conflict(session, "the pipeline was changed concurrently; reload and retry")
    return public(session, pipeline, user)


def fork(
    session: Session,
    user: User,
    pipeline_id: int,
    name: str | None,
    settings: ApiSettings,
    title: str | None = None,
) -> PipelinePublic:
    """A copy of the latest version as a new pipeline owned by ``user``, titled ``title``
    (default: the original's title + " (copy)", " (copy 2)"...) and named ``name`` (default:
    the original's + "_copy", "_copy_2"...)."""
    origin = get_pipeline(session, user, pipeline_id)
    latest = version_of(session, origin.id, origin.latest_version)
    names, titles = _live_names_and_titles(session, user.id or 0)
    name = name or copy_name(origin.name, names)
    title = title or copy_title(origin.title or origin.name, titles)
    source = with_title(latest.source, title) or latest.source
    message = f"Fork of {origin.name} version {latest.number}"
    copy = _new_pipeline(session, user, name, source, message, settings, origin.id)
    audit.record(
        session, user, "pipeline.fork", "pipeline", copy.id,
        origin=origin.id, origin_version=latest.number,
    )  # fmt: skip
    commit_or_conflict(session, f"you already have a pipeline called {name!r}")
    return public(session, copy, user)
