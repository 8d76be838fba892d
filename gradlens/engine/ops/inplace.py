"""In-place ops (``add_``, ``mul_``, ``zero_``, ``copy_``, ``clamp_``, ``+=`` ...) and the random in-place
initialisers ``nn.init`` uses (``uniform_``, ``normal_``, ``bernoulli_``).

Each op follows torch's protocol: ``check_inplace`` (leaf / view-of-leaf errors), write into the
tensor's own array (so views and aliases see the change), bump the shared version counter, and, when grad
mode is on and the tensor or an operand requires grad, record the node torch records for the op (the same
name as the out-of-place op: ``AddBackward0`` for ``add_``) with edges ``(the tensor's previous edge,
operands' edges)``, then rebase the tensor onto it (``grad_fn`` = the node, ``requires_grad`` = True).

An in-place op on a view of a tensor in a graph rebases the view's base as torch does: the base gets a
``CopySlices`` node that routes the gradient of the view's region through the op's node, and the view
gets ``AsStridedBackward0``. Views of bases with unusual memory layouts are refused with a clear error.
"""

from __future__ import annotations

import warnings

from .. import _dtype
from ..tensor import check_inplace, view_rebase_error
from ._core import GRAD_MODE, NONE, Node, Tensor, binary_operands, broadcast_error, np, op, sum_to
from .arith import AddBackward0, DivBackward0, MulBackward0, NegBackward0, SubBackward0
from .index import CopySlices as SetitemSlices
from .pointwise import PowBackward0, PowBackward1, sign_or_zero
from .shape import clone

__all__ = ["add_", "sub_", "mul_", "div_", "zero_", "fill_", "clamp_", "clamp_min_", "clamp_max_", "copy_",
           "neg_", "exp_", "relu_", "sigmoid_", "tanh_", "pow_", "masked_fill_", "uniform_", "normal_",
           "bernoulli_", "addcmul_", "addcdiv_", "lerp_", "sqrt_", "log_", "abs_"]

_OVERLAP = ("unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation.")
_SCALAR_NAME = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
                "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


# --- the protocol -----------------------------------------------------------------------------------------
def _begin(t: Tensor, *operands) -> bool:
    """torch's checks before an in-place op; True when the op must be recorded for autograd."""
    check_inplace(t, operands)
    if not GRAD_MODE.enabled:
        return False
    record = t._rg
    if not record:
        for o in operands:
            if isinstance(o, Tensor) and o._rg:
                record = True
                break
    if record and _is_view(t):
        _view_geometry(t)  # refuse before anything is written
    return record


def _is_view(t: Tensor) -> bool:
    """A differentiable view (slicing, view, transpose...); ``detach()`` / ``.data`` aliases are not.

    A view of a base that requires grad requires grad itself unless it was detached; a view that needs no
    grad of a base that needs none is taken as differentiable (``buf[0:2].copy_(h)`` rebases ``buf``).
    """
    base = t._base
    return base is not None and t._data is not base._data and (t._rg or not base._rg)


def _writable(t: Tensor) -> np.ndarray:
    arr = t._data
    if not isinstance(arr, np.ndarray):
        # a 0-d result held as a numpy scalar (immutable, never aliased): give it a writable 0-d array
        arr = t._data = np.array(arr)
        return arr
    if not arr.flags.writeable:
        if arr.size == 0:  # torch skips the overlap check when there is nothing to write
            return arr.copy()
        raise RuntimeError(_OVERLAP)
    return arr


def _writable_fill(t: Tensor) -> np.ndarray:
    """The array a fill writes into: torch lets ``zero_``, ``fill_`` (a number) and ``masked_fill_`` write
    one value through a self-overlapping (expanded) view, so its memory is reached through the base."""
    arr = t._data
    if not isinstance(arr, np.ndarray) or arr.flags.writeable:
        return _writable(t)
    return writable_alias(t)


def writable_alias(t: Tensor) -> np.ndarray:
    """A writable array over the memory of view ``t``, whose own array is read-only because it overlaps
    itself (``expand``); raises torch's overlap error when there is no writable base to reach it through."""
    base = t._base
    if base is None or not base._data.flags.writeable or not base._data.flags.c_contiguous:
        raise RuntimeError(_OVERLAP)
    _, offset, strides = _view_geometry(t)
    return _region(base._data.reshape(-1), offset, t._data.shape, strides)


def _node(t: Tensor, node_cls, *operands) -> Node:
    """A new ``node_cls`` with edges (t's current edge, each operand's edge or (None, 0))."""
    edges = (t._edge(),) + tuple(o._edge() if isinstance(o, Tensor) else NONE for o in operands)
    node = node_cls(edges)
    node._omd = (t._data.shape, t._data.dtype)
    return node


def _rebase(t: Tensor, node: Node) -> None:
    """Make ``t`` the output of ``node`` (after its data were changed and its version bumped)."""
    old, old_nr = t._grad_fn, t._output_nr
    if _is_view(t):
        _copy_slices(t, node)
    else:
        _stamp(t, node)
        t._grad_fn = node
        t._output_nr = 0
        t._rg = True
    if old is not None and old._retain:  # retain_grad() follows the tensor to its new node, as in torch
        ref = old._retain.get(old_nr)
        if ref is not None and ref() is t:
            del old._retain[old_nr]
            t._grad_fn._retain = {0: ref}


def _type_name(o) -> str:
    cls = type(o)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _operand_tensor(o, name: str, op_name: str):
    if isinstance(o, (Tensor, bool, int, float, np.ndarray, np.generic)):
        return o
    raise TypeError(f"{op_name}(): argument '{name}' (position 1) must be Tensor, not {_type_name(o)}")


def _check_result_type(t: Tensor, other) -> None:
    """torch refuses an in-place result whose type category is above the tensor's (float into long)."""
    dt = t._data.dtype
    if dt.kind == "f":
        return
    res = _dtype.result_dtype(t.dtype, t._data.ndim, other)
    if res._category > _dtype.from_numpy_dtype(dt)._category:
        raise RuntimeError(f"result type {_SCALAR_NAME[res.np.name]} can't be cast to the desired output "
                           f"type {_SCALAR_NAME[dt.name]}")


def _check_float_result(t: Tensor) -> None:
    if t._data.dtype.kind != "f":
        raise RuntimeError(f"result type Float can't be cast to the desired output type "
                           f"{_SCALAR_NAME[t._data.dtype.name]}")


def _check_broadcast(shape: tuple, other_shape: tuple) -> None:
    """The operand must broadcast to the tensor's own shape."""
    if other_shape == shape or not other_shape:
        return
    lead = len(shape) - len(other_shape)
    if lead >= 0:
        for s, o in zip(shape[lead:], other_shape, strict=True):
            if o != s and o != 1:
                break
        else:
            return
    try:
        full = np.broadcast_shapes(shape, other_shape)
    except ValueError:
        raise broadcast_error(shape, other_shape) from None
    if full != shape:
        raise RuntimeError(f"output with shape {list(shape)} doesn't match the broadcast shape {list(full)}")


def _shape(x) -> tuple:
    return x.shape if isinstance(x, np.ndarray) else ()


def _binary_prepare(t: Tensor, other, op_name: str):
    """Checks shared by add_/sub_/mul_/div_: operand type, result type, broadcast. Returns the operand
    as an array or Python scalar."""
    if isinstance(other, Tensor):
        od, ad = other._data, t._data
        if od.dtype == ad.dtype and od.shape == ad.shape:  # the optimizer's case: nothing to check
            return other, od
    other = _operand_tensor(other, "other", op_name)
    if isinstance(other, np.ndarray):
        other = Tensor._make(other)
    _check_result_type(t, other.item() if isinstance(other, np.generic) else other)
    _ad, bd = binary_operands(t, other)
    _check_broadcast(t._data.shape, _shape(bd))
    return other, bd


# --- arithmetic -------------------------------------------------------------------------------------------
@op(function=False)
def add_(self: Tensor, other, *, alpha=1) -> Tensor:
    """In-place ``self += alpha * other``; the pattern of every in-place op.

    Args:
        other: a tensor broadcastable to ``self``'s shape, or a number.
        alpha: the multiplier of ``other``.

    Returns:
        ``self``, its version bumped; in a graph its ``grad_fn`` is now ``AddBackward0``.

    Raises:
        RuntimeError: for a leaf that requires grad (or a view of one) while grad mode is on, an operand
            that does not broadcast to ``self``, or a result type ``self`` cannot hold (float into long).

    Example:
        >>> import gradlens.engine as torch
        >>> x = torch.zeros(3)
        >>> x.add_(torch.ones(3), alpha=2)
        tensor([2., 2., 2.])
        >>> x._version
        1
    """
    rec = _begin(self, other)
    other, bd = _binary_prepare(self, other, "add_")
    arr = _writable(self)
    np.add(arr, bd if alpha == 1 else bd * alpha, out=arr, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, AddBackward0, other)
        node.a_shape, node.b_shape, node.alpha = arr.shape, _shape(bd), alpha
        _rebase(self, node)
    return self


@op(function=False)
def sub_(self: Tensor, other, *, alpha=1) -> Tensor:
    """In-place ``self -= alpha * other``."""
    from .arith import check_bool_sub

    rec = _begin(self, other)
    check_bool_sub(self, other)
    other, bd = _binary_prepare(self, other, "sub_")
    arr = _writable(self)
    np.subtract(arr, bd if alpha == 1 else bd * alpha, out=arr, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, SubBackward0, other)
        node.a_shape, node.b_shape, node.alpha = arr.shape, _shape(bd), alpha
        _rebase(self, node)
    return self


def _mul_div_(self: Tensor, other, ufunc, node_cls, op_name: str) -> Tensor:
    rec = _begin(self, other)
    other, bd = _binary_prepare(self, other, op_name)
    arr = _writable(self)
    original = None
    if rec and isinstance(other, Tensor) and other._rg:
        original = clone(self)  # the gradient of ``other`` needs self's old value (torch saves a clone)
    if ufunc is np.divide:
        with np.errstate(divide="ignore", invalid="ignore"):
            ufunc(arr, bd, out=arr, casting="unsafe")
    else:
        ufunc(arr, bd, out=arr, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, node_cls, other)
        if isinstance(other, Tensor):
            node.a_shape, node.b_shape, node.scalar = arr.shape, bd.shape, None
            node.save(original if original is not None else other, other)
        else:
            node.a_shape, node.b_shape, node.scalar = arr.shape, (), bd
        _rebase(self, node)
    return self


@op(function=False)
def mul_(self: Tensor, other) -> Tensor:
    """In-place ``self *= other``."""
    return _mul_div_(self, other, np.multiply, MulBackward0, "mul_")


@op(function=False)
def div_(self: Tensor, other, *, rounding_mode=None) -> Tensor:
    """In-place true division ``self /= other`` (integer tensors raise, as in torch)."""
    if rounding_mode is not None:
        from .arith import div

        return copy_(self, div(self.detach(), other, rounding_mode=rounding_mode))
    _check_float_result(self)
    return _mul_div_(self, other, np.divide, DivBackward0, "div_")


class AddcmulBackward0(Node):
    __slots__ = ("shapes", "value")

    def backward(self, g):
        t1, t2 = self.saved()
        nxt = self._next
        gs = sum_to(g, self.shapes[0]) if nxt[0][0] is not None else None
        g1 = sum_to(g * t2 * self.value, self.shapes[1]) if nxt[1][0] is not None else None
        g2 = sum_to(g * t1 * self.value, self.shapes[2]) if nxt[2][0] is not None else None
        return gs, g1, g2


class AddcdivBackward0(Node):
    __slots__ = ("shapes", "value")

    def backward(self, g):
        t1, t2 = self.saved()
        nxt = self._next
        gs = sum_to(g, self.shapes[0]) if nxt[0][0] is not None else None
        g1 = sum_to(g * self.value / t2, self.shapes[1]) if nxt[1][0] is not None else None
        g2 = sum_to(-g * self.value * t1 / (t2 * t2), self.shapes[2]) if nxt[2][0] is not None else None
        return gs, g1, g2


def _addc_(self: Tensor, tensor1: Tensor, tensor2: Tensor, value, ufunc, node_cls) -> Tensor:
    rec = _begin(self, tensor1, tensor2)
    a, b = tensor1._data, tensor2._data
    with np.errstate(divide="ignore", invalid="ignore"):
        prod = ufunc(a, b)
    if value != 1:
        prod = prod * value
    _check_broadcast(self._data.shape, prod.shape)
    arr = _writable(self)
    np.add(arr, prod, out=arr, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, node_cls, tensor1, tensor2)
        node.shapes, node.value = (arr.shape, a.shape, b.shape), value
        node.save(tensor1, tensor2)
        _rebase(self, node)
    return self


@op(function=False)
def addcmul_(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value=1) -> Tensor:
    """In-place ``self += value * tensor1 * tensor2`` (Adam's second-moment update)."""
    return _addc_(self, tensor1, tensor2, value, np.multiply, AddcmulBackward0)


@op(function=False)
def addcdiv_(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value=1) -> Tensor:
    """In-place ``self += value * tensor1 / tensor2`` (Adam's parameter update)."""
    return _addc_(self, tensor1, tensor2, value, np.divide, AddcdivBackward0)


class LerpBackward0(Node):
    __slots__ = ("shapes", "weight")
    _saves = False

    def backward(self, g):
        nxt = self._next
        w = self.weight
        gs = sum_to(g * (1.0 - w), self.shapes[0]) if nxt[0][0] is not None else None
        ge = sum_to(g * w, self.shapes[1]) if nxt[1][0] is not None else None
        return gs, ge


@op(function=False)
def lerp_(self: Tensor, end: Tensor, weight) -> Tensor:
    """In-place ``self += weight * (end - self)`` for a Python-number weight (Adam's first moment)."""
    if isinstance(weight, Tensor):
        weight = weight.item()
    rec = _begin(self, end)
    _check_broadcast(self._data.shape, end._data.shape)
    arr = _writable(self)
    arr += (end._data - arr) * weight
    self._vbox[0] += 1
    if rec:
        node = _node(self, LerpBackward0, end)
        node.shapes, node.weight = (arr.shape, end._data.shape), float(weight)
        _rebase(self, node)
    return self


# --- fills and copies -------------------------------------------------------------------------------------
def _zeros_like(g):
    """A zero gradient (zeros, not ``g * 0``, so that inf/nan in ``g`` do not leak through)."""
    if not isinstance(g, Tensor):
        return np.zeros_like(g)
    from ..creation import zeros_like

    return zeros_like(g)


class ZeroBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (_zeros_like(g),)


class FillBackward2(ZeroBackward0):
    __slots__ = ()


class FillBackward3(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return _zeros_like(g), (g.sum() if self._next[1][0] is not None else None)


class CopyBackwards(Node):
    __slots__ = ("src_shape", "src_dtype")
    _saves = False

    def name(self) -> str:
        return "torch::autograd::CopyBackwards"

    def backward(self, g):
        nxt = self._next
        gs = _zeros_like(g) if nxt[0][0] is not None else None
        gsrc = None
        if nxt[1][0] is not None:
            gsrc = sum_to(g, self.src_shape)
            if not isinstance(gsrc, Tensor):
                gsrc = np.asarray(gsrc, dtype=self.src_dtype)
            elif gsrc._data.dtype != self.src_dtype:
                gsrc = gsrc.to(_dtype.from_numpy_dtype(self.src_dtype))
        return gs, gsrc


@op()
def zero_(self: Tensor) -> Tensor:
    """Fill with zeros in place (``ZeroBackward0``)."""
    rec = _begin(self)
    _writable_fill(self).fill(0)
    self._vbox[0] += 1
    if rec:
        _rebase(self, _node(self, ZeroBackward0))
    return self


@op()
def fill_(self: Tensor, value) -> Tensor:
    """Fill with ``value`` (a number or a 0-d tensor) in place."""
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value._data.ndim} dimensions.")
        rec = _begin(self, value)
        _writable(self).fill(value._data.item())
        self._vbox[0] += 1
        if rec:
            _rebase(self, _node(self, FillBackward3, value))
        return self
    rec = _begin(self)
    _writable_fill(self).fill(value)
    self._vbox[0] += 1
    if rec:
        _rebase(self, _node(self, FillBackward2))
    return self


@op(function=False)
def copy_(self: Tensor, src: Tensor, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor in place.

    Args:
        src: the tensor to copy from (``CopyBackwards`` sends its gradient back, cast to its dtype).
        non_blocking: accepted for torch compatibility.

    Returns:
        ``self``.

    Raises:
        TypeError: when ``src`` is not a Tensor.
        RuntimeError: when ``src`` does not broadcast to this tensor's shape.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(2, 3, dtype=torch.int64).copy_(torch.tensor([1.7, 2.0, -3.7]))
        tensor([[ 1,  2, -3],
                [ 1,  2, -3]])
    """
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'other' (position 1) must be Tensor, not {_type_name(src)}")
    rec = _begin(self, src)
    _check_broadcast(self._data.shape, src._data.shape)
    arr = _writable(self)
    np.copyto(arr, src._data, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, CopyBackwards, src)
        node.src_shape, node.src_dtype = src._data.shape, src._data.dtype
        _rebase(self, node)
    return self


class MaskedFillBackward0(Node):
    __slots__ = ("keep",)
    _saves = False

    def backward(self, g):
        return (_masked(g, self.keep),)


class MaskedFillBackward1(Node):
    __slots__ = ("keep",)
    _saves = False

    def backward(self, g):
        gv = None
        if self._next[1][0] is not None:
            gv = _masked(g, 1 - self.keep).sum()
        return _masked(g, self.keep), gv


@op(function=False)
def masked_fill_(self: Tensor, mask: Tensor, value) -> Tensor:
    """Write ``value`` where the boolean ``mask`` (broadcast to this shape) is True."""
    m = mask._data
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{_dtype.from_numpy_dtype(m.dtype)._name}")
    if isinstance(value, Tensor) and value._data.ndim != 0:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value._data.ndim} dimension(s).")
    rec = _begin(self, value)
    _check_broadcast(self._data.shape, m.shape)
    arr = _writable_fill(self)
    if arr is not self._data:
        warnings.warn("Use of masked_fill_ on expanded tensors is deprecated. Please clone() the tensor before "
                      "performing this operation. This also applies to advanced indexing e.g. tensor[mask] = "
                      "scalar", UserWarning, stacklevel=2)
    v = value._data.item() if isinstance(value, Tensor) else value
    np.copyto(arr, np.asarray(v, dtype=arr.dtype), where=m, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        keep = np.broadcast_to(~m, arr.shape).astype(arr.dtype)
        if isinstance(value, Tensor):
            node = _node(self, MaskedFillBackward1, value)
        else:
            node = _node(self, MaskedFillBackward0)
        node.keep = keep
        _rebase(self, node)
    return self


# --- pointwise --------------------------------------------------------------------------------------------
def _plain(x):
    return x._data if isinstance(x, Tensor) else x


class ExpBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (out,) = self.saved()
        return (g * out,)


class SigmoidBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (out,) = self.saved()
        return (g * (out * (1.0 - out)),)


class TanhBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (out,) = self.saved()
        return (g * (1.0 - out * out),)


class ReluBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (out,) = self.saved()
        return (_masked(g, _plain(out) > 0),)


def _unary_(self: Tensor, compute, node_cls, saves_output: bool, float_only: bool = True) -> Tensor:
    if float_only:
        _check_float_result(self)
    rec = _begin(self)
    arr = _writable(self)
    if float_only:  # exp, sigmoid, tanh, sqrt may overflow or see invalid values: torch does not warn
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            compute(arr)
    else:
        compute(arr)
    self._vbox[0] += 1
    if rec:
        node = _node(self, node_cls)
        _rebase(self, node)
        if saves_output:
            node.save(self)
    return self


def _sigmoid_inplace(arr):
    np.negative(arr, out=arr)
    np.exp(arr, out=arr)
    arr += 1
    np.reciprocal(arr, out=arr)


@op()
def neg_(self: Tensor) -> Tensor:
    """Negate in place."""
    if self._data.dtype == np.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    return _unary_(self, lambda a: np.negative(a, out=a), NegBackward0, False, float_only=False)


@op()
def exp_(self: Tensor) -> Tensor:
    """``exp`` in place."""
    return _unary_(self, lambda a: np.exp(a, out=a), ExpBackward0, True)


@op()
def sigmoid_(self: Tensor) -> Tensor:
    """``sigmoid`` in place."""
    return _unary_(self, _sigmoid_inplace, SigmoidBackward0, True)


@op()
def tanh_(self: Tensor) -> Tensor:
    """``tanh`` in place."""
    return _unary_(self, lambda a: np.tanh(a, out=a), TanhBackward0, True)


@op()
def relu_(self: Tensor) -> Tensor:
    """``relu`` in place (``torch.relu_`` and ``Tensor.relu_``)."""
    if self._data.dtype == np.bool_:
        raise RuntimeError("Boolean inputs not supported for relu")
    return _unary_(self, lambda a: np.maximum(a, 0, out=a), ReluBackward0, True, float_only=False)


class SqrtBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (out,) = self.saved()
        return (g / (out * 2.0),)


class LogBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g / x,)


class AbsBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * sign_or_zero(_plain(x)),)


def _unary_saving_input_(self: Tensor, compute, node_cls, float_only: bool) -> Tensor:
    if float_only:
        _check_float_result(self)
    rec = _begin(self)
    arr = _writable(self)
    original = clone(self) if rec else None  # torch saves ``self.clone()``: differentiable for create_graph
    with np.errstate(invalid="ignore", divide="ignore"):
        compute(arr)
    self._vbox[0] += 1
    if rec:
        node = _node(self, node_cls)
        node.save(original)
        _rebase(self, node)
    return self


@op()
def sqrt_(self: Tensor) -> Tensor:
    """``sqrt`` in place."""
    return _unary_(self, lambda a: np.sqrt(a, out=a), SqrtBackward0, True)


@op()
def log_(self: Tensor) -> Tensor:
    """Natural ``log`` in place."""
    return _unary_saving_input_(self, lambda a: np.log(a, out=a), LogBackward0, True)


@op()
def abs_(self: Tensor) -> Tensor:
    """``abs`` in place."""
    return _unary_saving_input_(self, lambda a: np.abs(a, out=a), AbsBackward0, False)


@op(function=False)
def pow_(self: Tensor, exponent) -> Tensor:
    """Raise to ``exponent`` (a number or a tensor) in place."""
    if isinstance(exponent, Tensor):
        rec = _begin(self, exponent)
        _check_result_type(self, exponent)
        e = exponent._data
        _check_broadcast(self._data.shape, e.shape)
        arr = _writable(self)
        original = clone(self) if rec else None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.power(arr, e, out=arr, casting="unsafe")
        self._vbox[0] += 1
        if rec:
            node = _node(self, PowBackward1, exponent)
            node.a_shape, node.b_shape = arr.shape, e.shape
            _rebase(self, node)
            node.save(original, exponent, self)
        return self
    _check_result_type(self, exponent)
    rec = _begin(self)
    arr = _writable(self)
    original = clone(self) if rec else None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if arr.dtype.kind in "iu" and isinstance(exponent, int) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        np.power(arr, exponent, out=arr, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, PowBackward0)
        node.exponent = exponent
        node.save(original)
        _rebase(self, node)
    return self


# --- clamps -----------------------------------------------------------------------------------------------
def _masked(g, mask):
    """``g`` where ``mask`` else exactly 0 (as torch's ``where``: an inf/nan gradient outside the mask must
    not turn into nan)."""
    if isinstance(g, Tensor):
        return g * mask
    return np.where(mask != 0, g, 0).astype(np.result_type(g), copy=False)


class ClampBackward1(Node):
    __slots__ = ("keep",)
    _saves = False

    def backward(self, g):
        return (_masked(g, self.keep),)


class ClampMinBackward0(ClampBackward1):
    __slots__ = ()


class ClampMaxBackward0(ClampBackward1):
    __slots__ = ()


class ClampBackward0(Node):
    __slots__ = ("keep", "below", "above", "shapes")
    _saves = False

    def backward(self, g):
        nxt = self._next
        gmin = sum_to(_masked(g, self.below), self.shapes[0]) if nxt[1][0] is not None else None
        gmax = sum_to(_masked(g, self.above), self.shapes[1]) if nxt[2][0] is not None else None
        return _masked(g, self.keep), gmin, gmax


def _clamp_scalar_(self: Tensor, lo, hi, node_cls) -> Tensor:
    if lo is not None:
        _check_result_type(self, lo)
    if hi is not None:
        _check_result_type(self, hi)
    rec = _begin(self)
    arr = _writable(self)
    keep = None
    if rec:
        keep = np.ones(arr.shape, dtype=arr.dtype)
        if lo is not None:
            keep *= arr >= lo
        if hi is not None:
            keep *= arr <= hi
    np.clip(arr, lo, hi, out=arr)
    self._vbox[0] += 1
    if rec:
        node = _node(self, node_cls)
        node.keep = keep
        _rebase(self, node)
    return self


@op(aliases=("clip_",))
def clamp_(self: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - torch's names
    """Clamp into ``[min, max]`` in place (numbers: ``ClampBackward1``; tensors: ``ClampBackward0``)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        return _clamp_tensor_(self, min, max)
    return _clamp_scalar_(self, min, max, ClampBackward1)


def _clamp_tensor_(self: Tensor, lo, hi) -> Tensor:
    rec = _begin(self, lo, hi)
    arr = _writable(self)
    lo_a = lo._data if isinstance(lo, Tensor) else lo
    hi_a = hi._data if isinstance(hi, Tensor) else hi
    for b in (lo_a, hi_a):
        if isinstance(b, np.ndarray):
            _check_broadcast(arr.shape, b.shape)
    below = above = None
    keep = None
    if rec:
        keep = np.ones(arr.shape, dtype=arr.dtype)
        below = np.zeros(arr.shape, dtype=arr.dtype)
        above = np.zeros(arr.shape, dtype=arr.dtype)
        if lo_a is not None:
            below += arr < lo_a
            keep *= arr >= lo_a
        if hi_a is not None:
            above += arr > hi_a
            keep *= arr <= hi_a
            below *= arr <= hi_a
    if lo_a is not None:
        np.maximum(arr, lo_a, out=arr, casting="unsafe")
    if hi_a is not None:
        np.minimum(arr, hi_a, out=arr, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        node = _node(self, ClampBackward0, lo, hi)
        node.keep, node.below, node.above = keep, below, above
        node.shapes = (np.shape(lo_a), np.shape(hi_a))
        _rebase(self, node)
    return self


@op()
def clamp_min_(self: Tensor, min) -> Tensor:  # noqa: A002
    """``clamp_(min=min)`` recorded as ``ClampMinBackward0``."""
    return _clamp_scalar_(self, min, None, ClampMinBackward0)


@op()
def clamp_max_(self: Tensor, max) -> Tensor:  # noqa: A002
    """``clamp_(max=max)`` recorded as ``ClampMaxBackward0``."""
    return _clamp_scalar_(self, None, max, ClampMaxBackward0)


# --- random initialisers ----------------------------------------------------------------------------------
class UniformBackward0(ZeroBackward0):
    __slots__ = ()


class NormalBackward0(ZeroBackward0):
    __slots__ = ()


class BernoulliBackward2(ZeroBackward0):
    __slots__ = ()


def _fill_random(self: Tensor, values: np.ndarray, node_cls) -> Tensor:
    rec = _begin(self)
    arr = _writable(self)
    np.copyto(arr, values, casting="unsafe")
    self._vbox[0] += 1
    if rec:
        _rebase(self, _node(self, node_cls))
    return self


def _rng(generator):
    from ..creation import _rng

    return _rng(generator)


def _float_only(self: Tensor, kernel: str) -> None:
    if self._data.dtype.kind != "f":
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{_dtype.from_numpy_dtype(self._data.dtype)._name.capitalize()}'")


@op(function=False)
def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    """Fill with samples from ``U(a, b)`` in place (``nn.init.uniform_`` / ``kaiming_uniform_``)."""
    _float_only(self, "check_uniform_bounds")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    return _fill_random(self, _rng(generator).uniform(a, b, size=self._data.shape), UniformBackward0)


@op(function=False)
def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill with samples from ``N(mean, std**2)`` in place."""
    _float_only(self, "normal_kernel_cpu")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _fill_random(self, _rng(generator).normal(mean, std, size=self._data.shape), NormalBackward0)


@op(function=False)
def bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fill with 0/1 samples drawn with probability ``p`` (a number or a tensor of probabilities)."""
    prob = p._data if isinstance(p, Tensor) else p
    if not isinstance(prob, np.ndarray) and not 0 <= prob <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    values = _rng(generator).random(self._data.shape) < prob
    return _fill_random(self, values, BernoulliBackward2)


# --- in-place ops on views of graph tensors ---------------------------------------------------------------
_UNSUPPORTED_VIEW = ("the native engine does not support this in-place operation on a view of a tensor that "
                     "is part of an autograd graph ({why}); use the out-of-place op instead (for example "
                     "`y = x.clone(); y[...] = ...` or `torch.where`) or real torch")


def _view_geometry(t: Tensor):
    """``(root base, element offset, element strides)`` locating view ``t`` inside its base's array."""
    base = t._base
    b, v = base._data, t._data
    if not b.flags.c_contiguous:
        raise RuntimeError(_UNSUPPORTED_VIEW.format(why="its base is not contiguous"))
    if v.dtype != b.dtype:
        raise RuntimeError(_UNSUPPORTED_VIEW.format(why="the view has another dtype"))
    item = b.itemsize
    offset_bytes = v.__array_interface__["data"][0] - b.__array_interface__["data"][0]
    if offset_bytes % item or any(s % item for s in v.strides) or offset_bytes < 0:
        raise RuntimeError(_UNSUPPORTED_VIEW.format(why="the view is not aligned with its base"))
    return base, offset_bytes // item, v.strides


def _region(flat: np.ndarray, offset: int, shape: tuple, strides: tuple) -> np.ndarray:
    """The writable window of a C-contiguous flat array that the view occupies."""
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=shape, strides=strides)


class CopySlices(Node):
    """The base's node after an in-place op on its view: the view's region of the gradient goes through
    the op's node, the rest passes unchanged (torch's ``CopySlices``)."""

    __slots__ = ("fn", "offset", "shape", "strides", "base_shape", "dtype", "overlap")
    _saves = False

    def name(self) -> str:
        return "torch::autograd::CopySlices"

    def backward(self, g):
        if self.overlap and not isinstance(self.fn, SetitemSlices):
            # the op wrote a self-overlapping (expanded) view: torch copies its gradient into the overlapping
            # region of the base's gradient, which it refuses
            raise RuntimeError(_OVERLAP)
        if isinstance(g, Tensor):
            raise RuntimeError(_UNSUPPORTED_VIEW.format(why="create_graph=True"))
        result = np.array(g, dtype=self.dtype, order="C", copy=True)
        region = _region(result.reshape(-1), self.offset, self.shape, self.strides)
        before = region.copy()
        grads = self.fn.backward(before.copy() if self.overlap else before)
        first = grads[0]
        if first is None:
            region[...] = 0
        elif self.overlap:
            # a setitem wrote a part of an expanded view that does not overlap itself: memory it wrote gets the
            # setitem's gradient, the rest keeps the base's (copy back only what changed)
            same = (first == before) | (np.isnan(first) & np.isnan(before))
            np.copyto(region, first, where=~same)
        else:
            region[...] = first
        base_grad = result if self._next[0][0] is not None else None
        return (base_grad, *grads[1:])

    def _free(self) -> None:
        self.fn._free()


class AsStridedBackward0(Node):
    __slots__ = ("offset", "shape", "strides", "base_shape", "dtype")
    _saves = False

    def backward(self, g):
        if isinstance(g, Tensor):
            raise RuntimeError(_UNSUPPORTED_VIEW.format(why="create_graph=True"))
        out = np.zeros(self.base_shape, dtype=self.dtype)
        _region(out.reshape(-1), self.offset, self.shape, self.strides)[...] = g
        return (out,)


def _stamp(base: Tensor, node: Node) -> None:
    """Note on a tensor that its history was rewritten in place by ``node``: views of it made before are
    stale and get a new ``grad_fn`` when next used (``refresh_view``), as torch regenerates them."""
    base.__dict__["_rebased"] = (node._seq, base._rg)


def refresh_view(t: Tensor):
    """The current ``grad_fn`` of view ``t`` of a base whose history an in-place op rewrote.

    A view made before that rewrite still points at the base's old history; torch regenerates its
    ``grad_fn`` as ``AsStridedBackward0`` of the base's new node, and so does this.
    """
    base = t._base
    seq, base_rg_before = base.__dict__["_rebased"]
    fn = t._grad_fn
    if t._data is base._data:  # a detach() / .data alias is no view
        return fn
    if fn is not None:
        if fn._seq >= seq:
            return fn
    elif base_rg_before or not base._rg:  # a detached view, or nothing to regenerate from
        return None
    if t._creation_meta is not None:  # torch cannot regenerate an output of split/chunk/unbind either
        raise view_rebase_error(t, direct=False)
    _, offset, strides = _view_geometry(t)
    v = t._data
    node = AsStridedBackward0((base._edge(),))
    node.offset, node.shape, node.strides = offset, v.shape, tuple(strides)
    node.base_shape, node.dtype = base._data.shape, base._data.dtype
    node._omd = (v.shape, v.dtype)
    t._grad_fn = node
    t._output_nr = 0
    t._rg = True
    return node


def _copy_slices(t: Tensor, node: Node) -> None:
    """Rebase the base of view ``t`` onto ``CopySlices(node)`` and the view onto ``AsStridedBackward0``."""
    base, offset, strides = _view_geometry(t)
    v = t._data
    shape = v.shape
    # byte strides of the view are valid on a C-contiguous gradient of the base's dtype
    cs = CopySlices((base._edge(),) + tuple(node._next[1:]))
    cs.fn, cs.offset, cs.shape, cs.strides = node, offset, shape, tuple(strides)
    cs.base_shape, cs.dtype = base._data.shape, base._data.dtype
    cs.overlap = not v.flags.writeable and v.size > 0  # a fill through an expanded view
    cs._omd = (base._data.shape, base._data.dtype)
    _stamp(base, cs)
    base._grad_fn = cs
    base._output_nr = 0
    base._rg = True
    view_node = AsStridedBackward0(((cs, 0),))
    view_node.offset, view_node.shape, view_node.strides = offset, shape, cs.strides
    view_node.base_shape, view_node.dtype = base._data.shape, base._data.dtype
    view_node._omd = (shape, v.dtype)
    t._grad_fn = view_node
    t._output_nr = 0
    t._rg = True


# --- Python's augmented assignment ------------------------------------------------------------------------
def _install_operators() -> None:
    def _iop(fn):
        def method(self, other):
            if not isinstance(other, (Tensor, int, float, bool, np.ndarray, np.generic)):
                return NotImplemented
            return fn(self, other)
        return method

    Tensor.__iadd__ = _iop(add_)
    Tensor.__isub__ = _iop(sub_)
    Tensor.__imul__ = _iop(mul_)
    Tensor.__itruediv__ = _iop(div_)
    Tensor.__ipow__ = _iop(pow_)


_install_operators()
