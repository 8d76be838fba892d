"""sentinels.py: the sentinels count what is alive per iteration and uncount it when they die."""

from __future__ import annotations

import gc

from gradlens.instrument.sentinels import _oldest_tag, _Packed, _plant_down_chain, _RootSentinel, _SavedLedger


def test_root_sentinels_count_live_graphs_per_iteration():
    live: dict[int, int] = {}
    a, b, c = _RootSentinel(live, 0), _RootSentinel(live, 0), _RootSentinel(live, 1)
    assert live == {0: 2, 1: 1}
    del a
    gc.collect()
    assert live == {0: 1, 1: 1}
    del b, c
    gc.collect()
    assert live == {}


def test_packed_holders_count_bytes_and_unused_tensors(lib):
    ledger = _SavedLedger()
    p = _Packed(lib.zeros(3), 2, 12, ledger)
    q = _Packed(lib.zeros(3), 2, 12, ledger)
    assert (ledger.live, ledger.bytes, ledger.packed_bytes) == ({2: 2}, {2: 24}, 24)
    q.used = True
    del p, q
    gc.collect()
    assert (ledger.live, ledger.bytes, ledger.discarded, ledger.discarded_bytes) == ({}, {}, 1, 12)


def test_sentinel_dies_with_its_graph_and_tags_are_found(lib):
    live: dict[int, int] = {}
    w = lib.randn(3, requires_grad=True)
    loss = (w * 2).sum()
    s = _RootSentinel(live, 4)
    loss.grad_fn.metadata["k"] = s
    _plant_down_chain(loss.grad_fn, s, "k.chain")
    del s
    assert _oldest_tag(loss) == 4 and live == {4: 1}
    del loss
    gc.collect()
    assert live == {}
