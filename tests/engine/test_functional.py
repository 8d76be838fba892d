"""Parity of ``nn.functional`` and the nn ops (``gradlens.engine.ops.nnops``) with torch: values, gradients,
graph node names and error texts, for activations, dropout, embedding, layer_norm, padding and every loss
with every reduction."""

import numpy as np
import pytest

import gradlens.engine as ge
import gradlens.engine.nn.functional as GF

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, rand

REDUCTIONS = ["mean", "sum", "none"]


def F(lib):
    return lib.nn.functional


# --- linear ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,), (2, 2, 3, 4), (0, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_graph_and_grads(x_shape, bias):
    args = (rand(*x_shape), rand(3, 4)) + ((rand(3),) if bias else ())
    check_parity(lambda lib, x, w, *b: F(lib).linear(x, w, *b), *args)


def test_linear_constant_input_and_float32():
    check_parity(lambda lib, x, w, b: F(lib).linear(x.detach(), w, b), rand(5, 4), rand(3, 4), rand(3))
    check_parity(
        lambda lib, x, w, b: F(lib).linear(x, w, b),
        rand(5, 4, dtype=np.float32),
        rand(3, 4, dtype=np.float32),
        rand(3, dtype=np.float32),
    )


def test_linear_noncontiguous_input():
    check_parity(
        lambda lib, x, w, b: F(lib).linear(x.transpose(0, 1), w, b), rand(3, 2, 4), rand(3, 4), rand(3)
    )


def test_linear_shape_error():
    check_error(
        lambda lib, x, w, b: F(lib).linear(x, w, b),
        rand(64, 100),
        rand(128, 784),
        rand(128),
        match=r"mat1 and mat2 shapes cannot be multiplied \(64x100 and 784x128\)",
    )
    check_error(
        lambda lib, x, w, b: F(lib).linear(x, w, b),
        rand(2, 3, 100),
        rand(128, 784),
        rand(128),
        match=r"mat1 and mat2 shapes cannot be multiplied \(6x100 and 784x128\)",
    )


# --- activations ----------------------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": lambda F, x: F.relu(x),
    "sigmoid": lambda F, x: F.sigmoid(x),
    "tanh": lambda F, x: F.tanh(x),
    "gelu": lambda F, x: F.gelu(x),
    "gelu_tanh": lambda F, x: F.gelu(x, approximate="tanh"),
    "leaky_relu": lambda F, x: F.leaky_relu(x),
    "leaky_relu_0.2": lambda F, x: F.leaky_relu(x, 0.2),
    "elu": lambda F, x: F.elu(x),
    "elu_alpha": lambda F, x: F.elu(x, alpha=0.7),
    "selu": lambda F, x: F.selu(x),
    "softplus": lambda F, x: F.softplus(x),
    "softplus_beta": lambda F, x: F.softplus(x, beta=2.0, threshold=1.5),
    "softmax": lambda F, x: F.softmax(x, dim=-1),
    "log_softmax": lambda F, x: F.log_softmax(x, dim=1),
    "silu": lambda F, x: F.silu(x),
    "hardtanh": lambda F, x: F.hardtanh(x, -0.5, 2.0),
    "relu6": lambda F, x: F.relu6(x * 2),
    "logsigmoid": lambda F, x: F.logsigmoid(x),
    "softmin": lambda F, x: F.softmin(x, 1),
    "normalize": lambda F, x: F.normalize(x, dim=-1),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (0, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation(name, shape, dtype):
    fn = ACTIVATIONS[name]
    check_parity(lambda lib, x: fn(F(lib), x), rand(*shape, dtype=dtype, low=-4, high=4))


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "elu", "softplus", "silu", "logsigmoid"])
def test_activation_scalar_and_double_backward(name):
    fn = ACTIVATIONS[name]
    check_parity(lambda lib, x: fn(F(lib), x), rand())

    def second(lib, x):
        (g,) = lib.autograd.grad(fn(F(lib), x).sum(), x, create_graph=True)
        return g

    check_parity(second, rand(2, 3), graph=False)


def test_gelu_bad_approximate():
    check_error(
        lambda lib, x: F(lib).gelu(x, approximate="fast"),
        rand(3),
        match="approximate argument must be either none or tanh",
    )


def test_softmax_implicit_dim_warns():
    for shape in [(3,), (2, 3), (2, 3, 4)]:
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            out = GF.softmax(ge.tensor(rand(*shape)))
        assert out.grad_fn is None
        if HAS_TORCH:
            import torch

            with pytest.warns(UserWarning):
                ref = torch.nn.functional.softmax(torch.tensor(rand(*shape)))
            assert ref.shape == out.shape


# --- dropout ----------------------------------------------------------------------------------------------
def test_dropout_eval_and_p0_return_input():
    x = ge.tensor(rand(3, 4), requires_grad=True)
    assert GF.dropout(x, 0.5, training=False) is x
    assert GF.dropout(x, 0.0, training=True) is x
    assert ge.dropout(x, 0.3, False) is x


def test_dropout_train_graph_and_statistics():
    ge.manual_seed(0)
    x = ge.ones(200, 500, dtype=ge.float64, requires_grad=True)
    y = GF.dropout(x, 0.3, training=True)
    assert y.grad_fn.name() == "MulBackward0"
    assert [(n if n is None else n.name(), i) for n, i in y.grad_fn.next_functions] == [
        ("torch::autograd::AccumulateGrad", 0),
        (None, 0),
    ]
    vals = y.detach().numpy()
    assert set(np.unique(vals).round(12)) <= {0.0, round(1 / 0.7, 12)}
    assert abs((vals == 0).mean() - 0.3) < 0.01
    assert abs(vals.mean() - 1.0) < 0.02
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), vals)  # grad is the scaled mask
    f32 = GF.dropout(ge.ones(10, dtype=ge.float32, requires_grad=True), 0.5)
    assert f32.dtype == ge.float32
    ones = GF.dropout(x, 1.0)
    assert ones.grad_fn.name() == "MulBackward0" and ones.sum().item() == 0.0


def test_dropout_bad_p():
    check_error(
        lambda lib, x: F(lib).dropout(x, 1.5),
        rand(3),
        match="dropout probability has to be between 0 and 1, but got 1.5",
    )


# --- embedding -----------------------------------------------------------------------------------------
def _idx(lib, values):
    return lib.tensor(values)


@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_repeated_indices(padding_idx):
    idx = [[1, 2, 1, 4], [4, 4, 0, 1]]
    check_parity(lambda lib, w: F(lib).embedding(_idx(lib, idx), w, padding_idx=padding_idx), rand(6, 3))
    check_parity(lambda lib, w: lib.embedding(w, _idx(lib, [3, 3, 5])), rand(6, 3, dtype=np.float32))


def test_embedding_scale_grad_by_freq_and_double_backward():
    idx = [1, 2, 1, 1, 0]
    check_parity(lambda lib, w: F(lib).embedding(_idx(lib, idx), w, scale_grad_by_freq=True), rand(4, 2))

    def second(lib, w):
        out = F(lib).embedding(_idx(lib, idx), w)
        (g,) = lib.autograd.grad((out * out).sum(), w, create_graph=True)
        return g

    check_parity(second, rand(4, 2), graph=False)


def test_embedding_errors():
    check_error(
        lambda lib, w: F(lib).embedding(_idx(lib, [7]), w), rand(6, 3), match="index out of range in self"
    )
    check_error(
        lambda lib, w: F(lib).embedding(lib.tensor([1.0]), w),
        rand(6, 3),
        match="Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, "
        "Int; but got torch.FloatTensor instead",
    )


# --- layer norm ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,ns", [((4, 5), (5,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)), ((5,), (5,))])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm(shape, ns, affine, dtype):
    args = [rand(*shape, dtype=dtype)]
    if affine in ("both", "weight"):
        args.append(rand(*ns, dtype=dtype))
    if affine == "both":
        args.append(rand(*ns, dtype=dtype))
    # float32: rows with a small variance amplify rounding in both engines (each is ~1e-5 off the float64
    # result there), so compare float32 at a looser tolerance; float64 stays at 1e-10
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else {}
    check_parity(lambda lib, x, *wb: F(lib).layer_norm(x, ns, *wb, eps=1e-5), *args, **tol)


def test_layer_norm_double_backward_and_errors():
    def second(lib, x, w, b):
        out = F(lib).layer_norm(x, (4,), w, b)
        gx, gw = lib.autograd.grad((out * out * out).sum(), (x, w), create_graph=True)
        return gx, gw

    check_parity(second, rand(3, 4), rand(4), rand(4), graph=False)
    check_error(
        lambda lib, x: F(lib).layer_norm(x, (6,)),
        rand(4, 5),
        match=r"Given normalized_shape=\[6\], expected input with shape \[\*, 6\], but got input of "
        r"size\[4, 5\]",
    )


# --- padding / one_hot --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pad", [(1, 2), (0, 1, 2, 0), (-1, 1), (1, -2, 1, 1)])
def test_pad_constant(pad):
    check_parity(lambda lib, x: F(lib).pad(x, pad), rand(3, 4))
    check_parity(lambda lib, x: F(lib).pad(x, pad, value=2.5), rand(2, 3, 4))


def test_one_hot():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    for values, n in [([0, 2, 1], -1), ([[1, 0], [3, 2]], 5), ([], 3)]:
        ref = torch.nn.functional.one_hot(torch.tensor(values, dtype=torch.long), n)
        out = GF.one_hot(ge.tensor(values, dtype=ge.int64), n)
        assert out.dtype == ge.int64 and out.tolist() == ref.tolist()
    check_error(
        lambda lib: F(lib).one_hot(lib.tensor([1, 5]), 3),
        match="Class values must be smaller than num_classes",
    )
    check_error(lambda lib: F(lib).one_hot(lib.tensor([-1, 2])), match="Class values must be non-negative")


# --- losses ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regression_losses(name, reduction, dtype):
    check_parity(
        lambda lib, x, t: getattr(F(lib), name)(x, t, reduction=reduction),
        rand(4, 3, dtype=dtype),
        rand(4, 3, dtype=dtype),
    )
    check_parity(
        lambda lib, x, t: getattr(F(lib), name)(x, t.detach(), reduction=reduction),
        rand(5, dtype=dtype),
        rand(5, dtype=dtype),
    )


def test_mse_loss_broadcast_warns_and_double_backward():
    with pytest.warns(UserWarning, match="Using a target size"):
        check_parity(lambda lib, x, t: F(lib).mse_loss(x, t), rand(4, 1), rand(4))

    def second(lib, x, t):
        (g,) = lib.autograd.grad(F(lib).mse_loss(x, t) * F(lib).mse_loss(x, t), x, create_graph=True)
        return g

    check_parity(second, rand(3, 2), rand(3, 2), graph=False)


def test_bad_reduction():
    check_error(
        lambda lib, x, t: F(lib).mse_loss(x, t, reduction="avg"),
        rand(3),
        rand(3),
        match="avg is not a valid value for reduction",
    )


TARGETS = [[0, 2, 1, 2, 4], [4, 4, 0, 1, 3]]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [-100, 2])
def test_cross_entropy_and_nll(reduction, weighted, ignore):
    w = rand(5, positive=True)
    for t in TARGETS:

        def ce(lib, x, t=t):
            weight = lib.tensor(w) if weighted else None
            return F(lib).cross_entropy(
                x, lib.tensor(t), weight=weight, ignore_index=ignore, reduction=reduction
            )

        def nll(lib, x, t=t):
            weight = lib.tensor(w) if weighted else None
            return F(lib).nll_loss(
                x.log_softmax(1), lib.tensor(t), weight=weight, ignore_index=ignore, reduction=reduction
            )

        check_parity(ce, rand(5, 5))
        check_parity(nll, rand(5, 5))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_shapes(reduction):
    # unbatched (C,), spatial (N, C, d), float32
    check_parity(lambda lib, x: F(lib).cross_entropy(x, lib.tensor(2), reduction=reduction), rand(4))
    check_parity(
        lambda lib, x: F(lib).cross_entropy(x, lib.tensor([[0, 3], [2, 1]]), reduction=reduction),
        rand(2, 4, 2),
    )
    check_parity(
        lambda lib, x: F(lib).cross_entropy(x, lib.tensor([0, 3, 1]), reduction=reduction),
        rand(3, 4, dtype=np.float32),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_label_smoothing_and_probabilities(reduction):
    # torch composes these from mul.Scalar / div.Scalar / masked_fill: the graphs must match too
    def weight(lib):
        return lib.tensor([1.0, 2.0, 0.5, 1.5], dtype=lib.float64)

    t = [0, 3, 1]
    check_parity(
        lambda lib, x: F(lib).cross_entropy(x, lib.tensor(t), reduction=reduction, label_smoothing=0.1),
        rand(3, 4),
    )
    check_parity(
        lambda lib, x: F(lib).cross_entropy(
            x, lib.tensor(t), reduction=reduction, label_smoothing=0.2, ignore_index=3, weight=weight(lib)
        ),
        rand(3, 4),
    )
    probs = rand(3, 4, positive=True)
    probs = probs / probs.sum(1, keepdims=True)
    check_parity(
        lambda lib, x, p: F(lib).cross_entropy(x, p.detach(), reduction=reduction), rand(3, 4), probs
    )
    check_parity(
        lambda lib, x, p: F(lib).cross_entropy(
            x, p, reduction=reduction, label_smoothing=0.1, weight=weight(lib)
        ),
        rand(3, 4),
        probs,
    )
    check_parity(lambda lib, x, p: F(lib).cross_entropy(x, p, reduction=reduction), rand(4), probs[0])

    def second(lib, x):
        loss = F(lib).cross_entropy(x, lib.tensor(t), reduction=reduction, label_smoothing=0.1)
        (g,) = lib.autograd.grad(loss.sum(), x, create_graph=True)
        return g

    check_parity(second, rand(3, 4), graph=False)


def test_cross_entropy_double_backward():
    def second(lib, x):
        loss = F(lib).cross_entropy(x, lib.tensor([0, 2, 1]))
        (g,) = lib.autograd.grad(loss, x, create_graph=True)
        return g

    check_parity(second, rand(3, 3), graph=False)


def test_nll_errors():
    check_error(
        lambda lib, x: F(lib).nll_loss(x, lib.tensor([0, 1, 9, 2])),
        rand(4, 5),
        match="Target 9 is out of bounds.",
    )
    check_error(
        lambda lib, x: F(lib).nll_loss(x, lib.tensor([0, 1, 2])),
        rand(4, 5),
        match=r"Expected input batch_size \(4\) to match target batch_size \(3\)",
    )
    check_error(
        lambda lib, x: F(lib).nll_loss(x, lib.tensor([0.0, 1, 2, 1])),
        rand(4, 5),
        match="expected target dtype to be Long or Byte, but got Float",
    )
    check_error(
        lambda lib, x: F(lib).cross_entropy(x, lib.tensor([0, 1]), label_smoothing=1.5),
        rand(2, 3),
        match="label_smoothing must be between 0.0 and 1.0. Got: 1.5",
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy(reduction, weighted, dtype):
    w = rand(3, positive=True).astype(dtype)

    def fn(lib, x, t):
        weight = lib.tensor(w) if weighted else None
        return F(lib).binary_cross_entropy(x.sigmoid(), t, weight=weight, reduction=reduction)

    check_parity(fn, rand(4, 3, dtype=dtype), rand(4, 3, dtype=dtype, low=0, high=1))
    check_parity(
        lambda lib, p, t: F(lib).binary_cross_entropy(p, t.detach(), reduction=reduction),
        rand(5, dtype=dtype, low=0.05, high=0.95),
        rand(5, dtype=dtype, low=0, high=1),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("extra", ["none", "weight", "pos_weight", "both"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_with_logits(reduction, extra, dtype):
    w = rand(3, positive=True).astype(dtype)
    pw = rand(3, positive=True).astype(dtype)

    def fn(lib, x, t):
        kw = {}
        if extra in ("weight", "both"):
            kw["weight"] = lib.tensor(w)
        if extra in ("pos_weight", "both"):
            kw["pos_weight"] = lib.tensor(pw)
        return F(lib).binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw)

    check_parity(fn, rand(4, 3, dtype=dtype, low=-30, high=30), rand(4, 3, dtype=dtype, low=0, high=1))


def test_bce_double_backward():
    def second(lib, x, t):
        loss = F(lib).binary_cross_entropy_with_logits(
            x, t, pos_weight=lib.tensor([2.0, 0.5], dtype=lib.float64)
        )
        gx, gt = lib.autograd.grad(loss, (x, t), create_graph=True)
        return gx, gt

    check_parity(second, rand(3, 2), rand(3, 2, low=0, high=1), graph=False)

    def second_bce(lib, p, t):
        (gp,) = lib.autograd.grad(F(lib).binary_cross_entropy(p, t), p, create_graph=True)
        return gp

    check_parity(second_bce, rand(3, 2, low=0.1, high=0.9), rand(3, 2, low=0, high=1), graph=False)


def test_bce_errors():
    check_error(
        lambda lib, x, t: F(lib).binary_cross_entropy(x, t),
        rand(4, 1, low=0, high=1),
        rand(4, low=0, high=1),
        match=r"Using a target size \(torch.Size\(\[4\]\)\) that is different to "
        r"the input size \(torch.Size\(\[4, 1\]\)\) is deprecated",
    )
    check_error(
        lambda lib, x, t: F(lib).binary_cross_entropy(x * 3, t),
        rand(4, low=0.5, high=1),
        rand(4, low=0, high=1),
        match="all elements of input should be between 0 and 1",
    )
    check_error(
        lambda lib, x, t: F(lib).binary_cross_entropy_with_logits(x, t),
        rand(4, 1),
        rand(4),
        match=r"Target size \(torch.Size\(\[4\]\)\) must be the same as input size",
    )


def test_ops_registered_where_torch_has_them():
    from gradlens.engine.ops import OPS

    for name in [
        "gelu",
        "leaky_relu",
        "elu",
        "softplus",
        "mse_loss",
        "l1_loss",
        "nll_loss",
        "cross_entropy",
        "binary_cross_entropy",
        "dropout",
        "embedding",
        "layer_norm",
        "binary_cross_entropy_with_logits",
    ]:
        assert name in OPS
        assert not OPS[name][1], name  # not a Tensor method
    for name in ["dropout", "embedding", "layer_norm", "binary_cross_entropy_with_logits", "constant_pad_nd"]:
        assert callable(getattr(ge, name))
    for name in ["gelu", "mse_loss", "cross_entropy"]:
        assert name not in ge.__dict__ or getattr(ge, name) is not OPS[name][0]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2)])
def test_batch_norm_functional(training, shape):
    rm, rv = rand(3), rand(3, positive=True)

    def fn(lib, x, w, b):
        return F(lib).batch_norm(x, lib.tensor(rm), lib.tensor(rv), w, b, training=training, momentum=0.3)

    check_parity(fn, rand(*shape), rand(3), rand(3))
    check_parity(
        lambda lib, x: F(lib).batch_norm(x, None, None, training=True),
        rand(*shape, dtype=np.float32),
        rtol=1e-4,
        atol=1e-5,
    )

    def second(lib, x, w):
        out = F(lib).batch_norm(x, lib.tensor(rm), lib.tensor(rv), w, None, training=training)
        gx, gw = lib.autograd.grad((out * out * out).sum(), (x, w), create_graph=True)
        return gx, gw

    check_parity(second, rand(*shape), rand(3), graph=False)
