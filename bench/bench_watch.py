"""Overhead of ``gradlens.watch`` on training steps: watched / plain in one process, one thread.

Configurations are interleaved round by round (so machine load hits all of them alike); each round times
every step separately and keeps the median; the ratio reported is the median over rounds of
config-median / plain-median of the same round. ``torch.autograd.set_detect_anomaly(True)`` is the
reference row. Models: a tiny MLP (32-64-1, batch 16, about 0.2 ms/step on torch; also on
gradlens.engine) and a small convnet (2x[conv3x3+BN+ReLU+maxpool] + FC on 1x28x28, batch 32, about
10 ms/step; torch only: the native engine has no convolution).

Times are thread CPU time by default (``--wall`` for wall clock): robust to other processes sharing
the cores. Each configuration runs a few untimed steps first (``UNTIMED``).

Run: ``python bench/bench_watch.py [--rounds 9] [--steps 40] [--markdown]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradlens  # noqa: E402


def tiny_mlp(lib):
    nn = lib.nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(32, 64)
            self.fc2 = nn.Linear(64, 1)

        def forward(self, x):
            return self.fc2(self.fc1(x).relu())

    model = MLP()
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    x, y = lib.randn(16, 32), lib.randn(16, 1)
    return model, opt, x, y, lambda out, y: ((out - y) ** 2).mean()


def convnet(lib):
    nn = lib.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    x, y = lib.randn(32, 1, 28, 28), lib.randint(0, 10, (32,))
    return model, opt, x, y, nn.functional.cross_entropy


clock = time.thread_time  # CPU time of this thread: robust to other processes sharing the cores


UNTIMED = 4
"""Steps run untimed after entering each configuration: the watch tracks its first three iterations in
full (a one-off start-up cost), and the steady state is what a training run pays."""


def step_times(setup, lib, steps: int, ctx) -> float:
    model, opt, x, y, loss_fn = setup
    times = []
    with ctx:
        for i in range(UNTIMED + steps):
            t0 = clock()
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if i >= UNTIMED:
                times.append(clock() - t0)
    return statistics.median(times)


def configs(lib):
    out = {
        "plain": contextlib.nullcontext,
        "watch (default)": lambda: gradlens.watch(on_finding="collect"),
        "watch (health_every=0)": lambda: gradlens.watch(on_finding="collect", health_every=0),
        "watch (sample_every=1)": lambda: gradlens.watch(on_finding="collect", sample_every=1),
    }
    if lib.__name__ == "torch":
        out["detect_anomaly (reference)"] = lambda: lib.autograd.set_detect_anomaly(True)
    return out


def measure(lib, make_model, rounds: int, steps: int) -> dict[str, tuple[float, float, float]]:
    """``{config: (median per-round ratio, best-round ratio, median ms/step)}``."""
    setup = make_model(lib)
    cfgs = configs(lib)
    for make in cfgs.values():  # warm-up
        step_times(setup, lib, steps // 2 or 1, make())
    per: dict[str, list[float]] = {k: [] for k in cfgs}
    for _ in range(rounds):
        for name, make in cfgs.items():
            per[name].append(step_times(setup, lib, steps, make()))
    plain = per["plain"]
    return {
        name: (
            statistics.median(v / p for v, p in zip(vals, plain, strict=True)),
            min(vals) / min(plain),
            statistics.median(vals) * 1e3,
        )
        for name, vals in per.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--markdown", action="store_true", help="print BENCHMARKS.md rows")
    ap.add_argument("--only", choices=["tiny", "convnet", "native"], help="run one benchmark")
    ap.add_argument("--wall", action="store_true", help="time wall clock instead of thread CPU time")
    args = ap.parse_args(argv)
    global clock
    if args.wall:
        clock = time.perf_counter
    warnings.simplefilter("ignore")
    rows = []
    import gradlens.engine as native

    native.set_num_threads(1)
    benches = [("native", native, "tiny MLP", tiny_mlp)]
    try:
        import torch

        torch.set_num_threads(1)
        benches = [
            ("torch", torch, "tiny MLP", tiny_mlp),
            ("torch", torch, "small convnet", convnet),
        ] + benches
    except ImportError:
        print("torch not installed: native engine only", file=sys.stderr)
    pick = {
        "tiny": ("torch", "tiny MLP"),
        "convnet": ("torch", "small convnet"),
        "native": ("native", "tiny MLP"),
    }
    if args.only:
        benches = [b for b in benches if (b[0], b[2]) == pick[args.only]]
    for engine, lib, model_name, make in benches:
        res = measure(
            lib, make, args.rounds, max(4, args.steps // (8 if model_name == "small convnet" else 1))
        )
        for cfg, (ratio, best, ms) in res.items():
            rows.append((engine, model_name, cfg, ms, ratio, best))
    if args.markdown:
        print(
            "| engine | model | configuration | ms/step (median) | ratio, median of rounds "
            "| ratio, best rounds |"
        )
        print("|---|---|---|---|---|---|")
        for engine, model_name, cfg, ms, ratio, best in rows:
            print(f"| {engine} | {model_name} | {cfg} | {ms:.3f} | {ratio:.2f}x | {best:.2f}x |")
    else:
        for engine, model_name, cfg, ms, ratio, best in rows:
            print(
                f"{engine:7s} {model_name:14s} {cfg:28s} {ms:8.3f} ms/step  {ratio:5.2f}x  (best {best:.2f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
