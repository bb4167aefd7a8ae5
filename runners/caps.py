"""The operator's sandbox caps: ``AdminCaps`` from settings, within the platform's ceilings.

An operator sets the defaults and per-node caps of sandboxed executions with environment
variables (``ALPHAFORGE_SANDBOX_<FIELD>``, pydantic-settings), e.g.
``ALPHAFORGE_SANDBOX_MAX_MEMORY_MB=4096``. Every field has a hard ceiling (:data:`CEILINGS`)
that keeps SECURITY.md's guarantees — no swap-sized memory, bounded processes, bounded wall
time and output — and a floor (a zero or negative value would mean "unlimited" to Docker for
pids, or nothing could run). A value outside them, or a default above its own cap, is refused
when the sandbox starts (:func:`operator_caps`, called before any user code runs), with an
error naming the variable, the value and the limit.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache
from typing import Literal

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from nodes.errors import AlphaForgeError
from runners.custom import MIB, AdminCaps

__all__ = [
    "CEILINGS",
    "ENV_PREFIX",
    "FLOORS",
    "SandboxBackendSettings",
    "SandboxSettings",
    "SandboxSettingsError",
    "operator_caps",
    "sandbox_backend",
]

ENV_PREFIX = "ALPHAFORGE_SANDBOX_"

# The most an operator may allow (per execution). Raising one is a security decision: change it
# here, in review, with SECURITY.md — never from a deployment's environment.
CEILINGS: dict[str, float] = {
    "memory_mb": 8192,
    "max_memory_mb": 8192,
    "cpus": 8.0,
    "max_cpus": 8.0,
    "wall_s": 3600.0,
    "max_wall_s": 3600.0,  # training nodes: larger than the 30 s default, still bounded
    "output_mb": 1024,
    "max_output_mb": 1024,
    "pids": 256,
    "log_bytes": 16 * MIB,
    "tmp_mb": 256,
    "wasm_fuel": 1_000_000_000_000,
}
# The least that still runs a node (and, for pids, is not Docker's "unlimited").
FLOORS: dict[str, float] = {
    "memory_mb": 64,
    "max_memory_mb": 64,
    "cpus": 0.1,
    "max_cpus": 0.1,
    "wall_s": 1.0,
    "max_wall_s": 1.0,
    "output_mb": 1,
    "max_output_mb": 1,
    "pids": 8,
    "log_bytes": 4096,
    "tmp_mb": 1,
    "wasm_fuel": 1_000_000,
}
# default field -> the cap it may not exceed
_PAIRS = {
    "memory_mb": "max_memory_mb",
    "cpus": "max_cpus",
    "wall_s": "max_wall_s",
    "output_mb": "max_output_mb",
}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class SandboxSettingsError(AlphaForgeError):
    """An operator's sandbox setting is outside what the platform allows."""

    code = "AF770"


_DEFAULTS = AdminCaps()


class SandboxSettings(BaseSettings):
    """``AdminCaps`` as settings (env prefix ``ALPHAFORGE_SANDBOX_``); defaults = SECURITY.md's."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    memory_mb: int = _DEFAULTS.memory_mb
    max_memory_mb: int = _DEFAULTS.max_memory_mb
    cpus: float = _DEFAULTS.cpus
    max_cpus: float = _DEFAULTS.max_cpus
    wall_s: float = _DEFAULTS.wall_s
    max_wall_s: float = _DEFAULTS.max_wall_s
    output_mb: int = _DEFAULTS.output_mb
    max_output_mb: int = _DEFAULTS.max_output_mb
    pids: int = _DEFAULTS.pids
    log_bytes: int = _DEFAULTS.log_bytes
    tmp_mb: int = _DEFAULTS.tmp_mb
    wasm_fuel: int = _DEFAULTS.wasm_fuel

    def problems(self) -> list[str]:
        """Every value outside its floor or ceiling, and every default above its cap."""
        out: list[str] = []
        for name in CEILINGS:
            value = getattr(self, name)
            env = ENV_PREFIX + name.upper()
            if value > CEILINGS[name]:
                out.append(
                    f"{env}={_fmt(value)} is above the ceiling {_fmt(CEILINGS[name])} "
                    "(SECURITY.md; the ceilings are in runners/caps.py)"
                )
            elif value < FLOORS[name]:
                out.append(f"{env}={_fmt(value)} is below the floor {_fmt(FLOORS[name])}")
        for default, cap in _PAIRS.items():
            if getattr(self, default) > getattr(self, cap):
                out.append(
                    f"{ENV_PREFIX}{default.upper()}={_fmt(getattr(self, default))} is above "
                    f"{ENV_PREFIX}{cap.upper()}={_fmt(getattr(self, cap))}"
                )
        return out

    def caps(self) -> AdminCaps:
        """The checked caps; raises :class:`SandboxSettingsError` listing every problem."""
        problems = self.problems()
        if problems:
            raise SandboxSettingsError("refusing to start the sandbox: " + "; ".join(problems))
        return AdminCaps(**{f.name: getattr(self, f.name) for f in fields(AdminCaps)})


def read_settings() -> SandboxSettings:
    """The settings from the environment; a value that is not a number is a clear error."""
    try:
        return SandboxSettings()
    except ValidationError as exc:
        bad = "; ".join(
            f"{ENV_PREFIX}{str(e['loc'][0]).upper()}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise SandboxSettingsError(f"refusing to start the sandbox: {bad}") from None


@lru_cache(maxsize=1)
def _cached() -> AdminCaps:
    return read_settings().caps()


class SandboxBackendSettings(BaseSettings):
    """Where sandboxes run: containers of this host's Docker engine, or pods of the cluster this
    process runs in (:mod:`runners.k8s`). Read on its own: a bad cap does not hide it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    backend: Literal["docker", "kubernetes"] = "docker"


def sandbox_backend() -> str:
    """``ALPHAFORGE_SANDBOX_BACKEND``: ``docker`` (default) or ``kubernetes``; anything else is
    a :class:`SandboxSettingsError` naming it."""
    try:
        return SandboxBackendSettings().backend
    except ValidationError as exc:
        got = exc.errors()[0].get("input")
        raise SandboxSettingsError(
            f"refusing to start the sandbox: {ENV_PREFIX}BACKEND={got!r} is not one of "
            "'docker', 'kubernetes'"
        ) from None


def clear_operator_caps() -> None:
    """Forget the caps read by :func:`operator_caps` (the next call reads the environment)."""
    _cached.cache_clear()


def operator_caps(*, fresh: bool = False) -> AdminCaps:
    """The operator's caps for this process (read once; ``fresh`` re-reads the environment).

    Raises :class:`SandboxSettingsError` when a setting is outside its ceiling or floor.
    """
    if fresh:
        clear_operator_caps()
    return _cached()
