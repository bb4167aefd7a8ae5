"""One small interface over the catalog's filesystems: a local directory or S3 (s3fs).

Paths given to :class:`Storage` are relative to the catalog root (``objects/<v>/manifest.json``);
every failure of the filesystem (a missing bucket, a server error, a refused credential) comes out
as a :class:`CatalogError` that names the operation, the path and the catalog URL, never as a
raw botocore or aiohttp trace.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from catalog.errors import CatalogError
from nodes.errors import AlphaForgeError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["Storage", "open_storage"]


class Storage:
    """A catalog root on one fsspec filesystem.

    ``url`` is what users see in messages; ``root`` the filesystem path of the root (no
    protocol, no trailing slash).
    """

    def __init__(self, fs: AbstractFileSystem, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self.local = isinstance(fs, LocalFileSystem)

    def path(self, rel: str) -> str:
        """The filesystem path of ``rel`` (relative to the root)."""
        return f"{self.root}/{rel}" if rel else self.root

    @contextmanager
    def io(self, what: str) -> Iterator[None]:
        """Turn any filesystem failure inside the block into a CatalogError about ``what``."""
        try:
            yield
        except AlphaForgeError:
            raise
        except FileNotFoundError as exc:
            raise CatalogError(f"{what} in the catalog at {self.url}: not found ({exc})") from exc
        except Exception as exc:  # botocore / aiohttp / OSError: all "the storage failed"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = f"{what} in the catalog at {self.url} failed: {type(exc).__name__}: {reason}"
            raise CatalogError(msg) from exc

    def exists(self, rel: str) -> bool:
        """Whether the file ``rel`` exists."""
        with self.io(f"looking for {rel}"):
            return bool(self.fs.exists(self.path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of file ``rel``."""
        with self.io(f"reading {rel}"):
            return bytes(self.fs.cat_file(self.path(rel)))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write file ``rel`` whole: locally through a temporary file and ``os.replace`` (a
        reader never sees half a file), on S3 with one PUT (atomic there)."""
        with self.io(f"writing {rel}"):
            target = self.path(rel)
            if not self.local:
                self.fs.pipe_file(target, data)
                return
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)

    def list_names(self, rel: str) -> list[str]:
        """The base names of the entries directly in folder ``rel`` (none if it is missing)."""
        with self.io(f"listing {rel}"):
            try:
                entries = self.fs.ls(self.path(rel), detail=False)
            except FileNotFoundError:
                return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def move_tree(self, src: str, dst: str) -> None:
        """Move folder ``src`` to ``dst`` (locally a rename; on S3 copies then deletes)."""
        with self.io(f"moving {src} to {dst}"):
            if self.local:
                Path(self.path(dst)).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.path(src), self.path(dst))
            else:  # the files one by one: S3 has no folders to copy
                files = sorted(self.fs.find(self.path(src)))
                start = len(self.path(src))
                self.fs.copy(files, [self.path(dst) + f[start:] for f in files])
                self.fs.rm(files)

    def remove_tree(self, rel: str) -> None:
        """Delete folder or file ``rel`` if it exists."""
        with self.io(f"deleting {rel}"):
            if self.fs.exists(self.path(rel)):
                self.fs.rm(self.path(rel), recursive=True)

    def remove_quietly(self, rel: str) -> None:
        """:meth:`remove_tree`, ignoring failures (clean-up after another error)."""
        with suppress(CatalogError):
            self.remove_tree(rel)

    def arrow_filesystem(self) -> pafs.FileSystem:
        """The filesystem for pyarrow's readers: pyarrow's own for a plain local directory
        (fastest), else the fsspec filesystem wrapped (S3, or a wrapped local one in tests)."""
        import pyarrow.fs as pafs

        if type(self.fs) is LocalFileSystem:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))


def open_storage(
    url: str | Path,
    *,
    endpoint_url: str | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
    options: dict[str, Any] | None = None,
) -> Storage:
    """The storage at ``url``: a directory path or ``file://`` URL (created if missing), or
    ``s3://bucket/prefix`` (the bucket must exist). ``options`` go to ``s3fs.S3FileSystem``."""
    text = str(url)
    if "://" not in text or text.startswith("file://"):
        root = Path(text.removeprefix("file://")).expanduser().resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot create the catalog directory {root}: {exc}") from exc
        return Storage(LocalFileSystem(), root.as_posix(), str(root))
    scheme, _, rest = text.partition("://")
    if scheme not in ("s3", "s3a"):
        raise CatalogError(f"catalog URL {text!r}: use a directory, file:// or s3://bucket/prefix")
    if not rest.strip("/"):
        raise CatalogError(f"catalog URL {text!r} names no bucket (s3://bucket/prefix)")
    try:
        import s3fs
    except ImportError as exc:  # pragma: no cover - s3fs is a dependency
        raise CatalogError(f"catalog URL {text!r} needs s3fs installed") from exc
    client_kwargs: dict[str, Any] = {}
    if region:
        client_kwargs["region_name"] = region
    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "key": key,
        "secret": secret,
        "client_kwargs": client_kwargs,
        "skip_instance_cache": True,
        "use_listings_cache": False,  # another process may have written since
    }
    kwargs.update(options or {})
    fs = s3fs.S3FileSystem(**kwargs)
    storage = Storage(fs, rest.strip("/"), f"s3://{rest.strip('/')}")
    bucket = rest.strip("/").split("/", 1)[0]
    with storage.io(f"opening bucket {bucket!r}"):
        if not fs.exists(bucket):
            raise CatalogError(f"the catalog's bucket {bucket!r} does not exist at {text}")
    return storage
