"""Fingerprints of the code that computes a node: its module's source and the modules it calls.

The artifact cache must never serve a result after the code that made it changed. A built-in
node's outputs depend on its own module and on the project modules that module imports —
``backtest`` calls ``_kernel`` and ``metrics``, the loaders call ``nodes.data``, every node
goes through ``nodes.base`` — so a node type's fingerprint is the sha256 over the sources of
that set: the node's module plus every module it imports, transitively, that lies in ``nodes``
or in the node module's own top-level package (a test's or a plug-in's own helpers). Imports
are read from the source (:mod:`ast`): module-level, inside functions (``backtest`` imports
``_kernel`` where it calls it) and under ``TYPE_CHECKING`` alike; over-including only costs a
recomputation. Third-party libraries are not hashed (their versions are in the run record).

The hashed source is the file the process loaded the module from (``module.__file__``), read
once per process and module: the fingerprint describes the code this process runs, which is
why the key is computed where the flow runs (a worker), not where it was submitted. A process
that reloads a node module re-registers its node types, which forgets the cached hashes
(:func:`clear_cache`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PROJECT_PACKAGES",
    "CodeHashError",
    "clear_cache",
    "files_fingerprint",
    "module_closure",
    "module_file",
    "modules_fingerprint",
]

# Packages whose modules count as the code of a built-in node (besides the node's own package).
PROJECT_PACKAGES: tuple[str, ...] = ("nodes",)

_LOCK = threading.Lock()
_FILE_HASH: dict[str, str] = {}  # resolved path -> sha256 of its bytes
_IMPORTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}  # module -> its imports
_CLOSURE: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}


class CodeHashError(RuntimeError):
    """A module's source cannot be found or read (a node's code cannot be fingerprinted)."""


def clear_cache() -> None:
    """Forget every cached hash (after code was reloaded in this process)."""
    with _LOCK:
        _FILE_HASH.clear()
        _IMPORTS.clear()
        _CLOSURE.clear()


def module_file(name: str) -> Path:
    """The source file of module ``name``: the one this process loaded, else the one it would."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else None
    if file is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            raise CodeHashError(f"cannot locate module {name!r}: {exc}") from exc
        file = spec.origin if spec is not None else None
    if not file or not str(file).endswith(".py"):
        raise CodeHashError(f"module {name!r} has no Python source file to fingerprint")
    return Path(file).resolve()


def _file_hash(path: Path) -> str:
    key = str(path)
    with _LOCK:
        cached = _FILE_HASH.get(key)
    if cached is not None:
        return cached
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise CodeHashError(f"cannot read {path}: {exc}") from exc
    with _LOCK:
        return _FILE_HASH.setdefault(key, digest)


def _is_package(name: str) -> bool:
    return module_file(name).name == "__init__.py"


def _imports(name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What ``name``'s source imports: (absolute module, names taken from it) pairs."""
    with _LOCK:
        cached = _IMPORTS.get(name)
    if cached is not None:
        return cached
    path = module_file(name)
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module:
                found.append((module, tuple(a.name for a in node.names if a.name != "*")))
    result = tuple(found)
    with _LOCK:
        _IMPORTS[name] = result
    return result


def _in(name: str, packages: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _resolve(module: str, names: tuple[str, ...]) -> list[str]:
    """The modules an import statement loads code from: ``from pkg import mod`` is ``pkg.mod``
    (not the package's ``__init__``); ``from mod import name`` and ``from pkg import name`` (an
    attribute of the package) are ``mod`` / ``pkg``."""
    if not names or not _is_package(module):
        return [module]
    out: list[str] = []
    for name in names:
        sub = f"{module}.{name}"
        try:
            module_file(sub)
        except CodeHashError:
            out.append(module)
        else:
            out.append(sub)
    return list(dict.fromkeys(out))


def module_closure(name: str, packages: tuple[str, ...] = PROJECT_PACKAGES) -> tuple[str, ...]:
    """``name`` and the modules it imports transitively within ``packages`` and ``name``'s own
    top-level package, sorted. Imports of other packages (numpy, pydantic, ``dsl``) are not
    followed, nor are the imports of a package's ``__init__`` reached this way: ``registry()``'s
    ``import nodes.builtin`` loads every built-in to register it, which is not code that any one
    node calls (the ``__init__`` itself is hashed)."""
    scope = tuple(dict.fromkeys((*packages, name.split(".")[0])))
    key = (name, scope)
    with _LOCK:
        cached = _CLOSURE.get(key)
    if cached is not None:
        return cached
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if _is_package(current) and current != name:
            continue  # a package's __init__ is hashed, its imports (registrations) not followed
        for module, names in _imports(current):
            if _in(module, scope):
                todo.extend(m for m in _resolve(module, names) if m not in seen)
    result = tuple(sorted(seen))
    with _LOCK:
        _CLOSURE[key] = result
    return result


def modules_fingerprint(names: Iterable[str]) -> str:
    """sha256 over (module name, sha256 of its source) for each module, in name order."""
    h = hashlib.sha256()
    for name in sorted(set(names)):
        h.update(f"{name}\0{_file_hash(module_file(name))}\n".encode())
    return h.hexdigest()


def files_fingerprint(files: Iterable[Path], *, root: Path) -> str:
    """sha256 over (path relative to ``root``, sha256 of its bytes) for each file, in order."""
    h = hashlib.sha256()
    for path in sorted({Path(f).resolve() for f in files}):
        rel = path.relative_to(root.resolve()) if path.is_relative_to(root.resolve()) else path
        h.update(f"{rel.as_posix()}\0{_file_hash(path)}\n".encode())
    return h.hexdigest()
