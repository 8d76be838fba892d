"""Parity of reductions with torch: sum, mean, max/min, amax/amin, argmax/argmin, var/std, norm, prod,
cumsum, logsumexp, softmax and log_softmax (values, dtypes, node names, gradients, ties, errors)."""

import numpy as np
import pytest

import gradlens.engine as ge

from ..parity import check_error, check_parity, rand

F32_F64 = [np.float32, np.float64]
DIMS = [0, 1, -1, (0, 2), (-1, 0), [1]]


# --- sum, mean ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_all_dims(name, dtype):
    for shape in [(3, 4), (), (0, 3), (2, 3, 4)]:
        x = rand(*shape, dtype=dtype)
        check_parity(lambda lib, t: getattr(t, name)(), x)
        check_parity(lambda lib, t: getattr(lib, name)(t), x)
        check_parity(lambda lib, t: getattr(t, name)(dim=None), x)  # an explicit dim: the *Backward1 node


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_over_dims(name, dim, keepdim):
    check_parity(lambda lib, t: getattr(t, name)(dim, keepdim=keepdim), rand(2, 3, 4))
    check_parity(lambda lib, t: getattr(lib, name)(t, dim, keepdim), rand(2, 3, 4, dtype=np.float32))


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_zero_size_and_scalar_dims(name):
    check_parity(lambda lib, t: getattr(t, name)(0), rand(0, 3))
    check_parity(lambda lib, t: getattr(t, name)(1, keepdim=True), rand(0, 3))
    check_parity(lambda lib, t: (getattr(t, name)(0), getattr(t, name)(-1, True)), rand())
    check_parity(lambda lib, t: getattr(t, name)(()), rand(2, 3))


def test_sum_dtypes():
    check_parity(
        lambda lib: (lib.tensor([True, True, False]).sum(), lib.tensor([1, 2], dtype=lib.int32).sum())
    )
    check_parity(lambda lib: lib.tensor([[1, 2], [3, 4]]).sum(0, dtype=lib.float32))
    check_parity(lambda lib, t: t.sum(dtype=lib.float64), rand(3, 4, dtype=np.float32))
    check_parity(lambda lib, t: t.sum(1, dtype=lib.float64) * 2, rand(3, 4, dtype=np.float32))
    check_parity(lambda lib, t: t.mean(dtype=lib.float64), rand(3, 4, dtype=np.float32))
    check_parity(lambda lib: lib.tensor([1, 2, 4]).mean(dtype=lib.float32))


def test_sum_mean_errors():
    check_error(lambda lib, t: t.sum(2), rand(2, 3), match="Dimension out of range")
    check_error(lambda lib, t: t.mean(-3), rand(2, 3), match="Dimension out of range")
    check_error(lambda lib, t: t.sum(1), rand(), match="Dimension out of range")
    check_error(lambda lib, t: t.sum((0, 0)), rand(2, 3), match="appears multiple times")
    check_error(lambda lib, t: t.mean((0, -2)), rand(2, 3), match="appears multiple times")
    check_error(lambda lib, t: t.mean(), np.array([1, 2, 3]), match="could not infer output dtype")
    check_error(lambda lib, t: t.sum(keepdim=True), rand(2, 3))


# --- max, min, amax, amin -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_all(name, dtype):
    check_parity(lambda lib, t: getattr(t, name)(), rand(3, 4, dtype=dtype))
    check_parity(lambda lib, t: getattr(lib, name)(t), rand(dtype=dtype))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim(name, dim, keepdim):
    def f(lib, t):
        res = getattr(t, name)(dim, keepdim)
        values, indices = res  # tuple unpacking
        assert res.values is values and res.indices is indices
        return res

    check_parity(f, rand(3, 4))
    check_parity(lambda lib, t: getattr(lib, name)(t, dim=dim, keepdim=keepdim), rand(3, 4, dtype=np.float32))
    check_parity(lambda lib, t: getattr(t, name)(dim=dim)[0] * 2, rand(2, 3))


def test_max_ties_follow_torch():
    x = np.array([[-1.0, 2.0, 2.0], [3.0, 3.0, 0.0]])
    # all dims: the gradient is split evenly among tied maxima
    check_parity(lambda lib, t: t.max(), x)
    check_parity(lambda lib, t: t.min(), np.array([1.0, 0.0, 0.0, 0.0]))
    # with dim: the gradient goes to the returned index (the first of the ties)
    check_parity(lambda lib, t: t.max(1), x)
    check_parity(lambda lib, t: t.min(0), np.array([[1.0, 1.0], [1.0, 0.0]]))
    # amax/amin: split evenly within each reduced slice
    check_parity(lambda lib, t: t.amax(1), x)
    check_parity(lambda lib, t: t.amax(), x)
    check_parity(lambda lib, t: t.amin((0, 1), keepdim=True), np.array([[0.0, 0.0], [1.0, 0.0]]))


def test_max_nan_propagates():
    y = np.array([[1.0, np.nan, np.nan, 2.0], [1.0, 3.0, 3.0, 0.0]])
    check_parity(lambda lib, t: t.max(), y)  # the nans share the gradient
    check_parity(lambda lib, t: t.amax(1), y)  # a nan slice gets nan gradients
    check_parity(lambda lib, t: t.amin(), y)
    check_parity(lambda lib, t: t.max(1), y)
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    check_parity(lambda lib, t: (t.max(1), t.argmax(1), t.amax(1)), x, grad=False)
    check_parity(lambda lib, t: t.max(), x, grad=False)


def test_max_int_and_scalar_and_empty():
    i = np.array([[1, 5, 3], [4, 2, 6]])
    check_parity(lambda lib, t: (t.max(), t.min(1), t.max(0, True), t.amax(1), t.argmin(0)), i)
    check_parity(lambda lib, t: (t.max(0), t.min(-1, True)), rand())
    check_parity(lambda lib, t: t.max(1), rand(0, 3))
    check_parity(lambda lib, t: t.amax(1), rand(0, 3))


def test_max_binary_is_maximum():
    check_parity(lambda lib, a, b: (lib.max(a, b), a.min(b), lib.min(a, other=b)), rand(3, 4), rand(4))


def test_max_errors():
    e = np.zeros((0, 3))
    check_error(lambda lib, t: t.max(), e, match="Expected reduction dim to be specified")
    check_error(lambda lib, t: t.min(0), e, match="Expected reduction dim 0 to have non-zero size")
    check_error(lambda lib, t: t.amax(), e, match="Expected reduction dim to be specified")
    check_error(lambda lib, t: t.amin(0), e, match="Expected reduction dim 0 to have non-zero size")
    check_error(lambda lib, t: t.argmax(), e, match="Expected reduction dim to be specified")
    check_error(lambda lib, t: t.argmin(0), e, match="Expected reduction dim 0 to have non-zero size")
    check_error(lambda lib, t: t.max(2), rand(2, 3), match="Dimension out of range")
    check_error(lambda lib, t: t.max(1.0), rand(2, 3))


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [(), 0, -1, (0, 2), [1, 2]])
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin(name, dim, keepdim, dtype):
    check_parity(lambda lib, t: getattr(t, name)(dim, keepdim), rand(2, 3, 4, dtype=dtype))
    check_parity(lambda lib, t: getattr(lib, name)(t, dim=dim, keepdim=keepdim), rand(2, 3, 4, dtype=dtype))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name):
    x = rand(3, 4)
    check_parity(
        lambda lib, t: (
            getattr(t, name)(),
            getattr(lib, name)(t, 1),
            getattr(t, name)(-1, True),
            getattr(t, name)(keepdim=True),
            getattr(t, name)(dim=0),
        ),
        x,
    )
    check_parity(lambda lib, t: (getattr(t, name)(), getattr(t, name)(0)), rand())
    check_parity(lambda lib, t: getattr(t, name)(1), rand(0, 3))
    check_parity(lambda lib, t: getattr(t, name)(0), np.array([[3, 3], [1, 3]]))


# --- var, std -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize(
    "call",
    [
        lambda f, t: f(t),
        lambda f, t: f(t, 1),
        lambda f, t: f(t, -1, keepdim=True),
        lambda f, t: f(t, (0, 2)),
        lambda f, t: f(t, False),
        lambda f, t: f(t, 1, False),
        lambda f, t: f(t, 1, True, True),
        lambda f, t: f(t, dim=0, unbiased=False),
        lambda f, t: f(t, 1, correction=0),
        lambda f, t: f(t, correction=2),
        lambda f, t: f(t, [0, 1], correction=1, keepdim=True),
        lambda f, t: f(t, keepdim=True),
    ],
)
def test_var_std(call, name, dtype):
    x = rand(2, 3, 4, dtype=dtype)
    check_parity(lambda lib, t: call(getattr(lib, name), t), x)
    check_parity(lambda lib, t: call(lambda *a, **k: getattr(a[0], name)(*a[1:], **k), t), x)


def test_std_of_constant_has_zero_grad():
    check_parity(lambda lib, t: (t * 0 + 1).std(), rand(4))
    check_parity(lambda lib, t: (t * 0).std(1), rand(2, 3))


def test_var_std_degenerate_and_errors():
    with pytest.warns(UserWarning, match="degrees of freedom is <= 0"):
        check_parity(lambda lib, t: t.var(), rand(1))
    with pytest.warns(UserWarning):
        check_parity(lambda lib, t: t.std(), rand())
    with pytest.warns(UserWarning):
        check_parity(lambda lib, t: t.var(0), rand(0, 2))
    check_error(lambda lib, t: t.var(), np.array([1, 2, 3]), match="std and var only support floating point")
    check_error(lambda lib, t: t.std(3), rand(2, 3), match="Dimension out of range")


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", ["var_mean", "std_mean"])
def test_var_mean_std_mean(name, dtype):
    x = rand(2, 3, 4, dtype=dtype)
    for call in (
        lambda f, t: f(t),
        lambda f, t: f(t, 1),
        lambda f, t: f(t, (0, 2), keepdim=True),
        lambda f, t: f(t, -1, correction=0),
        lambda f, t: f(t, False),
        lambda f, t: f(t, 1, True, True),
    ):
        check_parity(lambda lib, t, call=call: call(getattr(lib, name), t), x)
    check_parity(lambda lib, t: getattr(lib, name)(t, 1)[1] * 2, x)  # only the mean output is used
    check_parity(lambda lib, t: getattr(lib, name)(t, 1)[0] * 2, x)  # only the first output is used
    check_parity(lambda lib, t: getattr(lib, name)(t * 0, 1), x)

    def second(lib, t):
        v, m = getattr(lib, name)(t, 1)
        (g,) = lib.autograd.grad((v * m).sum(), t, create_graph=True)
        return g

    check_parity(second, x, graph=False)


# --- norm ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "call",
    [
        lambda lib, t: t.norm(),
        lambda lib, t: lib.norm(t),
        lambda lib, t: t.norm(1),
        lambda lib, t: t.norm(2.0),
        lambda lib, t: t.norm(float("inf")),
        lambda lib, t: t.norm(float("-inf")),
        lambda lib, t: t.norm(3),
        lambda lib, t: t.norm(0.5),
        lambda lib, t: t.norm(1.5),
        lambda lib, t: t.norm(-1),
        lambda lib, t: t.norm(dim=1),
        lambda lib, t: t.norm(2, 1, True),
        lambda lib, t: t.norm(p=1, dim=0),
        lambda lib, t: t.norm(p=float("inf"), dim=-1),
        lambda lib, t: t.norm(p="fro", dim=(0, 1)),
        lambda lib, t: lib.norm(t, p=3, dim=0, keepdim=True),
        lambda lib, t: t.norm(dtype=lib.float64),
    ],
)
def test_norm(call, dtype):
    check_parity(call, rand(3, 4, dtype=dtype))


def test_norm_kinks_and_ties():
    z = np.zeros((2, 3))
    x = np.array([[-2.0, 2.0, 0.0], [1.0, -1.0, 0.5]])
    for p in (2, 1, float("inf"), 3, 1.5, 0):
        check_parity(lambda lib, t, p=p: t.norm(p), z)
        check_parity(lambda lib, t, p=p: t.norm(p), x)
        check_parity(lambda lib, t, p=p: t.norm(p, dim=1), x)
    check_parity(lambda lib, t: (t.norm(), t.norm(1, 0)), rand())
    check_parity(lambda lib, t: (t.norm(), t.norm(dim=0)), rand(0, 3))


def test_norm_errors():
    check_error(lambda lib, t: t.norm(), np.array([1, 2]), match="Expected a floating point")
    check_error(lambda lib, t: t.norm(dim=2), rand(2, 3), match="Dimension out of range")


# --- prod, cumsum -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
def test_prod(dtype):
    x = rand(3, 4, dtype=dtype)
    check_parity(lambda lib, t: (t.prod(), lib.prod(t, 1), t.prod(-1, keepdim=True), t.prod(0)), x)
    check_parity(lambda lib, t: (t.prod(), t.prod(0)), rand(dtype=dtype))
    check_parity(lambda lib, t: (t.prod(), t.prod(1)), rand(0, 3, dtype=dtype))


def test_prod_with_zeros_and_ints():
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.0, 2.0, 3.0]])
    check_parity(lambda lib, t: t.prod(), x)
    check_parity(lambda lib, t: t.prod(1), x)
    check_parity(lambda lib, t: t.prod(0, keepdim=True), x)
    check_parity(lambda lib, t: (t.prod(), t.prod(1)), np.array([[1, 2], [3, 4]]))
    check_parity(lambda lib, t: t.prod(dtype=lib.float64), rand(3, dtype=np.float32))


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dim, dtype):
    check_parity(lambda lib, t: t.cumsum(dim), rand(3, 4, dtype=dtype))
    check_parity(lambda lib, t: lib.cumsum(t, dim=dim), rand(2, 0, 3, dtype=dtype))


def test_cumsum_dtypes_scalar_and_errors():
    check_parity(lambda lib, t: (t.cumsum(0), t.cumsum(-1)), rand())
    check_parity(lambda lib, t: t.cumsum(0), np.array([[1, 2], [3, 4]]))
    check_parity(lambda lib: lib.tensor([True, True, False]).cumsum(0))
    check_parity(lambda lib, t: t.cumsum(1, dtype=lib.float64), rand(2, 3, dtype=np.float32))
    check_error(lambda lib, t: t.cumsum(2), rand(2, 3), match="Dimension out of range")
    check_error(lambda lib, t: t.cumsum(), rand(2, 3))


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumprod(dim, dtype):
    check_parity(lambda lib, t: t.cumprod(dim), rand(3, 4, dtype=dtype))
    check_parity(lambda lib, t: lib.cumprod(t, dim=dim), rand(2, 0, 3, dtype=dtype))
    x = np.array([[1.5, 0.0, 2.0, 3.0], [0.0, 2.0, 0.0, 1.0], [2.0, -1.0, 0.5, 0.0]], dtype=dtype)
    check_parity(lambda lib, t: t.cumprod(dim), x)  # zeros: the exact gradient


def test_cumprod_dtypes_scalar_and_second_derivative():
    check_parity(lambda lib, t: (t.cumprod(0), t.cumprod(-1)), rand())
    check_parity(lambda lib, t: t.cumprod(1), np.array([[1, 2], [3, 4]]))
    check_parity(lambda lib, t: t.cumprod(1, dtype=lib.float64), rand(2, 3, dtype=np.float32))

    def second(lib, t):
        (g,) = lib.autograd.grad((t.cumprod(1) ** 2).sum(), t, create_graph=True)
        return g

    check_parity(second, rand(2, 4, positive=True), graph=False)


# --- logsumexp, softmax, log_softmax ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, -1, (0, 1), [1, 2]])
def test_logsumexp(dim, keepdim, dtype):
    check_parity(lambda lib, t: t.logsumexp(dim, keepdim), rand(2, 3, 4, dtype=dtype))
    check_parity(lambda lib, t: lib.logsumexp(t, dim, keepdim=keepdim), rand(2, 3, 4, dtype=dtype) * 400)


def test_logsumexp_edges():
    check_parity(lambda lib, t: t.logsumexp(0), rand())
    check_parity(lambda lib, t: t.logsumexp(0), rand(0, 3))
    check_parity(
        lambda lib, t: t.logsumexp(1),
        np.array([[-np.inf, -np.inf], [np.inf, 1.0], [1000.0, 1000.0]]),
        grad=False,
    )
    check_parity(lambda lib, t: t.logsumexp(1), np.array([[1, 2], [3, 4]]))
    check_error(lambda lib, t: t.logsumexp(), rand(2, 3))


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name, dim, dtype):
    x = rand(2, 3, 4, dtype=dtype) * 5
    check_parity(lambda lib, t: getattr(t, name)(dim), x)
    check_parity(lambda lib, t: getattr(lib, name)(t, dim), x)
    check_parity(lambda lib, t: getattr(lib, name)(t, dim=dim), x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_stable_and_edges(name):
    big = np.array([[1000.0, 0.0, -1000.0], [-1e30, 1e30, 0.0]])
    check_parity(lambda lib, t: getattr(t, name)(1), big)
    check_parity(lambda lib, t: getattr(t, name)(1), big.astype(np.float32))
    check_parity(lambda lib, t: getattr(t, name)(0), rand())
    check_parity(lambda lib, t: getattr(t, name)(1), rand(0, 3))
    check_parity(
        lambda lib, t: getattr(t, name)(1), np.array([[-np.inf, -np.inf], [-np.inf, 0.0]]), grad=False
    )
    check_parity(lambda lib, t: getattr(t, name)(1, dtype=lib.float64), rand(2, 3, dtype=np.float32))
    check_parity(lambda lib, t: getattr(lib, name)(t, 0, dtype=lib.float32), np.array([1, 2, 3]))


def test_softmax_errors():
    check_error(lambda lib, t: t.softmax(2), rand(2, 3), match="Dimension out of range")
    check_error(lambda lib, t: t.log_softmax(-3), rand(2, 3), match="Dimension out of range")
    check_error(lambda lib, t: t.softmax(), rand(2, 3))
    check_error(lambda lib, t: lib.softmax(t, None), rand(2, 3), match="must be int")
    check_error(lambda lib, t: t.softmax(0), np.array([1, 2]), match="not implemented for 'Long'")


# --- second derivatives -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t.sum() ** 2,
        lambda t: (t * t).sum(1),
        lambda t: t.mean() ** 2,
        lambda t: (t * t).mean(0, True),
        lambda t: t.softmax(1) ** 2,
        lambda t: t.log_softmax(0) * t,
        lambda t: t.logsumexp(1) ** 2,
        lambda t: t.var(1),
        lambda t: t.std() * t.sum(),
        lambda t: t.norm() ** 3,
        lambda t: t.norm(dim=1) * t.sum(1),
        lambda t: t.amax(1) * t.sum(1),
        lambda t: t.max() * t,
        lambda t: t.max(1).values ** 2,
        lambda t: t.cumsum(1) ** 2,
        lambda t: t.prod(1) * t.sum(1),
        lambda t: (
            t.sum(1, dtype=ge.float64) ** 2
            if isinstance(t, ge.Tensor)
            else t.sum(1, dtype=__import__("torch").float64) ** 2
        ),
    ],
)
def test_second_derivative(fn, dtype):
    def f(lib, x):
        (g,) = lib.autograd.grad(fn(x).sum(), x, create_graph=True)
        return g

    check_parity(f, rand(3, 4, dtype=dtype, positive=True), graph=False)


def test_zero_dim_results_hold_arrays():
    # numpy returns scalars from 0-d computations; a tensor must always hold an ndarray
    x = ge.tensor([1.0, 2.0, 4.0], requires_grad=True)
    s = ge.tensor(2.0, requires_grad=True)
    results = [
        x.sum(),
        x.mean(),
        x.var(),
        x.std(),
        x.norm(),
        x.norm(1),
        x.prod(),
        x.max(),
        x.amax(),
        x.argmax(),
        x.max(0).values,
        x.logsumexp(0),
        x.mean(0),
        x.std(0),
        s.exp(),
        s.sign(),
        s.relu(),
        s**2,
        2**s,
        s.clamp(0, 1),
        s.floor(),
        s.frac(),
        s % 1.5,
        s // 1.5,
        s.sigmoid(),
        s.erf(),
        s == 2,
        ~(s > 1),
        ge.where(s > 1, s, 0.0),
        ge.maximum(s, s),
        s.lerp(s * 2, 0.5),
        s.softmax(0),
        s.cumsum(0),
    ]
    for r in results:
        assert type(r._data) is np.ndarray, r
