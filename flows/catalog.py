"""The dataset catalog the settings name (``ALPHAFORGE_CATALOG_URL`` and the S3 settings), and
the catalog a run's ``dataset`` steps read (``NodeContext.catalog``).

A run spec names the catalog (``catalog_url``, else this process's configured one) and the
namespace whose names a step without a version resolves; S3 credentials come from this
process's settings, never from the spec (flow parameters are visible in Prefect's UI).
"""

from __future__ import annotations

from catalog import Catalog, CatalogError
from dsl.ir import PipelineIR
from flows.settings import CoreSettings
from runners.catalogsource import CatalogSource

__all__ = ["catalog_source", "follow_latest", "open_catalog"]


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


def follow_latest(
    ir: PipelineIR, follow: dict[str, str], settings: CoreSettings, url: str | None
) -> tuple[PipelineIR, list[str]]:
    """``ir`` with each followed step (id -> ``namespace/name``) at that name's latest version
    now, and a log line per step moved. A name that no longer resolves (deleted, say) leaves
    the step without a version: the step then resolves its name in the run's namespace when
    it runs, and fails saying what exists if it cannot."""
    if not follow:
        return ir, []
    catalog = open_catalog(settings, url)
    lines: list[str] = []
    nodes = []
    for node in ir.nodes:
        ref = follow.get(node.id)
        if ref is None or "/" not in ref:
            nodes.append(node)
            continue
        namespace, name = ref.split("/", 1)
        old = node.params.get("version")
        try:
            latest: str | None = catalog.resolve(namespace, name).version
        except CatalogError as exc:
            latest = None
            lines.append(f"[flow] warning: {node.id}: {exc}")
        if latest != old:
            node = node.model_copy(update={"params": {**node.params, "version": latest}})
            if latest is not None:
                lines.append(
                    f"[flow] {node.id}: dataset {name!r} is at version {latest[:12]} now "
                    f"(the schedule was made at {str(old)[:12]})"
                )
        nodes.append(node)
    return ir.model_copy(update={"nodes": tuple(nodes)}), lines
