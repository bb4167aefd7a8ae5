"""`dataset("name@version")` steps: resolved by the compiler to exact versions in the IR."""

from __future__ import annotations

import pytest

from dsl.catalogref import DatasetLookupError, floating_steps
from dsl.compiler import compile_source

V1 = "a1" * 32
V2 = "b2" * 32


class FakeCatalog:
    """Two versions of `eq`; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def resolve(self, name: str, version: str | None) -> str:
        self.asked.append((name, version))
        if name != "eq":
            raise DatasetLookupError(f"no dataset named {name!r} (datasets: eq)", ["eq"])
        if version is None:
            return V2
        hits = [v for v in (V1, V2) if v.startswith(version)]
        if len(hits) != 1:
            raise DatasetLookupError(f"dataset 'eq' has no version {version!r}")
        return hits[0]


def _src(call: str) -> str:
    return f"pipeline p\ndata = {call}\nfast = sma(data.close, window=3)\n"


def test_name_resolves_to_latest_full_version_in_ir() -> None:
    cat = FakeCatalog()
    result = compile_source(_src('dataset("eq")'), catalog=cat)
    assert result.ok, result.diagnostics
    params = result.ir.node("data").params
    assert params["name"] == "eq" and params["version"] == V2
    assert [n.id for n in floating_steps(result.ir.nodes)] == ["data"]
    assert cat.asked == [("eq", None)]


def test_version_prefix_resolves_and_changes_the_ir_hash() -> None:
    cat = FakeCatalog()
    old = compile_source(_src('dataset("eq@a1a1a1")'), catalog=cat).ir
    new = compile_source(_src('dataset("eq")'), catalog=cat).ir
    assert old.node("data").params["version"] == V1
    assert old.node("data").params["name"] == "eq@a1a1a1" and floating_steps(old.nodes) == []
    assert old.content_hash() != new.content_hash()


def test_keyword_name_and_pinned_version_are_checked() -> None:
    result = compile_source(_src(f'dataset(name="eq", version="{V1}")'), catalog=FakeCatalog())
    assert result.ok and result.ir.node("data").params["version"] == V1
    assert result.ir.node("data").params["name"] == f"eq@{V1}"  # pinned, so it never floats
    assert floating_steps(result.ir.nodes) == []
    bad = compile_source(_src(f'dataset(name="eq@b2b2b2", version="{V1}")'), catalog=FakeCatalog())
    assert [d.code for d in bad.diagnostics] == ["AF212"]
    assert "disagree" in bad.diagnostics[0].message


def test_unknown_dataset_is_af212_at_the_string_with_a_suggestion() -> None:
    result = compile_source(_src('dataset("eqq")'), catalog=FakeCatalog())
    (diag,) = result.diagnostics
    assert (diag.code, diag.line, diag.col) == ("AF212", 2, 16)
    assert "no dataset named 'eqq'" in diag.message and '"eq"' in diag.message
    assert result.ir is None


def test_unknown_version_is_af212() -> None:
    result = compile_source(_src('dataset("eq@ffffff")'), catalog=FakeCatalog())
    assert [d.code for d in result.diagnostics] == ["AF212"]
    assert "no version 'ffffff'" in result.diagnostics[0].message


def test_warning_severity_keeps_the_ir() -> None:
    result = compile_source(
        _src('dataset("nope")'), catalog=FakeCatalog(), dataset_severity="warning"
    )
    assert result.ir is not None
    assert [(d.code, d.severity) for d in result.diagnostics] == [("AF212", "warning")]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ('dataset("eq", "x")', "AF106"),
        ('dataset("9eq")', "AF105"),
        ('dataset("eq@XYZ")', "AF105"),
        ('dataset("eq", version="abc")', "AF105"),
        ('dataset("eq", name="eq")', "AF107"),
    ],
)
def test_malformed_references_are_refused(call: str, code: str) -> None:
    result = compile_source(_src(call), catalog=FakeCatalog())
    assert code in [d.code for d in result.diagnostics], result.diagnostics


def test_without_a_catalog_the_reference_stays_for_the_run() -> None:
    result = compile_source(_src('dataset("eq@a1a1a1")'))
    assert result.ok
    assert result.ir.node("data").params["name"] == "eq@a1a1a1"
    assert result.ir.node("data").params["version"] is None


class KindCatalog(FakeCatalog):
    """`eq` holds bars (V1) and, from V2 on, order-book events."""

    def kind(self, version: str) -> str:
        return "ohlcv" if version == V1 else "ticks"


def test_a_step_naming_the_other_kind_of_dataset_is_af212_saying_which_node_reads_it() -> None:
    ticks = compile_source('pipeline p\nb = tick_data("eq@a1a1a1")\n', catalog=KindCatalog())
    assert [d.code for d in ticks.diagnostics] == ["AF212"]
    (said,) = [d.message for d in ticks.diagnostics]
    assert said == (
        f"eq@{V1[:12]} holds bars, not order-book events (ticks): tick_data(...) cannot read "
        "it; read it with dataset(...)"
    )
    assert ticks.diagnostics[0].line == 2
    bars = compile_source(_src('dataset("eq")'), catalog=KindCatalog())
    assert [d.code for d in bars.diagnostics] == ["AF212"]
    assert "holds order-book events (ticks), not bars" in bars.diagnostics[0].message
    ok = compile_source('pipeline p\nb = tick_data("eq")\n', catalog=KindCatalog())
    assert ok.ok and ok.ir.node("b").params["version"] == V2
    # a resolver that cannot say what a version holds checks names and versions only
    assert compile_source('pipeline p\nb = tick_data("eq@a1a1a1")\n', catalog=FakeCatalog()).ok
