"""Every finding points at its rule's root line (the line to edit), with the line where the symptom was
noticed as a related location, on both engines, for at least two loop shapes per rule (issue 16).

Lines come from marker comments in ``rootline_loops.py`` (``# <root>``, ``# <noticed>``), never typed here.
"""

from __future__ import annotations

import json
import os

import pytest

import gradlens
from gradlens.integrations.github import annotation_lines
from gradlens.record import record_from_sessions
from gradlens.report.sarif import SarifReporter

from . import rootline_loops as rl
from .rootline_loops import line_of

LOOPS = rl.__file__


def watched(lib, loop, **kwargs):
    with gradlens.watch(on_finding="collect") as lens:
        kept = loop(lib, **kwargs)
    del kept
    return lens


def one(lens, kind):
    found = [f for f in lens.findings if f.kind == kind]
    assert len(found) == 1, (kind, lens.report())
    return found[0]


def lines(locations):
    return [(loc.file, loc.line) for loc in locations]


def assert_root(f, loop, root="root", noticed="noticed"):
    assert (f.location.file, f.location.line) == (LOOPS, line_of(loop, root)), f
    expected = [(LOOPS, line_of(loop, noticed))] if noticed else []
    assert lines(f.related_locations) == expected, f


# --- graph-retained --------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", [rl.bug_history_append, rl.bug_running_total, rl.bug_outputs_by_key],
                         ids=lambda fn: fn.__name__)
def test_graph_retained_points_at_the_statement_that_stores_the_graph(lib, loop):
    f = one(watched(lib, loop), "graph-retained")
    assert_root(f, loop)


def test_graph_retained_through_a_failed_backward_points_at_the_carried_state(lib):
    loop = rl.bug_hidden_state_retained
    with gradlens.watch(on_finding="collect") as lens:
        with pytest.raises(RuntimeError):  # torch's own error, unchanged
            loop(lib)
    f = one(lens, "graph-retained")
    assert_root(f, loop)
    assert f.subject == ("h",)


def test_graph_retained_names_the_holder(lib):
    f = one(watched(lib, rl.bug_history_append), "graph-retained")
    assert f.subject and f.subject[0].startswith("final_loss[")


def test_clean_history_is_silent(lib):
    assert "graph-retained" not in {f.kind for f in watched(lib, rl.clean_history).findings}


# --- missing-zero-grad -----------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", [rl.bug_no_zero_grad, rl.bug_wrong_module_cleared, rl.bug_conditional_zero_grad],
                         ids=lambda fn: fn.__name__)
def test_missing_zero_grad_points_at_the_clear_or_the_backward(lib, loop):
    f = one(watched(lib, loop), "missing-zero-grad")
    assert_root(f, loop)


def test_missing_zero_grad_in_a_method_points_at_its_backward(lib):
    f = one(watched(lib, rl.bug_trainer_no_zero_grad), "missing-zero-grad")
    fit = rl.Trainer.fit_without_clearing
    assert_root(f, fit, root="backward", noticed="bare step")
    assert "`self.opt` (SGD)" in f.message


def test_wrong_module_cleared_is_named_in_the_message(lib):
    f = one(watched(lib, rl.bug_wrong_module_cleared), "missing-zero-grad")
    assert "`encoder.zero_grad()`" in f.message and "encoder's parameters" in f.message
    assert "`opt` (SGD)" in f.message and "SGD#" not in f.message
    assert set(f.subject) == {"head.weight", "head.bias"}


def test_no_zero_grad_message_says_the_loop_has_none(lib):
    f = one(watched(lib, rl.bug_no_zero_grad), "missing-zero-grad")
    assert "no zero_grad() call" in f.message


def test_clean_zero_grad_is_silent(lib):
    assert "missing-zero-grad" not in {f.kind for f in watched(lib, rl.clean_zero_grad).findings}


# --- param-not-in-optimizer ------------------------------------------------------------------------------
def test_param_not_in_optimizer_points_at_the_optimizer_construction(lib):
    loop = rl.bug_optimizer_misses_layer
    f = one(watched(lib, loop), "param-not-in-optimizer")
    assert_root(f, loop)
    assert "`opt` is built here without them" in f.message


def test_param_not_in_optimizer_built_in_init(lib):
    f = one(watched(lib, rl.bug_trainer_misses_layer), "param-not-in-optimizer")
    assert (f.location.file, f.location.line, f.location.function) == (
        LOOPS, line_of(rl.Trainer.__init__, "built"), "__init__")
    assert lines(f.related_locations) == [(LOOPS, line_of(rl.Trainer.fit, "step"))]


def test_clean_trainer_is_silent(lib):
    kinds = {f.kind for f in watched(lib, rl.clean_trainer).findings}
    assert not kinds & {"param-not-in-optimizer", "missing-zero-grad"}


# --- graph-without-backward ------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", [rl.bug_eval_without_no_grad, rl.bug_inference_keeps_outputs],
                         ids=lambda fn: fn.__name__)
def test_graph_without_backward_points_at_the_forward_call(lib, loop):
    f = one(watched(lib, loop), "graph-without-backward")
    assert_root(f, loop, noticed=None)
    assert f.subject == ("model",)  # the user's variable, not the class name


def test_clean_inference_is_silent(lib):
    assert not watched(lib, rl.clean_inference).findings


# --- exporters carry the root line -----------------------------------------------------------------------
def _record(lens):
    return record_from_sessions([lens.to_dict()], command=("train.py",), exit_status=0)


def test_sarif_and_github_annotations_carry_the_root_line(lib):
    loop = rl.bug_wrong_module_cleared
    lens = watched(lib, loop)
    root, noticed = line_of(loop, "root"), line_of(loop, "noticed")
    record = _record(lens)
    sarif = json.loads(SarifReporter().render(record))
    (result,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "missing-zero-grad"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == root and region["snippet"]["text"].startswith("encoder.zero_grad()")
    (related,) = result["relatedLocations"]
    assert related["physicalLocation"]["region"]["startLine"] == noticed
    assert related["physicalLocation"]["region"]["snippet"]["text"].startswith("opt.step()")
    here = os.path.dirname(LOOPS)
    out, _ = annotation_lines([f for f in record.findings if f.kind == "missing-zero-grad"], root=here, environ={})
    (line,) = out
    assert line.startswith(f"::error file=rootline_loops.py,line={root},")
    assert line.endswith(f"(noticed at rootline_loops.py:{noticed})")


def test_text_and_html_show_both_lines(lib):
    from gradlens.report.html import HtmlReporter
    from gradlens.report.text_report import TextReporter

    loop = rl.bug_history_append
    record = _record(watched(lib, loop))
    text = TextReporter().render(record)
    assert "final_loss.append(loss)" in text and "noticed at " in text and "opt.step()" in text
    html = HtmlReporter().render(record)
    assert "final_loss.append(loss)" in html and "noticed at" in html
