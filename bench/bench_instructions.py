"""Instructions per watched step of the tiny MLP (or the convnet), counted by valgrind: a figure the machine's
load cannot move.

Wall and CPU times of a 0.1-0.3 ms step move by 5-10% with other tenants' load (BENCHMARKS.md); the number
of instructions a step executes does not. This bench runs ``bench_watch.tiny_mlp`` under
``valgrind --tool=cachegrind --cache-sim=no`` twice per configuration (``--short`` and ``--long`` steady-state
steps after 64 untimed ones, cyclic GC off, ``PYTHONHASHSEED=0``; ``--model convnet`` runs
``bench_watch.convnet`` instead, 16 untimed steps and 4/14 by default) and reports
``(I(long) - I(short)) / (long - short)``: the instructions of one steady-state step, start-up excluded.

Configurations: ``plain``; ``empty`` (the watch's hooks with empty bodies: the dispatch floor);
``steady`` (the default watch with its sampled checks pushed past the run: the cost of a step that runs
none of them, which is what the median step of ``bench_watch`` measures); ``default`` (the default watch:
sampled steps counted at their rate); ``unsampled`` (``sample_every=0, nonfinite_every=0, health_every=0``).
``--without PART`` removes one part of the recorder from the ``unsampled`` watch (its findings are then
wrong: this is a cost breakdown, not a mode; the base has no sampling because removing the tick would
otherwise leave the warm-up's saved-tensor sampling on for good), e.g.
``--without tick``; parts overlap a little (removing the forward pre-hook also starves the post-hook of
the modules it discovers).

Run: ``python bench/bench_instructions.py [--engine native|torch] [--model tiny|convnet] [--without PART ...]``.
Needs valgrind
(``apt-get install -y valgrind``); one configuration takes 15-40 s.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

WARM = 64


def _noop(*args, **kwargs):
    return None


# --without PART: (module of the attribute, attribute, what replaces it)
REMOVALS = {
    "forward-pre": ("recorder", "_make_fwd_pre", lambda self, eng: (lambda m, a: None)),
    "forward-post": ("recorder", "_make_fwd_post", lambda self, eng: (lambda m, a, o: None)),
    "output-sentinel": ("recorder", "_mark_output", _noop),
    "accumulation": ("recorder", "_make_post_acc", lambda self, st: (lambda p: None)),
    "post-step": ("recorder", "_post_step", _noop),
    "tick": ("recorder", "_tick", _noop),
    "before-backward": ("recorder", "_before_backward", lambda *a: False),
    "chain-marks": ("backward", "_plant_down_chain", _noop),
    "leaf-discovery": ("recorder", "_discover_leaves", _noop),
    "manual-boundary": ("recorder", "_manual_boundary", _noop),
}


def _remove(part: str) -> None:
    from gradlens.instrument import backward as backward_mod
    from gradlens.instrument.recorder import Recorder

    where, attr, replacement = REMOVALS[part]
    setattr(Recorder if where == "recorder" else backward_mod, attr, replacement)


CONFIGS = ("plain", "empty", "steady", "default", "unsampled")


MODELS = {"tiny": ("tiny_mlp", WARM, 20, 100), "convnet": ("convnet", 16, 4, 14)}
"""--model NAME: (bench_watch's model function, untimed steps, default --short, default --long)."""


def child(engine: str, model_name: str, config: str, steps: int, without: list[str]) -> None:
    """Run the untimed steps and ``steps`` more of the model in one configuration (the process valgrind
    counts)."""
    if engine == "torch":
        import torch

        torch.set_num_threads(1)
        lib = torch
    else:
        import gradlens.engine as lib
    import bench_watch as bw

    import gradlens

    lib.manual_seed(0)
    make, warm, _, _ = MODELS[model_name]
    model, opt, x, y, loss_fn = getattr(bw, make)(lib)
    for part in without:
        _remove(part)
    big = 10**9
    ctx = {
        "plain": contextlib.nullcontext,
        "empty": lambda: bw._empty_hooks(lib, model),
        "steady": lambda: gradlens.watch(on_finding="collect", sample_every=big, nonfinite_every=big,
                                         health_every=big),
        "default": lambda: gradlens.watch(on_finding="collect"),
        "unsampled": lambda: gradlens.watch(on_finding="collect", sample_every=0, nonfinite_every=0,
                                            health_every=0),
    }[config]()
    run = bw._runner((model, opt, x, y, loss_fn))
    gc.disable()
    with ctx:
        run(warm + steps)


def count(engine: str, model: str, config: str, steps: int, without: list[str]) -> int:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--child", engine, model, config, str(steps), *without]
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode or m is None:
        raise SystemExit(f"valgrind run failed (exit {out.returncode}); expected an 'I refs' line, received:\n"
                         f"{out.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def per_step(engine: str, model: str, config: str, short: int, long: int, without: list[str]) -> float:
    return (count(engine, model, config, long, without) - count(engine, model, config, short, without)) / (
        long - short)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3], int(argv[4]), argv[5:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["native", "torch"], action="append")
    ap.add_argument("--config", choices=CONFIGS, action="append")
    ap.add_argument("--without", choices=list(REMOVALS), action="append", default=[],
                    help="also count the unsampled watch without this part (repeatable)")
    ap.add_argument("--model", choices=list(MODELS), default="tiny")
    ap.add_argument("--short", type=int, help="steps of the short run (default: the model's)")
    ap.add_argument("--long", type=int, help="steps of the long run (default: the model's)")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: expected it on PATH (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    _, _, short, long = MODELS[args.model]
    short = short if args.short is None else args.short
    long = long if args.long is None else args.long
    print("| engine | model | configuration | instructions/step | vs plain |")
    print("|---|---|---|---:|---:|")
    for engine in args.engine or ["native", "torch"]:
        rows = [(c, []) for c in args.config or CONFIGS[:4]]
        if args.without:
            rows += [("unsampled", [])] + [("unsampled", [p]) for p in args.without]
        plain = None
        for config, without in rows:
            n = per_step(engine, args.model, config, short, long, without)
            if config == "plain":
                plain = n
            label = config + (f" without {without[0]}" if without else "")
            ratio = f"{n / plain:.3f}x" if plain else ""
            print(f"| {engine} | {args.model} | {label} | {n / 1e3:,.0f}k | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
