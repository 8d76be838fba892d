"""``gradlens report --fix``: the diff round trip on every example with a mechanical fix and on generated
zoo-style programs, on both engines: run the buggy script, apply the printed diff with ``git apply`` (and
``patch -p1``), run it again: the rule is gone and the script still runs. Also: nothing is written without
``--apply``, ``--apply`` keeps a backup, findings without a mechanical fix say why.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.stress import programs as P

from .conftest import REPO

EXAMPLES = REPO / "examples"
FIXABLE = {  # example -> the rule its --fix removes (retain_graph_bug has none: tested below)
    "cnn": "missing-zero-grad",
    "zero_grad": "missing-zero-grad",
    "loss_history": "graph-retained",
    "eval_no_grad": "graph-without-backward",
    "manual_loop": "missing-zero-grad",
    "leaf_rebound": "leaf-rebound",
    "gan_detach": "backward-through-freed-graph",
}
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git apply is the check")


@pytest.fixture
def examples(tmp_path, monkeypatch):
    """A copy of examples/ as the current directory (the run's root)."""
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(work)
    return work


def _engine(monkeypatch, engine: str) -> None:
    if engine == "torch":
        pytest.importorskip("torch")
    monkeypatch.setenv("GRADLENS_ENGINE", engine)


def _apply(diff: str, cwd, tool: str = "git") -> None:
    cmd = ["git", "apply", "-"] if tool == "git" else ["patch", "-p1", "--batch", "--forward"]
    done = subprocess.run(cmd, input=diff, text=True, capture_output=True, cwd=cwd, timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr, diff)


def _rules(out: str) -> set[str]:
    return {line.split()[1] for line in out.splitlines() if line.startswith(("ERROR ", "WARNING ", "INFO "))}


@needs_git
@pytest.mark.parametrize("engine", ["native", "torch"])
@pytest.mark.parametrize("name", sorted(FIXABLE))
def test_example_fixed_by_the_diff_runs_clean(cli, examples, monkeypatch, engine, name):
    _engine(monkeypatch, engine)
    script = f"{name}_bug.py"
    before = (examples / script).read_text()
    status, diff, err = cli("report", "--fix", script)
    assert status != 0 and FIXABLE[name] in err  # the report went to stderr, with the finding
    assert diff.startswith(f"--- a/{script}\n+++ b/{script}\n"), diff  # stdout is the diff alone
    assert f"1 fix ({FIXABLE[name]} at {script}:" in err
    assert (examples / script).read_text() == before  # --fix alone writes nothing
    _apply(diff, examples)
    status, out, err = cli("report", script)
    assert status == 0, out + err
    assert FIXABLE[name] not in _rules(out) and "no findings" in out


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch")
def test_patch_p1_accepts_the_diff(cli, examples, monkeypatch):
    _engine(monkeypatch, "native")
    _, diff, _ = cli("report", "--fix", "zero_grad_bug.py")
    _apply(diff, examples, tool="patch")
    status, out, err = cli("report", "zero_grad_bug.py")
    assert status == 0, out + err


def test_apply_writes_the_fix_and_a_backup(cli, examples, monkeypatch):
    _engine(monkeypatch, "native")
    original = (examples / "loss_history_bug.py").read_text()
    status, diff, err = cli("report", "--fix", "--apply", "loss_history_bug.py")
    assert status == 1 and "wrote" in err and "loss_history_bug.py.orig" in err
    assert (examples / "loss_history_bug.py.orig").read_text() == original
    fixed = (examples / "loss_history_bug.py").read_text()
    assert "total_loss += loss.item()" in fixed and "mean loss {total_loss / 16:.4f}" in fixed
    assert cli("report", "loss_history_bug.py")[0] == 0


def test_finding_without_a_mechanical_fix_says_why(cli, examples, monkeypatch):
    _engine(monkeypatch, "native")
    status, diff, err = cli("report", "--fix", "retain_graph_bug.py")
    assert status == 1 and diff == ""
    assert "no automatic fix for unexpected-accumulation at retain_graph_bug.py:" in err
    assert "nothing to fix automatically" in err


def test_fix_from_a_saved_record(cli, examples, monkeypatch):
    _engine(monkeypatch, "native")
    cli("report", "--format", "json", "-o", "run.json", "eval_no_grad_bug.py")
    status, diff, err = cli("report", "--fix", "run.json")
    assert status == 1 and diff.startswith("--- a/eval_no_grad_bug.py") and "no_grad():" in diff


def test_a_file_changed_since_the_run_is_not_patched(cli, examples, monkeypatch):
    _engine(monkeypatch, "native")
    cli("report", "--format", "json", "-o", "run.json", "loss_history_bug.py")
    path = examples / "loss_history_bug.py"
    path.write_text(path.read_text().replace("total_loss += loss  #", "total_loss += loss * 1  #"))
    status, diff, err = cli("report", "--fix", "run.json")
    assert diff == "" and "changed since the run" in err


def test_apply_needs_fix(cli, examples):
    status, _, err = cli("report", "--apply", "zero_grad_bug.py")
    assert status == 2 and "--fix --apply" in err


# --- zoo-style programs (tests/stress/programs.py): the injected bug fixed by the diff -----------------
ZOO = [
    P.Spec(seed=7, bug="missing-zero-grad", variant="forgotten"),
    P.Spec(seed=11, bug="missing-zero-grad", variant="forgotten"),
    P.Spec(seed=3, bug="graph-retained", variant=P.variants(P.generate(3), "graph-retained")[0]),
    P.Spec(seed=5, evaluation="function", bug="graph-without-backward", variant="no_decorator"),
    P.Spec(seed=5, model="two_head", evaluation="no_grad", bug="graph-without-backward", variant="no_guard"),
]

DRIVER = """\
import sys
import program
if sys.argv[1:] == ["torch"]:
    import torch as engine
else:
    import gradlens.engine as engine
program.train(engine)
"""


@needs_git
@pytest.mark.parametrize("engine", ["native", "torch"])
@pytest.mark.parametrize("spec", ZOO, ids=[f"{s.bug}-{s.variant}-{s.seed}" for s in ZOO])
def test_zoo_program_fixed_by_the_diff(cli, tmp_path, monkeypatch, engine, spec):
    if engine == "torch":
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delitem(sys.modules, "program", raising=False)
    (tmp_path / "program.py").write_text(P.render(spec))
    (tmp_path / "driver.py").write_text(DRIVER)
    status, diff, err = cli("report", "--fix", "driver.py", engine)
    assert spec.bug in err, err
    assert diff.startswith("--- a/program.py"), err
    _apply(diff, tmp_path)
    sys.modules.pop("program", None)
    status, out, err = cli("report", "driver.py", engine)
    assert spec.bug not in _rules(out), out + err
    assert status == 0, out + err


# --- the fix writers on shapes the examples do not have ---------------------------------------------------
def _plan(tmp_path, source: str, kind: str, line_of: str, subject=(), related_line: str | None = None):
    from gradlens.findings import Finding, Location
    from gradlens.fixes import plan_fixes
    from gradlens.record import RunRecord

    path = tmp_path / "train.py"
    path.write_text(source)
    lines = source.splitlines()
    line = next(i for i, text in enumerate(lines, 1) if line_of in text)
    related = ()
    if related_line is not None:
        related = (Location(str(path), next(i for i, t in enumerate(lines, 1) if related_line in t), "main"),)
    finding = Finding(kind, "error", "m", Location(str(path), line, "main"), subject=tuple(subject),
                      related_locations=related)
    return plan_fixes(RunRecord(command=("train.py",), root=str(tmp_path), findings=(finding,)))


def test_append_of_a_loss_becomes_item(tmp_path):
    plan = _plan(tmp_path, "losses = []\nfor x in data:\n    loss = f(x)\n    losses.append(loss)\n",
                 "graph-retained", "losses.append", subject=("losses[0]",))
    assert "+    losses.append(loss.item())\n" in plan.diff()


def test_zero_grad_goes_first_in_the_loop_with_its_tab_indentation(tmp_path):
    src = "import torch\nfor x in data:\n\tloss = model(x).sum()\n\tloss.backward()\n\topt.step()\n"
    plan = _plan(tmp_path, src, "missing-zero-grad", "loss.backward()")
    assert "+\topt.zero_grad()\n \tloss = model(x).sum()\n" in plan.diff()


def test_zero_grad_after_a_conditional_step_keeps_accumulation(tmp_path):
    src = ("import torch\nfor i, x in enumerate(data):\n    model(x).sum().backward()\n"
           "    if i % 4 == 3:\n        opt.step()\n")
    plan = _plan(tmp_path, src, "missing-zero-grad", "opt.step()")
    assert "         opt.step()\n+        opt.zero_grad()\n" in plan.diff()


def test_a_value_over_several_lines_is_left_to_the_user(tmp_path):
    src = "total = 0\nfor x in data:\n    total += (f(x) +\n              g(x))\n"
    plan = _plan(tmp_path, src, "graph-retained", "total +=", subject=("total",))
    assert plan.diff() == "" and "several lines" in plan.skipped[0].reason


def test_library_code_outside_the_run_is_never_patched(tmp_path):
    from gradlens.findings import Finding, Location
    from gradlens.fixes import plan_fixes
    from gradlens.record import RunRecord

    inside = tmp_path / "run"
    inside.mkdir()
    outside = tmp_path / "lib.py"
    outside.write_text("total += loss\n")
    finding = Finding("graph-retained", "error", "m", Location(str(outside), 1, "f"), subject=("total",))
    plan = plan_fixes(RunRecord(command=("train.py",), root=str(inside), findings=(finding,)))
    assert plan.diff() == "" and "outside the run's directory" in plan.skipped[0].reason


# --- the instrument's own bug catalogues: manual loops and loud errors, patched in a copy -----------------
INSTRUMENT = REPO / "tests" / "instrument"
CASES = [  # (catalogue file, function, keyword arguments that make it buggy, the rule its fix removes)
    ("manual_loops.py", "bare_sub_", "clear=None", "missing-zero-grad"),
    ("manual_loops.py", "bare_isub", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "bare_copy_", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "bare_data_isub", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "bare_data_assign", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "module_data_add_", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "module_data_isub", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "module_isub_no_grad", "clear=False", "missing-zero-grad"),
    ("manual_loops.py", "bare_total_loss", "detach=False", "graph-retained"),
    ("loud_cases.py", "bug_leaf_rebound", "", "leaf-rebound"),
    ("loud_cases.py", "bug_inplace_on_leaf", "", "inplace-on-leaf"),
    ("loud_cases.py", "bug_hidden_state_not_detached", "", "backward-through-freed-graph"),
    ("loud_cases.py", "bug_rnn_module_state", "", "backward-through-freed-graph"),
    ("loud_cases.py", "bug_gan_fake_not_detached", "", "backward-through-freed-graph"),
]

CASE_DRIVER = """\
import sys
import cases
if sys.argv[1:] == ["torch"]:
    import torch as engine
else:
    import gradlens.engine as engine
cases.{fn}(engine{kwargs})
"""


@needs_git
@pytest.mark.parametrize("engine", ["native", "torch"])
@pytest.mark.parametrize("catalogue,fn,kwargs,rule", CASES, ids=[c[1] for c in CASES])
def test_catalogue_case_fixed_by_the_diff(cli, tmp_path, monkeypatch, engine, catalogue, fn, kwargs, rule):
    if engine == "torch":
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delitem(sys.modules, "cases", raising=False)
    shutil.copy(INSTRUMENT / catalogue, tmp_path / "cases.py")
    (tmp_path / "driver.py").write_text(CASE_DRIVER.format(fn=fn, kwargs=f", {kwargs}" if kwargs else ""))
    status, diff, err = cli("report", "--fix", "driver.py", engine)
    assert rule in err and status != 0, err
    assert diff.startswith("--- a/cases.py\n+++ b/cases.py\n"), err
    assert f"({rule} at cases.py:" in err, err
    _apply(diff, tmp_path)
    sys.modules.pop("cases", None)
    status, out, err = cli("report", "driver.py", engine)
    assert rule not in _rules(out), out + err
    assert status == 0, out + err
