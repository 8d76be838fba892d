"""Matrix products: matmul (``@``), mm, bmm, mv, dot, addmm, outer, einsum.

``matmul`` follows torch's ``_matmul_impl`` step by step, so the graph it records has torch's nodes for
every case: 2-D @ 2-D is one ``MmBackward0``; 1-D @ 2-D is ``SqueezeBackward4 -> MmBackward0 ->
UnsqueezeBackward0``; N-D @ 2-D folds the batch into the rows (``UnsafeViewBackward0 -> MmBackward0 ->
ViewBackward0``); other batched products expand and reshape to 3-D for one ``BmmBackward0``. ``einsum``
is torch's algorithm too (unsqueeze and permute every operand to one label order, then contract pairs
with ``bmm``). The small view nodes those paths need (view, reshape alias, unsafe view, unsqueeze,
squeeze, expand, permute, transpose, t, clone) are private here; their backward runs on ndarrays, or
records the same private ops when the backward itself is recorded (``create_graph=True``).

Every product node computes at most two matrix products in backward and saves an input only when the
other input needs its gradient (as torch does, so an in-place change of a constant operand is no error).
When nothing requires grad, ``matmul`` is a single numpy call.
"""

from __future__ import annotations

from ._core import GRAD_MODE, Node, Tensor, broadcast_error, not_a_tensor, np, op, record

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "addmm", "outer", "einsum"]

_DTYPE_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int",
                "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char",
                "bool": "bool"}
_SCALAR_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
                 "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


_ndarray = np.ndarray


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _is_array(x) -> bool:
    """An ndarray (or numpy scalar) gradient, as opposed to a Tensor when the backward is recorded."""
    return not isinstance(x, Tensor)


# --- private view-like ops (torch's nodes for the reshapes matmul performs) -------------------------------
class ViewBackward0(Node):
    __slots__ = ("in_shape",)
    _saves = False

    def backward(self, g):
        return (_reshape_any(g, self.in_shape),)


class UnsafeViewBackward0(ViewBackward0):
    __slots__ = ()


class ReshapeAliasBackward0(ViewBackward0):
    __slots__ = ()


class UnsqueezeBackward0(Node):
    __slots__ = ("in_shape",)
    _saves = False

    def backward(self, g):
        return (_reshape_any(g, self.in_shape),)


class SqueezeBackward1(UnsqueezeBackward0):
    __slots__ = ()


class SqueezeBackward4(UnsqueezeBackward0):
    __slots__ = ()


class ExpandBackward0(Node):
    __slots__ = ("in_shape",)
    _saves = False

    def backward(self, g):
        return (_sum_to_any(g, self.in_shape),)


class CloneBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (g,)


class TransposeBackward0(Node):
    __slots__ = ("dim0", "dim1")
    _saves = False

    def backward(self, g):
        return (_swap_any(g, self.dim0, self.dim1),)


class PermuteBackward0(Node):
    __slots__ = ("dims",)
    _saves = False

    def backward(self, g):
        inverse = tuple(int(i) for i in np.argsort(self.dims))
        return (np.transpose(g, inverse) if _is_array(g) else _permute(g, inverse),)


class TBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (_t_any(g),)


def _view_like(x: Tensor, arr, node_cls, in_shape=None) -> Tensor:
    """Record a view of ``x`` (shares its data and version counter)."""
    res, node = record(arr, node_cls, x)
    if node is not None and in_shape is not None:
        node.in_shape = in_shape
    res._vbox = x._vbox
    return res


def _view(x: Tensor, shape: tuple) -> Tensor:
    return _view_like(x, x._data.reshape(shape), ViewBackward0, x._data.shape)


def _unsafe_view(x: Tensor, shape: tuple) -> Tensor:
    return _view_like(x, x._data.reshape(shape), UnsafeViewBackward0, x._data.shape)


def _clone(x: Tensor) -> Tensor:
    res, _node = record(np.array(x._data, order="C"), CloneBackward0, x)
    return res


def _reshape(x: Tensor, shape: tuple) -> Tensor:
    """torch's reshape: a view of a contiguous tensor (``ViewBackward0``), a strided alias when the strides
    allow it (``ReshapeAliasBackward0``), else a contiguous copy and an unsafe view."""
    arr = x._data
    if arr.flags.c_contiguous:
        return _view_like(x, arr.reshape(shape), ViewBackward0, arr.shape)
    try:
        alias = arr.reshape(shape, copy=False)
    except ValueError:
        return _unsafe_view(_clone(x), shape)
    return _view_like(x, alias, ReshapeAliasBackward0, arr.shape)


def _unsqueeze(x: Tensor, dim: int) -> Tensor:
    return _view_like(x, np.expand_dims(x._data, dim), UnsqueezeBackward0, x._data.shape)


def _squeeze(x: Tensor, dim: int, node_cls=SqueezeBackward1) -> Tensor:
    arr = x._data
    if arr.shape[dim] == 1:
        arr = np.squeeze(arr, dim)
    return _view_like(x, arr, node_cls, x._data.shape)


def _expand(x: Tensor, shape: tuple) -> Tensor:
    return _view_like(x, np.broadcast_to(x._data, shape), ExpandBackward0, x._data.shape)


def _transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    res, node = record(np.swapaxes(x._data, dim0, dim1), TransposeBackward0, x)
    if node is not None:
        node.dim0, node.dim1 = dim0, dim1
    res._vbox = x._vbox
    return res


def _permute(x: Tensor, dims) -> Tensor:
    res, node = record(np.transpose(x._data, dims), PermuteBackward0, x)
    if node is not None:
        node.dims = tuple(dims)
    res._vbox = x._vbox
    return res


def _t(x: Tensor) -> Tensor:
    res, _node = record(x._data.T, TBackward0, x)
    res._vbox = x._vbox
    return res


# the same reshapes on a gradient: an ndarray, or a Tensor when the backward is recorded
def _reshape_any(g, shape):
    if _is_array(g):
        return g.reshape(shape)
    return _reshape(g, shape)


def _swap_any(g, d0, d1):
    if _is_array(g):
        return np.swapaxes(g, d0, d1)
    return _transpose(g, d0, d1)


def _t_any(g):
    if _is_array(g):
        return g.T
    return _t(g)


def _sum_to_any(g, shape):
    if tuple(g.shape) == tuple(shape):
        return g
    if len(shape) == 1 and g.ndim == 2 and _is_array(g) and shape[0] == g.shape[1]:
        return np.add.reduce(g, 0)  # a bias of nn.Linear (ndarray.sum without numpy's Python wrapper)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and g.shape[i + lead] != 1)
    if _is_array(g):
        return g.sum(axis=axes).reshape(shape)
    return _reshape(g.sum(dim=axes), tuple(shape))


def _mm_any(a, b):
    if _is_array(a) and _is_array(b):
        return a.dot(b)  # ndarray.dot: the same BLAS call as @, with less overhead on small matrices
    return mm(_as_tensor(a), _as_tensor(b))


def _bmm_any(a, b):
    if _is_array(a) and _is_array(b):
        return np.matmul(a, b)
    return bmm(_as_tensor(a), _as_tensor(b))


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor._make(x)


# --- product nodes ----------------------------------------------------------------------------------------
def _save_operands(node: Node, a: Tensor, b: Tensor) -> None:
    """Save ``a`` only when ``b`` needs a gradient and ``b`` only when ``a`` does (torch's rule)."""
    nxt = node._next
    need_a, need_b = nxt[0][0] is not None, nxt[-1][0] is not None
    if need_a and need_b:
        node.save(a, b)
    elif need_a:
        node.save(b)
    else:
        node.save(a)


def _saved_operands(node: Node, na: int = 0, nb: int = 1):
    """``(a, b)`` as saved by ``_save_operands`` (``None`` for the one not saved)."""
    saved = node.saved()
    nxt = node._next
    need_a, need_b = nxt[na][0] is not None, nxt[nb][0] is not None
    if need_a and need_b:
        return saved[0], saved[1]
    if need_a:
        return None, saved[0]
    return saved[0], None


def _cm(arr) -> bool:
    """Whether a 2-D operand is column-major (a transposed contiguous matrix, e.g. ``weight.t()``)."""
    flags = arr.flags  # one flags object, not two
    return flags.f_contiguous and not flags.c_contiguous


def _mat1_grad(g, m2, cm1: bool):
    """``g @ m2.T`` in the layout of mat1, as torch's ``mm_mat1_backward``."""
    if g.__class__ is _ndarray and m2.__class__ is _ndarray:
        return m2.dot(g.T).T if cm1 else g.dot(m2.T)
    return _mm_any(g, _t_any(m2))


def _mat2_grad(g, m1, cm2: bool):
    """``m1.T @ g`` in the layout of mat2, as torch's ``mm_mat2_backward``: for ``x @ weight.t()`` the
    product comes out row-major for ``weight``, so its gradient needs no copy (MLP: -0.15 ms a step)."""
    if g.__class__ is _ndarray and m1.__class__ is _ndarray:
        return g.T.dot(m1).T if cm2 else m1.T.dot(g)
    return _mm_any(_t_any(m1), g)


class MmBackward0(Node):
    __slots__ = ("cm",)

    def backward(self, g):
        a, b = _saved_operands(self)
        cm1, cm2 = self.cm
        ga = _mat1_grad(g, b, cm1) if b is not None else None
        gb = _mat2_grad(g, a, cm2) if a is not None else None
        return ga, gb


class BmmBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        a, b = _saved_operands(self)
        ga = _bmm_any(g, _swap_any(b, 1, 2)) if b is not None else None
        gb = _bmm_any(_swap_any(a, 1, 2), g) if a is not None else None
        return ga, gb


class MvBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        m, v = _saved_operands(self)
        gm = gv = None
        if v is not None:
            if _is_array(g) and _is_array(v):
                gm = np.multiply.outer(g, v)
            else:
                gm = outer(_as_tensor(g), _as_tensor(v))
        if m is not None:
            gv = m.T.dot(g) if _is_array(g) and _is_array(m) else mv(_t(_as_tensor(m)), _as_tensor(g))
        return gm, gv


class DotBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        a, b = _saved_operands(self)
        return (g * b if b is not None else None), (g * a if a is not None else None)


class AddmmBackward0(Node):
    __slots__ = ("in_shape", "beta", "alpha", "cm")

    def backward(self, g):
        m1, m2 = _saved_operands(self, 1, 2)
        nxt = self._next
        alpha, beta = self.alpha, self.beta
        cm1, cm2 = self.cm
        gi = g1 = g2 = None
        if nxt[0][0] is not None:
            gi = _sum_to_any(g if beta == 1 else g * beta, self.in_shape)
        if m2 is not None:
            g1 = _mat1_grad(g, m2, cm1)
            if alpha != 1:
                g1 = g1 * alpha
        if m1 is not None:
            g2 = _mat2_grad(g, m1, cm2)
            if alpha != 1:
                g2 = g2 * alpha
        return gi, g1, g2


# --- checks -----------------------------------------------------------------------------------------------
def _same_dtype_mm(ad, bd) -> None:
    if ad.dtype != bd.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{_DTYPE_NAMES[str(ad.dtype)]} != {_DTYPE_NAMES[str(bd.dtype)]}")


def _no_bool_kernel(kernel: str) -> NotImplementedError:
    """torch has no CPU kernel of the matrix products for bool (it skips the kernel when nothing is summed)."""
    return NotImplementedError(f"\"{kernel}\" not implemented for 'Bool'")


def _bmm_dtypes(ad: np.ndarray, bd: np.ndarray) -> bool:
    """torch's dtype checks of ``bmm`` (bool, then mixed dtypes; both skipped when the product sums
    nothing or is empty). True when the operands' dtypes differ but the product is empty anyway."""
    empty = ad.shape[0] == 0 or ad.shape[1] == 0 or ad.shape[2] == 0 or bd.shape[2] == 0
    if empty:
        return ad.dtype != bd.dtype
    if ad.dtype == np.bool_:
        raise _no_bool_kernel("bmm")
    if ad.dtype != bd.dtype:
        raise RuntimeError(f"expected scalar type {_SCALAR_NAMES[str(ad.dtype)]} but found "
                           f"{_SCALAR_NAMES[str(bd.dtype)]}")
    return False


def _shape_x(shape) -> str:
    return "x".join(map(str, shape))


# --- the ops ----------------------------------------------------------------------------------------------
@op()
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """Matrix product of two 2-D tensors.

    Args:
        input: an ``(n, m)`` tensor.
        mat2: an ``(m, p)`` tensor of the same dtype.

    Returns:
        The ``(n, p)`` product (``grad_fn=<MmBackward0>``).

    Raises:
        RuntimeError: when an argument is not 2-D, the inner sizes differ, or the dtypes differ.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.mm(torch.ones(2, 3), torch.ones(3, 4)).shape
        torch.Size([2, 4])
    """
    try:
        ad, bd = input._data, mat2._data
    except AttributeError:
        raise not_a_tensor("mm", input=input, mat2=mat2) from None
    if ad.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if bd.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if ad.shape[1] != bd.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_shape_x(ad.shape)} and "
                           f"{_shape_x(bd.shape)})")
    if ad.dtype != bd.dtype:
        _same_dtype_mm(ad, bd)
    if ad.dtype.kind == "b" and ad.size and bd.size:
        raise _no_bool_kernel("addmm_impl_cpu_")
    res, node = record(ad.dot(bd), MmBackward0, input, mat2)
    if node is not None:
        # _save_operands inlined, and the layout asked only of an operand whose gradient is needed
        nxt = node._next
        need_a, need_b = nxt[0][0] is not None, nxt[1][0] is not None
        if need_a and need_b:
            node.save(input, mat2)
        elif need_a:
            node.save(mat2)
        else:
            node.save(input)
        node.cm = (need_a and _cm(ad), need_b and _cm(bd))
    return res


@op()
def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched matrix product of two 3-D tensors ``(b, n, m) @ (b, m, p)``."""
    try:
        ad, bd = input._data, mat2._data
    except AttributeError:
        raise not_a_tensor("bmm", input=input, mat2=mat2) from None
    if ad.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if bd.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if ad.shape[0] != bd.shape[0] or ad.shape[2] != bd.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{ad.shape[0]}, {ad.shape[2]}] but got: [{bd.shape[0]}, {bd.shape[1]}].")
    if (ad.dtype != bd.dtype or ad.dtype.kind == "b") and _bmm_dtypes(ad, bd):
        # torch skips the dtype check when the product is empty: zeros of mat2's dtype, which autograd
        # refuses when that is not a floating dtype and an operand requires grad
        ad = ad.astype(bd.dtype)
        if bd.dtype.kind not in "fc" and GRAD_MODE.enabled and (input._rg or mat2._rg):
            raise RuntimeError(f"Autograd not support dtype: {_SCALAR_NAMES[str(bd.dtype)]}")
    res, node = record(np.matmul(ad, bd), BmmBackward0, input, mat2)
    if node is not None:
        _save_operands(node, input, mat2)
    return res


@op()
def mv(input: Tensor, vec: Tensor) -> Tensor:
    """Matrix-vector product ``(n, m) @ (m,)``."""
    try:
        ad, bd = input._data, vec._data
    except AttributeError:
        raise not_a_tensor("mv", input=input, vec=vec) from None
    if ad.ndim == 0:  # torch reads the matrix's size(0) first
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    if ad.ndim != 2 or bd.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {ad.ndim}, {bd.ndim}")
    if ad.shape[1] != bd.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({ad.shape[0]}), mat ({_shape_x(ad.shape)}), vec "
                           f"({bd.shape[0]})")
    if ad.dtype != bd.dtype:
        names = (_SCALAR_NAMES[str(bd.dtype)], _SCALAR_NAMES[str(ad.dtype)], _SCALAR_NAMES[str(bd.dtype)])
        raise RuntimeError("addmv input tensors must have the same dtype, but got {}, {}, and {}"
                           .format(*names))
    if ad.dtype.kind == "b" and ad.size:
        raise _no_bool_kernel("addmv_impl_cpu")
    res, node = record(ad.dot(bd), MvBackward0, input, vec)
    if node is not None:
        _save_operands(node, input, vec)
    return res


@op()
def dot(input: Tensor, tensor: Tensor) -> Tensor:
    """Inner product of two 1-D tensors with the same number of elements."""
    try:
        ad, bd = input._data, tensor._data
    except AttributeError:
        raise not_a_tensor("dot", input=input, tensor=tensor) from None
    if ad.ndim != 1 or bd.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {ad.ndim}D and {bd.ndim}D tensors")
    if ad.shape[0] != bd.shape[0]:
        n, m = ad.shape[0], bd.shape[0]
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same "
                           f"number of elements, but got {n} and {m} elements respectively")
    if ad.dtype != bd.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                           f"{_SCALAR_NAMES[str(ad.dtype)]} and {_SCALAR_NAMES[str(bd.dtype)]}")
    if ad.dtype.kind == "b":
        raise _no_bool_kernel("dot")
    res, node = record(np.asarray(np.dot(ad, bd)), DotBackward0, input, tensor)
    if node is not None:
        _save_operands(node, input, tensor)
    return res



@op(aliases=("ger",))
def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """Outer product of two 1-D tensors; torch records ``input.view(-1, 1) * vec2`` (``MulBackward0``)."""
    from .arith import mul

    if not (isinstance(input, Tensor) and isinstance(vec2, Tensor)):  # torch checks types before shapes
        raise not_a_tensor("outer", input=input, vec2=vec2)
    if input._data.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument self, but got {input._data.ndim}-D")
    if vec2._data.ndim != 1:
        raise RuntimeError(f"outer: Expected 1-D argument vec2, but got {vec2._data.ndim}-D")
    return mul(_reshape(input, (input._data.shape[0], 1)), vec2)


@op()
def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (mat1 @ mat2)``; what ``nn.Linear`` computes on 2-D input.

    Args:
        input: a tensor broadcastable to ``(n, p)`` (the bias).
        mat1: an ``(n, m)`` tensor.
        mat2: an ``(m, p)`` tensor.
        beta: the multiplier of ``input``.
        alpha: the multiplier of the product.

    Returns:
        The ``(n, p)`` result (``grad_fn=<AddmmBackward0>`` with edges for input, mat1 and mat2).

    Example:
        >>> import gradlens.engine as torch
        >>> torch.addmm(torch.zeros(4), torch.ones(2, 3), torch.ones(3, 4))[0]
        tensor([3., 3., 3., 3.])
    """
    id_, ad, bd = input._data, mat1._data, mat2._data
    if ad.ndim != 2:
        raise RuntimeError(f"mat1 must be a matrix, got {ad.ndim}-D tensor")
    if bd.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix, got {bd.ndim}-D tensor")
    if ad.shape[1] != bd.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_shape_x(ad.shape)} and "
                           f"{_shape_x(bd.shape)})")
    if ad.dtype != bd.dtype or id_.dtype != ad.dtype:
        for first, name in ((id_, "self"), (ad, "mat1")):
            if first.dtype != bd.dtype:
                raise RuntimeError(f"{name} and mat2 must have the same dtype, but got "
                                   f"{_SCALAR_NAMES[str(first.dtype)]} and {_SCALAR_NAMES[str(bd.dtype)]}")
    if ad.dtype.kind == "b" and ad.shape[0] and bd.shape[1]:
        if not ad.shape[1]:
            raise RuntimeError("result type Long can't be cast to the desired output type Bool")
        raise _no_bool_kernel("addmm_impl_cpu_")
    target = (ad.shape[0], bd.shape[1])
    if id_.shape != (target[1],) and id_.shape != target:
        _check_expand(id_.shape, target)
    out = ad.dot(bd)
    if alpha != 1:
        out *= alpha
    if beta == 1:
        out += id_
    elif beta != 0:
        out += id_ * beta
    res, node = record(out, AddmmBackward0, input, mat1, mat2)
    if node is not None:
        node.in_shape, node.beta, node.alpha = id_.shape, beta, alpha
        nxt = node._next
        need1, need2 = nxt[1][0] is not None, nxt[2][0] is not None
        node.cm = (need1 and _cm(ad), need2 and _cm(bd))
        if need1 and need2:
            node.save(mat1, mat2)
        elif need1:
            node.save(mat2)
        elif need2:
            node.save(mat1)
        else:
            node._saves = False
    return res


def _check_expand(shape: tuple, target: tuple) -> None:
    """torch's expand error when ``shape`` cannot broadcast to ``target``."""
    sizes = f"Target sizes: {list(target)}.  Tensor sizes: {list(shape)}"  # only called on the slow path
    if len(shape) > len(target):
        raise RuntimeError(f"The expanded size of the tensor ({target[0]}) must match the existing size "
                           f"({shape[0]}) at non-singleton dimension 0.  {sizes}")
    lead = len(target) - len(shape)
    for i, s in enumerate(shape):
        if s != 1 and s != target[i + lead]:
            raise RuntimeError(f"The expanded size of the tensor ({target[i + lead]}) must match the "
                               f"existing size ({s}) at non-singleton dimension {i + lead}.  {sizes}")


def _should_fold(a: Tensor, b: Tensor) -> bool:
    """torch's rule for folding the batch of the larger operand into matrix rows (mm/mv instead of bmm)."""
    da, db = a._data.ndim, b._data.ndim
    larger = da >= db
    t1 = a._data if larger else np.swapaxes(b._data, -1, -2)
    d1, d2 = t1.ndim, (db if larger else da)
    if not (d1 >= 3 and d2 <= 2):
        return False
    if (b._rg if larger else a._rg):
        return True
    if da == 2:
        return False
    if t1.size == 0:
        return True
    shape, strides = t1.shape, t1.strides
    for i in range(d1 - 2):
        if strides[i] != strides[i + 1] * shape[i + 1]:
            return False
    return True


@op()
def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with torch's rules for 1-D, 2-D and batched (broadcast) operands.

    Args:
        input: a tensor with at least one dimension.
        other: a tensor with at least one dimension and the same dtype.

    Returns:
        The product; its graph has the same nodes torch records for these shapes.

    Raises:
        RuntimeError: with torch's message when the shapes or dtypes do not fit.

    Example:
        >>> import gradlens.engine as torch
        >>> (torch.ones(5, 2, 3) @ torch.ones(3, 4)).shape
        torch.Size([5, 2, 4])
    """
    if not isinstance(other, Tensor):
        raise TypeError(f"matmul(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")
    ad, bd = input._data, other._data
    da, db = ad.ndim, bd.ndim
    if da == 2 and db == 2:
        return mm(input, other)
    if da == 0 or db == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {da}D and {db}D")
    if not (GRAD_MODE.enabled and (input._rg or other._rg)) and ad.dtype == bd.dtype and ad.dtype.kind != "b":
        # nothing to record: one numpy call (the full path below only to word an error as torch does)
        try:
            out = np.matmul(ad, bd)
        except ValueError:
            pass
        else:
            return Tensor._make(out if isinstance(out, np.ndarray) else np.asarray(out))
    return _matmul_graph(input, other)


def _matmul_graph(a: Tensor, b: Tensor) -> Tensor:
    """torch's ``_matmul_impl`` for everything but 2-D @ 2-D, recording the same nodes."""
    da, db = a._data.ndim, b._data.ndim
    if da == 1 and db == 1:
        return dot(a, b)
    if da == 2 and db == 1:
        return mv(a, b)
    if da == 1 and db == 2:
        return _squeeze(mm(_unsqueeze(a, 0), b), 0, SqueezeBackward4)
    if da == 2 and db == 2:
        return mm(a, b)
    if _should_fold(a, b):
        transpose = db > da
        t1 = _transpose(b, -2, -1) if transpose else a
        t2 = (_t(a) if da == 2 else a) if transpose else b
        sizes1 = t1._data.shape
        out_shape = tuple(sizes1[:-1])
        folded = _prod(out_shape)
        t2_matrix = t2._data.ndim == 2
        if t2_matrix:
            out_shape += (t2._data.shape[1],)
        t1_folded = _reshape(t1, (folded, sizes1[-1]))
        if t2_matrix:
            out = _unsafe_view(mm(t1_folded, t2), out_shape)
            if not transpose:
                return out
            folded_out = out
            out = _transpose(out, -2, -1)  # torch's .contiguous(): no copy when already contiguous
            if not out._data.flags.c_contiguous:
                return _clone(out)
            out._base = folded_out  # then the result is torch's transposed view (in-place ops rebase it)
            return out
        return _unsafe_view(mv(t1_folded, t2), out_shape)
    sa, sb = a._data.shape, b._data.shape
    n = sa[-2] if da > 1 else 1
    m1 = sa[-1]
    batch1 = sa[:max(da - 2, 0)]
    m2 = sb[-2] if db > 1 else sb[0]
    p = sb[-1] if db > 1 else 1
    batch2 = sb[:max(db - 2, 0)]
    if da == 3 and db == 3 and batch1[0] != batch2[0]:
        if batch1[0] == 1 and a._rg:
            return _matmul_graph(_squeeze(a, 0), b)
        if batch2[0] == 1 and b._rg:
            return _matmul_graph(a, _squeeze(b, 0))
    try:
        batch = tuple(np.broadcast_shapes(batch1, batch2))
    except ValueError:
        raise broadcast_error(batch1, batch2) from None
    bp = _prod(batch)
    t1e = _reshape(_expand(a, batch + (n, m1)), (bp, n, m1))
    if db == 1:
        t2e = _unsqueeze(_reshape(_expand(b, batch + (m2,)), (bp, m2)), 2)
    else:
        t2e = _reshape(_expand(b, batch + (m2, p)), (bp, m2, p))
    out_shape = batch + ((n,) if da > 1 else ()) + ((p,) if db > 1 else ())
    out = bmm(t1e, t2e)
    if db == 1:
        out = _squeeze(out, -1 + out._data.ndim)
    return _unsafe_view(out, out_shape)


def _rmatmul(self: Tensor, other) -> Tensor:
    if isinstance(other, np.ndarray):
        other = Tensor._make(other)
    elif not isinstance(other, Tensor):
        return NotImplemented
    return matmul(other, self)


def _matmul_method(self: Tensor, other) -> Tensor:
    if isinstance(other, Tensor) and self._data.ndim == 2 and other._data.ndim == 2:
        return mm(self, other)  # ``a @ b`` on matrices: straight to mm (one call layer less per product)
    if isinstance(other, np.ndarray):
        other = Tensor._make(other)
    elif not isinstance(other, Tensor):
        return NotImplemented
    return matmul(self, other)


Tensor.__matmul__ = _matmul_method
Tensor.__rmatmul__ = _rmatmul


# --- einsum: torch's algorithm (aten/src/ATen/native/Linear.cpp), so the graph has torch's nodes ---------
_ELLIPSIS = 52


def _subscript(label: str) -> int:
    """torch's label order: 'A'-'Z' are 0-25, 'a'-'z' are 26-51."""
    return ord(label) - ord("A") if label.isupper() else ord(label) - ord("a") + 26


def _parse_operand_labels(lhs: str, num_ops: int) -> list:
    op_labels: list = [[] for _ in range(num_ops)]
    curr, ell_in_input, i = 0, False, 0
    while i < len(lhs):
        c = lhs[i]
        if c == ".":
            if ell_in_input:
                raise RuntimeError(f"einsum(): found '.' for operand {curr} for which an ellipsis was "
                                   "already found")
            if lhs[i:i + 3] != "...":
                raise RuntimeError(f"einsum(): found '.' for operand {curr} that is not part of any ellipsis")
            op_labels[curr].append(_ELLIPSIS)
            ell_in_input = True
            i += 2
        elif c == ",":
            curr += 1
            if curr >= num_ops:
                raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
            ell_in_input = False
        elif c != " ":
            if not (c.isascii() and c.isalpha()):
                raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation string, "
                                   "subscripts must be in [a-zA-Z]")
            op_labels[curr].append(_subscript(c))
        i += 1
    if curr != num_ops - 1:
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    return op_labels


@op(method=False)
def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, computed (and recorded) as torch computes it: operands are unsqueezed and
    permuted to one label order, then contracted pairwise, left to right, with ``bmm``.

    Args:
        equation: subscripts such as ``"bij,bjk->bik"`` (``...`` for broadcast dims; implicit output when
            there is no ``->``).
        operands: the tensors (or one list of them).

    Returns:
        The contraction.

    Raises:
        RuntimeError: with torch's messages for malformed equations and mismatched sizes; repeated
            subscripts within one operand (diagonals) are not supported by the native engine.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.einsum("ij,jk->ik", torch.ones(2, 3), torch.ones(3, 4)).shape
        torch.Size([2, 4])
    """
    from .reduce import sum as _sum

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    num_ops = len(operands)
    arrow = equation.find("->")
    lhs = equation if arrow < 0 else equation[:arrow]
    op_labels = _parse_operand_labels(lhs, num_ops)

    label_count = [0] * 52
    ell_num_dim = 0
    for i, (operand, labels) in enumerate(zip(operands, op_labels, strict=True)):
        ndims = operand._data.ndim
        nlabels = len(labels)
        has_ellipsis = _ELLIPSIS in labels
        for label in labels:
            if label == _ELLIPSIS:
                nlabels -= 1
                ell_num_dim = max(ell_num_dim, ndims - (len(labels) - 1))
            else:
                label_count[label] += 1
        if (nlabels > ndims) if has_ellipsis else (nlabels != ndims):
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({nlabels}) "
                + ("is more than the number of dimensions (" if has_ellipsis else
                   "does not match the number of dimensions (")
                + f"{ndims}) for operand {i}" + ("" if has_ellipsis else " and no ellipsis was given"))

    label_perm_index = [-1] * 52
    perm_index = ell_index = 0
    ell_in_output = False
    if arrow < 0:
        perm_index = ell_num_dim
        ell_in_output = True
        for label in range(52):
            if label_count[label] == 1:
                label_perm_index[label] = perm_index
                perm_index += 1
    else:
        rhs = equation[arrow + 2:]
        i = 0
        while i < len(rhs):
            c = rhs[i]
            if c == ".":
                if ell_in_output:
                    raise RuntimeError("einsum(): found '.' for output but an ellipsis (...) was already "
                                       "found")
                if rhs[i:i + 3] != "...":
                    raise RuntimeError("einsum(): found '.' for output that is not part of any ellipsis "
                                       "(...)")
                ell_index = perm_index
                perm_index += ell_num_dim
                ell_in_output = True
                i += 2
            elif c != " ":
                if not (c.isascii() and c.isalpha()):
                    at = len(lhs) + 2 + i
                    raise RuntimeError(f"einsum(): invalid subscript given at index {at} in the equation "
                                       "string, subscripts must be in [a-zA-Z]")
                s = _subscript(c)
                if label_count[s] == 0 or label_perm_index[s] != -1:
                    why = ("appears more than once in the output" if label_perm_index[s] > -1
                           else "does not appear in the equation for any input operand")
                    raise RuntimeError(f"einsum(): output subscript {c} {why}")
                label_perm_index[s] = perm_index
                perm_index += 1
            i += 1
    out_num_dim = perm_index
    if not ell_in_output:
        ell_index = perm_index
        perm_index += ell_num_dim
    for label in range(52):
        if label_count[label] > 0 and label_perm_index[label] == -1:
            label_perm_index[label] = perm_index
            perm_index += 1

    label_size = [1] * 52
    ell_sizes = [1] * ell_num_dim
    dim_counts = [0] * perm_index
    ops = []
    for i, operand in enumerate(operands):
        t = operand
        shape = t._data.shape
        permutation = [-1] * perm_index
        dim = 0
        for s in op_labels[i]:
            if s == _ELLIPSIS:
                ndim = shape.__len__() - (len(op_labels[i]) - 1)
                for j in range(ell_num_dim - ndim, ell_num_dim):
                    if shape[dim] != 1:
                        if ell_sizes[j] != 1 and ell_sizes[j] != shape[dim]:
                            raise RuntimeError(
                                f"einsum(): dimension {dim} covered by ellipsis in operand {i}has size "
                                f"{shape[dim]} which does not broadcast with previously seen ellipsis with "
                                f"size {ell_sizes[j]} for the respective dimension")
                        ell_sizes[j] = shape[dim]
                        dim_counts[ell_index + j] += 1
                    permutation[ell_index + j] = dim
                    dim += 1
            elif permutation[label_perm_index[s]] == -1:
                if shape[dim] != 1:
                    if label_size[s] != 1 and label_size[s] != shape[dim]:
                        label = chr(s + ord("A")) if s < 26 else chr(s - 26 + ord("a"))
                        raise RuntimeError(f"einsum(): subscript {label} has size {shape[dim]} for operand "
                                           f"{i} which does not broadcast with previously seen size "
                                           f"{label_size[s]}")
                    label_size[s] = shape[dim]
                    dim_counts[label_perm_index[s]] += 1
                permutation[label_perm_index[s]] = dim
                dim += 1
            else:
                raise RuntimeError("einsum(): a subscript repeated within one operand (a diagonal) is not "
                                   "supported by the native engine; use torch.diagonal first or real torch")
        for k, val in enumerate(permutation):
            if val == -1:
                t = _unsqueeze(t, dim)
                permutation[k] = dim
                dim += 1
        ops.append(_permute(t, permutation))

    while len(ops) > 1:
        a, b = ops[0], ops[1]
        del ops[:2]
        sum_dims, a_sum, b_sum = [], [], []
        for d in range(out_num_dim, perm_index):
            if a._data.shape[d] != 1 and b._data.shape[d] != 1:
                dim_counts[d] -= 1
                if dim_counts[d] == 1:
                    sum_dims.append(d)
                    dim_counts[d] = 0
            elif dim_counts[d] == 1:
                if a._data.shape[d] != 1:
                    a_sum.append(d)
                    dim_counts[d] = 0
                elif b._data.shape[d] != 1:
                    b_sum.append(d)
                    dim_counts[d] = 0
        if a_sum:
            a = _sum(a, a_sum, True)
        if b_sum:
            b = _sum(b, b_sum, True)
        ops.insert(0, _sumproduct_pair(a, b, sum_dims))

    if perm_index - out_num_dim > 0:
        if num_ops > 1:
            return _view(ops[0], tuple(ops[0]._data.shape[:out_num_dim]))
        return _sum(ops[0], list(range(out_num_dim, perm_index)))
    return ops[0]


def _sumproduct_pair(left: Tensor, right: Tensor, sum_dims: list) -> Tensor:
    """``(left * right).sum(sum_dims, keepdim=True)`` by permutes, reshapes and one ``bmm`` (torch's)."""
    from .arith import mul
    from .reduce import sum as _sum

    if not sum_dims:
        return mul(left, right)
    ndim = left._data.ndim
    summed = set(sum_dims)
    lro, lo, ro = [], [], []
    lro_size = lo_size = ro_size = sum_size = 1
    for i in range(ndim):
        ls, rs = left._data.shape[i], right._data.shape[i]
        sl, sr = ls != 1, rs != 1
        if i in summed:
            if sl and sr:
                if ls != rs:
                    raise RuntimeError("non-broadcast dimensions must match")
                sum_size *= ls
            elif sl:
                left = _sum(left, i, True)
            elif sr:
                right = _sum(right, i, True)
        elif sl and sr:
            if ls != rs:
                raise RuntimeError("non-broadcast dimensions must match")
            lro.append(i)
            lro_size *= ls
        elif sl:
            lo.append(i)
            lo_size *= ls
        else:
            ro.append(i)
            ro_size *= rs
    lshape, rshape = left._data.shape, right._data.shape
    out_size = tuple([lshape[d] for d in lro] + [lshape[d] for d in lo] + [1] * len(sum_dims)
                     + [rshape[d] for d in ro])
    order = lro + lo + sum_dims + ro
    operm = [0] * len(order)
    for i, d in enumerate(order):
        operm[d] = i
    left = _reshape(_permute(left, lro + lo + sum_dims + ro), (lro_size, lo_size, sum_size))
    right = _reshape(_permute(right, lro + sum_dims + ro + lo), (lro_size, sum_size, ro_size))
    return _permute(_view(bmm(left, right), out_size), operm)
