"""The Hugging Face callback, with real tiny Trainer runs on CPU: a GPT-2 built from a config in code (no
download), gradient_accumulation_steps declared to the watch, and a buggy custom Trainer caught."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from gradlens.integrations.huggingface import GradlensCallback  # noqa: E402


class _Tokens(torch.utils.data.Dataset):
    def __init__(self, n=24, length=8, vocab=32):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _model():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(cfg)


class _PartialOptimizer(transformers.Trainer):
    """A custom Trainer whose optimizer leaves out trainable parameters (they get gradients, never steps)."""

    def create_optimizer(self, model=None):
        # BUG: only the transformer blocks are optimised; embeddings and the final norm are trainable too
        self.optimizer = torch.optim.AdamW(self.model.transformer.h.parameters(), lr=1e-3)
        return self.optimizer


def _train(tmp_path, trainer_cls=transformers.Trainer, **args):
    cb = GradlensCallback(on_finding="collect")
    targs = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=1, learning_rate=1e-3,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True,
        dataloader_num_workers=0, seed=0, **args)
    trainer = trainer_cls(model=_model(), args=targs, train_dataset=_Tokens(), callbacks=[cb])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return cb


def test_gradient_accumulation_steps_is_declared(tmp_path):
    cb = _train(tmp_path, gradient_accumulation_steps=2)
    assert cb.accumulation == 2
    lens = cb.lens
    assert lens.session.steps == 3  # 24 samples / 4 per batch / 2 per step
    assert lens.kinds("warning") == set(), lens.report()
    (acc,) = [f for f in lens.findings if f.kind == "accumulation"]
    assert acc.severity == "info" and acc.evidence["declared"] == 2


def test_plain_training_is_clean(tmp_path):
    cb = _train(tmp_path)
    assert cb.accumulation is None and cb.lens.session.steps == 6
    assert cb.lens.kinds("warning") == set(), cb.lens.report()


def test_custom_trainer_whose_optimizer_misses_parameters(tmp_path):
    cb = _train(tmp_path, trainer_cls=_PartialOptimizer)
    assert "param-not-in-optimizer" in cb.lens.kinds("warning"), cb.lens.report()
