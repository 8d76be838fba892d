"""Manual training loops (no optimizer object) on both engines: the leaves a backward reaches are watched,
updates however written end an iteration, the accumulation trap is ``missing-zero-grad`` at the backward
with the update as the related line, and every clean counterpart stays silent."""

from __future__ import annotations

import json
import textwrap
import weakref

import pytest

import gradlens
from gradlens.cli import main as cli_main

from . import manual_loops as ml
from .conftest import need


def run(lib, loop, *args, **kwargs):
    with gradlens.watch(on_finding="collect") as lens:
        loop(lib, *args, **kwargs)
    return lens


def above_info(lens):
    return {f.kind: f for f in lens.findings if f.severity != "info"}


TRAPS = {  # loop, kwargs that inject the missing clear
    "bare W.sub_": (ml.bare_sub_, {}),
    "bare W -= ": (ml.bare_isub, {}),
    "bare W.copy_": (ml.bare_copy_, {}),
    "bare W.data = ": (ml.bare_data_assign, {}),
    "bare W.data -= ": (ml.bare_data_isub, {}),
    "module p.data.add_ (word_language_model)": (ml.module_data_add_, {"clear": False}),
    "module p.data -= ": (ml.module_data_isub, {"clear": False}),
    "module p -= under no_grad": (ml.module_isub_no_grad, {"clear": False}),
}

CLEAN = {
    "bare W.sub_, W.grad.zero_()": (ml.bare_sub_, {"clear": "zero_"}),
    "bare W.sub_, W.grad = None": (ml.bare_sub_, {"clear": "none"}),
    "bare W -=, W.grad = None": (ml.bare_isub, {"clear": True}),
    "bare W.copy_, cleared before forward": (ml.bare_copy_, {"clear": True}),
    "bare W.data =, zero_()": (ml.bare_data_assign, {"clear": True}),
    "bare W.data -=, zero_()": (ml.bare_data_isub, {"clear": True}),
    "bare deliberate accumulation": (ml.bare_accumulation, {}),
    "bare rebinding with detach()": (ml.bare_detach_rebind, {}),
    "bare evaluation under no_grad": (ml.bare_eval_backward, {"guarded": True}),
    "bare loss history with item()": (ml.bare_total_loss, {"detach": True}),
    "module p.data.add_ after model.zero_grad()": (ml.module_data_add_, {}),
    "module p.data -=, p.grad = None": (ml.module_data_isub, {}),
    "module p -=, model.zero_grad()": (ml.module_isub_no_grad, {}),
}


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_accumulation_trap_in_manual_loop(lib, name):
    loop, kwargs = TRAPS[name]
    lens = run(lib, loop, **kwargs)
    found = above_info(lens)
    assert set(found) == {"missing-zero-grad"}, lens.report()
    f = found["missing-zero-grad"]
    assert f.severity == "warning"
    assert f.location.file == ml.__file__ and f.location.line == ml.line_of(loop, "backward"), f.location
    assert [(r.file, r.line) for r in f.related_locations] == [(ml.__file__, ml.line_of(loop, "update"))]
    assert f.step == 1  # the backward after the first update
    assert f.count >= 3 and ".grad" in f.message


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_manual_loop_is_silent(lib, name):
    loop, kwargs = CLEAN[name]
    lens = run(lib, loop, **kwargs)
    assert above_info(lens) == {}, lens.report()
    assert lens.session.iterations >= 2, "updates by hand end iterations"


def test_manual_updates_are_iterations(lib):
    lens = run(lib, ml.bare_sub_, steps=6, clear="zero_")
    # the first update is seen at the second backward, the last one has no backward after it
    assert (lens.session.steps, lens.session.iterations) == (5, 5)


def test_deliberate_accumulation_is_info(lib):
    lens = run(lib, ml.bare_accumulation, updates=3, k=3)
    (f,) = lens.findings
    assert (f.kind, f.severity) == ("accumulation", "info")
    assert f.evidence["backward_per_step"] == {"3": 2}  # the third update has no backward after it


def test_backward_outside_the_update_rhythm(lib):
    lens = run(lib, ml.bare_eval_backward)
    found = above_info(lens)
    assert set(found) == {"unexpected-accumulation"}, lens.report()
    f = found["unexpected-accumulation"]
    assert f.location.line == ml.line_of(ml.bare_eval_backward, "extra"), f.location
    assert [r.line for r in f.related_locations] == [ml.line_of(ml.bare_eval_backward, "update")]
    assert f.evidence["rhythm"] == 1 and f.evidence["backward_per_update"] == 2


def test_graph_kept_across_manual_iterations(lib):
    lens = run(lib, ml.bare_total_loss)
    assert "graph-retained" in above_info(lens), lens.report()


def test_lbfgs_closure_on_bare_tensors_is_silent(lib):
    need(lib, "optim.LBFGS")
    lens = run(lib, ml.lbfgs_bare)
    assert above_info(lens) == {}, lens.report()


def test_one_optimizer_per_layer(lib):
    assert above_info(run(lib, ml.per_layer_optimizers)) == {}
    lens = run(lib, ml.per_layer_optimizers, forget_bias=True)
    found = above_info(lens)
    assert set(found) == {"param-not-in-optimizer"}, lens.report()
    assert any("bias" in s for s in found["param-not-in-optimizer"].subject), found


def test_decorator_matches_context_manager(lib):
    watched = gradlens.watch(on_finding="collect")(ml.bare_data_isub)
    watched(lib)
    ctx = run(lib, ml.bare_data_isub)
    as_tuples = [(f.kind, f.severity, f.location, f.related_locations, f.step) for f in watched.lens.findings]
    assert as_tuples == [(f.kind, f.severity, f.location, f.related_locations, f.step) for f in ctx.findings]


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_cli_report_matches_watch(tmp_path, capsys, engine):
    if engine == "torch":
        pytest.importorskip("torch")
    body = textwrap.dedent(f"""
        import {"torch" if engine == "torch" else "gradlens.engine as torch"}
        torch.manual_seed(0)
        x, y = torch.randn(16, 4), torch.randn(16, 2)
        W = torch.randn(4, 2, requires_grad=True)
        for step in range(5):
            loss = ((x @ W - y) ** 2).mean()
            loss.backward()
            W.data.add_(W.grad, alpha=-0.1)
    """)
    lines = body.splitlines()
    backward_line = 1 + next(i for i, text in enumerate(lines) if "backward()" in text)
    update_line = backward_line + 1
    path = tmp_path / "train.py"
    path.write_text(body)
    status = cli_main(["report", "--format", "json", str(path)])
    out = capsys.readouterr().out
    record = json.loads(out)
    findings = record["findings"]
    assert [(f["kind"], f["severity"]) for f in findings] == [("missing-zero-grad", "warning")], out
    (f,) = findings
    assert f["location"]["line"] == backward_line and [r["line"] for r in f["related_locations"]] == [update_line]
    assert status != 0

    namespace: dict = {"__name__": "train"}
    with gradlens.watch(on_finding="collect") as lens:
        exec(compile(body, str(path), "exec"), namespace)  # noqa: S102 - the same script, in-process
    (g,) = lens.findings
    assert (g.kind, g.severity, g.location.line, [r.line for r in g.related_locations]) == (
        "missing-zero-grad", "warning", backward_line, [update_line])


def test_watched_manual_loop_is_bit_identical_and_leaves_nothing(lib):
    plain = ml.bare_data_isub(lib, clear=True)
    with gradlens.watch(on_finding="collect"):
        watched = ml.bare_data_isub(lib, clear=True)
    assert (plain.detach() == watched.detach()).all()
    model_plain = ml.module_data_add_(lib, clear=False)
    with gradlens.watch(on_finding="collect"):
        model_watched = ml.module_data_add_(lib, clear=False)
    for a, b in zip(model_plain.parameters(), model_watched.parameters()):
        assert (a.detach() == b.detach()).all()
    for p in model_watched.parameters():
        assert not getattr(p, "_post_accumulate_grad_hooks", None), "hooks left behind"
    ref = weakref.ref(watched)
    del watched
    assert ref() is None, "the watch kept a leaf alive"


def test_rebinding_loop_does_not_grow_the_recorder(lib):
    with gradlens.watch(on_finding="collect") as lens:
        rec = lens._recorder
        ml.bare_detach_rebind(lib, steps=3)
        small = len(rec.params)
        ml.bare_detach_rebind(lib, steps=40)
        assert len(rec.params) <= small + 1 and len(rec._leaf_handles) <= small + 1


def test_backward_without_updates_does_not_grow_the_recorder(lib):
    """Saliency on fresh inputs: many backward passes, no update; nothing is judged and nothing grows."""
    model = ml.mlp(lib)
    with gradlens.watch(on_finding="collect") as lens:
        rec = lens._recorder
        for _ in range(100):
            x = lib.randn(4, 4, requires_grad=True)
            model(x).sum().backward()
        assert len(rec._window_lines) <= 64 and len(rec.params) <= 8
    assert above_info(lens) == {} and lens.session.iterations == 0
