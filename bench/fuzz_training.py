"""Run many random training programs (tests/stress/programs.py) watched on both engines and print the
figures: programs run, bugs injected and caught per rule, misses and false alarms, with the spec and
report of every failure.

    python bench/fuzz_training.py --programs 2000            # seeds 0..1999, torch and native
    python bench/fuzz_training.py --start 5000 --programs 500 --engine native
    python bench/fuzz_training.py --seed 1234 --show          # print one program's source and verdicts

Exits 1 when any program missed its bug, raised a false alarm or crashed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.stress import programs  # noqa: E402


def engines(which: str) -> list:
    libs = []
    if which in ("both", "torch"):
        try:
            import torch

            libs.append(torch)
        except ImportError:
            print("torch is not installed: running on gradlens.engine only", file=sys.stderr)
    if which in ("both", "native"):
        import gradlens.engine

        libs.append(gradlens.engine)
    return libs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=2000, help="number of seeds (default 2000)")
    ap.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--seed", type=int, help="run this one seed only")
    ap.add_argument("--engine", choices=("both", "torch", "native"), default="both")
    ap.add_argument("--show", action="store_true", help="print each program's source")
    ap.add_argument("--keep", metavar="DIR", help="write the programs here (default: a temporary directory)")
    args = ap.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.programs)
    libs = engines(args.engine)
    tally = programs.Tally()
    directory = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gradlens-programs-"))
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for seed in seeds:
        spec = programs.generate(seed)
        if args.show:
            print(programs.render(spec))
        for lib in libs:
            lib.manual_seed(0)
            out = programs.run(spec, lib, directory)
            tally.add(out)
            if not out.ok:
                print(out.explain(), flush=True)
    elapsed = time.perf_counter() - t0
    print(f"gradlens training programs: {tally.summary()} ({elapsed:.1f} s)")
    print(f"  per rule (caught/injected): {tally.per_rule()}")
    print(f"  clean programs with accumulation (info expected): {tally.accumulation_info}")
    print(f"  programs written to {directory}")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
