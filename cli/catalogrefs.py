"""``dataset("name@version")`` steps as the command line resolves them: over a catalog
namespace (``--namespace``, else the settings' ``ALPHAFORGE_NAMESPACE``, else ``local``).

Opened only when the pipeline's text has a ``dataset(`` call: other runs never touch the
catalog's storage.
"""

from __future__ import annotations

import re
from typing import Any

from dsl.catalogref import DatasetLookupError

__all__ = ["CliDatasetResolver", "uses_catalog"]

_CALL = re.compile(r"\b(?:dataset|tick_data)\s*\(")


def uses_catalog(text: str) -> bool:
    """Whether a pipeline's text may have a ``dataset(...)`` or ``tick_data(...)`` step (a
    cheap test)."""
    return bool(_CALL.search(text))


class CliDatasetResolver:
    """Resolves names over one namespace of the configured catalog."""

    def __init__(self, settings: Any, namespace: str) -> None:
        self.settings = settings
        self.namespace = namespace

    def resolve(self, name: str, version: str | None) -> str:
        """The full version hash, or :class:`DatasetLookupError` saying what exists."""
        from catalog import CatalogError
        from flows.catalog import open_catalog

        catalog = open_catalog(self.settings)
        try:
            return catalog.resolve(self.namespace, name, version).version
        except CatalogError as exc:  # its message names the close names and the versions
            try:
                empty = not catalog.names(self.namespace)
            except CatalogError:
                empty = True
            how = f"; import data with `alphaforge data import PATH --name {name}`"
            raise DatasetLookupError(f"{exc}{how if empty else ''}") from None

    def kind(self, version: str) -> str:
        """What the version holds: ``"ohlcv"`` (bars) or ``"ticks"`` (order-book events)."""
        from flows.catalog import open_catalog

        return open_catalog(self.settings).info(version).kind
