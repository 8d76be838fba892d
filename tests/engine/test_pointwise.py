"""Parity of elementwise ops with torch: values, dtypes, node names and gradients, including torch's
conventions at kinks and ties, integer/bool dtype rules, operators, and second derivatives."""

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, graph_signature, rand

F32_F64 = [np.float32, np.float64]
SHAPES = [(3, 4), (), (0, 3), (2, 1, 3)]

# name -> needs positive input
UNARY_FLOAT = {
    "exp": False,
    "log": True,
    "log1p": True,
    "expm1": False,
    "sqrt": True,
    "rsqrt": True,
    "reciprocal": True,
    "tanh": False,
    "sigmoid": False,
    "sin": False,
    "cos": False,
    "erf": False,
    "abs": False,
    "sign": False,
    "relu": False,
    "square": False,
    "floor": False,
    "ceil": False,
    "round": False,
    "trunc": False,
    "frac": False,
    "neg": False,
}


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(UNARY_FLOAT))
def test_unary_function_and_method(name, shape, dtype):
    x = rand(*shape, dtype=dtype, positive=UNARY_FLOAT[name])
    check_parity(lambda lib, t: getattr(lib, name)(t), x)
    check_parity(lambda lib, t: getattr(t, name)(), x)


@pytest.mark.parametrize(
    "name",
    [
        "exp",
        "log",
        "log1p",
        "expm1",
        "sqrt",
        "rsqrt",
        "reciprocal",
        "tanh",
        "sigmoid",
        "sin",
        "cos",
        "erf",
        "abs",
        "sign",
        "relu",
        "square",
        "floor",
        "ceil",
        "round",
        "trunc",
        "isnan",
        "isinf",
        "isfinite",
        "logical_not",
        "nan_to_num",
    ],
)
@pytest.mark.parametrize("data", [[-3, 0, 2, 5], [True, False, True]])
def test_unary_int_and_bool_dtypes(name, data):
    arr = np.array(data)
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    try:
        getattr(torch.tensor(arr), name)()
    except Exception:  # noqa: BLE001 - the op is not defined for this dtype in torch: compare the error
        check_error(lambda lib, t: getattr(t, name)(), arr)
        return
    check_parity(lambda lib, t: getattr(t, name)(), arr)


def test_kinks_match_torch():
    # relu'(0) = 0, abs'(0) = 0, sign' = 0, sqrt'(0) = inf, x**0 has zero grad, x**0.5 at 0 is inf
    x = np.array([-1.0, 0.0, 0.0, 2.0, 2.0])
    for fn in (
        lambda t: t.relu(),
        lambda t: t.abs(),
        lambda t: t.sign(),
        lambda t: t.sqrt(),
        lambda t: t**0,
        lambda t: t**0.5,
        lambda t: t**1,
        lambda t: t.log(),
        lambda t: t.rsqrt(),
        lambda t: t.reciprocal(),
        lambda t: t.frac(),
        lambda t: t.floor(),
    ):
        check_parity(lambda lib, t, fn=fn: fn(t), x)


def test_sigmoid_and_tanh_are_stable():
    x = np.array([-800.0, -40.0, -1e-8, 0.0, 1e-8, 40.0, 800.0])
    check_parity(lambda lib, t: t.sigmoid(), x)
    check_parity(lambda lib, t: t.tanh(), x)
    check_parity(lambda lib, t: t.sigmoid(), x.astype(np.float32))


def test_nan_and_inf_inputs():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0])
    check_parity(lambda lib, t: t.sign(), x)
    check_parity(lambda lib, t: t.exp(), x)
    check_parity(lambda lib, t: t.relu(), x)
    check_parity(lambda lib, t: t.nan_to_num(), x)
    check_parity(lambda lib, t: t.nan_to_num(0.5, 3.0, -3.0), x)
    check_parity(lambda lib, t: t.nan_to_num(), x.astype(np.float32))
    check_parity(lambda lib, t: (t.isnan(), t.isinf(), t.isfinite()), x, grad=False)


# --- more float ops -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "name",
    [
        "log2",
        "log10",
        "exp2",
        "sinh",
        "cosh",
        "tan",
        "asin",
        "acos",
        "atan",
        "arcsin",
        "erfc",
        "logit",
        "sgn",
    ],
)
def test_more_unary(name, dtype):
    x = rand(3, 4, dtype=dtype, low=0.05, high=0.95)
    if name == "sgn":  # torch's gradient is a ZeroTensor, which cannot be compared directly
        check_parity(lambda lib, t: lib.sgn(t) + t, x)
        check_parity(lambda lib, t: t.sgn(), x, grad=False)
        return
    check_parity(lambda lib, t: getattr(lib, name)(t), x)
    check_parity(lambda lib, t: getattr(t, name)(), rand(dtype=dtype, low=0.05, high=0.95))
    check_parity(lambda lib, t: getattr(t, name)(), rand(0, 2, dtype=dtype))


def test_more_unary_edges():
    x = np.array([-0.5, 0.0, 0.3, 1.0, 1.5])
    check_parity(lambda lib, t: (t.logit(), t.asin(), t.acos(), t.log2()), x)
    check_parity(lambda lib, t: t.logit(eps=0.1), x)
    check_parity(lambda lib, t: lib.logit(t, 0.25), x.astype(np.float32))
    check_parity(
        lambda lib, t: (t.signbit(), t.count_nonzero(), t.count_nonzero(0)), np.array([-0.0, 0.0, -1.0, 2.0])
    )
    check_parity(lambda lib, i: (i.exp2(), i.sinh(), i.count_nonzero()), np.array([1, 0, 3]))


@pytest.mark.parametrize("name", ["atan2", "arctan2", "logaddexp"])
def test_more_binary(name):
    check_parity(lambda lib, a, b: getattr(lib, name)(a, b), rand(3, 4), rand(4))
    check_parity(lambda lib, a, b: getattr(a, name)(b), rand(dtype=np.float32), rand(3, dtype=np.float32))
    check_parity(
        lambda lib, a, b: getattr(lib, name)(a, b), np.array([0.0, 1.0, -1.0]), np.array([0.0, -1.0, 1e3])
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t.log2(),
        lambda t: t.sinh() * t.cosh(),
        lambda t: t.tan(),
        lambda t: t.asin() + t.acos() * t,
        lambda t: t.atan(),
        lambda t: t.erfc(),
        lambda t: t.logit(),
        lambda t: t.atan2(t * t + 1),
        lambda t: t.logaddexp(t * 3),
    ],
)
def test_more_second_derivative(fn):
    def f(lib, x):
        (g,) = lib.autograd.grad(fn(x).sum(), x, create_graph=True)
        return g

    check_parity(f, rand(5, low=0.1, high=0.9), graph=False)


# --- pow ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "expr",
    [
        lambda lib, x, y: x**2,
        lambda lib, x, y: x**3,
        lambda lib, x, y: x**-1,
        lambda lib, x, y: x**0.5,
        lambda lib, x, y: x**y,
        lambda lib, x, y: 2**x,
        lambda lib, x, y: 0.5**y,
        lambda lib, x, y: x.pow(2),
        lambda lib, x, y: lib.pow(x, y),
        lambda lib, x, y: lib.pow(x, 2.5),
        lambda lib, x, y: lib.pow(3, y),
        lambda lib, x, y: x.square(),
        lambda lib, x, y: lib.square(y),
    ],
)
def test_pow_forms(expr, dtype):
    check_parity(expr, rand(3, 4, dtype=dtype, positive=True), rand(4, dtype=dtype))


def test_pow_node_names_and_edges():
    x, y = rand(3, positive=True), rand(3)
    check_parity(lambda lib, a, b: a ** lib.tensor(2.0, dtype=lib.float64), x, y)  # (None, 0) edge
    check_parity(lambda lib, a, b: lib.tensor(2.0, dtype=lib.float64) ** b, x, y)
    check_parity(lambda lib, a, b: a**b, x, rand())  # broadcast a 0-d exponent
    check_parity(lambda lib, a, b: a**True, x, y)


def test_pow_zero_base_gradients():
    # d/dy 0**y is 0 where y >= 0 (torch masks log(0)), and -inf where y < 0
    check_parity(
        lambda lib, y: lib.tensor([0.0, 0.0, 0.0], dtype=lib.float64) ** y, np.array([-1.0, 0.0, 2.0])
    )
    check_parity(lambda lib, y: 0**y, np.array([-1.0, 0.0, 2.0]))
    check_parity(lambda lib, x, y: x**y, np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0]))


@pytest.mark.parametrize(
    "expr",
    [
        lambda lib, i: i**2,
        lambda lib, i: i**2.0,
        lambda lib, i: i**0.5,
        lambda lib, i: 2**i,
        lambda lib, i: 2.5**i,
        lambda lib, i: i**i,
        lambda lib, i: i.square(),
        lambda lib, i: lib.tensor([True, False]) ** 2,
        lambda lib, i: i ** lib.tensor([1.5, 2.0, 0.5, 1.0]),
    ],
)
def test_pow_int_dtypes(expr):
    check_parity(expr, np.array([1, 0, 2, 5]))


def test_pow_errors():
    check_error(lambda lib, i: i**-1, np.array([1, 2]), match="negative integer powers")
    check_error(lambda lib, x, y: x**y, rand(3), rand(4), match="must match the size")


# --- clamp --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "expr",
    [
        lambda lib, x: x.clamp(-0.5, 0.5),
        lambda lib, x: x.clamp(min=0.0),
        lambda lib, x: x.clamp(max=0.0),
        lambda lib, x: lib.clamp(x, -1, 1),
        lambda lib, x: x.clip(-1, 1),
        lambda lib, x: lib.clip(x, max=0.2),
        lambda lib, x: x.clamp(1.0, -1.0),
        lambda lib, x: x.clamp_min(0.1),
        lambda lib, x: lib.clamp_max(x, 0.1),
        lambda lib, x: x.clamp(0, 0),
    ],
)
def test_clamp_numbers(expr, dtype):
    check_parity(expr, rand(3, 4, dtype=dtype))


def test_clamp_gradient_is_inclusive_at_bounds():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    check_parity(lambda lib, t: t.clamp(0.0, 1.0), x)
    check_parity(lambda lib, t: t.clamp_min(0.0), x)
    check_parity(lambda lib, t: t.clamp_max(1.0), x)
    check_parity(
        lambda lib, t: lib.clamp(t, lib.zeros(5, dtype=lib.float64), lib.ones(5, dtype=lib.float64)), x
    )


@pytest.mark.parametrize(
    "expr",
    [
        lambda lib, x, lo, hi: x.clamp(lo, hi),
        lambda lib, x, lo, hi: x.clamp(min=lo),
        lambda lib, x, lo, hi: x.clamp(max=hi),
        lambda lib, x, lo, hi: lib.clamp(x, hi, lo),
        lambda lib, x, lo, hi: x.clamp_min(lo),
        lambda lib, x, lo, hi: x.clamp_max(hi),
        lambda lib, x, lo, hi: lib.clip(x, min=lo.detach()),
    ],
)
def test_clamp_tensors(expr):
    check_parity(expr, rand(3, 4), rand(4, low=-1.0, high=0.0), rand(3, 1, low=0.0, high=1.0))


def test_clamp_dtypes_and_errors():
    check_parity(lambda lib, i: (i.clamp(0, 3), i.clamp(0.5, 3), i.clamp(max=2)), np.array([-3, 0, 2, 5]))
    check_error(lambda lib, x: x.clamp(), rand(3), match="At least one of 'min' or 'max'")


# --- rounding, frac -----------------------------------------------------------------------------------------
def test_round_half_even_and_decimals():
    x = np.array([0.5, 1.5, 2.5, -2.5, 1.2345, -0.049])
    check_parity(lambda lib, t: t.round(), x)
    check_parity(lambda lib, t: t.round(decimals=2), x)
    check_parity(lambda lib, t: lib.round(t, decimals=1), x.astype(np.float32))
    check_error(lambda lib, i: i.round(decimals=1), np.array([1, 2]), match="not implemented")
    check_error(lambda lib, i: i.frac(), np.array([1, 2]), match="not implemented")


# --- floor_divide, remainder --------------------------------------------------------------------------------
def test_floor_divide_values_and_not_implemented_node():
    a, b = np.array([-7.0, 7.0, -7.5, 7.5, 0.0]), np.array([2.0, -2.0, 2.0, 2.0, 3.0])
    check_parity(lambda lib, x, y: x // y, a, b, grad=False)
    check_parity(
        lambda lib, x, y: (lib.floor_divide(x, 2), x // -2.5, 5 // y, x.floor_divide(y)), a, b, grad=False
    )
    check_parity(lambda lib, i: (i // 2, i // -3, 7 // (i + 10), i // 2.0), np.array([-7, 7, 0, 5]))
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    for x_t, x_g in ((torch.tensor(a, requires_grad=True), ge.tensor(a, requires_grad=True)),):
        for f in (lambda t: t // 2, lambda t: t // t, lambda t: 2 // t):
            assert graph_signature(f(x_g)) == graph_signature(f(x_t))
    check_error(lambda lib, x: (x // 2).sum().backward(), a, match="derivative for aten::floor_divide is not")


def test_integer_division_by_zero():
    check_error(lambda lib, i: i // 0, np.array([1, 2]), match="ZeroDivisionError")
    check_error(lambda lib, i: i % 0, np.array([1, 2]), match="ZeroDivisionError")
    check_error(lambda lib, i: i // lib.tensor([1, 0]), np.array([1, 2]), match="ZeroDivisionError")
    check_parity(lambda lib, x: (x // 0, x % 0), np.array([-1.0, 0.0, 1.0]), grad=False)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("a_shape,b_shape", [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (3,)), ((0, 2), (2,))])
def test_remainder(a_shape, b_shape, dtype):
    a, b = rand(*a_shape, dtype=dtype, low=-5, high=5), rand(*b_shape, dtype=dtype, positive=True)
    check_parity(lambda lib, x, y: x % y, a, b)
    check_parity(lambda lib, x, y: lib.remainder(x, -y), a, b)
    check_parity(lambda lib, x, y: x.remainder(1.5) + (x % -2), a, b)


def test_fmod():
    a, b = rand(3, 4, low=-5, high=5), rand(4, positive=True)
    check_parity(lambda lib, x, y: (lib.fmod(x, y), x.fmod(-y), x.fmod(1.5), lib.fmod(x, -2)), a, b)
    check_parity(lambda lib, i: (i.fmod(3), i.fmod(-3), i.fmod(2.5)), np.array([-7, 7, 0, 5]))


def test_remainder_signs_and_ints():
    check_parity(lambda lib, x: (x % 3, x % -3), np.array([-7.0, 7.0, -6.0, 0.5]))
    check_parity(
        lambda lib, i: (i % 3, i % -3, i % lib.tensor([2, 3, 4, 5]), i % 2.5), np.array([-7, 7, 0, 5])
    )
    check_parity(lambda lib, x: 2 % x, np.array([1.5, -1.5, 3.0]), grad=False)


# --- maximum / minimum --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "a_shape,b_shape", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (3,)), ((0, 3), (3,))]
)
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum(name, a_shape, b_shape, dtype):
    check_parity(
        lambda lib, x, y: getattr(lib, name)(x, y), rand(*a_shape, dtype=dtype), rand(*b_shape, dtype=dtype)
    )
    check_parity(
        lambda lib, x, y: getattr(x, name)(y), rand(*a_shape, dtype=dtype), rand(*b_shape, dtype=dtype)
    )


def test_maximum_ties_split_evenly():
    a, b = np.array([1.0, 2.0, 3.0, np.nan]), np.array([1.0, 3.0, 2.0, 0.0])
    for expr in (
        lambda lib, x, y: lib.maximum(x, y),
        lambda lib, x, y: lib.minimum(x, y),
        lambda lib, x, y: lib.max(x, y),
        lambda lib, x, y: lib.min(x, y),
    ):
        check_parity(expr, a, b)


def test_maximum_errors_and_dtypes():
    check_error(lambda lib, x: lib.maximum(x, 1.0), rand(3), match="must be Tensor")
    check_parity(lambda lib, x: lib.maximum(lib.tensor([1, 5, -2]), x), rand(3, dtype=np.float32))


# --- comparisons, logical, bitwise --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,opfn",
    [
        ("eq", lambda a, b: a == b),
        ("ne", lambda a, b: a != b),
        ("lt", lambda a, b: a < b),
        ("le", lambda a, b: a <= b),
        ("gt", lambda a, b: a > b),
        ("ge", lambda a, b: a >= b),
    ],
)
def test_comparisons(name, opfn):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    check_parity(
        lambda lib, x, y: (
            opfn(x, y),
            getattr(lib, name)(x, y),
            getattr(x, name)(y),
            opfn(x, 2),
            opfn(2.0, x),
            opfn(x, lib.tensor([1, 2, 3])),
        ),
        a,
        b,
    )
    check_parity(lambda lib, x: opfn(x, 2.5), np.array([1, 2, 3]))
    check_error(lambda lib, x, y: opfn(x, y), rand(3), rand(4), match="must match the size")


def test_eq_with_non_tensors_and_hash():
    x = ge.tensor([1.0, 2.0])
    assert (x == None) is False  # noqa: E711 - torch's behaviour
    assert (x != "a") is True
    assert len({x, ge.tensor([1.0, 2.0])}) == 2
    assert {x: 1}[x] == 1


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
def test_logical_binary(name):
    a, b = np.array([1.5, 0.0, -2.0, 0.0]), np.array([True, True, False, False])
    check_parity(lambda lib, x, y: (getattr(lib, name)(x, y), getattr(x, name)(y)), a, b)
    check_parity(lambda lib, x: getattr(lib, name)(x, lib.tensor([1, 0, 0, 2])), a)


def test_logical_not_and_bitwise_operators():
    b, c, i = np.array([True, False, True]), np.array([True, True, False]), np.array([-3, 0, 6])
    check_parity(
        lambda lib, x, y: (
            ~x,
            x & y,
            x | y,
            x ^ y,
            x & True,
            False | x,
            True ^ x,
            lib.logical_not(x),
            lib.bitwise_and(x, y),
            lib.bitwise_not(y),
        ),
        b,
        c,
    )
    check_parity(lambda lib, x: (~x, x & 3, x | 8, x ^ 5, 3 & x, x.bitwise_not()), i)
    check_parity(lambda lib, x, y: x & y, b, i)
    check_error(lambda lib, x: ~x, rand(3), match="only implemented on integer and Boolean")
    check_error(lambda lib, x: x & x, rand(3), match="not implemented for")


# --- where, masked_fill -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "expr",
    [
        lambda lib, x, y: lib.where(x > 0, x, y),
        lambda lib, x, y: lib.where(x > 0, x, 0.0),
        lambda lib, x, y: lib.where(y > 0, 1.0, y),
        lambda lib, x, y: lib.where(y > 0, x, y),
        lambda lib, x, y: x.where(x > 0, y),
        lambda lib, x, y: x.where(x < 0, -1.0),
        lambda lib, x, y: lib.where(lib.tensor(True), x, y),
        lambda lib, x, y: lib.where(x > 0, y.sum(), x),
    ],
)
def test_where(expr, dtype):
    check_parity(expr, rand(3, 4, dtype=dtype), rand(4, dtype=dtype))


def test_where_scalars_dtypes_and_errors():
    c = np.array([True, False, True])
    check_parity(
        lambda lib, m: (
            lib.where(m, 1.0, 0.0),
            lib.where(m, 1, 0),
            lib.where(m, lib.tensor([1, 2, 3]), 0.5),
            lib.where(m, lib.tensor([1, 2, 3]), lib.tensor([0.5, 1.0, 2.0])),
        ),
        c,
    )
    check_parity(lambda lib, m: lib.where(m), c)
    check_error(lambda lib, x: lib.where(x, x, x), rand(3), match="where expected condition to be a boolean")
    check_error(lambda lib, x: lib.where(x > 0, x, lib.ones(4)), rand(3), match="must match the size")


@pytest.mark.parametrize("dtype", F32_F64)
def test_masked_fill(dtype):
    x = rand(3, 4, dtype=dtype)
    check_parity(lambda lib, t: t.masked_fill(t > 0, 0.0), x)
    check_parity(lambda lib, t: lib.masked_fill(t, t < 0, float("-inf")), x)
    check_parity(
        lambda lib, t: t.masked_fill(lib.tensor([True, False, True, False]), 2.0), x
    )  # broadcast mask
    check_parity(lambda lib, t, v: t.masked_fill(t > 0, v), x, rand(dtype=dtype))  # MaskedFillBackward1
    check_parity(lambda lib, t: t.masked_fill(lib.ones(2, 3, 4, dtype=lib.bool), 1.5), x)  # mask is bigger


def test_masked_fill_dtypes_and_errors():
    check_parity(lambda lib, i: i.masked_fill(i > 1, 1.5), np.array([0, 1, 2, 3]))
    check_error(
        lambda lib, x: x.masked_fill(lib.tensor([1, 0, 1]), 0.0), rand(3), match="only supports boolean"
    )
    check_error(lambda lib, x: x.masked_fill(x > 0, lib.ones(3)), rand(3), match="0-dimensional value tensor")


# --- lerp, any, all -----------------------------------------------------------------------------------------
def test_lerp():
    check_parity(lambda lib, a, b: lib.lerp(a, b, 0.3), rand(3, 4), rand(4))
    check_parity(lambda lib, a, b, w: a.lerp(b, w), rand(3, 4), rand(4), rand(3, 1))


@pytest.mark.parametrize("name", ["any", "all"])
def test_any_all(name):
    x = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    check_parity(
        lambda lib, t: (
            getattr(t, name)(),
            getattr(lib, name)(t),
            getattr(t, name)(0),
            getattr(t, name)(dim=1, keepdim=True),
            getattr(t, name)(-1),
            getattr(t, name)(dim=(0, 1)),
        ),
        x,
        grad=False,
    )
    check_parity(lambda lib, t: (getattr(t, name)(), getattr(t, name)(0)), np.zeros((0, 3)), grad=False)
    check_parity(lambda lib: getattr(lib.tensor([1, 0], dtype=lib.uint8), name)())
    check_error(lambda lib, t: getattr(t, name)(2), x, match="Dimension out of range")


# --- second derivatives -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t**3,
        lambda t: t**2.5,
        lambda t: 2**t,
        lambda t: t ** (t + 1),
        lambda t: t.exp(),
        lambda t: t.log(),
        lambda t: t.tanh(),
        lambda t: t.sigmoid(),
        lambda t: t.sqrt(),
        lambda t: t.rsqrt(),
        lambda t: t.reciprocal(),
        lambda t: t.sin() * t.cos(),
        lambda t: t.erf(),
        lambda t: t.log1p(),
        lambda t: t.expm1(),
        lambda t: t.relu() * t,
        lambda t: t.abs() * t,
        lambda t: t.clamp(0.8, 1.5) ** 2,
        lambda t: t.square(),
    ],
)
def test_second_derivative(fn, dtype):
    def f(lib, x):
        (g,) = lib.autograd.grad(fn(x).sum(), x, create_graph=True)
        return g

    check_parity(f, rand(5, dtype=dtype, positive=True), graph=False)


def test_second_derivative_binary():
    def f(lib, x, y):
        gx, gy = lib.autograd.grad(
            (lib.where(x > 1, x * y, y) + lib.maximum(x, y) ** 2 + x**y).sum(), (x, y), create_graph=True
        )
        return gx * gy

    check_parity(f, rand(6, positive=True), rand(6, positive=True), graph=False)
