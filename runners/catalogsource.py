"""The dataset catalog as ``dataset`` steps see it (``NodeContext.catalog``).

Wraps a :class:`catalog.Catalog` and a namespace (whose names a run resolves): catalog errors
become node errors, and reads are pruned as the step asks. Nodes never import the catalog
itself (nodes sit below it); they get this object through their context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from catalog import Catalog, CatalogError
from nodes.errors import DataError, NodeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CatalogSource"]


class CatalogSource:
    """Resolves names in ``namespace`` and reads versions of ``catalog`` (any namespace's
    version: a version hash is the data's identity, and the compiler only writes versions the
    run's owner may read). ``catalog`` may be an opener, called on first use: a run without
    ``dataset`` steps never touches the catalog's storage."""

    def __init__(self, catalog: Catalog | Callable[[], Catalog], namespace: str) -> None:
        self._catalog = catalog
        self.namespace = namespace

    @property
    def catalog(self) -> Catalog:
        """The catalog (opened on first use when given as an opener)."""
        if not isinstance(self._catalog, Catalog):
            self._catalog = self._catalog()
        return self._catalog

    def resolve(self, name: str, version: str | None = None) -> str:
        """The full version hash; a NodeError saying what exists otherwise."""
        try:
            return self.catalog.resolve(self.namespace, name, version).version
        except CatalogError as exc:
            raise NodeError(str(exc)) from None

    def read(
        self,
        version: str,
        *,
        symbols: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> pd.DataFrame:
        """The version's bars, pruned; a DataError naming the version when it cannot be read."""
        try:
            return self.catalog.read(
                version, symbols=symbols, columns=columns, start=start, end=end
            )
        except CatalogError as exc:
            raise DataError("CATALOG_READ", str(exc), source=f"version {version[:12]}") from None

    def read_ticks(
        self,
        version: str,
        *,
        symbols: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> dict[str, Any]:
        """A tick version's events per symbol; a DataError naming the version otherwise."""
        try:
            return self.catalog.read_ticks(version, symbols=symbols, start=start, end=end)
        except CatalogError as exc:
            raise DataError("CATALOG_READ", str(exc), source=f"version {version[:12]}") from None
