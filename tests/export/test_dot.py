"""to_dot() and render() through Graphviz: golden DOT files for a few graphs on both engines, the drawing's features,
the lazy pydot object, and rendering with and without Graphviz.

Regenerate the golden files with ``GRADLENS_UPDATE_GOLDEN=1 pytest tests/export`` and review the diff.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
from pathlib import Path

import pydot
import pytest

import gradlens
import gradlens.engine as ge
from gradlens.errors import GraphvizNotFoundError
from gradlens.export.dot import GradlensDot, format_bytes
from gradlens.graphs import fold
from gradlens.graphs import schema as S

from ..conftest import requires_torch

render_mod = importlib.import_module("gradlens.export.render")  # the module, not the function
GOLDEN = Path(__file__).parent / "golden"
ENGINES = ["native", pytest.param("torch", marks=requires_torch)]
HAS_DOT = shutil.which("dot") is not None
requires_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")


def lib_of(engine: str):
    if engine == "torch":
        import torch

        return torch
    return ge


def tag_step(t, step: int) -> None:
    """What gradlens.watch does: mark the op nodes created in this step (those not marked yet)."""
    stack, seen = [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if type(node).__name__ != "AccumulateGrad" and "gradlens.step" not in node.metadata:
            node.metadata["gradlens.step"] = step
        stack.extend(child for child, _ in node.next_functions)


def mlp_graph(lib):
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 3))
    loss = lib.nn.functional.cross_entropy(model(lib.randn(5, 4)), lib.tensor([0, 1, 2, 0, 1]))
    return gradlens.graph(loss, params=model)


def chain_graph(lib):
    x = lib.ones(3, requires_grad=True)
    return gradlens.graph(((x * 2).exp() + 1).tanh().sum(), params={"x": x})


def retained_graph(lib):
    """The classic bug: ``total += loss`` keeps every step's graph alive."""
    lib.manual_seed(0)
    model = lib.nn.Linear(3, 1)
    total = 0
    for step in range(2):
        loss = model(lib.randn(4, 3)).pow(2).mean()
        total = total + loss
        tag_step(total, step)
    return gradlens.graph(total, params=model)


SCENARIOS = {"mlp": mlp_graph, "chain": chain_graph, "retained": retained_graph}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_golden_dot(scenario, engine):
    text = gradlens.to_dot(SCENARIOS[scenario](lib_of(engine))).to_string()
    path = GOLDEN / f"{scenario}_{engine}.dot"
    if os.environ.get("GRADLENS_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with GRADLENS_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@requires_torch
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_both_engines_draw_the_same_nodes_and_edges(scenario):
    """Apart from the title (engine name, saved bytes), the drawings of the two engines agree."""
    def body(engine):
        lines = (GOLDEN / f"{scenario}_{engine}.dot").read_text().splitlines()
        return [line for line in lines if "label=\"gradlens:" not in line]

    assert body("torch") == body("native")


def test_drawing_features():
    x = ge.ones(3, requires_grad=True)
    root = (x * 2).sum()
    text = gradlens.to_dot(root, params={"weights": x}).to_string()
    assert 'label="SumBackward0\\n()" penwidth=2.5 fillcolor="#a6d96a"' in text  # root marked
    assert 'label="MulBackward0\\n(3,)"' in text  # op name and shape
    assert 'label="weights\\n(3,)" fillcolor="#9ecae1"' in text  # parameter name, shape, colour
    assert "subgraph cluster_legend" in text
    text = gradlens.to_dot(root, legend=False, title=False).to_string()
    assert "legend" not in text and "gradlens:" not in text
    with pytest.raises(TypeError, match="unknown style"):
        gradlens.to_dot(root, colour="red")


def test_large_saved_tensors_are_shown():
    x = ge.ones(1000, requires_grad=True)
    root = (x.exp() * 3).sum()
    assert "saved 3.9 KiB" in gradlens.to_dot(root, saved_threshold=1000).to_string()
    assert "saved" not in gradlens.to_dot(root, title=False, legend=False).to_string()
    assert format_bytes(512) == "512 B" and format_bytes(3 << 20) == "3.0 MiB"


def test_modules_become_clusters():
    x = ge.ones(2, requires_grad=True)
    y = x * 2
    y.grad_fn.metadata["gradlens.module"] = "encoder.layers.0"
    text = gradlens.to_dot((y + 1).sum()).to_string()
    assert 'label="encoder.layers.0"' in text and "subgraph cluster_0" in text
    assert "cluster_0" not in gradlens.to_dot((y + 1).sum(), clusters=False).to_string()


def test_truncation_is_drawn():
    x = ge.ones(2, requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 1.5
    text = gradlens.to_dot(y, max_nodes=5).to_string()
    assert "truncated at max_nodes=5" in text and "TRUNCATED at max_nodes=5" in text
    assert "t0 -> n4 [style=dashed" in text


def test_shared_parameter_is_drawn_once_per_use_above_the_fanout():
    w = ge.ones(2, requires_grad=True)
    h = ge.zeros(2)
    for _ in range(10):
        h = (h + w).tanh()
    text = gradlens.to_dot(h.sum(), params={"w": w}).to_string()
    copies = [line for line in text.splitlines() if 'label="w\\n(2,)"' in line]
    assert len(copies) == 10
    few = gradlens.to_dot(h.sum(), params={"w": w}, split_fanout=20).to_string()
    assert len([line for line in few.splitlines() if 'label="w\\n(2,)"' in line]) == 1


def test_repeated_blocks_fold_into_xn():
    ge.manual_seed(0)
    layers = [ge.nn.Linear(4, 4) for _ in range(8)]
    h = ge.randn(2, 4)
    for layer in layers:
        h = layer(h).relu()
    g = gradlens.graph(h.sum())
    folded = fold(g)
    kinds = [d for _, d in folded.nodes(data=True) if d[S.KIND] == S.KIND_FOLD]
    assert len(kinds) == 1 and kinds[0][S.COUNT] >= 3
    assert folded.number_of_nodes() < g.number_of_nodes() / 2
    assert g.number_of_nodes() == 1 + 8 * 5  # the input graph is untouched
    text = gradlens.to_dot(g, fold=True).to_string()
    assert "repeated block (x" in text and "shape=box3d" in text
    assert "box3d" not in gradlens.to_dot(g, fold=False).to_string()


def test_large_graphs_get_positions_for_neato():
    x = ge.ones(2, requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 1.5
    dot = gradlens.to_dot(y, positions_above=10, fold=False)
    assert dot.positioned and dot.prog == ["neato", "-n2"]
    assert 'pos="' in dot.to_string() and "splines=line" in dot.to_string()


def test_the_result_is_a_pydot_dot_parsed_only_on_demand():
    x = ge.ones(2, requires_grad=True)
    dot = gradlens.to_dot((x * x).sum())
    assert isinstance(dot, pydot.Dot) and isinstance(dot, GradlensDot)
    text = dot.to_string()
    assert dot.source == text
    names = {n.get_name() for n in dot.get_nodes()}
    assert {"n0", "n1", "n2"} <= names
    dot.add_node(pydot.Node("extra", label="added"))
    assert "extra" in dot.to_string()
    clone = pickle.loads(pickle.dumps(dot))
    assert "extra" in clone.to_string()


def test_render_writes_dot_without_graphviz(tmp_path, monkeypatch):
    x = ge.ones(2, requires_grad=True)
    monkeypatch.setattr(render_mod.shutil, "which", lambda name: None)
    path = gradlens.render((x * x).sum(), tmp_path / "g.dot")
    assert path.read_text().startswith("digraph gradlens {")
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        gradlens.render((x * x).sum(), tmp_path / "g.pdf")
    assert 'class="gradlens-graph"' in gradlens.render((x * x).sum(), tmp_path / "g.svg").read_text()
    dot = gradlens.to_dot((x * x).sum())
    dot.set("bgcolor", "red")  # changed through pydot: only Graphviz could draw it
    assert dot._repr_svg_() is None
    assert "Install Graphviz" in dot._repr_html_()
    with pytest.raises(ValueError, match="Fix"):
        gradlens.render((x * x).sum(), tmp_path / "g.jpeg")


@requires_dot
@pytest.mark.parametrize("engine", ENGINES)
def test_render_svg_png_pdf(tmp_path, engine):
    g = mlp_graph(lib_of(engine))
    svg = gradlens.render(g, tmp_path / "mlp.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "AddmmBackward0" in svg
    assert gradlens.render(g, tmp_path / "mlp.png").read_bytes()[:4] == b"\x89PNG"
    assert gradlens.render(gradlens.to_dot(g), tmp_path / "mlp.pdf").read_bytes()[:4] == b"%PDF"
    dot = gradlens.to_dot(g)
    assert dot._repr_svg_().lstrip().startswith("<?xml") and dot._repr_html_() is None


@requires_dot
def test_positioned_drawing_renders_with_neato(tmp_path):
    x = ge.ones(2, requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 1.5
    svg = gradlens.render(y, tmp_path / "chain.svg", positions_above=10).read_text()
    assert "MulBackward0" in svg


@requires_dot
def test_render_gives_up_after_the_timeout(monkeypatch):
    def slow(*args, **kwargs):
        import subprocess

        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(render_mod.subprocess, "run", slow)
    with pytest.raises(RuntimeError, match="did not finish within 0.5 s"):
        render_mod.run_graphviz("digraph { a -> b }", "svg", timeout=0.5)


def test_graphs_read_back_from_json_and_hand_built_graphs_draw():
    import networkx as nx

    ge.manual_seed(0)
    layers = [ge.nn.Linear(3, 3) for _ in range(5)]
    h = ge.randn(2, 3)
    for layer in layers:
        h = layer(h).tanh()
    g = gradlens.graph(h.sum())
    back = nx.node_link_graph(nx.node_link_data(g, edges="edges"), edges="edges")  # shapes become lists
    assert gradlens.to_dot(back, fold=True).to_string() == gradlens.to_dot(g, fold=True).to_string()
    bare = nx.DiGraph([("a", "b")])  # no gradlens attributes at all
    text = gradlens.to_dot(bare).to_string()
    assert 'a [label="a"];' in text and "a -> b;" in text
    odd = nx.DiGraph([("a node", 7)])
    assert '"a node" -> 7;' in gradlens.to_dot(odd).to_string()
