"""The dataset catalog: canonical Parquet datasets with immutable, content-addressed versions
on a local directory or S3 (see README.md)."""

from catalog.catalog import Catalog
from catalog.errors import CatalogError
from catalog.model import SymbolInfo, VersionInfo

__all__ = ["Catalog", "CatalogError", "SymbolInfo", "VersionInfo"]
