"""Parity of in-place ops with torch: values, rebased graphs (node names and edges), gradients, version
counters, the leaf / view / saved-tensor errors, in-place ops on views (CopySlices) and under no_grad."""

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, rand

BINARY = {
    "add_": lambda h, y: h.add_(y),
    "add_alpha": lambda h, y: h.add_(y, alpha=-0.5),
    "sub_": lambda h, y: h.sub_(y),
    "sub_alpha": lambda h, y: h.sub_(y, alpha=2),
    "mul_": lambda h, y: h.mul_(y),
    "div_": lambda h, y: h.div_(y),
    "iadd": lambda h, y: h.__iadd__(y),
    "isub": lambda h, y: h.__isub__(y),
    "imul": lambda h, y: h.__imul__(y),
    "itruediv": lambda h, y: h.__itruediv__(y),
    "copy_": lambda h, y: h.copy_(y),
    "addcmul_": lambda h, y: h.addcmul_(y, y, value=0.5),
    "addcdiv_": lambda h, y: h.addcdiv_(y, y * y + 1, value=2),
    "lerp_": lambda h, y: h.lerp_(y, 0.3),
    "pow_t": lambda h, y: h.pow_(y),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("y_shape", [(3, 4), (4,), ()])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_inplace_on_non_leaf(name, y_shape, dtype):
    fn = BINARY[name]
    check_parity(
        lambda lib, x, y: fn(x * 1, y),
        rand(3, 4, dtype=dtype, positive=True),
        rand(*y_shape, dtype=dtype, positive=True),
    )


@pytest.mark.parametrize(
    "name", ["add_", "sub_", "mul_", "div_", "iadd", "isub", "imul", "itruediv", "copy_"]
)
def test_binary_inplace_into_constant(name):
    # the tensor needs no grad, the operand does: the result joins the graph with a (None, 0) first edge
    fn = BINARY[name]
    check_parity(lambda lib, x, y: fn(x.detach() * 1, y), rand(3, 4, positive=True), rand(4, positive=True))
    check_parity(lambda lib, x, y: fn(x * 1, y.detach()), rand(3, 4, positive=True), rand(4, positive=True))


SCALAR = {
    "add_": lambda h: h.add_(2),
    "add_alpha": lambda h: h.add_(2, alpha=3),
    "sub_": lambda h: h.sub_(1.5),
    "mul_": lambda h: h.mul_(2.5),
    "div_": lambda h: h.div_(4),
    "iadd": lambda h: h.__iadd__(1),
    "isub": lambda h: h.__isub__(1),
    "imul": lambda h: h.__imul__(3),
    "itruediv": lambda h: h.__itruediv__(2),
    "ipow": lambda h: h.__ipow__(2),
    "zero_": lambda h: h.zero_(),
    "fill_": lambda h: h.fill_(1.5),
    "neg_": lambda h: h.neg_(),
    "exp_": lambda h: h.exp_(),
    "relu_": lambda h: h.relu_(),
    "sigmoid_": lambda h: h.sigmoid_(),
    "tanh_": lambda h: h.tanh_(),
    "pow_": lambda h: h.pow_(3),
    "pow_0": lambda h: h.pow_(0),
    "pow_half": lambda h: h.abs_().pow_(0.5),
    "sqrt_": lambda h: h.abs_().sqrt_(),
    "log_": lambda h: h.abs_().log_(),
    "abs_": lambda h: h.abs_(),
    "clamp_": lambda h: h.clamp_(-0.5, 0.5),
    "clamp_min": lambda h: h.clamp_(min=0),
    "clamp_max": lambda h: h.clamp_(max=0.2),
    "clip_": lambda h: h.clip_(-1, 1),
    "clamp_min_": lambda h: h.clamp_min_(0.1),
    "clamp_max_": lambda h: h.clamp_max_(0.1),
    "masked_fill_": lambda h: h.masked_fill_(h > 0, 0.0),
    "chain": lambda h: h.mul_(2).add_(1).sub_(0.5).relu_(),
}


@pytest.mark.parametrize("name", sorted(SCALAR))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scalar_and_unary_inplace(name, dtype):
    check_parity(lambda lib, x: SCALAR[name](x * 1), rand(3, 4, dtype=dtype))


def test_inplace_returns_self_and_bumps_version():
    for name, fn in SCALAR.items():
        h = ge.tensor(rand(3)) * 1
        before = h._version
        assert fn(h) is h, name
        assert h._version > before, name
    t = ge.zeros(3)
    for i, fn in enumerate(
        [
            lambda: t.add_(1),
            lambda: t.mul_(2),
            lambda: t.zero_(),
            lambda: t.fill_(3),
            lambda: t.copy_(ge.ones(3)),
            lambda: t.clamp_(0, 1),
            lambda: t.uniform_(),
            lambda: t.normal_(),
            lambda: t.bernoulli_(),
            lambda: t.masked_fill_(t > 0, 1.0),
        ],
        1,
    ):
        fn()
        assert t._version == i


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_version_counts_match_torch():
    import torch

    def counts(lib):
        x = lib.ones(3)
        v = x[1:]
        d = x.detach()
        out = []
        x.add_(1)
        out.append((x._version, v._version, d._version))
        v.mul_(2)
        out.append((x._version, v._version, d._version))
        x += 1
        x.data.add_(1)  # .data has its own counter
        out.append((x._version, v._version, d._version))
        return out

    assert counts(ge) == counts(torch)


def test_tensor_operands_clamp_and_fill():
    check_parity(
        lambda lib, x, lo, hi: (x * 1).clamp_(min=lo, max=hi),
        rand(3, 4),
        rand(4, low=-2, high=-0.5),
        rand(3, 1, low=0.5, high=2),
    )
    check_parity(lambda lib, x, lo: (x * 1).clamp_(min=lo), rand(3, 4), rand(4))
    check_parity(lambda lib, x, v: (x * 1).fill_(v), rand(3), rand())
    check_parity(lambda lib, x, v: (x * 1).masked_fill_(lib.tensor([True, False, True]), v), rand(3), rand())


def test_copy_broadcast_and_cast():
    check_parity(lambda lib, x: lib.zeros(2, 3, dtype=lib.float64).copy_(x), rand(3))
    check_parity(lambda lib, x: lib.zeros(2, 3).copy_(x), rand(2, 3))  # float64 source into float32
    check_parity(lambda lib: lib.zeros(2, 3, dtype=lib.int64).copy_(lib.tensor([1.7, 2, -3.7])))
    check_parity(lambda lib: lib.zeros(3).copy_(lib.tensor([1, 2, 3])))


def test_integer_and_bool_tensors():
    check_parity(lambda lib: lib.tensor([1, 2, 3]).add_(True))
    check_parity(lambda lib: lib.tensor([1, 2, 3]).mul_(2).sub_(1))
    check_parity(lambda lib: lib.zeros(3).add_(lib.tensor([1, 2, 3])))
    check_parity(lambda lib: lib.tensor([-1, 2]).relu_())
    check_parity(lambda lib: lib.zeros(3, dtype=lib.int64).fill_(2.7))
    for fn in (
        lambda lib: lib.tensor([1, 2]).add_(1.5),
        lambda lib: lib.tensor([1, 2]).div_(2),
        lambda lib: lib.tensor([1, 2]).mul_(2.0),
        lambda lib: lib.tensor([1, 2]).exp_(),
    ):
        check_error(fn, match="result type Float can't be cast to the desired output type Long")
    check_error(
        lambda lib: lib.zeros(3, dtype=lib.bool).add_(1),
        match="result type Long can't be cast to the desired output type Bool",
    )


@pytest.mark.parametrize(
    "fn,match",
    [
        (
            lambda lib, x: x.add_(1),
            "a leaf Variable that requires grad is being used in an in-place operation.",
        ),
        (
            lambda lib, x: x.zero_(),
            "a leaf Variable that requires grad is being used in an in-place operation.",
        ),
        (
            lambda lib, x: x.__iadd__(1),
            "a leaf Variable that requires grad is being used in an in-place operation.",
        ),
        (
            lambda lib, x: x.uniform_(),
            "a leaf Variable that requires grad is being used in an in-place operation.",
        ),
        (
            lambda lib, x: x[0].mul_(2),
            "a view of a leaf Variable that requires grad is being used in an in-place",
        ),
        (
            lambda lib, x: x.view(3).add_(1),
            "a view of a leaf Variable that requires grad is being used in an in-place",
        ),
        (
            lambda lib, x: (x * 1).add_(lib.ones(4)),
            r"The size of tensor a \(3\) must match the size of tensor b \(4\)",
        ),
        (
            lambda lib, x: (x * 1)[:1].add_(lib.ones(3)),
            r"output with shape \[1\] doesn't match the broadcast shape \[3\]",
        ),
        (
            lambda lib, x: lib.zeros(3).copy_(lib.ones(2, 3)),
            r"output with shape \[3\] doesn't match the broadcast",
        ),
        (lambda lib, x: lib.zeros(3).fill_(lib.ones(3)), "fill_ only supports 0-dimension value tensor"),
        (lambda lib, x: lib.zeros(3).clamp_(), "At least one of 'min' or 'max' must not be None"),
        (
            lambda lib, x: lib.zeros(3).masked_fill_(lib.ones(3), 1.0),
            "masked_fill_ only supports boolean masks",
        ),
        (lambda lib, x: lib.zeros(3).uniform_(2, 1), r"uniform_ expects to return a \[from, to\) range"),
        (lambda lib, x: lib.zeros(3).normal_(0, -1), "normal expects std >= 0.0"),
        (lambda lib, x: lib.zeros(3).bernoulli_(1.5), r"bernoulli_ expects p to be in \[0, 1\]"),
        (
            lambda lib, x: lib.zeros(1).expand(3).add_(1),
            "more than one element of the written-to tensor refers to a single memory location",
        ),
    ],
)
def test_inplace_errors(fn, match):
    check_error(fn, rand(3), match=match)


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.zeros(3).copy_([1, 2, 3]),
        lambda lib: lib.zeros(3).copy_(np.ones(3)),
        lambda lib: lib.zeros(3).add_("a"),
        lambda lib: lib.zeros(3).mul_(None),
    ],
)
def test_inplace_operand_type_errors(fn):
    t_err, g_err = check_error(fn)
    assert str(g_err) == str(t_err)


def test_inplace_fine_under_no_grad_and_on_aliases():
    def fn(lib, x):
        with lib.no_grad():
            x.add_(1)
            x -= 0.5
            x *= 2
            x[0].fill_(7)
        x.data.mul_(2)
        x.detach().add_(1)
        return x * 1

    check_parity(fn, rand(3))


def test_saved_tensor_modified_error_texts():
    def sigmoid_then_modify(lib, x):
        s = x.sigmoid()
        s.mul_(2)
        s.sum().backward()

    t_err, g_err = check_error(
        sigmoid_then_modify,
        rand(3, dtype=np.float32),
        match=r"one of the variables needed for gradient computation has been modified by an "
        r"inplace operation: \[torch\.FloatTensor \[3\]\], which is output 0 of "
        r"Sigmoid, is at version 1; expected version 0 instead\. Hint:",
    )
    assert str(g_err) == str(t_err)

    def square_then_modify(lib, x):
        h = x + 1
        out = h * h
        h.add_(1)
        out.sum().backward()

    t_err, g_err = check_error(square_then_modify, rand(3))
    assert str(g_err) == str(t_err)


def test_inplace_result_saved_then_modified_again():
    def fn(lib, x):
        h = x * 1
        h.exp_()
        h.add_(1)  # exp_ saved its output: modified now
        h.sum().backward()

    check_error(fn, rand(3), match="modified by an inplace operation")


def test_unsaved_values_may_change():
    # x + y saves nothing, so changing h afterwards is fine (as in torch)
    def fn(lib, x):
        h = x * 1
        out = h + 1
        h.mul_(3)
        return out, h

    check_parity(fn, rand(3))


def test_grad_zero_and_optimizer_style_updates():
    def fn(lib, p):
        (p * p).sum().backward()
        g, version = p.grad, p.grad._version
        p.grad.zero_()
        assert p.grad is g and p.grad._version == version + 1
        (p * 3).sum().backward()
        with lib.no_grad():
            p.add_(p.grad, alpha=-0.1)
            p.mul_(0.9)
            p.addcdiv_(p.grad, p.grad.abs() + 1, value=-0.01)
        p.data.add_(p.grad, alpha=-0.1)
        return p * 1

    check_parity(fn, rand(4))


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_grad_zero_values():
    import torch

    for lib in (torch, ge):
        p = lib.ones(2, requires_grad=True)
        (p * 2).sum().backward()
        p.grad.zero_()
        assert p.grad.tolist() == [0.0, 0.0]


VIEW_CASES = {
    "slice_mul": lambda lib, x, y: _base_after(lambda b: b[1:3].mul_(2), x * 1),
    "slice_add_tensor": lambda lib, x, y: _base_after(lambda b: b[1:3].add_(y[:2]), x * 1),
    "view_add": lambda lib, x, y: _base_after(lambda b: b.view(2, 2).add_(y.view(2, 2)), x * 1),
    "row_copy": lambda lib, x, y: _base_after(lambda b: b[0:2].copy_(y[:2]), x.detach() * 1),
    "select_fill": lambda lib, x, y: _base_after(lambda b: b[2].fill_(5.0), x * 1),
    "strided_relu": lambda lib, x, y: _base_after(lambda b: b[::2].relu_(), x * 1),
    "view_then_use": lambda lib, x, y: _view_used(x * 1, y),
}


def _base_after(fn, base):
    fn(base)
    return base


def _view_used(b, y):
    v = b[1:3]
    v.mul_(y[:2])
    return v * 1, b * 2


@pytest.mark.parametrize("name", sorted(VIEW_CASES))
def test_inplace_on_views_of_graph_tensors(name):
    check_parity(VIEW_CASES[name], rand(4), rand(4))


def test_inplace_on_view_of_constant_from_grad_operand():
    check_parity(
        lambda lib, x: _base_after(lambda b: b[1:3].copy_(x[:2]), lib.zeros(4, dtype=lib.float64)), rand(4)
    )


def test_inplace_on_2d_views():
    check_parity(lambda lib, x, y: _base_after(lambda b: b[:, 1].mul_(y), x * 1), rand(3, 4), rand(3))
    check_parity(lambda lib, x, y: _base_after(lambda b: b.t()[1:].add_(y), x * 1), rand(3, 4), rand(3))


def test_create_graph_through_inplace():
    def fn(lib, x, y):
        h = x * 1
        h.mul_(y).add_(x).sigmoid_()
        (gx,) = lib.autograd.grad(h.sum(), (x,), create_graph=True)
        return gx

    check_parity(fn, rand(3), rand(3), graph=False)


@pytest.mark.parametrize(
    "name,kwargs",
    [("uniform_", dict(a=-0.5, b=0.5)), ("normal_", dict(mean=1.0, std=0.1)), ("bernoulli_", dict(p=0.3))],
)
@pytest.mark.parametrize("dtype", [ge.float32, ge.float64])
def test_random_initialisers(name, kwargs, dtype):
    t = ge.empty(200, 50, dtype=dtype)
    assert getattr(t, name)(**kwargs) is t
    assert t.dtype is dtype and t._version == 1
    a = t.numpy()
    if name == "uniform_":
        assert a.min() >= -0.5 and a.max() < 0.5 and abs(a.mean()) < 0.02
    elif name == "normal_":
        assert abs(a.mean() - 1.0) < 0.01 and abs(a.std() - 0.1) < 0.01
    else:
        assert set(np.unique(a)) <= {0.0, 1.0} and abs(a.mean() - 0.3) < 0.03
    p = ge.zeros(3, requires_grad=True)
    with ge.no_grad():
        getattr(p, name)()
    assert p.requires_grad and p.is_leaf


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_random_initialiser_node_names():
    import torch

    for name in ("uniform_", "normal_", "bernoulli_"):
        names = []
        for lib in (torch, ge):
            h = lib.ones(3, requires_grad=True) * 1
            getattr(h, name)()
            names.append((h.grad_fn.name(), h.grad_fn.next_functions[0][0].name()))
        assert names[0] == names[1]
    check_parity(lambda lib, x: (x * 1).uniform_() * 0 + x, rand(3))


def test_generator_argument():
    g1, g2 = ge.Generator().manual_seed(3), ge.Generator().manual_seed(3)
    assert ge.empty(5).uniform_(generator=g1).tolist() == ge.empty(5).uniform_(generator=g2).tolist()


def test_retain_grad_follows_inplace():
    def fn(lib, x):
        h = x * 1
        h.retain_grad()
        h.mul_(2)
        (h * 3).sum().backward()
        assert h.retains_grad
        return h.grad

    check_parity(fn, rand(3), graph=False)


def test_retain_graph_through_copy_slices():
    def fn(lib, y):
        b = lib.zeros(4, dtype=lib.float64)
        v = b[1:3]
        v.mul_(2)
        v.add_(y)
        (b * b).sum().backward(retain_graph=True)
        (b * b).sum().backward()
        return y.grad

    check_parity(fn, rand(2), graph=False)

    def twice(lib, x):
        b = x * 1
        b[1:3].mul_(x[:2])
        b.sum().backward()
        b.sum().backward()

    check_error(twice, rand(4), match="backward through the graph a second time")


def test_inplace_on_detached_slice_leaves_base_alone():
    def fn(lib, x, y):
        d = x[1:3].detach()
        d.add_(y)
        assert x.is_leaf and x.grad_fn is None
        return d

    check_parity(fn, rand(4), rand(2))


@pytest.mark.parametrize(
    "name",
    ["relu_", "sigmoid_", "tanh_", "exp_", "neg_", "zero_", "clamp_", "clip_", "abs_", "sqrt_", "log_"],
)
def test_function_forms(name):
    args = {"clamp_": (-0.5, 0.5), "clip_": (-0.5, 0.5)}.get(name, ())
    pre = (lambda h: h.abs_()) if name in ("sqrt_", "log_") else (lambda h: h)
    check_parity(lambda lib, x: getattr(lib, name)(pre(x * 1), *args), rand(3, 4))
    check_parity(lambda lib, x: lib.fill_(x * 1, 2.0), rand(3))


@pytest.mark.parametrize("shape", [(), (0,), (2, 0)])
def test_zero_d_and_empty(shape):
    for name in ("add_", "mul_", "div_", "copy_"):
        check_parity(
            lambda lib, x, y, fn=BINARY[name]: fn(x * 1, y),
            rand(*shape, positive=True),
            rand(*shape, positive=True),
        )
    for name in ("relu_", "sigmoid_", "pow_", "clamp_", "zero_", "fill_", "masked_fill_"):
        check_parity(lambda lib, x, fn=SCALAR[name]: fn(x * 1), rand(*shape))


def _stale_view(lib, x, touch):
    h = x * 1
    v = h[0:2]
    h.mul_(2)  # v was made before: torch regenerates its grad_fn (AsStridedBackward0 of h's new history)
    if touch:
        assert v.grad_fn.name() == "AsStridedBackward0"
    return v * 1


def test_view_made_before_inplace_on_base():
    check_parity(lambda lib, x: _stale_view(lib, x, True), rand(3))


def test_view_made_before_inplace_on_base_used_directly():
    check_parity(lambda lib, x: _stale_view(lib, x, False), rand(3))
