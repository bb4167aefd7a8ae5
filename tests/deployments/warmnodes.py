"""Imported by the flow-run processes of the warm-worker tests (``ALPHAFORGE_EXTRA_NODE_MODULES``):
registers the ``t_*`` test node types and ``t_probe`` (:mod:`tests.deployments.probenode`)."""

from nodes.base import register, registry
from tests.deployments.probenode import TProbe
from tests.flows.testnodes import install

install()
if TProbe.name not in registry():
    register(TProbe)
