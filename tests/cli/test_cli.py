"""``gradlens report``: the command's shape, exit statuses, and every bad input the issue lists."""

from __future__ import annotations

import json
import os
import sys

import pytest

import gradlens
from gradlens.cli import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from gradlens.record import load_record
from gradlens.report import output as output_mod

from ._sample import sample_record
from .conftest import BUGGY_LOOP, CLEAN_LOOP, run_subprocess


def one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradlens report: error: ")
    assert "Traceback" not in err


# --- the command's shape -------------------------------------------------------------------------------
def test_version(cli):
    status, out, _ = cli("--version")
    assert status == EXIT_OK and out.strip() == f"gradlens {gradlens.__version__}"


def test_top_level_help_and_unknown_command(cli):
    status, out, _ = cli()
    assert status == EXIT_OK and "report" in out
    status, _, err = cli("frobnicate")
    assert status == EXIT_USAGE and "unknown command" in err


def test_report_help_has_examples(cli):
    status, out, _ = cli("report", "--help")
    assert status == EXIT_OK
    assert "examples:" in out and "-m MODULE" in out and "RECORD.json" in out
    for option in ("--format", "--output", "--dot-dir", "--fail-on", "--accumulation", "--ignore"):
        assert option in out


@pytest.mark.parametrize("args, words", [
    ((), "expected a SCRIPT"),
    (("--format", "xml", "x.py"), "invalid choice"),
    (("--ignore", "bogus", "x.py"), "unknown rule 'bogus'"),
    (("--accumulation", "0", "x.py"), "positive integer"),
    (("--fail-on", "sometimes", "x.py"), "invalid choice"),
    (("-m",), "module name"),
    (("--frobnicate", "x.py"), "unrecognized arguments"),
    (("--form", "json", "x.py"), "unrecognized arguments"),
    (("missing_script.py",), "can't open file 'missing_script.py'"),
    (("-m", "no_such_module_gradlens_test"), "no module named"),
])
def test_usage_errors_are_one_line_with_status_2(cli, args, words):
    status, out, err = cli("report", *args)
    assert status == EXIT_USAGE
    one_line_error(err)
    assert words in err
    assert out == ""


def test_options_after_the_script_belong_to_the_script(cli, script, tmp_path):
    seen = tmp_path / "seen.json"
    path = script(f"""
        import json, sys, os
        json.dump({{"name": __name__, "argv": sys.argv, "path0": sys.path[0]}}, open({str(seen)!r}, "w"))
    """)
    status, out, _ = cli("report", path, "--format", "json", "-m", "x")
    assert status == EXIT_OK
    data = json.loads(seen.read_text())
    assert data == {"name": "__main__", "argv": [str(path), "--format", "json", "-m", "x"],
                    "path0": str(path.parent)}
    assert out.startswith("gradlens report:")  # the text report: --format json went to the script
    assert sys.argv[0] != str(path)  # restored


def test_module_runs_like_python_dash_m(cli, script, tmp_path, monkeypatch):
    seen = tmp_path / "seen.json"
    script("", "pkg/__init__.py")
    script(f"""
        import json, sys
        json.dump({{"name": __name__, "argv": sys.argv, "path0": sys.path[0]}}, open({str(seen)!r}, "w"))
    """, "pkg/train.py")
    monkeypatch.chdir(tmp_path)
    status, _, _ = cli("report", "-m", "pkg.train", "--epochs", "2")
    assert status == EXIT_OK
    data = json.loads(seen.read_text())
    assert data["name"] == "__main__" and data["argv"][1:] == ["--epochs", "2"]
    assert data["argv"][0].endswith(os.path.join("pkg", "train.py"))
    assert data["path0"] == str(tmp_path)
    sys.modules.pop("pkg", None)
    sys.modules.pop("pkg.train", None)


# --- exit statuses --------------------------------------------------------------------------------------
def test_findings_reach_fail_on(cli, script):
    path = script(BUGGY_LOOP)
    status, out, _ = cli("report", path)
    assert status == EXIT_FINDINGS and "ERROR missing-zero-grad" in out
    assert cli("report", "--fail-on", "never", path)[0] == EXIT_OK
    assert cli("report", "--ignore", "missing-zero-grad", path)[0] == EXIT_OK
    assert cli("report", "--fail-on", "error", path)[0] == EXIT_FINDINGS


def test_clean_script_exits_0(cli, script):
    status, out, _ = cli("report", script(CLEAN_LOOP))
    assert status == EXIT_OK and "no findings in 4 training steps" in out


@pytest.mark.parametrize("code, expected, message", [
    ("sys.exit()", 0, None), ("sys.exit(0)", 0, None), ("sys.exit(3)", 3, None),
    ("sys.exit('bye now')", 1, "bye now"), ("raise SystemExit(None)", 0, None), ("sys.exit(True)", 1, None),
    ("sys.exit(-1)", 255, None),
])
def test_sys_exit_inside_the_script(cli, script, tmp_path, code, expected, message):
    out_file = tmp_path / "r.json"
    path = script(CLEAN_LOOP + f"\nimport sys\n{code}\nprint('not reached')\n")
    status, out, err = cli("report", "--format", "json", "-o", out_file, path)
    assert status == expected
    assert "not reached" not in out + err
    if message:
        assert message in err
    rec = load_record(out_file)
    assert rec.exit_status == expected and rec.crash is None and rec.steps == 4


def test_script_exit_status_wins_over_findings(cli, script):
    status, _, _ = cli("report", script(BUGGY_LOOP + "\nimport sys\nsys.exit(4)\n"))
    assert status == 4


def test_uncaught_exception_shows_traceback_and_keeps_findings(cli, script, tmp_path):
    out_file = tmp_path / "r.json"
    path = script(BUGGY_LOOP + "\nraise ValueError('bad batch')\n")
    status, _, err = cli("report", "--format", "json", "-o", out_file, path)
    assert status == 1
    assert "Traceback (most recent call last)" in err and "ValueError: bad batch" in err
    assert str(path) in err
    assert "runpy" not in err and "runner.py" not in err
    rec = load_record(out_file)
    assert rec.crash.type == "ValueError" and rec.crash.kind == "exception"
    assert [f.kind for f in rec.findings] == ["missing-zero-grad"]


def test_syntax_error(cli, script, tmp_path):
    out_file = tmp_path / "r.json"
    path = script("for step in range(3)\n    pass\n")
    status, _, err = cli("report", "--format", "json", "-o", out_file, path)
    assert status == 1
    assert "SyntaxError" in err and str(path) in err and "runpy" not in err
    rec = load_record(out_file)
    assert rec.crash.type == "SyntaxError" and rec.findings == ()


def test_keyboard_interrupt(cli, script, tmp_path):
    out_file = tmp_path / "r.json"
    path = script(BUGGY_LOOP + "\nraise KeyboardInterrupt\n")
    status, _, err = cli("report", "--format", "json", "-o", out_file, path)
    assert status == EXIT_INTERRUPTED
    assert "KeyboardInterrupt" in err
    rec = load_record(out_file)
    assert rec.crash.kind == "interrupt" and rec.exit_status == EXIT_INTERRUPTED
    assert [f.kind for f in rec.findings] == ["missing-zero-grad"]


def test_crash_report_in_text(cli, script):
    status, out, _ = cli("report", script(BUGGY_LOOP + "\nraise RuntimeError('boom')\n"))
    assert status == 1
    assert "The script crashed: RuntimeError: boom" in out and "ERROR missing-zero-grad" in out


# --- formats and outputs --------------------------------------------------------------------------------
def test_json_on_stdout_is_not_mixed_with_the_scripts_prints(cli, script):
    path = script(BUGGY_LOOP + "\nprint('hello from the script')\n")
    status, out, err = cli("report", "--format", "json", path)
    assert status == EXIT_FINDINGS
    data = json.loads(out)
    assert data["format"] == "gradlens.report" and data["steps"] == 4
    assert "hello from the script" in err


def test_html_default_output_file(cli, script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = cli("report", "--format", "html", script(BUGGY_LOOP))
    assert status == EXIT_FINDINGS and out == ""
    text = (tmp_path / "gradlens-report.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "missing-zero-grad" in text
    assert "gradlens-report.html" in err


def test_rerender_a_record_in_every_format(cli, tmp_path):
    rec_path = tmp_path / "run.json"
    rec_path.write_text(sample_record().to_json())
    for fmt in ("text", "json", "sarif"):
        status, out, _ = cli("report", "--format", fmt, rec_path)
        assert status == EXIT_FINDINGS and out
    status, out, _ = cli("report", "--format", "json", rec_path)
    assert out == sample_record().to_json()
    assert cli("report", "--fail-on", "never", rec_path)[0] == EXIT_OK
    status, out, _ = cli("report", "--ignore", "graph-retained", "--ignore", "missing-zero-grad",
                         "--fail-on", "error", rec_path)
    assert status == EXIT_OK and "graph-retained" not in out
    status, _, _ = cli("report", "--format", "html", "-o", tmp_path / "r.html", rec_path)
    assert (tmp_path / "r.html").exists()


def test_a_record_of_a_crashed_run_rerenders_without_the_crash_status(cli, tmp_path):
    rec_path = tmp_path / "run.json"
    rec_path.write_text(sample_record(crash=True).to_json())
    status, out, _ = cli("report", "--fail-on", "never", rec_path)
    assert status == EXIT_OK and "The script crashed" in out


@pytest.mark.parametrize("text", ['{"format": "gradlens.report", "version": 1, "findings": [',
                                  '{"runs": [], "version": "2.1.0"}', "not json at all"])
def test_truncated_or_foreign_record(cli, tmp_path, text):
    rec_path = tmp_path / "run.json"
    rec_path.write_text(text)
    out_file = tmp_path / "out.txt"
    status, _, err = cli("report", "-o", out_file, rec_path)
    assert status == EXIT_USAGE
    one_line_error(err)
    assert not out_file.exists()


def test_missing_record(cli, tmp_path):
    status, _, err = cli("report", tmp_path / "gone.json")
    assert status == EXIT_USAGE
    one_line_error(err)


@pytest.mark.parametrize("where", ["missing-folder", "is-a-folder"])
def test_unwritable_output_is_refused_before_the_script_runs(cli, script, tmp_path, where):
    marker = tmp_path / "ran"
    path = script(f"open({str(marker)!r}, 'w').close()\n")
    target = tmp_path / "nope" / "r.html" if where == "missing-folder" else tmp_path
    status, _, err = cli("report", "--format", "html", "-o", target, path)
    assert status == EXIT_USAGE
    one_line_error(err)
    assert not marker.exists()


def test_failed_write_leaves_no_half_written_file_and_loses_no_finding(cli, script, tmp_path, monkeypatch):
    out_file = tmp_path / "r.json"
    out_file.write_text("previous report\n")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output_mod.os, "replace", failing_replace)
    status, _, err = cli("report", "--format", "json", "-o", out_file, script(BUGGY_LOOP))
    assert status == EXIT_USAGE
    assert "No space left on device" in err
    assert "missing-zero-grad" in err  # the report is shown on stderr instead
    assert out_file.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "train.py"]


def test_dot_dir_that_is_a_file(cli, script, tmp_path):
    not_a_dir = tmp_path / "graphs"
    not_a_dir.write_text("")
    marker = tmp_path / "ran"
    status, _, err = cli("report", "--dot-dir", not_a_dir, script(f"open({str(marker)!r}, 'w').close()\n"))
    assert status == EXIT_USAGE
    one_line_error(err)
    assert "is a file" in err and not marker.exists()


def test_dot_dir_writes_one_file_per_finding_graph(cli, tmp_path):
    rec_path = tmp_path / "run.json"
    rec_path.write_text(sample_record().to_json())
    graphs = tmp_path / "graphs" / "deep"
    status, _, err = cli("report", "--fail-on", "never", "--dot-dir", graphs, rec_path)
    assert status == EXIT_OK
    files = sorted(p.name for p in graphs.iterdir())
    assert files == ["finding-01-graph-retained.dot"]
    assert (graphs / files[0]).read_text().startswith("digraph gradlens {")
    assert "wrote 1 DOT file" in err


def test_graphviz_missing(cli, tmp_path, monkeypatch):
    rec_path = tmp_path / "run.json"
    rec_path.write_text(sample_record().to_json())
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    html_path = tmp_path / "r.html"
    status, _, err = cli("report", "--format", "html", "-o", html_path, rec_path)
    assert status == EXIT_FINDINGS
    text = html_path.read_text()
    assert 'class="gradlens-graph"' in text and "digraph gradlens" not in text  # drawn by gradlens itself
    assert "Traceback" not in err
    assert "graph-retained" in text  # no finding lost


# --- subprocess: the real entry points ------------------------------------------------------------------
def test_python_dash_m_gradlens_end_to_end(script, tmp_path):
    path = script(BUGGY_LOOP + "\nprint('script output')\n")
    done = run_subprocess("report", "--format", "sarif", path, cwd=tmp_path)
    assert done.returncode == EXIT_FINDINGS, done.stderr
    log = json.loads(done.stdout)
    assert log["runs"][0]["results"][0]["ruleId"] == "missing-zero-grad"
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "train.py", "uriBaseId": "SRCROOT"}
    assert "\r" not in done.stderr and "\x1b[" not in done.stdout  # no status line or colour off a terminal


def test_subprocess_usage_error_has_no_traceback(tmp_path):
    done = run_subprocess("report", tmp_path / "missing.py")
    assert done.returncode == EXIT_USAGE
    one_line_error(done.stderr)


def test_accumulation_is_declared_to_the_watch(cli, script, tmp_path):
    second = "    loss.backward()\n    nn.functional.mse_loss(model(x), y).backward()\n"
    path = script(CLEAN_LOOP.replace("    loss.backward()\n", second))
    out_file = tmp_path / "r.json"
    status, _, _ = cli("report", "--accumulation", "2", "--format", "json", "-o", out_file, path)
    rec = load_record(out_file)
    assert rec.options["accumulation"] == 2
    assert [f.kind for f in rec.findings] == ["accumulation"]
    assert rec.findings[0].evidence.get("declared") == 2
    assert status == EXIT_OK  # an info finding does not reach the default --fail-on warning


def test_dot_dir_includes_the_training_step_graph(cli, tmp_path):
    from dataclasses import replace

    from ._sample import retained_graph

    rec_path = tmp_path / "run.json"
    rec_path.write_text(replace(sample_record(), step_graph=retained_graph()).to_json())
    status, _, _ = cli("report", "--fail-on", "never", "--dot-dir", tmp_path / "g", rec_path)
    assert status == EXIT_OK
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["finding-01-graph-retained.dot",
                                                                  "training-step.dot"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_real_ctrl_c_writes_the_report_and_exits_130(script, tmp_path):
    import signal
    import subprocess

    from .conftest import REPO

    out_file = tmp_path / "r.json"
    wait = "\nimport time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
    path = script(BUGGY_LOOP + wait)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "gradlens", "report", "--format", "json", "-o", str(out_file), str(path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    try:
        first = proc.stdout.readline().strip()
        if first != "ready":
            proc.kill()
            raise AssertionError(proc.communicate()[1])
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "KeyboardInterrupt" in err
    rec = load_record(out_file)
    assert rec.crash.kind == "interrupt" and [f.kind for f in rec.findings] == ["missing-zero-grad"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder_is_refused(cli, script, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        status, _, err = cli("report", "-o", folder / "r.txt", script(CLEAN_LOOP))
    finally:
        folder.chmod(0o700)
    assert status == EXIT_USAGE
    one_line_error(err)


def test_console_script_is_installed(tmp_path):
    import shutil
    import subprocess

    exe = shutil.which("gradlens")
    if exe is None:
        pytest.skip("gradlens is not installed as a console script (pip install -e .)")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == f"gradlens {gradlens.__version__}"
