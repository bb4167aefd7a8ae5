"""The API as its own process with Docker out of reach (for ``test_api_without_docker.py``).

``python -m tests.api.nodocker_api PORT`` serves the API (settings from ``ALPHAFORGE_*``) after
making every Docker client construction in this process fail: each attempt is appended, with
its stack, to the file ``$AF_DOCKER_ATTEMPTS`` and raises ``DockerException``. Run it with
``DOCKER_HOST`` pointing nowhere too, so not even a client built behind the guard's back could
reach an engine.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

ATTEMPTS_ENV = "AF_DOCKER_ATTEMPTS"


def install_guard(record: Path) -> None:
    """Make ``docker.APIClient`` (under every ``DockerClient`` and ``from_env``) refuse."""
    import docker.api.client
    from docker.errors import DockerException

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        with record.open("a") as out:
            out.write("".join(traceback.format_stack()) + "\n----\n")
        raise DockerException("Docker is out of reach of the API process")

    docker.api.client.APIClient.__init__ = refuse  # type: ignore[method-assign]


def main() -> None:
    """Serve the API on ``127.0.0.1:<argv[1]>`` behind the guard."""
    install_guard(Path(os.environ[ATTEMPTS_ENV]))
    from api.server import serve

    serve(host="127.0.0.1", port=int(sys.argv[1]))


if __name__ == "__main__":
    main()
