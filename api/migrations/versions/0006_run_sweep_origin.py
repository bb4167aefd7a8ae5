"""Runs opened from a sweep's trial name it (sweep, trial, fold); Optuna's own schema.

Optuna's study storage (when the platform's database is PostgreSQL) lives in the ``optuna``
schema, never beside the app's tables: Optuna keeps its own ``alembic_version`` (the app's
would be read as Optuna's), its ``studies`` / ``trials`` tables would be dropped by an Alembic
autogenerate of the app, and emptying the app's tables must not touch them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPTUNA_SCHEMA = "optuna"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sweep_trial", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sweep_fold", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_runs_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL"
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}")


def downgrade() -> None:
    """Revert this revision (the ``optuna`` schema and its studies stay)."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("fk_runs_sweep_id_sweeps", type_="foreignkey")
        batch.drop_column("sweep_fold")
        batch.drop_column("sweep_trial")
        batch.drop_column("sweep_id")
