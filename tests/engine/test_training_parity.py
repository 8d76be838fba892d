"""Ordinary torch training loops run unchanged on gradlens.engine: each loop below is ONE function taking
``lib`` (the torch module or ``gradlens.engine``), run once per engine from the same initial weights
(generated once as numpy arrays and copied into both models; no RNG is shared) on the same data.

Compared: the loss at every step and every final parameter. Tolerance: float64, relative 1e-9 (absolute
1e-12) after all steps; the observed differences are 1e-16..1e-13 (rounding of numpy vs torch kernels,
not amplified by these loops). One float32 loop checks the default dtype at relative 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH

RTOL, ATOL = 1e-9, 1e-12


@pytest.fixture
def torch():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    return torch


def _needs_nn():
    try:
        import gradlens.engine.nn as nn

        nn.Linear, nn.MSELoss, nn.CrossEntropyLoss, nn.functional, nn.utils.clip_grad_norm_  # noqa: B018
    except (ImportError, AttributeError) as exc:  # pragma: no cover - while gradlens.engine.nn is written
        pytest.skip(f"gradlens.engine.nn is not available yet: {exc}")


RNG = np.random.default_rng(2024)


def _init(*shapes):
    """Initial weights as float64 arrays, drawn once and shared by both engines."""
    return [RNG.uniform(-0.5, 0.5, size=s) for s in shapes]


def _load(lib, model, arrays):
    """Copy ``arrays`` into the model's parameters (in ``parameters()`` order)."""
    params = list(model.parameters())
    assert [tuple(p.shape) for p in params] == [a.shape for a in arrays]
    with lib.no_grad():
        for p, a in zip(params, arrays, strict=True):
            p.copy_(lib.tensor(a))
    return model


def _mlp(lib, sizes, act, arrays, double=True):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(lib.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    model = lib.nn.Sequential(*layers)
    return _load(lib, model.double() if double else model, arrays)


def _mlp_arrays(sizes):
    shapes = []
    for i in range(len(sizes) - 1):
        shapes += [(sizes[i + 1], sizes[i]), (sizes[i + 1],)]
    return _init(*shapes)


def _params_np(params):
    return [p.detach().numpy().copy() if hasattr(p.detach(), "numpy") else np.array(p._data) for p in params]


def run_both(torch, loop, *args, needs_nn=True, rtol=RTOL, atol=ATOL):
    """Run ``loop(lib, *args) -> (losses, params)`` on both engines and compare step by step."""
    if needs_nn:
        _needs_nn()
    t_losses, t_params = loop(torch, *args)
    g_losses, g_params = loop(ge, *args)
    assert len(t_losses) == len(g_losses) > 0
    np.testing.assert_allclose(np.array(g_losses), np.array(t_losses), rtol=rtol, atol=atol, err_msg="losses")
    assert len(t_params) == len(g_params)
    for i, (a, b) in enumerate(zip(_params_np(t_params), _params_np(g_params), strict=True)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f"final parameter {i}")
    return t_losses, g_losses


# --- data ---------------------------------------------------------------------------------------------------
X_REG = RNG.normal(size=(32, 3))
Y_REG = np.sin(X_REG.sum(1, keepdims=True)) + 0.1 * X_REG[:, :1] ** 2
X_CLS = RNG.normal(size=(48, 4))
Y_CLS = (X_CLS[:, 0] > 0).astype(np.int64) + (X_CLS[:, 1] > 0.5).astype(np.int64)


# --- loops (each runs unchanged on torch and on gradlens.engine) -------------------------------------------
def regression_sgd_nesterov(lib, arrays, steps=40):
    model = _mlp(lib, [3, 16, 1], lib.nn.Tanh, arrays)
    loss_fn = lib.nn.MSELoss()
    opt = lib.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    x, y = lib.tensor(X_REG), lib.tensor(Y_REG)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, list(model.parameters())


def regression_float32_default_dtype(lib, arrays, steps=40):
    model = _mlp(lib, [3, 16, 1], lib.nn.Tanh, arrays, double=False)
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    x, y = lib.tensor(X_REG, dtype=lib.float32), lib.tensor(Y_REG, dtype=lib.float32)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = lib.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model[0].weight.dtype == lib.float32
    return losses, list(model.parameters())


def classification_adam(lib, arrays, epochs=4):
    model = _mlp(lib, [4, 16, 3], lib.nn.ReLU, arrays)
    loss_fn = lib.nn.CrossEntropyLoss()
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    loader = lib.utils.data.DataLoader(lib.utils.data.TensorDataset(lib.tensor(X_CLS), lib.tensor(Y_CLS)),
                                       batch_size=8, shuffle=False)
    losses = []
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with lib.no_grad():
            acc = (model(lib.tensor(X_CLS)).argmax(dim=1) == lib.tensor(Y_CLS)).float().mean()
        losses.append(acc.item())
    return losses, list(model.parameters())


def adamw_weight_decay_with_scheduler(lib, arrays, steps=30):
    model = _mlp(lib, [3, 16, 1], lib.nn.Tanh, arrays)
    opt = lib.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.1)
    sched = lib.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    x, y = lib.tensor(X_REG), lib.tensor(Y_REG)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = lib.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses, list(model.parameters())


def rnn_cell_truncated_bptt(lib, arrays, seq_len=24, chunk=6):
    W, U, b, V = (lib.tensor(a, requires_grad=True) for a in arrays)
    opt = lib.optim.SGD([W, U, b, V], lr=0.05)
    xs = lib.tensor(np.sin(np.linspace(0, 6, seq_len * 2)).reshape(seq_len, 2, 1) * np.ones((1, 1, 3)))
    targets = lib.tensor(np.cos(np.linspace(0, 6, seq_len * 2)).reshape(seq_len, 2, 1))
    h = lib.zeros(2, 5, dtype=lib.float64)
    losses = []
    for start in range(0, seq_len, chunk):
        h = h.detach()
        loss = 0
        for t in range(start, start + chunk):
            h = lib.tanh(xs[t] @ W + h @ U + b)
            loss = loss + ((h @ V - targets[t]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [W, U, b, V]


def gan_two_optimizers(lib, arrays, steps=15):
    g_arrays, d_arrays = arrays[:4], arrays[4:]
    gen = _mlp(lib, [2, 6, 2], lib.nn.Tanh, g_arrays)
    disc = _mlp(lib, [2, 8, 1], lib.nn.Tanh, d_arrays)
    opt_g = lib.optim.Adam(gen.parameters(), lr=0.01, betas=(0.5, 0.999))
    opt_d = lib.optim.Adam(disc.parameters(), lr=0.01, betas=(0.5, 0.999))
    bce = lib.nn.functional.binary_cross_entropy_with_logits
    real = lib.tensor(np.stack([np.linspace(-1, 1, 16), np.linspace(1, 2, 16)], 1))
    noise = lib.tensor(np.stack([np.cos(np.arange(16.0)), np.sin(np.arange(16.0))], 1))
    ones, zeros = lib.ones(16, 1, dtype=lib.float64), lib.zeros(16, 1, dtype=lib.float64)
    losses = []
    for _ in range(steps):
        fake = gen(noise)
        opt_d.zero_grad()
        loss_d = bce(disc(real), ones) + bce(disc(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = bce(disc(fake), ones)
        loss_g.backward()
        opt_g.step()
        losses += [loss_d.item(), loss_g.item()]
    return losses, list(gen.parameters()) + list(disc.parameters())


def manual_sgd(lib, arrays, steps=40, lr=0.1):
    w, b = (lib.tensor(a, requires_grad=True) for a in arrays)
    x, y = lib.tensor(X_REG), lib.tensor(Y_REG)
    losses = []
    for _ in range(steps):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with lib.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
            w.grad.zero_()
            b.grad.zero_()
        losses.append(loss.item())
    return losses, [w, b]


def gradient_accumulation(lib, arrays, steps=10, micro=4):
    model = _mlp(lib, [3, 16, 1], lib.nn.Tanh, arrays)
    loss_fn = lib.nn.MSELoss()
    opt = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    x, y = lib.tensor(X_REG), lib.tensor(Y_REG)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for xm, ym in zip(x.chunk(micro), y.chunk(micro), strict=True):
            loss = loss_fn(model(xm), ym) / micro
            loss.backward()
            total += loss.item()
        opt.step()
        losses.append(total)
    return losses, list(model.parameters())


def clip_grad_norm_loop(lib, arrays, steps=20):
    model = _mlp(lib, [3, 16, 1], lib.nn.Tanh, arrays)
    opt = lib.optim.SGD(model.parameters(), lr=0.5)
    x, y = lib.tensor(X_REG), lib.tensor(Y_REG * 10)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = lib.nn.functional.mse_loss(model(x), y)
        loss.backward()
        norm = lib.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        losses += [loss.item(), float(norm)]
    return losses, list(model.parameters())


# --- tests --------------------------------------------------------------------------------------------------
def test_regression_mlp_mse_sgd_nesterov(torch):
    losses, _ = run_both(torch, regression_sgd_nesterov, _mlp_arrays([3, 16, 1]))
    assert losses[-1] < losses[0]


def test_float32_regression_adam(torch):
    # float32 (the default dtype): rounding differs at 1e-7 per op, so the bound is float32's
    run_both(torch, regression_float32_default_dtype, _mlp_arrays([3, 16, 1]), rtol=1e-5, atol=1e-6)


def test_classification_mlp_cross_entropy_adam(torch):
    run_both(torch, classification_adam, _mlp_arrays([4, 16, 3]))


def test_adamw_weight_decay_and_step_lr(torch):
    run_both(torch, adamw_weight_decay_with_scheduler, _mlp_arrays([3, 16, 1]))


def test_rnn_cell_truncated_bptt(torch):
    run_both(torch, rnn_cell_truncated_bptt, _init((3, 5), (5, 5), (5,), (5, 1)), needs_nn=False)


def test_gan_two_optimizers_and_detach(torch):
    run_both(torch, gan_two_optimizers, _mlp_arrays([2, 6, 2]) + _mlp_arrays([2, 8, 1]))


def test_manual_sgd_no_grad_update(torch):
    losses, _ = run_both(torch, manual_sgd, _init((3, 1), (1,)), needs_nn=False)
    assert losses[-1] < losses[0]


def test_gradient_accumulation(torch):
    run_both(torch, gradient_accumulation, _mlp_arrays([3, 16, 1]))


def test_clip_grad_norm(torch):
    run_both(torch, clip_grad_norm_loop, _mlp_arrays([3, 16, 1]))


def test_manual_loop_runs_without_torch():
    # the engine alone: the manual loop learns, and version counters moved as in-place updates do
    losses, (w, b) = manual_sgd(ge, _init((3, 1), (1,)), steps=30)
    assert losses[-1] < 0.7 * losses[0]
    # a zero_() per step, and an in-place accumulation from step 2 on
    assert w._version == 30 and w.grad._version == 59
