"""Custom nodes: owned names with immutable versions, and which pipeline versions use them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "deleted_at IS NULL"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "custom_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("latest_version", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_custom_nodes_owner_id"), "custom_nodes", ["owner_id"], unique=False)
    op.create_index(
        "uq_custom_nodes_owner_name_live",
        "custom_nodes",
        ["owner_id", "name"],
        unique=True,
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )
    op.create_table(
        "custom_node_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("lookahead_status", sa.String(length=16), nullable=False),
        sa.Column("lookahead_json", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["node_id"], ["custom_nodes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("node_id", "version", name="uq_custom_node_version"),
    )
    op.create_index(
        op.f("ix_custom_node_versions_code_hash"),
        "custom_node_versions",
        ["code_hash"],
        unique=False,
    )
    op.create_index(
        op.f("ix_custom_node_versions_node_id"), "custom_node_versions", ["node_id"], unique=False
    )
    op.create_table(
        "custom_node_uses",
        sa.Column("pipeline_version_id", sa.Integer(), nullable=False),
        sa.Column("node_version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["node_version_id"], ["custom_node_versions.id"]),
        sa.ForeignKeyConstraint(["pipeline_version_id"], ["pipeline_versions.id"]),
        sa.PrimaryKeyConstraint("pipeline_version_id", "node_version_id"),
    )
    op.create_index(
        op.f("ix_custom_node_uses_node_version_id"),
        "custom_node_uses",
        ["node_version_id"],
        unique=False,
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index(op.f("ix_custom_node_uses_node_version_id"), table_name="custom_node_uses")
    op.drop_table("custom_node_uses")
    op.drop_index(op.f("ix_custom_node_versions_node_id"), table_name="custom_node_versions")
    op.drop_index(op.f("ix_custom_node_versions_code_hash"), table_name="custom_node_versions")
    op.drop_table("custom_node_versions")
    op.drop_index(
        "uq_custom_nodes_owner_name_live",
        table_name="custom_nodes",
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )
    op.drop_index(op.f("ix_custom_nodes_owner_id"), table_name="custom_nodes")
    op.drop_table("custom_nodes")
