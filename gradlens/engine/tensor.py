"""``Tensor``: an ndarray with torch's autograd surface (requires_grad, grad, grad_fn, is_leaf, _version,
backward, hooks). Ops live in ``ops/`` and are attached as methods there; this module holds the state
and the behaviour that is not an op."""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import Callable

import numpy as np

from . import _dtype
from ._format import format_tensor
from .autograd.grad_mode import STATE as GRAD_MODE
from .autograd.graph import NONE_EDGE, AccumulateGrad, add_hook

__all__ = ["Tensor", "Size"]

_ndarray = np.ndarray
_autograd = None  # the gradlens.engine.autograd module, set by the first Tensor.backward
_getrefcount = sys.getrefcount

_NONLEAF_GRAD_WARNING = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad attribute won't "
    "be populated during autograd.backward(). If you indeed want the .grad field to be populated for a "
    "non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you access the non-leaf Tensor by "
    "mistake, make sure you access the leaf Tensor instead. See github.com/pytorch/pytorch/pull/30531 for "
    "more information."
)
_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."
_VIEW_LEAF_INPLACE = "a view of a leaf Variable that requires grad is being used in an in-place operation."


class Size(tuple):
    """torch.Size: a tuple of ints that prints as ``torch.Size([2, 3])``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class _OutputMeta:
    """What torch's ``Node._input_metadata`` entries tell: the shape and dtype of one forward output."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = Size(shape)
        self.dtype = dtype


class Tensor:
    """An n-dimensional array that can record the operations applied to it for backward."""

    # hot attributes live in slots; rarely set ones are class-level defaults overridden per instance
    __slots__ = ("_data", "_rg", "_grad_fn", "_vbox", "__weakref__", "__dict__")
    _grad = None
    _output_nr = 0
    _acc = None
    _hooks = None
    _post_acc_hooks = None
    _base = None
    _creation_meta = None  # MULTI_OUTPUT / NO_GRAD_MODE: a view torch refuses to modify in place (check_inplace)
    _inference = False
    __array_priority__ = 1000
    __array_ufunc__ = None  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, *args, dtype=None, requires_grad: bool = False):
        # torch.Tensor(...) legacy constructor: sizes or data
        if len(args) == 1 and not isinstance(args[0], int):
            arr = _to_array(args[0], dtype or _dtype.get_default_dtype())
        else:
            arr = np.zeros(tuple(args), dtype=(dtype or _dtype.get_default_dtype()).np)
        Tensor._init(self, arr, None, requires_grad)

    # --- construction -------------------------------------------------------------------------------
    @staticmethod
    def _init(t, arr, grad_fn, rg):
        t._data = arr
        t._grad_fn = grad_fn
        t._rg = rg
        t._vbox = [0]
        if GRAD_MODE.inference:
            t._inference = True

    @classmethod
    def _make(cls, arr, grad_fn=None, output_nr: int = 0):
        """Fast internal constructor: wrap ``arr`` (no copy) as the output ``output_nr`` of ``grad_fn``.

        numpy returns scalars, not 0-d arrays, from ufuncs on 0-d input; they are wrapped back into arrays
        here so that ``_data`` is always an ndarray (in-place ops and views rely on it).
        """
        if arr.__class__ is not _ndarray:
            arr = np.asarray(arr)
        t = object.__new__(Tensor)
        t._data = arr
        t._grad_fn = grad_fn
        t._rg = grad_fn is not None
        t._vbox = [0]
        if output_nr:
            t._output_nr = output_nr
        if GRAD_MODE.inference:
            t._inference = True
        return t

    def _alias(self) -> Tensor:
        """An alias of this tensor's data and version counter, without grad_fn (how outputs are saved)."""
        t = Tensor._make(self._data)
        t._vbox = self._vbox
        return t

    def _with_grad_fn(self, node) -> Tensor:
        """An alias of this tensor's data that is an output of ``node`` (saved outputs, create_graph)."""
        t = Tensor._make(self._data, node)
        t._vbox = self._vbox
        return t

    # --- autograd state ---------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        if self._creation_meta == NO_GRAD_MODE:  # a view made under no_grad requires grad as its base (torch)
            return self._rg or self._base.requires_grad
        if self._base is not None and "_rebased" in self._base.__dict__:
            if self._creation_meta is not None:  # its grad_fn cannot be regenerated (torch raises on access)
                return self._rg or self._base._rg
            self._view_grad_fn()
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value.__class__ is not bool:
            raise RuntimeError("requires_grad must be a bool")
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set whether autograd records operations on this leaf tensor; returns self."""
        if requires_grad.__class__ is not bool:
            raise TypeError(f"requires_grad_(): argument 'requires_grad' must be bool, not "
                            f"{type(requires_grad).__name__}")
        if self._grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                    "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
                )
            return self
        if requires_grad and not self._data.dtype.kind == "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if requires_grad and self._inference and not GRAD_MODE.inference:
            raise RuntimeError("Setting requires_grad=True on inference tensor outside InferenceMode is not "
                               "allowed.")
        self._rg = bool(requires_grad)
        return self

    @property
    def grad_fn(self):
        """The ``Node`` that created this tensor, or None for leaves."""
        if self._base is not None and "_rebased" in self._base.__dict__:
            return self._view_grad_fn()
        return self._grad_fn

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def _view_grad_fn(self):
        """A view whose base was rewritten by an in-place op gets a fresh grad_fn, as in torch."""
        from .ops.inplace import refresh_view

        return refresh_view(self)

    @property
    def retains_grad(self) -> bool:
        fn = self._grad_fn
        return fn is not None and bool(fn._retain) and self._output_nr in fn._retain \
            and fn._retain[self._output_nr]() is self

    @property
    def grad(self):
        """The accumulated gradient (leaves and ``retain_grad()`` tensors); None until the first backward."""
        if self._grad_fn is not None and self._grad is None and not self.retains_grad:
            warnings.warn(_NONLEAF_GRAD_WARNING, UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError("assigned grad has data of a different size")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError("assigned grad has data of a different type")
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    @property
    def _version(self) -> int:
        """Counts in-place changes to this tensor's data (shared with its views)."""
        return self._vbox[0]

    def _bump(self) -> None:
        self._vbox[0] += 1

    def retain_grad(self) -> None:
        """Make backward populate ``.grad`` of this non-leaf tensor too."""
        fn = self._grad_fn
        if fn is None:
            if not self._rg:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        if fn._retain is None:
            fn._retain = {}
        fn._retain[self._output_nr] = weakref.ref(self)

    def _grad_accumulator(self) -> AccumulateGrad:
        """This leaf's AccumulateGrad node (one per leaf, kept by the leaf)."""
        acc = self._acc
        if acc is None:
            acc = self._acc = AccumulateGrad(self)
        return acc

    def _edge(self):
        """The graph edge an op records for this tensor as an input."""
        fn = self._grad_fn
        if self._base is not None and "_rebased" in self._base.__dict__:
            fn = self._view_grad_fn()
        if fn is not None:
            return (fn, self._output_nr)
        if self._rg:
            acc = self._acc  # the leaf's kept AccumulateGrad, made on first use
            return (acc if acc is not None else self._grad_accumulator(), 0)
        return NONE_EDGE

    def _accumulate(self, grad, create_graph: bool, owned: bool = False) -> None:
        """Add ``grad`` into ``.grad`` as torch does: the first accumulation stores a fresh tensor, later
        ones add in place (bumping the grad's version) unless the backward records a graph. ``owned``: no
        one else refers to the ndarray ``grad``, so it may become ``.grad`` itself (torch steals it too)."""
        current = self._grad
        if isinstance(grad, Tensor):
            if current is None:
                self._grad = grad if create_graph else Tensor._make(np.array(grad._data, dtype=self._data.dtype))
            elif create_graph or current._rg:
                self._grad = current + grad
            else:
                current._data += grad._data
                current._vbox[0] += 1
            return
        if current is None:
            data = self._data
            if owned and grad.__class__ is _ndarray and _exclusive(grad, data):
                self._grad = Tensor._make(grad)  # no copy: nothing else can see this memory
            else:
                # torch's layout contract: the gradient of a contiguous parameter is contiguous
                order = "C" if data.flags.c_contiguous else "K"
                self._grad = Tensor._make(np.array(grad, dtype=data.dtype, copy=True, order=order))
        elif create_graph or current._rg:
            self._grad = current + Tensor._make(grad)
        else:
            try:
                current._data += grad
            except ValueError:  # a grad set by hand from a broadcast, read-only view
                current._data = current._data + grad
            current._vbox[0] += 1

    # --- hooks ------------------------------------------------------------------------------------------
    def register_hook(self, hook: Callable):
        """Register ``hook(grad) -> Tensor | None`` to run when the gradient for this tensor is computed.

        On a leaf it runs before the gradient is accumulated into ``.grad``.
        """
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        fn = self._grad_fn
        if fn is not None:
            return fn._register_tensor_prehook(self._output_nr, hook)
        if self._hooks is None:
            self._hooks = {}
        return add_hook(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable):
        """Register ``hook(tensor)`` to run on a leaf after its ``.grad`` was accumulated."""
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = {}
        return add_hook(self._post_acc_hooks, hook)

    # --- backward ---------------------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
        """Compute the gradient of this tensor w.r.t. graph leaves and accumulate it into their ``.grad``."""
        global _autograd
        if _autograd is None:  # imported on first use (autograd imports this module)
            from . import autograd as _autograd
        # looked up at call time: gradlens's recorder wraps autograd.backward
        _autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and version counter) that requires no grad.

        It keeps no reference to this tensor (torch's ``detach()._base`` is None): a detached loss kept in a
        list must not keep the graph alive.
        """
        t = Tensor._make(self._data)
        t._vbox = self._vbox
        return t

    def detach_(self) -> Tensor:
        """Detach this tensor from its graph in place; it becomes a leaf."""
        if self._base is not None and self._base._grad_fn is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead. If you are using "
                               "DistributedDataParallel (DDP) for training, and gradient_as_bucket_view is set as "
                               "True, gradients are views of DDP buckets, and hence detach_() cannot be called on "
                               "these gradients. To fix this error, please refer to the Optimizer.zero_grad() "
                               "function in torch/optim/optimizer.py as the solution.")
        self._grad_fn = None
        self._rg = False
        return self

    @property
    def data(self) -> Tensor:
        """An alias of the data outside autograd (own version counter, requires no grad, no reference back
        to this tensor)."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._data = value._data

    # --- inspection -------------------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def dtype(self) -> _dtype.dtype:
        return _dtype.from_numpy_dtype(self._data.dtype)

    @property
    def device(self):
        from . import device

        return device("cpu")

    @property
    def is_cuda(self) -> bool:
        return False

    is_xpu = is_mps = is_meta = is_cuda  # CPU only: every accelerator flag is False

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def ndimension(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    nelement = numel

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_inference(self) -> bool:
        return self._inference

    def is_contiguous(self) -> bool:
        return self._data.flags["C_CONTIGUOUS"]

    def contiguous(self) -> Tensor:
        if self._data.flags["C_CONTIGUOUS"]:
            return self
        return self.clone()

    def data_ptr(self) -> int:
        return self._data.__array_interface__["data"][0]

    def untyped_storage(self):
        return _Storage(self._data)

    def get_device(self) -> int:
        return -1

    # --- conversion -------------------------------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self._rg and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                               "instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._rg:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                               "instead.")
        return self._data if dtype is None else self._data.astype(dtype)

    def tolist(self):
        return self._data.tolist()

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def __float__(self) -> float:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        if self._rg and GRAD_MODE.enabled:  # torch warns only while grad mode is on
            warnings.warn("Converting a tensor with requires_grad=True to a scalar may lead to unexpected "
                          "behavior. Consider using tensor.detach() first.", UserWarning, stacklevel=2)
        return float(self.item())

    def __int__(self) -> int:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return int(self.item())

    def __complex__(self) -> complex:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return complex(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            which = "no values" if self._data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {which} is ambiguous")
        return bool(self._data.reshape(()).item())

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))  # torch iterates over unbind(): one UnbindBackward0 for all rows

    # identity hash (Tensor defines an elementwise __eq__); the C slot keeps dict and set lookups of tensors
    # (optimizer state, parameter sets) free of a Python call
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return format_tensor(self)

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0 and spec:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return repr(self)

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self._data.copy(), self._rg))

    def __deepcopy__(self, memo):
        if self._grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the "
                               "deepcopy protocol at the moment.")
        new = type(self).__new__(type(self))
        Tensor._init(new, self._data.copy(), None, self._rg)
        if self._grad is not None:
            new._grad = Tensor._make(self._grad._data.copy())
        memo[id(self)] = new
        return new

    # no-op device moves (CPU only)
    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args, **kwargs):
        raise AssertionError("Torch not compiled with CUDA enabled")  # a CPU-only torch's error

    def pin_memory(self) -> Tensor:
        return self


def _exclusive(grad: np.ndarray, data: np.ndarray) -> bool:
    """Whether ``grad``, which no one else refers to, may become ``.grad`` of ``data`` as it is: same dtype
    and strides, writeable, and its memory held by nothing else (it owns it, or it is a view of an array
    that only this view refers to, as the transposed product a weight gradient comes in)."""
    if (grad.dtype != data.dtype or grad.shape != data.shape or grad.strides != data.strides
            or not grad.flags.writeable):
        return False
    base = grad.base
    if base is None:
        return True
    # the references: grad.base, the local name and getrefcount's argument
    return base.__class__ is _ndarray and base.base is None and _getrefcount(base) == 3


def _rebuild(arr, rg):
    t = Tensor._make(arr)
    t._rg = rg
    return t


class _Storage:
    """Just enough of torch's untyped storage for identity and size questions (data_ptr, nbytes)."""

    __slots__ = ("_arr",)

    def __init__(self, arr):
        base = arr
        while isinstance(base.base, np.ndarray):
            base = base.base
        self._arr = base

    def data_ptr(self) -> int:
        return self._arr.__array_interface__["data"][0]

    def nbytes(self) -> int:
        return self._arr.nbytes

    def size(self) -> int:
        return self._arr.nbytes


def _wrap_dim(dim: int, ndim: int) -> int:
    """Normalise a possibly negative dim, raising torch's IndexError when out of range."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def _to_array(data, dt) -> np.ndarray:
    """Convert Python/numpy data to an ndarray of dtype ``dt`` (a gradlens dtype)."""
    return np.array(data, dtype=dt.np)


MULTI_OUTPUT = "multi_output"  # an output of split/chunk/unbind, or a view of one
NO_GRAD_MODE = "no_grad"  # the same, made while grad mode was off
_MULTI_OUTPUT_TAIL = (" This view is the output of a function that returns multiple views. Such functions do not allow "
                      "the output views to be modified inplace. You should replace the inplace operation by an "
                      "out-of-place one.")
_NO_GRAD_TAIL = (" Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify your code "
                 "by moving both the view and the inplace either both inside the no_grad block (if you don't want the "
                 "inplace to be tracked) or both outside (if you want the inplace to be tracked).")


def view_rebase_error(t: Tensor, direct: bool = True, view_name: str | None = None) -> RuntimeError:
    """torch's error for an in-place change of a view it cannot rebase (``t._creation_meta`` is set): ``t``
    itself modified (``direct``) or its base / another view of its base (found when ``t`` is next used).
    ``view_name``: the view of ``t`` that setitem writes through (``Select``), if any."""
    from .autograd.graph import node_label

    modified = "is being" if direct else "its base or another view of its base has been"
    meta = t._creation_meta
    if meta == MULTI_OUTPUT and view_name is not None:
        head = f"Output 0 of {view_name} is a view and {modified} modified inplace."
    elif meta == MULTI_OUTPUT and t._grad_fn is not None:
        head = f"Output {t._output_nr} of {node_label(t._grad_fn)} is a view and {modified} modified inplace."
    else:
        head = f"A view was created in no_grad mode and {modified} modified inplace with grad mode enabled."
    return RuntimeError(head + (_MULTI_OUTPUT_TAIL if meta == MULTI_OUTPUT else _NO_GRAD_TAIL))


def check_inplace(t: Tensor, operands: tuple = (), view_name: str | None = None) -> None:
    """Raise torch's error for an in-place op that autograd cannot allow on ``t`` (``operands``: the op's
    other inputs, which make it differentiable when they require grad)."""
    if GRAD_MODE.enabled:
        if t._creation_meta is not None and (
            t._rg or t._base._rg or any(isinstance(o, Tensor) and o._rg for o in operands)
        ):
            raise view_rebase_error(t, True, view_name)
        if t._rg and t._grad_fn is None:
            raise RuntimeError(_LEAF_INPLACE)
        base = t._base
        if base is not None and base._rg and base._grad_fn is None and t._rg:
            raise RuntimeError(_VIEW_LEAF_INPLACE)
    if t._inference and not GRAD_MODE.inference:
        raise RuntimeError("Inplace update to inference tensor outside InferenceMode is not allowed.You can make "
                           "a clone to get a normal tensor before doing inplace update.See "
                           "https://github.com/pytorch/rfcs/pull/17 for more details.")
