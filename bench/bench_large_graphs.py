"""Scaling check of the graph layer on large graphs: each workload at a baseline size and at 4x that size.

For every workload (a chain, a wide DAG, thousands of separate parameters, a ModuleList of small Linears,
an unrolled RNN whose weights feed every step) and engine, it times ``graph()`` (the walk), the DOT text
without folding, the folded DOT text, and the SVG of the folded drawing through Graphviz (with
``--full-svg`` also the unfolded drawing, which takes ``neato -n2`` positions above 2,000 nodes), and prints
the 4x/1x ratio: about 4 means linear, 16 would mean quadratic. One thread; medians of interleaved rounds
in one process, both sizes in the same rounds. Prints a markdown table; nothing is written.

Run: ``OMP_NUM_THREADS=1 python bench/bench_large_graphs.py [--rounds 3] [--engines torch native] [--full-svg]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

from bench_graph import interleaved  # noqa: E402 - same folder: one timing loop for both graph benches

import gradlens  # noqa: E402
import gradlens.engine as ge  # noqa: E402

render_mod = importlib.import_module("gradlens.export.render")
HAS_DOT = shutil.which("dot") is not None and shutil.which("neato") is not None


# --- workloads: (root, params) at a size; each returns about the given number of nodes -----------------
def chain(lib, nodes: int):
    x = lib.ones(3, requires_grad=True)
    y = x
    for _ in range(nodes - 1):
        y = y * 1.0001
    return y, {"x": x}


def wide(lib, nodes: int, lanes: int = 50):
    """``lanes`` values mixed pairwise level after level (every op has two consumers)."""
    x = lib.ones(3, requires_grad=True)
    level = [x * float(i + 1) for i in range(lanes)]
    for _ in range(max(1, nodes // lanes - 1)):
        level = [level[i] + level[(i + 1) % lanes] for i in range(lanes)]
    return lib.stack(level).sum(), {"x": x}


def separate_params(lib, nodes: int):
    """``nodes / 2`` separate leaf parameters, each scaled, then stacked into one op."""
    ps = {f"p{i}": lib.nn.Parameter(lib.ones(2)) for i in range(nodes // 2)}
    return lib.stack([p * 2.0 for p in ps.values()]).sum(), ps


def module_list(lib, nodes: int):
    """A ModuleList of ``nodes / 4`` Linear(2, 2) layers applied in sequence (2 parameters each)."""
    lib.manual_seed(0)
    layers = lib.nn.ModuleList([lib.nn.Linear(2, 2) for _ in range(nodes // 4)])
    h = lib.ones(1, 2)
    for layer in layers:
        h = layer(h)
    return h.sum(), layers


def shared_rnn(lib, nodes: int):
    """An unrolled RNN: one Linear cell applied ``nodes / 3`` times, its weight and bias feed every step."""
    lib.manual_seed(0)
    cell = lib.nn.Linear(8, 8)
    h = lib.zeros(2, 8)
    for _ in range(nodes // 3):
        h = lib.tanh(cell(h))
    return h.sum(), cell


WORKLOADS = {"chain": chain, "wide DAG (50 lanes)": wide, "separate parameters": separate_params,
             "ModuleList of Linear(2, 2)": module_list, "unrolled RNN, shared weights": shared_rnn}
BASE, LARGE = 5_000, 20_000


# --- timing --------------------------------------------------------------------------------------------
def callables(lib, make, nodes: int, full_svg: bool) -> tuple[int, dict]:
    """The timed steps for one workload at one size."""
    root, params = make(lib, nodes)
    cap = nodes + 100  # every workload stays below torch's safe maximum (30,000)
    g = gradlens.graph(root, params=params, max_nodes=cap)
    assert not g.graph["truncated"], g.graph
    fns = {
        "walk": lambda: gradlens.graph(root, params=params, max_nodes=cap),
        "dot": lambda: gradlens.to_dot(g, fold=False).to_string(),
        "dot folded": lambda: gradlens.to_dot(g, fold=True).to_string(),
    }
    if HAS_DOT:
        folded = gradlens.to_dot(g, fold=True)
        fns["svg folded"] = lambda: render_mod.svg_text(folded, timeout=300)
    if HAS_DOT and full_svg:
        full = gradlens.to_dot(g, fold=False)
        fns["svg"] = lambda: render_mod.svg_text(full, timeout=300)
    return g.graph["node_count"], fns


def measure(lib, make, rounds: int, full_svg: bool) -> tuple[int, int, dict[str, float], dict[str, float]]:
    """Both sizes timed in the same rounds (1x and 4x alternate), so load changes hit both alike."""
    n1, small = callables(lib, make, BASE, full_svg)
    n4, large = callables(lib, make, LARGE, full_svg)
    t = interleaved({**{("1x", k): f for k, f in small.items()}, **{("4x", k): f for k, f in large.items()}},
                    rounds)
    return n1, n4, {k: v for (size, k), v in t.items() if size == "1x"}, \
        {k: v for (size, k), v in t.items() if size == "4x"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["torch", "native"], choices=["torch", "native"])
    parser.add_argument("--full-svg", action="store_true", help="also render every node (neato -n2; slow)")
    args = parser.parse_args()
    libs = {"native": ge}
    if "torch" in args.engines:
        import torch

        torch.set_num_threads(1)
        libs["torch"] = torch
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# gradlens large-graph scaling ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load {load}; "
          f"Graphviz {'present' if HAS_DOT else 'absent: no SVG columns'}; medians of {args.rounds} rounds)")
    cols = ["walk", "dot", "dot folded"] + (["svg folded"] if HAS_DOT else []) + \
        (["svg"] if HAS_DOT and args.full_svg else [])
    print("| engine | workload | nodes 1x / 4x | " + " | ".join(f"{c}: 1x, 4x (ratio)" for c in cols) + " |")
    print("|" + "---|" * (3 + len(cols)))
    for engine in args.engines:
        lib = libs[engine]
        for label, make in WORKLOADS.items():
            n1, n4, t1, t4 = measure(lib, make, args.rounds, args.full_svg)
            cells = [f"{t1[c] * 1e3:.0f} ms, {t4[c] * 1e3:.0f} ms ({t4[c] / t1[c]:.1f}x)" for c in cols]
            print(f"| {engine} | {label} | {n1} / {n4} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
