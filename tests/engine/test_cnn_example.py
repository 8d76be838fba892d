"""examples/train_cnn.py (PyTorch's MNIST CNN) trains on both engines, and the native engine's loss curve is
torch's to float32 tolerance when both start from the same weights and see the same batches."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ..conftest import HAS_TORCH

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BATCH, STEPS = 16, 20


def load_example(monkeypatch, engine: str):
    """examples/train_cnn.py imported as a fresh module on ``engine`` (the example picks it from the env)."""
    monkeypatch.setenv("GRADLENS_ENGINE", engine)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "_engine", raising=False)
    spec = importlib.util.spec_from_file_location(f"train_cnn_{engine}", EXAMPLES / "train_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digits(n: int, seed: int = 0):
    """The example's kind of data (a bright square in the row band of the label), made with numpy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (0.3 * rng.standard_normal((n, 1, 28, 28))).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 2 + 2 * label:6 + 2 * label, 12:16] += 1.0
    return x, y


def as_data(lib, arrays):
    x, y = arrays
    return lib.tensor(x), lib.tensor(y, dtype=lib.int64)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_native_loss_curve_is_torchs_from_the_same_weights(monkeypatch):
    ref, nat = load_example(monkeypatch, "torch"), load_example(monkeypatch, "native")
    ref.torch.manual_seed(0)
    ref_model, nat_model = ref.Net(dropout=False), nat.Net(dropout=False)
    ref_params, nat_params = dict(ref_model.named_parameters()), dict(nat_model.named_parameters())
    assert sorted(ref_params) == sorted(nat_params)
    with nat.torch.no_grad():
        for name, p in nat_params.items():
            p.copy_(nat.torch.tensor(ref_params[name].detach().numpy()))
    arrays = digits(BATCH * 4)
    ref_losses = ref.train(STEPS, BATCH, dropout=False, model=ref_model, data=as_data(ref.torch, arrays), log=None)
    nat_losses = nat.train(STEPS, BATCH, dropout=False, model=nat_model, data=as_data(nat.torch, arrays), log=None)
    np.testing.assert_allclose(nat_losses, ref_losses, rtol=2e-4, atol=2e-5)
    assert ref_losses[-1] < 0.8 * ref_losses[0]  # it does train: a flat curve would match trivially
    for name, p in nat_params.items():  # and the weights followed the same path (float32 rounding aside)
        got, want = p.detach().numpy(), ref_params[name].detach().numpy()
        assert np.linalg.norm(got - want) <= 1e-3 * np.linalg.norm(want), name


@pytest.mark.parametrize("engine", ["native", pytest.param("torch", marks=pytest.mark.skipif(
    not HAS_TORCH, reason="torch is not installed"))])
def test_the_example_trains_with_dropout(monkeypatch, engine):
    example = load_example(monkeypatch, engine)
    losses = example.train(STEPS, BATCH, log=None)  # its own synthetic digits, dropout on
    assert all(np.isfinite(losses)) and len(losses) == STEPS
    assert min(losses[-3:]) < losses[0]
