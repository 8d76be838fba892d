"""Parity of binary arithmetic (add, sub, mul, div, neg, scalar forms) with broadcasting."""

import numpy as np
import pytest

from ..parity import check_error, check_parity, rand

SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((0, 3), (3,)), ((5,), ())]


@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_binary_broadcast(name, a_shape, b_shape):
    check_parity(lambda lib, x, y: getattr(lib, name)(x, y), rand(*a_shape), rand(*b_shape, positive=True))


@pytest.mark.parametrize("expr", [
    lambda x: x + 1, lambda x: 1 + x, lambda x: x * 2.5, lambda x: 2 * x, lambda x: x - 1, lambda x: 1 - x,
    lambda x: x / 4, lambda x: 2 / x, lambda x: -x, lambda x: x + x, lambda x: x * x - x / (x + 3),
])
def test_scalar_forms(expr):
    check_parity(lambda lib, x: expr(x), rand(2, 3, positive=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha(dtype):
    check_parity(lambda lib, x, y: lib.add(x, y, alpha=0.5) - lib.sub(x, y, alpha=3), rand(3, dtype=dtype),
                 rand(3, dtype=dtype))


def test_promotion():
    # int tensor with float scalar / tensor, float32 with float64 (0-d and dimensioned)
    check_parity(lambda lib, x: lib.tensor([1, 2, 3]) * 2.5 + x, rand(3, dtype=np.float32))
    check_parity(lambda lib, x, y: x * y, rand(3, dtype=np.float32), rand(3, dtype=np.float64))
    check_parity(lambda lib, x, y: x * y, rand(3, dtype=np.float32), rand(dtype=np.float64))
    check_parity(lambda lib: lib.tensor([1, 2]) / lib.tensor([2, 4]))


def test_broadcast_error():
    check_error(lambda lib, x, y: x + y, rand(3), rand(4), match="must match the size of tensor b")
