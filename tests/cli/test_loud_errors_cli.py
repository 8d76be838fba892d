"""`gradlens report` on scripts that hit torch's loud autograd errors (subprocess, real torch): the script's
traceback ends with the engine's own message, byte for byte as an unwatched run prints it, the engine's
warnings are printed unchanged, and the JSON report carries the explaining finding beside the crash."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ..instrument import loud_cases as lc
from .conftest import REPO, run_subprocess

pytest.importorskip("torch")

SCRIPT = """import sys
import torch
sys.path.insert(0, {repo!r})
from tests.instrument.loud_cases import {name}
torch.manual_seed(0)
{name}(torch)
"""
CASES = [("leaf-rebound", lc.bug_leaf_rebound), ("inplace-on-leaf", lc.bug_inplace_on_leaf),
         ("inplace-modified-saved", lc.bug_inplace_modified_saved),
         ("backward-through-freed-graph", lc.bug_gan_fake_not_detached), ("graph-cut", lc.bug_cut_by_no_grad)]


def _last_line(stderr: str) -> str:
    """The traceback's final line (``RuntimeError: <text>``); gradlens's own hints come after it."""
    return [ln for ln in stderr.splitlines() if re.match(r"\w+(Error|Exception): ", ln)][-1]


def _warnings(stderr: str) -> list[str]:
    return [ln.split(": ", 1)[1] for ln in stderr.splitlines() if "UserWarning: " in ln]


@pytest.mark.parametrize("rule,fn", CASES, ids=[r for r, _ in CASES])
def test_report_keeps_the_error_and_explains_it(tmp_path, rule, fn):
    script = tmp_path / f"{fn.__name__}.py"
    script.write_text(SCRIPT.format(repo=str(REPO), name=fn.__name__))
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
    assert plain.returncode == 1
    report = tmp_path / "report.json"
    res = run_subprocess("report", "--format", "json", "-o", report, script, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert _last_line(res.stderr) == _last_line(plain.stderr)  # "RuntimeError: <torch's text>"
    assert _warnings(res.stderr) == _warnings(plain.stderr)
    data = json.loads(report.read_text())
    assert data["crash"]["message"] == _last_line(plain.stderr).split(": ", 1)[1]
    found = [f for f in data["findings"] if f["kind"] == rule]
    assert len(found) == 1, data["findings"]
    assert found[0]["location"]["line"] == lc.marked_line(fn, "ROOT")
    assert found[0]["location"]["file"].endswith("loud_cases.py")


EXAMPLE_PAIRS = {"leaf_rebound": ("leaf-rebound", "w = w - lr * w.grad"),
                 "gan_detach": ("backward-through-freed-graph", "D(fake), zeros")}


@pytest.mark.parametrize("engine", ["native", "torch"])
@pytest.mark.parametrize("pair", sorted(EXAMPLE_PAIRS))
def test_loud_error_examples(cli, tmp_path, pair, engine):
    """The buggy example crashes with the engine's error and gets the finding at its BUG line; its twin
    runs to the end without a finding."""
    rule, code = EXAMPLE_PAIRS[pair]
    out = tmp_path / "bug.json"
    status, _, err = cli("report", "--format", "json", "-o", out, REPO / "examples" / f"{pair}_bug.py",
                         "--engine", engine)
    data = json.loads(out.read_text())
    assert status == 1 and data["crash"] is not None and "Traceback" in err
    (f,) = [f for f in data["findings"] if f["kind"] == rule]
    line = (REPO / "examples" / f"{pair}_bug.py").read_text().splitlines()[f["location"]["line"] - 1]
    assert code in line and "# BUG" in line
    out = tmp_path / "fixed.json"
    status, _, _ = cli("report", "--format", "json", "-o", out, REPO / "examples" / f"{pair}_fixed.py",
                       "--engine", engine)
    data = json.loads(out.read_text())
    assert status == 0 and data["findings"] == [] and data["crash"] is None
