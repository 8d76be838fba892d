"""Helpers for the command-line tests: write small scripts and run ``gradlens`` in-process or as a
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradlens.cli import main

REPO = Path(__file__).resolve().parents[2]

# A native-engine loop that never calls zero_grad(): one missing-zero-grad error after step 2.
BUGGY_LOOP = """
import gradlens.engine as torch
nn = torch.nn
torch.manual_seed(0)
model = nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(8, 3), torch.randn(8, 1)
for step in range(4):
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
"""

CLEAN_LOOP = BUGGY_LOOP.replace("    loss = nn", "    opt.zero_grad()\n    loss = nn")


@pytest.fixture
def script(tmp_path):
    """``script(body, name="train.py")`` writes a script into a fresh folder and returns its path."""
    def write(body: str, name: str = "train.py") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path
    return write


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (status, stdout, stderr)``: ``gradlens`` run in-process."""
    def run(*args: str):
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err
    return run


def run_subprocess(*args: str, cwd: Path | None = None,
                   env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m gradlens ARGS`` in a fresh interpreter (stdin closed, output captured)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.pop("FORCE_COLOR", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "gradlens", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
