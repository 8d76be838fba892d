"""The schema of the graphs ``gradlens.graph()`` returns: attribute names as constants, and their meaning.

A graph is a ``networkx.DiGraph`` of plain data (strings, ints, tuples, None): it never holds a tensor,
a node or a module, so it can be stored, compared and tested without any engine.

**Edge direction: data flow.** An edge ``u -> v`` means the output of ``u`` is an input of ``v`` (``u``
is an entry of ``v.next_functions``). Leaves and parameters are sources; the root (the loss's
``grad_fn``) is a sink. Gradients flow against the edges.

Node ids are strings ``"n0"``, ``"n1"``, ... numbered in the order of a deterministic depth-first walk
from the roots (root first, inputs in argument order), so the same code gives the same ids on every run
and every training step; they are never memory addresses. Placeholders standing for unwalked parts of a
truncated graph are ``"t0"``, ``"t1"``, ...

Node attributes:
    ``NAME`` (str): the op name as torch prints it, namespace stripped: ``MulBackward0``,
        ``AccumulateGrad``. For placeholders: ``"truncated"`` or ``"no grad"``.
    ``KIND`` (str): one of ``KINDS``: ``"root"`` (the grad_fn of a tensor the graph was asked for),
        ``"op"`` (any other backward op), ``"param"`` (the accumulator of a parameter: a named
        parameter, or an ``nn.Parameter``), ``"leaf"`` (the accumulator of another leaf that requires
        grad), ``"truncated"`` (placeholder: the walk stopped here), ``"nograd"`` (placeholder: the
        tensor asked for needs no grad, so it has no graph), ``"fold"`` (made by ``fold()``: stands for
        the hidden repetitions of a repeated block).
    ``SHAPES`` (tuple of tuples): shapes of the node's forward outputs; for leaves, the leaf's shape.
    ``DTYPES`` (tuple of str): dtype names parallel to ``SHAPES`` (``"float32"``).
    ``SAVED_BYTES`` (int | None): bytes of the tensors the node holds for backward, counting each
        storage once and excluding parameters and other leaves; 0 once backward freed them; None when
        not measured (``saved=False``).
    ``SAVED_SHAPES`` (tuple of tuples), ``SAVED_DTYPES`` (tuple of str): shape and dtype name of each tensor
        counted in ``SAVED_BYTES``, in the order the node saved them (a tensor saved twice is listed twice);
        set only when measured.
    ``SAVED_FREED`` (bool): backward freed the node's saved tensors (``SAVED_BYTES`` is 0 because of that,
        not because the op saves nothing); set only when measured.
    ``PARAM`` (str | None): for leaves, the parameter name from ``params`` (None when unknown).
    ``STEP`` (int | None): the training step in which the node was created, when the graph was captured
        under ``gradlens.watch`` (metadata key ``gradlens.step``).
    ``MODULE`` (str | None): dotted name of the module whose forward created the node, when known
        (metadata key ``gradlens.module``).
    ``COUNT`` (int): on ``"truncated"`` placeholders (one per input node the walk did not reach), how many
        walked ops need that input (it has an edge to each); on ``"fold"`` nodes,
        how many times the folded block repeats in all.
    ``FOLD`` (str): set only by ``gradlens.graphs.fold``: the id of the fold (``"f0"``) that a kept block's
        nodes and its ``"fold"`` node belong to.
    ``TRUNCATED_INPUTS`` (int): set only on ``"fold"`` nodes: how many ``"truncated"`` placeholders the fold
        hides (inputs of the hidden repetitions that the walk did not reach; 0 when the walk was complete).

Edge attributes:
    ``SLOTS`` (tuple of int): the positions in the consumer's ``next_functions`` that this producer
        fills (``x * x`` gives one edge with slots ``(0, 1)``).
    ``OUTPUT_NRS`` (tuple of int): for each slot, which output of the producer it is.

Graph attributes (``G.graph``):
    ``ENGINE`` (str): ``"torch"`` or ``"native"``.
    ``NODE_COUNT`` (int): autograd nodes in the graph (placeholders excluded).
    ``SAVED_BYTES`` (int | None): bytes saved for backward by the whole graph, each storage counted once
        (a storage shared by two nodes counts in both nodes' ``SAVED_BYTES`` but once here). A saved view
        (a slice of a batch) counts its whole storage: that is the memory it keeps alive.
    ``SAVED_FREED`` (int | None): how many nodes had their saved tensors freed by backward (a graph kept
        after ``backward()`` holds its nodes, not its activations); None when not measured.
    ``TRUNCATED`` (bool): whether the walk stopped at ``MAX_NODES`` before seeing the whole graph.
    ``MAX_NODES`` (int | None): the cap the walk used.
    ``ROOTS`` (tuple of str): ids of the roots, in the order they were given.
    ``SCHEMA_VERSION`` (int): ``VERSION``.
"""

from __future__ import annotations

__all__ = ["VERSION", "NAME", "KIND", "SHAPES", "DTYPES", "SAVED_BYTES", "SAVED_SHAPES", "SAVED_DTYPES",
           "SAVED_FREED", "PARAM", "STEP", "MODULE", "COUNT",
           "FOLD", "TRUNCATED_INPUTS", "SLOTS", "OUTPUT_NRS", "ENGINE", "NODE_COUNT", "TRUNCATED", "MAX_NODES",
           "ROOTS", "SCHEMA_VERSION", "KIND_ROOT", "KIND_OP", "KIND_PARAM", "KIND_LEAF", "KIND_TRUNCATED",
           "KIND_NOGRAD", "KIND_FOLD", "KINDS", "LEAF_KINDS"]

VERSION = 1

# node attributes
NAME = "name"
KIND = "kind"
SHAPES = "shapes"
DTYPES = "dtypes"
SAVED_BYTES = "saved_bytes"
SAVED_SHAPES = "saved_shapes"
SAVED_DTYPES = "saved_dtypes"
SAVED_FREED = "saved_freed"
PARAM = "param"
STEP = "step"
MODULE = "module"
COUNT = "count"
FOLD = "fold"
TRUNCATED_INPUTS = "truncated_inputs"

# edge attributes
SLOTS = "slots"
OUTPUT_NRS = "output_nrs"

# graph attributes (SAVED_BYTES and SAVED_FREED are shared with nodes)
ENGINE = "engine"
NODE_COUNT = "node_count"
TRUNCATED = "truncated"
MAX_NODES = "max_nodes"
ROOTS = "roots"
SCHEMA_VERSION = "schema_version"

# values of KIND
KIND_ROOT = "root"
KIND_OP = "op"
KIND_PARAM = "param"
KIND_LEAF = "leaf"
KIND_TRUNCATED = "truncated"
KIND_NOGRAD = "nograd"
KIND_FOLD = "fold"
KINDS = (KIND_ROOT, KIND_OP, KIND_PARAM, KIND_LEAF, KIND_TRUNCATED, KIND_NOGRAD, KIND_FOLD)
LEAF_KINDS = (KIND_PARAM, KIND_LEAF)
