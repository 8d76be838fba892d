"""PyTorch's own example scripts run unchanged on the native engine with synthetic data, as on torch.

The scripts are not copied into this repository (they are pytorch/examples' code, BSD-3-Clause): point
``GRADLENS_PYTORCH_EXAMPLES`` at a checkout of https://github.com/pytorch/examples (checked at 77f55b9) and
these tests run each script through ``scripts/harness.py``; without it they skip. Each run is a few steps
(``--dry-run`` or one tiny epoch); the scripts seed their own weights from each engine's RNG, so losses are
checked for being finite numbers in a sane range on both engines, not equal."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "scripts", "harness.py")
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("GRADLENS_PYTORCH_EXAMPLES", "")

pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(EXAMPLES, "mnist", "main.py")),
                                reason="set GRADLENS_PYTORCH_EXAMPLES to a checkout of github.com/pytorch/examples")

SCRIPTS = {
    "mnist": ["mnist/main.py", "--epochs", "1", "--dry-run"],
    "mnist_rnn": ["mnist_rnn/main.py", "--epochs", "1", "--dry-run"],
    "vae": ["vae/main.py", "--epochs", "1"],
    "regression": ["regression/main.py"],
    "forward_forward": ["mnist_forward_forward/main.py", "--epochs", "2", "--train_size", "128", "--test_size",
                        "64"],
    "dcgan": ["dcgan/main.py", "--dataset", "fake", "--niter", "1", "--dry-run", "--imageSize", "64", "--batchSize",
              "8", "--outf", "out"],
    "wlm_lstm": ["word_language_model/main.py", "--data", "corpus", "--epochs", "1", "--dry-run", "--model", "LSTM",
                 "--emsize", "16", "--nhid", "16", "--bptt", "8"],
    "wlm_transformer": ["word_language_model/main.py", "--data", "corpus", "--epochs", "1", "--dry-run", "--model",
                        "Transformer", "--emsize", "16", "--nhid", "16", "--nhead", "2", "--bptt", "8"],
    # torch.diag, sparse COO tensors (to_sparse, sparse_coo_tensor, dense + sparse, spmm); 10 epochs so that two
    # training report lines are printed besides the test result
    "gcn": ["gcn/main.py", "--epochs", "10", "--val-every", "5"],
}

_LOSS = re.compile(r"(?:[Ll]oss(?:_[DG]|_train|_val)?|loss)\s*[:=]?\s+(-?[0-9.]+(?:e-?[0-9]+)?)")


def _run(engine: str, args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", GRADLENS_SYNTH_SIZE="128")
    script, *rest = args
    return subprocess.run([sys.executable, "-W", "ignore", HARNESS, engine, os.path.join(EXAMPLES, script), *rest],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _losses(stdout: str) -> list[float]:
    return [float(m) for m in _LOSS.findall(stdout)]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_example_runs_unchanged_on_the_native_engine(name, tmp_path):
    res = _run("native", SCRIPTS[name], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = _losses(res.stdout)
    assert losses, res.stdout[-2000:]
    assert all(math.isfinite(v) and abs(v) < 1e4 for v in losses), losses


@pytest.mark.parametrize("name", ["mnist", "wlm_transformer", "gcn"])
def test_example_runs_on_torch_too(name, tmp_path):
    pytest.importorskip("torch")
    res = _run("torch", SCRIPTS[name], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    native = _losses(_run("native", SCRIPTS[name], tmp_path).stdout)
    ref = _losses(res.stdout)
    assert len(native) == len(ref)  # same steps and reports; values differ by the engines' weight RNGs
