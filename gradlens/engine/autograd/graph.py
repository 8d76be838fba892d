"""The backward graph: ``Node`` (torch's ``grad_fn`` objects), ``AccumulateGrad``, removable hook handles
and ``saved_tensors_hooks``.

A node mirrors torch's surface: ``name()``, ``next_functions`` as ``((node | None, input_nr), ...)``,
``metadata`` (a dict living on the node), ``register_hook`` / ``register_prehook``. Saved values are
kept as plain arrays together with the version of the tensor they came from, so that a later in-place
change raises torch's error, and they are freed after the node runs (unless ``retain_graph``), so that a
second backward raises torch's error too.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

__all__ = ["Node", "AccumulateGrad", "RemovableHandle", "saved_tensors_hooks", "disable_saved_tensors_hooks",
           "SAVED_HOOKS", "BACKWARD_TWICE", "NONE_EDGE"]

BACKWARD_TWICE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
    "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or "
    "if you need to access saved tensors after calling backward."
)
NONE_EDGE = (None, 0)

_handle_ids = itertools.count()
_sequence = itertools.count()


class RemovableHandle:
    """A handle that removes the hook it was returned for; also a context manager (torch's API)."""

    __slots__ = ("hooks_dict_ref", "id", "__weakref__")

    def __init__(self, hooks_dict: dict):
        self.hooks_dict_ref = hooks_dict
        self.id = next(_handle_ids)

    def remove(self) -> None:
        d = self.hooks_dict_ref
        if d is not None:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def add_hook(hooks: dict, fn: Callable) -> RemovableHandle:
    """Register ``fn`` in ``hooks`` (an insertion-ordered dict) and return its handle."""
    if not callable(fn):
        raise TypeError(f"expected a callable hook, got {type(fn).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle


class _SavedHooksState:
    """Stack of (pack, unpack) pairs from ``saved_tensors_hooks``; ``disabled`` holds the refusal message."""

    __slots__ = ("stack", "disabled")

    def __init__(self):
        self.stack: list[tuple[Callable, Callable]] = []
        self.disabled: str | None = None


SAVED_HOOKS = _SavedHooksState()


class saved_tensors_hooks:  # noqa: N801 - torch's name
    """Context manager: ``pack_hook(tensor)`` runs on every tensor saved for backward inside the block,
    ``unpack_hook(packed)`` when backward needs it back. Mirrors ``torch.autograd.graph.saved_tensors_hooks``.
    """

    def __init__(self, pack_hook: Callable[[Any], Any], unpack_hook: Callable[[Any], Any]):
        self.pack_hook = pack_hook
        self.unpack_hook = unpack_hook

    def __enter__(self):
        if SAVED_HOOKS.disabled is not None:
            raise RuntimeError(SAVED_HOOKS.disabled)
        SAVED_HOOKS.stack.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc):
        SAVED_HOOKS.stack.pop()
        return False


class disable_saved_tensors_hooks:  # noqa: N801
    """Context manager under which registering saved-tensor hooks raises ``RuntimeError(error_message)``."""

    def __init__(self, error_message: str):
        self.error_message = error_message
        self.prev: str | None = None

    def __enter__(self):
        self.prev = SAVED_HOOKS.disabled
        SAVED_HOOKS.disabled = self.error_message
        return self

    def __exit__(self, *exc):
        SAVED_HOOKS.disabled = self.prev
        return False


class Node:
    """One backward function, created by a differentiable op; torch's ``grad_fn`` objects.

    Subclasses are named exactly as torch names the node for the same call (``MulBackward0``) and
    implement ``backward(grad)`` returning one gradient per entry of ``next_functions`` (``None`` where an
    input needs no gradient). ``grad`` is an ndarray, or a Tensor when the backward records a graph
    (``create_graph=True``); saved values come back from ``saved()`` in the same form.
    """

    __slots__ = ("_next", "_saved", "_vers", "_meta", "_hooks", "_prehooks", "_tprehooks", "_retain",
                 "_packed", "_omd", "_seq", "__weakref__")
    num_outputs = 1
    # a node that read saved values raises on re-entry after they are freed
    _saves = True

    def __init__(self, next_edges: tuple):
        self._next = next_edges
        self._saved = ()
        self._vers = None
        self._meta = None
        self._hooks = None
        self._prehooks = None
        self._tprehooks = None
        self._retain = None
        self._packed = False
        self._omd = None
        self._seq = next(_sequence)

    # --- torch's public surface -------------------------------------------------------------------
    def name(self) -> str:
        """The node's name as torch prints it (``MulBackward0``)."""
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        """``((node | None, input_nr), ...)``: one edge per differentiable input, in argument order."""
        return self._next

    @property
    def metadata(self) -> dict:
        """A dict stored on the node; it lives exactly as long as the node (and so the graph)."""
        if self._meta is None:
            self._meta = {}
        return self._meta

    def _sequence_nr(self) -> int:
        """Creation order of nodes (monotonic), as torch's ``_sequence_nr()``."""
        return self._seq

    @property
    def _input_metadata(self) -> tuple:
        """Shape and dtype of each forward output (the gradients this node receives), as in torch."""
        from ..tensor import _OutputMeta
        from .._dtype import from_numpy_dtype

        if self._omd is None:
            return ()
        return tuple(_OutputMeta(shape, from_numpy_dtype(dt)) for shape, dt in self._omd)

    def register_hook(self, fn: Callable) -> RemovableHandle:
        """``fn(grad_inputs, grad_outputs)`` runs after the node computed its input gradients; it may
        return replacement ``grad_inputs``."""
        if self._hooks is None:
            self._hooks = {}
        return add_hook(self._hooks, fn)

    def register_prehook(self, fn: Callable) -> RemovableHandle:
        """``fn(grad_outputs)`` runs before the node; it may return replacement ``grad_outputs``."""
        if self._prehooks is None:
            self._prehooks = {}
        return add_hook(self._prehooks, fn)

    def _register_tensor_prehook(self, output_nr: int, fn: Callable) -> RemovableHandle:
        """A hook from ``Tensor.register_hook`` on the tensor that is this node's output ``output_nr``."""
        if self._tprehooks is None:
            self._tprehooks = {}
        hooks = self._tprehooks.get(output_nr)
        if hooks is None:
            hooks = self._tprehooks[output_nr] = {}
        return add_hook(hooks, fn)

    def __call__(self, *grads):
        return self.backward(grads[0] if self.num_outputs == 1 else grads)

    def __repr__(self) -> str:
        return f"<{self.name()} object at {hex(id(self))}>"

    # --- saved values ---------------------------------------------------------------------------------
    def save(self, *tensors) -> None:
        """Save tensors (inputs or this node's output) for backward, remembering their versions.

        Under ``saved_tensors_hooks`` each tensor is packed by the innermost pack hook instead.
        """
        if SAVED_HOOKS.stack:
            pack = SAVED_HOOKS.stack[-1][0]
            unpack = SAVED_HOOKS.stack[-1][1]
            packed = []
            for t in tensors:
                packed.append((pack(t), unpack, t.grad_fn is self))
            self._saved = tuple(packed)
            self._packed = True
            return
        self._saved = tuple(t._data for t in tensors)
        # (version box, version at save, the input tensor or None for our own output)
        self._vers = tuple((t._vbox, t._vbox[0], t if t.grad_fn is not self else None) for t in tensors)

    def saved(self) -> tuple:
        """The saved values, checked against later in-place changes; raises once they were freed."""
        saved = self._saved
        if saved is None:
            raise RuntimeError(BACKWARD_TWICE)
        from . import engine

        if self._packed:
            out = []
            for packed, unpack, is_output in saved:
                t = unpack(packed)
                if engine.STATE.create_graph:
                    if is_output:
                        t = t._with_grad_fn(self)
                    out.append(t)
                else:
                    out.append(t._data)
            return tuple(out)
        vers = self._vers
        if vers:
            for i, (vbox, ver, _t) in enumerate(vers):
                if vbox[0] != ver:
                    raise RuntimeError(_inplace_message(saved[i], vbox[0], ver, self if _t is None else _t.grad_fn,
                                                        0 if _t is None else _t._output_nr))
            if engine.STATE.create_graph:
                return tuple(t if t is not None else _wrap_output(a, vbox, self)
                             for a, (vbox, _v, t) in zip(saved, vers))
        return saved

    def _free(self) -> None:
        """Release saved values (called after the node runs without ``retain_graph``)."""
        if self._saved is not None and (self._saved or self._saves):
            self._saved = None
            self._vers = None

    def saved_arrays(self) -> list:
        """The ndarrays this node holds for backward (empty once freed or when packed by hooks)."""
        if not self._saved or self._packed:
            return []
        import numpy as np

        return [a for a in self._saved if isinstance(a, np.ndarray)]

    # --- for subclasses -------------------------------------------------------------------------------
    def backward(self, grad):  # pragma: no cover - every op overrides
        raise NotImplementedError(f"{self.name()} has no backward")


def _inplace_message(arr, now: int, expected: int, producer, output_nr: int) -> str:
    """torch's text for a saved tensor that was modified in place after it was saved."""
    which = ""
    if producer is not None and not isinstance(producer, AccumulateGrad):
        op = producer.name().rstrip("0123456789").removesuffix("Backward")
        which = f", which is output {output_nr} of {op},"
    return (
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[{_type_name(arr)} [{', '.join(map(str, arr.shape))}]]{which} is at version {now}; expected version "
        f"{expected} instead. Hint: enable anomaly detection to find the operation that failed to compute its "
        "gradient, with torch.autograd.set_detect_anomaly(True, check_nan=False)."
    )


def _type_name(arr) -> str:
    kind = {"float32": "FloatTensor", "float64": "DoubleTensor", "int64": "LongTensor",
            "bool": "BoolTensor", "float16": "HalfTensor", "int32": "IntTensor"}
    return "torch." + kind.get(str(getattr(arr, "dtype", "")), "Tensor")


def _wrap_output(arr, vbox, node):
    from ..tensor import Tensor

    t = Tensor._make(arr, node)
    t._vbox = vbox
    return t


class AccumulateGrad(Node):
    """The node behind a leaf that requires grad: adds incoming gradients into ``variable.grad``.

    One per leaf, shared by every use of the leaf while a graph holds it (torch keeps it weakly on the
    tensor, so identity checks across live graphs match torch).
    """

    __slots__ = ("variable",)
    _saves = False

    def __init__(self, variable):
        Node.__init__(self, ())
        self.variable = variable

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    def backward(self, grad):
        from . import engine

        var = self.variable
        hooks = var._hooks
        if hooks:
            grad = engine.run_tensor_hooks(hooks, grad)
            if grad is None:
                return ()
        var._accumulate(grad, engine.STATE.create_graph)
        post = var._post_acc_hooks
        if post:
            for fn in list(post.values()):
                fn(var)
        return ()
