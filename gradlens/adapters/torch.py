"""The adapter for PyTorch: reads torch's ``grad_fn`` graph as plain data.

torch is imported lazily: ``owns`` looks in ``sys.modules``, so an object can only be claimed when the
user has imported torch already, and ``import gradlens`` never imports it. Saved tensors are read through
``_raw_saved_*`` attributes and ``SavedTensor.data``, which does not call unpack hooks (so a watched run
is not disturbed): ``data`` is the tensor, or under ``saved_tensors_hooks`` what the pack hook returned,
and None once backward freed it (then the ``_saved_*`` twin raises) or when the formula did not need it
(the twin gives None). A custom ``autograd.Function``'s ``_raw_saved_tensors`` raises once freed.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import MODULE_KEY, STEP_KEY, NodeInfo, SavedInfo, dtype_name, tensors_in

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

    def saved_tensors(self, node: Any) -> list[SavedInfo] | None:
        out: list[SavedInfo] = []
        is_tensor = self.is_tensor
        for attr in self._raw_saved_names(type(node)):
            try:
                raw = getattr(node, attr)
            except RuntimeError:  # a custom Function's _raw_saved_tensors, freed by backward
                return None
            for item in raw if isinstance(raw, (list, tuple)) else (raw,):
                data = item if item is None or is_tensor(item) else item.data
                if data is None:
                    if self._freed(node, attr):
                        return None
                    continue  # not saved: the formula did not need it
                for t in tensors_in(data, is_tensor):
                    st = t.untyped_storage()
                    out.append(SavedInfo(st.data_ptr(), st.nbytes(), tuple(t.shape), self._dtype(t.dtype)))
        return out

    @staticmethod
    def _freed(node: Any, raw_attr: str) -> bool:
        """Whether an empty ``_raw_saved_*`` slot was freed by backward (its unpacking attribute raises) or
        never filled (it gives None). Nothing was packed in either case, so no unpack hook runs."""
        try:
            getattr(node, "_saved_" + raw_attr[len(_RAW_PREFIX):])
        except RuntimeError:
            return True
        except AttributeError:
            return False
        return False

    def _dtype(self, d: Any) -> str:
        s = self._dtypes.get(d)
        if s is None:
            s = self._dtypes[d] = dtype_name(d)
        return s

    def storage_key(self, tensor: Any) -> int:
        return tensor.untyped_storage().data_ptr()

    def tensor_info(self, tensor: Any) -> tuple[tuple[int, ...], str]:
        return tuple(tensor.shape), self._dtype(tensor.dtype)
