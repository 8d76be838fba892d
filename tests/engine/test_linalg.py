"""Parity of matrix products (matmul / @ in every shape case, mm, bmm, mv, dot, addmm, outer) with torch:
values, gradients, the exact graph torch records, and torch's error messages."""

import re

import numpy as np
import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH
from ..parity import check_error, check_parity, rand

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((2, 2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((1, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (1, 4, 5)),
    ((3, 4), (2, 4, 5)),
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((2, 2, 3, 4), (2, 4, 5)),
    ((2, 2, 3, 4), (2, 2, 4, 5)),
    ((2, 1, 3, 4), (1, 2, 4, 5)),
    ((0, 4), (4, 5)),
    ((3, 0), (0, 5)),
    ((2, 0, 4), (4, 5)),
    ((1, 4), (4, 1)),
]


@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_shapes(a_shape, b_shape, dtype):
    check_parity(lambda lib, x, y: x @ y, rand(*a_shape, dtype=dtype), rand(*b_shape, dtype=dtype))


@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES[:15])
def test_matmul_one_side_constant(a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape)
    # only the left operand requires grad, then only the right one (fold decisions depend on it)
    check_parity(lambda lib, x, y: x @ y.detach(), a, b)
    check_parity(lambda lib, x, y: x.detach() @ y, a, b)
    check_parity(lambda lib, x, y: lib.matmul(x, y), a, b)


def test_matmul_noncontiguous_operands():
    check_parity(lambda lib, x, y: x.transpose(0, 1) @ y, rand(3, 2, 4), rand(4, 5))
    check_parity(lambda lib, x, y: x @ y.t(), rand(3, 4), rand(5, 4))
    check_parity(lambda lib, x, y: x.detach().transpose(1, 2) @ y, rand(2, 4, 3), rand(4, 5))


def test_matmul_viewable_noncontiguous_operand():
    # folding a sliced batch is a strided alias in torch (ReshapeAliasBackward0), not a copy
    check_parity(lambda lib, x, y: x[..., :2] @ y, rand(2, 3, 4), rand(2, 5))
    check_parity(lambda lib, x, y: x[:, 1:] @ y, rand(2, 3, 4), rand(4, 5))


EINSUM = [
    ("ij,jk->ik", (3, 4), (4, 5)),
    ("ij,jk", (3, 4), (4, 5)),
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("i,i->", (4,), (4,)),
    ("i,j->ij", (3,), (4,)),
    ("ij->ji", (3, 4)),
    ("ij->j", (3, 4)),
    ("ij->", (3, 4)),
    ("ij", (3, 4)),
    ("ji", (3, 4)),
    ("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)),
    ("...ij,...jk->...ik", (2, 3, 4), (4, 5)),
    ("ij,kj->ik", (3, 4), (5, 4)),
    ("ab,cd->abcd", (2, 3), (4, 5)),
    ("ik,k->i", (3, 4), (4,)),
    ("bi,bi->b", (3, 4), (3, 4)),
    ("ij,ij->ij", (3, 4), (3, 4)),
    ("ik,kj->ij", (3, 1), (1, 4)),
    ("ab,b", (1, 4), (4,)),
    ("Ab,bC->AC", (3, 4), (4, 5)),
    ("...i,...i->...", (2, 3, 4), (3, 4)),
    (" i j , j k -> i k ", (3, 4), (4, 5)),
]


@pytest.mark.parametrize("case", EINSUM, ids=[c[0] for c in EINSUM])
def test_einsum(case):
    eq, *shapes = case
    check_parity(lambda lib, *xs: lib.einsum(eq, *xs), *(rand(*s) for s in shapes))


def test_einsum_three_operands_list_form_and_second_derivative():
    # torch may order a 3-operand contraction by opt_einsum's path: compare values and gradients only
    check_parity(
        lambda lib, a, b, c: lib.einsum("i,ij,j->", a, b, c), rand(3), rand(3, 4), rand(4), graph=False
    )
    check_parity(lambda lib, a, b: lib.einsum("ij,jk->ik", [a, b]), rand(3, 4), rand(4, 5))

    def fn(lib, a, b):
        out = lib.einsum("bij,bjk->bik", a, b)
        return lib.autograd.grad((out * out).sum(), (a, b), create_graph=True)

    check_parity(fn, rand(2, 3, 4), rand(2, 4, 5), graph=False)


@pytest.mark.parametrize(
    "eq,shapes,match",
    [
        (
            "ij,jk->ik",
            ((3, 4), (5, 6)),
            r"einsum\(\): subscript j has size 5 for operand 1 which does not broadcast",
        ),
        (
            "ij,jk->ik",
            ((3, 4, 1), (4, 5)),
            r"einsum\(\): the number of subscripts in the equation \(2\) does not",
        ),
        (
            "ij->ik",
            ((3, 4),),
            r"einsum\(\): output subscript k does not appear in the equation for any input",
        ),
        ("ij->ii", ((3, 4),), r"einsum\(\): output subscript i appears more than once in the output"),
        ("ij,jk,kl->il", ((3, 4), (4, 5)), r"einsum\(\): fewer operands were provided than specified"),
        (
            "ij->i",
            ((3, 4), (4, 5)),
            r"einsum\(\): more operands were provided than specified in the equation",
        ),
        ("i1->i", ((3, 4),), r"einsum\(\): invalid subscript given at index 1 in the equation string"),
    ],
)
def test_einsum_errors(eq, shapes, match):
    t_err, g_err = check_error(lambda lib, *xs: lib.einsum(eq, *xs), *(rand(*s) for s in shapes), match=match)
    assert str(g_err) == str(t_err)


def test_matmul_without_grad_is_plain():
    for a_shape, b_shape in MATMUL_SHAPES:
        a, b = ge.tensor(rand(*a_shape)), ge.tensor(rand(*b_shape))
        out = a @ b
        assert out.grad_fn is None and not out.requires_grad
        np.testing.assert_allclose(out.numpy(), np.matmul(a.numpy(), b.numpy()))
    with ge.no_grad():
        out = ge.ones(2, 3, requires_grad=True) @ ge.ones(3, requires_grad=True)
    assert out.grad_fn is None and out.tolist() == [3.0, 3.0]


def test_rmatmul_and_ndarray_operands():
    check_parity(lambda lib, x, y: y.__rmatmul__(x), rand(3, 4), rand(4, 5))
    w = ge.ones(3, 2, requires_grad=True)
    out = np.ones((2, 3)) @ ge.ones(3, 2, dtype=ge.float64, requires_grad=True)
    assert out.grad_fn.name() == "MmBackward0" and out.shape == (2, 2)
    assert (w @ np.ones((2,), dtype=np.float32)).grad_fn.name() == "MvBackward0"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mm_bmm_mv_dot(dtype):
    check_parity(lambda lib, x, y: lib.mm(x, y), rand(3, 4, dtype=dtype), rand(4, 2, dtype=dtype))
    check_parity(lambda lib, x, y: x.mm(y), rand(3, 4, dtype=dtype), rand(4, 2, dtype=dtype))
    check_parity(lambda lib, x, y: lib.bmm(x, y), rand(2, 3, 4, dtype=dtype), rand(2, 4, 5, dtype=dtype))
    check_parity(lambda lib, x, y: x.bmm(y), rand(2, 3, 4, dtype=dtype), rand(2, 4, 5, dtype=dtype))
    check_parity(lambda lib, x, y: lib.mv(x, y), rand(3, 4, dtype=dtype), rand(4, dtype=dtype))
    check_parity(lambda lib, x, y: x.mv(y), rand(3, 4, dtype=dtype), rand(4, dtype=dtype))
    check_parity(lambda lib, x, y: lib.dot(x, y), rand(4, dtype=dtype), rand(4, dtype=dtype))
    check_parity(lambda lib, x, y: x.dot(y), rand(4, dtype=dtype), rand(4, dtype=dtype))
    check_parity(lambda lib, x, y: lib.outer(x, y), rand(3, dtype=dtype), rand(4, dtype=dtype))
    check_parity(lambda lib, x, y: x.outer(y), rand(3, dtype=dtype), rand(4, dtype=dtype))


@pytest.mark.parametrize("bias_shape", [(5,), (1, 5), (3, 5), (), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_addmm(bias_shape, dtype):
    check_parity(
        lambda lib, b, x, w: lib.addmm(b, x, w),
        rand(*bias_shape, dtype=dtype),
        rand(3, 4, dtype=dtype),
        rand(4, 5, dtype=dtype),
    )


def test_addmm_beta_alpha_and_method():
    check_parity(
        lambda lib, b, x, w: lib.addmm(b, x, w, beta=0.5, alpha=2.0), rand(5), rand(3, 4), rand(4, 5)
    )
    check_parity(lambda lib, b, x, w: b.addmm(x, w, alpha=3), rand(3, 5), rand(3, 4), rand(4, 5))
    check_parity(lambda lib, b, x, w: lib.addmm(b.detach(), x, w.detach()), rand(5), rand(3, 4), rand(4, 5))


def test_linear_graph_shape():
    # F.linear on 2-D input is addmm(bias, x, weight.t()): edges (bias, x, TBackward0 -> weight)
    check_parity(lambda lib, b, x, w: lib.addmm(b, x.detach(), w.t()), rand(5), rand(3, 4), rand(5, 4))


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((2, 3, 4), (2, 4, 5)),
    ],
)
def test_matmul_second_derivative(a_shape, b_shape):
    def fn(lib, x, y):
        z = x @ y
        out = (z * z * z).sum()
        gx, gy = lib.autograd.grad(out, (x, y), create_graph=True)
        return gx, gy

    check_parity(fn, rand(*a_shape), rand(*b_shape), graph=False)


def test_addmm_second_derivative():
    def fn(lib, b, x, w):
        z = lib.addmm(b, x, w)
        out = (z * z * z).sum()
        return lib.autograd.grad(out, (b, x, w), create_graph=True)

    check_parity(fn, rand(5), rand(3, 4), rand(4, 5), graph=False)


@pytest.mark.parametrize(
    "a_shape,b_shape,match",
    [
        ((64, 784), (100, 128), r"mat1 and mat2 shapes cannot be multiplied \(64x784 and 100x128\)"),
        ((3,), (4,), r"inconsistent tensor size, expected tensor \[3\] and src \[4\]"),
        ((3, 4), (5,), r"size mismatch, got input \(3\), mat \(3x4\), vec \(5\)"),
        ((3,), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(1x3 and 4x5\)"),
        ((2, 3, 4), (5, 6), r"mat1 and mat2 shapes cannot be multiplied \(6x4 and 5x6\)"),
        (
            (2, 3, 4),
            (2, 5, 6),
            r"Expected size for first two dimensions of batch2 tensor to be: \[2, 4\] but got: \[2, 5\]",
        ),
        (
            (2, 3, 4),
            (3, 4, 6),
            r"The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton",
        ),
        ((2, 3, 4), (5,), r"size mismatch, got input \(6\), mat \(6x4\), vec \(5\)"),
        ((3, 4), (2, 5, 6), r"Expected size for first two dimensions of batch2 tensor"),
        ((), (3,), r"both arguments to matmul need to be at least 1D, but they are 0D and 1D"),
        ((3,), (), r"both arguments to matmul need to be at least 1D, but they are 1D and 0D"),
    ],
)
@pytest.mark.parametrize("grad", [True, False])
def test_matmul_errors(a_shape, b_shape, match, grad):
    t_err, g_err = check_error(lambda lib, x, y: x @ y, rand(*a_shape), rand(*b_shape), grad=grad)
    assert str(g_err) == str(t_err)
    if (a_shape, b_shape) != ((3, 4), (2, 5, 6)) or not grad:  # torch folds there and words it as mm does
        assert re.search(match, str(g_err))


@pytest.mark.parametrize(
    "fn,shapes,match",
    [
        (lambda lib, x, y: lib.mm(x, y), ((3,), (3, 4)), "self must be a matrix"),
        (lambda lib, x, y: lib.mm(x, y), ((3, 4), (3,)), "mat2 must be a matrix"),
        (lambda lib, x, y: lib.mm(x, y), ((3, 4), (5, 4)), r"cannot be multiplied \(3x4 and 5x4\)"),
        (
            lambda lib, x, y: lib.mv(x, y),
            ((3, 4), (5, 1)),
            r"vector \+ matrix @ vector expected, got 1, 2, 2",
        ),
        (lambda lib, x, y: lib.dot(x, y), ((3, 1), (3,)), "1D tensors expected, but got 2D and 1D tensors"),
        (lambda lib, x, y: lib.bmm(x, y), ((3, 4), (3, 4, 6)), "batch1 must be a 3D tensor"),
        (lambda lib, x, y: lib.bmm(x, y), ((2, 3, 4), (3, 4, 6)), r"to be: \[2, 4\] but got: \[3, 4\]"),
        (lambda lib, x, y: lib.outer(x, y), ((3, 1), (2,)), "outer: Expected 1-D argument self, but got 2-D"),
        (
            lambda lib, x, y: lib.addmm(lib.zeros(3, dtype=lib.float64), x, y),
            ((2, 3), (4, 3)),
            r"\(2x3 and 4x3\)",
        ),
        (
            lambda lib, x, y: lib.addmm(lib.zeros(4, dtype=lib.float64), x, y),
            ((2, 3), (3, 5)),
            r"The expanded size of the tensor \(5\) must match the existing size \(4\) at non-singleton "
            r"dimension 1",
        ),
    ],
)
def test_product_errors(fn, shapes, match):
    check_error(fn, *(rand(*s) for s in shapes), match=match)


def test_dtype_mismatch_errors():
    check_error(
        lambda lib, x, y: lib.mm(x, y),
        rand(3, 4, dtype=np.float32),
        rand(4, 5),
        match="expected m1 and m2 to have the same dtype, but got: float != double",
    )
    check_error(
        lambda lib, x, y: x @ y,
        rand(3, 4, dtype=np.float32),
        rand(4, 5),
        match="expected m1 and m2 to have the same dtype",
    )
    check_error(
        lambda lib, x, y: lib.dot(x, y),
        rand(3, dtype=np.float32),
        rand(3),
        match="dot : expected both vectors to have same dtype, but found Float and Double",
    )


def test_integer_matmul():
    check_parity(lambda lib: lib.tensor([[1, 2]]) @ lib.tensor([[1], [2]]))
    check_parity(lambda lib: lib.tensor([[1, 2], [3, 4]]) @ lib.tensor([1, 2]))


def test_saved_operand_modified_in_place():
    # torch saves x only because w needs its gradient; a later in-place change of x is caught on backward
    def fn(lib, x, w):
        h = x * 1
        out = h @ w
        h.add_(1)
        out.sum().backward()

    check_error(fn, rand(3, 4), rand(4, 2), match="modified by an inplace operation")

    def fine(lib, x, w):
        h = x.detach() * 1
        out = h @ w.detach().requires_grad_(False) @ w
        h.add_(1)
        return out

    check_parity(fine, rand(3, 4), rand(4, 4))


def test_backward_twice_raises():
    def fn(lib, x, y):
        out = (x @ y).sum()
        out.backward()
        out.backward()

    check_error(fn, rand(3, 4), rand(4, 2), match="backward through the graph a second time")


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_graph_names_match_torch_table():
    import torch

    for a_shape, b_shape in MATMUL_SHAPES:
        names = []
        for lib in (torch, ge):
            x = lib.ones(*a_shape, requires_grad=True)
            y = lib.ones(*b_shape, requires_grad=True)
            names.append((x @ y).grad_fn.name())
        assert names[0] == names[1], (a_shape, b_shape, names)


@pytest.mark.parametrize("op", ["bmm", "matmul"])
@pytest.mark.parametrize("other_dtype", [np.int64, np.bool_])
def test_empty_mixed_dtype_product_refuses_autograd_like_torch(op, other_dtype):
    """torch skips the dtype check of an empty batched product (zeros of mat2's dtype), and autograd then
    refuses the integer result when an operand requires grad (a fuzz finding)."""
    def program(lib, a):
        b = lib.tensor(np.zeros((1, 0, 1), dtype=other_dtype))
        return getattr(lib, op)(a, b)

    check_error(program, np.zeros((1, 1, 0), dtype=np.float32), match="Autograd not support dtype")
    if HAS_TORCH:
        import torch

        for lib in (torch, ge):  # without requires_grad both give the empty product's zeros
            out = program(lib, lib.tensor(np.zeros((1, 1, 0), dtype=np.float32)))
            assert out.shape == (1, 1, 1) and not out.requires_grad and str(out.dtype).endswith(
                {np.int64: "int64", np.bool_: "bool"}[other_dtype])
