"""Every rule fires on its bugs (two or more realistic variants) and stays silent on correct loops, on
torch and on gradlens.engine (torch-only features on torch only)."""

from __future__ import annotations

import warnings

import pytest

import gradlens

from . import scenarios as sc
from .conftest import need


def run(lib, loop, **options):
    options.setdefault("on_finding", "collect")
    with gradlens.watch(**options) as lens:
        loop(lib)
    return lens


def above_info(lens):
    return {f.kind: f for f in lens.findings if f.severity != "info"}


# --- silence on correct code ------------------------------------------------------------------------------
CLEAN = {
    "basic": sc.clean_basic,
    "zero_grad_after_step": sc.clean_zero_grad_after_step,
    "accumulation_short_last_window": sc.clean_accumulation,
    "two_losses_separate_graphs": sc.clean_two_losses,
    "multi_head_retain_graph": sc.clean_multi_head_retain,
    "gan_two_optimizers_detach": sc.clean_gan,
    "model.zero_grad": lambda lib: sc._clear_variant(lib, "model.zero_grad"),
    "zero_grad(set_to_none=False)": lambda lib: sc._clear_variant(lib, "set_to_none=False"),
    "p.grad.zero_()": lambda lib: sc._clear_variant(lib, "grad.zero_"),
    "p.grad=None": lambda lib: sc._clear_variant(lib, "grad=None"),
    "truncated_bptt_detach": sc.clean_tbptt,
    "eval_under_no_grad": sc.clean_eval_no_grad,
    "eval_under_inference_mode": lambda lib: sc.clean_eval_no_grad(lib, inference=True),
    "frozen_backbone_all_params_in_optimizer": sc.clean_frozen_backbone,
    "frozen_backbone_head_only_optimizer": lambda lib: sc.clean_frozen_backbone(
        lib, all_params_in_optimizer=False
    ),
    "ema_teacher_no_grad": sc.clean_ema_teacher,
    "ema_teacher_requires_grad_no_grad": sc.clean_ema_teacher_requires_grad,
    "grad_penalty_create_graph": sc.clean_grad_penalty,
    "meta_inner_loop_create_graph": sc.clean_meta_inner_loop,
    "saliency_eval_then_step": sc.clean_saliency_then_step,
    "loss_history_item_detach": sc.clean_loss_history,
}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_silent_on_correct_loop(lib, name):
    lens = run(lib, CLEAN[name])
    assert above_info(lens) == {}, lens.report()
    assert lens.session.steps > 0


def test_silent_with_gradient_clipping(lib):
    need(lib, "nn.utils.clip_grad_norm_")
    lens = run(lib, sc.clean_clip)
    assert above_info(lens) == {}, lens.report()


def test_silent_on_lbfgs_closure(lib):
    need(lib, "optim.LBFGS")
    lens = run(lib, sc.clean_lbfgs)
    assert above_info(lens) == {}, lens.report()


def test_accumulation_is_info_only(lib):
    lens = run(lib, sc.info_accumulation)
    (f,) = lens.findings
    assert (f.kind, f.severity) == ("accumulation", "info")
    assert f.evidence["backward_per_step"] == {"4": 2}
    declared = run(lib, sc.info_accumulation, accumulation=4)
    assert "declared accumulation=4" in declared.findings[0].message


def test_two_separate_graphs_reported_as_accumulation_info(lib):
    lens = run(lib, sc.clean_two_losses)
    assert [(f.kind, f.severity) for f in lens.findings] == [("accumulation", "info")]


# --- bugs -------------------------------------------------------------------------------------------------
BUGS = {
    "missing_zero_grad_forgotten": (sc.bug_missing_zero_grad, "missing-zero-grad", 2),
    "missing_zero_grad_once_per_epoch": (sc.bug_zero_grad_once_per_epoch, "missing-zero-grad", 2),
    "missing_zero_grad_wrong_optimizer": (sc.bug_wrong_optimizer_cleared, "missing-zero-grad", 4),
    "missing_zero_grad_manual_sgd": (sc.bug_manual_sgd_no_zero, "missing-zero-grad", None),
    "unexpected_accumulation_double_backward": (sc.bug_double_backward, "unexpected-accumulation", 1),
    "unexpected_accumulation_eval_backward": (sc.bug_eval_backward_leaks, "unexpected-accumulation", 2),
    "graph_retained_total_loss": (sc.bug_total_loss, "graph-retained", 3),
    "graph_retained_loss_list": (sc.bug_loss_list, "graph-retained", 3),
    "graph_retained_loss_list_scaled_backward": (sc.bug_loss_list_scaled_backward, "graph-retained", 3),
    "graph_retained_carried_context_retain_graph": (sc.bug_carried_context, "graph-retained", 3),
    "graph_without_backward_item": (sc.bug_eval_without_no_grad, "graph-without-backward", 3),
    "graph_without_backward_kept": (
        lambda lib: sc.bug_eval_without_no_grad(lib, keep=True),
        "graph-without-backward",
        3,
    ),
    "zero_grad_before_step_none": (sc.bug_zero_grad_before_step, "zero-grad-before-step", 1),
    "zero_grad_before_step_in_place": (sc.bug_zero_grad_in_place_before_step, "zero-grad-before-step", 1),
    "no_gradient_detached_branch": (sc.bug_detached_branch, "no-gradient", 2),
    "no_gradient_loss_from_item": (sc.bug_loss_from_item, "no-gradient", 2),
    "param_not_in_optimizer_head_replaced": (sc.bug_head_replaced, "param-not-in-optimizer", 2),
    "param_not_in_optimizer_group_omitted": (sc.bug_param_group_omitted, "param-not-in-optimizer", 2),
    "nonfinite_sqrt_zero": (sc.bug_nonfinite_log, "nonfinite-gradient", 1),
    "nonfinite_overflow": (sc.bug_nonfinite_overflow, "nonfinite-gradient", 1),
}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_rule_fires_on_bug(lib, name):
    loop, kind, by_step = BUGS[name]
    lens = run(lib, loop)
    found = above_info(lens)
    assert kind in found, lens.report()
    f = found[kind]
    if by_step is not None:
        assert f.step is not None and f.step <= by_step, lens.report()
    assert f.message and f.severity in ("error", "warning")
    assert f.location is not None and f.location.file.endswith("scenarios.py"), f.location
    # each problem is reported once, with a count
    assert len([g for g in lens.findings if g.kind == kind]) == 1


@pytest.mark.parametrize("loop", [sc.bug_rnn_no_detach, sc.bug_rnn_retain_graph])
def test_rnn_without_detach_raises_and_is_explained(lib, loop):
    """Without retain_graph the engine raises 'a second time' (backward-through-freed-graph, at the line that
    carries h); with it, the optimizer step changed the saved weights of the old, retained graph and the
    engine raises an in-place error (graph-retained). Both are explained; the exception is left untouched."""
    with gradlens.watch(on_finding="collect") as lens:
        with pytest.raises(RuntimeError, match="second time|inplace") as info:
            loop(lib)
    kind = "graph-retained" if loop is sc.bug_rnn_retain_graph else "backward-through-freed-graph"
    (f,) = [f for f in lens.findings if f.kind == kind]
    assert "detach" in f.message
    assert not getattr(info.value, "__notes__", None)  # the engine's exception is not annotated
    if kind == "backward-through-freed-graph":
        assert f.subject == ("h",)
        assert "out, h = cell(" in open(f.location.file).read().splitlines()[f.location.line - 1]


def test_graph_retained_names_the_variable(lib):
    lens = run(lib, sc.bug_total_loss)
    f = above_info(lens)["graph-retained"]
    assert f.subject == ("total_loss",)
    assert "total_loss +=" in open(f.location.file).read().splitlines()[f.location.line - 1]
    assert f.evidence["old_graphs"] >= 2 and f.evidence["graphs_growth_per_step"] is not None


def test_missing_zero_grad_names_parameters_and_optimizer(lib):
    lens = run(lib, sc.bug_wrong_optimizer_cleared)
    f = above_info(lens)["missing-zero-grad"]
    assert "`opt_dec` (SGD)" in f.message and "SGD#1" not in f.message
    assert all(name.startswith("dec.fc") for name in f.subject)  # two models: named by their variables
    assert f.count >= 2


def test_graph_without_backward_reports_bytes(lib):
    lens = run(lib, sc.bug_eval_without_no_grad)
    f = above_info(lens)["graph-without-backward"]
    assert f.evidence["saved_bytes_per_forward"], lens.report()


# --- surfacing --------------------------------------------------------------------------------------------
def test_findings_surface_as_rule_warnings_at_user_line(lib):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gradlens.watch():
            sc.bug_missing_zero_grad(lib)
    ours = [w for w in caught if issubclass(w.category, gradlens.GradlensWarning)]
    assert len(ours) == 1
    w = ours[0]
    assert w.category.__name__ == "MissingZeroGradWarning" and w.category.kind == "missing-zero-grad"
    assert w.filename.endswith("scenarios.py")
    # the root line: the loop's backward() (it has no zero_grad); opt.step() is where it was noticed
    assert ".backward()" in open(w.filename).read().splitlines()[w.lineno - 1]


def test_ignore_and_raise(lib):
    lens = run(lib, sc.bug_missing_zero_grad, ignore={"missing-zero-grad"})
    assert "missing-zero-grad" not in lens.kinds()
    with pytest.raises(gradlens.FindingError) as info:
        with gradlens.watch(on_finding="raise"):
            sc.bug_missing_zero_grad(lib)
    assert info.value.finding.kind == "missing-zero-grad"


def test_narrowing_to_a_model_and_optimizer(lib):
    model = sc.mlp(lib)
    other = sc.mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    opt_other = lib.optim.SGD(other.parameters(), lr=0.1)
    with gradlens.watch(model=model, optimizer=opt, on_finding="collect") as lens:
        for _ in range(3):
            x, y = sc.batch(lib)
            sc.mse(lib, other(x), y).backward()  # the unwatched pair forgets zero_grad
            opt_other.step()
            opt.zero_grad()
            sc.mse(lib, model(x), y).backward()
            opt.step()
    assert above_info(lens) == {}, lens.report()


def test_graph_retained_carries_the_holders_graph(lib):
    lens = run(lib, sc.bug_loss_list)
    f = above_info(lens)["graph-retained"]
    assert f.graph is not None and f.graph.number_of_nodes() > 3
    assert f.evidence["holder_graph_nodes"] == f.graph.number_of_nodes()
    back = gradlens.Finding.from_dict(f.to_dict())
    assert back.graph.number_of_nodes() == f.graph.number_of_nodes()


def test_one_long_watch_over_many_loops(lib):
    """Models and optimizers created mid-watch are discovered; each problem keeps its own finding."""
    def loops(lib):
        sc.clean_basic(lib)
        sc.bug_loss_list(lib)
        sc.bug_eval_without_no_grad(lib)
        sc.bug_head_replaced(lib)
        sc.clean_gan(lib)
        sc.info_accumulation(lib)

    lens = run(lib, loops)
    expected = {"graph-retained", "graph-without-backward", "param-not-in-optimizer", "accumulation"}
    assert expected <= lens.kinds(), lens.report()
    assert lens.kinds("warning") <= {"graph-retained", "graph-without-backward", "param-not-in-optimizer",
                                     "no-gradient"}


def test_silent_on_amp_grad_scaler_with_skipped_step():
    """torch only: bf16 autocast, GradScaler, unscale_ + clipping, and one overflow step the scaler skips."""
    torch = pytest.importorskip("torch")
    model = sc.mlp(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    with gradlens.watch(on_finding="collect") as lens:
        for i in range(6):
            x, y = sc.batch(torch)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = sc.mse(torch, model(x).float(), y)
            if i == 2:
                loss = loss * float("inf")
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
    assert above_info(lens) == {}, lens.report()
    assert lens.session.steps == 5
