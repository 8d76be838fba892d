"""Benchmark of gradlens's own SVG drawing (no Graphviz) against Graphviz's ``dot`` on the same graphs.

Times go from a graph already built by ``gradlens.graph()`` to the SVG text: ``to_svg`` (layered layout
in Python plus the SVG writer), unfolded and folded, and, as the baseline measured in the same run,
``render(format="svg", engine="graphviz")`` (DOT text plus a ``dot`` subprocess). One thread, medians of
interleaved rounds. Prints a Markdown table for BENCHMARKS.md.

Run: ``OMP_NUM_THREADS=1 python bench/bench_svg.py [--rounds 7]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradlens  # noqa: E402
from gradlens.export import to_svg  # noqa: E402
from tests.export._graphs import chain, transformer_ish  # noqa: E402


def transformer12():
    """The torch TransformerEncoder of bench_graph.py (12 layers, 911 nodes), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)
    return gradlens.graph(model(torch.randn(2, 16, 64)).pow(2).mean(), params=model)


def interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds per callable; every callable runs once per round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm up
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args(argv)
    has_dot = shutil.which("dot") is not None
    graphs = {"native transformer-ish stack, 30 blocks": transformer_ish(30)}
    torch_graph = transformer12()
    if torch_graph is not None:
        graphs = {"torch TransformerEncoder, 12 layers": torch_graph, **graphs}
    print("| graph | nodes | gradlens SVG, unfolded | gradlens SVG, folded (default) | Graphviz `dot` SVG, "
          "unfolded | SVG size, unfolded |")
    print("|---|---|---|---|---|---|")
    for name, g in graphs.items():
        fns = {"own": lambda g=g: to_svg(g, fold=False), "own-folded": lambda g=g: to_svg(g)}
        if has_dot:
            fns["dot"] = lambda g=g: gradlens.render(g, format="svg", engine="graphviz", fold=False)
        t = interleaved(fns, opts.rounds)
        size = len(to_svg(g, fold=False)) / 1024
        dot = f"{t['dot'] * 1e3:.0f} ms" if has_dot else "(no Graphviz)"
        print(f"| {name} | {g.number_of_nodes()} | {t['own'] * 1e3:.0f} ms | {t['own-folded'] * 1e3:.0f} ms | "
              f"{dot} | {size:.0f} KiB |")
    long = chain(20_000)
    t = interleaved({"own": lambda: to_svg(long, fold=False), "own-folded": lambda: to_svg(long)},
                    max(1, opts.rounds // 3))
    print(f"| chain of 20,000 muls | {long.number_of_nodes()} | {t['own'] * 1e3:.0f} ms | "
          f"{t['own-folded'] * 1e3:.0f} ms | not run | {len(to_svg(long, fold=False)) / 1024:.0f} KiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
