"""Parity of ``gradlens.engine.nn`` with ``torch.nn``: layers and losses (weights copied from torch, then
outputs, losses, every parameter's gradient and the graph compared), and the Module API (registration,
traversal order, state_dict, repr, modes, hooks), ``nn.init`` and ``nn.utils`` clipping."""

from collections import OrderedDict

import numpy as np
import pytest

import gradlens.engine as ge
from gradlens.engine import nn as gnn

from ..conftest import HAS_TORCH
from ..parity import TOL, graph_signature, rand

requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
_rng = np.random.default_rng(7)


# --- helpers ---------------------------------------------------------------------------------------------
def _as_lib(lib, a, grad: bool):
    if isinstance(a, np.ndarray):
        t = lib.tensor(a.copy())
        if grad and a.dtype.kind == "f":
            t.requires_grad_(True)
        return t
    if callable(a):
        return a(lib)
    return a


def copy_weights(tmod, gmod) -> None:
    """Load torch's parameters and buffers into the native module (parity tests never rely on RNG)."""
    state = OrderedDict((k, ge.tensor(v.detach().numpy().copy())) for k, v in tmod.state_dict().items())
    result = gmod.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [y for o in out for y in _flat(o)]
    return [out]


def _close(a, b, what):
    an, bn = np.asarray(a.detach().numpy()), np.asarray(b.detach().numpy())
    tol = TOL.get(an.dtype, dict(rtol=0, atol=0))
    np.testing.assert_allclose(bn, an, err_msg=what, **tol)


def module_parity(make, *arrays, run=None, double=True, graph=True, input_grad=True, train=True):
    """Build the module on both engines, copy torch's weights, run, compare outputs, graph and all grads."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    run = run or (lambda m, *xs: m(*xs))
    results = []
    for lib in (torch, ge):
        m = make(lib)
        if double:
            m.double()
        m.train(train)
        results.append([lib, m, None, None])
    copy_weights(results[0][1], results[1][1])
    for r in results:
        lib, m = r[0], r[1]
        xs = [_as_lib(lib, a, input_grad) for a in arrays]
        r[2], r[3] = run(m, *xs), xs
    (_, tm, t_out, t_in), (_, gm, g_out, g_in) = results
    t_flat, g_flat = _flat(t_out), _flat(g_out)
    assert len(t_flat) == len(g_flat)
    for i, (a, b) in enumerate(zip(t_flat, g_flat, strict=False)):
        assert tuple(a.shape) == tuple(b.shape), f"output {i} shape"
        assert str(a.dtype) == repr(b.dtype), f"output {i} dtype"
        _close(a, b, f"output {i}")
        assert a.requires_grad == b.requires_grad
        if graph:
            assert graph_signature(b) == graph_signature(a), f"graph of output {i}"
    t_loss = g_loss = 0
    for a, b in zip(t_flat, g_flat, strict=False):
        if a.requires_grad:
            w = _rng.uniform(0.5, 1.5, size=tuple(a.shape)).astype(a.detach().numpy().dtype)
            t_loss = t_loss + (a * torch.tensor(w)).sum()
            g_loss = g_loss + (b * ge.tensor(w)).sum()
    if isinstance(t_loss, int):
        return tm, gm
    t_loss.backward()
    g_loss.backward()
    t_params = dict(tm.named_parameters())
    g_params = dict(gm.named_parameters())
    assert list(t_params) == list(g_params)
    for name, tp in t_params.items():
        gp = g_params[name]
        assert (tp.grad is None) == (gp.grad is None), f"grad presence of {name}"
        if tp.grad is not None:
            _close(tp.grad, gp.grad, f"grad of {name}")
    for i, (a, b) in enumerate(zip(t_in, g_in, strict=False)):
        if hasattr(a, "requires_grad") and a.requires_grad:
            _close(a.grad, b.grad, f"grad of input {i}")
    return tm, gm


# --- layers -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("double", [True, False])
def test_linear(x_shape, bias, double):
    dtype = np.float64 if double else np.float32
    module_parity(lambda lib: lib.nn.Linear(4, 3, bias=bias), rand(*x_shape, dtype=dtype), double=double)


def test_linear_graph_names():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    lin = gnn.Linear(4, 3)
    out = lin(ge.randn(5, 4))
    assert out.grad_fn.name() == "AddmmBackward0"
    names = [n.name() if n is not None else None for n, _ in out.grad_fn.next_functions]
    assert names == ["torch::autograd::AccumulateGrad", None, "TBackward0"]
    assert out.grad_fn.next_functions[0][0].variable is lin.bias
    assert out.grad_fn.next_functions[2][0].next_functions[0][0].variable is lin.weight
    out3 = lin(ge.randn(2, 5, 4))
    assert out3.grad_fn.name() == "ViewBackward0"
    assert out3.grad_fn.next_functions[0][0].name() == "AddmmBackward0"
    assert gnn.Linear(4, 3, bias=False)(ge.randn(5, 4)).grad_fn.name() == "MmBackward0"


def test_linear_wrong_width_error():
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(64x100 and 784x128\)"
    ):
        gnn.Linear(784, 128)(ge.randn(64, 100))


def test_linear_init_bounds_and_shapes():
    lin = gnn.Linear(50, 20)
    assert lin.weight.shape == (20, 50) and lin.bias.shape == (20,)
    bound = 1 / np.sqrt(50)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.8 * bound  # uses the whole range
    assert lin.weight.dtype == ge.float32
    assert gnn.Linear(3, 2, dtype=ge.float64).weight.dtype == ge.float64


def test_mlp_cross_entropy_graph_and_grads():
    def make(lib):
        return lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 3))

    def run(m, x):
        lib = ge if isinstance(m, gnn.Module) else __import__("torch")
        return lib.nn.CrossEntropyLoss()(m(x), lib.tensor([0, 2, 1, 1, 0]))

    module_parity(make, rand(5, 4), run=run, input_grad=False)
    module_parity(make, rand(5, 4, dtype=np.float32), run=run, double=False)


def _lib_of(m):
    if isinstance(m, gnn.Module):
        return ge
    import torch

    return torch


LOSSES = {
    "MSELoss": (lambda lib, r: lib.nn.MSELoss(reduction=r), lambda: (rand(4, 3), rand(4, 3))),
    "L1Loss": (lambda lib, r: lib.nn.L1Loss(reduction=r), lambda: (rand(4, 3), rand(4, 3))),
    "CrossEntropyLoss": (
        lambda lib, r: lib.nn.CrossEntropyLoss(reduction=r),
        lambda: (rand(5, 4), lambda lib: lib.tensor([0, 3, 1, 1, 2])),
    ),
    "CrossEntropyLoss_w": (
        lambda lib, r: lib.nn.CrossEntropyLoss(
            weight=lib.tensor([1.0, 2.0, 0.5, 1.0], dtype=lib.float64), ignore_index=1, reduction=r
        ),
        lambda: (rand(5, 4), lambda lib: lib.tensor([0, 3, 1, 1, 2])),
    ),
    "NLLLoss": (
        lambda lib, r: lib.nn.NLLLoss(reduction=r),
        lambda: (rand(5, 4, high=-0.1), lambda lib: lib.tensor([0, 3, 1, 1, 2])),
    ),
    "BCELoss": (
        lambda lib, r: lib.nn.BCELoss(reduction=r),
        lambda: (rand(4, 3, low=0.05, high=0.95), rand(4, 3, low=0, high=1)),
    ),
    "BCEWithLogitsLoss": (
        lambda lib, r: lib.nn.BCEWithLogitsLoss(reduction=r),
        lambda: (rand(4, 3), rand(4, 3, low=0, high=1)),
    ),
    "BCEWithLogitsLoss_pw": (
        lambda lib, r: lib.nn.BCEWithLogitsLoss(
            reduction=r, pos_weight=lib.tensor([0.5, 2.0, 1.0], dtype=lib.float64)
        ),
        lambda: (rand(4, 3), rand(4, 3, low=0, high=1)),
    ),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules(name, reduction):
    make, inputs = LOSSES[name]
    module_parity(lambda lib: make(lib, reduction), *inputs())


def test_loss_module_repr_and_buffers():
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    for lib_make in [
        lambda lib: lib.nn.CrossEntropyLoss(weight=lib.ones(3)),
        lambda lib: lib.nn.BCEWithLogitsLoss(pos_weight=lib.ones(2)),
    ]:
        t, g = lib_make(torch), lib_make(ge)
        assert repr(g) == repr(t)
        assert list(g.state_dict()) == list(t.state_dict())


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_module(approximate):
    module_parity(lambda lib: lib.nn.GELU(approximate), rand(3, 5, low=-4, high=4))


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.nn.LeakyReLU(0.1),
        lambda lib: lib.nn.ELU(),
        lambda lib: lib.nn.Softplus(),
        lambda lib: lib.nn.Tanh(),
        lambda lib: lib.nn.Sigmoid(),
        lambda lib: lib.nn.ReLU(),
        lambda lib: lib.nn.Softmax(dim=1),
        lambda lib: lib.nn.LogSoftmax(dim=-1),
        lambda lib: lib.nn.Flatten(),
        lambda lib: lib.nn.Identity(),
        lambda lib: lib.nn.Flatten(0, -1),
        lambda lib: lib.nn.SELU(),
        lambda lib: lib.nn.SiLU(),
        lambda lib: lib.nn.Hardtanh(-0.5, 1.5),
        lambda lib: lib.nn.ReLU6(),
    ],
)
def test_activation_modules(make):
    module_parity(make, rand(2, 3, 4))


@pytest.mark.parametrize("shape,ns", [((4, 5), 5), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}])
def test_layer_norm_module(shape, ns, kwargs):
    def make(lib):
        m = lib.nn.LayerNorm(ns, **kwargs)
        if m.weight is not None:  # non-trivial affine parameters
            with lib.no_grad():
                m.weight.mul_(lib.tensor(rand(*m.weight.shape, positive=True), dtype=m.weight.dtype))
                if m.bias is not None:
                    m.bias.add_(lib.tensor(rand(*m.bias.shape), dtype=m.bias.dtype))
        return m

    module_parity(make, rand(*shape))


def test_layer_norm_init():
    m = gnn.LayerNorm(4)
    assert m.weight.tolist() == [1.0] * 4 and m.bias.tolist() == [0.0] * 4


@pytest.mark.parametrize("padding_idx", [None, 0, 2])
def test_embedding_repeated_indices(padding_idx):
    idx = lambda lib: lib.tensor([[1, 2, 1, 0], [3, 3, 3, 2]])  # noqa: E731
    module_parity(lambda lib: lib.nn.Embedding(5, 3, padding_idx=padding_idx), idx)
    e = gnn.Embedding(5, 3, padding_idx=padding_idx)
    if padding_idx is not None:
        assert e.weight[padding_idx].tolist() == [0.0, 0.0, 0.0]


def test_embedding_from_pretrained_and_max_norm():
    w = ge.tensor(rand(4, 2))
    e = gnn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad and e(ge.tensor([1])).tolist() == [w[1].tolist()]
    if HAS_TORCH:
        import torch

        tw = torch.tensor(rand(5, 3) * 3)
        t = torch.nn.Embedding(5, 3, max_norm=1.0, _weight=tw.clone())
        g = gnn.Embedding(5, 3, max_norm=1.0, _weight=ge.tensor(tw.numpy().copy()))
        idx = [0, 2, 2]
        np.testing.assert_allclose(
            g(ge.tensor(idx)).detach().numpy(), t(torch.tensor(idx)).detach().numpy(), rtol=1e-7
        )
        np.testing.assert_allclose(g.weight.detach().numpy(), t.weight.detach().numpy(), rtol=1e-7)


def test_dropout_module_eval_is_identity_and_train_scales():
    d = gnn.Dropout(0.25)
    x = ge.randn(400, 250, dtype=ge.float64, requires_grad=True)
    d.eval()
    assert d(x) is x
    d.train()
    ge.manual_seed(3)
    y = d(x)
    assert y.grad_fn.name() == "MulBackward0" and y.shape == x.shape
    ratio = y.detach().numpy() / x.detach().numpy()
    kept = ratio != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(ratio[kept], 1 / 0.75)
    if HAS_TORCH:
        import torch

        assert repr(d) == repr(torch.nn.Dropout(0.25))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        gnn.Dropout(1.5)


def test_rnn_cell_unrolled():
    def make(lib):
        return lib.nn.RNNCell(3, 4)

    def run(m, xs, h0):
        h = h0
        outs = []
        for t in range(xs.shape[0]):
            h = m(xs[t], h)
            outs.append(h)
        return outs

    module_parity(make, rand(5, 2, 3), rand(2, 4), run=run)
    module_parity(lambda lib: lib.nn.RNNCell(3, 4, nonlinearity="relu", bias=False), rand(2, 3), run=None)
    module_parity(make, rand(2, 3), run=lambda m, x: m(x))  # hx=None (zeros)
    module_parity(make, rand(3), rand(4), run=lambda m, x, h: m(x, h), graph=False)  # unbatched


def test_lstm_and_gru_cells():
    def run_lstm(m, xs, h0, c0):
        state = (h0, c0)
        outs = []
        for t in range(xs.shape[0]):
            state = m(xs[t], state)
            outs.extend(state)
        return outs

    module_parity(lambda lib: lib.nn.LSTMCell(3, 4), rand(3, 2, 3), rand(2, 4), rand(2, 4), run=run_lstm)
    module_parity(lambda lib: lib.nn.LSTMCell(3, 4), rand(2, 3), run=lambda m, x: m(x))

    def run_gru(m, xs, h0):
        h = h0
        outs = []
        for t in range(xs.shape[0]):
            h = m(xs[t], h)
            outs.append(h)
        return outs

    module_parity(lambda lib: lib.nn.GRUCell(3, 4), rand(3, 2, 3), rand(2, 4), run=run_gru)
    module_parity(lambda lib: lib.nn.GRUCell(3, 4, bias=False), rand(2, 3), run=lambda m, x: m(x))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_layers": 2, "batch_first": True},
        {"bidirectional": True},
        {"nonlinearity": "relu", "bias": False},
    ],
)
def test_sequence_modules(kind, kwargs):
    if kind != "RNN":
        kwargs = {k: v for k, v in kwargs.items() if k != "nonlinearity"}
    # torch's CPU LSTM is one fused oneDNN node: compare its values and every gradient only
    graph = kind != "LSTM"
    module_parity(lambda lib: getattr(lib.nn, kind)(3, 4, **kwargs), rand(5, 2, 3), graph=graph)
    batch = 5 if kwargs.get("batch_first") else 2
    h0 = rand(kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1), batch, 4)
    if kind == "LSTM":
        module_parity(
            lambda lib: lib.nn.LSTM(3, 4, **kwargs),
            rand(5, 2, 3),
            h0,
            h0 * 0.5,
            run=lambda m, x, h, c: m(x, (h, c)),
            graph=False,
        )
    else:
        module_parity(
            lambda lib: getattr(lib.nn, kind)(3, 4, **kwargs),
            rand(5, 2, 3),
            h0,
            run=lambda m, x, h: m(x, h),
            graph=graph,
        )


def test_sequence_module_unbatched():
    module_parity(lambda lib: lib.nn.GRU(3, 4), rand(5, 3), graph=False)
    module_parity(lambda lib: lib.nn.LSTM(3, 4, num_layers=2), rand(5, 3), graph=False)


def test_rnn_cell_errors_and_params():
    cell = gnn.RNNCell(3, 4)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert np.abs(cell.weight_ih.detach().numpy()).max() <= 0.5
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 5 expected 3"):
        cell(ge.randn(2, 5))
    with pytest.raises(RuntimeError, match="Input batch size 2 doesn't match hidden0 batch size 3"):
        cell(ge.randn(2, 3), ge.randn(3, 4))
    with pytest.raises(ValueError, match="RNNCell: Expected input to be 1D or 2D, got 3D instead"):
        cell(ge.randn(2, 3, 3))
    lstm = gnn.LSTM(3, 4, num_layers=2)
    assert [n for n, _ in lstm.named_parameters()][:5] == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "weight_ih_l1",
    ]


# --- Module API ------------------------------------------------------------------------------------------
def _nested(lib):
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 2), nn.Tanh())])
            self.scale = nn.Parameter(lib.ones(1))
            self.register_buffer("running", lib.zeros(2))
            self.register_buffer("tmp", lib.zeros(1), persistent=False)
            self.plain = [nn.Parameter(lib.ones(2))]  # a plain list is not registered
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.ReLU()})

        def forward(self, x):
            x = self.fc(x)
            for layer in self.layers:
                x = layer(x)
            return self.heads["a"](x) * self.scale

    return Block()


@requires_torch
def test_named_parameters_buffers_state_dict_order():
    import torch

    t, g = _nested(torch), _nested(ge)
    assert [n for n, _ in g.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in g.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert list(g.state_dict()) == list(t.state_dict())
    assert [n for n, _ in g.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in g.named_children()] == [n for n, _ in t.named_children()]
    assert [n for n, _ in g.named_parameters(prefix="m", recurse=False)] == [
        n for n, _ in t.named_parameters(prefix="m", recurse=False)
    ]
    assert repr(g) == repr(t)
    assert sorted(dir(g)) == sorted(d for d in dir(g))
    assert "fc" in dir(g) and "running" in dir(g)


def test_state_dict_tensors_are_detached_and_shared():
    g = _nested(ge)
    sd = g.state_dict()
    assert isinstance(sd, OrderedDict)
    w = sd["fc.weight"]
    assert type(w) is ge.Tensor and not w.requires_grad and w.grad_fn is None
    with ge.no_grad():
        g.fc.weight.fill_(2.0)
    assert w.tolist()[0][0] == 2.0  # shares storage
    kv = g.state_dict(keep_vars=True)
    assert kv["fc.weight"] is g.fc.weight
    assert list(g.state_dict(prefix="p.")) == ["p." + k for k in sd]


def test_load_state_dict_roundtrip_and_strict_errors():
    g1, g2 = _nested(ge), _nested(ge)
    res = g2.load_state_dict(g1.state_dict())
    assert repr(res) == "<All keys matched successfully>"
    assert res.missing_keys == [] and res.unexpected_keys == []
    np.testing.assert_array_equal(g2.fc.weight.detach().numpy(), g1.fc.weight.detach().numpy())
    sd = g1.state_dict()
    del sd["fc.bias"]
    sd["extra.weight"] = ge.zeros(1)
    with pytest.raises(RuntimeError) as info:
        g2.load_state_dict(sd)
    assert str(info.value) == (
        "Error(s) in loading state_dict for Block:\n\tMissing key(s) in state_dict: "
        '"fc.bias". \n\tUnexpected key(s) in state_dict: "extra.weight". '
    )
    res = g2.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc.bias"] and res.unexpected_keys == ["extra.weight"]
    bad = g1.state_dict()
    bad["fc.weight"] = ge.zeros(2, 2)
    with pytest.raises(
        RuntimeError,
        match=r"size mismatch for fc.weight: copying a param with shape "
        r"torch.Size\(\[2, 2\]\) from checkpoint, the shape in current model "
        r"is torch.Size\(\[4, 3\]\).",
    ):
        g2.load_state_dict(bad)


@requires_torch
def test_load_state_dict_error_text_matches_torch():
    import torch

    msgs = []
    for lib in (torch, ge):
        m = _nested(lib)
        sd = m.state_dict()
        del sd["layers.1.0.weight"]
        sd["heads.c.bias"] = lib.zeros(1)
        sd["scale"] = lib.zeros(3)
        with pytest.raises(RuntimeError) as info:
            m.load_state_dict(sd)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1]


def test_train_eval_propagation_and_return_self():
    g = _nested(ge)
    assert g.training and all(m.training for m in g.modules())
    assert g.eval() is g
    assert not any(m.training for m in g.modules())
    assert g.train() is g and all(m.training for m in g.modules())
    g.layers.train(False)
    assert g.training and not g.layers[1][0].training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        g.train("yes")


def test_zero_grad_requires_grad_apply_and_casts():
    g = _nested(ge)
    g(ge.randn(2, 3)).sum().backward()
    assert g.fc.weight.grad is not None
    grad = g.fc.weight.grad
    g.zero_grad(set_to_none=False)
    assert g.fc.weight.grad is grad and not grad.any()
    g.zero_grad()
    assert all(p.grad is None for p in g.parameters())
    assert g.requires_grad_(False) is g and not any(p.requires_grad for p in g.parameters())
    seen = []
    assert g.apply(lambda m: seen.append(type(m).__name__)) is g
    assert seen[-1] == "Block" and seen[0] == "Linear"
    w = g.fc.weight
    assert g.double() is g and g.fc.weight is w and w.dtype == ge.float64 and g.running.dtype == ge.float64
    assert g.float().fc.weight.dtype == ge.float32
    assert g.to(ge.float64).fc.weight.dtype == ge.float64 and g.to("cpu") is g and g.cpu() is g


def test_registration_rules_and_attribute_errors():
    g = _nested(ge)
    assert "plain" not in dict(g.named_parameters())
    with pytest.raises(AttributeError, match="'Block' object has no attribute 'missing'"):
        g.missing  # noqa: B018
    with pytest.raises(TypeError, match="cannot assign 'torch.FloatTensor' as parameter 'scale'"):
        g.scale = ge.ones(1)
    g.scale = None
    assert "scale" not in dict(g.named_parameters()) and g.scale is None
    g.fc = gnn.Identity()
    del g.fc
    assert "fc" not in dict(g.named_children())
    with pytest.raises(KeyError):
        g.register_buffer("a.b", ge.zeros(1))
    with pytest.raises(KeyError, match="attribute 'heads' already exists"):
        g.register_parameter("heads", gnn.Parameter(ge.ones(1)))

    class NoInit(gnn.Module):
        def __init__(self):
            self.fc = gnn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"cannot assign module before Module.__init__\(\) call"):
        NoInit()
    with pytest.raises(
        NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'
    ):
        gnn.Module()(1)


def test_parameter():
    p = gnn.Parameter(ge.tensor([1.0, 2.0]))
    assert isinstance(p, ge.Tensor) and isinstance(p, gnn.Parameter) and p.requires_grad and p.is_leaf
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert not gnn.Parameter(ge.ones(1), requires_grad=False).requires_grad
    assert type(p * 2) is ge.Tensor and type(p.detach()) is ge.Tensor
    import copy

    q = copy.deepcopy(p)
    assert type(q) is gnn.Parameter and q.requires_grad and q.tolist() == [1.0, 2.0]
    if HAS_TORCH:
        import torch

        assert repr(p) == repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))


@requires_torch
@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 3)),
        lambda lib: lib.nn.Sequential(),
        lambda lib: lib.nn.ModuleList([lib.nn.Linear(2, 2), lib.nn.Linear(2, 2), lib.nn.Tanh()]),
        lambda lib: lib.nn.ModuleDict({"a": lib.nn.ReLU(), "b": lib.nn.Sequential(lib.nn.Sigmoid())}),
        lambda lib: lib.nn.GELU("tanh"),
        lambda lib: lib.nn.LeakyReLU(0.2, True),
        lambda lib: lib.nn.ELU(),
        lambda lib: lib.nn.Softplus(),
        lambda lib: lib.nn.Softmax(1),
        lambda lib: lib.nn.LogSoftmax(dim=1),
        lambda lib: lib.nn.Flatten(),
        lambda lib: lib.nn.Dropout(0.2, inplace=True),
        lambda lib: lib.nn.Embedding(10, 3, padding_idx=0),
        lambda lib: lib.nn.LayerNorm((4, 5), bias=False),
        lambda lib: lib.nn.LayerNorm(5, elementwise_affine=False),
        lambda lib: lib.nn.RNNCell(3, 4),
        lambda lib: lib.nn.RNNCell(3, 4, bias=False, nonlinearity="relu"),
        lambda lib: lib.nn.LSTMCell(3, 4),
        lambda lib: lib.nn.GRUCell(3, 4),
        lambda lib: lib.nn.MSELoss(),
        lambda lib: lib.nn.Identity(),
        lambda lib: lib.nn.Linear(3, 4, bias=False),
        lambda lib: lib.nn.RNN(3, 4, 2, batch_first=True),
        lambda lib: lib.nn.GRU(3, 4, bidirectional=True),
        lambda lib: lib.nn.LSTM(3, 4),
        lambda lib: lib.nn.ReLU(inplace=True),
        lambda lib: lib.nn.SiLU(),
        lambda lib: lib.nn.Hardtanh(),
        lambda lib: lib.nn.ReLU6(inplace=True),
        lambda lib: lib.nn.SELU(),
        lambda lib: lib.nn.Softmin(0),
        lambda lib: lib.nn.Unflatten(1, (2, 3)),
        lambda lib: lib.nn.BCEWithLogitsLoss(),
        lambda lib: lib.nn.ModuleList([lib.nn.Linear(2, 2) for _ in range(3)]),
    ],
)
def test_repr_matches_torch(make):
    import torch

    assert repr(make(ge)) == repr(make(torch))


def test_containers():
    seq = gnn.Sequential(gnn.Linear(2, 3), gnn.ReLU(), gnn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[0], gnn.Linear) and isinstance(seq[-1], gnn.Linear)
    sub = seq[1:]
    assert isinstance(sub, gnn.Sequential) and list(sub._modules) == ["1", "2"]
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    seq.append(gnn.Sigmoid())
    assert len(seq) == 4 and [n for n, _ in seq.named_children()][-1] == "3"
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"]
    with pytest.raises(IndexError, match="index 5 is out of range"):
        seq[5]  # noqa: B018
    ml = gnn.ModuleList([gnn.Linear(1, 1)])
    ml.append(gnn.Tanh())
    ml += [gnn.ReLU()]
    assert len(ml) == 3 and [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    md = gnn.ModuleDict({"x": gnn.Linear(1, 2)})
    md["y"] = gnn.ReLU()
    assert list(md.keys()) == ["x", "y"] and "x" in md and len(md) == 2
    out = seq(ge.randn(4, 2))
    assert out.shape == (4, 1)
    pl = gnn.ParameterList([gnn.Parameter(ge.ones(2)), ge.zeros(3)])
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"] and isinstance(pl[1], gnn.Parameter)


def test_forward_hooks_order_args_and_removal():
    m = gnn.Linear(2, 2)
    calls = []

    def pre(mod, args):
        calls.append(("pre", mod is m, len(args)))

    def pre_kw(mod, args, kwargs):
        calls.append(("pre_kw", dict(kwargs)))

    def post(mod, args, out):
        calls.append(("post", tuple(out.shape)))

    def post_replace(mod, args, out):
        calls.append(("replace",))
        return out * 0

    h1 = m.register_forward_pre_hook(pre)
    h2 = m.register_forward_pre_hook(pre_kw, with_kwargs=True)
    h3 = m.register_forward_hook(post)
    h4 = m.register_forward_hook(post_replace)
    h5 = m.register_forward_hook(lambda *a: calls.append(("first",)), prepend=True)
    out = m(ge.ones(3, 2))
    assert calls == [("pre", True, 1), ("pre_kw", {}), ("first",), ("post", (3, 2)), ("replace",)]
    assert not out.any()
    for h in (h1, h2, h3, h4, h5):
        h.remove()
    calls.clear()
    m(ge.ones(3, 2))
    assert calls == []
    # a pre-hook may replace the input
    with m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,)):
        assert not m(ge.ones(1, 2)).sub(m.bias).any()


def test_forward_hook_always_call():
    m = gnn.Linear(2, 2)
    seen = []
    m.register_forward_hook(lambda mod, args, out: seen.append("always"), always_call=True)
    with pytest.raises(RuntimeError):
        m(ge.ones(3, 5))
    assert seen == ["always"]


def test_global_module_hooks():
    from gradlens.engine.nn.modules import module as gmodule

    seq = gnn.Sequential(gnn.Linear(2, 3), gnn.ReLU())
    calls = []
    h1 = gmodule.register_module_forward_pre_hook(lambda mod, args: calls.append(("pre", type(mod).__name__)))
    h2 = gmodule.register_module_forward_hook(
        lambda mod, args, out: calls.append(("post", type(mod).__name__))
    )
    local = seq[0].register_forward_hook(lambda mod, args, out: calls.append(("local", type(mod).__name__)))
    try:
        seq(ge.ones(1, 2))
    finally:
        h1.remove()
        h2.remove()
        local.remove()
    assert calls == [
        ("pre", "Sequential"),
        ("pre", "Linear"),
        ("post", "Linear"),
        ("local", "Linear"),
        ("pre", "ReLU"),
        ("post", "ReLU"),
        ("post", "Sequential"),
    ]
    calls.clear()
    seq(ge.ones(1, 2))
    assert calls == []
    assert not gmodule._global_forward_hooks and not gmodule._global_forward_pre_hooks


@requires_torch
def test_global_forward_hooks_alone_match_torch():
    """Global forward hooks with no other hook take the native engine's short call path: its results, the
    hooks' order, replaced inputs and outputs, and hooks removed or added mid-call match torch's."""
    import torch
    import torch.nn.modules.module as tmodule

    from gradlens.engine.nn.modules import module as gmodule

    def run(lib, mm):
        lib.manual_seed(0)
        seq = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU())
        with lib.no_grad():
            seq[0].weight.copy_(lib.tensor([[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]]))
            seq[0].bias.copy_(lib.tensor([0.1, -0.2, 0.3]))
        calls, handles = [], []

        def pre(mod, args):
            calls.append(("pre", type(mod).__name__))
            if isinstance(mod, lib.nn.Linear):
                return args[0] * 2  # not a tuple: wrapped into one, as torch does

        def post(mod, args, out):
            calls.append(("post", type(mod).__name__, tuple(args[0].shape)))
            if isinstance(mod, lib.nn.ReLU):
                return out + 1

        def once(mod, args):
            calls.append(("once", type(mod).__name__))
            handles[0].remove()  # removed during its own call: the call's snapshot still runs the others
            handles.append(mm.register_module_forward_pre_hook(late))

        def late(mod, args):
            calls.append(("late", type(mod).__name__))

        handles.append(mm.register_module_forward_pre_hook(once))
        handles.append(mm.register_module_forward_pre_hook(pre))
        handles.append(mm.register_module_forward_hook(post))
        try:
            out = seq(lib.tensor([[1.0, 2.0], [-3.0, 0.5]]))
        finally:
            for h in handles:
                h.remove()
        return out.detach().numpy(), calls

    got, got_calls = run(ge, gmodule)
    want, want_calls = run(torch, tmodule)
    np.testing.assert_allclose(got, want, **TOL[got.dtype])
    assert got_calls == want_calls
    assert not gmodule._global_forward_hooks and not gmodule._global_forward_pre_hooks


@requires_torch
def test_full_backward_hooks_match_torch():
    import torch

    records = {}
    for lib in (torch, ge):
        nn = lib.nn
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        log = []

        def hook(mod, gin, gout, log=log):
            log.append(
                (
                    "bwd",
                    type(mod).__name__,
                    [None if g is None else tuple(g.shape) for g in gin],
                    [None if g is None else tuple(g.shape) for g in gout],
                )
            )

        def pre(mod, gout, log=log):
            log.append(("bwd_pre", type(mod).__name__))

        handles = [m.register_full_backward_hook(hook) for m in net]
        handles.append(net[2].register_full_backward_pre_hook(pre))
        net[0].weight.register_hook(lambda g, log=log: log.append(("tensor", tuple(g.shape))))
        x = lib.randn(5, 3, requires_grad=True)
        out = net(x)
        records[lib.__name__] = [graph_signature(out)]
        out.sum().backward()
        records[lib.__name__].append(log)
        for h in handles:
            h.remove()
    assert records["gradlens.engine"] == records["torch"]


@requires_torch
def test_full_backward_hook_replaces_grad_input():
    import torch

    grads = []
    for lib in (torch, ge):
        lin = lib.nn.Linear(2, 2).double()
        x = lib.tensor(rand(3, 2), requires_grad=True)
        lin.register_full_backward_hook(lambda mod, gin, gout: (gin[0] * 10,))
        lin(x).sum().backward()
        grads.append(np.array(x.grad.tolist()) / np.array(lin.weight.sum(0).tolist()))
    np.testing.assert_allclose(grads[1], grads[0])
    np.testing.assert_allclose(grads[1], 10.0)


def test_global_full_backward_hook():
    from gradlens.engine.nn.modules import module as gmodule

    orders = []
    libs = [ge]
    if HAS_TORCH:
        import torch

        libs.append(torch)
    for lib in libs:
        mod = gmodule if lib is ge else lib.nn.modules.module
        seen = []
        h = mod.register_module_full_backward_hook(
            lambda m, gin, gout, seen=seen: seen.append(type(m).__name__)
        )
        try:
            net = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.Sigmoid())
            with pytest.warns(UserWarning, match="Full backward hook is firing"):
                net(lib.randn(3, 2)).sum().backward()
        finally:
            h.remove()
        orders.append(seen)
    assert orders[0] == ["Sequential", "Sigmoid", "Linear"]
    assert all(o == orders[0] for o in orders)


def test_call_without_hooks_is_plain_forward():
    m = gnn.Linear(2, 2)
    out = m(ge.ones(1, 2))
    assert out.grad_fn.name() == "AddmmBackward0"  # no BackwardHookFunctionBackward inserted


# --- init and utils ---------------------------------------------------------------------------------------
@requires_torch
def test_init_gains_and_fans():
    import torch

    for nl, param in [
        ("linear", None),
        ("relu", None),
        ("tanh", None),
        ("leaky_relu", 0.2),
        ("selu", None),
        ("sigmoid", None),
        ("leaky_relu", None),
    ]:
        assert gnn.init.calculate_gain(nl, param) == torch.nn.init.calculate_gain(nl, param)
    for shape in [(3, 4), (5, 2, 3, 3)]:
        assert gnn.init._calculate_fan_in_and_fan_out(
            ge.empty(*shape)
        ) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed"):
        gnn.init._calculate_fan_in_and_fan_out(ge.empty(3))


def test_init_functions_statistics():
    ge.manual_seed(0)
    w = ge.empty(400, 300)
    assert gnn.init.kaiming_uniform_(w, a=5**0.5) is w
    bound = 1 / np.sqrt(300)
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.99 * bound
    gnn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - np.sqrt(2 / 300)) < 0.002
    gnn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= np.sqrt(6 / 700)
    gnn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2 * np.sqrt(2 / 700)) < 0.002
    assert gnn.init.constant_(w, 0.5).numpy().min() == 0.5
    assert gnn.init.zeros_(w).numpy().max() == 0 and gnn.init.ones_(w).numpy().min() == 1
    gnn.init.uniform_(w, -2, -1)
    assert w.numpy().max() <= -1 and w.numpy().min() >= -2
    gnn.init.normal_(w, 3.0, 0.1)
    assert abs(w.numpy().mean() - 3.0) < 0.01
    p = gnn.Parameter(ge.empty(3, 3))
    gnn.init.kaiming_uniform_(p)  # in place on a leaf requiring grad: runs under no_grad
    assert p.requires_grad and p.grad_fn is None


@requires_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    import torch

    grads = [rand(3, 4), rand(5), rand(2, 2)]
    out = {}
    for lib, utils in ((torch, torch.nn.utils), (ge, gnn.utils)):
        params = [lib.nn.Parameter(lib.zeros(*g.shape, dtype=lib.float64)) for g in grads]
        for p, g in zip(params, grads, strict=False):
            p.grad = lib.tensor(g.copy())
        params.append(lib.nn.Parameter(lib.zeros(2)))  # no grad: skipped
        versions = [p.grad._version for p in params[:3]]
        total = utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        out[lib.__name__] = (
            float(total),
            [p.grad.numpy().copy() for p in params[:3]],
            [p.grad._version - v for p, v in zip(params[:3], versions, strict=False)],
            total.dtype,
        )
    t, g = out["torch"], out["gradlens.engine"]
    np.testing.assert_allclose(g[0], t[0], rtol=1e-12)
    for a, b in zip(t[1], g[1], strict=False):
        np.testing.assert_allclose(b, a, rtol=1e-12)
    assert g[2] == t[2]  # grads are multiplied even when not clipped
    assert repr(g[3]) == str(t[3])


def test_clip_grad_value_and_nonfinite():
    p = gnn.Parameter(ge.zeros(4))
    p.grad = ge.tensor([-3.0, 0.5, 2.0, -0.25])
    gnn.utils.clip_grad_value_([p], 1.0)
    assert p.grad.tolist() == [-1.0, 0.5, 1.0, -0.25]
    p.grad = ge.tensor([float("inf"), 1.0, 0.0, 0.0])
    with pytest.raises(
        RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is non-finite"
    ):
        gnn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    assert float(gnn.utils.clip_grad_norm_([], 1.0)) == 0.0


def test_parameters_vector_roundtrip():
    m = gnn.Linear(3, 2)
    vec = gnn.utils.parameters_to_vector(m.parameters())
    assert vec.shape == (8,)
    gnn.utils.vector_to_parameters(ge.arange(8, dtype=ge.float32), m.parameters())
    assert m.weight.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and m.bias.tolist() == [6.0, 7.0]


def test_inplace_relu_in_sequential():
    def make(lib):
        return lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.ReLU(inplace=True), lib.nn.Linear(4, 2))

    module_parity(make, rand(5, 3))


def test_module_deepcopy_and_pickle():
    import copy
    import pickle

    m = gnn.Sequential(gnn.Linear(3, 4), gnn.ReLU(), gnn.LayerNorm(4))
    m(ge.randn(2, 3)).sum().backward()
    for m2 in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert type(m2[0].weight) is gnn.Parameter and m2[0].weight is not m[0].weight
        assert m2[0].weight.requires_grad and m2[0].weight.tolist() == m[0].weight.tolist()
        assert repr(m2) == repr(m)


def test_gradient_penalty_through_modules():
    # create_graph through Linear/GELU/LayerNorm/MSELoss, then backward into the parameters
    def make(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.LayerNorm(5), nn.Linear(5, 1))

    def run(m, x):
        lib = _lib_of(m)
        out = m(x)
        (gx,) = lib.autograd.grad(out.sum(), x, create_graph=True)
        return lib.nn.functional.mse_loss(out, lib.zeros_like(out)) + (gx * gx).sum()

    module_parity(make, rand(4, 3), run=run, graph=False)


@requires_torch
def test_training_loop_matches_torch():
    import torch

    x, y = rand(16, 4), np.array([0, 1, 2, 1] * 4)
    losses, finals = {}, {}
    models = {}
    for lib in (torch, ge):
        nn = lib.nn
        models[lib.__name__] = nn.Sequential(
            nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.0), nn.Linear(8, 3)
        ).double()
    copy_weights(models["torch"], models["gradlens.engine"])
    for lib in (torch, ge):
        model = models[lib.__name__]
        xs, ys = lib.tensor(x), lib.tensor(y)
        loss_fn = lib.nn.CrossEntropyLoss()
        hist = []
        for _ in range(5):
            model.zero_grad()
            loss = loss_fn(model(xs), ys)
            loss.backward()
            lib.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            with lib.no_grad():
                for p in model.parameters():
                    p -= 0.5 * p.grad
            hist.append(loss.item())
        losses[lib.__name__] = hist
        finals[lib.__name__] = [p.detach().numpy().copy() for p in model.parameters()]
    np.testing.assert_allclose(losses["gradlens.engine"], losses["torch"], rtol=1e-10)
    for a, b in zip(finals["torch"], finals["gradlens.engine"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_buffers_tied_weights_and_hook_flag_cleanup():
    from gradlens.engine.nn.modules import module as gmodule

    class M(gnn.Module):
        def __init__(self):
            super().__init__()
            self.a = gnn.Linear(2, 2, bias=False)
            self.b = gnn.Linear(2, 2, bias=False)
            self.b.weight = self.a.weight  # tied
            self.stats = gnn.Buffer(ge.zeros(2))
            self.tmp = gnn.Buffer(ge.ones(1), persistent=False)

    m = M()
    assert [n for n, _ in m.named_parameters()] == ["a.weight"]
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == ["a.weight", "b.weight"]
    assert [n for n, _ in m.named_buffers()] == ["stats", "tmp"]
    assert list(m.state_dict()) == ["stats", "a.weight", "b.weight"]
    m.stats = ge.ones(2)  # re-assigning a registered buffer keeps it a buffer
    assert m._buffers["stats"].tolist() == [1.0, 1.0]
    h = gmodule.register_module_forward_hook(lambda *a: None, with_kwargs=True, always_call=True)
    assert h.id in gmodule._global_forward_hooks_with_kwargs
    h.remove()
    assert h.id not in gmodule._global_forward_hooks_with_kwargs
    assert h.id not in gmodule._global_forward_hooks_always_called
    h2 = m.register_forward_hook(lambda *a: None, with_kwargs=True)
    h2.remove()
    assert not m._forward_hooks and not m._forward_hooks_with_kwargs


@pytest.mark.parametrize(
    "kind,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (2, 3, 4, 2))]
)
@pytest.mark.parametrize(
    "kwargs", [{}, {"affine": False}, {"track_running_stats": False}, {"momentum": None}, {"bias": False}]
)
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_modules(kind, shape, kwargs, train):
    def make(lib):
        m = getattr(lib.nn, kind)(3, **kwargs)
        if m.weight is not None:
            with lib.no_grad():
                m.weight.mul_(lib.tensor([0.5, 2.0, 1.5]))
                if m.bias is not None:
                    m.bias.add_(lib.tensor([0.1, -0.2, 0.3]))
        if m.running_mean is not None:
            m.running_mean.add_(0.25)
            m.running_var.mul_(1.5)
        return m

    def run(m, *xs):
        return [m(x) for x in xs]  # two batches: running statistics accumulate

    tm, gm = module_parity(make, rand(*shape), rand(*shape) * 2 + 1, run=run, train=train)
    t_buf, g_buf = dict(tm.named_buffers()), dict(gm.named_buffers())
    assert list(t_buf) == list(g_buf)
    for name, tb in t_buf.items():
        assert g_buf[name].dtype == ge.int64 if name == "num_batches_tracked" else True
        np.testing.assert_allclose(g_buf[name].numpy(), tb.numpy(), rtol=1e-12, err_msg=name)


def test_batch_norm_functional_errors_and_repr():
    with pytest.raises(
        ValueError,
        match=r"Expected more than 1 value per channel when training, got input size "
        r"torch.Size\(\[1, 3\]\)",
    ):
        gnn.BatchNorm1d(3)(ge.randn(1, 3))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        gnn.BatchNorm1d(3)(ge.randn(5, 3, 2, 2))
    with pytest.raises(RuntimeError, match="running_mean should contain 4 elements not 3"):
        gnn.BatchNorm1d(3)(ge.randn(5, 4))
    m = gnn.BatchNorm1d(3)
    assert m(ge.randn(4, 3)).grad_fn.name() == "NativeBatchNormBackward0"
    assert int(m.num_batches_tracked) == 1 and m.num_batches_tracked.dtype == ge.int64
    if HAS_TORCH:
        import torch

        for make in [
            lambda lib: lib.nn.BatchNorm1d(3),
            lambda lib: lib.nn.BatchNorm2d(4, momentum=None, affine=False),
        ]:
            assert repr(make(ge)) == repr(make(torch))
            assert list(make(ge).state_dict()) == list(make(torch).state_dict())
