"""The model file: how a ``model`` port's value is stored, downloaded and registered.

A model file (``.afmodel``) is a zip archive of two members and nothing else:

- ``model.json``: the format marker (``format``, ``version``), the model's ``kind`` and its
  description (architecture, features, training history, metadata) as plain JSON;
- ``arrays.npz``: its numbers (weights, scaler) as numpy arrays, read with
  ``allow_pickle=False``.

Nothing in it is executable: reading a model file never unpickles, so a model file from the
registry, a download or a sandbox is data, whoever made it. Sizes are capped before anything is
decompressed (``MAX_MODEL_BYTES``), and a member list other than the two is refused.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nodes.errors import NodeError

if TYPE_CHECKING:
    import numpy as np
else:
    from nodes.lazy import lazy_module

    np = lazy_module("numpy", globals(), "np")

__all__ = [
    "FORMAT",
    "MAX_MODEL_BYTES",
    "ModelFileError",
    "StoredModel",
    "dumps",
    "load",
    "loads",
    "save",
]

FORMAT = "alphaforge.model"
VERSION = 1
SUFFIX = "afmodel"
#: The most a model file may hold, uncompressed (weights included).
MAX_MODEL_BYTES = 2 * 1024**3
_MEMBERS = ("model.json", "arrays.npz")
_MAX_JSON = 64 * 1024**2


class ModelFileError(NodeError):
    """A model file that is not one, is damaged, or is of a kind this version cannot read."""


class StoredModel(Protocol):
    """What a model value gives to be stored: its kind, its JSON description, its arrays."""

    kind: str

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-ready description, name -> array)."""
        ...


#: kind -> the module defining the class (its ``kind`` attribute) that reads it back
_KIND_MODULES = {"torch_classifier": ("nodes.builtin.torchml", "TorchModel")}


def _kinds() -> dict[str, Any]:
    """kind -> a class with ``from_parts(description, arrays)``, imported when first needed.

    By name, not an import statement: the code fingerprint of the runners' file I/O (which
    reads model files) must not take in every built-in node module through this one; the nodes
    that use a model (``predict``) have that module in their own fingerprint."""
    import importlib

    return {
        kind: getattr(importlib.import_module(module), cls)
        for kind, (module, cls) in _KIND_MODULES.items()
    }


def dumps(model: StoredModel) -> bytes:
    """The model file's bytes."""
    kind = getattr(model, "kind", None)
    if kind not in _kinds() or not hasattr(model, "to_parts"):
        raise ModelFileError(
            f"a model output must be a model this platform can store (train_torch's), got "
            f"{type(model).__name__}"
        )
    description, arrays = model.to_parts()
    head = {"format": FORMAT, "version": VERSION, "kind": kind, "model": description}
    npz = io.BytesIO()
    named: dict[str, Any] = {name: np.asarray(a) for name, a in arrays.items()}
    np.savez(npz, allow_pickle=False, **named)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", json.dumps(head, sort_keys=True, allow_nan=True))
        zf.writestr("arrays.npz", npz.getvalue())
    return out.getvalue()


def save(model: StoredModel, path: Path) -> None:
    """Write the model file to ``path``."""
    Path(path).write_bytes(dumps(model))


def load(path: str | Path) -> Any:
    """Read a model file written by :func:`save` (or :func:`dumps`)."""
    p = Path(path)
    if p.stat().st_size > MAX_MODEL_BYTES:
        raise ModelFileError(f"model file {p.name} is larger than {MAX_MODEL_BYTES} bytes")
    return loads(p.read_bytes(), name=p.name)


def loads(data: bytes, *, name: str = "model file", max_bytes: int = MAX_MODEL_BYTES) -> Any:
    """The model in ``data``; raises :class:`ModelFileError` saying what is wrong with it.

    ``max_bytes`` caps what the archive may unpack to (its members' declared sizes, checked
    before anything is decompressed; a member is never read past its declared size): a
    sandbox's model output is held to the node's output cap."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, or whatever else a crafted directory raises
        raise ModelFileError(f"{name} is not a model file (not a zip archive)") from exc
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        if sorted(infos) != sorted(_MEMBERS) or len(zf.infolist()) != len(_MEMBERS):
            raise ModelFileError(
                f"{name} is not a model file: it holds {sorted(infos)[:5]}, not {list(_MEMBERS)}"
            )
        total = sum(i.file_size for i in infos.values())
        most = min(max_bytes, MAX_MODEL_BYTES)
        if total > most or infos["model.json"].file_size > _MAX_JSON:
            raise ModelFileError(
                f"{name} unpacks to {total} bytes, more than the {most} bytes allowed"
            )
        try:
            head = json.loads(zf.read("model.json"))
            arrays = _arrays(zf.read("arrays.npz"))
        except Exception as exc:  # bad JSON, compression, CRC, npy header, a pickled array
            raise ModelFileError(f"{name} is damaged: {exc}") from exc
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ModelFileError(f"{name} is not an Alpha Forge model file (no {FORMAT!r} marker)")
    if head.get("version") != VERSION:
        raise ModelFileError(
            f"{name} is a model file of format version {head.get('version')}; this version "
            f"reads version {VERSION}"
        )
    cls = _kinds().get(str(head.get("kind")))
    if cls is None:
        raise ModelFileError(f"{name} holds a model of unknown kind {head.get('kind')!r}")
    description = head.get("model")
    if not isinstance(description, dict):
        raise ModelFileError(f"{name} has no model description")
    return cls.from_parts(description, arrays)


def _arrays(raw: bytes) -> Mapping[str, np.ndarray]:
    """The arrays of ``arrays.npz``. Each member's ``.npy`` header is read first: an array
    whose header claims more bytes than its member holds is refused before numpy allocates
    it (``np.load`` would allocate the claimed size up front)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"arrays.npz holds {info.filename[:80]!r}, not a .npy array")
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"array {info.filename[:80]!r} is .npy format {version}")
            claimed = math.prod(shape) * dtype.itemsize
            if not dtype.hasobject and claimed > info.file_size:
                raise ValueError(
                    f"array {info.filename[:80]!r} claims {claimed} bytes, its member holds "
                    f"{info.file_size}"
                )
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
