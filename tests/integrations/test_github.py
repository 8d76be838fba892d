"""GitHub workflow annotations: format, escaping, the 10-per-type cap, the step summary, and the CLI
printing them when GITHUB_ACTIONS=true."""

from __future__ import annotations

import io

from gradlens.cli import main
from gradlens.findings import Finding, Location
from gradlens.integrations import github as gh
from gradlens.record import RunRecord


def _f(kind="missing-zero-grad", severity="error", line=3, msg="Call zero_grad()."):
    return Finding(kind, severity, msg, Location("/repo/train.py", line, "main"), step=2)


def test_annotation_format_and_escaping():
    lines, left = gh.annotation_lines([_f(msg="a,b: 100%\nnext")], root="/repo", environ={})
    assert lines == ["::error file=train.py,line=3,title=gradlens (missing-zero-grad)::"
                     "a,b: 100%25%0Anext (first at step 2)"]
    assert left == {}


def test_severities_map_to_annotation_types():
    lines, _ = gh.annotation_lines([_f(severity="info", kind="accumulation"), _f(severity="warning"),
                                    _f()], environ={"GITHUB_WORKSPACE": "/repo"})
    assert [ln.split(" ", 1)[0] for ln in lines] == ["::error", "::warning", "::notice"]


def test_cap_per_type_and_summary(tmp_path):
    summary = tmp_path / "summary.md"
    findings = [_f(line=i) for i in range(13)] + [_f(severity="warning", line=i) for i in range(4)]
    out = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    assert gh.annotations(findings, out, root="/repo", environ=env) == 3
    text = out.getvalue().splitlines()
    assert sum(ln.startswith("::error ") for ln in text) == 10
    assert sum(ln.startswith("::warning ") for ln in text) == 4
    assert "3 more findings not annotated (3 errors)" in text[-1]
    table = summary.read_text()
    assert table.count("| error |") == 13 and table.count("| warning |") == 4


def test_cli_prints_annotations_in_github_actions(tmp_path, monkeypatch, capsys):
    rec = RunRecord(command=("train.py",), root=str(tmp_path),
                    findings=(Finding("missing-zero-grad", "error", "Call zero_grad().",
                                      Location(str(tmp_path / "train.py"), 7, "main"), step=2),))
    path = tmp_path / "run.json"
    path.write_text(rec.to_json())
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["report", str(path)]) == 1
    assert "::error file=train.py,line=7,title=gradlens (missing-zero-grad)::" in capsys.readouterr().out
    # a machine-readable report on stdout stays clean: the annotations go to stderr
    assert main(["report", "--format", "json", str(path)]) == 1
    captured = capsys.readouterr()
    assert "::error" not in captured.out and "::error file=train.py" in captured.err
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    main(["report", str(path)])
    assert "::error" not in capsys.readouterr().out
