"""Semantic versions of custom nodes and the ``use name@spec`` ranges that select them.

Precedence is SemVer 2.0's (build metadata ignored, a pre-release sorts before its release).
Ranges follow npm: ``1.2`` and ``^1.2.3`` are caret ranges (the left-most non-zero part is
fixed), ``~1.2`` is a tilde range (the minor is fixed), ``=1.2.3`` is exact. A pre-release
version matches only a spec that names a pre-release of the same ``MAJOR.MINOR.PATCH``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SemVer", "VersionRange", "bump_patch", "parse_range"]

_VERSION = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_RANGE = re.compile(
    r"^(?P<op>[=^~]?)(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def _pre_key(pre: tuple[str, ...]) -> tuple[tuple[int, int | str], ...]:
    # numeric identifiers sort before alphanumeric ones, numerically among themselves
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre)


@dataclass(frozen=True)
class SemVer:
    """A parsed version; ordering is SemVer precedence."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``MAJOR.MINOR.PATCH[-pre][+build]``; ValueError otherwise."""
        m = _VERSION.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        pre = tuple(m.group(4).split(".")) if m.group(4) else ()
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre)

    @property
    def core(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``."""
        return (self.major, self.minor, self.patch)

    def key(self) -> tuple[object, ...]:
        """A sort key giving SemVer precedence."""
        return (*self.core, 0 if self.pre else 1, _pre_key(self.pre))

    def __lt__(self, other: SemVer) -> bool:
        return self.key() < other.key()

    def __le__(self, other: SemVer) -> bool:
        return self.key() <= other.key()

    def __gt__(self, other: SemVer) -> bool:
        return self.key() > other.key()

    def __ge__(self, other: SemVer) -> bool:
        return self.key() >= other.key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.pre)}" if self.pre else core


def bump_patch(latest: str) -> str:
    """The next version after ``latest`` when none is given: the patch + 1 (a pre-release of
    ``1.2.3`` becomes ``1.2.3`` itself, as ``npm version patch`` does)."""
    v = SemVer.parse(latest)
    if v.pre:
        return f"{v.major}.{v.minor}.{v.patch}"
    return f"{v.major}.{v.minor}.{v.patch + 1}"


@dataclass(frozen=True)
class VersionRange:
    """``low <= v < high`` (``high`` None: exactly ``low``), plus the pre-release rule."""

    text: str
    low: SemVer
    high: SemVer | None

    def matches(self, version: SemVer) -> bool:
        """Whether ``version`` is in the range."""
        if version.pre and not (self.low.pre and self.low.core == version.core):
            return False
        if self.high is None:
            return version.key() == self.low.key()
        return self.low <= version < self.high


def parse_range(spec: str) -> VersionRange:
    """``1.2`` / ``^1.2.3`` (caret), ``~1.2`` (tilde), ``=1.2.3`` (exact); ValueError otherwise."""
    m = _RANGE.match(spec)
    if not m or (m["op"] == "=" and m["patch"] is None):
        raise ValueError(f"malformed version range {spec!r}")
    parts = [m["major"], m["minor"], m["patch"]]
    given = sum(p is not None for p in parts)
    major, minor, patch = (int(p) if p is not None else 0 for p in parts)
    pre = tuple(m["pre"].split(".")) if m["pre"] else ()
    low = SemVer(major, minor, patch, pre)
    if m["op"] == "=":
        return VersionRange(spec, low, None)
    if m["op"] == "~":
        high = SemVer(major + 1, 0, 0) if given == 1 else SemVer(major, minor + 1, 0)
        return VersionRange(spec, low, _floor(high))
    # caret: the left-most non-zero part (among those given) may not change
    if major > 0 or given == 1:
        high = SemVer(major + 1, 0, 0)
    elif minor > 0 or given == 2:
        high = SemVer(0, minor + 1, 0)
    else:
        high = SemVer(0, 0, patch + 1)
    return VersionRange(spec, low, _floor(high))


def _floor(v: SemVer) -> SemVer:
    # an exclusive upper bound excludes that version's pre-releases too (``<2.0.0-0``)
    return SemVer(v.major, v.minor, v.patch, ("0",))
