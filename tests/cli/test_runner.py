"""The runner on its own: the live status line (terminal only), engine watching, and import hygiene."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from gradlens.runner import StatusLine, Target, run

from ..conftest import requires_torch
from .conftest import BUGGY_LOOP, REPO


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_writes_only_on_a_terminal():
    tty = FakeTerminal()
    line = StatusLine(tty)
    line.update(3, ["graph-retained"])
    line.clear()
    text = tty.getvalue()
    assert text.startswith("\r") and "step 3" in text and ", 1 finding (graph-retained)" in text
    assert text.endswith("\r\x1b[2K")
    pipe = io.StringIO()
    quiet = StatusLine(pipe)
    quiet.update(3, ["graph-retained"])
    quiet.clear()
    assert pipe.getvalue() == ""


def test_run_shows_live_status_on_a_terminal_and_clears_it(script):
    tty = FakeTerminal()
    record = run(Target("script", str(script(BUGGY_LOOP))), stderr=tty)
    text = tty.getvalue()
    assert "gradlens: step" in text and "missing-zero-grad" in text
    assert text.endswith("\r\x1b[2K")
    assert record.steps == 4 and [f.kind for f in record.findings] == ["missing-zero-grad"]


def test_run_records_command_root_and_statements(script):
    path = script(BUGGY_LOOP)
    record = run(Target("script", str(path), ("--lr", "1")), stderr=io.StringIO())
    assert record.command == (str(path), "--lr", "1")
    assert record.engines == ("native",)
    (finding,) = record.findings
    assert record.statement(finding) == "loss.backward()"  # the root line; the step is where it was noticed
    (noticed,) = finding.related_locations
    assert record.statements[f"{noticed.file}:{noticed.line}"] == "opt.step()"


@pytest.mark.parametrize("engine", ["native", pytest.param("torch", marks=requires_torch)])
def test_engine_imported_after_the_run_started_is_watched(tmp_path, engine):
    # In a fresh interpreter neither engine is imported before the script imports one.
    path = tmp_path / "train.py"
    module = "gradlens.engine" if engine == "native" else "torch"
    path.write_text(BUGGY_LOOP.replace("import gradlens.engine as torch", f"import {module} as torch"))
    code = ("import sys; from gradlens.runner import run, Target; "
            "assert 'gradlens.engine' not in sys.modules and 'torch' not in sys.modules; "
            f"r = run(Target('script', {str(path)!r})); print(r.engines, [f.kind for f in r.findings])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"('{engine}',) ['missing-zero-grad']"


def test_cli_modules_import_neither_engine():
    code = ("import sys, gradlens.cli, gradlens.runner, gradlens.record, gradlens.report.html, "
            "gradlens.report.sarif, gradlens.report.json_report, gradlens.report.text_report, "
            "gradlens.report.output; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('gradlens.engine')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_script_output_clears_the_status_line_first(script, capsys):
    tty = FakeTerminal()
    run(Target("script", str(script(BUGGY_LOOP + "\nprint('done training')\n"))), stderr=tty)
    out = capsys.readouterr().out
    assert out == "done training\n"
    assert tty.getvalue().endswith("\r\x1b[2K")  # cleared before the print, and nothing left behind
    assert sys.stdout is not None and type(sys.stdout).__name__ != "_ClearsStatus"
