"""Importing this module registers the ``t_*`` test node types: name it in
``ALPHAFORGE_EXTRA_NODE_MODULES`` so that processes a test starts (a Dask cluster, a pool
worker) know them too."""

from tests.flows.testnodes import install

install()
