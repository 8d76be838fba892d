"""``--fix`` for ``zero-grad-before-step``: the ``zero_grad()`` between ``backward()`` and ``step()`` moves
to just after the ``step()``. Round trip on both engines for two loop shapes (the diff applies with
``git apply``; the fixed script runs clean), and the writer's refusals for shapes it cannot move."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from gradlens.findings import Finding, Location
from gradlens.fixes import FileFix, early_clear
from gradlens.fixes.source import SourceFile

from .test_fix import _apply, _engine, _rules

HEADER = """\
import os

if os.environ.get("GRADLENS_ENGINE") == "torch":
    import torch
else:
    import gradlens.engine as torch

torch.manual_seed(0)
x, y = torch.randn(16, 4), torch.randn(16, 1)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
"""
LOOPS = {
    "plain": """\
for step in range(5):
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.zero_grad()
    opt.step()
print(f"loss {loss.item():.4f}")
""",
    "helper": """\
def train_step():
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    opt.step()
    return loss.item()


for step in range(5):
    last = train_step()
print(f"loss {last:.4f}")
""",
}


@pytest.mark.skipif(shutil.which("git") is None, reason="git apply is the check")
@pytest.mark.parametrize("engine", ["native", "torch"])
@pytest.mark.parametrize("shape", sorted(LOOPS))
def test_the_moved_clear_runs_clean(cli, tmp_path, monkeypatch, engine, shape):
    _engine(monkeypatch, engine)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(HEADER + LOOPS[shape])
    status, diff, err = cli("report", "--fix", "train.py")
    assert status == 1 and "zero-grad-before-step" in err and "1 fix (zero-grad-before-step at train.py:" in err
    _apply(diff, tmp_path)
    fixed = (tmp_path / "train.py").read_text().splitlines()
    step = next(i for i, line in enumerate(fixed) if "opt.step()" in line)
    assert "zero_grad(" in fixed[step + 1] and "zero_grad(" not in "".join(fixed[:step])
    status, out, err = cli("report", "train.py")
    assert status == 0, out + err
    assert "zero-grad-before-step" not in _rules(out) and "no findings" in out


def _fixed(code: str, step_marker: str = "# STEP"):
    code = textwrap.dedent(code)
    lines = code.splitlines()
    clear = next(i for i, t in enumerate(lines, 1) if "# CLEAR" in t)
    step = next(i for i, t in enumerate(lines, 1) if step_marker in t)
    src = SourceFile("t.py", code)
    f = Finding(kind="zero-grad-before-step", severity="error", message="m", location=Location("t.py", clear, "f"),
                related_locations=(Location("t.py", step, "f"),))
    result = early_clear.fix(f, src)
    if isinstance(result, str):
        return result
    fix = FileFix("t.py", "t.py", list(src.lines))
    assert fix.accepts(result)
    return "".join(fix.patched())


def test_a_multi_line_clear_moves_whole():
    out = _fixed("""
        for b in batches:
            loss(b).backward()
            opt.zero_grad(  # CLEAR
                set_to_none=True)
            opt.step()  # STEP
            log(b)
        """)
    assert out.splitlines()[3:7] == ["    opt.step()  # STEP", "    opt.zero_grad(  # CLEAR",
                                     "        set_to_none=True)", "    log(b)"]


def test_a_clear_in_another_block_than_the_step_is_left_to_the_user():
    out = _fixed("""
        for b in batches:
            loss(b).backward()
            if b.flag:
                opt.zero_grad()  # CLEAR
            opt.step()  # STEP
        """)
    assert out == "zero_grad() and step() are not in the same block; move the clear after step() by hand"


def test_a_line_that_is_not_a_clear_is_refused():
    out = _fixed("""
        for b in batches:
            loss(b).backward()  # CLEAR
            opt.step()  # STEP
        """)
    assert out == "the finding's line is not a zero_grad() call"
