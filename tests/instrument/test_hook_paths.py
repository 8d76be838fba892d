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
    net = _net(lib)
    opt = lib.optim.SGD(net.parameters(), lr=0.01)
    x = lib.randn(3, 4)
    with gradlens.watch(on_finding="collect", nonfinite_every=0) as lens:
        for i in range(40):
            if i < 30:
                opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
        steps = lens._recorder.step
    assert steps == 40
    assert "missing-zero-grad" in lens.kinds(), lens.kinds()
