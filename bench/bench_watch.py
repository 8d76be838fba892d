"""Overhead of ``gradlens.watch`` on training steps: watched / plain in one process, one thread.

Configurations are interleaved round by round (so machine load hits all of them alike); each round times
every step separately and keeps the median; the ratio reported is the median over rounds of
config-median / plain-median of the same round. ``torch.autograd.set_detect_anomaly(True)`` is the
reference row. Models, each on torch and on gradlens.engine: a tiny MLP (32-64-1, batch 16, about 0.1-0.2
ms/step), a small convnet (2x[conv3x3+BN+ReLU+maxpool] + FC on 1x28x28, batch 32, about 10 ms/step on torch,
30 on the native engine) and a GPT of nanoGPT's shape (6 layers, 6 heads, 384 wide, context 64, batch 8,
character vocabulary of 65, tied embedding, AdamW; a few steps per round: about 0.5 s/step on one thread).

``--profile`` times each hook and each part of a hook (a timer wrapped around the recorder's methods and the
hook closures it makes) over steady-state watched steps of the tiny MLP on both engines, with the calls per
step: where the time of one watched step goes, beside the floor (the same hooks with empty bodies).
``--rss`` runs the GPT in two child processes per engine, plain and watched, and compares their peak
resident set size (``ru_maxrss``).

Times are thread CPU time by default (``--wall`` for wall clock): robust to other processes sharing
the cores. Each configuration runs a few untimed steps first (``UNTIMED``, ``UNTIMED_FEW``). The median step
(default) is the cost of a step that runs no sampled check; ``--mean`` counts the sampled steps at their rate.

Run: ``python bench/bench_watch.py [--rounds 9] [--steps 40] [--markdown] [--only NAME] [--profile] [--rss]``
(``--only`` one of tiny, convnet, native, native-convnet, gpt, native-gpt).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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


def gpt(lib, n_layer: int = 6, n_head: int = 6, n_embd: int = 384, block: int = 64, batch: int = 8,
        vocab: int = 65):
    """A GPT of nanoGPT's shape (its ``model.py`` layout, written here from the paper's description: token
    and position embeddings, pre-LayerNorm blocks of causal self-attention and a 4x GELU MLP, a final
    LayerNorm, a head tied to the token embedding), trained with AdamW on random tokens."""
    nn = lib.nn
    F = nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(n_embd, 3 * n_embd)
            self.proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(n_embd, dim=2)
            q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(n_embd)
            self.attn = Attention()
            self.ln2 = nn.LayerNorm(n_embd)
            self.fc = nn.Linear(n_embd, 4 * n_embd)
            self.out = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, n_embd)
            self.wpe = nn.Embedding(block, n_embd)
            self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)
            self.head = nn.Linear(n_embd, vocab, bias=False)
            self.head.weight = self.wte.weight  # tied, as nanoGPT does

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(lib.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.ln_f(x))

    model = GPT()
    opt = lib.optim.AdamW(model.parameters(), lr=3e-4)
    x = lib.randint(0, vocab, (batch, block))
    y = lib.randint(0, vocab, (batch, block))
    return model, opt, x, y, lambda logits, y: F.cross_entropy(logits.view(-1, vocab), y.view(-1))


clock = time.thread_time  # CPU time of this thread: robust to other processes sharing the cores


UNTIMED = 4
"""Steps run untimed after entering each configuration: the watch tracks its first three iterations in
full (a one-off start-up cost), and the steady state is what a training run pays."""

UNTIMED_FEW = 9
"""The models timed a few steps per round (the convnet, the GPT) start timing after the gradient-health
series' first 8 steps (always sampled): with 4 untimed steps most or all of their timed steps would be sampled
ones, which measures the start-up, not the steady state (the convnet's 5 timed steps did, until 2026-12-08)."""

MEAN = False
"""``--mean``: each configuration's time is the mean of its timed steps instead of the median, so the steps
that run the sampled checks (saved tensors, NaN/Inf scan, gradient health) count at their rate."""


def step_times(setup, lib, steps: int, ctx, untimed: int = UNTIMED) -> float:
    model, opt, x, y, loss_fn = setup
    times = []
    with ctx:
        for i in range(untimed + steps):
            t0 = clock()
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if i >= untimed:
                times.append(clock() - t0)
    return statistics.fmean(times) if MEAN else statistics.median(times)


def configs(lib, big: bool = False):
    if big:  # the GPT: a few steps per round, the rows the issue asks for
        return {
            "plain": contextlib.nullcontext,
            "watch (default)": lambda: gradlens.watch(on_finding="collect"),
            "watch (health_every=0)": lambda: gradlens.watch(on_finding="collect", health_every=0),
        }
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
    cfgs = configs(lib, big=make_model is gpt)
    untimed = UNTIMED_FEW if make_model in (gpt, convnet) else UNTIMED
    for make in cfgs.values():  # warm-up
        step_times(setup, lib, steps // 2 or 1, make(), untimed)
    per: dict[str, list[float]] = {k: [] for k in cfgs}
    for _ in range(rounds):
        for name, make in cfgs.items():
            per[name].append(step_times(setup, lib, steps, make(), untimed))
    plain = per["plain"]
    return {
        name: (
            statistics.median(v / p for v, p in zip(vals, plain, strict=True)),
            min(vals) / min(plain),
            statistics.median(vals) * 1e3,
        )
        for name, vals in per.items()
    }

# --- where the time goes: a timer per hook and per part of a hook ---------------------------------------
# (label, Recorder attribute, how it is reached). "method": a recorder method called once per event;
# "factory": a recorder method returning the hook closure(s) the engine calls. Indented labels are parts of
# the hook above them (their time is included in it).
PROFILED = (
    ("optimizer pre-step hook (judge the step's gradients)", "_pre_step", "method"),
    ("  gradient health, before the step (sampled steps)", "_health_before", "method"),
    ("  NaN/Inf scan of the gradients (sampled steps)", "nonfinite", "engine"),
    ("optimizer post-step hook (snapshot grads)", "_post_step", "method"),
    ("  gradient health, after the step (sampled steps)", "_health_after", "method"),
    ("  iteration tick (retention ageing, sampling switch)", "_tick", "method"),
    ("before backward (root sentinel, loss finiteness)", "_before_backward", "method"),
    ("  manual-update boundary", "_manual_boundary", "method"),
    ("  leaf discovery (cached walk)", "_discover_leaves", "method"),
    ("  sentinel marks down a single-input chain", "_plant_down_chain", "module"),
    ("after backward (leaf-walk check)", "_after_backward_leaves", "method"),
    ("accumulation hook (per parameter)", "_make_post_acc", "factory"),
    ("module forward pre-hook (per module call)", "_make_fwd_pre", "factory"),
    ("module forward hook (per module call)", "_make_fwd_post", "factory"),
    ("  root output sentinel", "_mark_output", "method"),
    ("saved-tensor pack + unpack (sampled iterations)", "_make_saved_hooks", "saved"),
)


def _timed(fn, cell):
    clock_ns = time.perf_counter_ns

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t0 = clock_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            cell[0] += clock_ns() - t0
            cell[1] += 1

    return timed


@contextlib.contextmanager
def _profiled(cells):
    """Wrap the recorder's hooks and hook factories in timers; restore them on exit."""
    from gradlens.instrument import backward as backward_mod
    from gradlens.instrument.engines import EngineHooks
    from gradlens.instrument.recorder import Recorder

    undo = []
    for label, attr, kind in PROFILED:
        cell = cells.setdefault(label, [0, 0])
        if kind == "module":
            undo.append((backward_mod, attr, getattr(backward_mod, attr)))
            setattr(backward_mod, attr, _timed(getattr(backward_mod, attr), cell))
            continue
        owner = EngineHooks if kind == "engine" else Recorder
        orig = getattr(owner, attr)
        if kind in ("method", "engine"):
            wrapped = _timed(orig, cell)
        elif kind == "factory":
            wrapped = functools.wraps(orig)(lambda *a, _o=orig, _c=cell, **k: _timed(_o(*a, **k), _c))
        else:  # the (pack, unpack) pair
            wrapped = functools.wraps(orig)(
                lambda *a, _o=orig, _c=cell, **k: tuple(_timed(h, _c) for h in _o(*a, **k)))
        undo.append((owner, attr, owner.__dict__.get(attr)))
        setattr(owner, attr, wrapped)
    try:
        yield
    finally:
        for owner, attr, orig in reversed(undo):
            if orig is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, orig)


def _runner(setup):
    """``run(n)``: ``n`` training steps of ``setup``, returning their wall time in ns."""
    model, opt, x, y, loss_fn = setup
    clock_ns = time.perf_counter_ns

    def run(n: int) -> int:
        t0 = clock_ns()
        for _ in range(n):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        return clock_ns() - t0

    return run


@contextlib.contextmanager
def _empty_hooks(lib, model):
    """The floor: hooks with empty bodies where the watch installs its own (global optimizer step and module
    forward hooks, a post-accumulate hook per parameter, a pass-through ``autograd.backward``)."""
    if lib.__name__ == "torch":
        import torch.nn.modules.module as mm
        import torch.optim.optimizer as om
    else:
        import gradlens.engine.nn.modules.module as mm
        import gradlens.engine.optim.optimizer as om

    def nothing(*args):
        return None

    handles = [om.register_optimizer_step_pre_hook(nothing), om.register_optimizer_step_post_hook(nothing),
               mm.register_module_forward_pre_hook(nothing), mm.register_module_forward_hook(nothing)]
    handles += [p.register_post_accumulate_grad_hook(nothing) for p in model.parameters()]
    orig = lib.autograd.backward

    def backward(*args, **kwargs):
        return orig(*args, **kwargs)

    lib.autograd.backward = backward
    try:
        yield
    finally:
        lib.autograd.backward = orig
        for h in handles:
            h.remove()


def profile(steps: int, rounds: int, make=None) -> int:
    """Print, per engine, the markdown table of where a steady-state watched step of the tiny MLP (or ``make``'s
    model) spends its time: per hook (and per part), microseconds per step and calls per step, against the overhead
    measured as watched minus plain in the same run (rounds interleaved, medians)."""
    import gradlens.engine as native

    libs = [("native", native)]
    try:
        import torch

        torch.set_num_threads(1)
        libs.insert(0, ("torch", torch))
    except ImportError:
        pass
    for engine, lib in libs:
        make = make or tiny_mlp
        setup = make(lib)
        run = _runner(setup)
        run(50)
        plain, floor, watched, per_round = [], [], [], []
        for _ in range(rounds):
            plain.append(run(steps) / steps)
            with _empty_hooks(lib, setup[0]):
                floor.append(run(steps) / steps)
            cells: dict[str, list[int]] = {}
            with _profiled(cells), gradlens.watch(on_finding="collect"):
                run(64)  # past the start-up (first iterations, health's first steps): the steady state
                for cell in cells.values():
                    cell[:] = [0, 0]
                watched.append(run(steps) / steps)
            per_round.append(cells)
        p, w, f = (statistics.median(v) / 1e3 for v in (plain, watched, floor))
        print(f"\n{engine}, {make.__name__}, {steps} steady-state steps x {rounds} rounds: plain {p:.1f} us/step, "
              f"empty-bodied hooks {f:.1f} us/step ({f / p:.2f}x), watched with timers {w:.1f} us/step "
              f"({w / p:.2f}x)\n")
        print("| hook or part | us/step | calls/step | us/call |")
        print("|---|---:|---:|---:|")
        for label, _attr, _kind in PROFILED:
            us = statistics.median(c[label][0] for c in per_round) / steps / 1e3
            calls = statistics.median(c[label][1] for c in per_round) / steps
            per = us / calls if calls else 0.0
            name = label.replace("  ", "&nbsp;&nbsp;- ", 1) if label.startswith("  ") else label
            print(f"| {name} | {us:.1f} | {calls:.2f} | {per:.1f} |")
    return 0


# --- peak memory, plain vs watched, in separate processes ---------------------------------------------
def rss_child(engine: str, mode: str, steps: int) -> int:
    import resource

    if engine == "torch":
        import torch as lib
    else:
        import gradlens.engine as lib
    lib.manual_seed(0)
    lib.set_num_threads(1)
    model, opt, x, y, loss_fn = gpt(lib)
    ctx = gradlens.watch(on_finding="collect") if mode == "watch" else contextlib.nullcontext()
    with ctx:
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    return 0


def rss(steps: int, rounds: int, engines: list[str]) -> int:
    """Peak RSS of ``steps`` GPT steps, plain and watched, each in its own process (alternated, medians),
    per engine."""
    import subprocess

    for engine in engines:
        out: dict[str, list[int]] = {"plain": [], "watch": []}
        for _ in range(max(1, rounds)):
            for mode in out:
                cmd = [sys.executable, __file__, "--rss-child", mode, "--rss-engine", engine, "--steps", str(steps)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                out[mode].append(int(res.stdout.split()[-1]))
        p, w = statistics.median(out["plain"]), statistics.median(out["watch"])
        print(f"{engine}, GPT (nanoGPT shape), {steps} steps, {rounds} process pairs: peak RSS plain "
              f"{p / 1024:.1f} MiB, watched {w / 1024:.1f} MiB ({w / p:.3f}x)")
    return 0


PICK = {  # --only NAME: (engine, model), in the order of a full run
    "tiny": ("torch", "tiny MLP"),
    "convnet": ("torch", "small convnet"),
    "native": ("native", "tiny MLP"),
    "native-convnet": ("native", "small convnet"),
    "gpt": ("torch", "GPT (nanoGPT shape)"),
    "native-gpt": ("native", "GPT (nanoGPT shape)"),
}


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--markdown", action="store_true", help="print BENCHMARKS.md rows")
    ap.add_argument("--only", choices=list(PICK), help="run one benchmark")
    ap.add_argument("--profile", action="store_true",
                    help="where the time of one watched step goes (tiny MLP; the convnet with --only convnet)")
    ap.add_argument("--rss", action="store_true", help="peak RSS of the GPT, plain vs watched (child processes)")
    ap.add_argument("--rss-child", choices=["plain", "watch"], help=argparse.SUPPRESS)
    ap.add_argument("--rss-engine", choices=["torch", "native"], action="append",
                    help="with --rss: the engine(s) to measure (default: both, torch if installed)")
    ap.add_argument("--wall", action="store_true", help="time wall clock instead of thread CPU time")
    ap.add_argument("--mean", action="store_true", help="mean of the timed steps instead of the median")
    args = ap.parse_args(argv)
    global clock, MEAN
    if args.wall:
        clock = time.perf_counter
    MEAN = args.mean
    warnings.simplefilter("ignore")
    if args.rss_child:
        return rss_child(args.rss_engine[0] if args.rss_engine else "torch", args.rss_child, args.steps)
    if args.rss:
        engines = args.rss_engine or (["torch", "native"] if _has_torch() else ["native"])
        return rss(args.steps, args.rounds, engines)
    if args.profile:
        if args.only in ("convnet", "native-convnet"):  # the per-hook profile of the convnet (both engines)
            return profile(args.steps, args.rounds, convnet)
        return profile(args.steps * 50, args.rounds)
    rows = []
    import gradlens.engine as native

    native.set_num_threads(1)
    models = {"tiny MLP": tiny_mlp, "small convnet": convnet, "GPT (nanoGPT shape)": gpt}
    libs = {"native": native}
    if _has_torch():
        import torch

        torch.set_num_threads(1)
        libs = {"torch": torch, "native": native}
    else:
        print("torch not installed: native engine only", file=sys.stderr)
    benches = [(engine, libs[engine], model_name, models[model_name]) for engine, model_name in PICK.values()
               if engine in libs]
    if args.only:
        benches = [b for b in benches if (b[0], b[2]) == PICK[args.only]]
    for engine, lib, model_name, make in benches:
        per_round = {"small convnet": max(4, args.steps // 8), "GPT (nanoGPT shape)": max(2, args.steps // 10)}
        res = measure(lib, make, args.rounds, per_round.get(model_name, max(4, args.steps)))
        for cfg, (ratio, best, ms) in res.items():
            rows.append((engine, model_name, cfg, ms, ratio, best))
    if args.markdown:
        print(
            f"| engine | model | configuration | ms/step ({'mean' if MEAN else 'median'}) | ratio, median of rounds "
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
