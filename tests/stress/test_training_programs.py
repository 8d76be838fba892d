"""Random training programs (programs.py) watched on both engines: every injected bug is reported with its
slug at a line of the generated program, and clean programs stay silent above info.

150 fixed seeds x 2 engines run in CI (seed % 10 picks the bug: 30 clean programs, 15 per rule); the
terminal summary prints the figures. About 20 s of CPU (a minute on a busy machine). ``python
bench/fuzz_training.py --programs 2000`` runs many more. The named tests at the end are the shrunk programs
behind the detector fixes this generator prompted.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from ..conftest import HAS_TORCH
from . import programs as P

SEEDS = range(150)
MANUAL_SEEDS = range(40)  # manual loops (no optimizer): 20 clean, 10 per rule


def _lib(engine: str):
    if engine == "torch":
        if not HAS_TORCH:
            pytest.skip("torch is not installed")
        import torch

        return torch
    import gradlens.engine

    return gradlens.engine


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("programs")


def check(spec: P.Spec, engine: str, directory) -> P.Outcome:
    out = P.run(spec, _lib(engine), directory)
    assert out.ok, out.explain()
    return out


# gradlens.engine's optimizers let numpy warn when the injected NaN/Inf gradients reach them (torch is silent)
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
@pytest.mark.parametrize("engine", ["torch", "native"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_training_program(seed, engine, program_dir):
    out = P.run(P.generate(seed), _lib(engine), program_dir)
    P.TALLY.add(out)
    assert out.ok, out.explain()


@pytest.mark.parametrize("engine", ["torch", "native"])
@pytest.mark.parametrize("seed", MANUAL_SEEDS)
def test_random_manual_training_program(seed, engine, program_dir):
    out = P.run(P.generate_manual(seed), _lib(engine), program_dir)
    P.TALLY.add(out)
    assert out.ok, out.explain()


def test_manual_seed_set_covers_every_style():
    specs = [P.generate_manual(s) for s in MANUAL_SEEDS]
    assert Counter(s.bug for s in specs) == {None: 20, "missing-zero-grad": 10, "unexpected-accumulation": 10}
    for feature, values in [
        ("model", ("bare", "module")),
        ("update", P.MANUAL_UPDATES),
        ("clearing", P.MANUAL_CLEARINGS),
        ("clear_when", ("after_update", "before_forward")),
        ("k", (1, 2, 3)),
    ]:
        assert {getattr(s, feature) for s in specs} >= set(values), feature
    assert any(s.k > 1 and s.bug is None for s in specs)  # accumulation info on clean manual loops


def test_seed_set_covers_every_rule_and_variant():
    specs = [P.generate(s) for s in SEEDS]
    injected = Counter(s.bug for s in specs)
    for rule in P.RULES:
        assert injected[rule] >= 10, (rule, injected)
    assert injected[None] >= 20
    assert sum(1 for s in specs if s.bug is None and s.backward_per_step > 1) >= 5  # accumulation info
    used = {(s.bug, s.variant) for s in specs if s.bug}
    for rule, names in P.VARIANTS.items():
        for name in names:
            assert (rule, name) in used, (rule, name)
    for feature, values in [
        ("model", P.MODELS),
        ("optimizer", P.OPTIMIZERS),
        ("clearing", P.CLEARINGS),
        ("evaluation", P.EVALUATIONS),
        ("split", ("one", "groups", "two")),
        ("clear_when", ("before_backward", "after_step")),
        ("logging", ("item", "detach", "none")),
        ("k", (1, 2, 3, 4)),
        ("summed", (True, False)),
        ("clip", (True, False)),
        ("scheduler", tuple(P.SCHEDULERS)),
    ]:
        assert {getattr(s, feature) for s in specs} >= set(values), feature


def test_generation_is_deterministic_and_admissible():
    for seed in range(300):
        spec = P.generate(seed)
        assert spec == P.generate(seed)
        assert P.render(spec) == P.render(P.generate(seed))
        if spec.bug:
            assert spec.variant in P.variants(spec, spec.bug) and spec.variant in P.VARIANTS[spec.bug]
        compile(P.render(spec), f"program_{seed}.py", "exec")


def test_program_runs_as_a_standalone_script(tmp_path):
    spec = P.Spec(seed=7, bug="missing-zero-grad", variant="forgotten")
    path = tmp_path / "program.py"
    path.write_text(P.render(spec))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "missing-zero-grad" in done.stdout and "program.py" in done.stdout


# --- shrunk programs behind detector fixes ------------------------------------------------------------------
REGRESSIONS = {
    # eval-mode forward of a model returning a tuple (logits, aux) was never checked: the sentinel went
    # only on a single tensor output
    "eval_without_no_grad_tuple_output": P.Spec(
        seed=5, model="two_head", evaluation="no_grad", bug="graph-without-backward", variant="no_guard"
    ),
    "eval_without_no_grad_rnn_cell": P.Spec(
        seed=5, model="rnn", evaluation="function", bug="graph-without-backward", variant="no_decorator"
    ),
    # grads zeroed in place between backward and step: the next backward adds to zeros the step applied,
    # which was reported as missing-zero-grad as well
    "zero_grad_in_place_before_step_only": P.Spec(
        seed=36, clearing="grad_zero_", bug="zero-grad-before-step", variant="moved"
    ),
    "zero_grad_set_to_none_false_before_step_only": P.Spec(
        seed=36, clearing="zero_grad_keep", k=2, micro=4, bug="zero-grad-before-step", variant="moved"
    ),
    # an RNN state never detached, kept with retain_graph=True, the chain cut at each epoch: under the
    # watch the in-place error torch raises (weights changed by the step) was swallowed by the saved-tensor
    # hooks, so the run went on with wrong gradients and nothing was reported
    "rnn_no_detach_retain_graph_accumulating": P.Spec(
        seed=14, model="rnn", depth=4, width=4, optimizer="adagrad", epochs=3, micro=4, k=2,
        bug="graph-retained", variant="rnn_no_detach_retain",
    ),
    # a head replaced after the optimizer was built: the old head (in the optimizer, no gradient) was also
    # reported as no-gradient; now one param-not-in-optimizer finding names both
    "head_replaced_one_finding": P.Spec(seed=8, bug="param-not-in-optimizer", variant="head_replaced"),
    "head_replaced_two_optimizers": P.Spec(
        seed=8, split="two", bug="param-not-in-optimizer", variant="head_replaced"
    ),
    # a frozen layer unfrozen mid-training but left out of the optimizer: parameters seen frozen got no
    # accumulation hook, so their gradients were never seen
    "unfrozen_layer_not_in_optimizer": P.Spec(
        seed=38, model="frozen", frozen_in_optimizer=False, epochs=3,
        bug="param-not-in-optimizer", variant="unfrozen_later",
    ),
    # ... and unfrozen two steps before the end: the hook must be in place for the next backward
    "unfrozen_layer_not_in_optimizer_short_run": P.Spec(
        seed=248, model="frozen", depth=3, frozen_in_optimizer=False, epochs=2, micro=2,
        bug="param-not-in-optimizer", variant="unfrozen_later",
    ),
    # training outputs kept with their graph (preds.append(out)) were seen only when the loss reached them
    # through a single-input chain; a two-term loss (two heads, a reconstruction term) hid them
    "kept_outputs_two_head_loss": P.Spec(
        seed=254, model="two_head", micro=4, bug="graph-retained", variant="kept_outputs"
    ),
    "kept_outputs_tied_weights": P.Spec(seed=254, model="tied", micro=4, bug="graph-retained", variant="kept_outputs"),
}


@pytest.mark.parametrize("engine", ["torch", "native"])
@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_program(name, engine, program_dir):
    spec = REGRESSIONS[name]
    assert spec.variant in P.variants(spec, spec.bug)
    check(spec, engine, program_dir)


def test_head_replaced_finding_names_the_stale_parameters(program_dir):
    out = check(REGRESSIONS["head_replaced_one_finding"], "native", program_dir)
    f = out.above_info["param-not-in-optimizer"]
    assert f.evidence["held_without_gradient"] == 2 and "replaced layer" in f.message


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_watch_keeps_the_engines_in_place_check(engine):
    """Saved-tensor hooks turn off the engines' own version check; the watch must not hide the error."""
    import gradlens

    lib = _lib(engine)

    def weights_changed_before_backward():
        w = lib.nn.Parameter(lib.randn(3, 3))
        x = lib.randn(2, 3, requires_grad=True)
        y = (x @ w).sum()
        with lib.no_grad():
            w.add_(1)
        y.backward()

    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        weights_changed_before_backward()
    with gradlens.watch(on_finding="collect"):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            weights_changed_before_backward()


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_dead_relu_units_with_clipping_are_not_a_clear(engine):
    """Units that get no signal have exactly zero gradients; clipping rescales them in place. That is not
    zero_grad() between backward and step (found by the generator: a width-4 two-head model on torch)."""
    import gradlens

    lib = _lib(engine)
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 2))
    with lib.no_grad():
        model[0].bias.fill_(-100.0)  # every hidden unit dead: only the last bias gets a gradient
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    x, y = lib.randn(8, 4), lib.randn(8, 2)
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(4):
            opt.zero_grad(set_to_none=False)
            lib.nn.functional.mse_loss(model(x), y).backward()
            lib.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
            opt.step()
    assert lens.kinds("warning") == set(), lens.report()
    assert float(model[0].weight.grad.abs().sum()) == 0.0  # the premise: zero gradients, rescaled


def test_coverage_detector_folds_a_replaced_layer_into_one_finding():
    """Hand-built events (no engine): stale parameters held by an optimizer plus orphan parameters are one
    param-not-in-optimizer finding; stale parameters alone remain no-gradient."""
    from gradlens.detectors import analyse
    from gradlens.instrument.events import StepEvent

    def step(n, never, orphans):
        return StepEvent(step=n, optimizer="SGD#0", optimizer_steps=n, n_params=4, touched=("fc1.weight",),
                         max_count=1, never_grad=never, orphans=orphans)

    stale = ("SGD#0.param_groups[0][2]", "SGD#0.param_groups[0][3]")
    replaced = analyse([step(n, stale, ("head.weight", "head.bias")) for n in (1, 2, 3)])
    assert [(f.kind, f.evidence.get("held_without_gradient")) for f in replaced] == [("param-not-in-optimizer", 2)]
    unused = analyse([step(n, stale, ()) for n in (1, 2, 3)])
    assert [f.kind for f in unused] == ["no-gradient"]
