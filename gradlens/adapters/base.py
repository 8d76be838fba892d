"""The seam between gradlens and an autograd engine: one small read-only protocol per engine.

Only adapters (and the recorder) touch engine objects. The graph walker asks an adapter for a tensor's
backward node, a node's inputs and a plain-data description of the node, and builds a networkx graph
from the answers; nothing downstream ever holds a tensor or a node. The native engine mirrors torch's
``Node`` surface, so both adapters are small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = ["GraphAdapter", "NodeInfo", "STEP_KEY", "MODULE_KEY", "short_name"]

STEP_KEY = "gradlens.step"
"""Key in ``node.metadata`` holding the training step in which the node was created (set by watch)."""

MODULE_KEY = "gradlens.module"
"""Key in ``node.metadata`` holding the dotted name of the module whose forward created the node."""


class NodeInfo(NamedTuple):
    """Plain-data description of one backward node (an immutable tuple: cheap to make per node).

    Attributes:
        name: the node's name as torch prints it, namespace stripped (``MulBackward0``, ``AccumulateGrad``).
        leaf: True for the accumulator node behind a leaf tensor that requires grad.
        shapes: shapes of the node's forward outputs (for a leaf: the leaf tensor's shape).
        dtypes: dtype names of those outputs (``"float32"``), parallel to ``shapes``.
        step: the training step recorded under ``STEP_KEY`` in the node's metadata, if any.
        module: the module name recorded under ``MODULE_KEY`` in the node's metadata, if any.
        is_parameter: for leaves, whether the leaf tensor is an ``nn.Parameter``.
    """

    name: str
    leaf: bool = False
    shapes: tuple[tuple[int, ...], ...] = ()
    dtypes: tuple[str, ...] = ()
    step: int | None = None
    module: str | None = None
    is_parameter: bool = False


@runtime_checkable
class GraphAdapter(Protocol):
    """Read-only view of one engine's backward graph.

    Attributes:
        engine: ``"torch"`` or ``"native"``; stored on every graph the walker builds.
        max_safe_nodes: the most nodes a walk may visit without endangering the process (torch 2.13
            segfaults when freeing a long chain whose node wrappers a walk created), or None.
    """

    engine: str
    max_safe_nodes: int | None

    def owns(self, obj: Any) -> bool:
        """Whether ``obj`` is a tensor or a backward node of this engine."""

    def is_tensor(self, obj: Any) -> bool:
        """Whether ``obj`` is a tensor of this engine (else it is a node)."""

    def root_node(self, tensor: Any) -> Any | None:
        """The node backward starts from for ``tensor``: its ``grad_fn``, the accumulator of a leaf that
        requires grad, or None when the tensor needs no grad."""

    def next_functions(self, node: Any) -> Sequence[tuple[Any | None, int]]:
        """The node's input edges ``((node | None, output_nr), ...)`` in argument order."""

    def describe(self, node: Any) -> NodeInfo:
        """A plain-data description of ``node``."""

    def variable(self, node: Any) -> Any | None:
        """The leaf tensor behind an accumulator node, else None."""

    def saved_storages(self, node: Any) -> list[tuple[int, int]]:
        """``(storage key, bytes)`` of every tensor the node saved for backward (empty once freed)."""

    def storage_key(self, tensor: Any) -> int:
        """A key identifying the storage behind ``tensor`` (equal keys: shared memory)."""

    def tensor_info(self, tensor: Any) -> tuple[tuple[int, ...], str]:
        """``(shape, dtype name)`` of a tensor."""

    def grad_enabled(self) -> bool:
        """Whether grad mode is on in this engine."""


def short_name(name: str) -> str:
    """A node name without its C++ namespace (``torch::autograd::AccumulateGrad`` -> ``AccumulateGrad``)."""
    return name.rpartition("::")[2]


def dtype_name(dtype: Any) -> str:
    """``torch.float32`` / ``gradlens.engine.float32`` -> ``"float32"``."""
    return str(dtype).rpartition(".")[2]
