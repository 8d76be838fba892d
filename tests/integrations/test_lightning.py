"""The Lightning callback, with real tiny Lightning fits on CPU: Lightning's accumulate_grad_batches is
declared to the watch (no false alarm), a manual-optimization loop that never clears gradients is caught."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

from gradlens.integrations.lightning import GradlensCallback  # noqa: E402


class Regressor(L.LightningModule):
    def __init__(self, manual_without_zero_grad: bool = False):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        self.buggy = manual_without_zero_grad
        self.automatic_optimization = not manual_without_zero_grad

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        if self.buggy:
            opt = self.optimizers()
            self.manual_backward(loss)  # BUG: opt.zero_grad() is never called
            opt.step()
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)
    ds = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return torch.utils.data.DataLoader(ds, batch_size=8)


def _fit(module, tmp_path, **trainer_kwargs):
    torch.manual_seed(0)
    cb = GradlensCallback(on_finding="collect")
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[cb], **trainer_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's own hints about workers and logging
        trainer.fit(module, _data())
    return cb


def test_declared_accumulation_is_not_a_bug(tmp_path):
    cb = _fit(Regressor(), tmp_path, accumulate_grad_batches=3)
    assert cb.accumulation == 3
    lens = cb.lens
    assert lens.session.steps == 2  # 6 batches / 3
    assert lens.kinds("warning") == set(), lens.report()
    (acc,) = [f for f in lens.findings if f.kind == "accumulation"]
    assert acc.severity == "info" and acc.evidence["declared"] == 3
    assert "declared accumulation=3" in acc.message


def test_plain_fit_is_clean(tmp_path):
    cb = _fit(Regressor(), tmp_path)
    assert cb.accumulation is None
    assert cb.lens.session.steps == 6
    assert cb.lens.kinds() == set(), cb.lens.report()


def test_missing_zero_grad_in_manual_optimization(tmp_path):
    cb = _fit(Regressor(manual_without_zero_grad=True), tmp_path)
    assert "missing-zero-grad" in cb.lens.kinds("error"), cb.lens.report()


def test_watch_is_closed_after_fit(tmp_path):
    cb = _fit(Regressor(), tmp_path, max_steps=2)
    from gradlens.instrument import watch as w

    assert cb.lens not in w._ACTIVE
