"""The Docker sandbox for user code (see runners/README.md and design/SECURITY.md).

``policy`` (the settings and their read-back check), ``engine`` (one container per execution,
watched), ``pool`` (pre-started single-use containers), ``images``, ``selftest`` (canaries),
``sweeper`` (leftovers), ``runner`` (:class:`DockerRunner` and :func:`user_code_runner`).
"""

from runners.docker.engine import DockerExecutor, docker_client
from runners.docker.images import SandboxImages
from runners.docker.policy import create_kwargs, policy_violations
from runners.docker.pool import WarmPool
from runners.docker.runner import DockerRunner, SandboxUnavailable, user_code_runner
from runners.docker.selftest import SelfTestReport, run_self_test
from runners.docker.sweeper import Sweeper, sweep

__all__ = [
    "DockerExecutor",
    "DockerRunner",
    "SandboxImages",
    "SandboxUnavailable",
    "SelfTestReport",
    "Sweeper",
    "WarmPool",
    "create_kwargs",
    "docker_client",
    "policy_violations",
    "run_self_test",
    "sweep",
    "user_code_runner",
]
