"""gradlens.graph(): the schema on both engines, inputs it accepts and refuses, naming, saved bytes,
determinism, truncation, and that walking never leaves the process in danger."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import networkx as nx
import pytest

import gradlens
import gradlens.engine as ge
from gradlens.errors import GradlensWarning
from gradlens.graphs import schema as S

from ..conftest import HAS_TORCH, requires_torch

ENGINES = ["native", pytest.param("torch", marks=requires_torch)]


def lib_of(engine: str):
    if engine == "torch":
        import torch

        return torch
    return ge


def nodes(g):
    return {n: (d[S.NAME], d[S.KIND]) for n, d in g.nodes(data=True)}


@pytest.mark.parametrize("engine", ENGINES)
def test_square_sum_follows_the_schema(engine):
    lib = lib_of(engine)
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    g = gradlens.graph((x * x).sum())
    assert isinstance(g, nx.DiGraph)
    assert nodes(g) == {"n0": ("SumBackward0", "root"), "n1": ("MulBackward0", "op"),
                        "n2": ("AccumulateGrad", "leaf")}
    # data-flow direction, one edge per producer/consumer pair with both slots
    assert g.edges["n2", "n1"] == {S.SLOTS: (0, 1), S.OUTPUT_NRS: (0, 0)}
    assert g.edges["n1", "n0"][S.SLOTS] == (0,)
    assert g.nodes["n1"][S.SHAPES] == ((2,),) and g.nodes["n1"][S.DTYPES] == ("float32",)
    assert g.nodes["n0"][S.SHAPES] == ((),)
    assert g.nodes["n2"][S.SHAPES] == ((2,),)
    assert g.graph == {S.ENGINE: engine, S.NODE_COUNT: 3, S.SAVED_BYTES: 0, S.SAVED_FREED: 0, S.TRUNCATED: False,
                       S.MAX_NODES: 20_000, S.ROOTS: ("n0",), S.SCHEMA_VERSION: S.VERSION}
    for _, d in g.nodes(data=True):
        assert set(d) >= {S.NAME, S.KIND, S.SHAPES, S.DTYPES, S.SAVED_BYTES, S.PARAM, S.STEP, S.MODULE}
        assert d[S.KIND] in S.KINDS


@pytest.mark.parametrize("engine", ENGINES)
def test_params_named_from_a_dict_or_a_module(engine):
    lib = lib_of(engine)
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.ReLU(), lib.nn.Linear(3, 2))
    loss = model(lib.randn(5, 4)).sum()
    for params in (model, dict(model.named_parameters())):
        g = gradlens.graph(loss, params=params)
        named = {d[S.PARAM]: d[S.SHAPES] for _, d in g.nodes(data=True) if d[S.KIND] == S.KIND_PARAM}
        assert named == {"0.weight": ((3, 4),), "0.bias": ((3,),), "2.weight": ((2, 3),), "2.bias": ((2,),)}
    # without names, nn.Parameter leaves are still parameters
    g = gradlens.graph(loss)
    kinds = [d[S.KIND] for _, d in g.nodes(data=True) if d[S.NAME] == "AccumulateGrad"]
    assert kinds == [S.KIND_PARAM] * 4


@pytest.mark.parametrize("engine", ENGINES)
def test_tensor_without_grad_gives_one_node_saying_so(engine):
    lib = lib_of(engine)
    g = gradlens.graph(lib.ones(2, 3))
    assert list(g.nodes(data=S.KIND)) == [("t0", S.KIND_NOGRAD)]
    assert g.nodes["t0"][S.SHAPES] == ((2, 3),)
    assert g.graph[S.NODE_COUNT] == 0 and g.graph[S.ROOTS] == ("t0",)


@pytest.mark.parametrize("engine", ENGINES)
def test_leaf_and_node_inputs_and_several_roots(engine):
    lib = lib_of(engine)
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    assert nodes(gradlens.graph(x)) == {"n0": ("AccumulateGrad", "leaf")}
    a, b = (x * 2).sum(), (x + 1).sum()
    assert nodes(gradlens.graph(a.grad_fn)) == nodes(gradlens.graph(a))
    g = gradlens.graph([a, b])
    assert g.graph[S.ROOTS] == ("n0", "n1")
    assert [g.nodes[r][S.KIND] for r in ("n0", "n1")] == ["root", "root"]
    assert sum(1 for _, d in g.nodes(data=True) if d[S.NAME] == "AccumulateGrad") == 1


def test_refuses_other_objects_with_a_message_saying_what_is_accepted():
    with pytest.raises(TypeError, match="accepts a tensor or a grad_fn node"):
        gradlens.graph([1.0, 2.0])
    with pytest.raises(TypeError, match="numpy"):
        import numpy as np

        gradlens.graph(np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        gradlens.graph([])
    x = ge.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="params must be"):
        gradlens.graph(x * 2, params=[x])
    with pytest.raises(ValueError, match="max_nodes"):
        gradlens.graph(x * 2, max_nodes=0)


@requires_torch
def test_refuses_mixed_engines():
    import torch

    with pytest.raises(TypeError, match="one engine"):
        gradlens.graph([torch.ones(1, requires_grad=True) * 2, ge.ones(1, requires_grad=True) * 2])


@pytest.mark.parametrize("engine", ENGINES)
def test_saved_bytes_count_each_storage_once_and_skip_leaves(engine):
    lib = lib_of(engine)
    x = lib.ones(1000, requires_grad=True)  # float32: 4000 bytes
    a = x.exp()  # saves its result a
    b = a * a  # saves a twice: the same storage
    loss = (b * x).sum()  # saves b and the leaf x (excluded)
    g = gradlens.graph(loss)
    by_name = {d[S.NAME]: d[S.SAVED_BYTES] for _, d in g.nodes(data=True)}
    assert by_name["ExpBackward0"] == 4000
    # the outer mul saves b (4000) and x (a leaf: excluded); the inner one saves a once
    saved = sorted(d[S.SAVED_BYTES] for _, d in g.nodes(data=True) if d[S.NAME] == "MulBackward0")
    assert saved == [4000, 4000]
    assert g.graph[S.SAVED_BYTES] == 8000  # a and b, each once
    loss.backward()
    after = gradlens.graph(loss)
    assert after.graph[S.SAVED_BYTES] == 0  # freed by backward
    assert gradlens.graph(loss, saved=False).graph[S.SAVED_BYTES] is None


@pytest.mark.parametrize("engine", ENGINES)
def test_same_code_gives_equal_graphs_across_steps(engine):
    lib = lib_of(engine)
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.Tanh(), lib.nn.Linear(3, 1))
    graphs = []
    for _ in range(2):
        loss = model(lib.randn(2, 4)).pow(2).mean()
        graphs.append(gradlens.graph(loss, params=model))
        loss.backward()
    assert nx.utils.graphs_equal(graphs[0], graphs[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_truncation_is_recorded_not_silent(engine):
    lib = lib_of(engine)
    x = lib.ones(2, requires_grad=True)
    y = x
    for _ in range(50):
        y = y * 1.5
    g = gradlens.graph(y, max_nodes=10)
    assert g.graph[S.TRUNCATED] is True and g.graph[S.NODE_COUNT] == 10 and g.graph[S.MAX_NODES] == 10
    placeholders = [n for n, k in g.nodes(data=S.KIND) if k == S.KIND_TRUNCATED]
    assert placeholders == ["t0"]
    assert list(g.successors("t0")) == ["n9"] and g.nodes["t0"][S.COUNT] == 1
    assert gradlens.graph(y).graph[S.TRUNCATED] is False


@requires_torch
def test_torch_walks_are_capped_at_the_safe_maximum():
    import torch

    from gradlens.adapters.torch import TORCH_MAX_SAFE_NODES

    x = torch.ones(1, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradlens.graph(x * 2, max_nodes=TORCH_MAX_SAFE_NODES)
    with pytest.warns(GradlensWarning, match="segfault"):
        g = gradlens.graph(x * 2, max_nodes=10 * TORCH_MAX_SAFE_NODES)
    assert g.graph[S.MAX_NODES] == TORCH_MAX_SAFE_NODES
    assert gradlens.graph(x * 2, max_nodes=None).graph[S.MAX_NODES] == TORCH_MAX_SAFE_NODES
    assert gradlens.graph(ge.ones(1, requires_grad=True) * 2, max_nodes=None).graph[S.MAX_NODES] is None


@pytest.mark.parametrize("engine", ENGINES)
def test_step_and_module_come_from_node_metadata(engine):
    lib = lib_of(engine)
    x = lib.ones(2, requires_grad=True)
    y = x * 2
    y.grad_fn.metadata["gradlens.step"] = 3
    y.grad_fn.metadata["gradlens.module"] = "encoder.0"
    z = (y + 1).sum()
    g = gradlens.graph(z)
    mul = next(n for n, d in g.nodes(data=True) if d[S.NAME] == "MulBackward0")
    assert (g.nodes[mul][S.STEP], g.nodes[mul][S.MODULE]) == (3, "encoder.0")
    assert g.nodes["n0"][S.STEP] is None


def test_graph_function_survives_submodule_imports():
    import gradlens.graphs.schema  # noqa: F401 - binds `gradlens.graphs`, never `gradlens.graph`

    x = ge.ones(2, requires_grad=True)
    assert gradlens.graph((x * 3).sum()).graph[S.NODE_COUNT] == 3
    from gradlens import graph

    assert graph(x).graph[S.NODE_COUNT] == 1


def _run(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


def test_importing_the_graph_layer_imports_neither_torch_nor_the_engine():
    done = _run("""
        import sys, gradlens, gradlens.graphs, gradlens.export, gradlens.adapters
        gradlens.graph
        from gradlens.graphs import schema
        gradlens.to_dot, gradlens.render
        print(sorted(m for m in ("torch", "gradlens.engine") if m in sys.modules))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("length", [100_000, 200_000])
@pytest.mark.parametrize("max_nodes", ["default", None])
def test_walking_a_long_torch_chain_then_freeing_it_does_not_crash(length, max_nodes):
    cap = "" if max_nodes == "default" else ", max_nodes=None"
    done = _run(f"""
        import gc, warnings, torch, gradlens
        torch.set_num_threads(1)
        x = torch.ones(3, requires_grad=True)
        y = x
        for _ in range({length}):
            y = y * 1.0001
        g = gradlens.graph(y{cap})
        assert g.graph["truncated"], g.graph
        d = gradlens.to_dot(g).to_string()
        del y, d
        gc.collect()
        print("freed", g.graph["node_count"])
    """)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.startswith("freed")


@pytest.mark.slow
def test_walking_a_long_native_chain_without_a_cap():
    done = _run("""
        import gc, gradlens, gradlens.engine as ge
        x = ge.ones(3, requires_grad=True)
        y = x
        for _ in range(100_000):
            y = y * 1.0001
        g = gradlens.graph(y, max_nodes=None)
        assert not g.graph["truncated"] and g.graph["node_count"] == 100_001
        del y
        gc.collect()
        print("freed")
    """)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_a_fake_engine_through_the_adapter_protocol(monkeypatch):
    """The walker needs nothing but the protocol: a tiny fake engine is enough."""
    import gradlens.adapters as adapters
    from gradlens.adapters.base import GraphAdapter, NodeInfo, SavedInfo

    class FakeNode:
        def __init__(self, name, *inputs):
            self.name, self.inputs = name, inputs

    class FakeAdapter:
        engine = "fake"
        max_safe_nodes = None

        def owns(self, obj):
            return isinstance(obj, FakeNode)

        def is_tensor(self, obj):
            return False

        def root_node(self, tensor):
            return None

        def next_functions(self, node):
            return tuple((i, 0) for i in node.inputs)

        def describe(self, node):
            leaf = node.name == "AccumulateGrad"
            return NodeInfo(node.name, leaf=leaf, shapes=((1,),), dtypes=("float32",))

        def variable(self, node):
            return None

        def saved_tensors(self, node):
            one, two = SavedInfo(1, 8, (2,), "float32"), SavedInfo(2, 8, (2,), "float32")
            return [one, two] if node.name == "B" else [one]

        def storage_key(self, tensor):
            return id(tensor)

        def tensor_info(self, tensor):
            return (), "float32"

        def grad_enabled(self):
            return True

    fake = FakeAdapter()
    assert isinstance(fake, GraphAdapter)
    monkeypatch.setattr(adapters, "ADAPTERS", (fake,))
    leaf = FakeNode("AccumulateGrad")
    root = FakeNode("A", FakeNode("B", leaf), leaf)
    g = gradlens.graph(root)
    assert nodes(g) == {"n0": ("A", "root"), "n1": ("B", "op"), "n2": ("AccumulateGrad", "leaf")}
    assert g.graph[S.ENGINE] == "fake" and g.graph[S.SAVED_BYTES] == 16


def test_torch_is_optional_for_the_native_engine():
    assert HAS_TORCH or gradlens.graph(ge.ones(1, requires_grad=True)).graph[S.ENGINE] == "native"


def test_graph_and_export_never_import_an_engine_at_module_level():
    import ast
    from pathlib import Path

    root = Path(gradlens.__file__).parent
    for path in [*root.joinpath("graph").glob("*.py"), *root.joinpath("export").glob("*.py")]:
        for stmt in ast.parse(path.read_text()).body:
            names = []
            if isinstance(stmt, ast.Import):
                names = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom):
                names = [stmt.module or ""]
            for name in names:
                assert not name.startswith("torch") and "engine" not in name, (path, name)


def test_one_placeholder_per_unwalked_input():
    """A shared input beyond the cap is one placeholder with an edge to every op that needs it."""
    w = ge.ones(2, requires_grad=True)
    h = ge.ones(2, requires_grad=True)
    for _ in range(20):
        h = (h * 2) * w.exp()  # every step needs its own ExpBackward0 -> w
    g = gradlens.graph(h.sum(), max_nodes=30)
    placeholders = [n for n, k in g.nodes(data=S.KIND) if k == S.KIND_TRUNCATED]
    assert g.graph[S.TRUNCATED] and placeholders
    for p in placeholders:
        assert g.nodes[p][S.COUNT] == g.out_degree(p) >= 1
