"""Every report format rendered from one hand-built record: golden files where the output is stable,
SARIF validated against the SARIF 2.1.0 schema, HTML checked for being self-contained.

Regenerate the golden files with ``GRADLENS_UPDATE_GOLDEN=1 python -m pytest tests/cli``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from gradlens.record import parse_record
from gradlens.report import FORMATS, Reporter, get_reporter
from gradlens.report.html import HtmlReporter
from gradlens.report.sarif import SarifReporter
from gradlens.report.text_report import TextReporter

from ._sample import sample_record

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GRADLENS_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with GRADLENS_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def test_every_format_is_a_reporter():
    assert set(FORMATS) == {"text", "json", "html", "sarif"}
    for fmt in FORMATS:
        assert isinstance(get_reporter(fmt), Reporter)
    with pytest.raises(ValueError, match="unknown report format"):
        get_reporter("xml")


def test_text_golden():
    check_golden("report.txt", TextReporter().render(sample_record()))
    check_golden("report-crash.txt", TextReporter().render(sample_record(crash=True)))


def test_text_is_grouped_by_rule_most_severe_first():
    text = TextReporter().render(sample_record())
    heads = [line for line in text.splitlines() if re.match(r"^(ERROR|WARNING|INFO) ", line)]
    assert heads == ["ERROR graph-retained", "ERROR missing-zero-grad", "WARNING graph-without-backward",
                     "INFO accumulation"]
    assert "train.py:35 in main" in text and "> 35 | total_loss += loss" in text
    assert "\x1b[" not in text
    summary = "4 findings (2 errors, 1 warning, 1 info) in 48 training steps; the script exited 0; gradlens exits 1 "
    summary += "(an error-severity finding at or above --fail-on warning)"
    assert text.rstrip().endswith(summary)


def test_text_colour_only_when_asked():
    assert "\x1b[1;31m" in TextReporter(color=True).render(sample_record())


def test_json_golden_and_rerender_equivalence():
    text = get_reporter("json").render(sample_record())
    check_golden("report.json", text)
    again = parse_record(json.loads(text))
    for fmt in ("text", "sarif"):
        assert get_reporter(fmt).render(again) == get_reporter(fmt).render(sample_record())


def test_sarif_golden():
    check_golden("report.sarif", SarifReporter().render(sample_record(crash=True)))


def _check_sarif_structure(log: dict) -> None:
    """The parts of SARIF 2.1.0 that code scanning needs, checked by hand (also without jsonschema)."""
    assert log["version"] == "2.1.0" and isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1


@pytest.mark.parametrize("crash", [False, True])
def test_sarif_validates_against_schema(crash):
    log = json.loads(SarifReporter().render(sample_record(crash=crash)))
    _check_sarif_structure(log)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(log), key=str)
    assert not errors, errors[0].message


def test_sarif_paths_relative_to_root_and_one_rule_per_slug():
    log = json.loads(SarifReporter().render(sample_record()))
    run = log["runs"][0]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == "file:///home/user/project/"
    uris = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]}
    assert uris["graph-retained"] == {"uri": "train.py", "uriBaseId": "SRCROOT"}
    assert uris["missing-zero-grad"]["uri"].startswith("file:///usr/lib/")
    assert uris["accumulation"]["uri"] == "train.py"  # no location: points at the script
    kinds = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert {"graph-retained", "missing-zero-grad", "accumulation"} <= set(kinds)


def test_html_golden():
    # Without graphs, so that the golden file does not change with gradlens.export's drawing style.
    record = sample_record(crash=True, with_graph=False)
    check_golden("report.html", HtmlReporter(graphviz=False).render(record))


def test_html_without_graphviz_draws_with_gradlens_own_layout():
    reporter = HtmlReporter(graphviz=False)
    text = reporter.render(sample_record(crash=True))
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="gradlens-graph"' in text
    assert "digraph gradlens" not in text and not reporter.notes
    assert "step 1" in text  # nodes from earlier steps are marked, as in the DOT export


def _assert_offline(text: str) -> None:
    # Nothing is loaded from elsewhere: no src attributes, links only within the page, no url() in CSS.
    assert not re.search(r"""\ssrc\s*=""", text)
    assert not re.search(r"""\shref\s*=\s*"[^#]""", text)
    assert "url(" not in text
    assert "@import" not in text


def test_html_is_self_contained_and_embeds_the_record():
    text = HtmlReporter(graphviz=False).render(sample_record())
    _assert_offline(text)
    data = re.search(r'<script type="application/json" id="gradlens-record">(.*?)</script>', text, re.S)
    assert data is not None
    assert parse_record(json.loads(data.group(1))).to_json() == sample_record().to_json()


def test_html_escapes_record_text():
    from dataclasses import replace

    rec = sample_record()
    rec = replace(rec, command=("<script>alert(1)</script>.py",))
    text = HtmlReporter(graphviz=False).render(rec)
    assert "<script>alert" not in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_html_with_graphviz_inlines_svg_with_earlier_steps_highlighted():
    reporter = HtmlReporter()
    text = reporter.render(sample_record())
    assert "<svg" in text and "DOT source" not in text and not reporter.notes
    assert "<?xml" not in text
    assert "step 1" in text and "step 2" in text  # nodes from earlier steps are marked by gradlens.export
    _assert_offline(re.sub(r"<svg.*?</svg>", "", text, flags=re.S))


def test_html_falls_back_to_gradlens_layout_when_graphviz_fails(monkeypatch):
    import importlib

    render_mod = importlib.import_module("gradlens.export.render")  # the package rebinds `render`

    def failing(dot, timeout=60.0):
        raise RuntimeError("Graphviz `dot` did not finish within 60 s")

    monkeypatch.setattr(render_mod, "svg_text", failing)
    reporter = HtmlReporter(graphviz=True)
    text = reporter.render(sample_record())
    assert 'class="gradlens-graph"' in text and "digraph gradlens" not in text
    assert reporter.notes and "could not draw" in reporter.notes[0] and "did not finish" in reporter.notes[0]


def test_colour_follows_the_terminal_and_no_color(monkeypatch):
    import io

    from gradlens.cli import _use_color

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert _use_color(Terminal()) and not _use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _use_color(Terminal())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert _use_color(io.StringIO())
