"""Which sandbox image runs which language, and its digest for the run record.

Defaults are the images ``infra/build_sandbox_images.sh`` builds offline; production points the
``ALPHAFORGE_SANDBOX_IMAGE_PYTHON`` / ``..._NODE`` variables at images built from
``infra/Dockerfile.sandbox-python`` / ``-node``. WebAssembly runs under wasmtime in the Python
image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import docker
from docker.errors import ImageNotFound

from runners.base import RunnerError

__all__ = ["SandboxImages", "image_digest"]


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class SandboxImages:
    """Image names by runtime."""

    python: str = field(
        default_factory=lambda: _env(
            "ALPHAFORGE_SANDBOX_IMAGE_PYTHON", "alphaforge/sandbox-python:latest"
        )
    )
    node: str = field(
        default_factory=lambda: _env(
            "ALPHAFORGE_SANDBOX_IMAGE_NODE", "alphaforge/sandbox-node:latest"
        )
    )

    def for_language(self, language: str) -> str:
        """The image that runs ``language`` (python, wasm: the Python image; javascript: node)."""
        return self.node if language == "javascript" else self.python


def image_digest(client: docker.DockerClient, name: str) -> str:
    """The image's registry digest if it has one, else its content-addressed id (sha256:...)."""
    try:
        image = client.images.get(name)
    except ImageNotFound:
        raise RunnerError(
            f"sandbox image {name!r} is missing; build it with infra/build_sandbox_images.sh"
        ) from None
    repo_digests = image.attrs.get("RepoDigests") or []
    return str(repo_digests[0] if repo_digests else image.id)
