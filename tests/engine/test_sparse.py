"""Parity of ``torch.diag`` (gradlens/engine/ops/diag_ops.py) and of sparse COO tensors
(gradlens/engine/ops/sparse_ops.py, gradlens/engine/sparse.py) against torch: values, layouts, indices and
values after coalesce, gradients (float64, incl. finite differences and create_graph), node names, error
types and messages."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import gradlens.engine as ge
from tests.parity import HAS_TORCH, check_error, check_parity, rand

F64, F32 = np.float64, np.float32

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


@pytest.fixture(autouse=True)
def _quiet_torch_sparse_warnings():
    """torch warns that sparse invariant checks are off and that CSR is beta; neither is under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _finite_difference_check(fn, x: np.ndarray, eps: float = 1e-6) -> None:
    """The native float64 gradient of ``fn(x).sum()`` against central differences (as gradcheck)."""
    t = ge.tensor(x, requires_grad=True)
    fn(t).sum().backward()
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (fn(ge.tensor(up)).sum().item() - fn(ge.tensor(down)).sum().item()) / (2 * eps)
    np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


def _sparse_np(shape, density=0.4, dtype=F64, seed=0) -> np.ndarray:
    """A dense array with roughly ``density`` of its entries nonzero (the rest exactly 0)."""
    rng = np.random.default_rng(seed)
    arr = rng.uniform(-2, 2, size=shape)
    arr[rng.uniform(size=shape) > density] = 0
    return arr.astype(dtype)


def _sp(lib, arr: np.ndarray):
    return lib.tensor(arr).to_sparse()


# --- torch.diag ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("diagonal", [0, 1, -2, 4])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_diag_of_a_vector_and_of_a_matrix(diagonal, dtype):
    check_parity(lambda lib, v: lib.diag(v, diagonal) * 2, rand(3, dtype=dtype))
    check_parity(lambda lib, v: v.diag(diagonal=diagonal), rand(3, dtype=dtype))
    check_parity(lambda lib, m: lib.diag(m, diagonal) * 2, rand(3, 4, dtype=dtype))
    check_parity(lambda lib, m: m.diag(diagonal), rand(4, 2, dtype=dtype))


def test_diag_names_empty_and_integer_inputs():
    check_parity(lambda lib, v: lib.diag(v), rand(0))
    check_parity(lambda lib, m: lib.diag(m, 1), rand(0, 3))
    check_parity(lambda lib, m: lib.diag(m, -7), rand(3, 4))  # beyond the matrix: an empty diagonal
    check_parity(lambda lib, v: lib.diag(v, 1), np.array([1, 2, 3], dtype=np.int64))
    check_parity(lambda lib, m: lib.diag(m), np.arange(6, dtype=np.int64).reshape(2, 3))
    assert ge.diag(ge.ones(2, requires_grad=True)).grad_fn.name() == "DiagEmbedBackward0"
    assert ge.diag(ge.ones(2, 2, requires_grad=True)).grad_fn.name() == "DiagonalBackward0_copy"


def test_diag_finite_differences_create_graph_and_errors():
    _finite_difference_check(lambda t: ge.diag(t, 1) ** 2, rand(4, dtype=F64))
    _finite_difference_check(lambda t: ge.diag(t, -1) ** 3, rand(3, 4, dtype=F64))

    def second(lib, x):
        (g,) = lib.autograd.grad((lib.diag(x, 1) ** 3).sum(), x, create_graph=True)
        return g

    check_parity(second, rand(3, 4), graph=False)
    check_parity(lambda lib, v: lib.autograd.grad((lib.diag(v, -1) ** 3).sum(), v, create_graph=True)[0],
                 rand(3), graph=False)
    check_error(lambda lib, x: lib.diag(x), rand(2, 2, 2), match=r"diag\(\): Supports 1D or 2D tensors. Got 3D")
    check_error(lambda lib, x: lib.diag(x), np.array(1.0), match=r"Supports 1D or 2D tensors. Got 0D")
    check_error(lambda lib: lib.diag([1.0, 2.0]), match="must be Tensor")


# --- construction and structure --------------------------------------------------------------------------------
def _structure(s) -> dict:
    """What a sparse tensor is, in engine-neutral plain data."""
    out = dict(layout=repr(s.layout), is_sparse=s.is_sparse, shape=tuple(s.shape), dtype=repr(s.dtype).split(".")[-1],
               coalesced=s.is_coalesced(), nnz=s._nnz(), sparse_dim=s.sparse_dim(), dense_dim=s.dense_dim(),
               _indices=s._indices().tolist(), _values=s._values().tolist(), dense=s.to_dense().tolist(),
               repr=repr(s), requires_grad=s.requires_grad, numel=s.numel(), dim=s.dim(), len=len(s))
    if s.is_coalesced():
        out.update(indices=s.indices().tolist(), values=s.values().tolist())
    return out


def _same_structure(fn, exact: bool = True) -> None:
    """Both engines build the same sparse tensor; ``exact=False``: float values to float32 tolerance (sums
    in another order), repr not compared."""
    import torch

    native, ref = _structure(fn(ge)), _structure(fn(torch))
    if not exact:
        for key in ("_values", "values", "dense", "repr"):
            a, b = native.pop(key, None), ref.pop(key, None)
            if key != "repr" and a is not None:
                np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-6)
    assert native == ref


@needs_torch
@pytest.mark.parametrize("dtype", [F64, F32, np.int64])
def test_to_sparse_structure_and_repr(dtype):
    arr = _sparse_np((4, 5), dtype=F64) * 3
    arr = arr.astype(dtype)
    _same_structure(lambda lib: _sp(lib, arr))
    _same_structure(lambda lib: lib.diag(lib.tensor(np.array([1.0, 0.0, 3.0], dtype=dtype))).to_sparse())
    _same_structure(lambda lib: _sp(lib, np.zeros((3, 2), dtype=dtype)))
    _same_structure(lambda lib: _sp(lib, _sparse_np((2, 3, 4), dtype=dtype)))
    _same_structure(lambda lib: _sp(lib, np.array([0.0, 2.0, 0.0, 5.0], dtype=dtype)))
    # the layouts
    assert repr(ge.strided) == "torch.strided" and repr(ge.sparse_coo) == "torch.sparse_coo"
    assert ge.ones(2).layout is ge.strided and not ge.ones(2).is_sparse
    assert _sp(ge, arr).layout is ge.sparse_coo


@needs_torch
def test_sparse_coo_tensor_uncoalesced_duplicates_and_dtype():
    idx = np.array([[0, 1, 1, 0, 1], [2, 0, 2, 2, 2]])
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3), dtype=lib.int64))
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor([1.0, 2, 3, 4, 5]), (2, 4)))
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)).coalesce())
    _same_structure(lambda lib: lib.sparse_coo_tensor(idx.tolist(), [1.0, 2, 3, 4, 5]))  # size inferred
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor([[0, 1]]), lib.tensor([1, 2]), (3,)))
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.zeros(2, 0, dtype=lib.int64), lib.zeros(0), (3, 3)))
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5, dtype=lib.float64), (2, 3)).t())
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)).coalesce().t())
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)) * 2)
    _same_structure(lambda lib: -lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)))
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)).to(lib.float64))
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)).double().detach())
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (2, 3)).to("cpu").clone())


def test_sparse_construction_errors():
    idx = np.array([[0, 1, 1], [2, 0, 2]])
    check_error(lambda lib, i: lib.sparse_coo_tensor(i, lib.ones(3), (2, 3)).indices(), idx,
                match=r"Cannot get indices on an uncoalesced tensor, please call \.coalesce\(\) first")
    check_error(lambda lib, i: lib.sparse_coo_tensor(i, lib.ones(3), (2, 3)).values(), idx,
                match=r"Cannot get values on an uncoalesced tensor")
    check_error(lambda lib, i: lib.sparse_coo_tensor(i, lib.ones(4), (2, 3)), idx,
                match="indices and values must have same nnz, but got nnz from indices: 3, nnz from values: 4")
    check_error(lambda lib, i: lib.sparse_coo_tensor(i[0], lib.ones(3)), idx,
                match=r"indices must be sparse_dim x nnz, but got: \[3\]")
    check_error(lambda lib, i: lib.sparse_coo_tensor(i[:1], lib.ones(3), (2, 3)), idx,
                match=r"'len\(size\) == sparse_dim \+ dense_dim' is not satisfied: len\(size\) = 2, sparse_dim = 1")
    check_error(lambda lib, i: lib.sparse_coo_tensor(i, lib.ones(3), (2, 3)).to("cuda"), idx, match="CUDA")


# --- matrix products -------------------------------------------------------------------------------------------
_S = _sparse_np((5, 4), seed=1)


@pytest.mark.parametrize("form", ["mm", "spmm", "matmul", "at", "method", "sparse.mm"])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_sparse_times_dense_is_dense_with_the_dense_gradient(form, dtype):
    calls = {"mm": lambda lib, s, d: lib.mm(s, d), "spmm": lambda lib, s, d: lib.spmm(s, d),
             "matmul": lambda lib, s, d: lib.matmul(s, d), "at": lambda lib, s, d: s @ d,
             "method": lambda lib, s, d: s.mm(d), "sparse.mm": lambda lib, s, d: lib.sparse.mm(s, d)}
    call = calls[form]

    def fn(lib, d):
        out = call(lib, _sp(lib, _S.astype(dtype)), d)
        assert out.layout is lib.strided
        return out

    check_parity(fn, rand(4, 3, dtype=dtype))
    check_parity(lambda lib, d: call(lib, _sp(lib, _S.astype(dtype)), d) * 2, rand(4, 0, dtype=dtype))


@pytest.mark.parametrize("dtype", [F64, F32])
def test_dense_times_sparse_and_sparse_times_vector(dtype):
    def fn(lib, d):
        out = d.t() @ _sp(lib, _S.astype(dtype))
        assert out.layout is lib.strided
        return out

    check_parity(fn, rand(5, 3, dtype=dtype))
    check_parity(lambda lib, d: lib.mm(d, _sp(lib, _S.astype(dtype))), rand(2, 5, dtype=dtype))
    assert ge.mm(ge.ones(2, 5, dtype=ge.float64), _sp(ge, _S)).is_contiguous()
    check_parity(lambda lib, v: _sp(lib, _S.astype(dtype)) @ v, rand(4, dtype=dtype))
    check_parity(lambda lib, d: lib.sparse.mm(d, _sp(lib, _S.astype(dtype))), rand(2, 5, dtype=dtype))
    check_parity(lambda lib, d: d.matmul(_sp(lib, _S.astype(dtype))), rand(2, 5, dtype=dtype))
    # an uncoalesced operand (duplicates summed) gives the same product
    idx = np.array([[0, 2, 0, 1], [1, 0, 1, 1]])
    check_parity(lambda lib, d: lib.mm(lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor([1.0, 2, 3, 4]),
                                                             (3, 2), dtype=d.dtype), d), rand(2, 4, dtype=dtype))


@needs_torch
def test_sparse_times_sparse_is_sparse():
    b = _sparse_np((4, 6), seed=2)
    _same_structure(lambda lib: _sp(lib, _S) @ _sp(lib, b))
    _same_structure(lambda lib: lib.mm(_sp(lib, _S), _sp(lib, np.zeros((4, 2)))))
    idx = np.array([[0, 1, 1, 0], [2, 0, 2, 2]])
    _same_structure(lambda lib: lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(4), (2, 3))
                    @ lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(4), (2, 3)).t())


def test_spmm_finite_differences_and_create_graph():
    _finite_difference_check(lambda t: ge.spmm(_sp(ge, _S), t) ** 2, rand(4, 3, dtype=F64))
    _finite_difference_check(lambda t: (t @ _sp(ge, _S)) ** 2, rand(2, 5, dtype=F64))

    def second(lib, d):
        (g,) = lib.autograd.grad((lib.spmm(_sp(lib, _S), d) ** 3).sum(), d, create_graph=True)
        return g

    check_parity(second, rand(4, 3), graph=False)
    check_parity(lambda lib, d: lib.autograd.grad(((d @ _sp(lib, _S)) ** 3).sum(), d, create_graph=True)[0],
                 rand(2, 5), graph=False)


def test_matrix_product_errors():
    check_error(lambda lib, d: lib.mm(_sp(lib, _S), d), rand(2, 2), match="Expected dim 0 size 4, got 2")
    check_error(lambda lib, d: lib.mm(_sp(lib, _S), d), rand(4, 2, dtype=F32),
                match="expected scalar type Double but found Float")


# --- addition ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [F64, F32])
def test_dense_plus_sparse_is_dense(dtype):
    def fn(lib, d):
        out = d + _sp(lib, _S.astype(dtype))
        assert out.layout is lib.strided
        return out

    check_parity(fn, rand(5, 4, dtype=dtype))
    check_parity(lambda lib, d: lib.add(d, _sp(lib, _S.astype(dtype)), alpha=2), rand(5, 4, dtype=dtype))
    check_parity(lambda lib, d: d.add(_sp(lib, _S.astype(dtype))) * 3, rand(5, 4, dtype=dtype))
    # the gcn example's self-loops: eye (float32) + an int64 adjacency with duplicate edges
    idx = np.array([[0, 1, 1, 2, 1], [2, 0, 2, 2, 2]])
    check_parity(lambda lib: lib.eye(3) + lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (3, 3),
                                                                 dtype=lib.int64))
    check_parity(lambda lib, d: d + lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(5), (3, 3), dtype=lib.float64),
                 rand(3, 3, dtype=F32))


@needs_torch
def test_sparse_plus_sparse_is_sparse():
    b = _sparse_np((5, 4), seed=3)
    _same_structure(lambda lib: _sp(lib, _S) + _sp(lib, b))
    _same_structure(lambda lib: _sp(lib, _S) + _sp(lib, b) * 0.5)
    # uncoalesced operands: which entries torch keeps is its implementation's choice; the tensor is the same
    import torch

    idx, idx2 = np.array([[0, 1, 1, 0], [2, 0, 2, 2]]), np.array([[1, 1, 0], [0, 2, 1]])
    for lib in (ge, torch):
        r = (lib.sparse_coo_tensor(lib.tensor(idx), lib.ones(4), (2, 3))
             + lib.sparse_coo_tensor(lib.tensor(idx2), lib.ones(3), (2, 3)))
        assert r.layout is lib.sparse_coo and not r.is_coalesced()
        assert r.to_dense().tolist() == [[0.0, 1.0, 2.0], [2.0, 0.0, 2.0]]


def test_addition_errors():
    check_error(lambda lib, d: _sp(lib, _S) + d, rand(5, 4),
                match=r"add\(sparse, dense\) is not supported. Use add\(dense, sparse\) instead.")
    check_error(lambda lib, d: d + _sp(lib, _S), rand(4, 4),
                match="dense-sparse addition does not currently support broadcasting")
    check_error(lambda lib: _sp(lib, _S) + _sp(lib, np.ones((2, 2))),
                match=r"add: expected sizes of 'self' and 'other' to match, but \[5, 4\] != \[2, 2\]")


# --- sums --------------------------------------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("dtype", [F64, F32, np.int64])
def test_sum_of_sparse(dtype):
    import torch

    arr = (_sparse_np((5, 4, 3), seed=4) * 3).astype(dtype)
    for kwargs in (dict(dim=1), dict(dim=-1), dict(dim=0, keepdim=True), dict(dim=(0, 2))):
        _same_structure(lambda lib, kw=kwargs: lib.sum(_sp(lib, arr), **kw), exact=dtype == np.int64)
        _same_structure(lambda lib, kw=kwargs: _sp(lib, arr).sum(**kw), exact=dtype == np.int64)
    _same_structure(lambda lib: lib.sparse.sum(_sp(lib, arr), dim=1), exact=dtype == np.int64)
    uncoalesced = np.array([[0, 1, 1, 0], [2, 0, 2, 2]])
    for kwargs in (dict(dim=1), dict(dim=0, keepdim=True)):
        _same_structure(lambda lib, kw=kwargs: lib.sparse_coo_tensor(lib.tensor(uncoalesced), lib.ones(4), (2, 3),
                                                                     dtype=lib.int64).sum(**kw))
    check_error(lambda lib: lib.sparse.sum(lib.ones(2)), match="expected sparse coordinate tensor layout")
    for fn in (lambda lib: lib.sum(_sp(lib, arr)), lambda lib: _sp(lib, arr).sum(dim=(0, 1, 2)),
               lambda lib: _sp(lib, arr).sum(dtype=lib.float64)):
        a, b = fn(torch), fn(ge)
        assert b.layout is ge.strided and b.shape == () and repr(b.dtype) == str(a.dtype)
        np.testing.assert_allclose(b.item(), a.item(), rtol=1e-6)
    check_error(lambda lib: _sp(lib, arr).sum(dim=3), match=r"Dimension out of range \(expected to be in range of "
                r"\[-3, 2\], but got 3\)")


# --- what stays unsupported raises torch's error type ------------------------------------------------------------
@pytest.mark.parametrize("call", [lambda s: s.exp(), lambda s: s.view(20), lambda s: s == 1, lambda s: s.mean(),
                                  lambda s: 1 / s, lambda s: s.log()])
def test_dense_ops_on_a_sparse_tensor_raise_not_implemented(call):
    check_error(lambda lib: call(_sp(lib, _S)), match="SparseCPU")


def test_sparse_refusals_and_scalar_conversions():
    check_error(lambda lib: _sp(lib, _S).numpy(), match="can't convert Sparse layout tensor to numpy")
    check_error(lambda lib: _sp(lib, _S).item(), match="a Tensor with 20 elements cannot be converted to Scalar")
    check_error(lambda lib: float(_sp(lib, _S)), match="only one element tensors")
    check_error(lambda lib: _sp(lib, _S).data_ptr(), match="doesn't have storage")
    # this engine has no sparse gradients: it says so rather than dropping them
    with pytest.raises(NotImplementedError, match="require grad"):
        _sp(ge, _S).requires_grad_()
    with pytest.raises(NotImplementedError, match="require grad"):
        ge.tensor(_S, requires_grad=True).to_sparse()
    with pytest.raises(NotImplementedError, match="require grad"):
        ge.sparse_coo_tensor([[0]], ge.ones(1, requires_grad=True), (2,))
    with ge.no_grad():
        assert ge.tensor(_S, requires_grad=True).to_sparse()._nnz() == int((_S != 0).sum())
    s = _sp(ge, _S)
    again = pickle.loads(pickle.dumps(s))
    assert again.layout is ge.sparse_coo and again.to_dense().tolist() == s.to_dense().tolist()
    assert ge.ones(2).to_dense().layout is ge.strided


# --- the gcn example's computation, with the same data and weights on both engines -------------------------------
def _gcn_loss(lib, feats, w1, w2, adj_idx, n, labels, train):
    feats = feats.detach()
    scale = 1 / lib.sum(feats, dim=1)
    scale[scale == float("inf")] = 0
    feats = lib.diag(scale).to_sparse() @ feats
    adj = lib.sparse_coo_tensor(lib.tensor(adj_idx), lib.ones(adj_idx.shape[1]), (n, n), dtype=lib.int64)
    adj = lib.eye(n, dtype=feats.dtype) + adj
    deg = lib.sqrt(1 / lib.sum(adj, dim=1))
    deg[deg == float("inf")] = 0
    deg = lib.diag(deg).to_sparse()
    adj = (deg @ adj @ deg).to_sparse()
    x = lib.spmm(adj, lib.mm(feats.to_sparse(), w1))
    x = lib.nn.functional.relu(x)
    x = lib.spmm(adj, lib.mm(x, w2))
    out = lib.nn.functional.log_softmax(x, dim=1)
    return lib.nn.functional.nll_loss(out[lib.tensor(train)], lib.tensor(labels)[lib.tensor(train)])


@pytest.mark.parametrize("dtype", [F32, F64])
def test_gcn_forward_and_backward_match_torch(dtype):
    rng = np.random.default_rng(5)
    n, f = 30, 8
    feats = rng.integers(0, 2, size=(n, f)).astype(dtype)
    feats[3] = 0  # a node without features: the inf -> 0 path
    adj_idx = rng.integers(0, n, size=(2, 60))
    labels = rng.integers(0, 3, size=n)
    train = np.arange(0, n, 2)
    check_parity(lambda lib, x, w1, w2: _gcn_loss(lib, x, w1, w2, adj_idx, n, labels, train),
                 feats, rng.normal(size=(f, 6)).astype(dtype), rng.normal(size=(6, 3)).astype(dtype))


@needs_torch
@pytest.mark.parametrize("make", [
    lambda lib: lib.zeros(2, 3, layout=lib.sparse_coo),
    lambda lib: lib.empty(4, layout=lib.sparse_coo, dtype=lib.float64),
    lambda lib: lib.zeros(2, 2, layout=lib.strided),
], ids=["zeros-sparse", "empty-sparse-f64", "zeros-strided"])
def test_factories_honour_layout(make):
    import torch

    t, g = make(torch), make(ge)
    assert repr(g) == repr(t) and g.layout is (ge.sparse_coo if t.is_sparse else ge.strided)


def test_ones_refuses_a_sparse_layout_and_a_non_layout():
    check_error(lambda lib: lib.ones(2, layout=lib.sparse_coo), match=r"full\(\.\.\.\) is not implemented for sparse")
    check_error(lambda lib: lib.zeros(2, layout=5), match="argument 'layout' must be torch.layout, not int")
