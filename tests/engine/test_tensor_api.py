"""Tensor API parity with torch: dtype conversions (``to``, ``float()`` ...), ``new_*`` constructors, Python
protocols (float/int/bool/len/iter/item/tolist/numpy/format), ``.data`` and ``detach()`` aliasing, and a
table of reprs compared character for character with torch's."""

import warnings

import numpy as np
import pytest

import gradlens.engine as ge
from gradlens.engine._format import set_printoptions

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, rand

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


# --- conversions ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method", ["float", "double", "half", "long", "int", "bool", "short", "char", "byte"]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cast_methods(method, dtype):
    check_parity(
        lambda lib, x: getattr(x, method)(), rand(2, 3, dtype=dtype), rtol=1e-3 if method == "half" else None
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda lib, x: x.to(lib.float64),
        lambda lib, x: x.to(lib.float32),
        lambda lib, x: x.to("cpu"),
        lambda lib, x: x.to("cpu", lib.float64),
        lambda lib, x: x.to(dtype=lib.float64),
        lambda lib, x: x.to(device="cpu", dtype=lib.float64),
        lambda lib, x: x.to(lib.zeros(1, dtype=lib.float64)),
        lambda lib, x: x.to(lib.device("cpu")),
        lambda lib, x: x.to(lib.float32, copy=True),
        lambda lib, x: x.to(lib.int64),
        lambda lib, x: x.type(lib.float64),
        lambda lib, x: x.type("torch.DoubleTensor"),
        lambda lib, x: x.type_as(lib.zeros(1, dtype=lib.float64)),
        lambda lib, x: x.double().float() * 2,
    ],
)
def test_to_variants(call):
    check_parity(call, rand(3, dtype=np.float32))


@needs_torch
def test_conversion_identity_rules():
    import torch

    for lib in (torch, ge):
        x = lib.ones(3, requires_grad=True)
        same = [
            x.float() is x,
            x.to(lib.float32) is x,
            x.to("cpu") is x,
            x.to(x) is x,
            x.type(lib.float32) is x,
            x.to(lib.float32, copy=True) is x,
            x.double() is x,
            x.cpu() is x,
        ]
        assert same == [True, True, True, True, True, False, False, True], lib
        assert x.type() == "torch.FloatTensor" and x.double().type() == "torch.DoubleTensor"
        assert lib.tensor([1]).type() == "torch.LongTensor"
        assert x.long().requires_grad is False and x.long().grad_fn is None


def test_cast_gradient_dtype_and_second_derivative():
    def fn(lib, x):
        y = x.double() * x.double()
        (g,) = lib.autograd.grad(y.sum(), (x,), create_graph=True)
        return g

    check_parity(fn, rand(3, dtype=np.float32), graph=False)


def test_to_cuda_is_refused():
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):  # a CPU-only torch's error
        ge.ones(2).to("cuda")


@pytest.mark.parametrize(
    "call",
    [
        lambda lib, z: z.new_zeros(2),
        lambda lib, z: z.new_zeros((2, 3)),
        lambda lib, z: z.new_ones(2, 2),
        lambda lib, z: z.new_full((2,), 3),
        lambda lib, z: z.new_tensor([1, 2]),
        lambda lib, z: z.new_tensor(3),
        lambda lib, z: z.new_zeros(2, dtype=lib.int64),
        lambda lib, z: z.new_tensor([1, 2], dtype=lib.float32),
        lambda lib, z: z.new_full((2,), 3, requires_grad=True),
        lambda lib, z: z.new_empty(2, 3).shape,
        lambda lib, z: z.long().new_full((2,), 2.5),
        lambda lib, z: z.long().new_zeros(2),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_constructors(call, dtype):
    check_parity(call, rand(2, 3, dtype=dtype), grad=False)


def test_new_tensor_from_tensor_warns():
    with pytest.warns(UserWarning, match="To copy construct from a tensor"):
        t = ge.zeros(2, dtype=ge.float64).new_tensor(ge.ones(2))
    assert t.dtype is ge.float64


# --- Python protocols -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, x, s: float(x),
        lambda lib, x, s: int(x),
        lambda lib, x, s: bool(x),
        lambda lib, x, s: len(s),
        lambda lib, x, s: iter(s),
        lambda lib, x, s: x.item(),
        lambda lib, x, s: x.numpy(),
        lambda lib, x, s: np.asarray(x),
        lambda lib, x, s: bool(lib.tensor([])),
        lambda lib, x, s: float(lib.tensor([])),
        lambda lib, x, s: int(lib.tensor([1, 2])),
        lambda lib, x, s: [1, 2][lib.tensor(1.0)],
        lambda lib, x, s: format(x, ".2f"),
        lambda lib, x, s: complex(x),
    ],
)
def test_protocol_errors(fn):
    t_err, g_err = check_error(fn, rand(2), rand())
    assert str(g_err) == str(t_err)


@needs_torch
def test_protocol_values():
    import torch

    def values(lib):
        x = lib.tensor([1.5, 2.5], requires_grad=True)
        s = lib.tensor(2.5, requires_grad=True)
        i = lib.tensor([[3]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = [
                float(s),
                int(s),
                bool(s),
                len(x),
                s.item(),
                x.tolist(),
                s.tolist(),
                float(lib.tensor([3.0])),
                int(i),
                complex(lib.tensor(2.0)),
                [1, 2, 3][lib.tensor(1)],
                [1, 2, 3][lib.tensor([1])],
                format(s, ".2f"),
                f"{x}",
                len([v for v in x]),
                x.detach().numpy().tolist(),
                x.numpy(force=True).tolist(),
                lib.tensor(3).__index__(),
                i.tolist(),
                bool(lib.tensor([0.0])),
            ]
        return out

    assert values(ge) == values(torch)


def test_float_of_grad_tensor_warns():
    # torch emits this warning once per process (TORCH_WARN_ONCE), so only the native side is checked here
    s = ge.tensor(2.5, requires_grad=True)
    with pytest.warns(UserWarning, match="Converting a tensor with requires_grad=True to a scalar"):
        float(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.item()
        int(s)


# --- aliasing: .data, detach ------------------------------------------------------------------------------
@needs_torch
def test_detach_and_data_aliasing():
    import torch

    def trace(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        d = x.detach()
        out = [d.requires_grad, d.is_leaf, d.data_ptr() == x.data_ptr()]
        d[0] = 5.0
        out.append((x.tolist(), x._version, d._version))
        with lib.no_grad():
            x.add_(1)
        out.append((d.tolist(), x._version, d._version))
        dd = x.data
        out.append((dd.requires_grad, dd.is_leaf, dd._version, dd.data_ptr() == x.data_ptr()))
        dd.mul_(2)
        out.append((x.tolist(), x._version, dd._version))
        x.data = lib.zeros(2)
        out.append((x.tolist(), x.requires_grad))
        return out

    assert trace(ge) == trace(torch)


def test_detach_shares_version_counter_for_saved_check():
    def fn(lib, x):
        h = x * 1
        out = h.sigmoid()
        out.detach().mul_(2)  # shares the version counter: the saved output is now stale
        out.sum().backward()

    check_error(fn, rand(3), match="modified by an inplace operation")


# --- repr -------------------------------------------------------------------------------------------------
REPRS = [
    "lib.tensor([6., 12., 18.])",
    "lib.tensor([1.5, 2.25, -3.125])",
    "lib.tensor([1e-5, 1.])",
    "lib.tensor([1e9, 1.])",
    "lib.tensor([123456789., 1.])",
    "lib.tensor([1., 2000.])",
    "lib.tensor([0.5, 1000.])",
    "lib.tensor(3.5)",
    "lib.tensor(3)",
    "lib.tensor(True)",
    "lib.tensor([True, False])",
    "lib.tensor([1, -20, 300])",
    "lib.tensor([])",
    "lib.zeros(0, 3)",
    "lib.tensor([], dtype=lib.int64)",
    "lib.zeros(2, 0, dtype=lib.float64)",
    "lib.tensor([1., 2.], dtype=lib.float64)",
    "lib.tensor([1, 2], dtype=lib.int32)",
    "lib.tensor([1., 2.], dtype=lib.float16)",
    "lib.tensor([1, 2], dtype=lib.uint8)",
    "lib.arange(2000)",
    "lib.arange(2000.).reshape(40, 50)",
    "lib.arange(1200.).reshape(2, 3, 200)",
    "lib.arange(24.).reshape(2, 3, 4)",
    "lib.tensor([float('nan'), 1., float('inf'), -float('inf')])",
    "lib.tensor([float('nan'), 1.5])",
    "lib.tensor([0., 0.])",
    "lib.tensor([-0., 1.])",
    "lib.tensor([float('nan')])",
    "lib.tensor([[1., 2.], [3., 4.]], requires_grad=True)",
    "lib.tensor([1., 2.], requires_grad=True) * 2",
    "lib.tensor([1., 2.], dtype=lib.float64, requires_grad=True) + 1",
    "lib.arange(100.) / 7",
    "lib.arange(30.).reshape(3, 10) / 3 + 1000",
    "lib.tensor([1e-10, 1e10])",
    "lib.tensor([[1e-3, 5.]])",
    "lib.tensor(-0.)",
    "lib.tensor(1e20)",
    "lib.tensor(1e-20)",
    "lib.tensor([2.5e-4])",
    "lib.tensor([1.23456789e-2, 3.])",
    "lib.ones(3, 1, 2)",
    "lib.tensor([[True, False], [False, True]])",
    "lib.arange(50.).reshape(5, 10) * 1e6",
    "lib.tensor(np.linspace(-1, 1, 25, dtype=np.float64)).reshape(5, 5)",
    "lib.tensor([10**12, -5])",
    "lib.ones(1001)",
    "lib.tensor(np.arange(1001, dtype=np.float32) ** 2)",
    "lib.tensor([1.5], requires_grad=True).sum()",
    "lib.tensor([0.1, 0.2, 0.3], dtype=lib.float64).reshape(1, 3)",
    "lib.ones(2, 2, 2, 2)",
    "lib.tensor(7, dtype=lib.int32)",
    "lib.tensor(np.arange(40, dtype=np.float64).reshape(2, 20) * 1.1)",
    "lib.zeros(3).copy_(lib.ones(3, requires_grad=True) * 1)",
    "lib.tensor([1., 2.], requires_grad=True) @ lib.ones(2)",
    "lib.ones(2, 3, requires_grad=True).double()",
    "lib.arange(12.).reshape(3, 4)[:, 1:3]",
    "lib.tensor([123.456, -0.001, 42.])",
    "lib.tensor([[1, 2], [3, 4]], dtype=lib.int64) * 100000",
]


@needs_torch
@pytest.mark.parametrize("expr", REPRS)
def test_repr_matches_torch(expr):
    import torch

    assert repr(eval(expr, {"lib": ge, "np": np})) == repr(eval(expr, {"lib": torch, "np": np}))
    assert str(eval(expr, {"lib": ge, "np": np})) == str(eval(expr, {"lib": torch, "np": np}))


def test_repr_without_torch():
    assert repr(ge.tensor([6.0, 12.0, 18.0]) / 3 * 3) == "tensor([ 6., 12., 18.])"
    assert repr(ge.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(ge.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<MulBackward0>)"
    assert repr(ge.tensor([1.0, 2.0], dtype=ge.float64)) == "tensor([1., 2.], dtype=torch.float64)"
    assert repr(ge.tensor([1, 2])) == "tensor([1, 2])"


@needs_torch
def test_parameter_prefix_and_long_suffix_wrap():
    import torch

    class Parameter(ge.Tensor):  # the native nn.Parameter is a Tensor subclass with this name
        pass

    p = Parameter([1.0])
    p.requires_grad_(True)
    assert repr(p) == repr(torch.nn.Parameter(torch.tensor([1.0])))
    t_long = torch.arange(16.0, dtype=torch.float64).reshape(2, 8).requires_grad_() * 1.5
    g_long = ge.arange(16.0, dtype=ge.float64).reshape(2, 8).requires_grad_() * 1.5
    assert repr(g_long) == repr(t_long)


@needs_torch
def test_printoptions():
    import torch

    try:
        for kwargs in (
            dict(precision=2),
            dict(sci_mode=True),
            dict(threshold=5, edgeitems=2),
            dict(linewidth=30),
            dict(profile="short"),
        ):
            torch.set_printoptions(**kwargs)
            set_printoptions(**kwargs)
            for expr in (
                "lib.arange(12.).reshape(3, 4) / 7",
                "lib.tensor([1.23456, 100.5])",
                "lib.arange(20)",
            ):
                assert repr(eval(expr, {"lib": ge})) == repr(eval(expr, {"lib": torch})), (kwargs, expr)
    finally:
        torch.set_printoptions(profile="default")
        set_printoptions(profile="default")


@needs_torch
def test_repr_matches_torch_on_random_values():
    import torch

    rng = np.random.default_rng(0)
    shapes = [(5,), (3, 4), (2, 3, 4), (1001,), (40, 30), (7, 200), (0,), (2, 0), (1,), (), (3, 1, 1), (11,)]
    for i in range(240):
        shape = shapes[i % len(shapes)]
        kind = i % 6
        if kind == 0:
            a = rng.standard_normal(shape)
        elif kind == 1:
            a = rng.standard_normal(shape) * 10.0 ** rng.integers(-9, 12)
        elif kind == 2:
            a = rng.integers(-(10 ** int(rng.integers(1, 12))), 10 ** int(rng.integers(1, 12)), size=shape)
        elif kind == 3:
            a = rng.standard_normal(shape) > 0
        elif kind == 4:
            a = np.round(rng.standard_normal(shape) * 100)
        else:
            a = rng.standard_normal(shape)
            if a.size:
                a.reshape(-1)[::3] = np.nan
                a.reshape(-1)[1::5] = np.inf
        for dt in [None] if a.dtype.kind in "bi" else [np.float32, np.float64]:
            arr = np.asarray(a if dt is None else a.astype(dt))
            assert repr(ge.from_numpy(arr.copy())) == repr(torch.from_numpy(arr.copy()))


def test_numpy_interop():
    a = np.arange(3.0)
    shared, copied = ge.from_numpy(a), ge.tensor(a)
    a[0] = 7.0
    assert shared.tolist() == [7.0, 1.0, 2.0] and copied.tolist() == [0.0, 1.0, 2.0]
    assert shared.dtype is ge.float64 and ge.as_tensor(a).data_ptr() == shared.data_ptr()
    t = ge.ones(3)
    t.numpy()[0] = 5.0
    assert t.tolist() == [5.0, 1.0, 1.0]
    assert np.asarray(t).tolist() == [5.0, 1.0, 1.0]
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        np.asarray(ge.ones(2, requires_grad=True))
    assert isinstance(t * np.float32(2.0), ge.Tensor) and (t * np.float32(2.0)).dtype is ge.float32
