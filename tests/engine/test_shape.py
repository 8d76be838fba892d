"""Parity of shape and view ops (reshape/view, squeeze, permute, expand, cat/stack, split, flip, ...) and of
view semantics (shared memory, shared version counter, in-place on views of leaves)."""

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, rand


# --- reshape / view -----------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.reshape(12), lambda lib, x: x.reshape(4, -1), lambda lib, x: lib.reshape(x, (2, 2, 3)),
    lambda lib, x: x.view(2, 6), lambda lib, x: x.view(-1), lambda lib, x: x.view((6, 2)),
    lambda lib, x: x.view([12]),
    lambda lib, x: x.view(x.shape), lambda lib, x: x.view_as(lib.zeros(2, 6)),
    lambda lib, x: x.reshape_as(lib.zeros(6, 2)), lambda lib, x: x.t().reshape(12),
    lambda lib, x: x.t().reshape(4, 3),
    lambda lib, x: x.t().view(4, 3), lambda lib, x: x.flatten(), lambda lib, x: lib.flatten(x),
    lambda lib, x: x.t().flatten(), lambda lib, x: x.unflatten(1, (2, 2)),
    lambda lib, x: lib.unflatten(x, -1, (-1, 2)),
    lambda lib, x: x.ravel(), lambda lib, x: x.t().ravel(), lambda lib, x: lib.ravel(x),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reshape_family(expr, dtype):
    check_parity(expr, rand(3, 4, dtype=dtype))


@pytest.mark.parametrize("shape,args", [((2, 3, 4), (1,)), ((2, 3, 4), (0, 1)), ((2, 3, 4), (-2, -1)),
                                        ((2, 3, 4), (1, 1)), ((5,), ()), ((), ()), ((0, 3), ()),
                                        ((2, 0, 3), (1,))])
def test_flatten(shape, args):
    check_parity(lambda lib, x: x.flatten(*args), rand(*shape))


@pytest.mark.parametrize("shape,new", [((), (1,)), ((), ()), ((1,), ()), ((0, 3), (3, 0)), ((0, 3), (-1, 3)),
                                       ((2, 3), (3, 1, 2))])
def test_reshape_edge_shapes(shape, new):
    check_parity(lambda lib, x: x.reshape(new), rand(*shape))
    check_parity(lambda lib, x: x.view(new) * 2, rand(*shape))


def test_view_errors():
    check_error(lambda lib, x: x.view(7), rand(3, 4), match=r"shape '\[7\]' is invalid for input of size 12")
    check_error(lambda lib, x: x.view(5, -1), rand(3, 4),
                match=r"shape '\[5, -1\]' is invalid for input of size 12")
    check_error(lambda lib, x: x.reshape(-1, -1), rand(3, 4), match="only one dimension can be inferred")
    check_error(lambda lib, x: x.t().view(12), rand(3, 4), match="view size is not compatible")
    check_error(lambda lib, x: x.view(0, -1), rand(0, 3), match="ambiguous")
    check_error(lambda lib, x: x.flatten(1, 0), rand(2, 3), match="start_dim cannot come after end_dim")
    check_error(lambda lib, x: x.unflatten(1, (3, 2)), rand(3, 4), match="don't multiply up")


# --- squeeze / unsqueeze ------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.squeeze(), lambda lib, x: x.squeeze(0), lambda lib, x: x.squeeze(1),
    lambda lib, x: x.squeeze(-1),
    lambda lib, x: x.squeeze((0, 2)), lambda lib, x: lib.squeeze(x, 2), lambda lib, x: lib.squeeze(x),
    lambda lib, x: x.unsqueeze(0), lambda lib, x: x.unsqueeze(-1), lambda lib, x: lib.unsqueeze(x, 2),
    lambda lib, x: x.unsqueeze(1).squeeze(1),
])
def test_squeeze_unsqueeze(expr):
    check_parity(expr, rand(1, 3, 1))


def test_squeeze_0d_and_errors():
    check_parity(lambda lib, x: x.squeeze(), rand())
    check_parity(lambda lib, x: x.squeeze(0), rand())
    check_parity(lambda lib, x: x.unsqueeze(0), rand())
    check_parity(lambda lib, x: x.unsqueeze(-1), rand())
    check_parity(lambda lib, x: x.squeeze(), rand(0, 1))
    check_error(lambda lib, x: x.squeeze(2), rand(3, 4), match="Dimension out of range")
    check_error(lambda lib, x: x.unsqueeze(3), rand(3, 4), match="Dimension out of range")


# --- permute / transpose ------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.permute(2, 0, 1), lambda lib, x: x.permute((1, 2, 0)),
    lambda lib, x: lib.permute(x, (2, 1, 0)),
    lambda lib, x: x.permute(-1, 0, 1), lambda lib, x: x.transpose(0, 2),
    lambda lib, x: lib.transpose(x, -1, 1),
    lambda lib, x: x.swapaxes(0, 1), lambda lib, x: lib.swapaxes(x, 1, 2), lambda lib, x: x.swapdims(0, -1),
    lambda lib, x: x.mT, lambda lib, x: x.movedim(0, 2), lambda lib, x: lib.movedim(x, (0, 1), (2, 0)),
    lambda lib, x: x.moveaxis(-1, 0), lambda lib, x: x.transpose(0, 1).reshape(-1),
])
def test_permute_transpose(expr):
    check_parity(expr, rand(2, 3, 4))


@pytest.mark.parametrize("shape", [(3, 4), (4,), ()])
def test_t(shape):
    check_parity(lambda lib, x: x.t(), rand(*shape))
    check_parity(lambda lib, x: lib.t(x), rand(*shape))


def test_T_and_mT():
    check_parity(lambda lib, x: x.T, rand(3, 4))
    check_parity(lambda lib, x: x.mT, rand(3, 4))
    check_parity(lambda lib, x: x.mH, rand(2, 3, 4))
    check_parity(lambda lib, x: x.H, rand(3, 4))
    with pytest.warns(UserWarning, match="x.T"):
        assert ge.zeros(2, 3, 4).T.shape == (4, 3, 2)


def test_transpose_errors():
    check_error(lambda lib, x: x.t(), rand(2, 3, 4), match="t\\(\\) expects a tensor with <= 2 dimensions")
    check_error(lambda lib, x: x.mT, rand(3), match="tensor.mT is only supported")
    check_error(lambda lib, x: x.permute(0, 0), rand(3, 4), match="duplicate dims")
    check_error(lambda lib, x: x.permute(0), rand(3, 4), match="number of dimensions")
    check_error(lambda lib, x: x.transpose(0, 2), rand(3, 4), match="Dimension out of range")


# --- expand / repeat ----------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.expand(3, 4), lambda lib, x: x.expand(2, 3, -1), lambda lib, x: x.expand(-1, 4),
    lambda lib, x: x.expand((2, 3, 4)), lambda lib, x: x.expand_as(lib.zeros(5, 3, 4)),
    lambda lib, x: lib.broadcast_to(x, (2, 3, 4)), lambda lib, x: x.broadcast_to((3, 4)),
    lambda lib, x: x.repeat(2, 1), lambda lib, x: x.repeat(2, 3, 2), lambda lib, x: x.repeat(1, 1),
    lambda lib, x: x.repeat(0, 2),
])
def test_expand_repeat(expr):
    check_parity(expr, rand(3, 1))


def test_expand_0d_and_errors():
    check_parity(lambda lib, x: x.expand(3, 2), rand())
    check_parity(lambda lib, x: x.expand(0, 3), rand(1, 3))
    check_error(lambda lib, x: x.expand(2, 3), rand(3, 4), match="must match the existing size")
    check_error(lambda lib, x: x.expand(3), rand(3, 4), match="number of sizes provided")
    check_error(lambda lib, x: x.expand(-1, -1, -1), rand(3, 4), match="leading, non-existing dimension")
    check_error(lambda lib, x: x.repeat(2), rand(3, 4), match="can not be smaller")


# --- clone / contiguous -------------------------------------------------------------------------------
def test_clone_contiguous():
    check_parity(lambda lib, x: x.clone(), rand(3, 4))
    check_parity(lambda lib, x: lib.clone(x), rand(3, 4))
    check_parity(lambda lib, x: x.t().contiguous(), rand(3, 4))
    x = ge.randn(3, 4, requires_grad=True)
    assert x.contiguous() is x
    y = x.t()
    assert not y.is_contiguous() and y.contiguous().is_contiguous()
    c = x.clone()
    assert c._base is None and not np.shares_memory(c._data, x._data)


# --- cat / stack --------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x, y: lib.cat([x, y]), lambda lib, x, y: lib.cat((x, y, x), dim=0),
    lambda lib, x, y: lib.concat([x, x], 1), lambda lib, x, y: lib.concatenate([x, x], axis=-1),
    lambda lib, x, y: lib.cat([x, y.detach()]), lambda lib, x, y: lib.cat([x]),
    lambda lib, x, y: lib.stack([x, x]), lambda lib, x, y: lib.stack([x, x * 2], dim=1),
    lambda lib, x, y: lib.stack([x, x], -1), lambda lib, x, y: lib.stack((x[0], y[0])),
    lambda lib, x, y: lib.hstack([x, x]), lambda lib, x, y: lib.vstack([x, y]),
    lambda lib, x, y: lib.vstack([x[0], y[1]]), lambda lib, x, y: lib.hstack([x[0], y[1]]),
])
def test_cat_stack(expr):
    check_parity(expr, rand(3, 4), rand(2, 4))


def test_cat_zero_size_and_dtypes():
    check_parity(lambda lib, x, y: lib.cat([x, y]), rand(0, 4), rand(2, 4))
    check_parity(lambda lib, x, y: lib.cat([x, y]), rand(3, 4), rand(0))  # legacy 1-D empty input
    check_parity(lambda lib, x, y: lib.cat([x, y], 1), rand(2, 0), rand(2, 3))
    check_parity(lambda lib, x, y: lib.cat([x, y]), rand(2, dtype=np.float32), rand(3, dtype=np.float64))
    check_parity(lambda lib, x, y: lib.stack([x, y]), rand(2, dtype=np.float32), rand(2, dtype=np.float32))
    check_parity(lambda lib, x, y: lib.stack([x, y]), rand(), rand())


def test_cat_stack_errors():
    check_error(lambda lib, x, y: lib.cat([x, y]), rand(3, 4), rand(2, 3),
                match="Sizes of tensors must match")
    check_error(lambda lib: lib.cat([]), match="non-empty")
    check_error(lambda lib, x: lib.cat([x, x], dim=2), rand(3, 4), match="Dimension out of range")
    check_error(lambda lib, x, y: lib.stack([x, y]), rand(3, 4), rand(3, 3),
                match="stack expects each tensor")
    check_error(lambda lib: lib.stack([]), match="non-empty TensorList")
    check_error(lambda lib, x: lib.cat([x, x]), rand(), match="zero-dimensional tensor")


# --- split / chunk / unbind ---------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.split(2), lambda lib, x: x.split(2, 1), lambda lib, x: lib.split(x, [1, 3], dim=-1),
    lambda lib, x: x.split([1, 2]), lambda lib, x: x.split(10), lambda lib, x: x.chunk(2),
    lambda lib, x: x.chunk(3, 1), lambda lib, x: lib.chunk(x, 5, 0), lambda lib, x: x.unbind(),
    lambda lib, x: lib.unbind(x, 1), lambda lib, x: x.unbind(-1),
    lambda lib, x: x.split(2)[1] * 3, lambda lib, x: x.unbind()[0] + x.unbind()[2],
    lambda lib, x: lib.stack(x.unbind(1), 0), lambda lib, x: lib.cat(x.chunk(2, 1)[::-1], 1),
])
def test_split_family(expr):
    check_parity(expr, rand(3, 4))


def test_split_zero_size_and_errors():
    check_parity(lambda lib, x: x.split(2), rand(0, 3))
    check_parity(lambda lib, x: x.chunk(2), rand(0, 3))
    check_parity(lambda lib, x: x.unbind(), rand(0, 3))
    check_error(lambda lib, x: x.split(0), rand(3, 4), match="split_size can only be 0")
    check_error(lambda lib, x: x.chunk(0), rand(3, 4), match="chunk expects")
    check_error(lambda lib, x: x.split([1, 1]), rand(3, 4), match="split_with_sizes expects")
    check_error(lambda lib, x: x.unbind(2), rand(3, 4), match="Dimension out of range")


def test_split_outputs_are_views():
    x = ge.arange(12.).reshape(3, 4)
    parts = x.split(1)
    assert parts[1]._output_nr == 0 and np.shares_memory(parts[1]._data, x._data)
    y = ge.randn(3, 4, requires_grad=True) * 1
    a, b, c = y.unbind()
    assert (a.grad_fn is b.grad_fn) and (a._output_nr, b._output_nr, c._output_nr) == (0, 1, 2)
    assert a.grad_fn.num_outputs == 3


# --- flip / roll / narrow / select ---------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.flip(0), lambda lib, x: x.flip(0, 1), lambda lib, x: lib.flip(x, (-1,)),
    lambda lib, x: x.flip([]), lambda lib, x: x.roll(1, 0), lambda lib, x: lib.roll(x, (1, -2), (0, 1)),
    lambda lib, x: x.roll(5), lambda lib, x: x.narrow(1, 1, 2), lambda lib, x: lib.narrow(x, 0, -2, 2),
    lambda lib, x: x.narrow(1, 4, 0), lambda lib, x: x.select(1, 2), lambda lib, x: lib.select(x, 0, -1),
])
def test_flip_roll_narrow(expr):
    check_parity(expr, rand(3, 4))


def test_flip_narrow_errors():
    check_error(lambda lib, x: x.flip(3), rand(3, 4), match="Dimension out of range")
    check_error(lambda lib, x: x.flip(0, 0), rand(3, 4), match="appears multiple times")
    check_error(lambda lib, x: x.narrow(1, 3, 2), rand(3, 4), match="exceeds dimension size")


# --- create_graph ------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda lib, x: x.view(12), lambda lib, x: x.t(), lambda lib, x: x.permute(1, 0),
    lambda lib, x: x.transpose(0, 1),
    lambda lib, x: x.expand(2, 3, 4), lambda lib, x: x.repeat(2, 1), lambda lib, x: x.flip(0),
    lambda lib, x: x[None].squeeze(0), lambda lib, x: x.unsqueeze(1), lambda lib, x: x.narrow(1, 1, 2),
    lambda lib, x: lib.cat([x, x * 2]), lambda lib, x: lib.stack([x, x]), lambda lib, x: x.split(2)[0],
    lambda lib, x: x.unbind()[1], lambda lib, x: x.clone(), lambda lib, x: x.roll(1, 1),
])
def test_second_derivative(expr):
    def fn(lib, x):
        y = expr(lib, x)
        (g,) = lib.autograd.grad((y * y * y).sum(), x, create_graph=True)
        return g

    check_parity(fn, rand(3, 4))


# --- views: memory and versions ----------------------------------------------------------------------
VIEW_OPS = [
    lambda t: t.view(12), lambda t: t.reshape(2, 6), lambda t: t.t(), lambda t: t.T,
    lambda t: t.permute(1, 0),
    lambda t: t.transpose(0, 1), lambda t: t.unsqueeze(0), lambda t: t[None].squeeze(0),
    lambda t: t.expand(2, 3, 4),
    lambda t: t.narrow(0, 1, 2), lambda t: t.select(0, 1), lambda t: t.split(2)[0], lambda t: t.unbind()[1],
    lambda t: t.flatten(), lambda t: t.chunk(2, 1)[1], lambda t: t.unflatten(1, (2, 2)), lambda t: t.mT,
]


@pytest.mark.parametrize("fn", VIEW_OPS)
def test_views_share_memory_and_version(fn):
    x = ge.zeros(3, 4)
    v = fn(x)
    assert np.shares_memory(v._data, x._data)
    assert v._base is x
    w = fn(v) if v.ndim == 2 and v.shape == (3, 4) else v.view(v.shape)
    assert w._base is x  # a view of a view has the root as base
    x.add_(1) if hasattr(x, "add_") else x._bump()
    assert v._version == x._version == 1
    x[0, 0] = 5.0
    assert v._version == x._version == 2


@pytest.mark.parametrize("fn", [lambda t: t.clone(), lambda t: t.flip(0), lambda t: t.repeat(1, 1),
                                lambda t: t.roll(1), lambda t: t.t().reshape(12), lambda t: t[[0, 1]]])
def test_copies_do_not_share(fn):
    x = ge.zeros(3, 4)
    c = fn(x)
    assert not np.shares_memory(c._data, x._data) and c._base is None
    x[0] = 1.0
    assert c._version == 0


def test_versions_match_torch():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    for lib in (torch, ge):
        x = lib.zeros(3, 4)
        v = x[0]
        r = x.view(12)
        x[1] = 2.0
        v[1] = 3.0
        assert (x._version, v._version, r._version) == (2, 2, 2)
        assert float(r[1]) == 3.0 and float(r[4]) == 2.0


def test_inplace_on_view_of_leaf_raises():
    check_error(lambda lib, w: w.view(12).__setitem__(0, 1.0), rand(3, 4),
                match="a view of a leaf Variable that requires grad is being used in an in-place operation")
    check_error(lambda lib, w: w.t().__setitem__((0, 0), 1.0), rand(3, 4), match="view of a leaf Variable")
    w = ge.randn(3, 4, requires_grad=True)
    with ge.no_grad():
        w.view(12)[0] = 1.0
    assert w._version == 1 and w[0, 0].item() == 1.0


def test_more_shape_errors():
    check_error(lambda lib, s: s.unbind(), rand(), match="Dimension specified as 0 but tensor has no "
                                                         "dimensions")
    check_error(lambda lib, s: s.narrow(0, 0, 1), rand(), match="narrow\\(\\) cannot be applied to a 0-dim "
                                                                "tensor")
    check_error(lambda lib, s: s.select(0, 0), rand(), match="select\\(\\) cannot be applied to a 0-dim "
                                                             "tensor")
    check_error(lambda lib, x: x.select(0, 5), rand(3, 4), match="select\\(\\): index 5 out of range")
    check_error(lambda lib, x: x.narrow(0, 0, -1), rand(3, 4), match="length must be non-negative")
    check_error(lambda lib, x: x.narrow(0, 5, 0), rand(3, 4), match="start out of range")
    check_error(lambda lib, x: x.split(-1), rand(3, 4), match="split expects split_size be non-negative")
    check_error(lambda lib, x: x.roll((1, 2), 0), rand(3, 4), match="shifts and dimensions must align")
    check_error(lambda lib, x: x.roll((1, 2)), rand(3, 4), match="shifts and dimensions must align")
    check_error(lambda lib, x: x.movedim((0, 0), (1, 0)), rand(3, 4), match="movedim: repeated dim in "
                                                                            "`source`")
    check_error(lambda lib, x: lib.cat([x, lib.zeros(2)]), rand(3, 4), match="Tensors must have same number")
    check_error(lambda lib, x: x.reshape(-2, 6), rand(3, 4), match="invalid shape dimension -2")
    check_error(lambda lib, x: x.view(2.5, 4), rand(3, 4), match="invalid combination of arguments")
    check_error(lambda lib, s: s.squeeze(1), rand(), match="Dimension out of range")


@pytest.mark.parametrize("fn", [
    lambda lib, s: s.flip(0), lambda lib, s: s.t(), lambda lib, s: s.transpose(0, -1),
    lambda lib, s: s.reshape(1, 1),
    lambda lib, s: s.expand(2, 2), lambda lib, s: s.repeat(3), lambda lib, s: s.view(-1),
    lambda lib, s: s.flatten(),
    lambda lib, s: lib.stack([s, s]), lambda lib, s: s.unsqueeze(0).expand(3).unbind(),
])
def test_0d_shapes(fn):
    check_parity(fn, rand())


@pytest.mark.parametrize("fn", [
    lambda lib, x: x.view(4, 3), lambda lib, x: x.t(), lambda lib, x: x.T, lambda lib, x: lib.cat([x, x]),
    lambda lib, x: lib.stack([x, x], 1), lambda lib, x: x.split(1), lambda lib, x: x.expand(2, 3, 4),
    lambda lib, x: x.repeat(1, 2), lambda lib, x: x.flip(1), lambda lib, x: x.unbind(1),
    lambda lib, x: x.permute(1, 0),
    lambda lib, x: lib.cat([x, x.float()], 1), lambda lib, x: lib.cat([x, x.double()]),
])
def test_non_float_inputs(fn):
    check_parity(fn, np.arange(12).reshape(3, 4))
    check_parity(fn, np.arange(12).reshape(3, 4) % 2 == 0)


def test_input_metadata_matches_torch():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    def shapes(lib):
        x = lib.ones(3, 4, requires_grad=True)
        outs = [x.t(), x[0], x.view(12), x.expand(2, 3, 4), x.split(2)[0], x.split(10)[0], x.unbind()[0],
                lib.cat([x, x])]
        return [[tuple(m.shape) for m in o.grad_fn._input_metadata] for o in outs]

    assert shapes(ge) == shapes(torch)


def test_expand_writability_matches_torch():
    def ok(lib, x):
        y = x.detach().expand(1, 3)
        y.add_(1)
        return x.detach().clone()

    check_parity(ok, rand(3), grad=False)
    check_error(lambda lib, x: x.detach().expand(2, 3).add_(1), rand(3), match="more than one element")
    check_error(lambda lib, s: s.split(1), rand(), match="split expects at least a 1-dimensional tensor")
    check_error(lambda lib, s: s.chunk(1), rand(), match="chunk expects at least a 1-dimensional tensor")


def test_iteration_unbinds():
    check_parity(lambda lib, x: list(x), rand(3, 4))
    check_parity(lambda lib, x: [r * 2 for r in x][1], rand(3, 4))


def test_docstring_examples():
    import doctest

    from gradlens.engine.ops import index, shape

    for module in (shape, index):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 5


@pytest.mark.parametrize("fn", [
    lambda lib, x: lib.tile(x, (2,)), lambda lib, x: x.tile((2, 1, 1)),
    lambda lib, x: x.repeat_interleave(2, dim=0),
    lambda lib, x: x.repeat_interleave(3), lambda lib, x: lib.repeat_interleave(x, 2, dim=-1),
    lambda lib, x: x.repeat_interleave(lib.tensor([1, 2, 0]), dim=0), lambda lib, x: x.tensor_split(3, dim=1),
    lambda lib, x: x.tensor_split([1, 3], dim=1), lambda lib, x: lib.tensor_split(x, [3, 1], 1),
    lambda lib, x: x.tensor_split([-1], 1), lambda lib, x: lib.hsplit(x, 2),
    lambda lib, x: lib.vsplit(x, [1]),
    lambda lib, x: x.hsplit([1, 2]),
])
def test_tile_repeat_interleave_tensor_split(fn):
    check_parity(fn, rand(3, 4))


def test_tensor_split_errors():
    check_error(lambda lib, x: lib.hsplit(x, 3), rand(3, 4), match="is not divisible by the split_size 3")
    check_error(lambda lib, x: lib.vsplit(x, 1), rand(4), match="requires a tensor with at least 2 dimension")
    check_error(lambda lib, x: x.tensor_split(0), rand(3, 4),
                match="number of sections must be larger than 0")
    check_error(lambda lib, x: x.repeat_interleave(-1), rand(3, 4), match="Repeats must be non-negative")
    check_error(lambda lib, x: x.repeat_interleave(lib.tensor([1, 2]), dim=0), rand(3, 4),
                match="repeats must have the same size as input along dim")
