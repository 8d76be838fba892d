"""gradlens's own drawing (no Graphviz): what the SVG shows, its geometry, its determinism, the layout's
parts, and ``render()``'s choice of engine."""

from __future__ import annotations

import importlib
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import gradlens
import gradlens.engine as ge
from gradlens.errors import GraphvizNotFoundError
from gradlens.export import to_svg
from gradlens.export.layout import _inversions, _isotonic, layered_layout

from ._graphs import chain, clusters, nodes, overlap, transformer_ish
from .test_dot import SCENARIOS, lib_of, retained_graph

render_mod = importlib.import_module("gradlens.export.render")
REPO = Path(__file__).resolve().parents[2]
ENGINES = ["native", pytest.param("torch", marks=pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"))]


def assert_tidy(svg: str) -> list[dict]:
    """No two node boxes overlap; every label line fits its box; groups hold their members only."""
    drawn = nodes(svg)
    assert drawn
    for a, b in itertools.combinations(drawn, 2):
        assert not overlap(a["box"], b["box"]), (a, b)
    boxes = [c["box"] for c in clusters(svg)]
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(a, b), (a, b)
    for c in boxes:  # a node is wholly inside a group box or wholly outside it
        for n in drawn:
            if overlap(c, n["box"]):
                x0, y0, x1, y1 = n["box"]
                assert c[0] <= x0 and c[1] <= y0 and x1 <= c[2] and y1 <= c[3], (c, n)
    return drawn


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_svg_carries_the_same_labels_as_the_dot_export(scenario, engine):
    g = SCENARIOS[scenario](lib_of(engine))
    svg = to_svg(g)
    drawn = assert_tidy(svg)
    dot = gradlens.to_dot(g).to_string()
    for n in drawn:
        assert "\\n".join(n["lines"]).replace('"', '\\"') in dot  # the very label DOT shows
    assert {n["name"] for n in drawn} == set(g.nodes)
    assert "legend:" in svg and "gradlens: " in svg


def test_root_parameters_and_earlier_steps_are_marked():
    svg = to_svg(retained_graph(ge))
    assert 'fill="#a6d96a" stroke="#444444" stroke-width="2.5"' in svg  # the root: green, thick border
    assert 'fill="#9ecae1"' in svg and ">weight</text>" in svg  # parameter, by name
    assert 'fill="#fc9272"' in svg and ">step 0</text>" in svg and "created before step 1" in svg
    plain = to_svg(retained_graph(ge), legend=False, title=False)
    assert "legend:" not in plain and "gradlens: native" not in plain.split("</title>", 1)[1]


def test_modules_are_boxed_and_repeated_blocks_fold():
    g = transformer_ish(8)
    svg = to_svg(g, fold=False)
    assert sorted(c["label"] for c in clusters(svg)) == [f"layers.{b}" for b in range(8)]
    assert_tidy(svg)
    folded = to_svg(g, fold=True)
    assert "repeated block (x" in folded and "more repetitions of the block below" in folded
    assert "folded repeats" in folded  # in the legend
    assert len(nodes(folded)) < len(nodes(svg)) / 2
    assert_tidy(folded)
    assert "repeated block" not in to_svg(g, fold=False, clusters=False)
    assert not clusters(to_svg(g, fold=False, clusters=False))


def test_truncation_and_large_saved_tensors_are_drawn():
    x = ge.ones(2, requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 1.5
    svg = to_svg(y, max_nodes=5)
    assert "(truncated at max_nodes=5)" in svg and "TRUNCATED at max_nodes=5" in svg
    assert 'stroke="#b2182b" stroke-width="1" stroke-dasharray="4,3"' in svg  # the unwalked input's edge
    x = ge.ones(1000, requires_grad=True)
    assert "saved 3.9 KiB" in to_svg((x.exp() * 3).sum(), saved_threshold=1000)


def test_a_shared_parameter_is_drawn_once_per_use():
    w = ge.ones(2, requires_grad=True)
    h = ge.zeros(2)
    for _ in range(10):
        h = (h + w).tanh()
    drawn = assert_tidy(to_svg(h.sum(), params={"w": w}))
    assert sum(n["lines"][0] == "w" for n in drawn) == 10


def test_edges_run_from_the_source_border_to_the_target_border():
    g = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")])
    sizes = {n: (60.0, 20.0) for n in g}
    lay = layered_layout(list(g), sizes, list(g.edges))
    for (u, v), route in zip(g.edges, lay.routes):
        (ux, uy), (vx, vy) = lay.centers[u], lay.centers[v]
        assert abs(route[0][1] - (uy + 10)) < 1e-6 and abs(route[0][0] - ux) <= 30
        assert abs(route[-1][1] - (vy - 10)) < 1e-6 and abs(route[-1][0] - vx) <= 30
    assert len(lay.routes[list(g.edges).index(("a", "d"))]) > 2  # a -> d spans two layers: through a dummy
    assert lay.centers["a"][1] < lay.centers["b"][1] < lay.centers["d"][1]


def test_crossing_reduction_untangles_a_shuffled_ladder():
    """Two rows of 12 matched pairs, seeded in a crossing order: the sweeps find the order with none."""
    rng = random.Random(0)
    tops = [f"t{i}" for i in range(12)]
    bottoms = [f"b{i}" for i in range(12)]
    rng.shuffle(bottoms)
    order = tops + bottoms
    edges = [(f"t{i}", f"b{i}") for i in range(12)]
    lay = layered_layout(order, {n: (30.0, 20.0) for n in order}, edges)
    assert lay.crossings == 0
    for i in range(12):  # each pair is drawn straight down
        assert lay.centers[f"t{i}"][0] == pytest.approx(lay.centers[f"b{i}"][0], abs=1.0)


def test_crossings_left_are_counted_honestly():
    """K(3,3) in two layers cannot be drawn with fewer than 3*3 = 9 crossings, whatever the order."""
    tops, bottoms = ["a", "b", "c"], ["x", "y", "z"]
    lay = layered_layout(tops + bottoms, {n: (30.0, 20.0) for n in tops + bottoms},
                         [(t, b) for t in tops for b in bottoms])
    assert lay.crossings == 9


def test_an_input_used_twice_is_labelled_on_its_edge():
    y = ge.ones(2, requires_grad=True).exp()
    assert 'font-size="9" fill="#555555">x2</text>' in to_svg((y * y).sum(), legend=False)
    assert 'label="x2"' in gradlens.to_dot((y * y).sum()).to_string()


def test_inversion_count_and_isotonic_fit_match_brute_force():
    rng = random.Random(1)
    for _ in range(50):
        seq = [rng.randrange(8) for _ in range(rng.randrange(1, 15))]
        brute = sum(1 for i, j in itertools.combinations(range(len(seq)), 2) if seq[i] > seq[j])
        assert _inversions(seq, 8) == brute
    assert _isotonic([3.0, 1.0, 2.0, 5.0], [1.0, 1.0, 1.0, 1.0]) == [2.0, 2.0, 2.0, 5.0]
    fit = _isotonic([4.0, 0.0], [3.0, 1.0])
    assert fit == [3.0, 3.0]


def test_same_graph_same_bytes():
    a = to_svg(transformer_ish(4))
    b = to_svg(transformer_ish(4))
    assert a == b
    g = retained_graph(ge)
    back = nx.node_link_graph(nx.node_link_data(g, edges="edges"), edges="edges")  # as read from a record
    assert to_svg(back) == to_svg(g)


def test_same_bytes_in_processes_with_different_hash_seeds():
    """No set or hash order leaks into the drawing."""
    code = ("import sys; sys.path.insert(0, '.'); from tests.export._graphs import transformer_ish; "
            "from gradlens.export import to_svg; sys.stdout.write(to_svg(transformer_ish(12)))")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and outs.pop() == to_svg(transformer_ish(12))


@pytest.mark.parametrize("rankdir", ["TB", "BT", "LR", "RL"])
def test_every_direction_is_tidy(rankdir):
    svg = to_svg(transformer_ish(3), rankdir=rankdir)
    drawn = assert_tidy(svg)
    root = next(n for n in drawn if n["lines"][0] == "MeanBackward0")
    ys = [n["box"][1] for n in drawn]
    xs = [n["box"][0] for n in drawn]
    where = {"TB": root["box"][1] == max(ys), "BT": root["box"][1] == min(ys),
             "LR": root["box"][0] == max(xs), "RL": root["box"][0] == min(xs)}
    assert where[rankdir]  # the root is drawn last in the flow's direction


def test_hand_built_and_cyclic_graphs_draw():
    svg = to_svg(nx.DiGraph([("a node", 7), (7, "a node"), ("x", "x")]))
    assert {n["name"] for n in assert_tidy(svg)} == {"a node", "7", "x"}
    assert to_svg(nx.DiGraph()).startswith("<svg")


def test_a_20k_chain_draws_without_error():
    g = chain(20_000)
    svg = to_svg(g, fold=False)
    assert len(nodes(svg)) == g.number_of_nodes()
    assert "x100" not in svg
    assert "more repetitions" in to_svg(g)  # folded by default: one block and an xN node


def test_render_picks_the_engine(tmp_path, monkeypatch):
    x = ge.ones(2, requires_grad=True)
    root = (x * x).sum()
    own = gradlens.render(root, format="svg", engine="gradlens")
    assert own.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="gradlens-graph"')
    assert gradlens.render(root, tmp_path / "g.svg", engine="gradlens").read_text() == own
    assert gradlens.render(root, format="dot").startswith("digraph gradlens {")
    monkeypatch.setattr(render_mod.shutil, "which", lambda name: None)  # no Graphviz
    assert gradlens.render(root, format="svg") == own  # auto falls back to gradlens
    assert gradlens.render(root, tmp_path / "h.svg").read_text() == own
    dot = gradlens.to_dot(root)
    assert dot._repr_svg_() == own and dot._repr_html_() is None
    with pytest.raises(GraphvizNotFoundError, match="needs Graphviz.*Fix: write .svg"):
        gradlens.render(root, tmp_path / "g.png")
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        gradlens.render(root, format="svg", engine="graphviz")


def test_render_refuses_what_it_cannot_do(tmp_path):
    x = ge.ones(2, requires_grad=True)
    root = (x * x).sum()
    with pytest.raises(ValueError, match="writes SVG only; received format 'png'"):
        gradlens.render(root, tmp_path / "g.png", engine="gradlens")
    with pytest.raises(ValueError, match="expects one of"):
        gradlens.render(root, format="svg", engine="neato")
    with pytest.raises(ValueError, match="disagree"):
        gradlens.render(root, tmp_path / "g.svg", format="png")
    with pytest.raises(ValueError, match="needs a path .* or format"):
        gradlens.render(root)
    with pytest.raises(ValueError, match="expects one of"):
        gradlens.render(root, format="jpeg")
    with pytest.raises(TypeError, match="a format name"):
        gradlens.render(root, format=3)
    changed = gradlens.to_dot(root)
    changed.set("bgcolor", "red")  # through pydot's API: the graph no longer says it all
    with pytest.raises(ValueError, match="changed through pydot"):
        gradlens.render(changed, format="svg", engine="gradlens")
