"""Elementwise ops: powers, exp/log family, trigonometric and hyperbolic functions, activations, rounding,
clamping, integer division and remainders, maximum/minimum, comparisons, logical and bitwise ops, ``where``,
``masked_fill``, ``lerp``, ``nan_to_num``, ``any``/``all`` (and the Python operators that map to them).

Gradient conventions follow torch at kinks and ties: ``relu'(0) = 0``, ``abs'(0) = 0``, ``clamp`` passes the
gradient where ``min <= x <= max`` (inclusive), ``maximum``/``minimum`` split it evenly at ties, and the
rounding ops have a zero gradient. Integer and bool inputs of float-valued ops (``exp``, ``sqrt``, ...) give
the default float dtype, as in torch. Comparisons and logical ops return bool tensors and record nothing.
"""

from __future__ import annotations

import builtins
import math

from .. import _dtype
from ._core import (
    NONE,
    Node,
    Tensor,
    add_scalar,
    binary_operands,
    broadcast_error,
    mul_scalar,
    not_a_tensor,
    np,
    op,
    record,
    sum_to,
)

# np.where without its __array_function__ dispatch (NEP 18's ``_implementation``; ~3 us of a 7 us call on
# the small arrays of a backward formula); the operands here are always ndarrays
_where = getattr(np.where, "_implementation", np.where)

_ZEROS: dict = {}


def _zero(dtype) -> np.ndarray:
    """A read-only 0-d zero of ``dtype``: the value numpy casts a Python ``0`` to, without converting the
    Python number again in every call (~1.4 us of a 2.4 us comparison on small arrays, numpy 2)."""
    key = dtype.type  # hashing a dtype itself costs ~1k instructions; its scalar type hashes by identity
    z = _ZEROS.get(key)
    if z is None:
        z = _ZEROS[key] = np.zeros((), key)
        z.flags.writeable = False
    return z

try:  # numpy's own error-state switch, without the ~2 us of ``np.errstate`` per call
    from numpy._core.umath import _extobj_contextvar as _EXTOBJ
    from numpy._core.umath import _make_extobj

    _QUIET = _make_extobj(all="ignore")
except ImportError:  # pragma: no cover - other numpy layouts
    _EXTOBJ = None
    _QUIET = None


def _quiet(fn, *args):
    """``fn(*args)`` with numpy's floating-point warnings off (torch warns about none of them)."""
    if _EXTOBJ is None:  # pragma: no cover
        with np.errstate(all="ignore"):
            return fn(*args)
    token = _EXTOBJ.set(_QUIET)
    try:
        return fn(*args)
    finally:
        _EXTOBJ.reset(token)


# --- helpers shared by the backward formulas (ndarray or Tensor) --------------------------------------------
def _nd(out) -> np.ndarray:
    """numpy returns scalars from 0-d inputs; tensors always hold arrays."""
    return out if out.__class__ is np.ndarray else np.asarray(out)


def _rec(out, node_cls, *inputs):
    """``record`` for a numpy result that may be a scalar (0-d inputs)."""
    return record(out if out.__class__ is np.ndarray else np.asarray(out), node_cls, *inputs)


def _arr(v):
    """The ndarray behind ``v`` (masks built from it are constants, also under create_graph)."""
    return v._data if isinstance(v, Tensor) else v


def _zeros(g):
    if isinstance(g, Tensor):
        return Tensor._make(np.zeros_like(g._data))
    return np.zeros_like(g)


def _keep(g, mask):
    """``g`` where ``mask`` else 0 (exactly 0 even where ``g`` is inf or nan, as torch's ``where``)."""
    if isinstance(g, Tensor):
        return where(Tensor._make(_nd(mask)), g, 0)
    return np.where(mask, g, 0)


def _un(npfn, tfn):
    """A unary formula that runs numpy on ndarrays and the recorded op on Tensors."""
    def f(v):
        return tfn(v) if isinstance(v, Tensor) else _quiet(npfn, v)
    return f


def _any_t(*vals) -> bool:
    for v in vals:
        if isinstance(v, Tensor):
            return True
    return False


def _float_data(t: Tensor) -> np.ndarray:
    """The input array of a float-valued op: integers and bools become the default float dtype."""
    a = t._data
    if a.dtype.kind != "f":
        return a.astype(_dtype.get_default_dtype().np)
    return a


def _type_name(a: np.ndarray) -> str:
    if a.dtype == np.int32:
        return "Int"
    if a.dtype.kind == "f":
        return "Float" if a.dtype == np.float32 else "Double"
    return {"b": "Bool", "i": "Long", "u": "Byte"}[a.dtype.kind]


def _unary(input: Tensor, npfn, node_cls, save: str | None):
    """Run a float-valued unary op; ``save`` is ``"in"``, ``"out"`` or None."""
    res, node = _rec(_quiet(npfn, _float_data(input)), node_cls, input)
    if node is not None and save is not None:
        node.save(input if save == "in" else res)
    return res


# --- unary float ops ----------------------------------------------------------------------------------------
class ExpBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g * r,)


class LogBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g / x if _any_t(g, x) else _quiet(np.divide, g, x),)


class Log1PBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g / add_scalar(x, 1) if _any_t(g, x) else _quiet(np.divide, g, x + 1),)


class Expm1Backward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g * add_scalar(r, 1),)


class SqrtBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g / mul_scalar(r, 2) if _any_t(g, r) else _quiet(np.divide, g, r * 2),)


class RsqrtBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        if _any_t(g, r):  # torch's formula, recorded as torch records it: -0.5 * grad * result.pow(3)
            return (mul_scalar(g, -0.5) * r ** 3,)
        return (g * (r * r * r) * -0.5,)


class ReciprocalBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (-g * (r * r),)


class TanhBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g * (1 - r * r),)


class SigmoidBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g * (r * (1 - r)),)


class SinBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * _cos(x),)


class CosBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * -_sin(x),)


class ErfBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        if _any_t(g, x):  # torch's formula, recorded as torch records it: 2/sqrt(pi) * exp(-x.pow(2)) * grad
            return (mul_scalar(_exp(-(x ** 2)), 2.0 / math.sqrt(math.pi)) * g,)
        return (g * (_exp(-(x * x)) * (2.0 / math.sqrt(math.pi))),)


@op()
def exp(input: Tensor) -> Tensor:
    """``e ** input`` elementwise."""
    return _unary(input, np.exp, ExpBackward0, "out")


@op()
def log(input: Tensor) -> Tensor:
    """Natural logarithm (``-inf`` at 0, ``nan`` below 0, as in torch)."""
    return _unary(input, np.log, LogBackward0, "in")


@op()
def log1p(input: Tensor) -> Tensor:
    """``log(1 + input)``, accurate for small inputs."""
    return _unary(input, np.log1p, Log1PBackward0, "in")


@op()
def expm1(input: Tensor) -> Tensor:
    """``exp(input) - 1``, accurate for small inputs."""
    return _unary(input, np.expm1, Expm1Backward0, "out")


@op()
def sqrt(input: Tensor) -> Tensor:
    """Square root (the gradient is ``inf`` at 0)."""
    return _unary(input, np.sqrt, SqrtBackward0, "out")


def _np_rsqrt(a):
    return 1 / np.sqrt(a)


@op()
def rsqrt(input: Tensor) -> Tensor:
    """``1 / sqrt(input)``."""
    return _unary(input, _np_rsqrt, RsqrtBackward0, "out")


def _np_reciprocal(a):
    return 1 / a


@op()
def reciprocal(input: Tensor) -> Tensor:
    """``1 / input`` (integer inputs give the default float dtype)."""
    return _unary(input, _np_reciprocal, ReciprocalBackward0, "out")


@op()
def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    # np.tanh warns for no input (inf, nan, any float dtype): no error-state switch (-0.5 us a call)
    res, node = _rec(np.tanh(_float_data(input)), TanhBackward0, input)
    if node is not None:
        node.save(res)
    return res


def _np_sigmoid(a):
    # exp(-a) overflows to inf for very negative a, and 1 / inf is the right limit (warnings are off)
    return 1 / (1 + np.exp(-a))


@op()
def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-input))``, computed without overflow."""
    return _unary(input, _np_sigmoid, SigmoidBackward0, "out")


@op()
def sin(input: Tensor) -> Tensor:
    """Sine."""
    return _unary(input, np.sin, SinBackward0, "in")


@op()
def cos(input: Tensor) -> Tensor:
    """Cosine."""
    return _unary(input, np.cos, CosBackward0, "in")


_ERF = []


def _np_erf(a):
    if not _ERF:  # scipy is optional: without it, math.erf per element (exact, slower)
        try:
            from scipy.special import erf as fn
        except ImportError:
            fn = np.frompyfunc(math.erf, 1, 1)
        _ERF.append(fn)
    return np.asarray(_ERF[0](a), dtype=a.dtype)


@op()
def erf(input: Tensor) -> Tensor:
    """The Gauss error function (used by the exact GELU)."""
    return _unary(input, _np_erf, ErfBackward0, "in")


_exp = _un(np.exp, exp)
_rsqrt = _un(_np_rsqrt, rsqrt)
_log = _un(np.log, log)
_sin = _un(np.sin, sin)
_cos = _un(np.cos, cos)


# --- more float ops: log2, log10, exp2, hyperbolic and inverse trigonometric, erfc, logit -------------------
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


class Log2Backward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g / (x * _LN2) if _any_t(g, x) else _quiet(lambda: g / (x * _LN2)),)


class Log10Backward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g / (x * _LN10) if _any_t(g, x) else _quiet(lambda: g / (x * _LN10)),)


class Exp2Backward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g * (r * _LN2),)


class SinhBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * _cosh(x),)


class CoshBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * _sinh(x),)


class TanBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        return (g * (r * r + 1),)


class AsinBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * _rsqrt(1 - x * x),)


class AcosBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * -_rsqrt(1 - x * x),)


class AtanBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g / add_scalar(x * x, 1),)


class ErfcBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * (_exp(-(x * x)) * (-2.0 / math.sqrt(math.pi))),)


class LogitBackward0(Node):
    __slots__ = ("eps",)

    def backward(self, g):
        (x,) = self.saved()
        xa, eps = _arr(x), self.eps
        lo, hi = (0.0, 1.0) if eps is None else (eps, 1.0 - eps)
        inside = (xa >= lo) & (xa <= hi)
        if _any_t(g, x):
            return (_keep(g / (x * (1 - x)), inside),)
        outside = 0 if eps is not None else np.nan
        return (np.where(inside, _quiet(lambda: g / (x * (1 - x))), outside),)


def _div(a, b):
    return a / b if _any_t(a, b) else _quiet(np.divide, a, b)


@op()
def log2(input: Tensor) -> Tensor:
    """Base-2 logarithm."""
    return _unary(input, np.log2, Log2Backward0, "in")


@op()
def log10(input: Tensor) -> Tensor:
    """Base-10 logarithm."""
    return _unary(input, np.log10, Log10Backward0, "in")


@op()
def exp2(input: Tensor) -> Tensor:
    """``2 ** input``."""
    return _unary(input, np.exp2, Exp2Backward0, "out")


@op()
def sinh(input: Tensor) -> Tensor:
    """Hyperbolic sine."""
    return _unary(input, np.sinh, SinhBackward0, "in")


@op()
def cosh(input: Tensor) -> Tensor:
    """Hyperbolic cosine."""
    return _unary(input, np.cosh, CoshBackward0, "in")


@op()
def tan(input: Tensor) -> Tensor:
    """Tangent."""
    return _unary(input, np.tan, TanBackward0, "out")


@op(aliases=("arcsin",))
def asin(input: Tensor) -> Tensor:
    """Inverse sine (nan outside [-1, 1])."""
    return _unary(input, np.arcsin, AsinBackward0, "in")


@op(aliases=("arccos",))
def acos(input: Tensor) -> Tensor:
    """Inverse cosine (nan outside [-1, 1])."""
    return _unary(input, np.arccos, AcosBackward0, "in")


@op(aliases=("arctan",))
def atan(input: Tensor) -> Tensor:
    """Inverse tangent."""
    return _unary(input, np.arctan, AtanBackward0, "in")


def _np_erfc(a):
    try:
        from scipy.special import erfc as fn
    except ImportError:
        return np.asarray(np.frompyfunc(math.erfc, 1, 1)(a), dtype=a.dtype)
    return np.asarray(fn(a), dtype=a.dtype)


@op()
def erfc(input: Tensor) -> Tensor:
    """The complementary error function ``1 - erf(input)``."""
    return _unary(input, _np_erfc, ErfcBackward0, "in")


@op()
def logit(input: Tensor, eps=None) -> Tensor:
    """``log(p / (1 - p))``; with ``eps``, ``p`` is first clamped to ``[eps, 1 - eps]``."""
    def fn(a):
        if eps is not None:
            a = np.clip(a, eps, 1 - eps)
        return np.log(a / (1 - a))

    res = _unary(input, fn, LogitBackward0, "in")
    if res._grad_fn is not None:
        res._grad_fn.eps = eps
    return res


_sinh = _un(np.sinh, sinh)
_cosh = _un(np.cosh, cosh)


class SgnBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (_zeros(g),)


@op()
def sgn(input: Tensor) -> Tensor:
    """``sign`` for real tensors (its own node, ``SgnBackward0``)."""
    return _sign(input, SgnBackward0)


@op()
def signbit(input: Tensor) -> Tensor:
    """Bool tensor: True where the sign bit is set (also for -0.0)."""
    return Tensor._make(_nd(np.signbit(input._data)))


class Atan2Backward0(Node):
    __slots__ = ("a_shape", "b_shape")

    def backward(self, g):
        y, x = self.saved()
        nxt = self._next
        denom = x * x + y * y
        ok = _arr(denom) != 0  # torch gives 0 at the origin
        ga = sum_to(_keep(_div(g * x, denom), ok), self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(_keep(_div(-g * y, denom), ok), self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


@op(aliases=("arctan2",))
def atan2(input: Tensor, other: Tensor) -> Tensor:
    """The angle of the point ``(other, input)``: ``atan(input / other)`` with the right quadrant."""
    ad, bd = binary_operands(input, other)
    if ad is NotImplemented:
        raise not_a_tensor("atan2", other=other)
    if ad.dtype.kind != "f":
        dt = _dtype.get_default_dtype().np
        ad, bd = ad.astype(dt), bd.astype(dt)
    try:
        out = np.arctan2(ad, bd)
    except ValueError:
        raise broadcast_error(ad.shape, bd.shape) from None
    res, node = _rec(out, Atan2Backward0, input, other)
    if node is not None:
        node.a_shape, node.b_shape = ad.shape, bd.shape
        node.save(input, other)
    return res


class LogaddexpBackward0(Node):
    __slots__ = ("a_shape", "b_shape")

    def backward(self, g):
        x, y, r = self.saved()
        nxt = self._next
        ga = sum_to(g * _exp(x - r), self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(g * _exp(y - r), self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


@op()
def logaddexp(input: Tensor, other: Tensor) -> Tensor:
    """``log(exp(input) + exp(other))`` without overflow."""
    ad, bd = binary_operands(input, other)
    if ad is NotImplemented:
        raise not_a_tensor("logaddexp", other=other)
    try:
        out = _quiet(np.logaddexp, ad, bd)
    except ValueError:
        raise broadcast_error(ad.shape, bd.shape) from None
    res, node = _rec(out, LogaddexpBackward0, input, other)
    if node is not None:
        node.a_shape, node.b_shape = ad.shape, bd.shape
        node.save(input, other, res)
    return res


@op()
def count_nonzero(input: Tensor, dim=None) -> Tensor:
    """Number of nonzero elements (over ``dim``, if given) as int64."""
    a = input._data
    if dim is None:
        return Tensor._make(np.asarray(np.count_nonzero(a), dtype=np.int64))
    from ._core import dims_arg

    axes = dims_arg(dim, a.ndim) if a.ndim else None
    return Tensor._make(_nd(np.count_nonzero(a, axis=axes)).astype(np.int64))


# --- abs, sign, relu, square --------------------------------------------------------------------------------
class AbsBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        if isinstance(x, Tensor):  # torch's formula records grad * self.sgn() (SgnBackward0) under create_graph
            return (g * sgn(x),)
        return (g * sign_or_zero(x),)


def sign_or_zero(a: np.ndarray) -> np.ndarray:
    """torch's ``sgn`` as abs' backward uses it: the sign, and 0 (not nan) for nan."""
    return np.nan_to_num(np.sign(a))


class SignBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (_zeros(g),)


class ReluBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (r,) = self.saved()
        # torch's threshold_backward: 0 where result <= 0, so a nan result passes the gradient
        if isinstance(g, Tensor) or isinstance(r, Tensor):
            return (_keep(g, ~(_arr(r) <= 0)),)
        return (_where(r <= _zero(r.dtype), _zero(g.dtype), g),)


@op()
def abs(input: Tensor) -> Tensor:  # noqa: A001 - torch's name
    """Absolute value (the gradient at 0 is 0)."""
    a = input._data
    if a.dtype == np.bool_:
        raise NotImplementedError("\"abs_cpu\" not implemented for 'Bool'")
    res, node = _rec(np.abs(a), AbsBackward0, input)
    if node is not None:
        node.save(input)
    return res


absolute = op("absolute")(abs)


@op()
def sign(input: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of each element (0 for nan, as torch); bool stays bool."""
    return _sign(input, SignBackward0)


def _sign(input: Tensor, node_cls) -> Tensor:
    a = input._data
    if a.dtype == np.bool_:
        return Tensor._make(a.copy())
    out = _nd(np.sign(a))
    if out.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    res, _node = _rec(out, node_cls, input)
    return res


@op()
def relu(input: Tensor) -> Tensor:
    """``max(input, 0)``; the gradient at 0 is 0."""
    a = input._data
    if a.dtype == np.bool_:
        raise RuntimeError("Boolean inputs not supported for relu")
    res, node = _rec(np.maximum(a, _zero(a.dtype)), ReluBackward0, input)
    if node is not None:
        node.save(res)
    return res


@op()
def square(input: Tensor) -> Tensor:
    """``input ** 2`` (recorded as ``PowBackward0``, as torch; bool and int give int64)."""
    return pow(input, 2)


# --- pow ----------------------------------------------------------------------------------------------------
_NEG_INT_POW = "Integers to negative integer powers are not allowed."


class PowBackward0(Node):
    """``tensor ** scalar``."""

    __slots__ = ("exponent",)

    def backward(self, g):
        (x,) = self.saved()
        e = self.exponent
        if e == 0:
            return (_zeros(g),)
        if _any_t(g, x):
            return (g * mul_scalar(pow(x, e - 1), e),)
        return (g * _quiet(np.multiply, e, _quiet(np.power, x, e - 1)),)


class PowBackward1(Node):
    """``tensor ** tensor``."""

    __slots__ = ("a_shape", "b_shape")

    def backward(self, g):
        x, e, r = self.saved()
        xa, ea = _arr(x), _arr(e)
        nxt = self._next
        ga = gb = None
        if not _any_t(g, x, e, r):
            dt = r.dtype  # compute in the promoted dtype, as torch does
            x, e = x.astype(dt, copy=False), e.astype(dt, copy=False)
            if nxt[0][0] is not None:
                ga = sum_to(np.where(ea == 0, 0, _quiet(lambda: g * (e * np.power(x, e - 1)))), self.a_shape)
            if nxt[1][0] is not None:
                gr = _quiet(lambda: g * (r * np.log(x)))
                gb = sum_to(np.where((xa == 0) & (ea >= 0), 0, gr), self.b_shape)
            return ga, gb
        if nxt[0][0] is not None:
            ga = sum_to(_keep(g * (e * pow(x, e - 1)), ea != 0), self.a_shape)
        if nxt[1][0] is not None:
            gb = sum_to(_keep(g * (r * log(x)), ~((xa == 0) & (ea >= 0))), self.b_shape)
        return ga, gb


class PowBackward2(Node):
    """``scalar ** tensor``."""

    __slots__ = ("log_base", "zero_base")

    def backward(self, g):
        e, r = self.saved()
        gr = g * mul_scalar(r, self.log_base) if _any_t(g, r) else _quiet(lambda: g * (r * self.log_base))
        if self.zero_base:
            return (_keep(gr, _arr(e) < 0),)
        return (gr,)


def _scalar(v):
    return v.item() if isinstance(v, np.generic) else v


@op()
def pow(input, exponent) -> Tensor:  # noqa: A001 - torch's name
    """``input ** exponent`` elementwise, with broadcasting.

    Args:
        input: a Tensor, or a Python number when ``exponent`` is a Tensor (``PowBackward2``).
        exponent: a Python number (``PowBackward0``) or a Tensor (``PowBackward1``).

    Returns:
        A tensor of torch's result dtype (``int ** int`` stays integer, ``int ** 0.5`` is float32).

    Raises:
        RuntimeError: an integer tensor raised to a negative integer power, or shapes that do not broadcast.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([1., 2., 3.]) ** 2
        tensor([1., 4., 9.])
    """
    if not isinstance(input, Tensor):
        return _rpow(exponent, _scalar(input))
    if isinstance(exponent, Tensor):
        return _pow_tensor(input, exponent)
    e = _scalar(exponent)
    if not isinstance(e, (bool, int, float)):
        raise TypeError(f"pow(): exponent must be a Tensor or a number, got {type(exponent).__name__}")
    a = input._data
    if a.dtype.kind in "biu":
        if isinstance(e, float):
            a = a.astype(_dtype.get_default_dtype().np)
        else:
            e = int(e)
            if e < 0:
                raise RuntimeError(_NEG_INT_POW)
            if a.dtype == np.bool_:
                a = a.astype(np.int64)
    elif isinstance(e, bool):
        e = int(e)
    out = _quiet(np.power, a, e)
    res, node = _rec(out, PowBackward0, input)
    if node is not None:
        node.exponent = e
        node.save(input)
    return res


def _pow_tensor(input: Tensor, exponent: Tensor) -> Tensor:
    ad, bd = binary_operands(input, exponent)
    if ad.dtype.kind in "biu" and (bd < 0).any():
        raise RuntimeError(_NEG_INT_POW)
    try:
        out = _quiet(np.power, ad, bd)
    except ValueError:
        raise broadcast_error(ad.shape, bd.shape) from None
    res, node = _rec(out, PowBackward1, input, exponent)
    if node is not None:
        node.a_shape, node.b_shape = ad.shape, bd.shape
        node.save(input, exponent, res)
    return res


def _rpow(input: Tensor, base) -> Tensor:
    """``base ** input`` for a Python number ``base``."""
    if not isinstance(base, (bool, int, float)):
        raise TypeError(f"pow(): base must be a Tensor or a number, got {type(base).__name__}")
    a = input._data
    dt = _dtype.result_dtype(_dtype.from_numpy_dtype(a.dtype), a.ndim, base).np
    if dt == np.bool_:
        dt = np.dtype(np.int64)
    a = a.astype(dt, copy=False)
    if dt.kind in "iu" and (a < 0).any():
        raise RuntimeError(_NEG_INT_POW)
    out = _quiet(np.power, dt.type(base) if dt.kind != "f" else base, a)
    if not isinstance(out, np.ndarray):
        out = np.asarray(out, dtype=dt)
    res, node = _rec(out, PowBackward2, input)
    if node is not None:
        node.log_base = math.log(base) if base > 0 else (-math.inf if base == 0 else math.nan)
        node.zero_base = base == 0
        node.save(input, res)
    return res


# --- clamp --------------------------------------------------------------------------------------------------
class ClampBackward1(Node):
    """``clamp`` with number bounds."""

    __slots__ = ("min", "max")

    def backward(self, g):
        x = _arr(self.saved()[0])
        lo, hi = self.min, self.max
        if lo is None:
            mask = x <= hi
        elif hi is None:
            mask = x >= lo
        else:
            mask = (x >= lo) & (x <= hi)
        return (_keep(g, mask),)


class ClampMinBackward0(Node):
    __slots__ = ("min",)

    def backward(self, g):
        return (_keep(g, _arr(self.saved()[0]) >= self.min),)


class ClampMaxBackward0(Node):
    __slots__ = ("max",)

    def backward(self, g):
        return (_keep(g, _arr(self.saved()[0]) <= self.max),)


class ClampBackward0(Node):
    """``clamp`` with tensor bounds: edges (input, min, max)."""

    __slots__ = ("shapes", "has_min", "has_max")

    def backward(self, g):
        saved = [_arr(s) for s in self.saved()]
        x = saved[0]
        lo = saved[1] if self.has_min else None
        hi = saved[1 + self.has_min] if self.has_max else None
        nxt = self._next
        gx = glo = ghi = None
        if lo is not None and hi is not None:
            if nxt[0][0] is not None:
                gx = _keep(g, (x >= lo) & (x <= hi))
            if nxt[1][0] is not None:
                glo = _keep(g, (lo > x) & (lo < hi))
            if nxt[2][0] is not None:
                ghi = _keep(g, (hi < x) | (hi < lo))
        elif lo is not None:
            if nxt[0][0] is not None:
                gx = _keep(g, x >= lo)
            if nxt[1][0] is not None:
                glo = _keep(g, x < lo)
        else:
            if nxt[0][0] is not None:
                gx = _keep(g, x <= hi)
            if nxt[2][0] is not None:
                ghi = _keep(g, x > hi)
        out = []
        for gi, shape in zip((gx, glo, ghi), self.shapes, strict=True):
            out.append(None if gi is None else sum_to(_full(gi, g.shape), shape))
        return tuple(out)


class ClampMinBackward1(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        x, lo = (_arr(s) for s in self.saved())
        nxt = self._next
        gx = sum_to(_full(_keep(g, x >= lo), g.shape), self.shapes[0]) if nxt[0][0] is not None else None
        glo = sum_to(_full(_keep(g, x < lo), g.shape), self.shapes[1]) if nxt[1][0] is not None else None
        return gx, glo


class ClampMaxBackward1(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        x, hi = (_arr(s) for s in self.saved())
        nxt = self._next
        gx = sum_to(_full(_keep(g, x <= hi), g.shape), self.shapes[0]) if nxt[0][0] is not None else None
        ghi = sum_to(_full(_keep(g, x > hi), g.shape), self.shapes[1]) if nxt[1][0] is not None else None
        return gx, ghi


def _full(v, shape):
    """``v`` broadcast to ``shape`` (a gradient masked by a smaller input keeps the output's shape)."""
    if tuple(v.shape) == tuple(shape):
        return v
    if isinstance(v, Tensor):
        return v + Tensor._make(np.zeros(shape, dtype=v._data.dtype))
    return np.broadcast_to(v, shape)


def _is_number(v) -> bool:
    return isinstance(v, (bool, int, float, np.generic))


def _clamp_dtype(a: np.ndarray, *bounds) -> np.ndarray:
    """The input array cast to torch's result dtype for number bounds (int input, float bound -> float)."""
    if a.dtype.kind != "f" and builtins.any(isinstance(b, float) for b in bounds):
        return a.astype(_dtype.get_default_dtype().np)
    if a.dtype == np.bool_:
        return a.astype(np.int64)
    return a


@op(aliases=("clip",))
def clamp(input: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - torch's names
    """Limit every element to ``[min, max]``.

    The gradient passes where ``min <= input <= max`` (inclusive); if ``min > max``, all elements are ``max``.

    Args:
        input: the tensor to clamp.
        min: lower bound: a number or a tensor (broadcast), or None.
        max: upper bound: a number or a tensor (broadcast), or None.

    Returns:
        The clamped tensor (``ClampBackward1`` for number bounds, ``ClampBackward0`` for tensor bounds).

    Raises:
        RuntimeError: both bounds are None.
        TypeError: one bound is a number and the other a tensor.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([-2., 0.5, 3.]).clamp(0, 1)
        tensor([0.0000, 0.5000, 1.0000])
    """
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        if _is_number(min) or _is_number(max):
            raise TypeError("clamp() received an invalid combination of arguments: min and max must both be "
                            "Tensors or both be Numbers")
        return _clamp_tensor(input, min, max)
    lo, hi = _scalar(min), _scalar(max)
    a = _clamp_dtype(input._data, lo, hi)
    if lo is None:
        out = np.minimum(a, hi)
    elif hi is None:
        out = np.maximum(a, lo)
    else:
        out = np.minimum(np.maximum(a, lo), hi)
    if out.dtype != a.dtype:
        out = out.astype(a.dtype)
    res, node = _rec(out, ClampBackward1, input)
    if node is not None:
        node.min, node.max = lo, hi
        node.save(input)
    return res


def _clamp_tensor(input: Tensor, lo, hi) -> Tensor:
    ins = [input] + [t for t in (lo, hi) if t is not None]
    dt = input._data.dtype
    for t in ins[1:]:
        dt = _dtype.result_dtype(_dtype.from_numpy_dtype(dt), input._data.ndim, t).np
    arrs = [t._data.astype(dt, copy=False) for t in ins]
    a = arrs[0]
    try:
        if lo is not None:
            a = np.maximum(a, arrs[1])
        if hi is not None:
            a = np.minimum(a, arrs[-1])
    except ValueError:
        raise broadcast_error(input._data.shape, ins[-1]._data.shape) from None
    res, node = _rec(a, ClampBackward0, input, *ins[1:])
    if node is not None:
        if lo is None:
            node._next = (node._next[0], NONE, node._next[1])
        elif hi is None:
            node._next = (node._next[0], node._next[1], NONE)
        node.has_min, node.has_max = lo is not None, hi is not None
        node.shapes = (input._data.shape, lo._data.shape if lo is not None else (),
                       hi._data.shape if hi is not None else ())
        node.save(*ins)
    return res


@op()
def clamp_min(input: Tensor, min) -> Tensor:  # noqa: A002
    """``clamp(input, min=min)`` (its own node in torch)."""
    if isinstance(min, Tensor):
        return _clamp_one(input, min, np.maximum, ClampMinBackward1)
    lo = _scalar(min)
    a = _clamp_dtype(input._data, lo)
    res, node = _rec(np.maximum(a, lo).astype(a.dtype, copy=False), ClampMinBackward0, input)
    if node is not None:
        node.min = lo
        node.save(input)
    return res


@op()
def clamp_max(input: Tensor, max) -> Tensor:  # noqa: A002
    """``clamp(input, max=max)`` (its own node in torch)."""
    if isinstance(max, Tensor):
        return _clamp_one(input, max, np.minimum, ClampMaxBackward1)
    hi = _scalar(max)
    a = _clamp_dtype(input._data, hi)
    res, node = _rec(np.minimum(a, hi).astype(a.dtype, copy=False), ClampMaxBackward0, input)
    if node is not None:
        node.max = hi
        node.save(input)
    return res


def _clamp_one(input: Tensor, bound: Tensor, npfn, node_cls) -> Tensor:
    ad, bd = binary_operands(input, bound)
    try:
        out = npfn(ad, bd)
    except ValueError:
        raise broadcast_error(ad.shape, bd.shape) from None
    res, node = _rec(out, node_cls, input, bound)
    if node is not None:
        node.shapes = (ad.shape, bd.shape)
        node.save(input, bound)
    return res


# --- rounding -----------------------------------------------------------------------------------------------
def _zero_grad_node(name: str) -> type:
    def backward(self, g):
        return (_zeros(g),)
    return type(name, (Node,), {"__slots__": (), "_saves": False, "backward": backward})


FloorBackward0 = _zero_grad_node("FloorBackward0")
CeilBackward0 = _zero_grad_node("CeilBackward0")
RoundBackward0 = _zero_grad_node("RoundBackward0")
RoundBackward1 = _zero_grad_node("RoundBackward1")
TruncBackward0 = _zero_grad_node("TruncBackward0")


def _rounding(input: Tensor, npfn, node_cls, kernel: str) -> Tensor:
    a = input._data
    if a.dtype == np.bool_:
        raise NotImplementedError(f"\"{kernel}_vml_cpu\" not implemented for 'Bool'")
    if a.dtype.kind != "f":
        return Tensor._make(a.copy())
    res, _node = _rec(npfn(a), node_cls, input)
    return res


@op()
def floor(input: Tensor) -> Tensor:
    """Largest integer not above each element (zero gradient)."""
    return _rounding(input, np.floor, FloorBackward0, "floor")


@op()
def ceil(input: Tensor) -> Tensor:
    """Smallest integer not below each element (zero gradient)."""
    return _rounding(input, np.ceil, CeilBackward0, "ceil")


@op()
def trunc(input: Tensor) -> Tensor:
    """Round toward zero (zero gradient)."""
    return _rounding(input, np.trunc, TruncBackward0, "trunc")


fix = op("fix")(trunc)


@op()
def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001
    """Round half to even, optionally to ``decimals`` places (zero gradient)."""
    if decimals == 0:
        return _rounding(input, np.rint, RoundBackward0, "round")
    a = input._data
    if a.dtype.kind != "f":
        raise NotImplementedError(f"\"round_cpu\" not implemented for '{_type_name(a)}'")
    res, _node = _rec(np.round(a, decimals), RoundBackward1, input)
    return res


class FracBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (g,)


@op()
def frac(input: Tensor) -> Tensor:
    """``input - trunc(input)`` (gradient 1)."""
    a = input._data
    if a.dtype.kind != "f":
        raise NotImplementedError(f"\"frac_cpu\" not implemented for '{_type_name(a)}'")
    res, _node = _rec(a - np.trunc(a), FracBackward0, input)
    return res


# --- floor division and remainder ---------------------------------------------------------------------------
class NotImplementedBackward(Node):
    """torch's placeholder node for ops without a derivative (``floor_divide``): backward raises."""

    __slots__ = ("op_name",)
    _saves = False

    def name(self) -> str:
        return "torch::autograd::NotImplemented"

    def backward(self, g):
        raise RuntimeError(f"derivative for aten::{self.op_name} is not implemented")


class RemainderBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (g,)


class RemainderBackward1(Node):
    __slots__ = ("a_shape", "b_shape")

    def backward(self, g):
        x, y = self.saved()
        nxt = self._next
        ga = sum_to(g, self.a_shape) if nxt[0][0] is not None else None
        gb = None
        if nxt[1][0] is not None:
            q = _quiet(np.floor_divide, _arr(x), _arr(y))
            gb = sum_to(-g * q, self.b_shape)
        return ga, gb


def _is_int(v) -> bool:
    return v.dtype.kind in "biu" if isinstance(v, np.ndarray) else isinstance(v, int)


def _int_zero_check(bd):
    if isinstance(bd, np.ndarray):
        if bd.dtype.kind in "biu" and not bd.all():
            raise RuntimeError("ZeroDivisionError")
    elif bd == 0:
        raise RuntimeError("ZeroDivisionError")


def _divmod_operands(input, other):
    """Arrays of a (tensor, tensor|number) or (number, tensor) pair in torch's result dtype."""
    if isinstance(input, Tensor):
        ad, bd = binary_operands(input, other)
        if ad is NotImplemented:
            raise TypeError(f"unsupported operand type: {type(other).__name__}")
        return ad, bd
    bd, ad = binary_operands(other, _scalar(input))
    if bd is NotImplemented:
        raise TypeError(f"unsupported operand type: {type(input).__name__}")
    return ad, bd


def _edges(input, other) -> tuple:
    return tuple(t for t in (input, other) if isinstance(t, Tensor))


@op()
def floor_divide(input, other) -> Tensor:
    """``input // other`` rounded toward minus infinity (torch records a node without a derivative)."""
    ad, bd = _divmod_operands(input, other)
    if _is_int(ad) and _is_int(bd):
        _int_zero_check(bd)
    try:
        out = _quiet(np.floor_divide, ad, bd)
    except ValueError:
        raise broadcast_error(np.shape(ad), np.shape(bd)) from None
    res, node = _rec(np.asarray(out), NotImplementedBackward, *_edges(input, other))
    if node is not None:
        node.op_name = "floor_divide"
    return res


@op()
def remainder(input, other) -> Tensor:
    """Python-style modulo: the result has the sign of ``other``."""
    ad, bd = _divmod_operands(input, other)
    if _is_int(ad) and _is_int(bd):
        _int_zero_check(bd)
    try:
        out = np.asarray(_quiet(np.remainder, ad, bd))
    except ValueError:
        raise broadcast_error(np.shape(ad), np.shape(bd)) from None
    if not isinstance(input, Tensor):
        res, node = _rec(out, NotImplementedBackward, other)
        if node is not None:
            node.op_name = "remainder"
        return res
    if not isinstance(other, Tensor):
        res, _node = _rec(out, RemainderBackward0, input)
        return res
    res, node = _rec(out, RemainderBackward1, input, other)
    if node is not None:
        node.a_shape, node.b_shape = ad.shape, bd.shape
        node.save(input, other)
    return res


class FmodBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        return (g,)


class FmodBackward1(Node):
    __slots__ = ("a_shape", "b_shape")

    def backward(self, g):
        x, y = self.saved()
        nxt = self._next
        ga = sum_to(g, self.a_shape) if nxt[0][0] is not None else None
        gb = None
        if nxt[1][0] is not None:
            q = _quiet(lambda: np.trunc(_arr(x) / _arr(y)))
            gb = sum_to(-g * q, self.b_shape)
        return ga, gb


@op()
def fmod(input: Tensor, other) -> Tensor:
    """C-style remainder: the result has the sign of ``input``."""
    ad, bd = _divmod_operands(input, other)
    if _is_int(ad) and _is_int(bd):
        _int_zero_check(bd)
    try:
        out = _quiet(np.fmod, ad, bd)
    except ValueError:
        raise broadcast_error(np.shape(ad), np.shape(bd)) from None
    if not isinstance(other, Tensor):
        res, _node = _rec(out, FmodBackward0, input)
        return res
    res, node = _rec(out, FmodBackward1, input, other)
    if node is not None:
        node.a_shape, node.b_shape = ad.shape, bd.shape
        node.save(input, other)
    return res


# --- maximum / minimum --------------------------------------------------------------------------------------
class MaximumBackward0(Node):
    __slots__ = ("a_shape", "b_shape")
    _sign = 1

    def backward(self, g):
        x, y = (_arr(s) for s in self.saved())
        if self._sign < 0:
            x, y = y, x
        nxt = self._next
        tie = x == y
        if isinstance(g, Tensor):
            half = where(Tensor._make(_nd(tie)), g * 0.5, g)
        else:
            half = np.where(tie, g * 0.5, g)
        ga = sum_to(_keep(half, ~(x < y)), self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(_keep(half, ~(x > y)), self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


class MinimumBackward0(MaximumBackward0):
    __slots__ = ()
    _sign = -1


def _binary_minmax(input: Tensor, other, npfn, node_cls, name: str) -> Tensor:
    if not isinstance(other, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")
    ad, bd = binary_operands(input, other)
    try:
        out = npfn(ad, bd)
    except ValueError:
        raise broadcast_error(ad.shape, bd.shape) from None
    res, node = _rec(out, node_cls, input, other)
    if node is not None:
        node.a_shape, node.b_shape = ad.shape, bd.shape
        node.save(input, other)
    return res


@op()
def maximum(input: Tensor, other: Tensor) -> Tensor:
    """Elementwise maximum of two tensors (nan propagates; ties split the gradient evenly)."""
    return _binary_minmax(input, other, np.maximum, MaximumBackward0, "maximum")


@op()
def minimum(input: Tensor, other: Tensor) -> Tensor:
    """Elementwise minimum of two tensors (nan propagates; ties split the gradient evenly)."""
    return _binary_minmax(input, other, np.minimum, MinimumBackward0, "minimum")


# --- comparisons, logical and bitwise ops (bool results, nothing recorded) ----------------------------------
def _compare(npfn):
    def fn(input: Tensor, other) -> Tensor:
        if isinstance(other, np.generic):
            other = other.item()
        ad, bd = binary_operands(input, other)
        if ad is NotImplemented:
            raise TypeError(f"unsupported operand type for a comparison: {type(other).__name__}")
        try:
            return Tensor._make(_nd(npfn(ad, bd)))
        except ValueError:
            raise broadcast_error(ad.shape, np.shape(bd)) from None
    return fn


eq = op("eq")(_compare(np.equal))
ne = op("ne", aliases=("not_equal",))(_compare(np.not_equal))
lt = op("lt", aliases=("less",))(_compare(np.less))
le = op("le", aliases=("less_equal",))(_compare(np.less_equal))
gt = op("gt", aliases=("greater",))(_compare(np.greater))
ge = op("ge", aliases=("greater_equal",))(_compare(np.greater_equal))
for _f, _n in ((eq, "eq"), (ne, "ne"), (lt, "lt"), (le, "le"), (gt, "gt"), (ge, "ge")):
    _f.__name__ = _f.__qualname__ = _n
    _f.__doc__ = f"Elementwise ``{_n}`` comparison with broadcasting; returns a bool tensor."


@op()
def equal(input: Tensor, other: Tensor) -> bool:
    """True when both tensors have the same shape and elements."""
    try:
        ad, bd = input._data, other._data
    except AttributeError:
        raise not_a_tensor("equal", input=input, other=other) from None
    return ad.shape == bd.shape and bool(np.array_equal(ad, bd))


def _logical(npfn):
    def fn(input: Tensor, other) -> Tensor:
        if isinstance(other, Tensor):
            b = other._data
        elif isinstance(other, (bool, int, float, np.generic, np.ndarray)):
            b = other
        else:
            raise not_a_tensor(npfn.__name__, other=other)
        try:
            return Tensor._make(_nd(npfn(input._data, b)))
        except ValueError:
            raise broadcast_error(input._data.shape, np.shape(b)) from None
    return fn


logical_and = op("logical_and")(_logical(np.logical_and))
logical_or = op("logical_or")(_logical(np.logical_or))
logical_xor = op("logical_xor")(_logical(np.logical_xor))
for _f, _n in ((logical_and, "logical_and"), (logical_or, "logical_or"), (logical_xor, "logical_xor")):
    _f.__name__ = _f.__qualname__ = _n
    _f.__doc__ = f"Elementwise ``{_n}`` of the truth values (nonzero is True); returns a bool tensor."


@op()
def logical_not(input: Tensor) -> Tensor:
    """Elementwise ``not`` of the truth values; returns a bool tensor."""
    return Tensor._make(_nd(np.logical_not(input._data)))


def _bitwise(npfn, kernel: str):
    def fn(input: Tensor, other) -> Tensor:
        ad, bd = binary_operands(input, other)
        if ad is NotImplemented:
            raise TypeError(f"unsupported operand type: {type(other).__name__}")
        if ad.dtype.kind == "f":
            raise NotImplementedError(f"\"{kernel}_cpu\" not implemented for '{_float_name(ad)}'")
        try:
            return Tensor._make(_nd(npfn(ad, bd)))
        except ValueError:
            raise broadcast_error(ad.shape, np.shape(bd)) from None
    return fn


def _c_name(a) -> str:
    """The C type name torch prints in dtype-mismatch errors (``float``, ``double``, ``long int``)."""
    names = {"float32": "float", "float64": "double", "int64": "long int", "int32": "int", "bool": "bool",
             "float16": "c10::Half", "uint8": "unsigned char", "int8": "signed char", "int16": "short int"}
    return names[str(a.dtype)]


def _float_name(a) -> str:
    return {np.dtype(np.float32): "Float", np.dtype(np.float64): "Double"}.get(a.dtype, "Half")


bitwise_and = op("bitwise_and")(_bitwise(np.bitwise_and, "bitwise_and"))
bitwise_or = op("bitwise_or")(_bitwise(np.bitwise_or, "bitwise_or"))
bitwise_xor = op("bitwise_xor")(_bitwise(np.bitwise_xor, "bitwise_xor"))
for _f, _n in ((bitwise_and, "bitwise_and"), (bitwise_or, "bitwise_or"), (bitwise_xor, "bitwise_xor")):
    _f.__name__ = _f.__qualname__ = _n
    _f.__doc__ = f"Elementwise ``{_n}`` of bool or integer tensors."


@op()
def bitwise_not(input: Tensor) -> Tensor:
    """Elementwise bitwise not (``~``) of a bool or integer tensor."""
    a = input._data
    if a.dtype.kind == "f":
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return Tensor._make(_nd(np.invert(a)))


@op()
def isnan(input: Tensor) -> Tensor:
    """Bool tensor: True where the element is nan."""
    return Tensor._make(_nd(np.isnan(input._data)))


@op()
def isinf(input: Tensor) -> Tensor:
    """Bool tensor: True where the element is +-inf."""
    return Tensor._make(_nd(np.isinf(input._data)))


@op()
def isfinite(input: Tensor) -> Tensor:
    """Bool tensor: True where the element is neither nan nor +-inf."""
    return Tensor._make(_nd(np.isfinite(input._data)))


@op()
def isposinf(input: Tensor) -> Tensor:
    """Bool tensor: True where the element is +inf."""
    return Tensor._make(_nd(np.isposinf(input._data)))


@op()
def isneginf(input: Tensor) -> Tensor:
    """Bool tensor: True where the element is -inf."""
    return Tensor._make(_nd(np.isneginf(input._data)))


# --- any, all -----------------------------------------------------------------------------------------------
def _truth_reduce(input: Tensor, dim, keepdim: bool, npfn) -> Tensor:
    a = input._data
    if dim is None:
        axes = None
    else:
        from ._core import dims_arg

        axes = dims_arg(dim, a.ndim) if a.ndim else None
    out = np.asarray(npfn(a, axis=axes, keepdims=keepdim))
    if a.dtype == np.uint8:
        out = out.astype(np.uint8)
    return Tensor._make(out)


@op()
def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001 - torch's name
    """True if any element (over ``dim``, if given) is nonzero; a bool tensor (uint8 stays uint8)."""
    return _truth_reduce(input, dim, keepdim, np.any)


@op()
def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001 - torch's name
    """True if every element (over ``dim``, if given) is nonzero; a bool tensor (uint8 stays uint8)."""
    return _truth_reduce(input, dim, keepdim, np.all)


# --- where, masked_fill -------------------------------------------------------------------------------------
class WhereBackward0(Node):
    __slots__ = ("a_shape", "b_shape")

    def backward(self, g):
        (cond,) = self.saved()
        cond = _arr(cond)
        nxt = self._next
        ga = sum_to(_full(_keep(g, cond), g.shape), self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(_full(_keep(g, ~cond), g.shape), self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


def _where_dtype(x, y):
    """torch's result dtype of where's two value operands (tensors or numbers)."""
    if isinstance(x, Tensor):
        return _dtype.result_dtype(x.dtype, x._data.ndim, y).np
    if isinstance(y, Tensor):
        return _dtype.result_dtype(y.dtype, y._data.ndim, x).np
    if isinstance(x, float) or isinstance(y, float):
        return _dtype.get_default_dtype().np
    if isinstance(x, bool) and isinstance(y, bool):
        return np.dtype(np.bool_)
    return np.dtype(np.int64)


@op(method=False)
def where(condition: Tensor, input=None, other=None) -> Tensor:
    """``input`` where ``condition`` is True, else ``other``, broadcast together.

    Args:
        condition: a bool tensor.
        input: a tensor or a number (a number is an edge ``(None, 0)`` of ``WhereBackward0``).
        other: a tensor or a number.

    Returns:
        A tensor of the promoted dtype of ``input`` and ``other``; with only ``condition``, the indices of its
        nonzero elements as a tuple of int64 tensors.

    Raises:
        RuntimeError: ``condition`` is not bool, or the shapes do not broadcast.

    Example:
        >>> import gradlens.engine as torch
        >>> x = torch.tensor([-1., 2.])
        >>> torch.where(x > 0, x, 0.)
        tensor([0., 2.])
    """
    c = condition._data
    if input is None and other is None:
        return tuple(Tensor._make(i.astype(np.int64)) for i in np.nonzero(c))
    if c.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{_type_name(c)}")
    x, y = _scalar(input), _scalar(other)
    dt = _where_dtype(x, y)
    xd = x._data.astype(dt, copy=False) if isinstance(x, Tensor) else x
    yd = y._data.astype(dt, copy=False) if isinstance(y, Tensor) else y
    try:
        out = np.where(c, xd, yd)
    except ValueError:
        try:
            xy = np.broadcast_shapes(np.shape(xd), np.shape(yd))
        except ValueError:
            raise broadcast_error(np.shape(xd), np.shape(yd)) from None
        raise broadcast_error(c.shape, xy) from None
    if out.dtype != dt:
        out = out.astype(dt)
    xt, yt = isinstance(x, Tensor), isinstance(y, Tensor)
    if xt and yt:
        res, node = _rec(out, WhereBackward0, x, y)
    elif xt:
        res, node = _rec(out, WhereBackward0, x)
        if node is not None:
            node._next = (node._next[0], NONE)
    elif yt:
        res, node = _rec(out, WhereBackward0, y)
        if node is not None:
            node._next = (NONE, node._next[0])
    else:
        return Tensor._make(out)
    if node is not None:
        node.a_shape, node.b_shape = np.shape(xd), np.shape(yd)
        node.save(condition)
    return res


def _where_method(self: Tensor, condition: Tensor, other) -> Tensor:
    """``self.where(condition, other)`` is ``torch.where(condition, self, other)``."""
    return where(condition, self, other)


class MaskedFillBackward0(Node):
    __slots__ = ("shape",)

    def backward(self, g):
        (mask,) = self.saved()
        return (sum_to(_keep(g, ~_arr(mask)), self.shape),)


class MaskedFillBackward1(Node):
    __slots__ = ("shape",)

    def backward(self, g):
        (mask,) = self.saved()
        m = _arr(mask)
        nxt = self._next
        ga = sum_to(_keep(g, ~m), self.shape) if nxt[0][0] is not None else None
        gv = None
        if nxt[1][0] is not None:
            gv = _keep(g, m).sum()
            if not isinstance(gv, Tensor):
                gv = np.asarray(gv)
        return ga, gv


@op()
def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """A copy of ``input`` with ``value`` where ``mask`` is True.

    Args:
        input: the source tensor.
        mask: a bool tensor broadcastable with ``input``.
        value: a number (``MaskedFillBackward0``) or a 0-d tensor (``MaskedFillBackward1``).

    Returns:
        A tensor of ``input``'s dtype; the gradient is zero where ``mask`` is True.

    Raises:
        RuntimeError: ``mask`` is not bool, or ``value`` is a tensor with dimensions.

    Example:
        >>> import gradlens.engine as torch
        >>> x = torch.tensor([1., -1.])
        >>> x.masked_fill(x < 0, 0.)
        tensor([1., 0.])
    """
    m = mask._data
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{'long int' if m.dtype == np.int64 else m.dtype}")
    a = input._data
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got tensor "
                               f"with {value._data.ndim} dimension(s).")
        v = value._data.astype(a.dtype)
    else:
        v = _scalar(value)
        if a.dtype.kind in "iu" and isinstance(v, float):
            v = int(v) if math.isfinite(v) else v
    try:
        out = np.where(m, v, a)
    except ValueError:
        raise broadcast_error(a.shape, m.shape) from None
    if out.dtype != a.dtype:
        out = out.astype(a.dtype)
    if isinstance(value, Tensor):
        res, node = _rec(out, MaskedFillBackward1, input, value)
    else:
        res, node = _rec(out, MaskedFillBackward0, input)
    if node is not None:
        node.shape = a.shape
        node.save(mask)
    return res


# --- lerp, nan_to_num ---------------------------------------------------------------------------------------
class LerpBackward0(Node):
    __slots__ = ("weight", "a_shape", "b_shape")
    _saves = False

    def backward(self, g):
        w = self.weight
        nxt = self._next
        ga = sum_to(g * (1 - w), self.a_shape) if nxt[0][0] is not None else None
        gb = sum_to(g * w, self.b_shape) if nxt[1][0] is not None else None
        return ga, gb


class LerpBackward1(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        a, b, w = self.saved()
        nxt = self._next
        ga = sum_to(_full(g * (1 - w), g.shape), self.shapes[0]) if nxt[0][0] is not None else None
        gb = sum_to(_full(g * w, g.shape), self.shapes[1]) if nxt[1][0] is not None else None
        gw = sum_to(_full(g * (b - a), g.shape), self.shapes[2]) if nxt[2][0] is not None else None
        return ga, gb, gw


@op()
def lerp(input: Tensor, end: Tensor, weight) -> Tensor:
    """``input + weight * (end - input)``; ``weight`` is a number or a tensor of the same dtype."""
    ad, bd = input._data, end._data
    for name, t in (("end", end), ("weight", weight)):
        if isinstance(t, Tensor) and t._data.dtype != ad.dtype:
            raise RuntimeError(f"expected dtype {_c_name(ad)} for `{name}` but got dtype {_c_name(t._data)}")
    if ad.dtype.kind != "f":
        kernel = "lerp_kernel_tensor" if isinstance(weight, Tensor) else "lerp_kernel_scalar"
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{_type_name(ad)}'")
    if isinstance(weight, Tensor):
        wd = weight._data
        try:
            diff = bd - ad
            # torch's two-branch formula (exact at both ends)
            out = np.where(np.abs(wd) < 0.5, ad + wd * diff, bd - diff * (1 - wd))
        except ValueError:
            raise broadcast_error(ad.shape, wd.shape) from None
        res, node = _rec(out.astype(ad.dtype, copy=False), LerpBackward1, input, end, weight)
        if node is not None:
            node.shapes = (ad.shape, bd.shape, wd.shape)
            node.save(input, end, weight)
        return res
    w = _scalar(weight)
    try:
        out = ad + w * (bd - ad) if builtins.abs(w) < 0.5 else bd - (bd - ad) * (1 - w)
    except ValueError:
        raise broadcast_error(ad.shape, bd.shape) from None
    res, node = _rec(out, LerpBackward0, input, end)
    if node is not None:
        node.weight, node.a_shape, node.b_shape = w, ad.shape, bd.shape
    return res


class NanToNumBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (_keep(g, np.isfinite(_arr(x))),)


@op()
def nan_to_num(input: Tensor, nan: float = 0.0, posinf=None, neginf=None) -> Tensor:
    """Replace nan by ``nan``, +inf by ``posinf`` and -inf by ``neginf`` (default: the dtype's extremes)."""
    a = input._data
    if a.dtype.kind != "f":
        return Tensor._make(a.copy())
    out = np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)
    res, node = _rec(out, NanToNumBackward0, input)
    if node is not None:
        node.save(input)
    return res


# --- Python operators ---------------------------------------------------------------------------------------
_NUMBER = (int, float, bool, np.generic)


def _install_operators() -> None:
    def binop(fn):
        def method(self, other):
            if not isinstance(other, (Tensor, *_NUMBER, np.ndarray)):
                return NotImplemented
            if isinstance(other, np.ndarray):
                other = Tensor._make(other)
            return fn(self, other)
        return method

    def rbinop(fn):
        def method(self, other):
            if not isinstance(other, (*_NUMBER, np.ndarray)):
                return NotImplemented
            if isinstance(other, np.ndarray):
                return fn(Tensor._make(other), self)
            return fn(other, self)
        return method

    def rbit(fn):
        def method(self, other):
            if not isinstance(other, (*_NUMBER, np.ndarray)):
                return NotImplemented
            return fn(self, other)  # bitwise ops are commutative
        return method

    Tensor.__pow__ = binop(pow)
    Tensor.__rpow__ = rbinop(pow)
    Tensor.__floordiv__ = binop(floor_divide)
    Tensor.__rfloordiv__ = rbinop(floor_divide)
    Tensor.__mod__ = binop(remainder)
    Tensor.__rmod__ = rbinop(remainder)
    Tensor.__eq__ = binop(eq)
    Tensor.__ne__ = binop(ne)
    Tensor.__lt__ = binop(lt)
    Tensor.__le__ = binop(le)
    Tensor.__gt__ = binop(gt)
    Tensor.__ge__ = binop(ge)
    Tensor.__hash__ = Tensor.__dict__.get("__hash__") or (lambda self: id(self))
    Tensor.__abs__ = abs
    Tensor.__invert__ = bitwise_not
    Tensor.__and__ = binop(bitwise_and)
    Tensor.__rand__ = rbit(bitwise_and)
    Tensor.__or__ = binop(bitwise_or)
    Tensor.__ror__ = rbit(bitwise_or)
    Tensor.__xor__ = binop(bitwise_xor)
    Tensor.__rxor__ = rbit(bitwise_xor)
    Tensor.where = _where_method


_install_operators()
