"""Semantic versions and the ``use`` ranges that select custom node versions."""

from __future__ import annotations

import pytest

from dsl.semver import SemVer, bump_patch, parse_range

VERSIONS = ["0.0.3", "0.2.1", "0.2.9", "1.0.0", "1.2.0", "1.2.7", "1.3.0-beta.1", "1.3.0", "2.0.0"]


def best(spec: str, versions: list[str] = VERSIONS) -> str | None:
    wanted = parse_range(spec)
    found = [v for v in map(SemVer.parse, versions) if wanted.matches(v)]
    return str(max(found)) if found else None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1", "1.3.0"),
        ("1.2", "1.3.0"),  # a bare range is caret
        ("^1.2.7", "1.3.0"),
        ("^1.2.8", "1.3.0"),
        ("^2", "2.0.0"),
        ("^3", None),
        ("^0.2", "0.2.9"),  # caret below 1.0 fixes the minor
        ("^0.2.5", "0.2.9"),
        ("^0.0.3", "0.0.3"),  # ... and below 0.1 the patch
        ("0", "0.2.9"),
        ("~1.2", "1.2.7"),  # tilde fixes the minor
        ("~1.2.3", "1.2.7"),
        ("~1", "1.3.0"),
        ("=1.2.0", "1.2.0"),
        ("=1.2.1", None),
    ],
)
def test_ranges_pick_the_highest_matching_version(spec: str, expected: str | None) -> None:
    assert best(spec) == expected


def test_pre_releases_match_only_a_spec_naming_one_of_the_same_version() -> None:
    assert best("^1.3.0-beta.0") == "1.3.0"
    assert best("^1.3.0-beta.0", ["1.2.0", "1.3.0-beta.1"]) == "1.3.0-beta.1"
    assert best("^1.2", ["1.2.0", "1.3.0-beta.1"]) == "1.2.0"
    assert best("=1.3.0-beta.1") == "1.3.0-beta.1"
    assert best("~1.3.0-beta.2", ["1.3.0-beta.1"]) is None
    assert best("^1.2.0-rc.1", ["1.3.0-beta.1"]) is None  # another version's pre-release


def test_precedence_follows_semver() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]  # fmt: skip
    assert sorted(map(SemVer.parse, reversed(order))) == [SemVer.parse(v) for v in order]
    assert SemVer.parse("1.0.0+build.5").key() == SemVer.parse("1.0.0").key()


def test_bump_patch() -> None:
    assert bump_patch("1.2.3") == "1.2.4"
    assert bump_patch("1.2.3-rc.1") == "1.2.3"
    assert bump_patch("0.0.0+meta") == "0.0.1"


@pytest.mark.parametrize("bad", ["", "v1", "=1.2", "1.2.3.4", "^", "1.x"])
def test_malformed_ranges_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_range(bad)


@pytest.mark.parametrize("bad", ["1.2", "01.2.3", "1.2.3-", "1.2.3-a..b"])
def test_malformed_versions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        SemVer.parse(bad)
