"""Deployed stream pipelines: the owner's wish (text, desired state), the engine's runtime
columns (status, lease, health snapshot) and every text a deployment had
(live/stream/tables.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "stream_deployments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("ir_hash", sa.String(length=64), nullable=False),
        sa.Column("text_version", sa.Integer(), nullable=False),
        sa.Column("desired", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("engine_id", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("loaded_key", sa.String(length=80), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("health_json", sa.Text(), nullable=True),
        sa.Column("health_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["pipeline_id"], ["pipelines.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_stream_deployments_owner_id"), "stream_deployments", ["owner_id"], unique=False
    )
    op.create_index(
        "uq_stream_deployments_owner_name_live",
        "stream_deployments",
        ["owner_id", "name"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "stream_deployment_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("ir_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["stream_deployments.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_stream_deployment_texts_deployment_id"),
        "stream_deployment_texts",
        ["deployment_id"],
        unique=False,
    )
    op.create_index(
        "uq_stream_deployment_text",
        "stream_deployment_texts",
        ["deployment_id", "version"],
        unique=True,
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("uq_stream_deployment_text", table_name="stream_deployment_texts")
    op.drop_index(
        op.f("ix_stream_deployment_texts_deployment_id"), table_name="stream_deployment_texts"
    )
    op.drop_table("stream_deployment_texts")
    op.drop_index("uq_stream_deployments_owner_name_live", table_name="stream_deployments")
    op.drop_index(op.f("ix_stream_deployments_owner_id"), table_name="stream_deployments")
    op.drop_table("stream_deployments")
