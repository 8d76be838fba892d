"""Device surface and save/load of the native engine, against torch (a CPU-only build) where torch has it."""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import pytest

import gradlens.engine as ge
from tests.parity import check_error

try:
    import torch
except ImportError:  # the parity parts skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is the oracle")
LIBS = [ge] + ([torch] if torch is not None else [])


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("spec,expected_repr,expected_str", [
    (("cpu",), "device(type='cpu')", "cpu"),
    (("cpu:0",), "device(type='cpu', index=0)", "cpu:0"),
    (("cuda",), "device(type='cuda')", "cuda"),
    (("cuda", 1), "device(type='cuda', index=1)", "cuda:1"),
    (("mps",), "device(type='mps')", "mps"),
])
def test_device_repr_str(lib, spec, expected_repr, expected_str):
    d = lib.device(*spec)
    assert repr(d) == expected_repr and str(d) == expected_str


@needs_torch
def test_device_equality_and_hash_like_torch():
    pairs = [("cpu", "cpu"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1"), ("cpu", "cuda")]
    for a, b in pairs:
        assert (ge.device(a) == ge.device(b)) == (torch.device(a) == torch.device(b))
    assert (ge.device("cpu") == "cpu") == (torch.device("cpu") == "cpu")
    assert hash(ge.device("cuda:1")) == hash(ge.device("cuda", 1))
    assert ge.device(ge.device("cuda:2")).index == 2
    assert ge.ones(2).device == ge.device("cpu")
    assert str(ge.ones(2).device) == str(torch.ones(2).device)


@needs_torch
def test_device_parse_errors_like_torch():
    check_error(lambda lib: lib.device("foo"), match="Expected one of cpu, cuda")
    check_error(lambda lib: lib.device("cuda:x"), match="Invalid device string")


@needs_torch
def test_availability_probes_like_cpu_only_torch():
    assert ge.cuda.is_available() is torch.cuda.is_available() is False
    assert ge.cuda.device_count() == torch.cuda.device_count() == 0
    assert ge.accelerator.is_available() is torch.accelerator.is_available() is False
    assert ge.accelerator.current_accelerator() is torch.accelerator.current_accelerator() is None
    assert ge.backends.mps.is_available() is torch.backends.mps.is_available() is False
    assert ge.backends.cudnn.deterministic is False and ge.backends.cudnn.benchmark is False
    ge.backends.cudnn.deterministic = True
    ge.backends.cudnn.deterministic = False


def test_backends_import_as_modules():
    import importlib

    assert importlib.import_module("gradlens.engine.backends.cudnn") is ge.backends.cudnn
    assert importlib.import_module("gradlens.engine.cuda") is ge.cuda


@needs_torch
@pytest.mark.parametrize("move", [
    lambda lib: lib.ones(2).to("cuda"),
    lambda lib: lib.ones(2).to(lib.device("cuda", 0)),
    lambda lib: lib.ones(2).cuda(),
    lambda lib: lib.ones(2).to(device="cuda:0"),
    lambda lib: lib.nn.Linear(2, 2).to("cuda"),
    lambda lib: lib.nn.Linear(2, 2).cuda(),
], ids=["str", "device", "cuda()", "kw", "module", "module.cuda()"])
def test_moving_to_cuda_raises_torchs_error(move):
    check_error(move, match="Torch not compiled with CUDA enabled")


@needs_torch
def test_moving_to_mps_raises_torchs_error():
    check_error(lambda lib: lib.ones(2).to("mps"), match="PyTorch is not linked with support for mps devices")


@needs_torch
@pytest.mark.parametrize("make", [
    lambda lib: lib.zeros(2, device="cuda"),
    lambda lib: lib.tensor([1.0], device="cuda:0"),
    lambda lib: lib.randn(2, 3, device=lib.device("cuda")),
    lambda lib: lib.arange(3, device="cuda"),
    lambda lib: lib.zeros_like(lib.ones(2), device="cuda"),
    lambda lib: lib.as_tensor([1.0], device="cuda"),
    lambda lib: lib.ones(2, device="xpu"),
], ids=["zeros", "tensor", "randn-device", "arange", "zeros_like", "as_tensor", "xpu"])
def test_creating_on_an_absent_device_raises_torchs_error(make):
    # a script written for a GPU fails here exactly as on a CPU-only torch, instead of silently running on CPU
    check_error(make, match="Torch not compiled with (CUDA|XPU) enabled")


@needs_torch
def test_creating_on_an_unknown_or_unlinked_device_raises_torchs_error():
    check_error(lambda lib: lib.zeros(2, device="bogus"), match="device type at start of device string: bogus")
    check_error(lambda lib: lib.ones(2, device="hip"), match="Could not run 'aten::empty.memory_format' with "
                "arguments from the 'HIP' backend")
    check_error(lambda lib: lib.zeros(2, device="mps"), match="from the 'MPS' backend")
    assert ge.zeros(2, device="cpu").device == ge.device("cpu")


@needs_torch
@pytest.mark.parametrize("make", [lambda lib: lib.device(0), lambda lib: lib.ones(1).to(5),
                                  lambda lib: lib.zeros(1, device=0), lambda lib: lib.device(-1)],
                         ids=["device(0)", "to(5)", "zeros(device=0)", "device(-1)"])
def test_a_bare_device_index_raises_torchs_error(make):
    check_error(make, match="Cannot access accelerator device when none is available|Device index must not be "
                            "negative")


def test_cpu_moves_are_noops():
    x = ge.ones(2, requires_grad=True)
    assert x.to("cpu") is x and x.cpu() is x and x.to(ge.device("cpu")) is x
    m = ge.nn.Linear(2, 2)
    assert m.to("cpu") is m and m.to(ge.device("cpu")) is m and m.cpu() is m
    assert not x.is_cuda and not x.is_xpu and not x.is_mps


# --- save / load ---------------------------------------------------------------------------------------------
def _roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    ge.save(obj, buf)
    buf.seek(0)
    return ge.load(buf, **load_kwargs)


def test_tensors_and_containers_round_trip(tmp_path):
    x = ge.tensor(np.arange(6, dtype=np.float64).reshape(2, 3)).t()  # non-contiguous
    obj = {"x": x, "ints": ge.tensor([1, 2, 3]), "flag": ge.tensor(True), "n": 3, "lr": 0.1, "inf": float("inf"),
           "items": [ge.zeros(0, 2), (1, "a", None)], 7: ge.ones((), dtype=ge.float16)}
    out = _roundtrip(obj)
    assert list(out) == list(obj)
    np.testing.assert_array_equal(out["x"].numpy(), x.numpy())
    assert out["x"].dtype == ge.float64 and out["ints"].dtype == ge.int64 and out[7].dtype == ge.float16
    assert out["items"][1] == (1, "a", None) and isinstance(out["items"][1], tuple)
    assert out["n"] == 3 and out["lr"] == 0.1 and out["inf"] == float("inf")
    path = tmp_path / "ckpt.pt"
    ge.save(obj, path)
    assert ge.load(str(path))["n"] == 3


def test_shared_tensor_stays_shared_and_requires_grad_kept():
    w = ge.ones(2, requires_grad=True)
    a, b = _roundtrip([w, w])
    assert a is b and a.requires_grad and a.is_leaf


def test_state_dict_round_trip_into_a_fresh_model():
    ge.manual_seed(0)
    model = ge.nn.Sequential(ge.nn.Linear(3, 4), ge.nn.BatchNorm1d(4), ge.nn.Linear(4, 2))
    model(ge.randn(5, 3))  # moves the running stats
    sd = _roundtrip(model.state_dict())
    assert isinstance(sd, collections.OrderedDict) and list(sd) == list(model.state_dict())
    fresh = ge.nn.Sequential(ge.nn.Linear(3, 4), ge.nn.BatchNorm1d(4), ge.nn.Linear(4, 2))
    fresh.load_state_dict(sd)
    for (k, v), v2 in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(v.numpy(), v2.numpy(), err_msg=k)
    x = ge.randn(2, 3)
    model.eval(), fresh.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), fresh(x).detach().numpy())


def test_optimizer_state_dict_round_trip():
    w = ge.nn.Parameter(ge.ones(3))
    opt = ge.optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    state = _roundtrip(opt.state_dict())
    opt2 = ge.optim.Adam([w], lr=0.5)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(opt2.state[w]["exp_avg"].numpy(), opt.state[w]["exp_avg"].numpy())


def test_arbitrary_objects_need_weights_only_false():
    model = ge.nn.Linear(2, 2)
    buf = io.BytesIO()
    ge.save(model, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed.*weights_only=False"):
        ge.load(buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        ge.load(buf, weights_only=True)
    buf.seek(0)
    loaded = ge.load(buf, weights_only=False)
    assert isinstance(loaded, ge.nn.Linear)
    np.testing.assert_array_equal(loaded.weight.detach().numpy(), model.weight.detach().numpy())


def test_load_of_a_non_checkpoint_says_what_was_expected(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"not a zip")
    with pytest.raises(RuntimeError, match="not a gradlens.engine checkpoint"):
        ge.load(path)


@needs_torch
def test_load_of_a_file_torch_wrote_is_refused_with_a_conversion_hint():
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    buf.seek(0)
    with pytest.raises(RuntimeError, match="written by torch.save.*Convert it with real torch"):
        ge.load(buf)


@needs_torch
def test_load_map_location_to_cuda_raises_torchs_error():
    buf = io.BytesIO()
    ge.save(ge.ones(1), buf)
    buf.seek(0)
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
        ge.load(buf, map_location="cuda")
    buf.seek(0)
    assert ge.load(buf, map_location="cpu").tolist() == [1.0]


def test_nn_parallel_and_onnx_import():
    import gradlens.engine.nn.parallel as parallel
    import gradlens.engine.onnx as onnx

    inner = ge.nn.Linear(2, 1)
    wrapped = parallel.DataParallel(inner)
    x = ge.ones(3, 2)
    np.testing.assert_array_equal(wrapped(x).detach().numpy(), inner(x).detach().numpy())
    assert list(wrapped.state_dict()) == ["module.weight", "module.bias"]
    with pytest.raises(NotImplementedError, match="ONNX"):
        onnx.export(inner, (x,), "m.onnx")


@needs_torch
def test_legacy_typed_constructors_like_torch():
    for name in ("FloatTensor", "LongTensor", "DoubleTensor"):
        a = getattr(ge, name)(np.array([[1, 2], [3, 4]]))
        b = getattr(torch, name)(np.array([[1, 2], [3, 4]]))
        assert str(a.dtype) == str(b.dtype) and a.tolist() == b.tolist()
        assert isinstance(a, getattr(ge, name))
    assert tuple(ge.FloatTensor(2, 3).shape) == (2, 3)
    assert not isinstance(ge.ones(2), ge.LongTensor)


def test_safe_globals_allow_a_pickled_module_with_weights_only():
    model = ge.nn.Sequential(ge.nn.Linear(2, 2), ge.nn.ReLU())
    buf = io.BytesIO()
    ge.save(model, buf)
    allowed = [ge.nn.Sequential, ge.nn.Linear, ge.nn.ReLU]
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="uses the global .*Sequential.*add_safe_globals"):
        ge.load(buf)
    buf.seek(0)
    with ge.serialization.safe_globals(allowed):
        loaded = ge.load(buf)
    np.testing.assert_array_equal(loaded[0].weight.detach().numpy(), model[0].weight.detach().numpy())
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):  # the scope ended
        ge.load(buf)
    ge.serialization.add_safe_globals(allowed)
    try:
        buf.seek(0)
        assert isinstance(ge.load(buf), ge.nn.Sequential)
    finally:
        ge.serialization.clear_safe_globals()
