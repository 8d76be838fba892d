"""The run record: round trip through JSON, and clear errors for every kind of unreadable input."""

from __future__ import annotations

import json

import pytest

from gradlens.errors import RecordError
from gradlens.findings import Finding, Location
from gradlens.record import (
    RECORD_FORMAT,
    RECORD_VERSION,
    RunRecord,
    load_record,
    parse_record,
    record_from_sessions,
)

from ._sample import sample_record


def test_round_trip_is_exact(tmp_path):
    rec = sample_record(crash=True)
    path = tmp_path / "run.json"
    path.write_text(rec.to_json())
    again = load_record(path)
    assert again.to_json() == rec.to_json()
    assert list(again.findings) == rec.sorted_findings()
    assert again.crash == rec.crash
    assert again.extra == {"iterations": 48}


def test_document_has_the_public_fields():
    data = sample_record().to_dict()
    for key in ("format", "version", "gradlens", "command", "engines", "steps", "exit_status", "findings"):
        assert key in data
    assert data["format"] == RECORD_FORMAT and data["version"] == RECORD_VERSION
    first = data["findings"][0]
    for key in ("kind", "severity", "message", "location", "step", "subject", "evidence"):
        assert key in first
    assert [f["severity"] for f in data["findings"]] == ["error", "error", "warning", "info"]


def test_reaches_and_without():
    rec = sample_record()
    assert rec.reaches("error") and rec.reaches("warning") and rec.reaches("info")
    assert not rec.reaches("never")
    only_info = rec.without(["graph-retained", "missing-zero-grad", "graph-without-backward"])
    assert [f.kind for f in only_info.findings] == ["accumulation"]
    assert not only_info.reaches("warning") and only_info.reaches("info")


@pytest.mark.parametrize("text, words", [
    ('{"format": "gradlens.report", "version": 1, "findings": [', "truncated"),
    ("", "not valid JSON"),
    ('[1, 2, 3]', "not a gradlens record"),
    ('{"version": 2, "runs": []}', "not a gradlens record"),
    ('{"format": "gradlens.session", "version": 1}', "not a gradlens record"),
    ('{"format": "gradlens.report", "version": 99, "findings": []}', "newer gradlens"),
    ('{"format": "gradlens.report", "version": "1", "findings": []}', "version"),
    ('{"format": "gradlens.report", "version": 1, "command": [], "exit_status": 0}', "findings"),
    ('{"format": "gradlens.report", "version": 1, "command": [], "exit_status": 0, "findings": [{"a": 1}]}',
     "findings"),
    ('{"format": "gradlens.report", "version": 1, "command": "x", "exit_status": 0, "findings": []}',
     "command"),
])
def test_unreadable_records_raise_record_error(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RecordError, match=words) as info:
        load_record(path)
    assert str(path) in str(info.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(RecordError, match="cannot read"):
        load_record(tmp_path / "nope.json")
    binary = tmp_path / "x.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RecordError, match="not a gradlens record"):
        load_record(binary)


def test_reading_executes_nothing(tmp_path):
    # A record is data: strings that look like code stay strings.
    rec = RunRecord(command=("__import__('os').system('false')",), findings=(
        Finding("graph-retained", "error", "__import__('sys').exit(3)", Location("evil.py", 1, "f")),))
    again = parse_record(json.loads(rec.to_json()))
    assert again.command == ("__import__('os').system('false')",)


def test_record_from_sessions_merges_engines():
    f1 = Finding("missing-zero-grad", "error", "m", Location("a.py", 3, "main"), step=2)
    f2 = Finding("graph-retained", "error", "g", Location("b.py", 4, "main"), step=3)
    sessions = [
        {"format": "gradlens.session", "version": 1, "engines": ["native"], "steps": 5, "iterations": 5,
         "not_checked": ["x"], "findings": [f1.to_dict()]},
        {"format": "gradlens.session", "version": 1, "engines": ["torch"], "steps": 0, "iterations": 0,
         "not_checked": ["x", "y"], "findings": []},
        {"format": "gradlens.session", "version": 1, "engines": ["torch"], "steps": 2, "iterations": 2,
         "not_checked": [], "findings": [f2.to_dict()]},
    ]
    rec = record_from_sessions(sessions, command=["t.py"], exit_status=0, root="/r")
    assert rec.steps == 7 and rec.engines == ("native", "torch")
    assert rec.not_checked == ("x", "y")
    assert {f.kind for f in rec.findings} == {"missing-zero-grad", "graph-retained"}


def test_record_from_no_session_says_nothing_was_watched():
    rec = record_from_sessions([], command=["t.py"], exit_status=0)
    assert rec.engines == () and "nothing was watched" in rec.not_checked[0]


def test_record_from_sessions_keeps_a_step_graph():
    import networkx as nx

    from ._sample import retained_graph

    data = nx.node_link_data(retained_graph(), edges="edges")
    session = {"engines": ["native"], "steps": 1, "findings": [], "step_graph": data}
    rec = record_from_sessions([session], command=["t.py"], exit_status=0)
    assert sorted(rec.step_graph.nodes) == ["n0", "n1", "n2", "n3"]
    again = parse_record(json.loads(rec.to_json()))
    assert sorted(again.step_graph.edges) == sorted(rec.step_graph.edges)
