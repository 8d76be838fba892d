"""Findings name things as the user wrote them (issue 16): parameters by their qualified path from the
user's own module variables (``head.weight``, ``encoder.0.bias``), optimizers by their variable (``opt``)
where that is unambiguous, on both engines."""

from __future__ import annotations

import gradlens


def data(lib):
    return lib.randn(8, 4), lib.randn(8, 1)


def missing_zero_grad(lens):
    (f,) = [f for f in lens.findings if f.kind == "missing-zero-grad"]
    return f


def test_two_models_are_named_by_their_variables(lib):
    nn = lib.nn
    encoder = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    head = nn.Linear(4, 1)
    opt = lib.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.01)
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(4):
            x, y = data(lib)
            ((head(encoder(x)) - y) ** 2).mean().backward()
            opt.step()
    f = missing_zero_grad(lens)
    assert set(f.subject) == {"encoder.0.weight", "encoder.0.bias", "head.weight", "head.bias"}
    assert "head.weight" in f.message and "`opt` (SGD)" in f.message


def train_without_zero_grad(lib, model):
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(4):
            x, y = data(lib)
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
    return lens


def test_one_bare_layer_is_prefixed_one_composite_model_is_not(lib):
    nn = lib.nn
    lens = train_without_zero_grad(lib, nn.Linear(4, 1))
    assert set(missing_zero_grad(lens).subject) == {"model.weight", "model.bias"}  # not "weight, bias"
    lens = train_without_zero_grad(lib, nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1)))
    assert set(missing_zero_grad(lens).subject) == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_a_model_bound_to_two_names_falls_back_to_its_class(lib):
    layer = model = lib.nn.Linear(4, 1)
    opt = lib.optim.SGD(layer.parameters(), lr=0.01)
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(4):
            x, y = data(lib)
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
    assert set(missing_zero_grad(lens).subject) == {"Linear.weight", "Linear.bias"}


def test_parameters_first_seen_through_the_optimizer_take_module_names(lib):
    nn = lib.nn
    model = nn.Linear(4, 1)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    with gradlens.watch(optimizer=opt, on_finding="collect") as lens:  # tracked from param_groups first
        for _ in range(4):
            x, y = data(lib)
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
    assert set(missing_zero_grad(lens).subject) == {"model.weight", "model.bias"}


def test_optimizer_bound_to_two_names_keeps_its_label(lib):
    model = lib.nn.Linear(4, 1)
    opt = optimizer = lib.optim.SGD(model.parameters(), lr=0.01)
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(4):
            x, y = data(lib)
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
    assert optimizer is opt
    f = missing_zero_grad(lens)
    assert "SGD#0" in f.message and "`opt`" not in f.message  # ambiguous: not guessed


def test_optimizer_in_a_function_is_named_by_its_local_variable(lib):
    def train(model, sgd):
        for _ in range(4):
            x, y = data(lib)
            ((model(x) - y) ** 2).mean().backward()
            sgd.step()

    model = lib.nn.Linear(4, 1)
    with gradlens.watch(on_finding="collect") as lens:
        train(model, lib.optim.SGD(model.parameters(), lr=0.01))
    assert "`sgd` (SGD)" in missing_zero_grad(lens).message
