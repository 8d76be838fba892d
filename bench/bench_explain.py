"""Cost of explaining torch's loud autograd errors (``gradlens/instrument/explain.py``).

The explanation records nothing while the loop runs: it reads the frames and the source once an error
surfaces. What it added to the steady state is one line in the saved-tensor pack hook (the producing node's
name and output number, kept so that the hook can raise the engine's exact in-place text). Three numbers:

1. pack hook, per saved tensor, before (without that line) and after, interleaved, medians (µs);
2. ``watch(sample_every=1)`` / plain on the tiny MLP of ``bench_watch.py`` (every iteration packs);
3. the time from the error to the finding: a watched crashing loop minus the same loop unwatched (ms).

Run: ``OMP_NUM_THREADS=1 python bench/bench_explain.py [--rounds 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradlens  # noqa: E402
from bench.bench_watch import configs, step_times, tiny_mlp  # noqa: E402
from gradlens.instrument.engines import EngineHooks  # noqa: E402
from gradlens.instrument.sentinels import _Packed, _SavedLedger  # noqa: E402
from tests.instrument import loud_cases as lc  # noqa: E402


def pack_costs(lib, rounds: int, n: int = 2000) -> tuple[float, float]:
    """Median µs per pack call of the hook before and after the producer-name line."""
    eng = EngineHooks("torch" if lib.__name__ == "torch" else "native")
    ledger, nbytes, detach = _SavedLedger(), eng.nbytes, eng.detach
    from gradlens.instrument.saved import SavedTensorSampling

    class Host(SavedTensorSampling):
        iteration = 0
        _ledger = ledger
        _cross = [0]

    after, _ = Host()._make_saved_hooks(eng)

    def before(t):  # the hook as it was, without `p.src = (type(fn), output_nr(t))`
        nb = 0
        if t.grad_fn is not None or not t.requires_grad:
            nb = nbytes(t)
        return _Packed(detach(t), 0, nb, ledger)

    t = lib.ones(8, requires_grad=True) * 2
    per = {"before": [], "after": []}
    for _ in range(rounds):
        for name, fn in (("before", before), ("after", after)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn(t)
            per[name].append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(per["before"]), statistics.median(per["after"])


def watch_ratio(lib, rounds: int, steps: int) -> float:
    setup = tiny_mlp(lib)
    cfgs = {k: v for k, v in configs(lib).items() if k in ("plain", "watch (sample_every=1)")}
    per: dict[str, list[float]] = {k: [] for k in cfgs}
    for _ in range(rounds):
        for name, make in cfgs.items():
            per[name].append(step_times(setup, lib, steps, make()))
    return statistics.median(w / p for w, p in zip(per["watch (sample_every=1)"], per["plain"], strict=True))


def explain_ms(lib, fn, rounds: int) -> float:
    def once(watched: bool) -> float:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if watched:
                    with gradlens.watch(on_finding="collect"):
                        fn(lib)
                else:
                    fn(lib)
            except Exception:  # noqa: BLE001 - the crash is the point
                pass
        return time.perf_counter() - t0

    diffs = [once(True) - once(False) for _ in range(rounds)]
    return statistics.median(diffs) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args(argv)
    import gradlens.engine as ge

    libs = [ge]
    try:
        import torch

        torch.set_num_threads(1)
        libs.insert(0, torch)
    except ImportError:
        pass
    for lib in libs:
        name = "torch" if lib.__name__ == "torch" else "native"
        b, a = pack_costs(lib, args.rounds)
        print(f"{name}: pack hook per saved tensor: before {b:.2f} us, after {a:.2f} us ({a / b:.2f}x)")
        print(f"{name}: tiny MLP watch(sample_every=1) / plain: {watch_ratio(lib, args.rounds, args.steps):.2f}x")
        for rule, fns in lc.BUGS.items():
            fn = fns[0]
            print(f"{name}: {rule} ({fn.__name__}): watched crash - plain crash = "
                  f"{explain_ms(lib, fn, args.rounds):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
