"""Parity of the native engine's convolution, pooling, channel dropout and CNN layers with torch: values,
gradients (float64 to 1e-10, float32), node names and edges, errors, finite differences, second
derivatives (the CNN example's loss curve against torch is in test_cnn_example.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, rand

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


def F(lib):
    return lib.nn.functional


# --- convolutions -----------------------------------------------------------------------------------------
CONV2D = [  # (input shape, weight shape, kwargs)
    ((2, 3, 8, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(stride=2, padding=1, dilation=2)),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(0, 2), groups=2)),
    ((1, 4, 7, 7), (4, 1, 3, 3), dict(padding=1, groups=4)),
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(padding="same", dilation=(2, 1))),
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(padding="valid", stride=3)),
    ((2, 3, 5, 6), (2, 3, 1, 1), dict(stride=2)),
    ((3, 8, 8), (5, 3, 3, 3), dict(padding=2)),  # unbatched
    ((2, 3, 6, 6), (4, 3, 6, 6), {}),  # kernel as large as the input
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,kw", CONV2D)
def test_conv2d_float64(xs, ws, kw, bias):
    arrays = [rand(*xs), rand(*ws)] + ([rand(ws[0])] if bias else [])
    check_parity(lambda lib, x, w, *b: F(lib).conv2d(x, w, *b, **kw), *arrays)


@pytest.mark.parametrize("xs,ws,kw", CONV2D[:5])
def test_conv2d_float32(xs, ws, kw):
    arrays = [rand(*xs, dtype=np.float32), rand(*ws, dtype=np.float32), rand(ws[0], dtype=np.float32)]
    check_parity(lambda lib, x, w, b: F(lib).conv2d(x, w, b, **kw), *arrays, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride,padding,dilation,groups", itertools.product((1, 2, 3), (0, 1, 2), (1, 2), (1, 2)))
def test_conv2d_combinations(stride, padding, dilation, groups):
    check_parity(lambda lib, x, w, b: F(lib).conv2d(x, w, b, stride, padding, dilation, groups),
                 rand(2, 4, 9, 10), rand(4, 4 // groups, 3, 2), rand(4))


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 4, 9), (6, 4, 3), dict(stride=2, padding=1)),
    ((4, 9), (6, 4, 3), dict(dilation=2)),
    ((2, 4, 9), (6, 2, 4), dict(groups=2, padding="same")),
])
def test_conv1d(xs, ws, kw):
    check_parity(lambda lib, x, w, b: F(lib).conv1d(x, w, b, **kw), rand(*xs), rand(*ws), rand(ws[0]))


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 4, 5, 6), (4, 3, 3, 2), dict(stride=(2, 3), padding=(1, 0), groups=2, dilation=2)),
    ((2, 4, 5, 6), (4, 2, 2, 2), dict(stride=2)),
    ((4, 5, 6), (4, 2, 3, 3), {}),
])
def test_conv_transpose2d(xs, ws, kw):
    out_ch = ws[1] * kw.get("groups", 1)
    check_parity(lambda lib, x, w, b: F(lib).conv_transpose2d(x, w, b, **kw), rand(*xs), rand(*ws), rand(out_ch))


def test_conv_transpose1d():
    check_parity(lambda lib, x, w: F(lib).conv_transpose1d(x, w, stride=2, padding=1), rand(2, 3, 7), rand(3, 2, 3))


def test_conv_inputs_without_grad_get_none_edges():
    check_parity(lambda lib, x, w, b: F(lib).conv2d(x.detach(), w, b.detach()), rand(2, 3, 6, 6), rand(4, 3, 3, 3),
                 rand(4))


@pytest.mark.parametrize("fn,shapes,match", [
    (lambda lib, x, w: F(lib).conv2d(x, w), ((2, 4, 8, 8), (4, 3, 3, 3)),
     r"Given groups=1, weight of size \[4, 3, 3, 3\], expected input\[2, 4, 8, 8\] to have 3 channels, but got 4 "
     r"channels instead"),
    (lambda lib, x, w: F(lib).conv2d(x, w, groups=2), ((2, 3, 8, 8), (4, 3, 3, 3)),
     r"Given groups=2, weight of size \[4, 3, 3, 3\], expected input\[2, 3, 8, 8\] to have 6 channels"),
    (lambda lib, x, w: F(lib).conv2d(x, w), ((2, 3, 2, 2), (4, 3, 3, 3)),
     r"Calculated padded input size per channel: \(2 x 2\). Kernel size: \(3 x 3\). Kernel size can't be greater"),
    (lambda lib, x, w: F(lib).conv2d(x, w), ((2, 3), (4, 3, 3, 3)),
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[2, 3\]"),
    (lambda lib, x, w: F(lib).conv2d(x, w, stride=2, padding="same"), ((2, 3, 8, 8), (4, 3, 3, 3)),
     "padding='same' is not supported for strided convolutions"),
    (lambda lib, x, w, b: F(lib).conv2d(x, w, b), ((2, 3, 8, 8), (4, 3, 3, 3), (3,)),
     r"Given weight of size \[4, 3, 3, 3\], expected bias to be 1-dimensional with 4 elements, but got bias of "
     r"size \[3\] instead"),
    (lambda lib, x, w: F(lib).conv_transpose2d(x, w), ((2, 4, 8, 8), (3, 2, 3, 3)),
     r"Given transposed=1, weight of size \[3, 2, 3, 3\], expected input\[2, 4, 8, 8\] to have 3 channels"),
    (lambda lib, x, w: F(lib).conv2d(x, w.float()), ((2, 3, 8, 8), (4, 3, 3, 3)),
     "expected scalar type Double but found Float"),
])
def test_conv_errors(fn, shapes, match):
    check_error(fn, *[rand(*s) for s in shapes], match=match)


# --- pooling ------------------------------------------------------------------------------------------------
POOLS = [
    lambda lib, x: F(lib).max_pool2d(x, 2),
    lambda lib, x: F(lib).max_pool2d(x, 3, stride=2, padding=1, return_indices=True),
    lambda lib, x: F(lib).max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), ceil_mode=True, return_indices=True),
    lambda lib, x: F(lib).max_pool2d(x[0], 3, ceil_mode=True, return_indices=True),
    lambda lib, x: F(lib).max_pool2d(x, 2, stride=1),  # overlapping windows
    lambda lib, x: F(lib).avg_pool2d(x, 2),
    lambda lib, x: F(lib).avg_pool2d(x, 3, stride=2, padding=1),
    lambda lib, x: F(lib).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda lib, x: F(lib).avg_pool2d(x, (3, 2), (2, 3), (1, 1), ceil_mode=True),
    lambda lib, x: F(lib).avg_pool2d(x[0], 3, divisor_override=2),
    lambda lib, x: F(lib).adaptive_avg_pool2d(x, (3, 5)),
    lambda lib, x: F(lib).adaptive_avg_pool2d(x[0], (4, None)),
    lambda lib, x: F(lib).adaptive_avg_pool2d(x, 1),
    lambda lib, x: F(lib).adaptive_max_pool2d(x, (3, 5), return_indices=True),
    lambda lib, x: F(lib).adaptive_max_pool2d(x, 4),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", POOLS)
def test_pooling(fn, dtype):
    check_parity(fn, rand(2, 3, 10, 9, dtype=dtype))


def test_max_pool_ties_and_nan_follow_torch():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = np.nan
    check_parity(lambda lib, t: F(lib).max_pool2d(t, 2, return_indices=True), x)


@pytest.mark.parametrize("fn,match", [
    (lambda lib, x: F(lib).max_pool2d(x, 3, padding=2), "pad should be at most half of effective kernel size"),
    (lambda lib, x: F(lib).max_pool2d(x[:, :, :2, :2], 3), r"Given input size: \(3x2x2\). Calculated output size"),
    (lambda lib, x: F(lib).avg_pool2d(x, 2, padding=2), "pad should be at most half"),
])
def test_pool_errors(fn, match):
    check_error(fn, rand(2, 3, 8, 8), match=match)


POOL_INPUT_ERRORS = [  # torch checks ranks, empty dimensions and dtypes in different places per op
    (lambda lib, x: F(lib).max_pool2d(x, 1), [(), (3,), (2, 3), (1, 2, 3, 4, 5), (2, 3, 0), (2, 0, 3, 4)]),
    (lambda lib, x: F(lib).avg_pool2d(x, 1), [(), (3,), (2, 3), (1, 2, 3, 4, 5), (2, 3, 0), (2, 0, 3, 4)]),
    (lambda lib, x: F(lib).adaptive_avg_pool2d(x, (2, 2)), [(), (2, 3), (1, 2, 3, 4, 5), (2, 3, 0), (2, 3, 4, 0)]),
    (lambda lib, x: F(lib).adaptive_avg_pool2d(x, 1), [(), (3,)]),
    (lambda lib, x: F(lib).adaptive_avg_pool2d(x, (1, 2, 3)), [(2, 3, 4, 5)]),
    (lambda lib, x: F(lib).adaptive_avg_pool2d(x, -1), [(2, 3, 4, 5), (3,)]),
    (lambda lib, x: F(lib).adaptive_max_pool2d(x, (2, 2)), [(2, 3), (1, 2, 3, 4, 5), (2, 0, 3, 4), (0, 0, 3, 4)]),
    (lambda lib, x: F(lib).adaptive_max_pool2d(x, 1), [(), (2, 3)]),
    (lambda lib, x: F(lib).adaptive_max_pool2d(x, (-1, 2)), [(2, 3, 4, 5)]),
]


@pytest.mark.parametrize("fn,shapes", POOL_INPUT_ERRORS)
def test_pool_input_errors_match_torch_type_and_message(fn, shapes):
    for shape in shapes:
        t_err, g_err = check_error(fn, rand(*shape) if shape else np.array(0.5))
        assert str(g_err) == str(t_err).split("\n")[0], shape


@pytest.mark.parametrize("fn,dtypes", [
    (lambda lib, x: F(lib).max_pool2d(x, 1), ["bool"]),
    (lambda lib, x: F(lib).avg_pool2d(x, 1), ["bool", "int32", "uint8"]),
    (lambda lib, x: F(lib).adaptive_avg_pool2d(x, (1, 2)), ["bool", "int64"]),
    (lambda lib, x: F(lib).adaptive_max_pool2d(x, (1, 2)), ["bool", "int64"]),
    (lambda lib, x: F(lib).conv2d(x, x[:1, :, :1, :1]), ["bool"]),
    (lambda lib, x: F(lib).conv2d(x, x[:1, :, :2, :2], dilation=2), ["int32"]),
    (lambda lib, x: F(lib).conv_transpose2d(x, x[:1, :, :1, :1]), ["int32"]),
])
def test_kernels_missing_for_a_dtype_raise_torchs_not_implemented(fn, dtypes):
    for dt in dtypes:
        t_err, g_err = check_error(fn, np.ones((1, 1, 3, 3), dtype=dt))
        assert type(t_err) is NotImplementedError and str(g_err) == str(t_err), dt


def test_integer_pooling_keeps_the_dtype_and_truncates_like_torch():
    x = np.array([[[[-7, 3, 5], [2, -1, 9], [4, 4, -8]]]])
    check_parity(lambda lib, t: F(lib).avg_pool2d(t, 2, 1, 1, count_include_pad=False), x)
    check_parity(lambda lib, t: F(lib).max_pool2d(t, 2, 1), x.astype(np.int32))


@pytest.mark.parametrize("fn,shapes", [
    (lambda lib, x, w: F(lib).conv2d(x, w), ((2, 0, 3, 3), (4, 0, 2, 2))),  # no input channels: (2, 0, 2, 2)
    (lambda lib, x, w, b: F(lib).conv2d(x, w, b), ((2, 0, 3, 3), (4, 0, 2, 2), (4,))),
    (lambda lib, x, w: F(lib).conv2d(x, w), ((0, 1, 1), (1, 0, 1, 1))),
    (lambda lib, x, w: F(lib).conv2d(x, w, padding=1), ((0, 3, 3, 3), (4, 3, 2, 2))),
    (lambda lib, x, w: F(lib).conv1d(x, w), ((2, 0, 3), (4, 0, 2))),
    (lambda lib, x, w: F(lib).conv_transpose2d(x.float(), w.float(), None, 2, 1, 1), ((2, 1, 1, 1), (1, 1, 1, 1))),
])
def test_empty_convolutions_follow_torch(fn, shapes):
    check_parity(fn, *[rand(*s) for s in shapes])


@pytest.mark.parametrize("fn,shapes,match", [
    (lambda lib, x, w: F(lib).conv2d(x, w), ((2, 3, 3, 3), (0, 3, 2, 2)), "expected weight to be at least 1"),
    (lambda lib, x, w: F(lib).conv_transpose2d(x.float(), w.float(), None, 2, 1), ((2, 1, 1, 1), (1, 1, 1, 1)),
     "could not construct a memory descriptor"),  # float32 (oneDNN): a negative output size
    (lambda lib, x, w: F(lib).conv_transpose2d(x, w, None, 2, 1, 1), ((2, 1, 1, 1), (1, 1, 1, 1)),
     r"Calculated output size per channel: \(0 x 0\). Output size is too small"),  # float64: 0 is too small
])
def test_convolution_size_errors(fn, shapes, match):
    check_error(fn, *[rand(*s) for s in shapes], match=match)


# --- gradients: finite differences and second derivatives ---------------------------------------------------
def _finite_difference_check(fn, *arrays, eps=1e-6):
    tensors = [ge.tensor(a.copy(), requires_grad=True) for a in arrays]
    seed = rand(*fn(*tensors).shape)
    (fn(*tensors) * ge.tensor(seed)).sum().backward()
    for t, a in zip(tensors, arrays):
        flat = a.reshape(-1)
        for i in np.random.default_rng(0).choice(flat.size, size=min(12, flat.size), replace=False):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += eps
            minus[i] -= eps

            def value(v, t=t, shape=a.shape):
                args = [ge.tensor(v.reshape(shape)) if u is t else ge.tensor(u._data) for u in tensors]
                return float((fn(*args)._data * seed).sum())
            numeric = (value(plus) - value(minus)) / (2 * eps)
            assert abs(numeric - t.grad._data.reshape(-1)[i]) < 1e-6 * max(1.0, abs(numeric))


@pytest.mark.parametrize("fn,shapes", [
    (lambda x, w, b: F(ge).conv2d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
     ((2, 4, 9, 8), (6, 2, 3, 2), (6,))),
    (lambda x, w, b: F(ge).conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
     ((2, 4, 5, 6), (4, 3, 3, 3), (3,))),
    (lambda x: F(ge).max_pool2d(x, 3, stride=2, padding=1), ((2, 3, 9, 8),)),
    (lambda x: F(ge).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), ((2, 3, 9, 8),)),
    (lambda x: F(ge).adaptive_avg_pool2d(x, (3, 4)), ((2, 3, 9, 8),)),
])
def test_gradients_match_finite_differences(fn, shapes):
    _finite_difference_check(fn, *[rand(*s) for s in shapes])


@needs_torch
@pytest.mark.parametrize("name,fn,shapes", [
    ("ConvolutionBackwardBackward0", lambda lib, x, w: F(lib).conv2d(x, w, stride=2, padding=1),
     ((2, 3, 7, 6), (4, 3, 3, 3))),
    ("ConvolutionBackwardBackward0", lambda lib, x, w: F(lib).conv2d(x, w, dilation=2, groups=3),
     ((2, 3, 7, 6), (6, 1, 2, 3))),
    ("ConvolutionBackwardBackward0", lambda lib, x, w: F(lib).conv_transpose2d(x, w, stride=2),
     ((2, 3, 4, 5), (3, 2, 3, 3))),
    ("MaxPool2DWithIndicesBackwardBackward0", lambda lib, x: F(lib).max_pool2d(x, 3, 2, 1), ((2, 3, 9, 8),)),
    ("AvgPool2DBackwardBackward0", lambda lib, x: F(lib).avg_pool2d(x, 3, 2, 1), ((2, 3, 9, 8),)),
    ("AdaptiveAvgPool2DBackwardBackward0", lambda lib, x: F(lib).adaptive_avg_pool2d(x, (3, 4)), ((2, 3, 9, 8),)),
])
def test_second_derivatives(name, fn, shapes):
    import torch

    arrays = [rand(*s) for s in shapes]
    results = []
    for lib in (torch, ge):
        ts = [lib.tensor(a.copy(), requires_grad=True) for a in arrays]
        y = fn(lib, *ts)
        grads = lib.autograd.grad((y * y * y).sum(), ts, create_graph=True)
        sum((g * g).sum() for g in grads).backward()
        results.append(([t.grad.numpy() for t in ts], [g.detach().numpy() for g in grads]))
        if lib is torch:
            assert grads[0].grad_fn.name() == name
    for t_arr, g_arr in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        np.testing.assert_allclose(g_arr, t_arr, rtol=1e-9, atol=1e-10)


def test_native_second_derivative_node_names():
    x = ge.tensor(rand(1, 1, 4, 4), requires_grad=True)
    (g,) = ge.autograd.grad(F(ge).max_pool2d(x, 2).pow(2).sum(), x, create_graph=True)
    assert g.grad_fn.name() == "MaxPool2DWithIndicesBackwardBackward0"


def test_conv_saved_weight_modified_in_place_raises_torch_error(lib):
    x = lib.ones(1, 1, 4, 4, requires_grad=True)
    w = lib.ones(1, 1, 3, 3, requires_grad=True)
    y = F(lib).conv2d(x, w * 1)
    y2 = F(lib).conv2d(x, w)
    y2.sum().backward(retain_graph=False)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y2.sum().backward()
    y.sum().backward()


# --- layers ------------------------------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("make", [
    lambda nn: nn.Conv2d(3, 8, 3),
    lambda nn: nn.Conv2d(4, 8, (3, 2), stride=(2, 1), padding=1, dilation=2, groups=2, bias=False),
    lambda nn: nn.Conv1d(2, 3, 4, padding="same"),
    lambda nn: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=1),
    lambda nn: nn.ConvTranspose1d(3, 4, 3),
    lambda nn: nn.MaxPool2d(2),
    lambda nn: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    lambda nn: nn.AvgPool2d(2),
    lambda nn: nn.AdaptiveAvgPool2d((3, 4)),
    lambda nn: nn.AdaptiveMaxPool2d(2),
    lambda nn: nn.Dropout2d(0.3),
    lambda nn: nn.Dropout1d(),
    lambda nn: nn.BatchNorm2d(3),
])
def test_layer_repr_and_parameter_shapes(make):
    import torch

    t_mod, g_mod = make(torch.nn), make(ge.nn)
    assert repr(g_mod) == repr(t_mod)
    t_params = {k: tuple(v.shape) for k, v in t_mod.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in g_mod.state_dict().items()} == t_params


@pytest.mark.parametrize("in_ch,out_ch,k,groups", [(3, 8, 3, 1), (4, 8, 5, 2)])
def test_conv_init_bounds_follow_torch_fans(in_ch, out_ch, k, groups):
    ge.manual_seed(0)
    conv = ge.nn.Conv2d(in_ch, out_ch, k, groups=groups)
    fan_in = in_ch // groups * k * k
    bound = 1 / np.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) gives the same bound as the bias
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(b).max() <= bound


@needs_torch
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_conv_bn_pool_stack(mode):
    import torch

    def stack(lib, x, w, b, gamma, beta):
        bn = lib.nn.BatchNorm2d(4).double()
        with lib.no_grad():
            bn.weight.copy_(gamma)
            bn.bias.copy_(beta)
        bn.train(mode == "train")
        y = F(lib).max_pool2d(F(lib).relu(bn(F(lib).conv2d(x, w, b, padding=1))), 2)
        return F(lib).adaptive_avg_pool2d(y, (2, 2))

    _ = torch
    check_parity(stack, rand(2, 3, 8, 8), rand(4, 3, 3, 3), rand(4), rand(4), rand(4))


def test_dropout2d_zeroes_whole_channels(lib):
    lib.manual_seed(0)
    x = lib.ones(8, 16, 5, 5, requires_grad=True)
    y = F(lib).dropout2d(x, 0.5)
    per_channel = y.detach().numpy().reshape(8, 16, -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # one mask value per (sample, channel)
    assert 0 < (per_channel[:, :, 0] == 0).sum() < 8 * 16
    assert y.grad_fn.name() == "MulBackward0"
    assert F(lib).dropout2d(x, 0.5, training=False) is x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), per_channel.reshape(8, 16, 5, 5))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        lib.nn.Dropout2d(1.5)


def test_dropout2d_warns_on_3d_input_like_torch(lib):
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        F(lib).dropout2d(lib.ones(2, 3, 4), 0.5)
