"""Importing this module registers the ``t_*`` test node types: name it in
``ALPHAFORGE_EXTRA_NODE_MODULES`` so that processes a test starts (a sweep's process pool) know
them too."""

from tests.flows.testnodes import install

install()
