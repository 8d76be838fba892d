"""``zero-grad-before-step`` points at the ``zero_grad()`` that runs between ``backward()`` and ``step()``
(the line to move), with the ``step()`` that noticed it as the related location, on both engines, for two
loop shapes; the fixed loops stay silent. Lines come from ``# <root>``/``# <noticed>`` markers."""

from __future__ import annotations

import gradlens

from .rootline_loops import data, line_of, mlp


def bug_clear_after_backward(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.zero_grad()  # <root>
        opt.step()  # <noticed>


def bug_model_cleared_in_a_helper_loop(lib, steps=4):
    """Two modules, the model's own zero_grad() between backward and step, inside a function."""
    nn = lib.nn
    encoder, head = nn.Linear(4, 8), nn.Linear(8, 1)
    model = nn.Sequential(encoder, nn.ReLU(), head)
    optimizer = lib.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(x, y):
        out = model(x)
        loss = ((out - y) ** 2).mean()
        loss.backward()
        model.zero_grad()  # <root>
        optimizer.step()  # <noticed>
        return loss.item()

    for _ in range(steps):
        train_step(*data(lib))


def clean_clear_before_backward(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()


def clean_clear_after_step(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


def _findings(lib, loop):
    with gradlens.watch(on_finding="collect") as lens:
        loop(lib)
    return [f for f in lens.findings if f.kind == "zero-grad-before-step"]


def test_points_at_the_zero_grad_between_backward_and_step(lib):
    for loop in (bug_clear_after_backward, bug_model_cleared_in_a_helper_loop):
        (f,) = _findings(lib, loop)
        assert (f.location.file, f.location.line) == (__file__, line_of(loop, "root")), f
        assert [(r.file, r.line) for r in f.related_locations] == [(__file__, line_of(loop, "noticed"))], f
        assert "runs after backward()" in f.message and ".zero_grad()` (line" in f.message


def test_fixed_loops_are_silent(lib):
    for loop in (clean_clear_before_backward, clean_clear_after_step):
        assert _findings(lib, loop) == []
