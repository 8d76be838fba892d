"""The native engine raises torch's exact text (and type, and warning) for the loud autograd errors gradlens
explains: a rebound non-leaf's ``.grad``, in-place changes of leaves, of views of leaves and of saved tensors
(leaf, non-leaf input, saved output, output numbers, overload suffixes), a second backward through a freed
graph, and a backward of a tensor with no graph."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ..parity import check_error, rand


def _same(fn, *arrays, grad=True):
    t_err, g_err = check_error(fn, *arrays, grad=grad)
    assert str(g_err) == str(t_err)


def test_grad_of_rebound_non_leaf_is_none_with_torchs_warning():
    torch = pytest.importorskip("torch")
    import gradlens.engine as ge

    said = []
    for lib in (torch, ge):
        w = lib.ones(3, requires_grad=True)
        (w * 2).sum().backward()
        w = w - 0.1 * w.grad
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert w.grad is None
        said.append([(c.category, str(c.message).split(" (Triggered internally")[0]) for c in caught])
    assert said[0] == said[1] and said[0]

    def rebound(lib, w):
        (w * 2).sum().backward()
        w = w - 0.1 * w.grad
        (w * 2).sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return 0.1 * w.grad

    _same(rebound, rand(3))


def test_inplace_on_leaf():
    def bug(lib, w):
        w -= 1.0

    _same(bug, rand(3))


def test_inplace_on_view_of_leaf():
    def bug(lib, w):
        w[0].mul_(2.0)

    _same(bug, rand(3))


@pytest.mark.parametrize("case", ["saved output", "saved input", "saved leaf", "relu output", "split output 1",
                                  "elu inplace output"])
def test_inplace_modified_saved(case):
    def bug(lib, x):
        if case == "saved output":
            a = x.exp()
            a.add_(1)
            y = a.sum()
        elif case == "saved input":
            a = x * 2
            y = (a * a).sum()
            a.mul_(2)
        elif case == "saved leaf":
            y = (x * x).sum()
            with lib.no_grad():
                x.add_(1)
        elif case == "relu output":
            a = lib.relu(x * 1)
            a.add_(1)
            y = a.sum()
        elif case == "split output 1":
            s = lib.split(x * 1, 2)
            y = (s[1] * s[1]).sum()
            s[1].add_(1)
        else:
            a = lib.nn.functional.elu(x * 1, inplace=True)
            y = (a * 2).sum()
            a.add_(1)
        y.backward()

    _same(bug, rand(4, 3) if case == "saved input" else rand(4))


def test_backward_through_freed_graph():
    def bug(lib, w):
        h = lib.zeros(3, dtype=w.dtype)
        for _ in range(2):
            h = lib.tanh(h * w + 1)
            h.sum().backward()

    _same(bug, rand(3))


@pytest.mark.parametrize("cut", ["detach", "item", "no_grad", "second element"])
def test_backward_without_graph(cut):
    def bug(lib, w):
        if cut == "detach":
            loss = (w * 2).detach().sum()
        elif cut == "item":
            loss = lib.tensor((w * 2).sum().item())
        elif cut == "no_grad":
            with lib.no_grad():
                loss = (w * 2).sum()
        else:
            lib.autograd.backward([(w * 2).sum(), (w * 3).sum().detach()])
            return
        loss.backward()

    _same(bug, rand(3))


def test_float64_and_2d_text():
    def bug(lib, x):
        a = x.exp()
        a.add_(1)
        a.sum().backward()

    t_err, g_err = check_error(bug, rand(2, 5, dtype=np.float64))
    assert "[torch.DoubleTensor [2, 5]]" in str(t_err)
    assert str(g_err) == str(t_err)
