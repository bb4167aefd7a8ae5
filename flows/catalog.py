"""The dataset catalog the settings name (``ALPHAFORGE_CATALOG_URL`` and the S3 settings)."""

from __future__ import annotations

from catalog import Catalog
from flows.settings import CoreSettings

__all__ = ["open_catalog"]


def open_catalog(settings: CoreSettings, url: str | None = None) -> Catalog:
    """The catalog at ``url`` (default: the settings' :attr:`CoreSettings.catalog_location`),
    with the settings' S3 endpoint, credentials and region for an ``s3://`` URL."""
    return Catalog.open(
        url or settings.catalog_location,
        endpoint_url=settings.s3_endpoint_url,
        key=settings.s3_key,
        secret=settings.s3_secret,
        region=settings.s3_region,
    )
