"""Saved-tensor accounting on both engines, against hand counts: which tensors each node holds for backward
and how many bytes, worked out here from shapes and dtypes (torch's saving rules), never by calling the code
under test. Also: each storage once, leaves excluded, freed after backward, values packed by
``saved_tensors_hooks``, the DOT labels and the ``graph-retained`` holder evidence."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import gradlens
import gradlens.engine as ge
from gradlens.export.dot import format_bytes, to_dot_text
from gradlens.graphs import schema as S

from ..conftest import requires_torch

ENGINES = ["native", pytest.param("torch", marks=requires_torch)]
ITEM = {"float32": 4, "float64": 8, "int64": 8}


def lib_of(engine: str):
    if engine == "torch":
        import torch

        return torch
    return ge


def hooks_of(engine: str):
    if engine == "torch":
        from torch.autograd.graph import saved_tensors_hooks

        return saved_tensors_hooks
    return ge.autograd.graph.saved_tensors_hooks


def ops(g) -> dict[str, dict]:
    """Op and root nodes by name (the graphs below have each name once)."""
    return {d[S.NAME]: d for _, d in g.nodes(data=True) if d[S.KIND] in (S.KIND_OP, S.KIND_ROOT)}


def linear_mse(lib, dtype: str = "float32", n: int = 32, fan_in: int = 20, fan_out: int = 8, x_grad=False):
    lib.manual_seed(0)
    dt = getattr(lib, dtype)
    lin = lib.nn.Linear(fan_in, fan_out).to(dt)
    x = lib.randn(n, fan_in, dtype=dt, requires_grad=x_grad)
    target = lib.randn(n, fan_out, dtype=dt)
    return lin, lib.nn.functional.mse_loss(lin(x), target)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_mse_matches_a_hand_count(engine, dtype):
    lin, loss = linear_mse(lib_of(engine), dtype)
    g = gradlens.graph(loss, params=lin)
    item = ITEM[dtype]
    # addmm(bias, x, W.t()) saves x (the weight's gradient needs it; W.t() only if x needed a gradient);
    # mse_loss saves its input (the linear output) and the target
    addmm, mse = ops(g)["AddmmBackward0"], ops(g)["MseLossBackward0"]
    assert addmm[S.SAVED_BYTES] == 32 * 20 * item
    assert addmm[S.SAVED_SHAPES] == ((32, 20),) and addmm[S.SAVED_DTYPES] == (dtype,)
    assert mse[S.SAVED_BYTES] == 2 * 32 * 8 * item
    assert mse[S.SAVED_SHAPES] == ((32, 8), (32, 8)) and mse[S.SAVED_DTYPES] == (dtype, dtype)
    assert ops(g)["TBackward0"][S.SAVED_BYTES] == 0
    assert g.graph[S.SAVED_BYTES] == (32 * 20 + 2 * 32 * 8) * item
    assert g.graph[S.SAVED_FREED] == 0 and not any(d[S.SAVED_FREED] for d in ops(g).values())


@pytest.mark.parametrize("engine", ENGINES)
def test_leaves_that_require_grad_and_parameters_are_not_counted(engine):
    lin, loss = linear_mse(lib_of(engine), x_grad=True)
    g = gradlens.graph(loss)  # no params given: the weight is excluded as a leaf of the graph
    # x now needs a gradient, so addmm also saves W.t(): both are leaves' storages
    assert ops(g)["AddmmBackward0"][S.SAVED_BYTES] == 0
    assert g.graph[S.SAVED_BYTES] == 2 * 32 * 8 * 4


@pytest.mark.parametrize("engine", ENGINES)
def test_cross_entropy_counts_the_targets_whole_storage(engine):
    lib = lib_of(engine)
    lib.manual_seed(0)
    lin = lib.nn.Linear(20, 3)
    x = lib.randn(8, 20)
    labels = lib.zeros(100, dtype=lib.int64)  # a dataset's labels; the batch is a slice of them
    loss = lib.nn.functional.cross_entropy(lin(x), labels[:8])
    g = gradlens.graph(loss, params=lin)
    # log_softmax saves its result (8x3 float32); nll_loss saves that same tensor, the target (a view that
    # keeps all 100 int64 labels alive) and total_weight (a 0-d float32)
    nll, logsm = ops(g)["NllLossBackward0"], ops(g)["LogSoftmaxBackward0"]
    assert logsm[S.SAVED_BYTES] == 8 * 3 * 4
    assert nll[S.SAVED_SHAPES] == ((8, 3), (8,), ())
    assert nll[S.SAVED_DTYPES] == ("float32", "int64", "float32")
    assert nll[S.SAVED_BYTES] == 8 * 3 * 4 + 100 * 8 + 4
    assert g.graph[S.SAVED_BYTES] == 8 * 20 * 4 + 8 * 3 * 4 + 100 * 8 + 4  # the log-probs once


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tensor_saved_by_two_nodes_counts_once_in_the_graph(engine):
    lib = lib_of(engine)
    w = lib.randn(50, requires_grad=True)
    a = w.sin().tanh()  # sin saves the leaf w (not counted); tanh its result a (200 bytes)
    t1, t2 = lib.randn(50), lib.randn(50)
    loss = lib.nn.functional.mse_loss(a, t1) + lib.nn.functional.mse_loss(a, t2)  # each saves a and a target
    g = gradlens.graph(loss)
    mse = [d for _, d in g.nodes(data=True) if d[S.NAME] == "MseLossBackward0"]
    assert [d[S.SAVED_BYTES] for d in mse] == [400, 400]
    assert ops(g)["TanhBackward0"][S.SAVED_BYTES] == 200
    assert g.graph[S.SAVED_BYTES] == 200 + 200 + 200  # a once, t1, t2


@pytest.mark.parametrize("engine", ENGINES)
def test_backward_frees_what_was_saved_and_the_graph_says_so(engine):
    lin, loss = linear_mse(lib_of(engine))
    loss.backward(retain_graph=True)
    assert gradlens.graph(loss).graph[S.SAVED_BYTES] == (32 * 20 + 2 * 32 * 8) * 4  # retained
    loss.backward()
    g = gradlens.graph(loss)
    assert g.graph[S.SAVED_BYTES] == 0
    assert g.graph[S.SAVED_FREED] == 2  # addmm and mse; TBackward0 never saved anything
    assert ops(g)["MseLossBackward0"][S.SAVED_FREED] and not ops(g)["TBackward0"][S.SAVED_FREED]
    assert gradlens.graph(loss).graph == g.graph  # walking freed nodes raises nothing and changes nothing


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("packing", ["holder", "pair", "detached", "opaque"])
def test_values_packed_by_saved_tensor_hooks_are_measured_without_unpacking(engine, packing):
    lib = lib_of(engine)
    calls = []
    kept = {}

    class Holder:
        def __init__(self, t):
            self.t, self.tag = t.detach(), "mine"

    def pack(t):
        calls.append("pack")
        if packing == "holder":
            return Holder(t)
        if packing == "pair":
            return ("cpu", t.detach())
        if packing == "detached":
            return t.detach()
        kept[len(kept)] = t.detach()  # held outside the graph: the graph itself holds only an int
        return len(kept) - 1

    def unpack(p):
        calls.append("unpack")
        return p.t if packing == "holder" else p[1] if packing == "pair" else p if packing == "detached" else kept[p]

    with hooks_of(engine)(pack, unpack):
        lin, loss = linear_mse(lib)
    g = gradlens.graph(loss, params=lin)
    assert "unpack" not in calls
    expected = 0 if packing == "opaque" else (32 * 20 + 2 * 32 * 8) * 4
    assert g.graph[S.SAVED_BYTES] == expected
    loss.backward()
    assert gradlens.graph(loss).graph[S.SAVED_BYTES] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_dot_labels_carry_the_hand_counted_bytes(engine):
    lin, loss = linear_mse(lib_of(engine), n=64, fan_in=100, fan_out=50)
    text, _ = to_dot_text(gradlens.graph(loss, params=lin), saved_threshold=1)
    assert "saved " + format_bytes(64 * 100 * 4) in text  # addmm: x
    assert "saved " + format_bytes(2 * 64 * 50 * 4) in text  # mse: input and target
    assert "saved for backward " + format_bytes((64 * 100 + 2 * 64 * 50) * 4) in text  # the title


def test_the_native_node_surface_mirrors_torchs_raw_saved_attributes():
    x = ge.randn(3, 4, requires_grad=True)
    h = x * 2.0
    y = h.tanh()
    raw = y.grad_fn._raw_saved_tensors
    assert len(raw) == 1 and np.shares_memory(raw[0].data.numpy(), y.detach().numpy())
    assert raw[0].data.grad_fn is None  # the node's own output is held without its graph (no cycle)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        _ = y.grad_fn._raw_saved_tensors


@pytest.mark.parametrize("engine", ENGINES)
def test_measuring_keeps_nothing_alive(engine):
    lib = lib_of(engine)
    lin = lib.nn.Linear(20, 8)
    h = lin(lib.randn(32, 20)).relu()
    loss = h.sum()
    ref = weakref.ref(h)
    g = gradlens.graph(loss)
    assert ops(g)["ReluBackward0"][S.SAVED_BYTES] == 32 * 8 * 4
    del h, loss
    gc.collect()
    assert ref() is None


def _retaining_loop(lib, history: list) -> None:
    """Trains, and keeps each step's validation loss with its graph (no backward, no ``no_grad``)."""
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(20, 16), lib.nn.ReLU(), lib.nn.Linear(16, 3))
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = lib.nn.CrossEntropyLoss()
    for _ in range(8):
        x, y = lib.randn(8, 20), (lib.randn(8) > 0).long()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        xv, yv = lib.randn(5, 20), (lib.randn(5) > 0).long()
        history.append(loss_fn(model(xv), yv))  # BUG: the validation graph stays alive


@pytest.mark.parametrize("engine", ENGINES)
def test_graph_retained_evidence_gives_the_holders_hand_counted_bytes(engine):
    history: list = []
    with gradlens.watch(on_finding="collect") as lens:
        _retaining_loop(lib_of(engine), history)
    found = {f.kind: f for f in lens.findings}["graph-retained"]
    assert found.subject == ("history[0]",)
    # one validation graph: x (5x20 f32) by addmm, the relu result (5x16 f32, also addmm's mat1), the
    # log-probs (5x3 f32, also nll's input), the target (5 int64) and total_weight (a 0-d f32)
    hand = 5 * 20 * 4 + 5 * 16 * 4 + 5 * 3 * 4 + 5 * 8 + 4
    assert found.evidence["holder_saved_bytes"] == hand == found.graph.graph[S.SAVED_BYTES]
    assert found.graph.graph[S.SAVED_FREED] == 0


@requires_torch
def test_both_engines_give_the_same_numbers_for_the_same_program():
    import torch

    graphs = []
    for lib in (torch, ge):
        lib.manual_seed(0)
        model = lib.nn.Sequential(lib.nn.Linear(20, 16), lib.nn.ReLU(), lib.nn.Linear(16, 3))
        x, y = lib.randn(8, 20), (lib.randn(8) > 0).long()
        graphs.append(gradlens.graph(lib.nn.functional.cross_entropy(model(x), y), params=model))
    rows = [[(d[S.NAME], d[S.SAVED_BYTES], d[S.SAVED_SHAPES], d[S.SAVED_DTYPES]) for _, d in g.nodes(data=True)]
            for g in graphs]
    assert rows[0] == rows[1]
    assert graphs[0].graph[S.SAVED_BYTES] == graphs[1].graph[S.SAVED_BYTES]
    assert to_dot_text(graphs[0], saved_threshold=1)[0].count("saved ") == \
        to_dot_text(graphs[1], saved_threshold=1)[0].count("saved ") > 0
