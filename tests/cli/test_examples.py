"""The examples: each buggy script triggers its rule and its fixed twin gives no finding, on the native
engine and on torch (``--engine torch``)."""

from __future__ import annotations

import json

import pytest

from gradlens.cli import EXIT_FINDINGS, EXIT_OK

from ..conftest import HAS_TORCH
from .conftest import REPO

EXAMPLES = REPO / "examples"
PAIRS = {
    "zero_grad": "missing-zero-grad",
    "loss_history": "graph-retained",
    "eval_no_grad": "graph-without-backward",
    "retain_graph": "unexpected-accumulation",
    "cnn": "missing-zero-grad",
}
ENGINES = ["native",
           pytest.param("torch", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch not installed"))]


def report(cli, tmp_path, script: str, engine: str) -> tuple[int, dict]:
    out = tmp_path / f"{script}-{engine}.json"
    path = EXAMPLES / f"{script}.py"
    status, _, err = cli("report", "--format", "json", "-o", out, path, "--engine", engine)
    assert "Traceback" not in err, err
    return status, json.loads(out.read_text())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_buggy_example_is_reported(cli, tmp_path, pair, engine):
    status, data = report(cli, tmp_path, f"{pair}_bug", engine)
    kinds = {f["kind"] for f in data["findings"]}
    assert PAIRS[pair] in kinds
    assert status == EXIT_FINDINGS and data["exit_status"] == 0 and data["engines"] == [engine]
    finding = next(f for f in data["findings"] if f["kind"] == PAIRS[pair])
    assert finding["location"]["file"].endswith(f"{pair}_bug.py")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_fixed_twin_is_clean(cli, tmp_path, pair, engine):
    status, data = report(cli, tmp_path, f"{pair}_fixed", engine)
    assert data["findings"] == [] and status == EXIT_OK
    assert data["steps"] > 0


def test_every_example_has_a_twin():
    names = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    for pair in PAIRS:
        assert {f"{pair}_bug", f"{pair}_fixed"} <= names


def test_readme_report_output_is_what_the_command_prints():
    """README's first `gradlens report` command prints what README shows (its stable lines)."""
    import re

    from .conftest import run_subprocess

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pip install -e . && gradlens report examples/loss_history_bug.py" in readme
    shown = re.search(r"```text\n(epoch 1.*?)```", readme, re.S).group(1)
    done = run_subprocess("report", "examples/loss_history_bug.py", cwd=REPO)
    assert done.returncode == EXIT_FINDINGS, done.stderr
    stable = [line for line in shown.splitlines()
              if line.startswith(("epoch", "gradlens", "ERROR", "  examples/", "    > "))]
    printed = done.stdout.splitlines()
    assert stable and all(line in printed for line in stable), (stable, printed)


def test_the_retained_graph_of_the_readme_example(cli, tmp_path):
    """README's picture: --dot-dir writes the graph held by total_loss, earlier-step nodes marked."""
    graphs = tmp_path / "graphs"
    status, _, _ = cli("report", "--dot-dir", graphs, EXAMPLES / "loss_history_bug.py")
    assert status == EXIT_FINDINGS
    text = (graphs / "finding-01-graph-retained.dot").read_text()
    assert text.startswith("digraph gradlens {") and "step 1" in text
    assert (REPO / "docs" / "retained-graph.svg").exists()
