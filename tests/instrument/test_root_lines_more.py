"""Root lines of ``zero-grad-before-step`` (the ``zero_grad()`` between ``backward()`` and ``step()``) and
of ``unexpected-accumulation`` from a repeated backward (the ``backward(retain_graph=True)``), each with the
``step()`` that noticed it as the related location, on both engines, for two loop shapes per rule; the fixed
loops stay silent. Lines come from ``# <root>``/``# <noticed>`` markers."""

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


# --- unexpected-accumulation from a second backward through one graph -------------------------------------
def _grad_norm(loss, model):
    loss.backward(retain_graph=True)  # <root>
    return sum(float((p.grad ** 2).sum()) for p in model.parameters())


def bug_norm_helper_backward_twice(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        _grad_norm(loss, model)
        loss.backward()
        opt.step()  # <noticed>


def bug_two_losses_one_graph(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward(retain_graph=True)  # <root>
        loss.backward()
        opt.step()  # <noticed>


def clean_norm_by_autograd_grad(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        grads = lib.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        sum(float((g ** 2).sum()) for g in grads)
        loss.backward()
        opt.step()


def _accumulation(lib, loop):
    with gradlens.watch(on_finding="collect") as lens:
        loop(lib)
    return [f for f in lens.findings if f.kind == "unexpected-accumulation"]


def test_repeated_backward_points_at_the_retaining_backward(lib):
    for loop, root_fn in ((bug_norm_helper_backward_twice, _grad_norm), (bug_two_losses_one_graph, None)):
        (f,) = _accumulation(lib, loop)
        assert (f.location.file, f.location.line) == (__file__, line_of(root_fn or loop, "root")), f
        assert [(r.file, r.line) for r in f.related_locations] == [(__file__, line_of(loop, "noticed"))], f
        assert "backward(retain_graph=True) at line" in f.message and "torch.autograd.grad" in f.message


def test_reading_gradients_with_autograd_grad_is_silent(lib):
    assert _accumulation(lib, clean_norm_by_autograd_grad) == []
