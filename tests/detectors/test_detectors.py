"""Detectors are pure: hand-built events in, findings out (no engine, no torch)."""

from __future__ import annotations

import json

import pytest

from gradlens.detectors import (
    CoverageDetector,
    GradStateDetector,
    NumericsDetector,
    RetentionDetector,
    analyse,
)
from gradlens.errors import RecordError
from gradlens.findings import Finding, Location
from gradlens.instrument.events import (
    BackwardErrorEvent,
    GraphDroppedEvent,
    StepEvent,
    TickEvent,
    event_from_dict,
    event_to_dict,
)

LOC = Location("train.py", 12, "train")


def step(n, **kw):
    base = dict(
        step=n,
        optimizer="SGD#0",
        optimizer_steps=n,
        n_params=2,
        touched=("w", "b"),
        max_count=1,
        location=LOC,
    )
    base.update(kw)
    return StepEvent(**base)


def test_clean_steps_give_nothing():
    assert analyse([step(i) for i in range(1, 6)]) == []


def test_missing_zero_grad_once_with_count():
    events = [step(1)] + [step(i, carried=("w", "b"), max_count=i) for i in range(2, 6)]
    (f,) = analyse(events)
    assert (f.kind, f.severity, f.step, f.count, f.subject) == (
        "missing-zero-grad",
        "error",
        2,
        4,
        ("w", "b"),
    )
    assert f.location == LOC and "zero_grad" in f.message


def test_missing_zero_grad_is_per_optimizer():
    det = GradStateDetector()
    out = det.observe(step(2, carried=("w",), optimizer="Adam#1"))
    out += det.observe(step(3, carried=("w",), optimizer="SGD#0"))
    assert {f.key for f in out} == {"missing-zero-grad:Adam#1", "missing-zero-grad:SGD#0"}


def test_accumulation_info_and_histogram():
    events = [step(1, max_count=4), step(2, max_count=4), step(3, max_count=2)]
    (f,) = analyse(events)
    assert (f.kind, f.severity) == ("accumulation", "info")
    assert f.evidence["backward_per_step"] == {"2": 1, "4": 2}


def test_accumulation_not_reported_when_explained_by_a_bug():
    (f,) = analyse([step(2, max_count=3, carried=("w",))])
    assert f.kind == "missing-zero-grad"


def test_zero_grad_before_step_severity():
    assert analyse([step(1, cleared=("w", "b"))])[0].severity == "error"
    assert analyse([step(1, cleared=("w",))])[0].severity == "warning"


def test_unexpected_accumulation_variants():
    kinds = [
        (f.kind, f.key)
        for f in analyse([step(1, repeated=("w",), max_count=2), step(2, eval_mixed=("b",), max_count=2)])
    ]
    assert kinds == [
        ("unexpected-accumulation", "unexpected-accumulation:repeat:SGD#0"),
        ("unexpected-accumulation", "unexpected-accumulation:eval:SGD#0"),
    ]


def test_no_gradient_waits_for_the_second_step():
    det = CoverageDetector()
    assert det.observe(step(1, never_grad=("w",))) == []
    (f,) = det.observe(step(2, never_grad=("w",)))
    assert (f.kind, f.severity) == ("no-gradient", "warning")
    (g,) = CoverageDetector().observe(step(2, never_grad=("w", "b"), touched=()))
    assert g.severity == "error" and "None of the 2" in g.message


def test_param_not_in_optimizer_and_nonfinite():
    (f,) = CoverageDetector().observe(step(2, orphans=("head.weight",)))
    assert f.kind == "param-not-in-optimizer" and f.subject == ("head.weight",)
    assert NumericsDetector().observe(step(1, nonfinite=None)) == []
    assert NumericsDetector().observe(step(1, nonfinite=())) == []
    (g,) = NumericsDetector().observe(step(1, nonfinite=("w",)))
    assert g.kind == "nonfinite-gradient" and g.step == 1


def tick(i, roots=0, its=0, saved=0, nbytes=0, sits=0, cross=0):
    return TickEvent(i, i + 1, roots, its, saved, nbytes, sits, cross, True, LOC)


def test_retention_needs_growth_not_one_old_graph():
    # a GAN keeps one iteration-old graph per model: constant, silent
    assert analyse([tick(i, roots=1, its=1) for i in range(6)]) == []
    (f,) = analyse([tick(0), tick(1, 1, 1), tick(2, 2, 2), tick(3, 3, 3)])
    assert (f.kind, f.step, f.count) == ("graph-retained", 3, 2)
    assert f.evidence["graphs_growth_per_step"] == 1.0


def test_retention_from_saved_bytes_and_cross_iteration_backward():
    (f,) = analyse([tick(0), tick(1, saved=2, nbytes=100, sits=1), tick(2, saved=4, nbytes=200, sits=2)])
    assert f.evidence["retained_bytes"] == 200
    (g,) = analyse([tick(0), tick(1, cross=0), tick(2, cross=3)])
    assert "detach" in g.message and g.evidence["backward_into_old_iterations"] == 3


def test_backward_error_is_explained_once():
    det = RetentionDetector()
    ev = BackwardErrorEvent(2, 1, "Trying to backward through the graph a second time", "h", LOC)
    (f,) = det.observe(ev)
    assert f.subject == ("h",) and "detach" in f.message
    (g,) = det.observe(ev)
    assert g.count == 2 and g.key == f.key


def test_graph_without_backward_counts_and_bytes():
    det = RetentionDetector()
    det.observe(GraphDroppedEvent("Net", 3, 512, False, LOC))
    (f,) = det.observe(GraphDroppedEvent("Net", 3, 1024, True, LOC))
    assert (f.kind, f.severity, f.count) == ("graph-without-backward", "warning", 2)
    assert f.evidence["saved_bytes_per_forward"] == 1024 and f.subject == ("Net",)


def test_finding_and_event_records_round_trip():
    f = Finding("graph-retained", "error", "msg", LOC, 3, ("total",), {"old_graphs": 2}, count=4)
    data = json.loads(json.dumps(f.to_dict()))
    assert Finding.from_dict(data) == f
    with pytest.raises(RecordError, match="version"):
        Finding.from_dict({**data, "version": 99})
    with pytest.raises(RecordError):
        Finding.from_dict({"format": "other"})
    with pytest.raises(ValueError, match="severity"):
        Finding("x", "fatal", "m")
    ev = step(2, carried=("w",), nonfinite=None)
    assert event_from_dict(json.loads(json.dumps(event_to_dict(ev)))) == ev


def test_finding_carries_a_networkx_graph():
    nx = pytest.importorskip("networkx")
    g = nx.DiGraph()
    g.add_edge("n0", "n1")
    f = Finding("graph-retained", "error", "m", graph=g)
    back = Finding.from_dict(json.loads(json.dumps(f.to_dict())))
    assert list(back.graph.edges) == [("n0", "n1")]


def test_text_report():
    from gradlens.record import RunRecord
    from gradlens.report.text_report import TextReporter

    f = Finding("missing-zero-grad", "error", "msg", LOC, 2, ("w",), {"parameters": 1}, count=3)
    record = RunRecord(engines=("torch",), steps=5, findings=(f, Finding("accumulation", "info", "k=4")),
                       not_checked=("threads",))
    text = TextReporter().render(record)
    assert text.index("ERROR missing-zero-grad") < text.index("INFO accumulation")
    assert "train.py:12 in train" in text and "seen 3 times" in text and "Not checked in this run:" in text
    assert text.splitlines()[0] == "gradlens watch  [torch]"
    assert text.rstrip().endswith("2 findings (1 error, 1 info) in 5 training steps")
