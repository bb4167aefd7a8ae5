"""``t_probe``: a test node type that logs the process it runs in (pid, parent pid) and how many
times it ran in that process: a flow-run process that served an earlier run would say 2 or more.
Importing this module registers nothing (``tests.deployments.warmnodes`` does)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nodes.base import Node, Params, Port, PortType

_RUNS_IN_THIS_PROCESS = 0


class ProbeParams(Params):
    tag: str = ""


class TProbe(Node):
    """Passes its series through; logs ``probe pid=<pid> ppid=<ppid> runs=<n>``."""

    name = "t_probe"
    inputs = (Port("series", PortType.SERIES),)
    outputs = (Port("value", PortType.SERIES),)
    params_model = ProbeParams

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        global _RUNS_IN_THIS_PROCESS
        _RUNS_IN_THIS_PROCESS += 1
        self.ctx.log(f"probe pid={os.getpid()} ppid={os.getppid()} runs={_RUNS_IN_THIS_PROCESS}")
        return {"value": inputs["series"]}
