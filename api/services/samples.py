"""The sample pipeline every user starts with: "Moving Average Crossover (Sample)".

Seeded from ``examples/sma_crossover.af``; its ``data/sample_ohlcv.csv`` resolves in web runs
because their base dir holds the bundled sample data (:func:`api.services.runs.web_base_dir`).
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from api.models.pipeline import Pipeline, PipelineCreate
from api.models.user import Role, User
from api.services import pipelines
from api.settings import ApiSettings

SAMPLE_FILE = Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.af"
SAMPLE_NAME = "Moving Average Crossover (Sample)"


def seed_sample_pipelines(session: Session, settings: ApiSettings) -> list[str]:
    """Give the sample pipeline to every admin or developer who never had a pipeline (so a
    deleted sample does not come back). Returns the usernames that got it."""
    source = SAMPLE_FILE.read_text(encoding="utf-8")
    seeded: list[str] = []
    users = session.exec(select(User).where(User.role != Role.OBSERVER)).all()
    for user in users:
        if session.exec(select(Pipeline.id).where(Pipeline.owner_id == user.id)).first():
            continue
        pipelines.create(
            session,
            user,
            PipelineCreate(name=SAMPLE_NAME, source=source, message="Sample"),
            settings,
        )
        seeded.append(user.username)
    return seeded
