"""The dataset catalog the settings name (``ALPHAFORGE_CATALOG_URL`` and the S3 settings), and
the catalog a run's ``dataset`` steps read (``NodeContext.catalog``).

A run spec names the catalog (``catalog_url``, else this process's configured one) and the
namespace whose names a step without a version resolves; S3 credentials come from this
process's settings, never from the spec (flow parameters are visible in Prefect's UI).
"""

from __future__ import annotations

from catalog import Catalog
from flows.settings import CoreSettings
from runners.catalogsource import CatalogSource

__all__ = ["catalog_source", "open_catalog"]


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


def catalog_source(settings: CoreSettings, url: str | None, namespace: str | None) -> CatalogSource:
    """What a run's nodes read catalog versions through: opened on first use (a run without
    ``dataset`` steps never touches the catalog's storage); names resolve in ``namespace``
    (default: the settings' namespace, ``local`` unless set)."""
    return CatalogSource(lambda: open_catalog(settings, url), namespace or settings.namespace)
