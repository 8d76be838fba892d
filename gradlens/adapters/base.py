"""The seam between gradlens and an autograd engine: one small read-only protocol per engine.

Only adapters (and the recorder) touch engine objects. The graph walker asks an adapter for a tensor's
backward node, a node's inputs and a plain-data description of the node, and builds a networkx graph
from the answers; nothing downstream ever holds a tensor or a node. The native engine mirrors torch's
``Node`` surface, so both adapters are small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = ["GraphAdapter", "NodeInfo", "SavedInfo", "STEP_KEY", "MODULE_KEY", "short_name", "tensors_in"]

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


class SavedInfo(NamedTuple):
    """One tensor a node holds for backward, as plain data.

    Attributes:
        storage: a key of the memory behind the tensor (equal keys: shared memory, counted once).
        nbytes: bytes of that whole memory (a saved slice keeps its whole base alive).
        shape: the saved tensor's shape.
        dtype: its dtype name (``"float32"``).
    """

    storage: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: str


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

    def saved_tensors(self, node: Any) -> list[SavedInfo] | None:
        """The tensors the node holds for backward, read without running unpack hooks (under
        ``saved_tensors_hooks``: the tensors held by what the pack hook returned); None once backward freed
        them."""

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


def tensors_in(value: Any, is_tensor: Callable[[Any], bool]) -> list:
    """The tensors a saved value holds: the value itself when it is a tensor; for what a pack hook returned,
    the tensors among its items (a tuple or list: ``save_on_cpu`` packs ``(device, tensor)``) or its
    attributes (a holder object, such as gradlens's own pack holder). One level deep; anything else
    (``checkpoint``'s handles, ids) holds no tensor we can see."""
    if value is None:
        return []
    if is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        items = value
    else:
        attrs = getattr(value, "__dict__", None)
        items = list(attrs.values()) if isinstance(attrs, dict) else []
        for cls in type(value).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                try:
                    items.append(getattr(value, name))
                except AttributeError:  # an unset slot
                    pass
    return [v for v in items if is_tensor(v)]
