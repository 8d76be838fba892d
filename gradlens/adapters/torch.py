"""The adapter for PyTorch: reads torch's ``grad_fn`` graph as plain data.

torch is imported lazily: ``owns`` looks in ``sys.modules``, so an object can only be claimed when the
user has imported torch already, and ``import gradlens`` never imports it. Saved tensors are read through
``_raw_saved_*`` attributes and ``SavedTensor.data``, which does not call unpack hooks (so a watched run
is not disturbed); attributes raise after backward freed them, which means "nothing saved".
"""

from __future__ import annotations

import sys
from typing import Any

from .base import MODULE_KEY, STEP_KEY, NodeInfo, dtype_name

__all__ = ["TorchAdapter", "TORCH_MAX_SAFE_NODES"]

TORCH_MAX_SAFE_NODES = 30_000
"""Walks of torch graphs stop here. On torch 2.13 (CPU, 8 MiB stack) freeing a chain after a walk
created wrappers for about 50k of its nodes segfaults; 40k was measured safe."""

_RAW_PREFIX = "_raw_saved_"


class TorchAdapter:
    """Read-only view of torch's autograd graph (see ``GraphAdapter``)."""

    engine = "torch"
    max_safe_nodes: int | None = TORCH_MAX_SAFE_NODES

    def __init__(self) -> None:
        self._raw_attrs: dict[type, tuple[str, ...]] = {}
        self._dtypes: dict[Any, str] = {}
        self._torch = None

    # --- ownership ---------------------------------------------------------------------------------
    def _mod(self):
        if self._torch is None:
            import torch

            self._torch = torch
        return self._torch

    def owns(self, obj: Any) -> bool:
        torch = sys.modules.get("torch")
        if torch is None:
            return False
        return isinstance(obj, (torch.Tensor, torch.autograd.graph.Node))

    def is_tensor(self, obj: Any) -> bool:
        return isinstance(obj, self._mod().Tensor)

    def grad_enabled(self) -> bool:
        return self._mod().is_grad_enabled()

    # --- graph -------------------------------------------------------------------------------------
    def root_node(self, tensor: Any) -> Any | None:
        fn = tensor.grad_fn
        if fn is not None:
            return fn
        if tensor.requires_grad:
            return self._mod().autograd.graph.get_gradient_edge(tensor).node
        return None

    def next_functions(self, node: Any):
        return node.next_functions

    def variable(self, node: Any) -> Any | None:
        return getattr(node, "variable", None)

    def describe(self, node: Any) -> NodeInfo:
        name = type(node).__name__
        if name == "AccumulateGrad":
            meta = node.metadata
            var = getattr(node, "variable", None)
            if var is None:
                return NodeInfo(name, True, (), (), meta.get(STEP_KEY), meta.get(MODULE_KEY))
            shape, dt = self.tensor_info(var)
            return NodeInfo(name, True, (shape,), (dt,), meta.get(STEP_KEY), meta.get(MODULE_KEY),
                            isinstance(var, self._mod().nn.Parameter))
        dtypes = self._dtypes
        shapes = []
        dts = []
        try:
            for m in node._input_metadata:
                shapes.append(tuple(m.shape))
                d = m.dtype
                s = dtypes.get(d)
                if s is None:
                    s = dtypes[d] = dtype_name(d)
                dts.append(s)
        except (RuntimeError, AttributeError):  # e.g. nested tensors: shapes unknown, the walk goes on
            shapes, dts = [], []
        meta = node.metadata
        if meta:
            return NodeInfo(name, False, tuple(shapes), tuple(dts), meta.get(STEP_KEY), meta.get(MODULE_KEY))
        return NodeInfo(name, False, tuple(shapes), tuple(dts))

    # --- memory ------------------------------------------------------------------------------------
    def _raw_saved_names(self, cls: type) -> tuple[str, ...]:
        names = self._raw_attrs.get(cls)
        if names is None:
            names = self._raw_attrs[cls] = tuple(a for a in dir(cls) if a.startswith(_RAW_PREFIX))
        return names

    def saved_storages(self, node: Any) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for attr in self._raw_saved_names(type(node)):
            try:
                raw = getattr(node, attr)
                items = raw if isinstance(raw, (list, tuple)) else (raw,)
                for item in items:
                    t = item.data if item is not None else None
                    if t is not None:
                        st = t.untyped_storage()
                        out.append((st.data_ptr(), st.nbytes()))
            except RuntimeError:  # freed by backward
                return []
        if not out and hasattr(node, "saved_tensors"):  # custom autograd.Function
            try:
                for t in node.saved_tensors:
                    if t is not None:
                        st = t.untyped_storage()
                        out.append((st.data_ptr(), st.nbytes()))
            except RuntimeError:
                return []
        return out

    def storage_key(self, tensor: Any) -> int:
        return tensor.untyped_storage().data_ptr()

    def tensor_info(self, tensor: Any) -> tuple[tuple[int, ...], str]:
        d = tensor.dtype
        s = self._dtypes.get(d)
        if s is None:
            s = self._dtypes[d] = dtype_name(d)
        return tuple(tensor.shape), s
