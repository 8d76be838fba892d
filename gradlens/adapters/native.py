"""The adapter for gradlens's own numpy engine (``gradlens.engine``).

The engine mirrors torch's ``Node`` surface (``name()``, ``next_functions``, ``metadata``,
``_input_metadata``, ``_raw_saved_tensors``, ``AccumulateGrad.variable``), so this adapter is as small as
torch's. The engine is imported lazily, like torch: ``owns`` only claims objects when ``gradlens.engine``
is already loaded.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import MODULE_KEY, STEP_KEY, NodeInfo, SavedInfo, dtype_name, short_name, tensors_in

__all__ = ["NativeAdapter"]

_ENGINE = "gradlens.engine"


def _base_array(arr):
    """The array owning the memory behind ``arr`` (numpy views chain through ``.base``)."""
    base = arr
    while base.base is not None and hasattr(base.base, "__array_interface__"):
        base = base.base
    return base


class NativeAdapter:
    """Read-only view of ``gradlens.engine``'s autograd graph (see ``GraphAdapter``)."""

    engine = "native"
    max_safe_nodes: int | None = None  # pure-Python nodes free without recursion limits

    def __init__(self) -> None:
        self._dtypes: dict[Any, str] = {}

    def _mods(self):
        from gradlens.engine.autograd import graph
        from gradlens.engine.tensor import Tensor

        return Tensor, graph

    def owns(self, obj: Any) -> bool:
        if _ENGINE not in sys.modules:
            return False
        tensor_cls, graph = self._mods()
        return isinstance(obj, (tensor_cls, graph.Node))

    def is_tensor(self, obj: Any) -> bool:
        return isinstance(obj, self._mods()[0])

    def grad_enabled(self) -> bool:
        import gradlens.engine as ge

        return ge.is_grad_enabled()

    def root_node(self, tensor: Any) -> Any | None:
        fn = tensor.grad_fn
        if fn is not None:
            return fn
        if tensor.requires_grad:
            return tensor._grad_accumulator()
        return None

    def next_functions(self, node: Any):
        return node.next_functions

    def variable(self, node: Any) -> Any | None:
        return getattr(node, "variable", None)

    def describe(self, node: Any) -> NodeInfo:
        name = short_name(node.name())
        meta = node._meta or {}  # read without creating the dict
        if name == "AccumulateGrad":
            var = node.variable  # held weakly by the engine: None once only the graph refers to the leaf
            if var is None:
                return NodeInfo(name, True, (), (), meta.get(STEP_KEY), meta.get(MODULE_KEY))
            shape, dt = self.tensor_info(var)
            return NodeInfo(name, True, (shape,), (dt,), meta.get(STEP_KEY), meta.get(MODULE_KEY),
                            type(var).__name__ == "Parameter")
        shapes = []
        dts = []
        try:
            for m in node._input_metadata:
                shapes.append(tuple(m.shape))
                dts.append(self._dtype(m.dtype))
        except Exception:  # noqa: BLE001 - a malformed node must not break the walk: shapes unknown
            shapes, dts = [], []
        return NodeInfo(name, False, tuple(shapes), tuple(dts), meta.get(STEP_KEY), meta.get(MODULE_KEY))

    def _dtype(self, d: Any) -> str:
        s = self._dtypes.get(d)
        if s is None:
            s = self._dtypes[d] = dtype_name(d)
        return s

    def saved_tensors(self, node: Any) -> list[SavedInfo] | None:
        try:
            raw = node._raw_saved_tensors
        except RuntimeError:  # freed by backward
            return None
        out = []
        is_tensor = self.is_tensor
        for saved in raw:
            for t in tensors_in(saved.data, is_tensor):
                base = _base_array(t._data)
                out.append(SavedInfo(base.__array_interface__["data"][0], base.nbytes, tuple(t.shape),
                                     self._dtype(t.dtype)))
        return out

    def storage_key(self, tensor: Any) -> int:
        return _base_array(tensor._data).__array_interface__["data"][0]

    def tensor_info(self, tensor: Any) -> tuple[tuple[int, ...], str]:
        return tuple(tensor.shape), self._dtype(tensor.dtype)
