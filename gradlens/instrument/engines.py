"""Per-engine hook installation for the recorder: the few places where torch and the native engine differ.

Both engines expose the same hook API (global optimizer step hooks, global module forward hooks, tensor
hooks, ``saved_tensors_hooks``, grad ``metadata`` on nodes, ``autograd.backward`` looked up at call time by
``Tensor.backward``), so the recorder installs the same hooks on either by duck typing; this module only
knows where each engine keeps them. torch is imported only when the user already imported it.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["EngineHooks", "active_engines", "engine_for"]


class EngineHooks:
    """Where one engine keeps its hooks, and the few tensor reads the recorder needs.

    Attributes:
        name: ``"torch"`` or ``"native"``.
        tensor_type: the engine's Tensor class.
        autograd: the module whose ``backward`` attribute ``Tensor.backward`` calls.
    """

    def __init__(self, name: str):
        self.name = name
        if name == "torch":
            import torch

            self._torch = torch
            self.tensor_type = torch.Tensor
            self.autograd = torch.autograd
            self._optim_mod = importlib.import_module("torch.optim.optimizer")
            self._module_mod = importlib.import_module("torch.nn.modules.module")
            self._module_cls = torch.nn.Module
            self._optim_cls = torch.optim.Optimizer
        else:
            import gradlens.engine as engine
            from gradlens.engine.autograd import graph as native_graph

            self._torch = engine
            self.tensor_type = engine.Tensor
            self.autograd = engine.autograd
            self._graph = native_graph
            self._optim_mod = _try_import("gradlens.engine.optim.optimizer")
            self._module_mod = _try_import("gradlens.engine.nn.modules.module")
            self._module_cls = getattr(self._module_mod, "Module", None)
            self._optim_cls = getattr(self._optim_mod, "Optimizer", None)

    # --- what is available ------------------------------------------------------------------------
    def missing(self) -> list[str]:
        """Hooks this engine does not provide (yet); each one disables the checks that need it."""
        out = []
        if self._optim_mod is None or not hasattr(self._optim_mod, "register_optimizer_step_pre_hook"):
            out.append(f"{self.name}: global optimizer step hooks")
        if self._module_mod is None or not hasattr(self._module_mod, "register_module_forward_pre_hook"):
            out.append(f"{self.name}: global module forward hooks")
        return out

    def owns_module(self, obj: Any) -> bool:
        return self._module_cls is not None and isinstance(obj, self._module_cls)

    def owns_optimizer(self, obj: Any) -> bool:
        return self._optim_cls is not None and isinstance(obj, self._optim_cls)

    # --- global hooks -----------------------------------------------------------------------------
    def register_step_hooks(self, pre: Callable, post: Callable) -> list:
        mod = self._optim_mod
        if mod is None or not hasattr(mod, "register_optimizer_step_pre_hook"):
            return []
        return [mod.register_optimizer_step_pre_hook(pre), mod.register_optimizer_step_post_hook(post)]

    def register_module_hooks(self, pre: Callable, post: Callable) -> list:
        mod = self._module_mod
        if mod is None or not hasattr(mod, "register_module_forward_pre_hook"):
            return []
        return [mod.register_module_forward_pre_hook(pre), mod.register_module_forward_hook(post)]

    def grad_enabled(self) -> Callable[[], bool]:
        """The engine's ``is_grad_enabled`` function."""
        return self._torch.is_grad_enabled

    def inference_mode_enabled(self) -> bool:
        return bool(self._torch.is_inference_mode_enabled())

    # --- per-parameter hook dicts -----------------------------------------------------------------------
    @property
    def post_acc_hooks_attr(self) -> str:
        """The tensor attribute holding post-accumulate-grad hooks (None until the first is registered)."""
        return "_post_accumulate_grad_hooks" if self.name == "torch" else "_post_acc_hooks"

    def reset_empty_post_acc_hooks(self, p: Any) -> None:
        """Put back the ``None`` a parameter's post-accumulate hook dict held before gradlens registered
        its hook: removing a hook leaves an empty dict, which keeps a no-op dispatch on every accumulation
        and is visible to code that checks for hooks."""
        attr = self.post_acc_hooks_attr
        hooks = getattr(p, attr, None)
        if isinstance(hooks, dict) and not hooks:
            if self.name == "torch":
                setattr(p, attr, None)
            else:
                vars(p).pop(attr, None)  # back to the class default (None)

    # --- saved-tensor hooks (pushed and popped only where provably well nested) ---------------------
    def saved_hooks_stack_empty(self) -> bool:
        if self.name == "torch":
            return self._torch._C._autograd._top_saved_tensors_default_hooks(True) is None
        return not self._graph.SAVED_HOOKS.stack and self._graph.SAVED_HOOKS.disabled is None

    def saved_hooks_top_is(self, pack: Callable) -> bool:
        if self.name == "torch":
            top = self._torch._C._autograd._top_saved_tensors_default_hooks(True)
            return top is not None and top[0] is pack
        stack = self._graph.SAVED_HOOKS.stack
        return bool(stack) and stack[-1][0] is pack

    def push_saved_hooks(self, pack: Callable, unpack: Callable) -> bool:
        """Push a pack/unpack pair; False when the engine refuses (``disable_saved_tensors_hooks``)."""
        try:
            if self.name == "torch":
                self._torch._C._autograd._push_saved_tensors_default_hooks(pack, unpack)
            else:
                if self._graph.SAVED_HOOKS.disabled is not None:
                    return False
                self._graph.SAVED_HOOKS.stack.append((pack, unpack))
        except RuntimeError:
            return False
        return True

    def remove_saved_hooks(self, pack: Callable, max_depth: int = 64) -> bool:
        """Take the pair whose pack hook is ``pack`` out of this thread's saved-tensor hook stack, wherever
        it is, leaving the pairs above it (another library's or the user's open ``saved_tensors_hooks``
        regions, which pop them later) in place and in order. False when it is not in this thread's stack
        (pushed in another thread) or the stack cannot be rebuilt (hooks disabled)."""
        if self.name != "torch":
            stack = self._graph.SAVED_HOOKS.stack
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] is pack:
                    del stack[i]
                    return True
            return False
        ag = self._torch._C._autograd
        if not ag._saved_tensors_hooks_is_enabled():
            return False
        above = []
        found = False
        while len(above) < max_depth:
            top = ag._top_saved_tensors_default_hooks(True)
            if top is None:
                break
            ag._pop_saved_tensors_default_hooks()
            if top[0] is pack:
                found = True
                break
            above.append(top)
        for top in reversed(above):
            ag._push_saved_tensors_default_hooks(*top)
        return found

    def pop_saved_hooks(self) -> None:
        if self.name == "torch":
            self._torch._C._autograd._pop_saved_tensors_default_hooks()
        else:
            self._graph.SAVED_HOOKS.stack.pop()

    # --- tensor reads -------------------------------------------------------------------------------
    def detach(self, t: Any) -> Any:
        """An alias of ``t``'s data outside the graph that holds no reference to ``t`` (what a pack hook
        may return without creating a cycle node -> packed -> tensor -> node)."""
        d = t.detach()
        if self.name == "native":
            d._base = None  # the native detach() remembers its source tensor; torch's does not
        return d

    def nbytes(self, t: Any) -> int:
        """Bytes of the storage behind a tensor (0 when unknown)."""
        try:
            if self.name == "torch":
                return int(t.untyped_storage().nbytes())
            return int(t._data.nbytes)
        except (RuntimeError, AttributeError):
            return 0

    def nonfinite(self, grads: list) -> list[int]:
        """Indices of gradients holding NaN or Inf (one reduction for all, a second pass only on a hit)."""
        if not grads:
            return []
        if self.name == "torch":
            torch = self._torch
            with torch.no_grad():
                norms = torch._foreach_norm(grads)
                total = float(torch.stack(norms).sum())
            if math.isfinite(total):
                return []
            return [i for i, n in enumerate(norms) if not math.isfinite(float(n))]
        import numpy as np

        total = 0.0
        sums = []
        with np.errstate(all="ignore"):
            for g in grads:
                s = float(np.sum(g._data, dtype=np.float64))
                sums.append(s)
                total += s
        if math.isfinite(total):
            return []
        return [i for i, g in enumerate(grads) if not bool(np.isfinite(g._data).all())]

    def is_zero(self, g: Any) -> bool:
        """Whether every element of a gradient is zero (read only after an in-place change)."""
        if self.name == "torch":
            return not bool(g.any())
        return not bool(g._data.any())


def _try_import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_CACHE: dict[str, EngineHooks] = {}


def _get(name: str) -> EngineHooks:
    eh = _CACHE.get(name)
    if eh is None:
        eh = _CACHE[name] = EngineHooks(name)
    return eh


def active_engines() -> list[EngineHooks]:
    """The engines the user has imported (torch is never imported by gradlens itself)."""
    out = []
    if "torch" in sys.modules:
        out.append(_get("torch"))
    if "gradlens.engine" in sys.modules:
        out.append(_get("native"))
    return out


def engine_for(obj: Any) -> EngineHooks:
    """The engine a module, optimizer or tensor belongs to.

    Raises:
        TypeError: ``obj`` belongs to neither engine.
    """
    mod = type(obj).__module__ or ""
    for cls in type(obj).__mro__:
        m = cls.__module__ or ""
        if m.startswith("torch"):
            return _get("torch")
        if m.startswith("gradlens.engine"):
            return _get("native")
    raise TypeError(
        f"expected a torch or gradlens.engine module/optimizer; received {type(obj).__name__} "
        f"from module {mod!r}. Pass the model and optimizer your loop uses, or omit them."
    )
