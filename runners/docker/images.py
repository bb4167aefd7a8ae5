"""Which sandbox image runs which language, and its digest for the run record.

Defaults are the images ``infra/build_sandbox_images.sh`` builds offline, at the tag
``ALPHAFORGE_SANDBOX_TAG`` (default ``latest``; the build points the same tag at what it built, so
two checkouts on one engine each use their own); production points the
``ALPHAFORGE_SANDBOX_IMAGE_PYTHON`` / ``..._NODE`` variables at images built from
``infra/Dockerfile.sandbox-python`` / ``-node``. WebAssembly runs under wasmtime in the Python
image, and so does torch for Python nodes that train a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import docker
from docker.errors import ImageNotFound

from runners.base import RunnerError

__all__ = ["SandboxImages", "image_digest"]


TAG_ENV = "ALPHAFORGE_SANDBOX_TAG"


def _image(name: str, repository: str) -> str:
    """``name``'s value, else the offline build's image at ``ALPHAFORGE_SANDBOX_TAG``."""
    return os.environ.get(name) or f"{repository}:{os.environ.get(TAG_ENV) or 'latest'}"


@dataclass(frozen=True)
class SandboxImages:
    """Image names by runtime."""

    python: str = field(
        default_factory=lambda: _image(
            "ALPHAFORGE_SANDBOX_IMAGE_PYTHON", "alphaforge/sandbox-python"
        )
    )
    node: str = field(
        default_factory=lambda: _image("ALPHAFORGE_SANDBOX_IMAGE_NODE", "alphaforge/sandbox-node")
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
