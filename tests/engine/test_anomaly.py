"""Anomaly mode on the native engine against torch: ``detect_anomaly`` / ``set_detect_anomaly`` (function
and context-manager forms, decorator), the warnings and errors they add (texts as torch's), the forward
stack they point at, and that training under them computes the same numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradlens.engine as ge
from tests.parity import HAS_TORCH

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")


def _run(lib, program):
    """``(exception type and text or None, first line of each warning)`` of ``program(lib)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            program(lib)
            err = None
        except Exception as exc:  # noqa: BLE001 - compared between engines
            err = (type(exc).__name__, str(exc))
    return err, [str(w.message).split("\n")[0] for w in caught]


def nan_backward(lib):
    x = lib.tensor([0.0, 1.0], requires_grad=True)
    with lib.autograd.detect_anomaly():
        (x.sqrt() * 0).sum().backward()  # sqrt'(0) = inf, times 0: nan


def nan_backward_unchecked(lib):
    x = lib.tensor([0.0, 1.0], requires_grad=True)
    with lib.autograd.detect_anomaly(check_nan=False):
        (x.sqrt() * 0).sum().backward()
    assert np.isnan(x.grad.numpy()[0])


def nan_through_autograd_grad(lib):
    x = lib.tensor([0.0, 1.0], requires_grad=True)
    with lib.autograd.set_detect_anomaly(True):
        lib.autograd.grad((x.sqrt() * 0).sum(), x)


def inplace_on_saved(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    with lib.autograd.set_detect_anomaly(True, check_nan=False):
        a = x.exp()
        a.add_(1)
        a.sum().backward()


def inplace_on_saved_mode_off(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    a = x.exp()
    a.add_(1)
    a.sum().backward()


def function_form_and_flags(lib):
    assert not lib.is_anomaly_enabled()
    lib.autograd.set_detect_anomaly(True, check_nan=False)
    assert lib.is_anomaly_enabled() and not lib.is_anomaly_check_nan_enabled()
    lib.autograd.set_detect_anomaly(False)
    assert not lib.is_anomaly_enabled() and lib.is_anomaly_check_nan_enabled()
    with lib.autograd.set_detect_anomaly(True):
        with lib.autograd.set_detect_anomaly(False):
            assert not lib.is_anomaly_enabled()
        assert lib.is_anomaly_enabled()
    assert not lib.is_anomaly_enabled()


def decorator_form(lib):  # torch 2.13's detect_anomaly is no decorator: TypeError in both
    @lib.autograd.detect_anomaly()
    def step(x):
        assert lib.is_anomaly_enabled()
        (x * 2).sum().backward()

    step(lib.ones(2, requires_grad=True))
    assert not lib.is_anomaly_enabled()


@needs_torch
@pytest.mark.parametrize("program", [nan_backward, nan_backward_unchecked, nan_through_autograd_grad,
                                     inplace_on_saved, inplace_on_saved_mode_off, function_form_and_flags,
                                     decorator_form], ids=lambda f: f.__name__)
def test_errors_and_warnings_match_torch(program):
    import torch

    assert _run(ge, program) == _run(torch, program)
    assert not ge.is_anomaly_enabled()


def test_the_warning_shows_the_users_forward_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="returned nan values in its 0th output"):
            nan_backward(ge)
    (trace,) = [str(w.message) for w in caught if "Error detected in SqrtBackward0" in str(w.message)]
    assert f'File "{__file__}"' in trace and "(x.sqrt() * 0).sum().backward()" in trace
    assert "gradlens/engine" not in trace  # the engine's own frames are left out


@needs_torch
def test_training_under_anomaly_mode_computes_the_same_numbers():
    def train(lib, anomaly):
        lib.manual_seed(0)
        rng = np.random.default_rng(0)
        x = lib.tensor(rng.standard_normal((16, 4)).astype(np.float32))
        y = lib.tensor(rng.standard_normal((16, 1)).astype(np.float32))
        model = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.Tanh(), lib.nn.Linear(8, 1))
        opt = lib.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        with lib.autograd.set_detect_anomaly(anomaly):
            for _ in range(5):
                opt.zero_grad()
                loss = ((model(x) - y) ** 2).mean()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        return losses, [p.detach().numpy().copy() for p in model.parameters()]

    plain, plain_params = train(ge, False)
    checked, checked_params = train(ge, True)
    assert plain == checked
    assert all(np.array_equal(a, b) for a, b in zip(plain_params, checked_params))


def test_watching_keeps_the_anomaly_texts_on_the_native_engine():
    # gradlens.watch's saved-tensor hook raises the in-place error itself: it must read the engine's mode
    import gradlens

    plain = _run(ge, inplace_on_saved)
    with gradlens.watch(on_finding="collect") as lens:
        watched = _run(ge, inplace_on_saved)
    assert watched == plain and "Good luck!" in plain[0][1]
    assert [f.kind for f in lens.findings] == ["inplace-modified-saved"]
