"""leaves.py: the walk finds every leaf a backward reaches, bare tensors included; walks are cached per
root and redone when the graph changes; it keeps no node alive."""

from __future__ import annotations

import gradlens
from gradlens.instrument.leaves import MAX_WALK_NODES, REWALK_EVERY, leaves_reached


def test_walk_finds_bare_and_module_leaves(lib):
    lin = lib.nn.Linear(3, 2)
    W = lib.randn(2, 2, requires_grad=True)
    x = lib.randn(5, 3)
    const = lib.randn(2, 2)  # requires no grad: not a leaf of the graph
    loss = (lin(x) @ W @ const).sum()
    leaves, nodes, truncated = leaves_reached(loss.grad_fn)
    assert {id(p) for p in leaves} == {id(W), id(lin.weight), id(lin.bias)}
    assert nodes >= 4 and not truncated


def test_walk_is_bounded(lib):
    W = lib.randn(3, requires_grad=True)
    y = W
    for _ in range(50):
        y = y * 1.0
    leaves, nodes, truncated = leaves_reached(y.sum().grad_fn, max_nodes=10)
    assert truncated and nodes == 10 and leaves == []
    assert MAX_WALK_NODES < 45_000


def test_walks_are_cached_while_the_graph_keeps_its_shape(lib):
    W = lib.randn(4, 2, requires_grad=True)
    x = lib.randn(8, 4)
    with gradlens.watch(on_finding="collect") as lens:
        rec = lens._recorder
        calls = []
        original = rec._track_leaf
        rec._track_leaf = lambda *a: (calls.append(a[1]), original(*a))
        for _ in range(5):
            ((x @ W) ** 2).mean().backward()
        assert calls == ["W"]
        (w,) = rec._walks.values()
        assert w.expected == 1 and not w.stale
        V = lib.randn(2, 2, requires_grad=True)  # a new leaf in a graph with the same root
        for _ in range(REWALK_EVERY):
            ((x @ W @ V) ** 2).mean().backward()
        assert calls == ["W", "V"]
        assert w.expected == 2 and not w.stale


def test_leaf_names_come_from_the_users_variables(lib):
    weights = lib.randn(4, 2, requires_grad=True)
    with gradlens.watch(on_finding="collect") as lens:
        (weights * 2).sum().backward()
        names = {st.name for st in lens._recorder.params.values()}
    assert names == {"weights"}
