"""Gradient health series (gradlens.instrument.health) on both engines: values against the real gradients of
an unwatched twin run, growth under a missing zero_grad, a dead layer at zero, NaN counts, the bound."""

from __future__ import annotations

import contextlib
import json
import math

import gradlens
from gradlens.instrument.health import HealthLog

from .scenarios import batch, mlp, mse


def _run(lib, steps, watched, zero_grad=True, health_every=1):
    lib.manual_seed(0)
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch(lib)
    norms = []
    lens = None
    ctx = gradlens.watch(on_finding="collect", health_every=health_every) if watched else None
    if ctx is not None:
        lens = ctx.__enter__()
    try:
        for _ in range(steps):
            if zero_grad:
                opt.zero_grad()
            mse(lib, model(x), y).backward()
            norms.append({n: float((p.grad * p.grad).sum()) ** 0.5 for n, p in model.named_parameters()})
            opt.step()
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    weights = [p.detach().clone() if hasattr(p, "detach") else p for p in model.parameters()]
    return lens, norms, weights


def test_clean_series_match_real_grads(lib):
    lens, _, w_watched = _run(lib, 6, True)
    _, norms, w_plain = _run(lib, 6, False)
    series = json.loads(json.dumps(lens.to_dict()))["health"]["series"]
    assert set(series) == set(norms[0])
    for name, s in series.items():
        assert s["steps"] == [1, 2, 3, 4, 5, 6]
        for got, want in zip(s["grad_norm"], [n[name] for n in norms]):
            assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7)
        assert all(r is not None and 0 < r < 1 for r in s["update_ratio"])
        assert s["nonfinite"] == [0] * 6
    for a, b in zip(w_watched, w_plain):
        assert (a == b).all()  # bit-identical training with the series on


def test_missing_zero_grad_norm_grows(lib):
    lens, _, _ = _run(lib, 6, True, zero_grad=False)
    s = lens.to_dict()["health"]["series"]
    finding = next(f for f in lens.findings if f.kind == "missing-zero-grad")
    for name in finding.subject:
        g = s[name]["grad_norm"]
        assert all(b > a for a, b in zip(g, g[1:])), g


def test_sampled_by_default_and_off(lib):
    lens, _, _ = _run(lib, 40, True, health_every=16)
    steps = next(iter(lens.to_dict()["health"]["series"].values()))["steps"]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8, 16, 32]
    lens, _, _ = _run(lib, 3, True, health_every=0)
    assert lens.to_dict()["health"] is None


def test_thinning_keeps_the_bound():
    log = HealthLog(every=1, first=4, capacity=16)
    for n in range(1, 100_001):
        if log.wants(n):
            log.add("w", n, n, {"grad_norm": 1.0})
    steps = log.to_dict()["series"]["w"]["steps"]
    assert len(steps) <= 16 and steps[:4] == [1, 2, 3, 4] and steps[-1] > 90_000


def test_zero_share_is_the_exact_share_of_zero_gradient_elements(lib):
    # inputs whose first two features are exactly zero give fc1.weight gradients whose first two columns are
    # exactly zero (grad = delta^T x): half of that parameter, none of the others (the count is exact)
    def run(watched):
        lib.manual_seed(0)
        model = mlp(lib)
        opt = lib.optim.SGD(model.parameters(), lr=0.01)
        x, y = batch(lib)
        x = x * lib.tensor([0.0, 0.0, 1.0, 1.0])
        shares = []
        with gradlens.watch(on_finding="collect", health_every=1) if watched else contextlib.nullcontext() as lens:
            for _ in range(3):
                opt.zero_grad()
                mse(lib, model(x), y).backward()
                shares.append({n: float((p.grad.detach().numpy() == 0).sum()) / p.grad.numel()
                               for n, p in model.named_parameters()})
                opt.step()
        return lens, shares

    lens, _ = run(True)
    _, shares = run(False)
    series = lens.to_dict()["health"]["series"]
    assert [s["fc1.weight"] for s in shares] == [0.5, 0.5, 0.5]
    for name, s in series.items():
        assert s["zero_share"] == [sh[name] for sh in shares], name
