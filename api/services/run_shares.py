"""Share links of kind ``run``: the run, its pipeline version and its results, read-only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from api.errors import NotFound
from api.models.pipeline import Pipeline
from api.models.run import Run
from api.models.share import Share, SharedPipeline, SharedView, ShareTarget
from api.models.user import User
from api.services import pipelines, run_files, run_market, runs
from api.services.access import Level
from api.settings import ApiSettings


@dataclass(frozen=True)
class RunShare:
    """Sharing a run shows the version that ran, the run (without internal links) and its
    results; a deleted pipeline ends the link."""

    def check_target(self, session: Session, user: User, target_id: int) -> None:
        """Only runs of pipelines the user manages (their own; an admin: any)."""
        run = runs.get_run(session, user, target_id)
        pipelines.get_pipeline(session, user, run.pipeline_id, level=Level.MANAGE)

    def render(self, session: Session, share: Share, settings: ApiSettings) -> SharedView:
        """The run as its owner sees it, minus links to internal services."""
        found = session.exec(
            select(Run, Pipeline)
            .join(Pipeline)
            .where(Run.id == share.target_id, col(Pipeline.deleted_at).is_(None))
        ).first()
        if found is None:
            raise NotFound("share link not found")
        run, pipeline = found
        version = pipelines.version_of(session, pipeline.id, run.version)
        shown = runs.public(settings, run).model_copy(
            update={"mlflow_url": None, "prefect_url": None}
        )
        run_dir = settings.runs_dir / run.run_key
        return SharedView(
            kind="run",
            pipeline=SharedPipeline(
                name=pipeline.name,
                title=pipeline.title,
                source=version.source,
                version=version.number,
            ),
            run=shown.model_dump(mode="json"),
            results=run_files.results(run_dir, run_files.read_record(run_dir)).model_dump(
                mode="json"
            ),
            analysis=run_market.analysis(run_dir),
        )

    def describe(self, session: Session, target_id: int) -> ShareTarget | None:
        """The run's id and its pipeline's id, name and title; None once either is gone."""
        found = session.exec(
            select(Run, Pipeline)
            .join(Pipeline)
            .where(Run.id == target_id, col(Pipeline.deleted_at).is_(None))
        ).first()
        if found is None:
            return None
        run, pipeline = found
        return ShareTarget(
            pipeline_id=pipeline.id or 0,
            pipeline_name=pipeline.name,
            pipeline_title=pipeline.title,
            run_id=run.id,
        )
