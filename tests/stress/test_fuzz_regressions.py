"""Shrunk failures of the fuzzed parity tests (test_fuzz_parity.py), kept as ordinary regression tests.

Each test is the minimal program hypothesis found (or the torch rule it exposed), checked with the same parity
helpers. An engine gap that is not fixed yet would be a strict ``xfail`` here (the fuzzer steering around it),
so that fixing the gap turns it into a failure that asks for the marker to be removed; there are none now.
"""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, graph_signature

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")

F32 = np.float32


def f32(*shape):
    return np.linspace(-1.0, 1.5, int(np.prod(shape)) or 0, dtype=F32).reshape(shape)


def bools(*shape):
    return (np.arange(int(np.prod(shape)) or 0) % 2 == 0).reshape(shape)


# --- subtraction with a bool operand (torch refuses it; the engine computed it) ---------------------------
@pytest.mark.parametrize(
    "program",
    [
        lambda lib, x, b: x - b,
        lambda lib, x, b: b - x,
        lambda lib, x, b: lib.sub(x, b),
        lambda lib, x, b: x - True,
        lambda lib, x, b: b - 1,
        lambda lib, x, b: 1 - b,
        lambda lib, x, b: 1.5 - b,
        lambda lib, x, b: (x * 1).sub_(b),
        lambda lib, x, b: b.clone().sub_(1),
        lambda lib, x, b: b.long() - b,
    ],
    ids=[
        "float-bool",
        "bool-float",
        "torch.sub",
        "float-True",
        "bool-int",
        "int-bool",
        "float-bool-rsub",
        "sub_-bool",
        "bool.sub_",
        "long-bool",
    ],
)
def test_sub_with_a_bool_operand_is_refused(program):
    check_error(program, f32(2), bools(2), match="Subtraction")


def test_sub_of_two_bools_keeps_its_message():
    check_error(lambda lib, a, b: a - b, bools(2), bools(2), match="two bool tensors")


# --- argument checks torch makes ---------------------------------------------------------------------
def test_permute_without_dims_is_a_type_error():
    check_error(lambda lib, x: x.permute(), f32())
    check_error(lambda lib, x: x.permute(), f32(2))


def test_expand_without_sizes_is_a_type_error():
    check_error(lambda lib, x: x.expand(), f32())


def test_stack_checks_the_dim_before_the_shapes():
    check_error(lambda lib, a, b: lib.stack([a, b], 2), f32(1), f32(2))


def test_lone_slice_with_negative_step_on_0d_is_a_value_error():
    check_error(lambda lib, x: x[::-1], f32())


def test_setitem_lone_slice_with_negative_step_on_0d_is_a_value_error():
    def program(lib, x):
        y = x * 1
        y[::-1] = 0.0
        return y

    check_error(program, f32())


def test_softmax_of_int_checks_the_dim_first():
    check_error(lambda lib, x: lib.softmax(x, 1), np.array(3, dtype=np.int64))
    check_error(lambda lib, x: lib.log_softmax(x, 1), np.array(3, dtype=np.int64))


# --- setitem node names ------------------------------------------------------------------------------
def _set(key, value):
    def program(lib, x, w):
        y = x * 1
        k = key(lib) if callable(key) else key
        v = value(w) if callable(value) else value
        y[k] = v
        return y

    return program


@pytest.mark.parametrize(
    "key",
    [Ellipsis, slice(None), slice(0, 5), (slice(None), slice(None)), (Ellipsis, slice(0, 3))],
    ids=["...", ":", "0:5", ":,:", "...,0:3"],
)
@pytest.mark.parametrize("value", [2.5, lambda w: w.sum()], ids=["scalar", "0-d tensor"])
def test_whole_tensor_setitem_with_a_0d_value_is_fill(key, value):
    """torch skips full-range slices and fills with a 0-d value: ``FillBackward3``, not a copy."""
    check_parity(_set(key, value), f32(2, 3), f32(2))


def test_whole_tensor_setitem_of_0d_into_0d_is_a_copy():
    check_parity(_set(Ellipsis, lambda w: w.sum()), f32(), f32(2))


def test_setitem_negative_start_slice_is_a_view_even_when_full():
    """``x[-1:]`` on a size-1 dim covers everything, but torch only skips literal full slices."""
    check_parity(_set(slice(-1, None), 2.5), f32(1), f32(2))
    check_parity(_set(slice(-2, None), 2.5), f32(2, 3), f32(2))


@pytest.mark.parametrize(
    "key",
    [
        lambda lib: (0, lib.tensor([0, 1])),
        lambda lib: (slice(1, None), lib.tensor([0, 1])),
        lambda lib: (slice(-2, None), lib.tensor([0, 1])),
        lambda lib: (lib.tensor([0, 1]), 0),
        lambda lib: (None, lib.tensor([0, 1])),
        lambda lib: (0, lib.tensor([True, False, True])),
        lambda lib: (0, lib.tensor(np.array([], dtype=np.int64))),
    ],
    ids=["int,idx", "1:,idx", "-2:,idx", "idx,int", "None,idx", "int,mask", "int,empty-idx"],
)
@pytest.mark.parametrize("value", [2.5, lambda w: w.sum(), lambda w: w[:1]], ids=["scalar", "0-d", "(1,)"])
def test_advanced_setitem_through_a_view_is_copyslices(key, value):
    """A basic index before/after the advanced one makes torch index_put into a view: ``CopySlices``."""
    check_parity(_set(key, value), f32(2, 3), f32(2))


@pytest.mark.parametrize(
    "key",
    [
        lambda lib: lib.tensor([0, 1]),
        lambda lib: (slice(None), lib.tensor([0, 1])),
        lambda lib: (Ellipsis, lib.tensor([0, 2])),
        lambda lib: (slice(0, 2), lib.tensor([1])),
    ],
    ids=["idx", ":,idx", "...,idx", "0:2,idx"],
)
def test_advanced_setitem_on_the_tensor_itself_is_index_put(key):
    check_parity(_set(key, 2.5), f32(2, 3), f32(2))


def test_setitem_with_a_0d_mask_is_copyslices():
    check_parity(_set(lambda lib: lib.tensor(True), lambda w: w.sum()), f32(), f32(2))
    check_parity(_set(lambda lib: lib.tensor(True), lambda w: w[:1]), f32(), f32(2))


# --- matmul ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shapes",
    [
        ((1, 1), (1, 1, 1)),
        ((2, 1), (3, 1, 1)),
        ((1, 2), (3, 2, 1)),
        ((2, 3), (4, 3, 2)),
        ((0, 2), (2, 2, 0)),
        ((3,), (2, 3, 1)),
    ],
)
def test_matmul_matrix_times_batch_copies_only_when_not_contiguous(shapes):
    """torch's ``.contiguous()`` after the transposed fold is a no-op (no ``CloneBackward0``) when the
    result is already contiguous, e.g. when a dim is 1."""
    a, b = shapes
    check_parity(lambda lib, x, y: lib.matmul(x, y), f32(*a), f32(*b))


def test_graph_signature_of_matmul_fold_has_no_clone_for_unit_dims():
    import torch

    import gradlens.engine as ge

    sigs = []
    for lib in (torch, ge):
        x = lib.ones(1, 1, requires_grad=True)
        w = lib.ones(1, 1, 1, requires_grad=True)
        sigs.append([name for name, _ in graph_signature(lib.matmul(x, w))])
    assert sigs[0] == sigs[1]
    assert "CloneBackward0" not in sigs[1]


# --- gaps the fuzzer found, fixed in the engine --------------------------------------------------------
@pytest.mark.parametrize(
    "split",
    [lambda x: x.split(1)[0], lambda x: x.chunk(3)[0], lambda x: x.unbind()[0]],
    ids=["split", "chunk", "unbind"],
)
def test_inplace_on_a_multi_output_view_is_refused(split):
    def program(lib, x):
        y = x * 1
        split(y).add_(1)
        return y

    check_error(program, f32(3), match="multiple views")


def test_advanced_setitem_with_another_dtype_is_refused():
    def program(lib, x, w):
        y = x * 1
        y[lib.tensor([0])] = w.double()
        return y

    check_error(program, f32(1), f32(), match="dtypes match")


def test_setitem_with_python_true_key_graph():
    check_parity(_set(True, lambda w: w[:1]), f32(2, 3), f32(2))


@pytest.mark.parametrize(
    "shapes", [((1,), (1,)), ((2, 2), (2, 2)), ((1, 1), (1, 1, 1))], ids=["dot", "mm", "bmm"]
)
def test_bool_matmul_is_refused(shapes):
    a, b = shapes
    check_error(lambda lib, x, y: x @ y, np.ones(a, dtype=bool), np.ones(b, dtype=bool))


def test_mv_of_a_0d_matrix_is_an_index_error():
    check_error(lambda lib, x, v: lib.mv(x, v), f32(), f32(3))


@pytest.mark.parametrize(
    "other",
    [lambda lib: lib.tensor(True), lambda lib: True, lambda lib: lib.tensor([False])],
    ids=["bool-tensor-0d", "python-bool", "bool-tensor"],
)
def test_add_with_alpha_keeps_bool(other):
    check_parity(lambda lib, x: lib.add(x, other(lib), alpha=2), bools(1))


def test_softmax_of_an_empty_int_tensor_is_empty():
    check_parity(lambda lib, x: lib.softmax(x, 0), np.zeros(0, dtype=np.int64))
    check_parity(lambda lib, x: lib.log_softmax(x, 0), np.zeros((2, 0), dtype=np.int64))


# --- in-place ops whose backward masked the gradient by multiplying (inf * 0 = nan; torch gives 0) --------
@pytest.mark.parametrize(
    "inplace",
    [
        lambda lib, y: y.clamp_(-0.5, 0.5),
        lambda lib, y: y.view(-1).clamp_(-0.5, 0.5),
        lambda lib, y: y.clamp_min_(-0.5),
        lambda lib, y: y.clamp_max_(0.5),
        lambda lib, y: y.relu_(),
        lambda lib, y: y.masked_fill_(lib.tensor([True, False, False]), 2.0),
    ],
    ids=["clamp_", "clamp_-through-view", "clamp_min_", "clamp_max_", "relu_", "masked_fill_"],
)
def test_inplace_mask_keeps_an_infinite_gradient_out(inplace):
    """Shrunk from ``[mul1, through-view(view(-1), clamp_), div_(0)]``: the gradient after ``/ 0`` is inf,
    and the masked-out elements must get exactly 0, not inf * 0 = nan."""

    def program(lib, x):
        y = x * 1
        inplace(lib, y)
        return y / 0

    check_parity(program, np.array([1.7, 0.2, -3.0], dtype=F32))


def test_masked_fill_with_a_tensor_value_keeps_an_infinite_gradient_out():
    def program(lib, x, v):
        y = x * 1
        y.masked_fill_(lib.tensor([True, False, False]), v)
        return y / 0

    check_parity(program, np.array([1.7, 0.2, -3.0], dtype=F32), np.array(2.0, dtype=F32))


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, y: lib.nn.functional.hardtanh(y, inplace=True),
        lambda lib, y: lib.nn.functional.relu6(y, inplace=True),
        lambda lib, y: lib.nn.functional.leaky_relu(y, 0.1, inplace=True),
        lambda lib, y: lib.nn.functional.elu(y, inplace=True),
        lambda lib, y: lib.nn.functional.silu(y, inplace=True),
    ],
    ids=["hardtanh", "relu6", "leaky_relu", "elu", "silu"],
)
def test_functional_inplace_writes_in_place(fn):
    def program(lib, x):
        y = x * 1
        fn(lib, y)
        return y  # torch: y holds the activation now

    check_parity(program, np.array([1.7, 0.2, -3.0], dtype=F32))


@pytest.mark.parametrize("program", [
    lambda lib, x: x.max().var(0),  # shrunk: [max_all, var(0)]: var of one element is nan
    lambda lib, x: x.min() / 0,
    lambda lib, x: x.max() / 0,
], ids=["max-then-var", "min-div0", "max-div0"])
def test_max_all_keeps_a_non_finite_gradient_off_the_other_elements(program):
    check_parity(program, np.array([0.5, 1.5, 1.5, -2.0], dtype=F32))


# --- in-place activations (torch writes in place and saves what backward needs) ---------------------------
def _activations(lib):
    F = lib.nn.functional
    nn = lib.nn
    return {
        "F.hardtanh": lambda y: F.hardtanh(y, -0.5, 0.5, inplace=True),
        "F.relu6": lambda y: F.relu6(y, inplace=True),
        "F.leaky_relu": lambda y: F.leaky_relu(y, 0.2, inplace=True),
        "F.elu": lambda y: F.elu(y, 0.7, inplace=True),
        "F.selu": lambda y: F.selu(y, inplace=True),
        "F.silu": lambda y: F.silu(y, inplace=True),
        "F.relu": lambda y: F.relu(y, inplace=True),
        "nn.Hardtanh": lambda y: nn.Hardtanh(inplace=True)(y),
        "nn.ReLU6": lambda y: nn.ReLU6(inplace=True)(y),
        "nn.LeakyReLU": lambda y: nn.LeakyReLU(inplace=True)(y),
        "nn.ELU": lambda y: nn.ELU(inplace=True)(y),
        "nn.SELU": lambda y: nn.SELU(inplace=True)(y),
        "nn.SiLU": lambda y: nn.SiLU(inplace=True)(y),
        "F.dropout(p=1)": lambda y: F.dropout(y, 1.0, inplace=True),
        "nn.Dropout(p=1)": lambda y: nn.Dropout(1.0, inplace=True)(y),
    }


ACTIVATIONS = sorted(_activations(__import__("gradlens.engine", fromlist=["nn"])))
X3 = np.array([1.7, 0.2, -3.0, 0.45], dtype=F32)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_inplace_activation_returns_its_input_modified(name):
    def program(lib, x):
        y = x * 1
        before = y._version
        out = _activations(lib)[name](y)
        assert out is y and y._version == before + 1
        return y * 1  # the value after the write, through the in-place node

    check_parity(program, X3)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_inplace_activation_on_a_view_rebases_the_base(name):
    def program(lib, x):
        y = x * 1
        _activations(lib)[name](y[1:])
        return y

    check_parity(program, X3)


@pytest.mark.parametrize("name", ["F.hardtanh", "F.silu", "F.leaky_relu", "F.elu", "F.selu"])
def test_inplace_activation_second_derivative(name):
    def program(lib, x):
        y = x * x
        _activations(lib)[name](y)
        (g,) = lib.autograd.grad(y.sum(), x, create_graph=True)
        return g

    check_parity(program, X3.astype(np.float64), graph=False)  # backward formulas record other nodes


@pytest.mark.parametrize("name", ["F.leaky_relu", "F.elu", "nn.ReLU6", "F.silu"])
def test_inplace_activation_then_another_inplace_op(name):
    """Backward1 forms save their result, so a later in-place change is refused (``output 0 of Elu1``);
    hardtanh_/silu_ save a copy of their input and are not affected."""

    def program(lib, x):
        y = x * 1
        _activations(lib)[name](y)
        y.mul_(2)
        y.sum().backward()
        return x.grad

    if name in ("F.leaky_relu", "F.elu"):
        check_error(program, X3, match="LeakyRelu1|Elu1")
    else:
        check_parity(program, X3)


@pytest.mark.parametrize(
    "fn",
    [lambda F, y: F.leaky_relu(y, -0.1, inplace=True), lambda F, y: F.elu(y, -0.5, inplace=True)],
    ids=["leaky_relu", "elu"],
)
def test_inplace_activation_with_a_negative_slope_fails_in_backward(fn):
    def program(lib, x):
        y = x * 1
        fn(lib.nn.functional, y)
        y.sum().backward()

    check_error(program, X3, match="negative slope")


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int64", "bool"])
@pytest.mark.parametrize(
    "fn",
    [
        lambda F, y: F.leaky_relu(y),
        lambda F, y: F.elu(y, inplace=True),
        lambda F, y: F.selu(y),
        lambda F, y: F.silu(y, inplace=True),
        lambda F, y: F.gelu(y),
        lambda F, y: F.softplus(y),
        lambda F, y: F.logsigmoid(y),
        lambda F, y: F.dropout(y, 0.5),
        lambda F, y: F.dropout(y, 0.5, inplace=True),
    ],
    ids=["leaky_relu", "elu_", "selu", "silu_", "gelu", "softplus", "logsigmoid", "dropout", "dropout_"],
)
def test_float_only_activations_refuse_integer_input(fn, dtype):
    check_error(lambda lib, x: fn(lib.nn.functional, x), np.array([1, 0, 2]).astype(dtype))


def test_hardtanh_refuses_bool_but_keeps_int():
    check_error(lambda lib, x: lib.nn.functional.hardtanh(x, inplace=True), np.array([True]), match="Bool inputs")
    check_parity(lambda lib, x: lib.nn.functional.relu6(x, inplace=True), np.array([1, -2, 9]))


@pytest.mark.parametrize("dtype", [np.int64, np.bool_], ids=["int64", "bool"])
def test_dropout_of_all_elements_keeps_the_dtype(dtype):
    check_parity(lambda lib, x: lib.nn.functional.dropout(x, 1.0), np.array([1, 0, 1]).astype(dtype))


# --- in-place ops that save the old value save a clone (differentiable under create_graph) ------------
@pytest.mark.parametrize(
    "inplace",
    [
        lambda y, w: y.mul_(w),
        lambda y, w: y.div_(w),
        lambda y, w: y.log_(),
        lambda y, w: y.abs_(),
        lambda y, w: y.pow_(3),
        lambda y, w: y.pow_(w),
    ],
    ids=["mul_", "div_", "log_", "abs_", "pow_(3)", "pow_(tensor)"],
)
def test_second_derivative_through_an_inplace_op(inplace):
    def program(lib, x, w):
        y = x * x
        inplace(y, w * x)
        gx, gw = lib.autograd.grad(y.sum(), (x, w), create_graph=True, allow_unused=True)
        return gx if gw is None else (gx, gw)

    check_parity(program, np.array([1.7, 0.2, 3.0], dtype=np.float64), np.array([1.2, 0.7, 1.5]), graph=False,
                 rtol=1e-7)


def test_unused_input_error_names_its_index():
    check_error(lambda lib, x, w: lib.autograd.grad((x * 2).sum(), (x, w)), f32(2), f32(2), match="at index 1")


# --- outputs of split/chunk/unbind (and views of them) cannot be modified in place ------------------------
_MULTI = {
    "split": lambda y: y.split(2)[1],
    "split_sizes": lambda y: y.split([1, 3])[1],
    "chunk": lambda y: y.chunk(2)[0],
    "unbind": lambda y: y.unbind()[2],
    "iter": lambda y: list(y.view(2, 2))[0],
    "split-view": lambda y: y.split(2)[0].view(2),
    "split-slice": lambda y: y.split(2)[0][1:],
}
_INPLACE = {
    "add_": lambda v: v.add_(1),
    "zero_": lambda v: v.zero_(),
    "copy_": lambda v: v.copy_(v.detach() * 2),
    "relu_": lambda v: v.relu_(),
    "+=": lambda v: v.__iadd__(1),
    "masked_fill_": lambda v: v.masked_fill_(v.detach() > 2, 0.0),
}


@pytest.mark.parametrize("op", sorted(_INPLACE))
@pytest.mark.parametrize("view", sorted(_MULTI))
def test_inplace_on_an_output_of_a_multi_view_function_is_refused_with_torchs_message(view, op):
    def program(lib, x):
        _INPLACE[op](_MULTI[view](x * 1))

    t_err, g_err = check_error(program, np.arange(1.0, 5.0, dtype=F32), match="multiple views")
    assert str(g_err) == str(t_err)


@pytest.mark.parametrize(
    "key",
    [0, slice(0, 1), slice(None), Ellipsis, None, True, (0, None), lambda lib: lib.tensor([0]),
     lambda lib: lib.tensor([True, False])],
    ids=["int", "slice", ":", "...", "None", "True", "int,None", "idx", "mask"],
)
def test_setitem_on_a_multi_view_output_names_the_view_it_writes_through(key):
    def program(lib, x):
        v = (x * 1).split(2)[1]
        v[key(lib) if callable(key) else key] = 5.0

    t_err, g_err = check_error(program, np.ones((4, 3), dtype=F32), match="multiple views")
    assert str(g_err) == str(t_err)


@pytest.mark.parametrize(
    "program",
    [
        lambda lib, x: x.split(2)[0].add_(1),  # a view of a leaf: the multi-view error comes first
        lambda lib, x: (x.detach() * 1).split(2)[0].add_(lib.ones(2, requires_grad=True)),
        lambda lib, x: _inplace_after_no_grad_split(lib, x),
        lambda lib, x: _use_after_base_changed(lib, x, lambda y: y.add_(1)),
        lambda lib, x: _use_after_base_changed(lib, x, lambda y: y[2:].mul_(2)),
    ],
    ids=["leaf", "grad-from-operand", "split-in-no_grad", "base-changed", "sibling-changed"],
)
def test_multi_view_outputs_in_other_situations(program):
    t_err, g_err = check_error(program, np.arange(1.0, 5.0, dtype=F32))
    assert str(g_err) == str(t_err)


def _inplace_after_no_grad_split(lib, x):
    y = x * 1
    with lib.no_grad():
        v = y.split(2)[0]
    v.add_(1)


def _use_after_base_changed(lib, x, change):
    y = x * 1
    first, _second = y.split(2)
    change(y)
    return first * 2


@pytest.mark.parametrize(
    "program",
    [
        lambda lib, x: (x.detach() * 1).split(2)[0].add_(1),  # nothing requires grad
        lambda lib, x: (x * 1).split(2)[0].detach().add_(1),
        lambda lib, x: _nograd_inplace(lib, (x * 1).split(2)[0]),
        lambda lib, x: (x * 1).tensor_split(2)[0].add_(1),  # not a multi-output view function in torch
        lambda lib, x: lib.tensor([1, 2, 3, 4]).split(2)[0].add_(1),  # integer views are not differentiable
    ],
    ids=["no-grad-needed", "detached", "under-no_grad", "tensor_split", "int"],
)
def test_multi_view_outputs_may_change_where_torch_allows_it(program):
    check_parity(lambda lib, x: program(lib, x) * 1, np.arange(1.0, 5.0, dtype=F32))


def _nograd_inplace(lib, v):
    with lib.no_grad():
        v.add_(1)
    return v.detach()


def test_requires_grad_of_a_multi_view_after_its_base_changed_does_not_raise():
    for lib in _libs():
        y = lib.tensor([1.0, 2.0], requires_grad=True) * 1
        first, _ = y.split(1)
        y.add_(1)
        assert first.requires_grad is True


def _libs():
    import torch

    import gradlens.engine as ge

    return (torch, ge)


# --- bool matrix products: torch has no kernel (unless nothing is summed) ---------------------------------
@pytest.mark.parametrize(
    "shapes",
    [((0,), (0,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 2, 3), (3, 2)), ((3,), (2, 3, 2)), ((2, 2, 3), (3,)),
     ((1, 2, 2, 3), (1, 2, 3, 2))],
    ids=["dot-empty", "mv", "vm", "3x2", "1x3", "3x1", "4x4"],
)
def test_bool_matmul_shapes_are_refused(shapes):
    a, b = shapes
    check_error(lambda lib, x, y: x @ y, np.ones(a, dtype=bool), np.ones(b, dtype=bool), match="not implemented")


@pytest.mark.parametrize(
    "program",
    [
        lambda lib, a, b: lib.mm(a, b),
        lambda lib, a, b: lib.addmm(lib.ones(2, 2, dtype=lib.bool), a, b),
        lambda lib, a, b: lib.bmm(a.unsqueeze(0), b.unsqueeze(0)),
        lambda lib, a, b: lib.nn.functional.linear(a, b.t()),
        lambda lib, a, b: lib.mv(a, b[:, 0]),
    ],
    ids=["mm", "addmm", "bmm", "linear", "mv"],
)
def test_bool_matrix_products_are_refused(program):
    check_error(program, np.ones((2, 3), dtype=bool), np.ones((3, 2), dtype=bool), match="not implemented")


@pytest.mark.parametrize(
    "shapes",
    [((2, 0), (0, 2)), ((0, 2), (2, 2)), ((2, 2, 0), (2, 0, 2)), ((2, 0, 3), (3, 2)), ((0, 2), (2,))],
    ids=["mm-k0", "mm-n0", "bmm-k0", "fold-empty", "mv-empty"],
)
def test_empty_bool_matmul_is_allowed(shapes):
    a, b = shapes
    check_parity(lambda lib, x, y: x @ y, np.ones(a, dtype=bool), np.ones(b, dtype=bool))


def test_bool_addmm_with_nothing_to_sum_is_a_cast_error():
    check_error(lambda lib, b, x, y: lib.addmm(b, x, y), np.ones(2, dtype=bool), np.ones((2, 0), dtype=bool),
                np.ones((0, 2), dtype=bool), match="can't be cast")


@pytest.mark.parametrize(
    "dtypes",
    [("float32", "float32", "float64"), ("float32", "float64", "float32"), ("float64", "float32", "float32"),
     ("float32", "bool", "bool"), ("bool", "float32", "float32")],
)
def test_addmm_dtype_messages(dtypes):
    bias, m1, m2 = (np.ones(s, dtype=d) for s, d in zip(((2,), (2, 3), (3, 2)), dtypes))
    t_err, g_err = check_error(lambda lib, b, x, y: lib.addmm(b, x, y), bias, m1, m2, grad=False)
    assert str(g_err) == str(t_err)


@pytest.mark.parametrize("dtypes", [("float32", "float64"), ("float64", "float32"), ("int64", "float32"),
                                    ("bool", "float32")])
def test_bmm_dtype_messages(dtypes):
    a, b = (np.ones(s, dtype=d) for s, d in zip(((1, 2, 3), (1, 3, 2)), dtypes))
    t_err, g_err = check_error(lambda lib, x, y: lib.bmm(x, y), a, b, grad=False)
    assert str(g_err) == str(t_err)


@pytest.mark.parametrize("shapes", [((1, 2, 0), (1, 0, 2)), ((0, 2, 3), (0, 3, 2)), ((2, 2, 0), (2, 0, 2))])
def test_empty_bmm_of_two_dtypes_gives_promoted_zeros(shapes):
    a, b = shapes
    check_parity(lambda lib, x, y: x @ y, np.ones(a, dtype=np.float32), np.ones(b, dtype=np.float64))


# --- advanced-index writes: index_put wants one dtype, masked_fill does not -------------------------------
_DTYPE_KEYS = {
    "idx": lambda lib: lib.tensor([0, 2]),
    "list": lambda lib: [0, 2],
    "empty-idx": lambda lib: lib.tensor(np.array([], dtype=np.int64)),
    "0-d mask": lambda lib: lib.tensor(True),
    "two masks": lambda lib: (lib.tensor([True, False]), lib.tensor([True, False, True])),
    "mask+idx": lambda lib: (lib.tensor([True, False]), lib.tensor([0])),
    "out-of-bounds idx": lambda lib: lib.tensor([0, 5]),
}


@pytest.mark.parametrize("value_dtype", ["float64", "int64", "bool"])
@pytest.mark.parametrize("key", sorted(_DTYPE_KEYS))
def test_index_put_refuses_another_dtype(key, value_dtype):
    def program(lib, x, w):
        y = x * 1
        y[_DTYPE_KEYS[key](lib)] = w
        return y

    t_err, g_err = check_error(program, np.ones((2, 3), dtype=F32), np.ones((), dtype=value_dtype),
                               match="dtypes match")
    assert str(g_err) == str(t_err)


@pytest.mark.parametrize(
    "key, value_shape",
    [
        (lambda lib: lib.tensor([True, False]), ()),
        (lambda lib: lib.tensor([True, False]), (1, 1)),
        (lambda lib: (lib.tensor([True, False]), 1), ()),
        (lambda lib: lib.tensor([[True, False, True], [False, True, True]]), ()),
        (lambda lib: (None, lib.tensor([True, False])), (1,)),
        (lambda lib: True, ()),
        (lambda lib: 1, (3,)),
    ],
    ids=["mask", "mask-(1,1)", "mask,int", "2-d mask", "None,mask", "True", "int"],
)
def test_masked_fill_and_basic_writes_cast_the_value(key, value_shape):
    def program(lib, x, w):
        y = x * 1
        y[key(lib)] = w
        return y

    # the float64 value's gradient is summed in float32 (then cast): float32 tolerance
    check_parity(program, np.ones((2, 3), dtype=F32), np.full(value_shape, 2.5, dtype=np.float64), rtol=1e-6,
                 atol=1e-6)


def test_mask_write_of_several_values_of_another_dtype_is_refused():
    def program(lib, x, w):
        y = x * 1
        y[lib.tensor([True, False, True])] = w
        return y

    check_error(program, np.ones(3, dtype=F32), np.ones(2, dtype=np.float64), match="dtypes match")


# --- x[True] = v and x[False] = v -------------------------------------------------------------------------
@pytest.mark.parametrize("value_shape", [(), (1,), (3,), (1, 3), (2, 3), (1, 2, 3), (1, 1, 2, 3)])
def test_setitem_with_python_true_expands_the_value(value_shape):
    def program(lib, x, w):
        y = x * 1
        y[True] = w * 1
        return y

    check_parity(program, f32(2, 3), np.full(value_shape, 0.5, dtype=F32))


def test_setitem_with_python_true_and_a_bad_value_is_torchs_expand_error():
    check_error(_set(True, lambda w: w), f32(2, 3), f32(2), match="expanded size")


@pytest.mark.parametrize("value", [2.5, lambda w: w[:1]], ids=["scalar", "tensor"])
def test_setitem_with_python_false_does_nothing(value):
    def program(lib, x, w):
        y = x * 1
        before = y._version
        y[False] = value(w) if callable(value) else value
        assert y._version == before
        return y

    check_parity(program, f32(2, 3), f32(2))
    check_parity(lambda lib, x: _false_on_leaf(x), f32(2))


def _false_on_leaf(x):
    x[False] = 1.0  # a no-op even on a leaf that requires grad
    return x * 1


# --- fills through an expanded (self-overlapping) view: torch writes them, refuses other in-place ops ----
@pytest.mark.parametrize("op", [lambda lib, v: v.zero_(), lambda lib, v: v.fill_(2.0)], ids=["zero_", "fill_"])
def test_fill_through_an_expanded_view(op):
    """torch writes the value, and refuses the backward through it (the gradient region overlaps itself)."""

    def program(lib, x):
        y = x * 1
        op(lib, y.expand(2, 3))
        return y

    check_parity(program, f32(1, 3), grad=False)
    check_parity(lambda lib, x: program(lib, x.detach()), f32(1, 3))

    def with_backward(lib, x):
        program(lib, x).sum().backward()

    check_error(with_backward, f32(1, 3), match="single memory location")


@pytest.mark.parametrize("key", [0, (1, slice(0, 2)), (slice(None), slice(1, 2))], ids=["row", "part", "column-part"])
def test_setitem_of_a_part_of_an_expanded_view_that_does_not_overlap_itself(key):
    """The written memory gets a zero gradient, the rest passes (a column of ``expand(2, 3)`` overlaps)."""

    def program(lib, x):
        y = x * 1
        y.expand(2, 3)[key] = 2.0
        return y

    if key == (slice(None), slice(1, 2)):
        check_error(program, f32(1, 3), match="single memory location")
    else:
        check_parity(program, f32(1, 3))


def test_masked_fill_through_an_expanded_view_warns_and_writes():
    def program(lib, x):
        y = x * 1
        with pytest.warns(UserWarning, match="expanded tensors is deprecated"):
            y.expand(2, 3).masked_fill_(lib.tensor([True, False, True]), 2.0)
        return y

    check_parity(program, f32(1, 3), grad=False)


@pytest.mark.parametrize(
    "op",
    [lambda lib, v: v.mul_(2.0), lambda lib, v: v.add_(1), lambda lib, v: v.fill_(lib.tensor(2.0)),
     lambda lib, v: v.__setitem__(Ellipsis, 2.0), lambda lib, v: v.__setitem__((slice(None), 0), 2.0)],
    ids=["mul_", "add_", "fill_(tensor)", "setitem-all", "setitem-column"],
)
def test_other_writes_through_an_expanded_view_are_refused(op):
    check_error(lambda lib, x: op(lib, (x * 1).expand(2, 3)), f32(1, 3), match="single memory location")


def test_inplace_through_an_empty_expanded_view_writes_nothing():
    def program(lib, x):
        y = x * 1
        y.expand(2, 0, 3).mul_(2.0)
        return y

    check_parity(program, f32(1, 0, 3))


# --- gradients at nan/inf inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "program",
    [
        lambda lib, x, b: (lib.abs(b / False) + x).abs(),  # shrunk: [div(False), abs, add, abs]
        lambda lib, x, b: lib.nn.functional.hardtanh(lib.abs(b / False) + x),  # ... hardtanh
        lambda lib, x, b: lib.nn.functional.relu6(lib.abs(b / False) + x),
        lambda lib, x, b: lib.nn.functional.hardtanh((lib.abs(b / False) + x) * 1, inplace=True),
        lambda lib, x, b: (lib.abs(b / False) + x).abs_() * 1,
    ],
    ids=["abs", "hardtanh", "relu6", "hardtanh_", "abs_"],
)
def test_nan_input_gradients_follow_torch(program):
    """torch's abs backward uses sgn (0 at nan), and hardtanh zeroes the gradient only where x <= min or
    x >= max (a nan passes it); True / False is inf, False / False nan."""
    check_parity(program, np.array(0.5, dtype=F32), np.array([True, False]))


# --- found at GRADLENS_FUZZ_SCALE=2 ------------------------------------------------------------------------
def test_relu_of_bool_is_refused():
    """Shrunk: ``[F.relu(inplace=True)]`` on a 0-d bool (numpy raised its own casting error)."""
    check_error(lambda lib, x: lib.nn.functional.relu(x, inplace=True), np.array(True), match="Boolean inputs")
    check_error(lambda lib, x: lib.relu(x), np.array([True]), match="Boolean inputs")


def test_index_put_checks_index_shapes_before_dtypes():
    """Shrunk: ``y[mask(1,), tensor([0, 0])] = bool`` on int64: indices that do not broadcast are torch's
    IndexError, before its dtype check."""

    def program(lib, x, w):
        y = x * 1
        y[lib.tensor([True]), lib.tensor([0, 0])] = w
        return y

    check_error(program, np.ones((1, 1), dtype=np.int64), np.array(True))


@pytest.mark.parametrize("dim", [-2, 2, (0, 2)], ids=["-2", "2", "(0,2)"])
def test_inf_norm_of_an_empty_tensor_over_non_empty_dims(dim):
    """Shrunk: ``[norm(inf, -2, keepdim)]`` on shape (1, 0, 1, 1): only an empty reduced dim is an error."""
    check_parity(lambda lib, x: x.norm(float("inf"), dim, True), np.ones((1, 0, 1, 1), dtype=F32))
    check_parity(lambda lib, x: x.norm(-float("inf"), dim), np.ones((1, 0, 1, 1), dtype=F32))


@pytest.mark.parametrize("dim", [1, (1, 2), None], ids=["1", "(1,2)", "all"])
def test_inf_norm_over_an_empty_dim_is_refused(dim):
    t_err, g_err = check_error(lambda lib, x: x.norm(float("inf"), dim), np.ones((1, 0, 1), dtype=F32))
    assert str(g_err) == str(t_err)


@pytest.mark.parametrize("dtypes", [("float64", "float32"), ("float32", "int64"), ("int64", "float32")])
def test_empty_bmm_of_two_dtypes_has_mat2s_dtype(dtypes):
    """Shrunk: ``[add((1,), float64), matmul((1, 0, 1), float32)]`` on (1, 1, 0) float32."""
    a, b = dtypes
    check_parity(lambda lib, x, y: lib.bmm(x, y), np.ones((1, 1, 0), dtype=a), np.ones((1, 0, 1), dtype=b),
                 grad=False)


@pytest.mark.parametrize("shapes", [((1, 1), (1, 1, 1)), ((2, 3), (4, 3, 1)), ((3,), (2, 3, 1)), ((2, 3), (4, 3, 2))])
def test_inplace_on_a_matmul_result_that_is_a_transposed_view(shapes):
    """Shrunk (scale 3): ``[add, add(1), matmul((1, 1, 1)), add_(1)]``: torch's matrix @ batch result is a
    transposed view when it is already contiguous, so an in-place op on it rebases it (``CopySlices``)."""
    a, b = shapes

    def program(lib, x, w):
        z = lib.matmul(x * 1, w)
        z.add_(1)
        return z

    check_parity(program, f32(*a), f32(*b))


# --- a view made under no_grad of a tensor that requires grad (was a strict xfail; fixed in issue 6) -------
def test_inplace_on_a_view_made_under_no_grad_is_refused():
    def program(lib, x):
        y = x * 1
        with lib.no_grad():
            v = y[0:2]
        assert v.requires_grad and v.is_leaf and v.grad_fn is None
        v.add_(1)

    check_error(program, np.arange(1.0, 5.0, dtype=F32), match="created in no_grad mode")


# --- issue 13's conv/pool/interpolate on empty tensors (found by test_fuzz_mixed_programs) -----------------
@pytest.mark.parametrize("name,x_shape,w_shape,padding", [
    ("conv_transpose2d", (0, 1, 1, 1), (1, 1, 2, 2), 1),       # output 0x0: torch skips its size check
    ("conv_transpose2d", (0, 1, 1, 2), (1, 1, 2, 1), 1),
    ("conv_transpose1d", (0, 1, 1), (1, 1, 2), 1),
], ids=["2d-1x1", "2d-1x2", "1d"])
def test_conv_transpose_of_an_empty_batch_may_have_an_empty_output(name, x_shape, w_shape, padding):
    check_parity(lambda lib, x, w: getattr(lib.nn.functional, name)(x, w, padding=padding), f32(*x_shape),
                 f32(*w_shape))


@pytest.mark.parametrize("name,x_shape,w_shape,padding,match", [
    ("conv_transpose2d", (1, 1, 1, 1), (1, 1, 2, 2), 1, "Output size is too small"),
    ("conv_transpose1d", (1, 1, 2), (1, 1, 1), 1, r"Given input size per channel: \(1 x 2\)"),
    ("conv_transpose2d", (0, 1, 1, 1), (1, 1, 2, 2), 2, r"invalid shape dimension -2 at index 2 of shape "
                                                        r"\[0, 1, -2, -2\]"),
    ("conv_transpose2d", (0, 1, 1, 1), (1, 1, 1, 1), 1, "only one dimension can be inferred"),
    ("conv_transpose1d", (0, 1, 2), (1, 1, 2), 2, r"into shape \[0, 1, 1, -1\]"),
], ids=["2d-batch", "1d-batch-message", "empty-negative", "empty-two-minus-ones", "empty-one-minus-one"])
def test_conv_transpose_refuses_a_too_small_output_as_torch(name, x_shape, w_shape, padding, match):
    check_error(lambda lib, x, w: getattr(lib.nn.functional, name)(x, w, padding=padding), f32(*x_shape),
                f32(*w_shape), match=match)


@pytest.mark.parametrize("pool", [
    lambda lib, x: lib.nn.functional.max_pool2d(x, (1, 1), 1, 0, 1, False),
    lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, (1, 1)),
], ids=["max_pool2d", "adaptive_max_pool2d"])
def test_max_pool_backward_of_an_empty_batch(pool):
    check_parity(pool, f32(0, 1, 1, 1))


@pytest.mark.parametrize("shape,size,mode,match", [
    ((1, 0, 1, 1), (1, 1), "nearest", r"Non-empty 4D data tensor expected but got a tensor with sizes \[1, 0, 1, 1\]"),
    ((1, 0, 1), 1, "nearest", r"Non-empty 3D data tensor expected but got a tensor with sizes \[1, 0, 1\]"),
    ((1, 1, 0, 1), (2, 2), "bilinear", r"input \(H: 0, W: 1\) output \(H: 2, W: 2\)"),
    ((1, 1, 0), 2, "linear", r"input \(W: 0\) and output \(W: 2\)"),
    ((1, 1, 2, 2), (0, 2), "nearest", "Input and output sizes should be greater than 0"),
], ids=["no-channels-4d", "no-channels-3d", "empty-height", "empty-width-1d", "empty-output"])
def test_interpolate_refuses_empty_channels_and_sizes_as_torch(shape, size, mode, match):
    check_error(lambda lib, x: lib.nn.functional.interpolate(x, size=size, mode=mode), f32(*shape), match=match)


def test_interpolate_of_an_empty_batch_is_allowed():
    check_parity(lambda lib, x: lib.nn.functional.interpolate(x, size=(2, 2), mode="bilinear"), f32(0, 1, 1, 1))


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.int32])
@pytest.mark.parametrize("name", ["conv1d", "conv_transpose1d"])
def test_convolution_of_an_empty_batch_accepts_any_dtype(name, dtype):
    # torch's empty path runs before its per-dtype kernels ("slow_conv2d_cpu" not implemented for 'Bool')
    x, w = np.ones((0, 1, 3), dtype=dtype), np.ones((1, 1, 1), dtype=dtype)
    check_parity(lambda lib, a, b: getattr(lib.nn.functional, name)(a, b), x, w, grad=False)
    check_error(lambda lib, a, b: lib.nn.functional.conv1d(a, b), np.ones((1, 1, 3), dtype=np.bool_),
                np.ones((1, 1, 1), dtype=np.bool_), grad=False, match="not implemented for 'Bool'")


@pytest.mark.parametrize("x_shape,w_shape,match", [
    ((1, 1, 2, 2), (1, 0, 1, 1), r"non-empty 2D or 4D weight tensor expected, but got: \[1, 0, 1, 1\]"),
    ((0, 1, 2, 2), (1, 0, 1, 1), "select"),
], ids=["batch", "empty-batch"])
def test_conv_transpose_with_no_output_channels_is_refused_as_torch(x_shape, w_shape, match):
    check_error(lambda lib, x, w: lib.nn.functional.conv_transpose2d(x, w), f32(*x_shape), f32(*w_shape),
                match=match)


@pytest.mark.parametrize("output_size", [(1, 2), (2, 3), (2, 2), (1, 1)])
def test_adaptive_avg_pool_keeps_non_finite_values_in_their_windows(output_size):
    # was one matmul with averaging matrices: 0 * inf made every window nan (found: x / 0 then the pool)
    x = np.array([[[1.0, -2.0, 3.0, np.inf], [0.0, np.nan, 1.0, -np.inf]]], dtype=F32)
    check_parity(lambda lib, t: lib.nn.functional.adaptive_avg_pool2d(t, output_size), x)
    check_parity(lambda lib, t: lib.nn.functional.adaptive_avg_pool2d(t / 0, output_size), f32(1, 2, 4))


def test_setitem_into_an_expanded_view_of_an_empty_tensor_writes_nothing():
    # torch skips the overlap check when nothing is written; the engine refused the read-only numpy view
    def program(lib, x, v):
        e = (x * 1).expand(1, 1, -1, 2)
        e[0] = v
        return e
    check_parity(program, f32(1, 1, 0, 1), f32())
    check_error(lambda lib, x: (x * 1).expand(2, 2).__setitem__(0, 1.0), f32(1, 1), match="single memory location")


@pytest.mark.parametrize("x", [
    np.ones((1, 1, 1), dtype=F32),                                                   # all padding: index 2
    np.array([[[-np.inf, 1.0], [-np.inf, -np.inf]]], dtype=F32),                     # windows of -inf only
], ids=["all-padding-window", "minus-inf-windows"])
def test_max_pool_reports_torchs_index_for_windows_without_a_maximum(x):
    # torch starts each window at its first in-bounds element with -inf and takes only greater values; a
    # window that is all padding (dilation 2 over one pixel) reports an index past the input. Forward and
    # indices only: torch's backward of such a window writes out of bounds.
    def pool(lib, t):
        return lib.nn.functional.max_pool2d(t, (2, 2), 1, 1, 2 if x.size == 1 else 1, False, True)
    check_parity(pool, x, grad=False)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 2.0])
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_of_a_0d_tensor_is_nan_for_a_non_finite_value(name, value):
    # found: x.var(0).sum().var(0, correction=0): the 0-d shortcut gave 0 for a nan (torch: (x - x)**2 = nan)
    check_parity(lambda lib, t: getattr(t, name)(0, correction=0), np.array(value, dtype=F32), grad=False)
