"""The watch's module hooks, on both engines: outputs kept with their graph and evaluation forwards are still
seen through the root module's hooks, and a run of clean optimizer steps does not hide a bug that appears
later."""

# ruff: noqa: F811 - pytest injects the imported `lib` fixture by parameter name
from __future__ import annotations

import importlib

import gradlens

from .conftest import lib  # noqa: F401 - the two-engine fixture


def _module_registry(lib):
    name = "torch.nn.modules.module" if lib.__name__ == "torch" else "gradlens.engine.nn.modules.module"
    return importlib.import_module(name)


def _net(lib):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.fc2 = nn.Linear(8, 1)
            self.seen_hooks: list[int] = []
            self.fail = False
            self.depth = 0

        def forward(self, x):
            self.seen_hooks.append(len(self._forward_hooks))
            if self.fail:
                raise ValueError("forward failed on purpose")
            if self.depth:
                self.depth -= 1
                x = self(x)[:, :1].expand(-1, 4) * 1.0  # a recursive call of the root module
            return self.fc2(self.fc1(x).relu())

    return Net()


def test_root_hook_still_sees_outputs_kept_and_eval_forwards(lib):
    """The one-call hook does what the global forward hook did: outputs kept with their graph across
    iterations are retained graphs, and an evaluation-mode forward with grad enabled is named."""
    net = _net(lib)
    opt = lib.optim.SGD(net.parameters(), lr=0.1)
    x = lib.randn(3, 4)
    kept = []
    with gradlens.watch(on_finding="collect", sample_every=0) as lens:
        for _ in range(12):
            opt.zero_grad()
            out = net(x)
            kept.append(out)  # the bug: outputs kept with their graphs
            # a two-input root: the loss's own sentinel does not reach ``out``, only the root hook's mark does
            (out.pow(2).mean() + out.mean()).backward()
            opt.step()
    assert "graph-retained" in lens.kinds()
    with gradlens.watch(on_finding="collect") as lens:
        net.eval()
        for _ in range(6):
            net(x).sum().item()  # evaluation without no_grad
        net.train()
    assert "graph-without-backward" in lens.kinds(), lens.kinds()


def test_clean_steps_then_a_bug_is_still_caught(lib):
    """Steps judged clean by the fast pass do not hide a missing zero_grad that starts later."""
    steps, found = _watched_loop(lib, lambda ps: lib.optim.SGD(ps, lr=0.01), stop_zeroing_at=30)
    assert steps == 40
    assert found, "missing-zero-grad was not found"


def _rescaling_sgd(lib, start: int):
    """An SGD that rescales its gradients in place inside ``step`` from its ``start``-th step on (as a
    custom optimizer normalising gradients might): the step then changes what the pre-step pass saw."""

    class RescalingSGD(lib.optim.SGD):
        def __init__(self, params):
            super().__init__(params, lr=0.01)
            self.calls = 0

        def step(self, closure=None):
            out = super().step(closure)
            self.calls += 1
            if self.calls > start:
                with lib.no_grad():
                    for g in self.param_groups:
                        for p in g["params"]:
                            if p.grad is not None:
                                p.grad.mul_(0.5)
            return out

    return RescalingSGD


def _watched_loop(lib, opt_cls, stop_zeroing_at: int, steps: int = 40, catch: tuple = ()):
    """A watched loop that stops calling zero_grad at ``stop_zeroing_at``; ``catch``: exception types the
    loop swallows around ``opt.step()``. Returns the steps the watch counted and its missing-zero-grad
    findings."""
    net = _net(lib)
    opt = opt_cls(net.parameters())
    x = lib.randn(3, 4)
    with gradlens.watch(on_finding="collect", nonfinite_every=0) as lens:
        for i in range(steps):
            if i < stop_zeroing_at:
                opt.zero_grad()
            net(x).pow(2).mean().backward()
            try:
                opt.step()
            except catch:
                pass
        counted = lens._recorder.step
    return counted, [f for f in lens.findings if f.kind == "missing-zero-grad"]


def _first_missing_zero_grad(lib, opt_cls, stop_zeroing_at: int, steps: int = 40):
    return [f.step for f in _watched_loop(lib, opt_cls, stop_zeroing_at, steps)[1]]


def test_optimizer_changing_gradients_in_its_step_keeps_missing_zero_grad(lib):
    """The post-step snapshot is taken in the pre-step pass only for optimizers whose step leaves the
    gradients alone: one that rescales them in place is noticed on its first steps, and a missing
    zero_grad is still found at the step where it starts, as with a plain SGD."""
    plain = _first_missing_zero_grad(lib, lambda ps: lib.optim.SGD(ps, lr=0.01), stop_zeroing_at=10)
    rescaling = _first_missing_zero_grad(lib, _rescaling_sgd(lib, start=0), stop_zeroing_at=10)
    assert plain and rescaling == plain


def test_optimizer_that_starts_changing_gradients_later_is_noticed(lib):
    """An optimizer that starts rescaling gradients in its step after its first steps is noticed on a
    verification step (one in 16): a missing zero_grad after that is found at its step."""
    plain = _first_missing_zero_grad(lib, lambda ps: lib.optim.SGD(ps, lr=0.01), stop_zeroing_at=20)
    rescaling = _first_missing_zero_grad(lib, _rescaling_sgd(lib, start=5), stop_zeroing_at=20)
    assert plain and rescaling == plain


def test_subclass_step_calling_its_parents_counts_once(lib):
    """Once the parent class has had an instance, the engine fires the global step hooks again for a
    subclass's ``super().step()`` (torch does: its step wrapper is patched per class): one user step is
    still one step, so findings name the step the user counts."""
    lib.optim.SGD(_net(lib).parameters(), lr=0.01)  # the parent class's step is now wrapped too

    class Clipped(lib.optim.SGD):
        def step(self, closure=None):
            return super().step(closure)

    calls = []
    registry = importlib.import_module(f"{lib.__name__}.optim.optimizer")
    handle = registry.register_optimizer_step_pre_hook(lambda opt, args, kwargs: calls.append(opt))
    try:
        steps, found = _watched_loop(lib, lambda ps: Clipped(ps, lr=0.01), stop_zeroing_at=10, steps=20)
    finally:
        handle.remove()
    assert len(calls) == 40  # the premise: two hook calls per user step
    assert steps == 20
    _, plain = _watched_loop(lib, lambda ps: lib.optim.SGD(ps, lr=0.01), stop_zeroing_at=10, steps=20)
    # the same step, and the same line to edit (the loop's zero_grad), as under a plain SGD
    assert [(f.step, f.location) for f in found] == [(f.step, f.location) for f in plain]
    assert plain and plain[0].location is not None


def test_step_that_raises_does_not_stall_later_steps(lib):
    """A step that raises (caught by the loop) never reaches its post-step hook: the next backward forgets
    it, so later steps are counted and judged."""

    class Flaky(lib.optim.SGD):
        def __init__(self, params):
            super().__init__(params, lr=0.01)
            self.calls = 0

        def step(self, closure=None):
            self.calls += 1
            if self.calls == 5:
                raise RuntimeError("step failed on purpose")
            return super().step(closure)

    steps, found = _watched_loop(lib, Flaky, stop_zeroing_at=20, steps=30, catch=(RuntimeError,))
    assert steps == 29
    assert found, "missing-zero-grad was not found"
