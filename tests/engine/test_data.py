"""gradlens.engine.utils.data against torch.utils.data: batches, collation, drop_last, shuffling as a
permutation, samplers, random_split and torch's option errors."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import gradlens.engine as ge
from gradlens.engine.utils import data as gdata
from gradlens.engine.utils.hooks import RemovableHandle

from ..conftest import HAS_TORCH


@pytest.fixture
def torch():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    return torch


def _np(x):
    return x._data if hasattr(x, "_data") else x.numpy()


def _same_batches(tb, gb):
    """Compare two collated structures: same container types, tensor dtypes, shapes and values."""
    if hasattr(tb, "shape") and hasattr(tb, "dtype") and not isinstance(tb, np.ndarray):
        assert str(tb.dtype) == repr(gb.dtype)
        assert tuple(tb.shape) == tuple(gb.shape)
        np.testing.assert_array_equal(_np(gb), _np(tb))
        return
    assert type(tb) is type(gb), f"{type(tb)} vs {type(gb)}"
    if isinstance(tb, dict):
        assert list(tb) == list(gb)
        for k in tb:
            _same_batches(tb[k], gb[k])
    elif isinstance(tb, (list, tuple)):
        assert len(tb) == len(gb)
        for a, b in zip(tb, gb, strict=True):
            _same_batches(a, b)
    else:
        assert tb == gb


def _loaders(torch, make_dataset, **kwargs):
    return (torch.utils.data.DataLoader(make_dataset(torch), **kwargs),
            ge.utils.data.DataLoader(make_dataset(ge), **kwargs))


X = np.arange(70, dtype=np.float32).reshape(7, 10)
Y = np.arange(7)


def _tensor_ds(lib):
    return lib.utils.data.TensorDataset(lib.tensor(X), lib.tensor(Y))


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (2, False), (3, True), (7, False), (10, False),
                                                  (10, True), (None, False)])
def test_tensor_dataset_batches(torch, batch_size, drop_last):
    t_loader, g_loader = _loaders(torch, _tensor_ds, batch_size=batch_size, drop_last=drop_last)
    assert len(g_loader) == len(t_loader)
    t_batches, g_batches = list(t_loader), list(g_loader)
    assert len(t_batches) == len(g_batches)
    for tb, gb in zip(t_batches, g_batches, strict=True):
        _same_batches(tb, gb)


def test_dataset_items(torch):
    t, g = _tensor_ds(torch), _tensor_ds(ge)
    assert len(g) == len(t) == 7
    _same_batches(t[3], g[3])
    _same_batches(t[-1], g[-1])
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        ge.utils.data.TensorDataset(ge.zeros(3), ge.zeros(4))


class _Items:
    """A dataset of mixed Python items (built per engine)."""

    def __init__(self, lib, kind):
        self.lib, self.kind = lib, kind

    def __len__(self):
        return 5

    def __getitem__(self, i):
        lib = self.lib
        if self.kind == "tuple":
            return lib.tensor([float(i), 2.0 * i]), i, float(i) / 2, f"s{i}"
        if self.kind == "dict":
            return {"x": lib.ones(2, 3) * i, "y": np.array([i, i + 1], dtype=np.float32), "flag": i % 2 == 0}
        if self.kind == "list":
            return [np.float32(i), np.int64(i), lib.tensor(i)]
        if self.kind == "namedtuple":
            return Pair(lib.tensor([i]), i)
        raise AssertionError


Pair = collections.namedtuple("Pair", "a b")


@pytest.mark.parametrize("kind", ["tuple", "dict", "list", "namedtuple"])
def test_default_collate_structures(torch, kind):
    class TDS(_Items, torch.utils.data.Dataset):
        pass

    class GDS(_Items, ge.utils.data.Dataset):
        pass

    t_loader = torch.utils.data.DataLoader(TDS(torch, kind), batch_size=2)
    g_loader = ge.utils.data.DataLoader(GDS(ge, kind), batch_size=2)
    for tb, gb in zip(list(t_loader), list(g_loader), strict=True):
        _same_batches(tb, gb)


def test_default_collate_direct(torch):
    for batch in ([1, 2, 3], [1.5, 2.5], [True, False], [np.float32(1.0), np.float32(2.0)],
                  [np.ones((2, 2)), np.zeros((2, 2))], ["a", "b"]):
        _same_batches(torch.utils.data.default_collate(batch), gdata.default_collate(batch))
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        gdata.default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        gdata.default_collate([object(), object()])


def test_shuffle_is_a_permutation_and_reshuffles():
    ge.manual_seed(0)
    loader = ge.utils.data.DataLoader(_tensor_ds(ge), batch_size=3, shuffle=True)
    epochs = []
    for _ in range(3):
        ys = np.concatenate([_np(y) for _, y in loader])
        assert sorted(ys.tolist()) == list(range(7))
        epochs.append(ys.tolist())
        xs = np.concatenate([_np(x) for x, _ in loader])
        assert sorted(xs[:, 0].tolist()) == list(range(0, 70, 10))
    assert len({tuple(e) for e in epochs}) > 1
    # rows stay paired with their labels
    for x, y in loader:
        np.testing.assert_array_equal(_np(x)[:, 0], _np(y) * 10)
    # seeded generators reproduce the order
    def order():
        loader = ge.utils.data.DataLoader(_tensor_ds(ge), batch_size=2, shuffle=True,
                                          generator=ge.Generator().manual_seed(5))
        return [_np(y).tolist() for _, y in loader]

    orders = [order(), order()]
    assert orders[0] == orders[1]


def test_samplers_and_custom_collate(torch):
    ds = list(range(10))
    for lib in (torch, ge):
        d = lib.utils.data
        assert list(d.SequentialSampler(ds)) == ds
        assert sorted(d.RandomSampler(ds)) == ds
        assert len(list(d.RandomSampler(ds, replacement=True, num_samples=25))) == 25
        batches = list(d.BatchSampler(d.SequentialSampler(ds), 4, drop_last=False))
        assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        assert list(d.BatchSampler(range(10), 4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
        assert len(d.BatchSampler(ds, 3, drop_last=False)) == 4
        assert sorted(d.SubsetRandomSampler([3, 5, 7])) == [3, 5, 7]
        loader = d.DataLoader(ds, batch_size=4, collate_fn=lambda b: sum(b))
        assert list(loader) == [6, 22, 17]
        loader = d.DataLoader(ds, batch_sampler=[[0, 1], [5]], collate_fn=list)
        assert list(loader) == [[0, 1], [5]]
        loader = d.DataLoader(ds, sampler=[9, 8, 7], batch_size=2, collate_fn=list)
        assert list(loader) == [[9, 8], [7]] and len(loader) == 2


def test_subset_concat_random_split(torch):
    for lib in (torch, ge):
        d = lib.utils.data
        ds = d.TensorDataset(lib.arange(10))
        sub = d.Subset(ds, [2, 4, 6])
        assert len(sub) == 3 and sub[1][0].item() == 4
        cat = ds + sub
        assert len(cat) == 13 and cat[11][0].item() == 4 and cat[-1][0].item() == 6
        parts = d.random_split(ds, [0.3, 0.7])
        assert [len(p) for p in parts] == [3, 7]
        assert sorted(i for p in parts for i in p.indices) == list(range(10))
        parts = d.random_split(ds, [5, 5])
        assert [len(p) for p in parts] == [5, 5]
        with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input"):
            d.random_split(ds, [3, 3])


def test_iterable_dataset(torch):
    out = []
    for lib in (torch, ge):
        d = lib.utils.data

        class Stream(d.IterableDataset):
            def __iter__(self):
                return iter(range(7))

        out.append(([b.tolist() for b in d.DataLoader(Stream(), batch_size=3)],
                    [b.tolist() for b in d.DataLoader(Stream(), batch_size=3, drop_last=True)],
                    [b for b in d.DataLoader(Stream(), batch_size=None)]))
        with pytest.raises(ValueError, match="expected unspecified shuffle option"):
            d.DataLoader(Stream(), shuffle=True)
    assert out[0][:2] == out[1][:2]
    assert out[0][2] == out[1][2] == list(range(7))


def test_option_errors(torch):
    for lib in (torch, ge):
        d = lib.utils.data
        ds = list(range(4))
        with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
            d.DataLoader(ds, sampler=[0, 1], shuffle=True)
        with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive with batch_size"):
            d.DataLoader(ds, batch_sampler=[[0]], batch_size=2)
        with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
            d.DataLoader(ds, batch_size=None, drop_last=True)
        with pytest.raises(ValueError, match="num_workers option should be non-negative"):
            d.DataLoader(ds, num_workers=-1)
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            d.DataLoader(ds, batch_size=0)


def test_batches_do_not_alias_the_dataset():
    x = ge.zeros(4, 2)
    loader = ge.utils.data.DataLoader(ge.utils.data.TensorDataset(x), batch_size=2)
    (b,), _ = list(loader)
    b._data[...] = 7
    assert x._data.sum() == 0
    assert RemovableHandle is ge.utils.hooks.RemovableHandle is ge.autograd.graph.RemovableHandle


def test_requires_grad_dataset_uses_recorded_ops():
    w = ge.ones(4, 2, requires_grad=True)
    (b,) = next(iter(ge.utils.data.DataLoader(ge.utils.data.TensorDataset(w), batch_size=2)))
    assert b.requires_grad and b.grad_fn is not None
    b.sum().backward()
    assert w.grad.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]


def test_default_convert(torch):
    for data in (np.ones(3), np.float32(2.0), (np.zeros(2), 1, "a"),
                 collections.OrderedDict(a=np.ones(2), b=[np.int64(3)]), [np.ones(1), 2.0],
                 Pair(np.ones(1), 3), "text", 5):
        _same_batches(torch.utils.data.default_convert(data), gdata.default_convert(data))
