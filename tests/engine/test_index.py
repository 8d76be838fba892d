"""Parity of indexing (``__getitem__`` / ``__setitem__`` in every form) and of the index ops (index_select,
gather, scatter, masked_select, take_along_dim, nonzero) with torch: values, gradients (repeated indices
accumulate), node chains, versions and errors."""

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, graph_signature, rand

I3 = np.array([0, 2, 2])


def _idx(lib, arr):
    return lib.tensor(arr)


# --- basic indexing -----------------------------------------------------------------------------------
BASIC = [
    lambda X: X[0], lambda X: X[-1], lambda X: X[0, 1], lambda X: X[0, 1, 2], lambda X: X[0, 1:3],
    lambda X: X[:, 0],
    lambda X: X[:], lambda X: X[:, :], lambda X: X[...], lambda X: X[::2], lambda X: X[1:],
    lambda X: X[:, 1:, ::2],
    lambda X: X[0:3], lambda X: X[None], lambda X: X[:, None], lambda X: X[..., 0], lambda X: X[..., None],
    lambda X: X[0, ..., 1:2], lambda X: X[None, 0, None], lambda X: X[None, ..., None], lambda X: X[2:1],
    lambda X: X[10:], lambda X: X[-100:], lambda X: X[:, :, -1], lambda X: X[0:3, 0],
    lambda X: X[:, :, 0:100],
    lambda X: X[1:-1, ::3, 4], lambda X: X[(0, 1)], lambda X: X[0][1][2], lambda X: X[np.int64(1)],
    lambda X: X[:, 1::2][0], lambda X: X[0][None][0],
]


@pytest.mark.parametrize("fn", BASIC)
def test_basic_indexing(fn):
    check_parity(lambda lib, X: fn(X), rand(3, 4, 5))


def test_basic_indexing_1d_and_dtypes():
    check_parity(lambda lib, x: x[:], rand(6))
    check_parity(lambda lib, x: x[0], rand(6, dtype=np.float32))
    check_parity(lambda lib, x: x[1:5:3], rand(6, dtype=np.float32))
    check_parity(lambda lib, x: x[-3:], rand(6))
    check_parity(lambda lib, x: x[None], rand(6))
    check_parity(lambda lib, x: x[None], rand())
    check_parity(lambda lib, x: x[...], rand())
    check_parity(lambda lib, x: x[0][None], rand(6))
    check_parity(lambda lib, x: x[lib.tensor(1)], rand(6))
    check_parity(lambda lib, x: x[1:, 0], rand(0, 3))
    check_parity(lambda lib, x: x[:, 1], rand(0, 3))


def test_node_chains():
    X = ge.randn(3, 4, 5, requires_grad=True)
    names = lambda t: [n for n, _ in graph_signature(t)]  # noqa: E731
    assert names(X[0, 1:3]) == ["SliceBackward0", "SelectBackward0", "torch::autograd::AccumulateGrad"]
    assert names(X[:, 0]) == ["SelectBackward0", "torch::autograd::AccumulateGrad"]
    assert names(X[:])[0] == "SliceBackward0"
    assert names(X[X > 0])[0] == "IndexBackward0"
    assert names(X[:, :])[0] == "AliasBackward0"


# --- advanced indexing --------------------------------------------------------------------------------
ADVANCED = [
    lambda lib, X: X[[0, 1]], lambda lib, X: X[[0, 0, 2]], lambda lib, X: X[_idx(lib, I3)],
    lambda lib, X: X[0, _idx(lib, I3)], lambda lib, X: X[_idx(lib, I3), 1:3],
    lambda lib, X: X[:, _idx(lib, I3)],
    lambda lib, X: X[_idx(lib, I3), _idx(lib, I3)], lambda lib, X: X[_idx(lib, I3), :, _idx(lib, I3)],
    lambda lib, X: X[1:, _idx(lib, I3)], lambda lib, X: X[_idx(lib, I3), None],
    lambda lib, X: X[0, :, _idx(lib, I3)],
    lambda lib, X: X[[0, 1], [1, 2]], lambda lib, X: X[I3], lambda lib, X: X[I3, 1],
    lambda lib, X: X[:, I3, -1],
    lambda lib, X: X[_idx(lib, [[0, 1], [2, 2]])], lambda lib, X: X[_idx(lib, [[0, 1], [2, 2]]), 0, 1:],
    lambda lib, X: X[_idx(lib, [-1, -3])], lambda lib, X: X[_idx(lib, np.array([1, 0], dtype=np.int32))],
    lambda lib, X: X[..., _idx(lib, [4, 4, 0])],
    lambda lib, X: X[_idx(lib, [0, 1]), :, _idx(lib, [[1], [2]])],
    lambda lib, X: X[:, _idx(lib, [0, 0]), :][:, :, _idx(lib, [1, 1, 1])],
    lambda lib, X: X[range(3), [0, 1, 3]], lambda lib, X: X[:, range(1, 3)], lambda lib, X: X[range(2)],
]


@pytest.mark.parametrize("fn", ADVANCED)
def test_advanced_indexing(fn):
    check_parity(fn, rand(3, 4, 5))


def test_advanced_float32_and_zero_size():
    check_parity(lambda lib, X: X[[0, 0, 1]], rand(3, 4, dtype=np.float32))
    check_parity(lambda lib, X: X[[0, 0]], rand(3, 0))
    check_parity(lambda lib, X: X[lib.tensor([], dtype=lib.int64)], rand(3, 4))


MASKS = [
    lambda lib, X: X[X > 0], lambda lib, X: X[X[:, 0, 0] > 0],
    lambda lib, X: X[:, [True, False, True, False]],
    lambda lib, X: X[X < 0],
    lambda lib, X: X[0][X[0] > 0], lambda lib, X: X[lib.tensor([True, False, True]), 1:],
    lambda lib, X: X[True], lambda lib, X: X[False], lambda lib, X: X[None, X[:, :, 0] > 0],
    lambda lib, X: X[lib.tensor([[True, False, True, True]] * 3)], lambda lib, X: X[lib.tensor([False] * 3)],
    lambda lib, X: X[..., lib.tensor([True, False, True, False, True])],
    lambda lib, X: X[lib.tensor([True, True, False]), lib.tensor([1, 3])],
]


@pytest.mark.parametrize("fn", MASKS)
def test_bool_masks(fn):
    check_parity(fn, rand(3, 4, 5))


def test_numpy_mask_and_index():
    m = np.array([True, False, True])
    check_parity(lambda lib, x: x[m] if lib is ge else x[lib.from_numpy(m)], rand(3, 2))
    check_parity(lambda lib, x: x[I3] if lib is ge else x[lib.from_numpy(I3)], rand(3, 2))


def test_repeated_indices_accumulate():
    x = ge.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]
    X = ge.ones(2, 3, requires_grad=True)
    X[ge.tensor([1, 1]), ge.tensor([2, 2])].sum().backward()
    assert X.grad.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]


def test_indexing_errors():
    check_error(lambda lib, X: X[5], rand(3, 4), match="index 5 is out of bounds for dimension 0 with size 3")
    check_error(lambda lib, X: X[-4], rand(3, 4), match="out of bounds")
    check_error(lambda lib, X: X[0, 9], rand(3, 4),
                match="index 9 is out of bounds for dimension 1 with size 4")
    check_error(lambda lib, X: X[[5]], rand(3, 4),
                match="index 5 is out of bounds for dimension 0 with size 3")
    check_error(lambda lib, X: X[lib.tensor([-4])], rand(3, 4), match="out of bounds")
    check_error(lambda lib, X: X[0, 0, 0], rand(3, 4), match="too many indices for tensor of dimension 2")
    check_error(lambda lib, X: X[lib.tensor([True, False])], rand(3, 4), match="The shape of the mask")
    check_error(lambda lib, X: X[1.5], rand(3, 4), match="only integers, slices")
    check_error(lambda lib, X: X[lib.tensor([0.0, 1.0])], rand(3, 4), match="tensors used as indices must be")
    check_error(lambda lib, X: X[lib.tensor([])], rand(3, 4), match="tensors used as indices must be")
    check_error(lambda lib, x: x[0], rand(), match="invalid index of a 0-dim tensor")
    check_error(lambda lib, x: x[::-1], rand(3), match="step must be greater than zero")


# --- versions and views -------------------------------------------------------------------------------
def test_getitem_views_share_version():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    for lib in (torch, ge):
        x = lib.zeros(3, 4)
        v, s, a = x[0], x[1:], x[[0, 1]]
        x.add_(1) if hasattr(x, "add_") else x.__setitem__(..., x + 1)
        assert (v._version, s._version, a._version) == (1, 1, 0)
        v[1] = 3.0
        assert x._version == 2 and float(x[0, 1]) == 3.0
        assert float(a[0, 1]) == 0.0


def test_views_memory_and_base():
    x = ge.zeros(3, 4)
    for v in (x[0], x[:, 1], x[1:], x[None], x[...], x[:, ::2]):
        assert np.shares_memory(v._data, x._data) and v._base is x
    assert not np.shares_memory(x[[0]]._data, x._data) and x[[0]]._base is None
    assert x[0][1:]._base is x


# --- setitem ------------------------------------------------------------------------------------------
def _set(key, value_fn=None, scalar=5.0):
    def fn(lib, w, v):
        y = w * 2
        y[key(lib) if callable(key) else key] = scalar if value_fn is None else value_fn(v)
        return y
    return fn


SETITEMS = [
    _set(0), _set((0, 1)), _set((slice(None), 1)), _set(slice(1, None)), _set((Ellipsis, 0)),
    _set(1, lambda v: v), _set(1, lambda v: v * 3), _set((slice(None), 2), lambda v: v[:3]),
    _set((slice(0, 2), slice(1, 3)), lambda v: v[:2]), _set(0, lambda v: v[:1]), _set(0, lambda v: v[None]),
    _set((slice(None), [0, 2])), _set([0, 2], lambda v: v), _set((slice(None), [1, 1]), lambda v: v[:2]),
    _set(lambda lib: lib.tensor([True, False, True]), lambda v: v), _set(None, lambda v: v.detach()),
    _set((0, slice(1, 4)), lambda v: v[0]), _set(..., lambda v: v),
]


@pytest.mark.parametrize("fn", SETITEMS)
def test_setitem_nonleaf(fn):
    check_parity(fn, rand(3, 4), rand(4))


def test_setitem_value_requires_grad_only():
    def fn(lib, v):
        a = lib.zeros(3, 4, dtype=v.dtype)
        a[0] = v
        a[2, 1:3] = v[2:] * v[:2]
        return a

    check_parity(fn, rand(4))
    check_parity(fn, rand(4, dtype=np.float32))


def test_setitem_mask_and_chain():
    def fn(lib, w):
        y = w * 1
        y[y > 0] = 0.0
        y[:, 0] = y[:, 1] * 2
        return y * y

    check_parity(fn, rand(3, 4))


def test_setitem_leaf_errors():
    check_error(lambda lib, w: w.__setitem__(0, 1.0), rand(3, 4),
                match="a view of a leaf Variable that requires grad is being used in an in-place operation")
    check_error(lambda lib, w: w.__setitem__([0], 1.0), rand(3, 4),
                match="a leaf Variable that requires grad is being used in an in-place operation")
    check_error(lambda lib, w: w.__setitem__(w > 0, 1.0), rand(3, 4),
                match="a leaf Variable that requires grad")
    check_error(lambda lib, w: w.detach().__setitem__(0, lib.ones(3)), rand(3, 4), match="must match")


def test_setitem_no_grad_and_versions():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    for lib in (torch, ge):
        w = lib.zeros(3, 4, requires_grad=True)
        with lib.no_grad():
            w[0] = 1.0
            w[[1, 1]] = 2.0
        assert w._version == 2 and w.is_leaf and w.grad_fn is None
        x = lib.zeros(2, 2)
        x[0, 0] = 1.0
        assert x._version == 1 and x.grad_fn is None and not x.requires_grad
        y = w * 2
        y[0] = 5.0
        assert y._version == 1 and y.grad_fn.name() == "torch::autograd::CopySlices"


def test_setitem_saved_tensor_check():
    def fn(lib, w):
        y = w * 1
        z = y * y
        y[0] = 1.0
        z.sum().backward()

    check_error(fn, rand(3, 4), match="modified by an inplace operation")


def test_setitem_create_graph():
    def fn(lib, w, v):
        y = w * w
        y[1] = v * v
        (gw, gv) = lib.autograd.grad((y * y).sum(), (w, v), create_graph=True)
        return gw, gv

    check_parity(fn, rand(3, 4), rand(4), graph=False)


# --- index ops ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda lib, X: X.index_select(0, lib.tensor([0, 2, 2])),
    lambda lib, X: lib.index_select(X, 1, lib.tensor([3])),
    lambda lib, X: X.index_select(-1, lib.tensor(1)),
    lambda lib, X: X.index_select(0, lib.tensor([], dtype=lib.int64)),
    lambda lib, X: X.index_select(0, lib.tensor([1, 0], dtype=lib.int32)),
    lambda lib, X: X.gather(1, lib.tensor([[0, 0], [1, 0], [3, 3]])),
    lambda lib, X: lib.gather(X, 0, lib.tensor([[2, 2]])),
    lambda lib, X: X.gather(-1, lib.tensor([[0, 1, 2, 3, 0]])),
    lambda lib, X: X.masked_select(X > 0),
    lambda lib, X: lib.masked_select(X, lib.tensor([True, False, True, True])),
    lambda lib, X: lib.masked_select(X[0], lib.tensor([[True], [False]])),
    lambda lib, X: lib.take_along_dim(X, lib.tensor([[0], [1], [2]]), 1),
    lambda lib, X: X.take_along_dim(lib.tensor([[0, 3]]), dim=1),
    lambda lib, X: lib.take_along_dim(X, lib.tensor([0, 5, 5])),
    lambda lib, X: X.scatter(1, lib.tensor([[0], [1], [2]]), 5.0),
    lambda lib, X: X.scatter(1, lib.tensor([[0], [1], [2]]), X[:, 1:2] * 2),
    lambda lib, X: lib.scatter(X, 0, lib.tensor([[2, 1, 0, 1]]), X[:1].flip(1)),
])
def test_index_ops(fn):
    check_parity(fn, rand(3, 4))


def test_nonzero_where():
    check_parity(lambda lib, x: lib.nonzero(x > 0), rand(3, 4), grad=False)
    check_parity(lambda lib, x: (x > 0).nonzero(), rand(3, 4), grad=False)
    check_parity(lambda lib, x: lib.nonzero(x > 0, as_tuple=True), rand(3, 4), grad=False)
    check_parity(lambda lib, x: lib.argwhere(x), np.array([[0, 1], [2, 0]]), grad=False)
    check_parity(lambda lib, x: lib.where(x > 0), rand(3, 4), grad=False)
    check_parity(lambda lib, x: x[lib.where(x > 0)], rand(3, 4))
    check_parity(lambda lib, x: lib.nonzero(x), rand(0, 3), grad=False)


def test_index_ops_errors():
    check_error(lambda lib, X: X.index_select(0, lib.tensor([5])), rand(3, 4),
                match="index out of range in self")
    check_error(lambda lib, X: X.index_select(0, lib.tensor([1.0])), rand(3, 4), match="int32 or int64")
    check_error(lambda lib, X: X.gather(1, lib.tensor([[5]])), rand(3, 4),
                match="index 5 is out of bounds for dimension 1 with size 4")
    check_error(lambda lib, X: X.gather(1, lib.tensor([0])), rand(3, 4), match="same number of dimensions")
    check_error(lambda lib, X: X.masked_select(lib.tensor([1, 0, 1, 1])), rand(3, 4),
                match="expected BoolTensor")


@pytest.mark.parametrize("fn", [
    lambda lib, x: x[0], lambda lib, x: x[1:], lambda lib, x: x[[0, 0, 1]], lambda lib, x: x[x > 0],
    lambda lib, x: x.index_select(0, lib.tensor([0, 0])),
    lambda lib, x: x.gather(1, lib.tensor([[0], [1], [1]])),
    lambda lib, x: x.masked_select(x > 0), lambda lib, x: x[:, 1:3][0],
])
def test_index_second_derivative(fn):
    def g2(lib, x):
        y = fn(lib, x)
        (g,) = lib.autograd.grad((y * y * y).sum(), x, create_graph=True)
        return g

    check_parity(g2, rand(3, 4))


def test_setitem_on_views_rebases_base():
    def fn(lib, w, v):
        y = w * 2
        yv = y[0]
        yv[1] = v[0] * 3
        y2 = y[1:]
        y2[:, 1:3] = v[:2]
        return y * y

    check_parity(fn, rand(3, 4), rand(4))

    def fn2(lib, w, v):
        buf = lib.zeros(3, 4, dtype=w.dtype)
        row = buf[1]
        row[:] = v * w[0]
        return buf, row

    check_parity(fn2, rand(3, 4), rand(4))


@pytest.mark.parametrize("expr", [
    lambda y: y[0].__iadd__(1.0), lambda y: y.__setitem__(0, y[0].__iadd__(1.0)),
    lambda y: y.__setitem__((slice(None), 1), y[:, 1].__imul__(2.0)),
])
def test_augmented_setitem(expr):
    def fn(lib, w):
        y = w * 1
        expr(y)
        return y * y

    check_parity(fn, rand(3, 4))


def test_setitem_advanced_out_of_range():
    check_error(lambda lib, w: (w * 1).__setitem__([5], 1.0), rand(3, 4), match="out of bounds")
    check_error(lambda lib, w: (w * 1).__setitem__((0, [0, 4]), 1.0), rand(3, 4), match="out of bounds")


@pytest.mark.parametrize("fn", [
    lambda lib, s: s[None], lambda lib, s: s[...], lambda lib, s: s[True], lambda lib, s: s[False],
    lambda lib, s: s[s > 0], lambda lib, s: s[None, ..., None],
    lambda lib, s: s.index_select(0, lib.tensor([0])),
    lambda lib, s: s.index_select(0, lib.tensor(0)),
])
def test_0d_indexing(fn):
    check_parity(fn, rand(positive=True))


def test_0d_indexing_errors():
    check_error(lambda lib, s: s[:], rand(), match="slice\\(\\) cannot be applied to a 0-dim tensor")
    check_error(lambda lib, s: s[0, 0], rand(), match="too many indices|invalid index")


@pytest.mark.parametrize("fn", [
    lambda lib, x: x[1], lambda lib, x: x[:, [0, 0]], lambda lib, x: x[x > 2],
    lambda lib, x: x[[True, False, True]],
    lambda lib, x: x.gather(1, lib.tensor([[0], [1], [2]])),
    lambda lib, x: x.index_select(1, lib.tensor([3, 0])),
])
def test_integer_tensors(fn):
    check_parity(fn, np.arange(12).reshape(3, 4))


def test_integer_tensor_setitem():
    def fn(lib, x):
        x[0] = 7
        x[[1, 2], [0, 0]] = lib.tensor([5, 6])
        x[x > 9] = 0
        return x

    check_parity(fn, np.arange(12).reshape(3, 4))


def test_more_index_errors():
    check_error(lambda lib, X: X[[0, 1], [1, 2, 3]], rand(3, 4),
                match="shape mismatch: indexing tensors could not be broadcast together")
    check_error(lambda lib, X: X.gather(0, lib.zeros(2, 4)), rand(3, 4), match="Expected dtype int32/int64")
    check_error(lambda lib, X: X.gather(0, lib.zeros(2, 5, dtype=lib.int64)), rand(3, 4),
                match="Size does not match at dimension 1")
    check_error(lambda lib, X: X.gather(1, lib.tensor([[-1]])), rand(3, 4), match="index -1 is out of bounds")
    check_error(lambda lib, X: X.scatter(1, lib.tensor([[5]]), 1.0), rand(3, 4), match="index 5 is out of "
                                                                                       "bounds")
    check_error(lambda lib, X: X.index_select(0, lib.tensor([[0]])), rand(3, 4), match="supposed to be a "
                                                                                       "vector")
    check_error(lambda lib, X: lib.take_along_dim(X, lib.tensor([0]), 1), rand(3, 4),
                match="same number of dimensions")
    check_error(lambda lib, X: X.__setitem__(1.5, 1.0), rand(3, 4), grad=False, match="only integers, slices")


def test_written_view_and_base_after_setitem():
    def fn(lib, w, v):
        y = w * 2
        a = y[0]
        a[2] = v[1]
        return a * 2, y

    check_parity(fn, rand(3, 4), rand(4))


def test_views_made_before_setitem_are_regenerated():
    def fn(lib, w, v):
        y = w * 2
        row = y[0]
        y[0, 1] = v[0]
        return row * 3, y

    check_parity(fn, rand(3, 4), rand(4))

    def fn2(lib, w, v):
        y = w * 2
        a, b = y[0], y[1]
        a[2] = v[1]  # rewrites y; b was made before
        return b + 1, a * 2, y

    check_parity(fn2, rand(3, 4), rand(4))


@pytest.mark.parametrize("fn", [
    lambda lib, x, s: x.scatter_add(0, lib.tensor([[0, 1, 2, 0], [0, 0, 0, 0]]), s),
    lambda lib, x, s: lib.scatter_add(x, 1, lib.tensor([[3, 3, 3, 3], [0, 1, 1, 0]]), s),
    lambda lib, x, s: lib.scatter_add(x.detach(), 1, lib.tensor([[3, 3, 3, 3], [0, 1, 1, 0]]), s * 2),
])
def test_scatter_add(fn):
    check_parity(fn, rand(3, 4), rand(2, 4))

    def g2(lib, x, s):
        y = fn(lib, x, s)
        return lib.autograd.grad((y * y * y).sum(), s, create_graph=True)[0]

    check_parity(g2, rand(3, 4), rand(2, 4))


def test_scatter_dtype_errors():
    check_error(lambda lib, x: x.scatter_add(0, lib.tensor([0]), lib.ones(1, dtype=lib.float64)),
                rand(3, dtype=np.float32), match="Expected self.dtype to be equal to src.dtype")
    check_error(lambda lib, x: x.scatter(0, lib.tensor([0]), lib.ones(1, dtype=lib.float64)),
                rand(3, dtype=np.float32), match="Expected self.dtype to be equal to src.dtype")


@pytest.mark.parametrize("fn", [
    lambda lib, x, s: x.index_add(0, lib.tensor([0, 0]), s),
    lambda lib, x, s: lib.index_add(x, 0, lib.tensor([2, 0]), s),
    lambda lib, x, s: x.index_add(0, lib.tensor([1, 1]), s, alpha=0.5),
    lambda lib, x, s: x.detach().index_add(0, lib.tensor([1, 2]), s * 2),
])
def test_index_add(fn):
    check_parity(fn, rand(3, 4), rand(2, 4))

    def g2(lib, x, s):
        y = fn(lib, x, s)
        return lib.autograd.grad((y * y * y).sum(), s, create_graph=True)[0]

    check_parity(g2, rand(3, 4), rand(2, 4))


def test_index_add_errors():
    check_error(lambda lib, x: x.index_add(0, lib.tensor([5]), lib.ones(1, 4, dtype=x.dtype)), rand(3, 4),
                match="index 5 is out of bounds for dimension 0 with size 3")
    check_error(lambda lib, x: x.index_add(0, lib.tensor([0]), lib.ones(2, 4, dtype=x.dtype)), rand(3, 4),
                match="Number of indices \\(1\\) should be equal to source.size\\(dim\\)")
