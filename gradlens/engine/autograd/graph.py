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
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .anomaly_mode import MODE as ANOMALY
from .anomaly_mode import forward_stack

__all__ = ["Node", "AccumulateGrad", "RemovableHandle", "SavedTensor", "saved_tensors_hooks",
           "disable_saved_tensors_hooks", "SAVED_HOOKS", "BACKWARD_TWICE", "NONE_EDGE"]

BACKWARD_TWICE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
    "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or "
    "if you need to access saved tensors after calling backward."
)
NONE_EDGE = (None, 0)

_handle_ids = itertools.count()


class _EngineState(threading.local):
    """Whether the backward pass now running in this thread records a graph of its own (``create_graph``),
    and how deeply backward passes nest in this thread. Per thread (no ``__slots__``: slots on a
    ``threading.local`` subclass would be shared), as two threads may run backward passes at once."""

    def __init__(self):
        self.create_graph = False
        self.depth = 0


ENGINE_STATE = _EngineState()
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


class _SavedHooksState(threading.local):
    """Stack of (pack, unpack) pairs from ``saved_tensors_hooks``; ``disabled`` holds the refusal message.
    Per thread, as torch's (no ``__slots__``: slots on a ``threading.local`` subclass would be shared)."""

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

    # No __slots__ here: per-node state that most nodes never set (hooks, metadata, retain_grad) stays a
    # class-level default, so creating a node sets two attributes (measured 0.30 us vs 0.48 us with slots).
    num_outputs = 1
    # a node that read saved values raises on re-entry after they are freed
    _saves = True
    _saved = ()
    _vers = ()
    _meta = None
    _hooks = None
    _prehooks = None
    _tprehooks = None
    _retain = None
    _packed = False
    _omd = None  # (shape, np dtype) of the output; a tuple of them for multi-output nodes
    _out_pos = None  # index in the saved values of this node's own output, if saved

    def __init__(self, next_edges: tuple):
        self._next = next_edges
        self._seq = next(_sequence)
        if ANOMALY.enabled:  # anomaly_mode.py: where the forward call was, for a failing backward
            self._trace = forward_stack()

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
        from .._dtype import from_numpy_dtype
        from ..tensor import _OutputMeta

        omd = self._omd
        if omd is None:
            return ()
        if self.num_outputs == 1:
            omd = (omd,)
        return tuple(_OutputMeta(shape, from_numpy_dtype(dt)) for shape, dt in omd)

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
            for t in tensors:  # the edge is kept to give the unpacked tensor its graph back, as torch does
                is_output = t._grad_fn is self
                packed.append((pack(t), unpack, is_output, None if is_output else t._edge()))
            self._saved = tuple(packed)
            self._packed = True
            return
        n = len(tensors)
        if n == 1:  # fast paths for the commonest cases: one input, one own output, two inputs
            t = tensors[0]
            if t._grad_fn is not self:
                self._saved = tensors
                self._vers = (t._vbox[0],)
                return
            # our own output (tanh, relu, exp...): kept as an alias, as below (2.5 -> 1.3 us)
            self._saved = (t._alias(),)
            self._vers = (t._vbox[0],)
            self._out_pos = 0
            return
        if n == 2:
            a, b = tensors
            if a._grad_fn is not self and b._grad_fn is not self:
                self._saved = tensors
                self._vers = (a._vbox[0], b._vbox[0])
                return
        # inputs are kept as they are (as torch does); our own output is kept as an alias without grad_fn,
        # so that the node does not hold its output (no reference cycle: graphs die by refcount)
        for i, t in enumerate(tensors):
            if t._grad_fn is self:
                tensors = tensors[:i] + (t._alias(),) + tensors[i + 1:]
                self._out_pos = i
                break
        self._saved = tensors
        self._vers = tuple([t._vbox[0] for t in tensors])

    def saved(self) -> tuple:
        """The saved values, checked against later in-place changes; raises once they were freed.

        Returns ndarrays, or Tensors while a ``create_graph`` backward records the backward itself.
        """
        saved = self._saved
        if saved is None:
            raise RuntimeError(BACKWARD_TWICE)
        create_graph = ENGINE_STATE.create_graph
        if not create_graph and not self._packed:  # fast paths: one or two plain saved tensors
            n = len(saved)
            if n == 1:
                t = saved[0]
                if t._vbox[0] != self._vers[0]:
                    self._raise_modified(t, self._vers[0])
                return (t._data,)
            if n == 2:
                a, b = saved
                va, vb = self._vers
                if a._vbox[0] != va:
                    self._raise_modified(a, va)
                if b._vbox[0] != vb:
                    self._raise_modified(b, vb)
                return (a._data, b._data)
        if self._packed:
            out = []
            for packed, unpack, is_output, edge in saved:
                t = unpack(packed)
                if not hasattr(t, "_data"):
                    raise TypeError("Output of saved tensor unpack_hook expected to be a Tensor but got result "
                                    f"of type {type(t).__name__}")
                if create_graph:
                    out.append(t._with_grad_fn(self) if is_output else _with_edge(t, edge))
                else:
                    out.append(t._data)
            return tuple(out)
        for t, ver in zip(saved, self._vers):
            if t._vbox[0] != ver:
                self._raise_modified(t, ver)
        if create_graph:
            pos = self._out_pos
            return tuple([t._with_grad_fn(self) if i == pos else t for i, t in enumerate(saved)])
        return tuple([t._data for t in saved])

    def _raise_modified(self, t, ver: int):
        is_output = self._out_pos is not None and self._saved[self._out_pos] is t
        producer = self if is_output else t._grad_fn
        raise RuntimeError(_inplace_message(t._data, t._vbox[0], ver, producer,
                                            0 if is_output else t._output_nr))

    def _free(self) -> None:
        """Release saved values (called after the node runs without ``retain_graph``)."""
        if self._saved is not None and (self._saved or self._saves):
            self._saved = None
            self._vers = None

    @property
    def _raw_saved_tensors(self) -> tuple:
        """What this node holds for backward, read without unpacking it (no unpack hook runs, no version
        check), as torch's ``_raw_saved_*`` attributes: one ``SavedTensor`` per saved value, whose ``data``
        is the saved Tensor, or what the pack hook returned under ``saved_tensors_hooks``.

        Raises:
            RuntimeError: torch's "backward through the graph a second time" text, once backward freed them.
        """
        saved = self._saved
        if saved is None:
            raise RuntimeError(BACKWARD_TWICE)
        if self._packed:
            return tuple([SavedTensor(packed[0]) for packed in saved])
        return tuple([SavedTensor(t) for t in saved])

    # --- for subclasses -------------------------------------------------------------------------------
    def backward(self, grad):  # pragma: no cover - every op overrides
        raise NotImplementedError(f"{self.name()} has no backward")


class SavedTensor:
    """One value a node holds for backward, as torch's ``torch._C._autograd.SavedTensor``: ``data`` is the
    saved Tensor itself, or, for a value saved under ``saved_tensors_hooks``, what the pack hook returned
    (read as it is: reading it runs no hook)."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __repr__(self) -> str:
        return f"<SavedTensor of {type(self.data).__name__}>"


def _with_edge(t, edge):
    """A tensor on ``t``'s data that leads to ``edge`` (the graph position of the tensor that was saved),
    whatever graph ``t`` itself has: how torch unpacks a tensor returned by an unpack hook."""
    from ..tensor import Tensor

    fn, output_nr = edge
    if fn is None:
        return Tensor._make(t._data)
    if isinstance(fn, AccumulateGrad):
        out = Tensor._make(t._data)
        out._rg = True
        out._acc = fn
        return out
    return Tensor._make(t._data, fn, output_nr)


def _inplace_message(arr, now: int, expected: int, producer, output_nr: int) -> str:
    """torch's text for a saved tensor that was modified in place after it was saved."""
    which = ""
    if producer is not None and not isinstance(producer, AccumulateGrad):
        # torch drops "Backward0" but keeps the number of other overloads: "Relu", "Elu1", "Clamp1"
        which = f", which is output {output_nr} of {node_label(producer)},"
    return (
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[{_type_name(arr)} [{', '.join(map(str, arr.shape))}]]{which} is at version {now}; expected version "
        f"{expected} instead. " + (
            "Hint: the backtrace further above shows the operation that failed to compute its gradient. The "
            "variable in question was changed in there or anywhere later. Good luck!" if ANOMALY.enabled else
            "Hint: enable anomaly detection to find the operation that failed to compute its gradient, with "
            "torch.autograd.set_detect_anomaly(True, check_nan=False).")
    )


def node_label(node) -> str:
    """A node's name as torch's error messages give it: "Backward0" dropped, other overloads keep their
    number ("Relu", "Elu1", "Split"); names without the suffix stay as they are."""
    return re.sub(r"Backward(\d+)$", lambda m: "" if m.group(1) == "0" else m.group(1), node.name())


def _type_name(arr) -> str:
    kind = {"float32": "FloatTensor", "float64": "DoubleTensor", "int64": "LongTensor",
            "bool": "BoolTensor", "float16": "HalfTensor", "int32": "IntTensor"}
    return "torch." + kind.get(str(getattr(arr, "dtype", "")), "Tensor")


class AccumulateGrad(Node):
    """The node behind a leaf that requires grad: adds incoming gradients into ``variable.grad``.

    One per leaf. The leaf keeps its node (so a training step does not rebuild one per parameter) and the
    node refers to the leaf weakly, so there is no reference cycle; ``variable`` is None only once nothing
    but a graph refers to the leaf, when no one can read its ``.grad`` anyway.
    """

    _saves = False

    def __init__(self, variable):
        Node.__init__(self, ())
        self._var_ref = weakref.ref(variable)

    @property
    def variable(self):
        """The leaf tensor this node accumulates into."""
        return self._var_ref()

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    def backward(self, grad, owned: bool = False):
        """Accumulate ``grad`` into the leaf's ``.grad``; ``owned`` (set by the engine) says that no one
        else refers to the array, so the first accumulation may keep it instead of copying it."""
        var = self._var_ref()
        if var is None:
            return ()
        hooks = var._hooks
        if hooks:
            from .engine import run_tensor_hooks

            grad = run_tensor_hooks(hooks, grad)
            if grad is None:
                return ()
            owned = False  # a hook may have kept the tensor it was given
        var._accumulate(grad, ENGINE_STATE.create_graph, owned)
        post = var._post_acc_hooks
        if post:
            for fn in list(post.values()):
                fn(var)
        return ()
