"""The catalog's one error: what failed and where (the catalog URL, the name, the version)."""

from __future__ import annotations

from nodes.errors import AlphaForgeError

__all__ = ["CatalogError"]


class CatalogError(AlphaForgeError):
    """A dataset could not be found, read or written: an unknown name or version (with the
    ones that exist), a storage failure (with the URL and the path), a corrupt file.

    Bad *data* in an import is :class:`nodes.errors.DataError` (kind, file, row), not this.
    """

    code = "AF780"
