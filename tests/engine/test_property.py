"""Property-based parity: random chains of ops on random broadcastable shapes give the same values,
gradients and graph node names on torch and on the native engine.

hypothesis draws a base shape, then a chain of steps; each step applies one op to the running value,
mixing in a fresh input whose shape broadcasts against it (leading dims dropped, dims set to 1). Values
stay in a safe domain (positive where an op needs it) so that failures are real differences, not NaNs.
"""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import HAS_TORCH
from ..parity import check_parity

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")

# (name, needs a second input, function of (lib, running value, other input))
UNARY = {
    "neg": lambda lib, x: -x,
    "exp_scaled": lambda lib, x: lib.exp(x * 0.1),
    "tanh": lambda lib, x: lib.tanh(x),
    "sigmoid": lambda lib, x: lib.sigmoid(x),
    "relu_shift": lambda lib, x: lib.relu(x + 0.25),
    "square": lambda lib, x: x * x,
    "pow2": lambda lib, x: x ** 2,
    "log_softplus": lambda lib, x: lib.log(lib.exp(x * 0.1) + 1.0),
    "sqrt_pos": lambda lib, x: lib.sqrt(x * x + 1.0),
    "abs_shift": lambda lib, x: lib.abs(x - 0.3),
    "sin": lambda lib, x: lib.sin(x),
    "clamp": lambda lib, x: lib.clamp(x, -0.8, 0.9),
    "scale": lambda lib, x: x * 1.5 - 0.5,
    "rdiv": lambda lib, x: 1.0 / (x * x + 1.0),
}
BINARY = {
    "add": lambda lib, x, y: x + y,
    "sub": lambda lib, x, y: x - y,
    "mul": lambda lib, x, y: x * y,
    "div": lambda lib, x, y: x / (y * y + 0.5),
    "maximum": lambda lib, x, y: lib.maximum(x, y),
    "where": lambda lib, x, y: lib.where(x > y, x, y * 2),
}


def _reduce_fns(ndim: int):
    fns = {"sum_all": lambda lib, x: x.sum(), "mean_all": lambda lib, x: x.mean()}
    if ndim:
        fns.update({
            "sum_last": lambda lib, x: x.sum(-1),
            "mean_first_keep": lambda lib, x: x.mean(0, keepdim=True),
            "softmax_last": lambda lib, x: lib.softmax(x, dim=-1),
            "logsoftmax_last": lambda lib, x: lib.log_softmax(x, dim=-1),
            "amax_last": lambda lib, x: x.amax(-1),
        })
    return fns


@st.composite
def programs(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    n_steps = draw(st.integers(1, 5))
    steps = []
    inputs = [shape]
    for _ in range(n_steps):
        if draw(st.booleans()):
            steps.append(("u", draw(st.sampled_from(sorted(UNARY)))))
        else:
            # a shape that broadcasts against `shape`: drop leading dims, set some dims to 1
            keep = draw(st.integers(0, len(shape)))
            other = list(shape[len(shape) - keep:])
            for i in range(len(other)):
                if draw(st.booleans()):
                    other[i] = 1
            inputs.append(tuple(other))
            steps.append(("b", draw(st.sampled_from(sorted(BINARY))), len(inputs) - 1))
    final = draw(st.sampled_from(sorted(_reduce_fns(ndim))))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    seed = draw(st.integers(0, 2**16))
    return shape, inputs, steps, final, dtype, seed


def _program_fn(steps, final, ndim):
    reducers = _reduce_fns(ndim)

    def fn(lib, *xs):
        value = xs[0]
        for step in steps:
            if step[0] == "u":
                value = UNARY[step[1]](lib, value)
            else:
                value = BINARY[step[1]](lib, value, xs[step[2]])
        return reducers[final](lib, value)
    return fn


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_op_chains(program):
    shape, inputs, steps, final, dtype, seed = program
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, size=s).astype(dtype) for s in inputs]
    check_parity(_program_fn(steps, final, len(shape)), *arrays,
                 rtol=1e-9 if dtype == "float64" else 2e-5, atol=1e-10 if dtype == "float64" else 1e-5)
