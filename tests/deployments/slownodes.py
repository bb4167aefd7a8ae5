"""Imported by the worker's flow-run processes in tests (``ALPHAFORGE_EXTRA_NODE_MODULES``):
registers the ``t_*`` test node types (``t_sleep`` makes a run slow enough to cancel)."""

from tests.flows.testnodes import install

install()
