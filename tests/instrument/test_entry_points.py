"""The call a newcomer types first, for every public entry point (``gradlens.__all__``): it works, or it fails
with a message that shows the right call (issue 16)."""

from __future__ import annotations

import pytest

import gradlens


def loop(lib, model, opt, steps=4):
    for _ in range(steps):
        x, y = lib.randn(8, 3), lib.randn(8, 1)
        ((model(x) - y) ** 2).mean().backward()
        opt.step()


@pytest.fixture
def setup(lib):
    model = lib.nn.Linear(3, 1)
    return lib, model, lib.optim.SGD(model.parameters(), lr=0.01)


@pytest.mark.parametrize("order", ["model, optimizer", "optimizer, model", "[model], optimizer"])
def test_watch_takes_model_and_optimizer_positionally(setup, order):
    lib, model, opt = setup
    args = {"model, optimizer": (model, opt), "optimizer, model": (opt, model),
            "[model], optimizer": ([model], opt)}[order]
    with gradlens.watch(*args, on_finding="collect") as lens:
        loop(lib, model, opt)
    assert [f.kind for f in lens.findings] == ["missing-zero-grad"]
    assert lens.session.options["model"] and lens.session.options["optimizer"]


def test_watch_positional_narrows_like_the_keywords(setup):
    lib, model, opt = setup
    other = lib.nn.Linear(3, 1)
    other_opt = lib.optim.SGD(other.parameters(), lr=0.01)
    with gradlens.watch(model, opt, on_finding="collect") as lens:
        loop(lib, other, other_opt)  # not the watched pair: its steps are not judged
    assert lens.findings == []


def test_watch_as_bare_decorator_still_works(setup):
    lib, model, opt = setup

    @gradlens.watch
    def train():
        loop(lib, model, opt)

    train()
    assert [f.kind for f in train.lens.findings] == ["missing-zero-grad"]


@pytest.mark.parametrize("bad", ["a function with a model", "a string", "a parameter generator"])
def test_watch_refuses_other_positionals_with_the_right_call(setup, bad):
    lib, model, opt = setup
    args = {"a function with a model": (print, model), "a string": ("model",),
            "a parameter generator": (model.parameters(),)}[bad]
    with pytest.raises(TypeError) as info:
        gradlens.watch(*args)
    text = str(info.value)
    assert "gradlens.watch(model, optimizer)" in text and "gradlens.watch(model=model, optimizer=optimizer)" in text


def test_lens_called_directly_says_how_to_get_one():
    with pytest.raises(TypeError, match=r"with gradlens.watch\(\.\.\.\) as lens"):
        gradlens.Lens()


def test_graph_of_a_model_says_to_pass_the_loss(setup):
    lib, model, _ = setup
    with pytest.raises(TypeError, match=r"gradlens.graph\(loss\)"):
        gradlens.graph(model)


def test_first_calls_of_the_graph_entry_points_work(setup, tmp_path):
    lib, model, _ = setup
    loss = model(lib.randn(2, 3)).sum()
    g = gradlens.graph(loss)
    assert g.number_of_nodes() >= 3
    assert "digraph" in str(gradlens.to_dot(loss))
    assert gradlens.to_svg(loss).startswith("<svg")
    out = gradlens.render(loss, tmp_path / "graph.svg")
    assert out.exists() and out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_every_public_name_is_covered():
    """A new public callable needs its first-call check here; data types and errors are read, not called."""
    called = {"watch", "Lens", "graph", "to_dot", "to_svg", "render"}
    read = {"Finding", "Location", "RULES", "__version__"}
    errors = {n for n in gradlens.__all__ if n.endswith(("Error", "Warning"))}
    assert set(gradlens.__all__) - errors - read <= called, set(gradlens.__all__) - errors - read - called
