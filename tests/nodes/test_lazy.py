"""The lazy module stand-ins: imported at first use, rebound in the owner, resolvable at once."""

from __future__ import annotations

import json
from typing import Any

from nodes.lazy import LazyModule, lazy_module, resolve_lazy


def test_first_attribute_access_imports_and_rebinds_the_alias() -> None:
    owner: dict[str, Any] = {}
    owner["js"] = lazy_module("json", owner, "js")
    assert isinstance(owner["js"], LazyModule)
    assert owner["js"].dumps([1]) == "[1]"
    assert owner["js"] is json


def test_resolve_lazy_binds_every_stand_in_and_leaves_the_rest() -> None:
    owner: dict[str, Any] = {"x": 1}
    owner["js"] = lazy_module("json", owner, "js")
    copy = dict(owner)  # a copied namespace (as the kernel's compiled twin uses) resolves too
    resolve_lazy(copy)
    assert copy == {"x": 1, "js": json}
    assert owner["js"] is json  # the owner got the real module as well
    resolve_lazy(owner)  # idempotent
    assert owner == {"x": 1, "js": json}
