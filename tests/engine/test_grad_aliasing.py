"""AccumulateGrad may take an incoming gradient array as ``.grad`` without a copy only when nothing else
can see that memory (as torch steals a buffer whose use count allows it). These cases must copy: one array
sent to two leaves, a user-given seed, a tensor hook that keeps the gradient, retain_grad, broadcasts and
views passed through."""

from __future__ import annotations

import numpy as np
import pytest

import gradlens.engine as ge
from gradlens.engine.autograd import graph as G


@pytest.fixture
def owned_log(monkeypatch):
    log = []
    orig = G.AccumulateGrad.backward

    def spy(self, grad, owned=False):
        log.append(owned)
        return orig(self, grad, owned)

    monkeypatch.setattr(G.AccumulateGrad, "backward", spy)
    return log


def shares(a, b) -> bool:
    return np.shares_memory(a._data, b._data)


def test_mlp_gradients_are_taken_without_copy(owned_log):
    m = ge.nn.Sequential(ge.nn.Linear(8, 4), ge.nn.ReLU(), ge.nn.Linear(4, 3))
    ge.nn.functional.cross_entropy(m(ge.randn(5, 8)), ge.tensor([0, 1, 2, 0, 1])).backward()
    assert owned_log == [True] * 4


def test_one_array_to_two_leaves_is_never_shared():
    a = ge.randn(3, 3, requires_grad=True)
    b = ge.randn(3, 3, requires_grad=True)
    (a + b).backward(ge.ones(3, 3))
    assert not shares(a.grad, b.grad)
    a.grad.add_(1.0)
    np.testing.assert_allclose(b.grad._data, 1.0)
    a.grad = b.grad = None
    (a + b).sum().backward()
    assert not shares(a.grad, b.grad)


def test_user_seed_is_never_taken():
    a = ge.randn(3, 3, requires_grad=True)
    seed = ge.ones(3, 3)
    a.backward(seed)
    assert not shares(a.grad, seed)
    a.grad = None
    a.clone().backward(seed)
    assert not shares(a.grad, seed)


def test_gradient_kept_by_a_hook_is_copied():
    a = ge.randn(3, requires_grad=True)
    kept = []
    a.register_hook(lambda g: kept.append(g))
    (a * 2).sum().backward()
    assert not shares(a.grad, kept[0])


def test_retain_grad_and_leaf_do_not_share():
    a = ge.randn(3, requires_grad=True)
    c = a.clone()
    c.retain_grad()
    c.sum().backward()
    assert not shares(a.grad, c.grad)


def test_accumulation_into_taken_grads_stays_independent():
    w = ge.randn(4, requires_grad=True)
    v = ge.randn(4, requires_grad=True)
    for _ in range(2):
        (w * v).sum().backward()
    np.testing.assert_allclose(w.grad._data, 2 * v._data)
    np.testing.assert_allclose(v.grad._data, 2 * w._data)


def test_broadcast_and_view_gradients_do_not_share():
    b0 = ge.randn(1, 3, requires_grad=True)
    m2 = ge.randn(4, 3, requires_grad=True)
    (b0 + m2).sum().backward()
    assert not shares(b0.grad, m2.grad)
    r = ge.randn(6, requires_grad=True)
    q = ge.randn(2, 3, requires_grad=True)
    (r.view(2, 3) * 1 + q).sum().backward()
    assert not shares(r.grad, q.grad)
