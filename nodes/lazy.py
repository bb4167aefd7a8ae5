"""Deferred imports of the numeric libraries (numpy, pandas, pyarrow).

Importing the node modules registers the node types: the compiler, the editor's catalog and the
CLI need only their names, ports and params models, not pandas (0.3-0.5 s to import). A module
binds its alias to a :class:`LazyModule` instead::

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas", globals(), "pd")

The first attribute access imports the real module (``importlib.import_module``: thread-safe,
Python's import lock) and rebinds the alias in the owner's globals, so later accesses — hot
loops included — go straight to the module. Annotations stay plain (``from __future__ import
annotations``); nothing at module level may touch the alias.

Code compiled by numba must not see a stand-in: numba reads a function's globals when it
compiles, and a :class:`LazyModule` is an object it cannot type ("Untyped global name 'np'").
Such code calls :func:`resolve_lazy` on its module's globals before compiling (see
``nodes/builtin/_kernel.py``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "lazy_module", "resolve_lazy"]


class LazyModule:
    """A stand-in for a module, imported at its first attribute access."""

    __slots__ = ("_alias", "_name", "_owner")

    def __init__(self, name: str, owner: dict[str, Any], alias: str) -> None:
        self._name = name
        self._owner = owner
        self._alias = alias

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def _load(self) -> ModuleType:
        """Import the module and rebind the alias in the owner (if it is still this one)."""
        module = importlib.import_module(self._name)
        if self._owner.get(self._alias) is self:
            self._owner[self._alias] = module
        return module

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str, owner: dict[str, Any], alias: str) -> Any:
    """A :class:`LazyModule` for ``name`` bound as ``alias`` in ``owner`` (a ``globals()``)."""
    return LazyModule(name, owner, alias)


def resolve_lazy(owner: dict[str, Any]) -> None:
    """Import every module still lazy in ``owner`` (a ``globals()``) and bind it in place.

    For code that something other than the interpreter reads the globals of — numba's
    compiler, which cannot type a :class:`LazyModule`.
    """
    for name, value in list(owner.items()):
        if isinstance(value, LazyModule):
            owner[name] = value._load()
