"""Autograd semantics against torch: accumulation, leaves, freeing saved tensors, errors, hooks, grad
mode, autograd.grad and create_graph, saved-tensor hooks, and deep graphs."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, rand


def _np(t):
    return np.asarray(t.detach().numpy())


def test_grad_accumulates_in_place(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    g = x.grad
    np.testing.assert_allclose(_np(g), [2, 4, 6])
    (x * x).sum().backward()
    assert x.grad is g, "later accumulations add in place"
    np.testing.assert_allclose(_np(x.grad), [4, 8, 12])


def test_grad_version_bumps_on_accumulation(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    v = x.grad._version
    (x * 2).sum().backward()
    assert x.grad._version == v + 1


def test_leaf_properties(lib):
    x = lib.tensor([1.0], requires_grad=True)
    c = lib.tensor([1.0])
    y = x * 2
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert x.grad_fn is None and y.grad_fn is not None
    with lib.no_grad():
        z = x * 2
    assert z.is_leaf and z.grad_fn is None and not z.requires_grad
    assert x.grad_fn is None
    acc = y.grad_fn.next_functions[0][0]
    assert acc.name() == "torch::autograd::AccumulateGrad"
    assert type(acc).__name__ == "AccumulateGrad"
    assert acc.variable is x
    assert acc.next_functions == ()
    assert (x * 3).grad_fn.next_functions[0][0] is acc, "one AccumulateGrad per leaf while a graph holds it"


def test_nonleaf_grad_warns(lib):
    x = lib.tensor([1.0], requires_grad=True)
    y = x * 2
    y.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None


def test_retain_grad(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    assert y.retains_grad
    np.testing.assert_allclose(_np(y.grad), [4, 8])
    np.testing.assert_allclose(_np(x.grad), [8, 16])


def test_retain_graph_doubles(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(_np(x.grad), [4, 8])


def test_second_backward_raises_only_with_saved_tensors(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = (x + x).sum()
    y.backward()
    y.backward()  # nothing saved: allowed, grads accumulate
    np.testing.assert_allclose(_np(x.grad), [4, 4])
    for make in (lambda: (x * x).sum(), lambda: (x * 2).sum()):
        z = make()
        z.backward()
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
            z.backward()


def test_errors_match_torch():
    check_error(lambda lib, x: (x * 2).backward(), rand(3), match="grad can be implicitly created only for scalar")
    check_error(lambda lib, x: x.sum().backward(), rand(3), grad=False,
                match="element 0 of tensors does not require grad and does not have a grad_fn")
    check_error(lambda lib, x: x.add_(1), rand(3), match="a leaf Variable that requires grad is being used in")
    check_error(lambda lib, x: x.numpy(), rand(3), match="Can't call numpy\\(\\) on Tensor that requires grad")
    check_error(lambda lib: lib.tensor([1, 2], requires_grad=True),
                match="Only Tensors of floating point and complex dtype can require gradients")
    check_error(lambda lib, x: (x * 2).requires_grad_(False), rand(3),
                match="you can only change requires_grad flags of leaf variables")
    check_error(lambda lib, x: x.sum().backward(lib.ones(3)), rand(3), match="Mismatch in shape")
    check_error(lambda lib, x: x.item(), rand(2), match="a Tensor with 2 elements cannot be converted to Scalar")


def test_stale_saved_tensor_raises(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    z = y * y
    with lib.no_grad():
        y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*is at version 1; expected version 0"):
        z.sum().backward()


def test_leaf_modified_under_no_grad_then_backward(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    z = w * w
    with lib.no_grad():
        w.add_(1)
    with pytest.raises(RuntimeError, match=r"\[torch.FloatTensor \[2\]\] is at version 1"):
        z.sum().backward()


def test_next_functions_none_for_constants(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    c = lib.tensor([3.0, 4.0])
    nf = (c * w).grad_fn.next_functions
    assert nf[0] == (None, 0)
    assert nf[1][0].name() == "torch::autograd::AccumulateGrad"


def test_tensor_hooks(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h1 = x.register_hook(lambda g: seen.append(("pre", _np(g).tolist(), x.grad is None)))
    h2 = x.register_post_accumulate_grad_hook(lambda t: seen.append(("post", _np(t.grad).tolist())))
    y = x * 3
    y.register_hook(lambda g: g * 10)  # replaces the gradient flowing into MulBackward0
    y.sum().backward()
    assert seen == [("pre", [30.0, 30.0], True), ("post", [30.0, 30.0])]
    h1.remove()
    h2.remove()
    (x * 1).sum().backward()
    assert len(seen) == 2, "removed hooks do not fire"


def test_node_hooks_order(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    order = []
    y.grad_fn.register_prehook(lambda go: order.append(("pre", len(go))))
    y.grad_fn.register_hook(lambda gi, go: order.append(("post", len(gi), len(go))))
    y.sum().backward()
    assert order == [("pre", 1), ("post", 2, 1)]


def test_metadata_lives_on_node(lib):
    x = lib.tensor([1.0], requires_grad=True)
    y = x * 2

    class Sentinel:
        pass

    s = Sentinel()
    y.grad_fn.metadata["s"] = s
    ref = weakref.ref(s)
    del s
    assert ref() is not None
    del y
    gc.collect()
    assert ref() is None, "metadata dies with the node"


def test_graph_freed_by_refcount_without_gc():
    """No reference cycles in a native graph: it dies as soon as its last tensor does."""
    gc.disable()
    try:
        x = ge.tensor([1.0, 2.0], requires_grad=True)
        y = (x.exp() * x).sum() if hasattr(ge.Tensor, "exp") else (x * x).sum()
        ref = weakref.ref(y.grad_fn)
        del y
        assert ref() is None
    finally:
        gc.enable()


def test_grad_mode_nesting_and_decorators(lib):
    x = lib.tensor([1.0], requires_grad=True)
    with lib.no_grad():
        assert not lib.is_grad_enabled()
        with lib.enable_grad():
            assert lib.is_grad_enabled()
            assert (x * 2).requires_grad
        assert not lib.is_grad_enabled()
    assert lib.is_grad_enabled()

    @lib.no_grad()
    def f():
        return x * 2

    assert not f().requires_grad
    assert lib.is_grad_enabled()
    with lib.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert lib.is_grad_enabled()
    with lib.inference_mode():
        y = x * 2
        assert not y.requires_grad
    assert y.is_inference()
    assert not (x * 2).is_inference()


def test_no_grad_restores_on_exception(lib):
    with pytest.raises(ValueError):
        with lib.no_grad():
            raise ValueError
    assert lib.is_grad_enabled()


def test_autograd_grad_does_not_touch_grad(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    (g,) = lib.autograd.grad(y, x)
    np.testing.assert_allclose(_np(g), [2, 4])
    assert x.grad is None


def test_create_graph_second_derivative(lib):
    u = lib.tensor(3.0, requires_grad=True)
    y = u * u * u
    (g,) = lib.autograd.grad(y, u, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = lib.autograd.grad(g, u)
    assert float(h) == pytest.approx(18.0)


def test_backward_create_graph_penalty(lib):
    w = lib.tensor([1.0, -2.0], requires_grad=True)
    x = lib.tensor([0.5, 3.0])
    out = (w * x * w).sum()
    (gw,) = lib.autograd.grad(out, w, create_graph=True)
    penalty = (gw * gw).sum()
    penalty.backward()
    # d/dw sum((2 w x)^2) = 8 w x^2
    np.testing.assert_allclose(_np(w.grad), 8 * np.array([1.0, -2.0]) * np.array([0.5, 3.0]) ** 2, rtol=1e-6)


def test_allow_unused(lib):
    x = lib.tensor([1.0], requires_grad=True)
    z = lib.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        lib.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = lib.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None and float(gx) == 2.0


def test_saved_tensors_hooks(lib):
    packed = []

    def pack(t):
        packed.append(tuple(t.shape))
        return t.detach()

    def unpack(t):
        return t

    x = lib.tensor([1.0, 2.0], requires_grad=True)
    with lib.autograd.graph.saved_tensors_hooks(pack, unpack):
        y = (x * x).sum()
    assert packed == [(2,), (2,)]
    y.backward()
    np.testing.assert_allclose(_np(x.grad), [2, 4])


@pytest.mark.parametrize("unpack", ["same", "detached", "requires_grad"])
@pytest.mark.parametrize("through", ["leaf", "non-leaf"])
def test_unpacked_saved_tensor_keeps_its_graph_under_create_graph(lib, unpack, through):
    """torch gives a tensor returned by an unpack hook the graph position of the tensor that was saved,
    whatever graph the returned tensor has: a grad penalty differentiates the same with and without hooks."""
    unpacks = {"same": lambda t: t, "detached": lambda t: t.detach(),
               "requires_grad": lambda t: t.detach().requires_grad_()}

    def penalty_grad(hooks: bool):
        x = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
        h = x * 1 if through == "non-leaf" else x
        if hooks:
            with lib.autograd.graph.saved_tensors_hooks(lambda t: t.detach(), unpacks[unpack]):
                y = (h * h.exp() * h.tanh()).sum()
        else:
            y = (h * h.exp() * h.tanh()).sum()
        (g,) = lib.autograd.grad(y, x, create_graph=True)
        (g * g).sum().backward()
        return _np(x.grad)

    expected = penalty_grad(False)
    assert np.abs(expected).min() > 0
    np.testing.assert_allclose(penalty_grad(True), expected, rtol=1e-12)


def test_unpack_hook_must_return_a_tensor(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    with lib.autograd.graph.saved_tensors_hooks(lambda t: 5, lambda t: 7):
        y = (x * x).sum()
    with pytest.raises(TypeError, match="unpack_hook expected to be a Tensor"):
        y.backward()


def test_requires_grad_inside_inference_mode(lib):
    with lib.inference_mode():
        x = lib.ones(2, requires_grad=True)
        y = lib.zeros(2).requires_grad_()
        assert x.requires_grad and y.requires_grad and (x * 2).grad_fn is None


# torch's backward formulas multiply (add, divide) by C++ numbers: mul.Scalar records MulBackward1, add.Scalar
# AddBackward1, where a Python ``t * 2`` records MulBackward0. Compared in the graph a create_graph backward
# records (the graph of the gradient).
SCALAR_FORMULAS = {
    "x ** 3": lambda lib, x: x ** 3,
    "x ** 0.5": lambda lib, x: x.abs() ** 0.5,
    "x.square()": lambda lib, x: x.square(),
    "2 ** x": lambda lib, x: 2 ** x,
    "sqrt": lambda lib, x: (x.abs() + 1).sqrt(),
    "rsqrt": lambda lib, x: (x.abs() + 1).rsqrt(),
    "erf": lambda lib, x: x.erf(),
    "log1p": lambda lib, x: x.abs().log1p(),
    "expm1": lambda lib, x: x.expm1(),
    "atan": lambda lib, x: x.atan(),
    "abs": lambda lib, x: x.abs() * x,
    "mean(x ** 2)": lambda lib, x: (x ** 2).mean(),
    "(x / 2) ** 2": lambda lib, x: (x / 2) ** 2,
}


@pytest.mark.skipif(not HAS_TORCH, reason="no torch")
@pytest.mark.parametrize("name", sorted(SCALAR_FORMULAS))
def test_double_backward_graph_names_match_torch(name):
    import torch

    from ..parity import graph_signature

    fn = SCALAR_FORMULAS[name]
    sigs, grads = [], []
    for lib in (torch, ge):
        x = lib.tensor([0.3, -1.2, 0.7, 1.5], dtype=lib.float64, requires_grad=True)
        (g,) = lib.autograd.grad(fn(lib, x).sum(), x, create_graph=True)
        sigs.append(graph_signature(g))
        (gg,) = lib.autograd.grad(g.sum(), x)
        grads.append(_np(gg))
    assert sigs[1] == sigs[0]
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-15)


def test_deep_chain_backward_is_iterative():
    x = ge.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0
    del y  # freeing a 100k chain must not recurse either


def test_backward_on_leaf(lib):
    x = lib.tensor(2.0, requires_grad=True)
    x.backward()
    assert float(x.grad) == 1.0


def test_dtype_of_grad_matches_param(lib):
    x = lib.tensor([1.0, 2.0], dtype=lib.float32, requires_grad=True)
    (x * lib.tensor([1.0, 2.0], dtype=lib.float64)).sum().backward()
    assert x.grad.dtype == lib.float32
