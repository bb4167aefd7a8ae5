"""Datasets in the catalog: each row names its latest catalog version.

A dataset uploaded (or imported with ``alphaforge data import --owner``) since the catalog is a
catalog name in its owner's namespace; ``catalog_version`` is the version hash of its latest
import (NULL for datasets uploaded before the catalog, which only ``dataset_ohlcv`` reads),
``symbols_json`` that version's symbols and ``version_count`` how many versions the name has
(so that lists need not read the catalog's storage).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("catalog_version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("symbols_json", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("version_count", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("version_count")
        batch.drop_column("symbols_json")
        batch.drop_column("catalog_version")
