"""Binary arithmetic with broadcasting: add, sub, rsub, mul, div, neg (and the Python operators).

torch wraps a Python scalar operand as a tensor input that needs no grad, so ``x + 1`` has two edges,
``((AccumulateGrad, 0), (None, 0))``; ``1 - x`` is ``RsubBackward1`` with one edge.
"""

from __future__ import annotations

from ._core import NONE, Node, Tensor, binary_operands, broadcast_error, np, op, record, sum_to


def _arrays(a: Tensor, b):
    """Operand arrays; ``(NotImplemented, None)`` for an operand type no op accepts (so that Python's
    operator protocol can try the other operand's reflected method)."""
    return binary_operands(a, b)


def _edges2(node_cls, out, a: Tensor, b):
    """Record a two-input node; a Python-scalar ``b`` becomes the ``(None, 0)`` edge torch shows."""
    if isinstance(b, Tensor):
        return record(out, node_cls, a, b)
    res, node = record(out, node_cls, a)
    if node is not None:
        node._next = (node._next[0], NONE)
    return res, node


def _shape(b) -> tuple:
    return b.shape if isinstance(b, np.ndarray) else ()


class AddBackward0(Node):
    __slots__ = ("a_shape", "b_shape", "alpha")
    _saves = False

    def backward(self, g):
        nxt = self._next
        ga = sum_to(g, self.a_shape) if nxt[0][0] is not None else None
        gb = None
        if nxt[1][0] is not None:
            gb = sum_to(g if self.alpha == 1 else g * self.alpha, self.b_shape)
        return ga, gb


class SubBackward0(Node):
    __slots__ = ("a_shape", "b_shape", "alpha")
    _saves = False

    def backward(self, g):
        nxt = self._next
        ga = sum_to(g, self.a_shape) if nxt[0][0] is not None else None
        gb = None
        if nxt[1][0] is not None:
            gb = sum_to(-g if self.alpha == 1 else g * (-self.alpha), self.b_shape)
        return ga, gb


class RsubBackward1(Node):
    __slots__ = ("alpha",)
    _saves = False

    def backward(self, g):
        return (-g if self.alpha == 1 else g * (-self.alpha),)


class MulBackward0(Node):
    __slots__ = ("a_shape", "b_shape", "scalar")

    def backward(self, g):
        nxt = self._next
        saved = self.saved()
        if self.scalar is not None:
            return g * self.scalar, None
        a, b = saved
        ga = sum_to(g * b, self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(g * a, self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


class DivBackward0(Node):
    __slots__ = ("a_shape", "b_shape", "scalar")

    def backward(self, g):
        nxt = self._next
        saved = self.saved()
        if self.scalar is not None:
            return g / self.scalar, None
        a, b = saved
        ga = sum_to(g / b, self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(-g * a / (b * b), self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


class NegBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (-g,)


def _check_alpha(alpha, ad):
    if alpha != 1 and not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a Python number, got {type(alpha).__name__}")


@op()
def add(input: Tensor, other, *, alpha=1) -> Tensor:
    """``input + alpha * other`` with broadcasting."""
    if alpha == 1 and isinstance(other, Tensor):  # the commonest case, two tensors of one dtype
        ad, bd = input._data, other._data
        if ad.dtype is bd.dtype:
            try:
                out = ad + bd
            except ValueError:
                raise broadcast_error(ad.shape, bd.shape) from None
            res, node = record(out, AddBackward0, input, other)
            if node is not None:
                node.a_shape, node.b_shape, node.alpha = ad.shape, bd.shape, 1
            return res
    if other.__class__ is np.ndarray:  # an array operand broadcasts like a tensor, not like a scalar
        other = Tensor._make(other)
    ad, bd = _arrays(input, other)
    if ad is NotImplemented:
        return NotImplemented
    try:
        if alpha == 1:
            out = ad + bd
        else:  # alpha must not promote the result (True + True * 2 stays bool in torch)
            out = ad + bd * alpha
            if ad.dtype == np.bool_ and out.dtype != np.bool_ and np.result_type(ad, bd) == np.bool_:
                out = out.astype(np.bool_)
    except ValueError:
        raise broadcast_error(ad.shape, _shape(bd)) from None
    res, node = _edges2(AddBackward0, out, input, other)
    if node is not None:
        node.a_shape, node.b_shape, node.alpha = ad.shape, _shape(bd), alpha
    return res


@op()
def sub(input: Tensor, other, *, alpha=1) -> Tensor:
    """``input - alpha * other`` with broadcasting."""
    if other.__class__ is np.ndarray:  # an array operand broadcasts like a tensor, not like a scalar
        other = Tensor._make(other)
    check_bool_sub(input, other)
    ad, bd = _arrays(input, other)
    if ad is NotImplemented:
        return NotImplemented
    try:
        out = ad - bd if alpha == 1 else ad - bd * alpha
    except ValueError:
        raise broadcast_error(ad.shape, _shape(bd)) from None
    res, node = _edges2(SubBackward0, out, input, other)
    if node is not None:
        node.a_shape, node.b_shape, node.alpha = ad.shape, _shape(bd), alpha
    return res


subtract = op("subtract")(sub)


def check_bool_sub(a, b) -> None:
    """torch refuses subtraction when either operand (a Python bool included) is bool (checked before any
    dtype promotion)."""
    a, b = (t._data if isinstance(t, Tensor) else t for t in (a, b))
    a_bool = isinstance(a, (bool, np.bool_)) or getattr(a, "dtype", None) == np.bool_
    b_bool = isinstance(b, (bool, np.bool_)) or getattr(b, "dtype", None) == np.bool_
    if a_bool and b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
                           "`^` or `logical_xor()` operator instead.")
    if a_bool or b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")


def rsub(input: Tensor, other, alpha=1) -> Tensor:
    """``other - alpha * input`` (what ``1 - x`` computes)."""
    if isinstance(other, Tensor):
        return sub(other, input, alpha=alpha)
    ad, bd = _arrays(input, other)
    if ad is NotImplemented:
        return NotImplemented
    check_bool_sub(input, other)
    out = bd - ad if alpha == 1 else bd - ad * alpha
    res, node = record(out, RsubBackward1, input)
    if node is not None:
        node.alpha = alpha
    return res


@op()
def mul(input: Tensor, other) -> Tensor:
    """Elementwise product with broadcasting."""
    if isinstance(other, Tensor):  # the commonest case, two tensors of one dtype
        ad, bd = input._data, other._data
        if ad.dtype is bd.dtype:
            try:
                out = ad * bd
            except ValueError:
                raise broadcast_error(ad.shape, bd.shape) from None
            res, node = record(out, MulBackward0, input, other)
            if node is not None:
                node.a_shape, node.b_shape, node.scalar = ad.shape, bd.shape, None
                node.save(input, other)
            return res
    if other.__class__ is np.ndarray:  # an array operand broadcasts like a tensor, not like a scalar
        other = Tensor._make(other)
    ad, bd = _arrays(input, other)
    if ad is NotImplemented:
        return NotImplemented
    try:
        out = ad * bd
    except ValueError:
        raise broadcast_error(ad.shape, _shape(bd)) from None
    res, node = _edges2(MulBackward0, out, input, other)
    if node is not None:
        if isinstance(other, Tensor):
            node.a_shape, node.b_shape, node.scalar = ad.shape, bd.shape, None
            node.save(input, other)
        else:
            node.scalar = bd
    return res


multiply = op("multiply")(mul)


@op(aliases=("true_divide",))
def div(input: Tensor, other, *, rounding_mode=None) -> Tensor:
    """Elementwise true division (integer inputs give the default float dtype, as in torch)."""
    if other.__class__ is np.ndarray:  # an array operand broadcasts like a tensor, not like a scalar
        other = Tensor._make(other)
    if rounding_mode is not None:
        from .pointwise import floor_divide

        if rounding_mode == "floor":
            return floor_divide(input, other)
        if rounding_mode == "trunc":
            ad, bd = _arrays(input, other)
            return Tensor._make(np.trunc(ad / bd).astype(np.result_type(ad, bd)))
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                           f"'{rounding_mode}'")
    ad, bd = _arrays(input, other)
    if ad is NotImplemented:
        return NotImplemented
    if ad.dtype.kind != "f":
        from .. import _dtype

        dt = _dtype.get_default_dtype().np
        ad = ad.astype(dt)
        if isinstance(bd, np.ndarray) and bd.dtype.kind != "f":
            bd = bd.astype(dt)
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = ad / bd
    except ValueError:
        raise broadcast_error(ad.shape, _shape(bd)) from None
    if isinstance(bd, float) and out.dtype != ad.dtype:
        out = out.astype(ad.dtype)
    res, node = _edges2(DivBackward0, out, input, other)
    if node is not None:
        if isinstance(other, Tensor):
            node.a_shape, node.b_shape, node.scalar = ad.shape, bd.shape, None
            node.save(input, other)
        else:
            node.scalar = bd
    return res


divide = op("divide")(div)


@op()
def neg(input: Tensor) -> Tensor:
    """``-input``."""
    if input._data.dtype == np.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
                           "invert a mask, use the `~` or `logical_not()` operator instead.")
    res, _node = record(-input._data, NegBackward0, input)
    return res


negative = op("negative")(neg)


def _rdiv(input: Tensor, other) -> Tensor:
    """``other / input`` for a Python scalar: torch computes ``reciprocal(input) * other``."""
    from .pointwise import reciprocal

    return mul(reciprocal(input), other)


# --- Python operators --------------------------------------------------------------------------------------
def _install_operators() -> None:
    """Python operators call the ops directly (no wrapper layer: this is the hottest path of a forward)."""

    def _radd(self, other):
        return add(self, other) if isinstance(other, _SCALARS) else NotImplemented

    def _rmul(self, other):
        return mul(self, other) if isinstance(other, _SCALARS) else NotImplemented

    def _rsub(self, other):
        if isinstance(other, np.ndarray):
            return sub(Tensor._make(other), self)
        return rsub(self, other) if isinstance(other, _SCALARS) else NotImplemented

    def _rtruediv(self, other):
        if isinstance(other, np.ndarray):
            return div(Tensor._make(other), self)
        return _rdiv(self, other) if isinstance(other, _SCALARS) else NotImplemented

    Tensor.__add__ = add
    Tensor.__radd__ = _radd
    Tensor.__sub__ = sub
    Tensor.__rsub__ = _rsub
    Tensor.__mul__ = mul
    Tensor.__rmul__ = _rmul
    Tensor.__truediv__ = div
    Tensor.__rtruediv__ = _rtruediv
    Tensor.__neg__ = neg


_SCALARS = (int, float, bool, np.ndarray, np.generic)
_install_operators()
