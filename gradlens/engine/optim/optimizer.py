"""``Optimizer``: torch.optim's base class (param groups, per-parameter state, zero_grad, state_dict, step
hooks) and the global step hooks every optimizer's ``step`` fires.

It mirrors ``torch/optim/optimizer.py`` of torch 2.13: the first construction of an optimizer class wraps
that class's ``step`` so that the global pre hooks, then the instance's pre hooks, run before it and the
instance's post hooks, then the global post hooks, run after it (this covers user-defined subclasses too).
Subclasses update parameters on the ndarrays inside ``no_grad`` and bump each changed tensor's version
counter exactly as torch's in-place ops do.
"""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from copy import deepcopy
from itertools import chain
from typing import Any

import numpy as np

from .. import _dtype
from ..autograd.grad_mode import STATE as GRAD_MODE
from ..autograd.graph import RemovableHandle, _type_name
from ..tensor import Tensor

__all__ = ["Optimizer", "register_optimizer_step_pre_hook", "register_optimizer_step_post_hook", "required"]

_global_optimizer_pre_hooks: dict[int, Callable] = OrderedDict()
_global_optimizer_post_hooks: dict[int, Callable] = OrderedDict()


class _RequiredParameter:
    """Singleton for a required optimizer option (torch's ``torch.optim.optimizer.required``)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def typename(obj) -> str:
    """torch.typename: ``torch.FloatTensor`` for a float32 tensor, else the object's qualified type name."""
    if isinstance(obj, Tensor):
        return _type_name(obj._data)
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module = obj.__class__.__module__ or ""
        qualname = obj.__class__.__qualname__
    if module in {"", "builtins"}:
        return qualname
    return f"{module}.{qualname}"


def _use_grad_for_differentiable(func: Callable) -> Callable:
    """Run ``step`` with grad mode set to the optimizer's ``differentiable`` flag (off by default)."""

    @functools.wraps(func)
    def _use_grad(self, *args, **kwargs):
        prev = GRAD_MODE.enabled
        GRAD_MODE.enabled = bool(self.defaults["differentiable"])
        try:
            return func(self, *args, **kwargs)
        finally:
            GRAD_MODE.enabled = prev

    return _use_grad


def _get_scalar_dtype(is_fused=None) -> np.dtype:
    """The dtype of the ``step`` state tensor: float64 under a float64 default dtype, else float32."""
    if is_fused:
        return np.dtype(np.float32)
    return np.dtype(np.float64) if _dtype.get_default_dtype() == _dtype.float64 else np.dtype(np.float32)


def _to_scalar(x):
    """A Python number for a number or a one-element tensor hyperparameter (lr, betas, ...)."""
    if isinstance(x, Tensor):
        return x._data.reshape(()).item()
    return x


def _check_no_differentiable(differentiable: bool) -> None:
    if differentiable:
        raise NotImplementedError("gradlens.engine optimizers do not support differentiable=True; the step "
                                  "updates parameters outside autograd (use real torch for a differentiable "
                                  "step)")


def _check_capturable(capturable: bool) -> None:
    """torch raises this for ``capturable=True`` on CPU parameters (the engine has no other device)."""
    if capturable:
        raise AssertionError("If capturable=True, params and state_steps must be on supported devices: "
                             "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla'].")


def register_optimizer_step_pre_hook(hook: Callable) -> RemovableHandle:
    """Register ``hook(optimizer, args, kwargs) -> None | (new_args, new_kwargs)`` to run before every
    optimizer's ``step``.

    Args:
        hook: called with the optimizer and the arguments of ``step``.

    Returns:
        A handle whose ``remove()`` unregisters the hook.

    Example:
        >>> h = register_optimizer_step_pre_hook(lambda opt, args, kwargs: None)
        >>> h.remove()
    """
    handle = RemovableHandle(_global_optimizer_pre_hooks)
    _global_optimizer_pre_hooks[handle.id] = hook
    return handle


def register_optimizer_step_post_hook(hook: Callable) -> RemovableHandle:
    """Register ``hook(optimizer, args, kwargs) -> None`` to run after every optimizer's ``step``.

    Returns:
        A handle whose ``remove()`` unregisters the hook.
    """
    handle = RemovableHandle(_global_optimizer_post_hooks)
    _global_optimizer_post_hooks[handle.id] = hook
    return handle


class Optimizer:
    """Base class for all optimizers.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts (parameter groups with
            their own options).
        defaults: default values of the optimization options, used where a group does not set them.

    Raises:
        TypeError: ``params`` is a single tensor, or holds something that is not a tensor.
        ValueError: ``params`` is empty, holds a non-leaf tensor, or a parameter is in two groups.
    """

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._optimizer_step_pre_hooks: dict[int, Callable] = OrderedDict()
        self._optimizer_step_post_hooks: dict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._patch_step_function()

        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or "
                            "dicts, but got " + typename(params))

        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []

        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)
        self._warned_capturable_if_run_uncaptured = True

    # --- pickling ---------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks",
                     "_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks",
                     "_optimizer_load_state_dict_pre_hooks",
                     "_optimizer_load_state_dict_post_hooks"):
            if name not in self.__dict__:
                setattr(self, name, OrderedDict())
        self._patch_step_function()
        self.defaults.setdefault("differentiable", False)

    def __repr__(self) -> str:
        format_string = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    # --- step hooks -------------------------------------------------------------------------------------
    def _accelerator_graph_capture_health_check(self) -> None:
        """CUDA graph capture does not exist on the CPU-only engine; kept for torch's call sites."""

    def _optimizer_step_code(self) -> None:
        """Entry point torch's profiler hooks after ``step``; a no-op."""

    @staticmethod
    def profile_hook_step(func: Callable) -> Callable:
        """Wrap a ``step`` so the global and per-instance step hooks run around it."""

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            self = args[0]
            if not (_global_optimizer_pre_hooks or self._optimizer_step_pre_hooks or _global_optimizer_post_hooks
                    or self._optimizer_step_post_hooks):  # no hooks: no chains to build and walk
                out = func(*args, **kwargs)
                self._optimizer_step_code()
                return out
            pre_hooks = chain(_global_optimizer_pre_hooks.values(), self._optimizer_step_pre_hooks.values())
            for pre_hook in pre_hooks:
                result = pre_hook(self, args, kwargs)
                if result is not None:
                    if isinstance(result, tuple) and len(result) == 2:
                        args, kwargs = result
                    else:
                        raise RuntimeError(f"{func} must return None or a tuple of (new_args, new_kwargs), "
                                           f"but got {result}.")
            out = func(*args, **kwargs)
            self._optimizer_step_code()
            post_hooks = chain(self._optimizer_step_post_hooks.values(),
                               _global_optimizer_post_hooks.values())
            for post_hook in post_hooks:
                post_hook(self, args, kwargs)
            return out

        return wrapper

    def _patch_step_function(self) -> None:
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{self.__class__.__name__}.zero_grad"
        hooked = getattr(self.__class__.step, "hooked", None)
        if not hooked:
            self.__class__.step = self.profile_hook_step(self.__class__.step)
            self.__class__.step.hooked = True

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Register ``hook(optimizer, args, kwargs) -> None | (new_args, new_kwargs)`` before this
        optimizer's ``step``; returns a removable handle."""
        handle = RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """Register ``hook(optimizer, args, kwargs) -> None`` after this optimizer's ``step``; returns a
        removable handle."""
        handle = RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    # --- state dict -------------------------------------------------------------------------------------
    @staticmethod
    def _add_hook(hooks: OrderedDict, hook: Callable, prepend: bool) -> RemovableHandle:
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer)`` to run before ``state_dict``."""
        return self._add_hook(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer, state_dict) -> state_dict | None`` to run after ``state_dict``."""
        return self._add_hook(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer, state_dict) -> state_dict | None`` to run before ``load_state_dict``."""
        return self._add_hook(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Register ``hook(optimizer)`` to run after ``load_state_dict``."""
        return self._add_hook(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state as torch lays it out: ``state`` keyed by parameter index (the per-parameter
        dicts themselves, not copies) and ``param_groups`` with ``params`` as lists of indices."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)

        param_mappings: dict[int, int] = {}
        start_index = 0

        def pack_group(group: dict[str, Any]) -> dict[str, Any]:
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update({id(p): i for i, p in enumerate(group["params"], start_index)
                                   if id(p) not in param_mappings})
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(param_mappings[id(k)] if isinstance(k, Tensor) else k): v
                        for k, v in self.state.items()}
        state_dict = {"state": packed_state, "param_groups": param_groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            hook_result = post_hook(self, state_dict)
            if hook_result is not None:
                state_dict = hook_result
        return state_dict

    @staticmethod
    def _process_value_according_to_param_policy(param: Tensor, value: Tensor, param_id, param_groups,
                                                 key=None) -> Tensor:
        fused = capturable = False
        for pg in param_groups:
            if param_id in pg["params"]:
                fused = pg.get("fused", False)
                capturable = pg.get("capturable", False)
                break
        if key == "step":
            if (capturable or fused) and value._data.dtype != np.float32:
                return Tensor._make(value._data.astype(np.float32))
            return value
        if param._data.dtype.kind == "f" and value._data.dtype != param._data.dtype:
            return Tensor._make(value._data.astype(param._data.dtype))
        return value

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state produced by ``state_dict`` (matched to this optimizer's parameters by position).

        Raises:
            ValueError: the number of groups or of parameters in a group differs.
        """
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            hook_result = pre_hook(self, state_dict)
            if hook_result is not None:
                state_dict = hook_result

        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups, strict=True)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")

        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups), strict=True))

        def _cast(param, value, param_id=None, param_groups=None, key=None):
            if isinstance(value, Tensor):
                return Optimizer._process_value_according_to_param_policy(param, value, param_id,
                                                                          param_groups, key)
            if isinstance(value, dict):
                return {k: _cast(param, v, param_id=param_id, param_groups=param_groups, key=k)
                        for k, v in value.items()}
            if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
                return type(value)(_cast(param, v, param_id=param_id, param_groups=param_groups)
                                   for v in value)
            return value

        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _cast(param, v, param_id=k, param_groups=state_dict["param_groups"])
            else:
                state[k] = v

        def update_group(group: dict[str, Any], new_group: dict[str, Any]) -> dict[str, Any]:
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups, strict=True)]
        self.__setstate__({"state": state, "param_groups": param_groups})
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    # --- gradients and steps ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors.

        Args:
            set_to_none: set ``.grad`` to None (default); with False, detach a grad that has a ``grad_fn``
                and zero it in place (bumping its version, as ``grad.zero_()`` does).
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                    continue
                if g._grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                _zero_in_place(g)

    def step(self, closure=None):
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with its own options) to ``param_groups``.

        Raises:
            TypeError: ``param_group`` is not a dict, its params are a set, or a param is not a tensor.
            ValueError: a parameter is a non-leaf, a required option is missing, or a parameter is already
                in another group.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")

        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list "
                            "instead.")
        else:
            param_group["params"] = list(params)

        extracted_param_tensors = []
        extracted_param_names = []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                extracted_param_names.append(param[0])
                extracted_param_tensors.append(param[1])
            else:
                extracted_param_tensors.append(param)
        param_group["params"] = extracted_param_tensors
        if len(extracted_param_names) != 0:
            if len(extracted_param_names) == len(extracted_param_tensors):
                param_group["param_names"] = extracted_param_names
            else:
                raise ValueError("all optimizer params should be with/without names. Some param names are "
                                 "missing")

        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + typename(param))
            if not self.defaults.get("differentiable", None) and not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter "
                                 f"{name}")
            param_group.setdefault(name, default)

        params = param_group["params"]
        if len(params) != len(set(params)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this "
                          "will cause an error; see github.com/pytorch/pytorch/issues/40967 for more "
                          "information",
                          stacklevel=3)

        param_set: set = set()
        for group in self.param_groups:
            param_set.update(set(group["params"]))
            if ("param_names" in param_group) != ("param_names" in group):
                current_group_txt = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {current_group_txt} to the optimizer")

        if not param_set.isdisjoint(set(param_group["params"])):
            raise ValueError("some parameters appear in more than one parameter group")

        self.param_groups.append(param_group)


def _zero_in_place(t: Tensor) -> None:
    """``t.zero_()`` on the data: zero the (possibly shared) array and bump the version counter."""
    arr = t._data
    if arr.flags.writeable:
        arr[...] = 0
    else:  # a read-only broadcast view set by hand: give the tensor its own zeroed array
        t._data = np.zeros(arr.shape, dtype=arr.dtype)
    t._vbox[0] += 1


def _param_array(p: Tensor) -> np.ndarray:
    """The parameter's array for an in-place update (a numpy scalar left by a 0-d op becomes an array)."""
    arr = p._data
    if type(arr) is not np.ndarray:
        arr = p._data = np.array(arr)
    return arr
