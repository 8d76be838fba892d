"""Parity of the ops in gradlens/engine/ops/extra.py (and optim.Adadelta) against torch: values, grads
(float64, incl. finite differences), node names, error types and messages."""

from __future__ import annotations

import numpy as np
import pytest

import gradlens.engine as ge
from tests.parity import HAS_TORCH, check_error, check_parity, rand

F64, F32 = np.float64, np.float32


def _F(lib):  # noqa: N802 - torch's alias
    return lib.nn.functional


def _finite_difference_check(fn, x: np.ndarray, eps: float = 1e-6) -> None:
    """The native float64 gradient of ``fn(x).sum()`` against central differences (as gradcheck)."""
    t = ge.tensor(x, requires_grad=True)
    fn(t).sum().backward()
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (fn(ge.tensor(up)).sum().item() - fn(ge.tensor(down)).sum().item()) / (2 * eps)
    np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["tril", "triu"])
@pytest.mark.parametrize("diagonal", [0, 1, -1, 5])
@pytest.mark.parametrize("shape,dtype", [((3, 4), F64), ((2, 3, 4), F32), ((0, 3), F64)])
def test_tril_triu(name, diagonal, shape, dtype):
    check_parity(lambda lib, x: getattr(lib, name)(x, diagonal) * 2, rand(*shape, dtype=dtype))
    check_parity(lambda lib, x: getattr(x, name)(diagonal=diagonal), rand(*shape, dtype=dtype))


def test_tril_second_derivative_and_error():
    def fn(lib, x):
        (g,) = lib.autograd.grad((lib.tril(x) ** 3).sum(), (x,), create_graph=True)
        return g
    check_parity(fn, rand(3, 3, dtype=F64))
    check_error(lambda lib, x: lib.tril(x), rand(3, dtype=F64), match="at least 2 dimensions")


@pytest.mark.parametrize("k,dim,largest", [(2, -1, True), (1, 0, True), (3, 1, False), (0, -1, True)])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_topk(k, dim, largest, dtype):
    def fn(lib, x):
        out = lib.topk(x, k, dim=dim, largest=largest)
        assert out.indices.dtype == lib.int64
        return out.values * (out.indices + 1)
    check_parity(fn, rand(4, 5, dtype=dtype))
    check_parity(lambda lib, x: x.topk(k, dim, largest)[1], rand(4, 5, dtype=dtype))


def test_topk_create_graph_finite_differences_and_error():
    def fn(lib, x):
        (g,) = lib.autograd.grad((x.topk(2).values ** 2).sum(), (x,), create_graph=True)
        return g
    # values and second derivatives match; the double-backward graph is one-hot * g (torch: a scatter node)
    check_parity(fn, rand(3, 4, dtype=F64), graph=False)
    _finite_difference_check(lambda t: t.topk(2, dim=0).values ** 2, rand(4, 3, dtype=F64))
    check_error(lambda lib, x: x.topk(6), rand(2, 5, dtype=F64), match="k out of range")


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0), (0, 1)])
@pytest.mark.parametrize("in_shape", [(2, 3, 4), (1, 3, 4), (4,)])
def test_baddbmm(beta, alpha, in_shape):
    check_parity(lambda lib, x, a, b: lib.baddbmm(x, a, b, beta=beta, alpha=alpha),
                 rand(*in_shape, dtype=F64), rand(2, 3, 5, dtype=F64), rand(2, 5, 4, dtype=F64))


def test_baddbmm_second_derivative_and_errors():
    def fn(lib, x, a, b):
        out = lib.baddbmm(x, a, b)
        (g,) = lib.autograd.grad((out ** 2).sum(), (a,), create_graph=True)
        return g
    check_parity(fn, rand(2, 3, 4, dtype=F64), rand(2, 3, 5, dtype=F64), rand(2, 5, 4, dtype=F64), graph=False)
    check_error(lambda lib, x, a, b: lib.baddbmm(x, a, b), rand(2, 3, 4, dtype=F64), rand(2, 3, 5, dtype=F64),
                rand(3, 5, 4, dtype=F64), match=r"Expected size for first two dimensions of batch2 tensor to be: "
                r"\[2, 5\] but got: \[3, 5\]")


def test_xlogy():
    x = rand(3, 4, dtype=F64)
    x[0, 0] = 0.0
    check_parity(lambda lib, a, b: lib.xlogy(a, b), x, rand(3, 4, dtype=F64, positive=True))
    check_parity(lambda lib, a, b: lib.xlogy(a, b), rand(3, 1, dtype=F32), rand(4, dtype=F32, positive=True))


@pytest.mark.parametrize("case", [
    lambda lib: lib.xlogy(lib.tensor([0, 1, 2]), lib.tensor([3, 4, 5])),       # int, int: default float
    lambda lib: lib.xlogy(lib.tensor([True, False]), lib.tensor([True, True])),  # bool: default float
    lambda lib: lib.xlogy(lib.tensor([1, 2]), lib.tensor([3.0, 4.0])),           # int, float32: float32, not f64
    lambda lib: lib.xlogy(lib.tensor([1.0, 2.0], dtype=lib.float64), lib.tensor([3, 4])),  # float64 kept
    lambda lib: lib.xlogy(lib.tensor([1, 2]), 2.5),                              # int, float number: float32
    lambda lib: lib.xlogy(lib.tensor([1, 2]), 2),                                # int, int number: float32
    lambda lib: lib.xlogy(lib.tensor([0.0, 2.0]), 3),                            # float32, int number
], ids=["int-int", "bool", "int-f32", "f64-int", "int-float-number", "int-int-number", "f32-int-number"])
def test_xlogy_promotes_like_torch(case):
    # found by the mixed-program fuzz: integer inputs came back as integers (torch gives the default float)
    check_parity(lambda lib: case(lib))


def test_topk_refuses_bool_with_torchs_message():
    check_error(lambda lib: lib.tensor(True).topk(1), match="topk does not support bool dtypes on CPU")
    check_error(lambda lib: lib.tensor([True, False]).topk(1), match="topk does not support bool dtypes on CPU")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_smooth_l1_loss(reduction, beta, dtype):
    check_parity(lambda lib, x, y: _F(lib).smooth_l1_loss(x, y, reduction=reduction, beta=beta),
                 rand(3, 4, dtype=dtype), rand(3, 4, dtype=dtype))


def test_smooth_l1_loss_second_derivative_finite_differences_and_error():
    def fn(lib, x, y):
        (g,) = lib.autograd.grad(_F(lib).smooth_l1_loss(x, y, beta=0.5), (x,), create_graph=True)
        return g * g
    check_parity(fn, rand(3, 4, dtype=F64), rand(3, 4, dtype=F64), graph=False)
    y = ge.tensor(rand(5, dtype=F64))
    _finite_difference_check(lambda t: ge.nn.functional.smooth_l1_loss(t, y, beta=0.7), rand(5, dtype=F64))
    check_error(lambda lib, x, y: _F(lib).smooth_l1_loss(x, y, beta=-1.0), rand(3, dtype=F64),
                rand(3, dtype=F64), match="negative values for beta")


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    target = rand(3, 4, dtype=F64) if log_target else rand(3, 4, dtype=F64, positive=True)
    check_parity(lambda lib, x, t: _F(lib).kl_div(x, t, reduction=reduction, log_target=log_target),
                 rand(3, 4, dtype=F64), target)


_INTERP = [
    ((2, 3, 4, 5), dict(scale_factor=2)),
    ((2, 3, 4, 5), dict(size=(7, 3))),
    ((1, 2, 4, 5), dict(size=(5, 7), mode="bilinear")),
    ((1, 2, 4, 5), dict(size=(2, 3), mode="bilinear")),
    ((1, 2, 4, 5), dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ((1, 2, 4, 5), dict(scale_factor=1.7, mode="bilinear")),
    ((2, 3, 4), dict(scale_factor=3, mode="linear")),
    ((2, 3, 4), dict(size=6)),
]


@pytest.mark.parametrize("shape,kwargs", _INTERP, ids=[str(k) for _, k in _INTERP])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_interpolate(shape, kwargs, dtype):
    check_parity(lambda lib, x: _F(lib).interpolate(x, **kwargs), rand(*shape, dtype=dtype))


def test_interpolate_second_derivative_finite_differences_and_errors():
    def fn(lib, x):
        (g,) = lib.autograd.grad((_F(lib).interpolate(x, scale_factor=2, mode="bilinear") ** 3).sum(), (x,),
                                 create_graph=True)
        return g
    check_parity(fn, rand(1, 1, 3, 3, dtype=F64), graph=False)
    _finite_difference_check(lambda t: ge.nn.functional.interpolate(t, size=(5, 4), mode="bilinear") ** 2,
                             rand(1, 1, 3, 3, dtype=F64))
    check_error(lambda lib, x: _F(lib).interpolate(x), rand(1, 1, 3, 3, dtype=F64),
                match="either size or scale_factor should be defined")
    check_error(lambda lib, x: _F(lib).interpolate(x, size=2, scale_factor=2), rand(1, 1, 3, 3, dtype=F64),
                match="only one of size or scale_factor should be defined")


def test_multinomial_statistics_and_errors():
    ge.manual_seed(0)
    probs = ge.tensor([[0.1, 0.0, 0.9], [0.5, 0.5, 0.0]])
    draws = ge.multinomial(probs, 2000, replacement=True)
    assert draws.dtype == ge.int64 and tuple(draws.shape) == (2, 2000)
    freq = np.bincount(draws[0].numpy(), minlength=3) / 2000
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.9], atol=0.03)
    assert set(np.unique(draws[1].numpy())) <= {0, 1}
    no_repl = ge.multinomial(ge.ones(5), 5)
    assert sorted(no_repl.tolist()) == [0, 1, 2, 3, 4]
    assert ge.ones(4).multinomial(2).shape == (2,)
    check_error(lambda lib: lib.multinomial(lib.ones(3), 4), match="without replacement")
    check_error(lambda lib: lib.multinomial(-lib.ones(3), 1), match="element < 0")


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}, {"maximize": True}])
def test_adadelta_matches_torch_bit_for_bit(kwargs):
    import torch

    w0 = rand(3, 4, dtype=F32)
    params = [torch.tensor(w0, requires_grad=True), ge.tensor(w0, requires_grad=True)]
    opts = [torch.optim.Adadelta([params[0]], **kwargs), ge.optim.Adadelta([params[1]], **kwargs)]
    for _ in range(3):
        for p, opt in zip(params, opts):
            opt.zero_grad()
            ((p * p).sum() + p.sin().sum()).backward()
            opt.step()
    # bit for bit, except maximize, where torch's vectorized addcmul rounds 1 element of 12 by 1 ulp
    np.testing.assert_allclose(params[1].detach().numpy(), params[0].detach().numpy(),
                               rtol=1e-6 if kwargs.get("maximize") else 0, atol=0)
    check_error(lambda lib: lib.optim.Adadelta([lib.ones(1, requires_grad=True)], rho=2.0), match="Invalid rho")
