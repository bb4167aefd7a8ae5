"""``alphaforge deploy`` creates the S3 bucket the catalog (and an s3:// artifact store) is in
when it is missing: a new production stack's object store starts empty, and the catalog refuses a
missing bucket (infra/compose.yaml). Against a real S3-compatible server (moto's, over HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

import click
import pytest

from catalog import Catalog, CatalogError
from cli.deploy import _ensure_buckets
from flows.settings import CoreSettings


def _settings(server: Any, catalog_url: str, artifact_store_url: str | None = None) -> CoreSettings:
    return CoreSettings(
        s3_endpoint_url=server.endpoint, s3_key="testing", s3_secret="testing",
        s3_region="us-east-1", catalog_url=catalog_url, artifact_store_url=artifact_store_url,
    )  # fmt: skip


def test_the_catalogs_bucket_is_created_once_and_the_catalog_then_opens(s3_server: Any) -> None:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    art = f"t-{uuid.uuid4().hex[:16]}"
    settings = _settings(
        s3_server, catalog_url=f"s3://{bucket}/catalog", artifact_store_url=f"s3://{art}/cache"
    )
    opts = s3_server.options()
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog.open(f"s3://{bucket}/catalog", **opts)
    assert _ensure_buckets(settings) == sorted([bucket, art])
    assert _ensure_buckets(settings) == []  # idempotent: it exists now
    Catalog.open(f"s3://{bucket}/catalog", **opts)


def test_local_urls_need_no_bucket_and_an_unreachable_store_is_one_line(
    s3_server: Any, tmp_path: Any
) -> None:
    assert _ensure_buckets(_settings(s3_server, catalog_url=str(tmp_path / "cat"))) == []
    dead = CoreSettings(
        s3_endpoint_url="http://127.0.0.1:9", s3_key="k", s3_secret="s",
        catalog_url="s3://nowhere/catalog",
    )  # fmt: skip
    with pytest.raises(click.ClickException, match="cannot create bucket 'nowhere'"):
        _ensure_buckets(dead)
