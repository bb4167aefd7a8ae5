"""Datasets say what their latest catalog version holds: ``kind`` "bars" (OHLCV) or "ticks"
(order-book events, imported with ``alphaforge ticks import --owner``), so that lists can badge
tick datasets without reading the catalog's storage.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="bars")
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("kind")
