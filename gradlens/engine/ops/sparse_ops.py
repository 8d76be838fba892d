"""Sparse COO tensors for the native engine: ``torch.sparse_coo_tensor``, ``Tensor.to_sparse()`` and the ops
graph code (PyTorch's gcn example) runs on them, with torch's result layouts.

A ``SparseTensor`` is a ``Tensor`` (as torch's sparse tensors are ``torch.Tensor``s) that holds an int64
``(sparse_dim, nnz)`` index array and a 1-D values array, never the dense array: its ``_data`` is a guard
object that raises torch's ``NotImplementedError`` ("Could not run ... with arguments from the 'SparseCPU'
backend") for any dense op that reaches it, so an op this module does not implement fails loudly instead of
computing on a dense copy. What is implemented, with torch's layouts:

- ``sparse @ dense`` / ``torch.mm`` / ``torch.spmm`` / ``torch.matmul`` -> dense (``MmBackward0``; the
  gradient w.r.t. the dense operand is ``S.T @ g``), ``dense @ sparse`` -> dense, ``sparse @ sparse`` ->
  sparse (coalesced);
- ``dense + sparse`` -> dense (``AddBackward0``), ``sparse + sparse`` -> sparse, ``sparse + dense`` raises
  torch's error; ``sparse * number`` -> sparse;
- ``sum()`` -> dense 0-d, ``sum(dim)`` -> sparse (all dims -> dense);
- ``coalesce``, ``is_coalesced``, ``_indices``/``_values`` (any), ``indices``/``values`` (coalesced only),
  ``_nnz``, ``sparse_dim``, ``dense_dim``, ``to_dense``, ``t``, ``to``/``double``/``float``, ``clone``,
  ``detach``, torch's repr.

Sparse tensors here never require grad (torch can differentiate through their values; this engine refuses
it with NotImplementedError rather than dropping the gradient), and hybrid tensors (dense dims in the
values) are not supported. ``torch.layout`` with ``strided`` and ``sparse_coo`` lives here too: every
Tensor gets ``layout`` and ``is_sparse``.
"""

from __future__ import annotations

import builtins

from .. import _dtype
from ..autograd.grad_mode import STATE as GRAD_MODE
from ._core import OPS, Node, Tensor, np, op, record, wrap_dim
from .reduce import _NODIM

__all__ = ["layout", "strided", "sparse_coo", "SparseTensor", "sparse_coo_tensor", "spmm", "mm", "matmul", "add",
           "sum"]


class layout:  # noqa: N801 - torch's name
    """A tensor memory layout, printed as torch prints it (``torch.strided``, ``torch.sparse_coo``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return f"torch.{self._name}"

    def __reduce__(self):
        return (_layout_by_name, (self._name,))


strided = layout("strided")
sparse_coo = layout("sparse_coo")


def _layout_by_name(name: str) -> layout:
    return {"strided": strided, "sparse_coo": sparse_coo}[name]


Tensor.layout = property(lambda self: strided, doc="The memory layout: torch.strided for dense tensors.")
Tensor.is_sparse = False


def _backend_error(what: str = "this operator") -> NotImplementedError:
    return NotImplementedError(
        f"Could not run {what} with arguments from the 'SparseCPU' backend. gradlens.engine implements only "
        "mm/spmm/matmul, add, sum, coalesce, to_dense, t, to and mul by a number on sparse tensors; call "
        ".to_dense() first.")


class _SparseData:
    """The ``_data`` of a sparse tensor: any dense code path that touches it raises torch's backend error."""

    __slots__ = ()

    def __getattr__(self, name):
        raise _backend_error()

    def __array__(self, *args, **kwargs):
        raise _backend_error()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise _backend_error(f"'aten::{ufunc.__name__}'")

    def __array_function__(self, func, types, args, kwargs):
        raise _backend_error(f"'aten::{func.__name__}'")

    def __len__(self):
        raise _backend_error()

    def __getitem__(self, key):
        raise _backend_error("'aten::index'")

    def __setitem__(self, key, value):
        raise _backend_error("'aten::index_put_'")

    def _refuse(self, *args):
        raise _backend_error()

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __matmul__ = __rmatmul__ = __pow__ = __rpow__ = __neg__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __iadd__ = __isub__ = __imul__ = __itruediv__ = __eq__ = __ne__ = _refuse
    __hash__ = object.__hash__


_SPARSE_DATA = _SparseData()
_NO_GRAD_MSG = ("gradlens.engine: sparse tensors that require grad are not supported (torch can differentiate "
                "through sparse values; this engine cannot). Use a dense tensor, or .to_dense().")


def _coalesce_arrays(idx: np.ndarray, vals: np.ndarray, size: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Indices sorted lexicographically with duplicates summed, as torch's ``coalesce``."""
    if idx.shape[1] == 0:
        return idx, vals
    if idx.shape[0] == 0:  # a 0-d sparse tensor: every entry is the one element
        return idx[:, :1], np.add.reduce(vals, keepdims=True).astype(vals.dtype)
    if ((idx < 0) | (idx >= np.asarray(size)[:, None])).any():
        raise RuntimeError(f"sparse tensor has an index out of bounds for its size {tuple(size)}")
    lin = np.ravel_multi_index(tuple(idx), size)
    order = np.argsort(lin, kind="stable")
    lin = lin[order]
    starts = np.flatnonzero(np.r_[True, lin[1:] != lin[:-1]])
    new_vals = np.add.reduceat(vals[order], starts).astype(vals.dtype, copy=False)
    new_idx = np.array(np.unravel_index(lin[starts], size), dtype=np.int64).reshape(len(size), -1)
    return new_idx, new_vals


class SparseTensor(Tensor):
    """A sparse COO tensor: ``indices`` (int64, ``(sparse_dim, nnz)``) and ``values`` (1-D) of a ``size``."""

    # _sp_cache: derived arrays of this (immutable) tensor kept for repeated products: the coalesced
    # transpose and the row starts ("_t", "starts")
    __slots__ = ("_sp_idx", "_sp_vals", "_sp_size", "_sp_coalesced", "_sp_cache")

    def __init__(self, *args, **kwargs):
        raise TypeError("use torch.sparse_coo_tensor(indices, values, size) or Tensor.to_sparse()")

    @classmethod
    def _new(cls, idx: np.ndarray, vals: np.ndarray, size: tuple, coalesced: bool) -> SparseTensor:
        t = object.__new__(cls)
        t._data = _SPARSE_DATA
        t._grad_fn = None
        t._rg = False
        t._vbox = [0]
        t._sp_idx = idx
        t._sp_vals = vals
        t._sp_size = tuple(int(s) for s in size)
        t._sp_coalesced = coalesced
        t._sp_cache = None
        if GRAD_MODE.inference:
            t._inference = True
        return t

    def _coalesced(self) -> SparseTensor:
        if self._sp_coalesced:
            return self
        idx, vals = _coalesce_arrays(self._sp_idx, self._sp_vals, self._sp_size)
        return SparseTensor._new(idx, vals, self._sp_size, True)

    # --- what a sparse tensor is ----------------------------------------------------------------------------
    layout = sparse_coo
    is_sparse = True

    @property
    def shape(self):
        from ..tensor import Size

        return Size(self._sp_size)

    def size(self, dim: int | None = None):
        if dim is None:
            return self.shape
        return self._sp_size[wrap_dim(dim, len(self._sp_size))]

    @property
    def dtype(self):
        return _dtype.from_numpy_dtype(self._sp_vals.dtype)

    @property
    def ndim(self) -> int:
        return len(self._sp_size)

    def dim(self) -> int:
        return len(self._sp_size)

    ndimension = dim

    def numel(self) -> int:
        n = 1
        for s in self._sp_size:
            n *= s
        return n

    nelement = numel

    def element_size(self) -> int:
        return self._sp_vals.itemsize

    @property
    def itemsize(self) -> int:
        return self._sp_vals.itemsize

    def is_floating_point(self) -> bool:
        return self._sp_vals.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return False

    def __len__(self) -> int:
        if not self._sp_size:
            raise TypeError("len() of a 0-d tensor")
        return self._sp_size[0]

    def data_ptr(self) -> int:
        raise RuntimeError("Cannot access data pointer of Tensor that doesn't have storage")

    def untyped_storage(self):
        raise NotImplementedError("Cannot access storage of SparseTensorImpl")

    def sparse_dim(self) -> int:
        return len(self._sp_size)

    def dense_dim(self) -> int:
        return 0

    def _nnz(self) -> int:
        return self._sp_vals.shape[0]

    def is_coalesced(self) -> bool:
        return self._sp_coalesced

    def coalesce(self) -> SparseTensor:
        """The same tensor with sorted, unique indices (duplicates summed); itself when already coalesced."""
        return self._coalesced()

    def _indices(self) -> Tensor:
        return Tensor._make(self._sp_idx)

    def _values(self) -> Tensor:
        return Tensor._make(self._sp_vals)

    def indices(self) -> Tensor:
        if not self._sp_coalesced:
            raise RuntimeError("Cannot get indices on an uncoalesced tensor, please call .coalesce() first")
        return Tensor._make(self._sp_idx)

    def values(self) -> Tensor:
        if not self._sp_coalesced:
            raise RuntimeError("Cannot get values on an uncoalesced tensor, please call .coalesce() first")
        return Tensor._make(self._sp_vals)

    def _dense_array(self) -> np.ndarray:
        out = np.zeros(self._sp_size, dtype=self._sp_vals.dtype)
        if self._sp_size and self._sp_coalesced:  # unique indices: a plain indexed add
            out[tuple(self._sp_idx)] += self._sp_vals
        elif self._sp_size:
            np.add.at(out, tuple(self._sp_idx), self._sp_vals)
        else:
            out[...] = np.add.reduce(self._sp_vals)
        return out

    def to_dense(self, dtype=None, *, masked_grad=None) -> Tensor:
        """The dense (strided) tensor with these entries (duplicates summed)."""
        arr = self._dense_array()
        if dtype is not None:
            arr = arr.astype(_dtype.to_dtype(dtype).np)
        return Tensor._make(arr)

    def to_sparse(self, *args, **kwargs) -> SparseTensor:
        return self

    # --- autograd state: sparse tensors here never require grad ------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> SparseTensor:
        if requires_grad:
            raise NotImplementedError(_NO_GRAD_MSG)
        return self

    @property
    def requires_grad(self) -> bool:
        return False

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def detach(self) -> SparseTensor:
        return SparseTensor._new(self._sp_idx, self._sp_vals, self._sp_size, self._sp_coalesced)

    def clone(self, *, memory_format=None) -> SparseTensor:
        return SparseTensor._new(self._sp_idx.copy(), self._sp_vals.copy(), self._sp_size, self._sp_coalesced)

    # --- conversion -----------------------------------------------------------------------------------------
    def numpy(self, *, force: bool = False):
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self._dense_array().reshape(()).item()

    def __float__(self) -> float:
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return float(self.item())

    def tolist(self):
        raise _backend_error("'aten::tolist'")

    def to(self, *args, **kwargs) -> SparseTensor:
        """Device and dtype moves as the dense ``to`` parses them (only the CPU exists)."""
        vals = Tensor._make(self._sp_vals)
        if args and isinstance(args[0], SparseTensor):  # to(other): its dtype
            args = (args[0].dtype, *args[1:])
        moved = OPS["to"][0](vals, *args, **kwargs)
        if moved is vals:
            return self
        return SparseTensor._new(self._sp_idx.copy(), moved._data, self._sp_size, self._sp_coalesced)

    def cpu(self) -> SparseTensor:
        return self

    def double(self) -> SparseTensor:
        return self.to(_dtype.float64)

    def float(self) -> SparseTensor:  # noqa: A003 - torch's name
        return self.to(_dtype.float32)

    def long(self) -> SparseTensor:
        return self.to(_dtype.int64)

    def type_as(self, other) -> SparseTensor:
        return self.to(other.dtype)

    # --- ops ------------------------------------------------------------------------------------------------
    def t(self) -> SparseTensor:
        """The transpose of a sparse matrix (indices' rows swapped; no longer coalesced)."""
        if len(self._sp_size) > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {len(self._sp_size)}D")
        if len(self._sp_size) < 2:
            return self
        return SparseTensor._new(self._sp_idx[::-1].copy(), self._sp_vals, self._sp_size[::-1],
                                 self._sp_coalesced and self._nnz() <= 1)

    def mm(self, mat2) -> Tensor:
        return mm(self, mat2)

    spmm = mm

    def matmul(self, other) -> Tensor:
        return matmul(self, other)

    def __matmul__(self, other):
        return matmul(self, other) if isinstance(other, Tensor) else NotImplemented

    def __rmatmul__(self, other):
        return matmul(other, self) if isinstance(other, Tensor) else NotImplemented

    def add(self, other, *, alpha=1):
        return add(self, other, alpha=alpha)

    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        if isinstance(other, Tensor):
            return add(other, self)
        return add(self, other)

    def __mul__(self, other):
        if isinstance(other, np.generic):
            other = other.item()
        if isinstance(other, (builtins.bool, builtins.int, builtins.float)):
            vals = Tensor._make(self._sp_vals) * other
            return SparseTensor._new(self._sp_idx, vals._data, self._sp_size, self._sp_coalesced)
        raise _backend_error("'aten::mul.Tensor' with a dense operand")

    __rmul__ = __mul__
    mul = __mul__

    def __neg__(self) -> SparseTensor:
        return SparseTensor._new(self._sp_idx, -self._sp_vals, self._sp_size, self._sp_coalesced)

    neg = __neg__

    def sum(self, dim=_NODIM, keepdim: bool = False, *, dtype=None) -> Tensor:
        return sum(self, dim, keepdim, dtype=dtype)

    def __reduce_ex__(self, protocol):
        return (_rebuild_sparse, (self._sp_idx.copy(), self._sp_vals.copy(), self._sp_size, self._sp_coalesced))

    def __deepcopy__(self, memo):
        new = self.clone()
        memo[id(self)] = new
        return new

    def __repr__(self) -> str:
        """torch's sparse repr: indices and values bodies, then size/nnz/dtype/layout from a new line."""
        from .._format import PRINT_OPTS, _tensor_str

        def body(arr: np.ndarray, indent: int) -> str:
            if arr.size == 0:
                return f"[], size={tuple(arr.shape)}"
            return _tensor_str(arr, indent)

        pad = len("tensor(")
        text = (f"tensor(indices=tensor({body(self._sp_idx, pad + len('indices=tensor('))}),\n"
                f"{' ' * pad}values=tensor({body(self._sp_vals, pad + len('values=tensor('))})")
        suffixes = [f"size={self._sp_size}", f"nnz={self._nnz()}"]
        dt = self._sp_vals.dtype
        if dt != _dtype.get_default_dtype().np and dt != np.int64 and dt != np.bool_:
            suffixes.append(f"dtype={self.dtype!r}")
        suffixes.append("layout=torch.sparse_coo")
        parts, last = [text], None
        for suffix in suffixes:  # the first suffix always starts a line, as torch does for sparse tensors
            if last is None or last + len(suffix) + 2 > PRINT_OPTS.linewidth:
                parts.append(",\n" + " " * pad + suffix)
                last = pad + len(suffix)
            else:
                parts.append(", " + suffix)
                last += len(suffix) + 2
        return "".join(parts) + ")"


def _rebuild_sparse(idx, vals, size, coalesced):
    return SparseTensor._new(idx, vals, size, coalesced)


def _is_sparse(x) -> bool:
    return x.__class__ is SparseTensor


# --- construction ---------------------------------------------------------------------------------------------
def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None, pin_memory: bool = False,
                      requires_grad: bool = False, check_invariants=None, is_coalesced=None) -> SparseTensor:
    """``torch.sparse_coo_tensor``: a sparse tensor with ``values[k]`` at ``indices[:, k]``.

    Args:
        indices: ``(sparse_dim, nnz)`` integer indices (a Tensor or array-like).
        values: ``nnz`` values (1-D; hybrid tensors with dense dims are not supported).
        size: the tensor's size; inferred as each dim's largest index + 1 when None.
        dtype: the values' dtype (else the values' own, or the default dtype for Python floats).
        device: only the CPU exists.
        requires_grad: must be False on this engine.
        is_coalesced: declare the indices already sorted and unique.

    Returns:
        A SparseTensor (``layout == torch.sparse_coo``), not coalesced unless declared or trivially so.

    Raises:
        RuntimeError: indices not 2-D, or indices and values of different nnz (torch's messages).
        NotImplementedError: requires_grad, values that require grad, or hybrid values.

    Example:
        >>> import gradlens.engine as torch
        >>> s = torch.sparse_coo_tensor([[0, 1], [1, 0]], [2.0, 3.0], (2, 2))
        >>> s.to_dense()
        tensor([[0., 2.],
                [3., 0.]])
    """
    if device is not None:
        from ..device import require_available

        require_available(device)
    if requires_grad or (isinstance(values, Tensor) and values.requires_grad and GRAD_MODE.enabled):
        raise NotImplementedError(_NO_GRAD_MSG)
    idx = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    idx = idx.astype(np.int64)  # torch casts float indices too
    if size is not None and idx.ndim == 2 and len(size) != idx.shape[0]:
        raise RuntimeError(f"'len(size) == sparse_dim + dense_dim' is not satisfied: len(size) = {len(size)}, "
                           f"sparse_dim = {idx.shape[0]}, dense_dim = 0")
    if idx.ndim != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(idx.shape)}")
    if isinstance(values, Tensor):
        vals = values._data
    else:
        from ..creation import tensor as _tensor

        vals = _tensor(values)._data
    if dtype is not None:
        vals = vals.astype(_dtype.to_dtype(dtype).np)
    else:
        vals = vals.copy()
    if vals.ndim != 1:
        raise NotImplementedError("gradlens.engine: hybrid sparse tensors (values with dense dims) are not "
                                  "supported; values must be 1-D")
    if idx.shape[1] != vals.shape[0]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: {idx.shape[1]}, "
                           f"nnz from values: {vals.shape[0]}")
    if size is None:
        size = tuple(int(m) + 1 for m in idx.max(axis=1)) if idx.shape[1] else (0,) * idx.shape[0]
    else:
        size = tuple(int(s) for s in size)
    coalesced = builtins.bool(is_coalesced) if is_coalesced is not None else idx.shape[1] <= 1
    return SparseTensor._new(idx, vals, size, coalesced)


def to_sparse(self: Tensor, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None) -> SparseTensor:
    """``Tensor.to_sparse()``: the COO tensor of this dense tensor's nonzero entries (coalesced).

    Raises:
        NotImplementedError: for another layout, a hybrid result (``sparse_dim < ndim``), or an input that
            requires grad while grad mode is on (this engine has no sparse gradients).
    """
    if layout is not None and layout is not sparse_coo:
        raise NotImplementedError(f"gradlens.engine: to_sparse(layout={layout!r}) is not supported")
    x = self._data
    if sparse_dim is not None and (sparse_dim.__class__ is bool or not isinstance(sparse_dim, (int, np.integer))):
        raise TypeError(f"to_sparse() received an invalid combination of arguments - got "
                        f"({type(sparse_dim).__name__}), but expected one of:\n * (*, torch.layout layout = None, "
                        "tuple of ints blocksize = None, int dense_dim = None)\n * (int sparse_dim)\n")
    if (sparse_dim is not None and sparse_dim != x.ndim) or dense_dim:
        raise NotImplementedError("gradlens.engine: hybrid sparse tensors are not supported (sparse_dim must be "
                                  "the tensor's ndim)")
    if self.requires_grad and GRAD_MODE.enabled:
        raise NotImplementedError(_NO_GRAD_MSG)
    if x.ndim == 0:
        nz = np.zeros((0, 1 if x != 0 else 0), dtype=np.int64)
        return SparseTensor._new(nz, x.reshape(-1)[: nz.shape[1]].copy(), (), True)
    nz = np.nonzero(x)
    idx = np.array(nz, dtype=np.int64).reshape(x.ndim, -1)
    return SparseTensor._new(idx, x[nz].copy(), x.shape, True)


def to_dense(self: Tensor, dtype=None, *, masked_grad=None) -> Tensor:
    """``Tensor.to_dense()`` of a dense tensor: itself (or a cast copy)."""
    return self if dtype is None else self.to(dtype)


# --- matrix products ------------------------------------------------------------------------------------------
def _cache(s: SparseTensor) -> dict:
    if s._sp_cache is None:
        s._sp_cache = {}
    return s._sp_cache


def _csr_rows(s: SparseTensor):
    """For a coalesced 2-D sparse matrix: its rows, columns, values, each nonempty row's start and the rows
    that have one (cached: a graph's adjacency is multiplied every step)."""
    rows, cols = s._sp_idx
    cache = _cache(s)
    starts = cache.get("starts")
    if starts is None:
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if rows.size else np.zeros(0, dtype=np.int64)
        starts = cache["starts"] = (starts, rows[starts])
    return rows, cols, s._sp_vals, starts


_FLAT_CACHE_LIMIT = 1 << 21  # entries of a cached flat output index (16 MiB of int64)


def _spmm_array(s: SparseTensor, d: np.ndarray) -> np.ndarray:
    """``s @ d`` for a sparse ``(m, k)`` and a dense ``(k, n)`` or ``(k,)`` array.

    Each stored entry contributes ``value * d[col]`` to its row. Floating results are summed per output
    element with one ``bincount`` over a flat output index, cached on ``s`` when small (a graph's adjacency is
    multiplied by same-width features every step): about twice as fast as ``np.add.reduceat`` over rows,
    and accumulated in float64. Integer results use ``reduceat`` (exact).
    """
    s = s._coalesced()
    m = s._sp_size[0]
    rows, cols, vals, (starts, nonempty) = _csr_rows(s)
    rdt = np.result_type(vals, d)
    tail = d.shape[1:]
    if not rows.size:
        return np.zeros((m, *tail), dtype=rdt)
    contrib = np.take(d, cols, axis=0).astype(rdt, copy=False)
    contrib *= vals[:, None] if d.ndim == 2 else vals
    width = tail[0] if tail else 1
    if rdt.kind == "f" and rows.size * width <= _FLAT_CACHE_LIMIT:
        cache = _cache(s)
        flat = cache.get(("flat", width))
        if flat is None:
            flat = cache[("flat", width)] = (rows[:, None] * width + np.arange(width)).ravel()
        out = np.bincount(flat, weights=contrib.ravel(), minlength=m * width)
        return out.astype(rdt, copy=False).reshape(m, *tail)
    out = np.zeros((m, *tail), dtype=rdt)
    out[nonempty] = np.add.reduceat(contrib, starts, axis=0)
    return out


def _sparse_t(s: SparseTensor) -> SparseTensor:
    """The coalesced transpose (cached on ``s``: backward multiplies by it every step)."""
    cache = _cache(s)
    st = cache.get("t")
    if st is None:
        st = cache["t"] = s.t()._coalesced()
    return st


class MmBackward0(Node):
    """``sparse @ dense`` or ``dense @ sparse``: the dense operand's gradient (sparse ones never need one)."""

    __slots__ = ("sp", "sparse_left")
    _saves = False

    def backward(self, g):
        st = _sparse_t(self.sp)
        if self.sparse_left:  # out = S @ D: dD = S.T @ g
            return None, (mm(st, g) if isinstance(g, Tensor) else _spmm_array(st, g))
        # out = D @ S: dD = g @ S.T = (S @ g.T).T
        if isinstance(g, Tensor):
            return mm(g, st), None
        return np.ascontiguousarray(_spmm_array(self.sp, g.T).T), None


class MvBackward0(Node):
    """``sparse @ vector``: the vector's gradient."""

    __slots__ = ("sp",)
    _saves = False

    def backward(self, g):
        st = _sparse_t(self.sp)
        return None, (matmul(st, g) if isinstance(g, Tensor) else _spmm_array(st, g))


def _check_mm(a, b, name: str) -> None:
    for arg, v in (("input", a), ("mat2", b)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{name}(): argument '{arg}' must be Tensor, not {type(v).__name__}")
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError(f"{'self' if a.dim() != 2 else 'mat2'} must be a matrix")
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(f"addmm: Argument #3 (dense): Expected dim 0 size {a.shape[1]}, got {b.shape[0]}")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected scalar type {_ctype(a)} but found {_ctype(b)}")


_CTYPES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "int16": "Short",
           "int8": "Char", "uint8": "Byte", "bool": "Bool", "float16": "Half"}


def _ctype(t: Tensor) -> str:
    return _CTYPES.get(repr(t.dtype).split(".")[-1], repr(t.dtype))


def _sparse_sparse(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """``a @ b`` of two sparse matrices as a coalesced sparse matrix (a join on a's columns = b's rows)."""
    a, b = a._coalesced(), b._coalesced()
    m, n = a._sp_size[0], b._sp_size[1]
    ar, ac, av = a._sp_idx[0], a._sp_idx[1], a._sp_vals
    br, bc, bv = b._sp_idx[0], b._sp_idx[1], b._sp_vals
    k = b._sp_size[0]
    row_start = np.searchsorted(br, np.arange(k + 1))
    counts = (row_start[1:] - row_start[:-1])[ac]  # entries of b matching each entry of a
    total = int(counts.sum())
    rep = np.repeat(np.arange(ac.size), counts)
    offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = row_start[ac][rep] + offs
    idx = np.stack([ar[rep], bc[pos]]).astype(np.int64)
    vals = (av[rep] * bv[pos]).astype(np.result_type(av, bv), copy=False)
    idx, vals = _coalesce_arrays(idx, vals, (m, n))
    return SparseTensor._new(idx, vals, (m, n), True)


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """``torch.mm`` with sparse operands: sparse @ dense and dense @ sparse give a dense matrix (only the dense
    operand gets a gradient), sparse @ sparse a sparse one; two dense matrices go to the dense ``mm``.

    Raises:
        RuntimeError: non-matrix operands, mismatched inner sizes or dtypes (torch's messages).
    """
    if input.__class__ is not SparseTensor and mat2.__class__ is not SparseTensor:  # the dense fast path
        return _dense_mm(input, mat2)
    ls, rs = _is_sparse(input), _is_sparse(mat2)
    _check_mm(input, mat2, "mm")
    if ls and rs:
        return _sparse_sparse(input, mat2)
    if ls:
        out, node = record(_spmm_array(input, mat2._data), MmBackward0, input, mat2)
    else:
        prod = np.ascontiguousarray(_spmm_array(_sparse_t(mat2), input._data.T).T)  # D @ S = (S.T @ D.T).T
        out, node = record(prod, MmBackward0, input, mat2)
    if node is not None:
        node.sp = input if ls else mat2
        node.sparse_left = ls
    return out


class SparseAddmmBackward0(Node):
    """``torch.sparse.mm(sparse, dense)``, which torch records as ``addmm(zeros, sparse, dense)``: edges to the
    (constant) zeros, the sparse matrix and the dense one; only the dense one gets a gradient here."""

    __slots__ = ("sp",)
    _saves = False

    def backward(self, g):
        st = _sparse_t(self.sp)
        return None, None, (mm(st, g) if isinstance(g, Tensor) else _spmm_array(st, g))


def sparse_mm(mat1: Tensor, mat2: Tensor) -> Tensor:
    """``torch.sparse.mm``: sparse @ dense recorded as torch does (``SparseAddmmBackward0``), dense @ sparse as
    the transpose of ``mat2.t() @ mat1.t()`` (``TransposeBackward0``), sparse @ sparse -> sparse."""
    ls, rs = _is_sparse(mat1), _is_sparse(mat2)
    if not ls and rs:
        _check_mm(mat1, mat2, "mm")
        return sparse_mm(mat2.t(), mat1.transpose(0, 1)).transpose(0, 1)
    if not ls or rs:
        return mm(mat1, mat2)
    _check_mm(mat1, mat2, "mm")
    zeros = Tensor._make(np.zeros((), dtype=mat2._data.dtype))
    out, node = record(_spmm_array(mat1, mat2._data), SparseAddmmBackward0, zeros, mat1, mat2)
    if node is not None:
        node.sp = mat1
    return out


def spmm(input: Tensor, mat2: Tensor) -> Tensor:
    """``torch.spmm``: ``torch.mm`` under its sparse name (dense operands are accepted too, as torch does)."""
    return mm(input, mat2)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """``torch.matmul`` / ``@`` with sparse operands: matrix products as ``mm``, sparse matrix @ vector -> dense."""
    if input.__class__ is not SparseTensor and other.__class__ is not SparseTensor:
        return _dense_matmul(input, other)
    if _is_sparse(input) and isinstance(other, Tensor) and not _is_sparse(other) and other.dim() == 1 \
            and input.dim() == 2:
        if input.shape[1] != other.shape[0]:
            raise RuntimeError(f"size mismatch, got input ({input.shape[0]}), mat ({input.shape[0]}x"
                               f"{input.shape[1]}), vec ({other.shape[0]})")
        out, node = record(_spmm_array(input, other._data), MvBackward0, input, other)
        if node is not None:
            node.sp = input
        return out
    return mm(input, other)


# --- addition -------------------------------------------------------------------------------------------------
class AddBackward0(Node):
    """``dense + sparse``: the dense operand's gradient is the output's, cast to its dtype."""

    __slots__ = ("np_dtype",)
    _saves = False

    def backward(self, g):
        if g.dtype != self.np_dtype and not isinstance(g, Tensor):
            g = g.astype(self.np_dtype)
        elif isinstance(g, Tensor) and g._data.dtype != self.np_dtype:
            g = g.to(_dtype.from_numpy_dtype(self.np_dtype))
        return g, None


def add(input, other, *, alpha=1, out=None):
    """``torch.add`` with sparse operands: dense + sparse -> dense, sparse + sparse -> sparse; sparse + dense
    raises torch's error. Dense operands go to the dense ``add``.

    Raises:
        RuntimeError: sparse + dense, or sizes that differ (no broadcasting with sparse operands, as torch).
    """
    if input.__class__ is not SparseTensor and other.__class__ is not SparseTensor:
        if alpha == 1 and out is None:
            return _dense_add(input, other)
        if out is not None:
            return _dense_add(input, other, alpha=alpha, out=out)
        return _dense_add(input, other, alpha=alpha)
    ls, rs = _is_sparse(input), _is_sparse(other)
    if ls and not rs:
        if isinstance(other, Tensor):
            raise RuntimeError("add(sparse, dense) is not supported. Use add(dense, sparse) instead.")
        raise _backend_error("'aten::add.Tensor' with a number")
    if not isinstance(input, Tensor):
        raise _backend_error("'aten::add.Tensor' with a number")
    if tuple(input.shape) != tuple(other.shape):
        if ls:
            raise RuntimeError(f"add: expected sizes of 'self' and 'other' to match, but {list(input.shape)} != "
                               f"{list(other.shape)}")
        raise RuntimeError(f"add: expected 'self' and 'other' to have same size, but self has size "
                           f"{list(input.shape)} while other has size {list(other.shape)} (FYI: dense-sparse "
                           "addition does not currently support broadcasting)")
    rdt = _dtype.promote_types(input.dtype, other.dtype).np
    vals = other._sp_vals if alpha == 1 else other._sp_vals * alpha
    if ls:  # sparse + sparse
        idx = np.concatenate([input._sp_idx, other._sp_idx], axis=1)
        allv = np.concatenate([input._sp_vals.astype(rdt), vals.astype(rdt)])
        res = SparseTensor._new(idx, allv, input._sp_size, False)
        return res._coalesced() if input._sp_coalesced and other._sp_coalesced else res
    dense = input._data.astype(rdt, copy=True)
    if dense.ndim and other._sp_coalesced:
        dense[tuple(other._sp_idx)] += vals.astype(rdt)
    elif dense.ndim:
        np.add.at(dense, tuple(other._sp_idx), vals.astype(rdt))
    else:
        dense = dense + np.add.reduce(vals.astype(rdt))
    res, node = record(dense, AddBackward0, input, other)
    if node is not None:
        node.np_dtype = input._data.dtype
    return res


# --- reduction ------------------------------------------------------------------------------------------------
def sum(input, dim=_NODIM, keepdim: bool = False, *, dtype=None):  # noqa: A001 - torch's name
    """``torch.sum`` of a sparse tensor: all elements -> a dense 0-d tensor; over ``dim`` -> a sparse tensor
    (over every dim -> dense). Dense tensors go to the dense ``sum``.

    Raises:
        IndexError: a dim out of range (torch's message).
    """
    if input.__class__ is not SparseTensor:
        if dim is _NODIM and dtype is None and not keepdim:
            return _dense_sum(input)
        return _dense_sum(input, dim, keepdim, dtype=dtype)
    vals = Tensor._make(input._sp_vals)
    nd = len(input._sp_size)
    if dim is None or dim is _NODIM:
        return vals.sum(dtype=dtype)
    dims = sorted({wrap_dim(d, nd) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))})
    if len(dims) == nd and not keepdim:
        return vals.sum(dtype=dtype)
    keep = [d for d in range(nd) if d not in dims]
    if keepdim:
        idx = input._sp_idx.copy()
        idx[dims] = 0
        size = tuple(1 if d in dims else s for d, s in enumerate(input._sp_size))
    else:
        idx = input._sp_idx[keep]
        size = tuple(input._sp_size[d] for d in keep)
    v = input._sp_vals if dtype is None else input._sp_vals.astype(_dtype.to_dtype(dtype).np)
    if dtype is None and v.dtype.kind in "biu":  # torch sums integers (and bools) in int64
        v = v.astype(np.int64)
    idx, v = _coalesce_arrays(idx, v, size)
    return SparseTensor._new(idx, v, size, not keepdim)  # torch flags a keepdim sum uncoalesced


# the dense implementations the sparse-aware functions fall back to (this module is imported after the ops
# package, so these are the final registry entries)
_dense_mm, _dense_matmul, _dense_add, _dense_sum = (OPS[name][0] for name in ("mm", "matmul", "add", "sum"))

# dense tensors' conversions, registered as methods (the ops package has already attached its methods)
for _name, _fn in (("to_sparse", to_sparse), ("to_dense", to_dense)):
    op(_name, function=False)(_fn)
    setattr(Tensor, _name, _fn)

# ``dense.add(sparse)`` / ``dense.mm(sparse)`` / ``dense.matmul(sparse)``: the methods (not the operators,
# which Python already routes to SparseTensor's reflected methods) become the sparse-aware forms
for _name, _fn in (("add", add), ("mm", mm), ("matmul", matmul)):
    setattr(Tensor, _name, _fn)
