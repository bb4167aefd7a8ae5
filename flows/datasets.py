"""The dataset catalog a run's ``dataset`` steps read (``NodeContext.catalog``).

The spec names the catalog (``catalog_url``, else this process's configured one) and the
namespace whose names a step without a version resolves; credentials for S3 come from this
process's settings, never from the spec (flow parameters are visible in Prefect's UI).
Catalogs are opened once per process and location.
"""

from __future__ import annotations

from functools import lru_cache

from catalog import Catalog

from flows.settings import CoreSettings
from runners.catalogsource import CatalogSource

__all__ = ["DEFAULT_NAMESPACE", "catalog_source", "open_catalog"]

DEFAULT_NAMESPACE = "local"


@lru_cache(maxsize=8)
def _open(
    url: str, endpoint: str | None, key: str | None, secret: str | None, region: str | None
) -> Catalog:
    return Catalog.open(url, endpoint_url=endpoint, key=key, secret=secret, region=region)


def open_catalog(settings: CoreSettings, url: str | None = None) -> Catalog:
    """The catalog at ``url`` (default: the configured one), with this process's S3
    credentials."""
    secret = settings.s3_secret
    return _open(
        url or settings.catalog_location,
        settings.s3_endpoint_url,
        settings.s3_key,
        secret.get_secret_value() if secret is not None else None,
        settings.s3_region,
    )


def catalog_source(settings: CoreSettings, url: str | None, namespace: str | None) -> CatalogSource:
    """What the run's nodes read catalog versions through (opened on first use)."""
    return CatalogSource(lambda: open_catalog(settings, url), namespace or DEFAULT_NAMESPACE)
