"""The graph layer: ``gradlens.graph(obj)`` turns the backward graph behind tensors of either engine into a
``networkx.DiGraph`` of plain data (schema in ``gradlens.graphs.schema``); ``fold`` collapses repeated
blocks.

The package is named ``graphs`` so that the public function ``gradlens.graph`` and this package never
share a name (importing a submodule binds the package's name on its parent).
"""

from __future__ import annotations

from . import schema
from .fold import fold
from .walk import DEFAULT_MAX_NODES, graph

__all__ = ["graph", "fold", "schema", "DEFAULT_MAX_NODES"]
