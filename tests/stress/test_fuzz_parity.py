"""Fuzzed parity: hypothesis writes random programs over the ops both engines share and every program must
give the same values, gradients, graph node names and dtypes on torch and on ``gradlens.engine`` -- or, when
torch rejects the program, the engine must reject it with the same exception type.

A program starts from one random input (0-d to 4-d, size-0 and size-1 dims included, float32, float64,
int64 or bool) and applies a chain of steps drawn from one or more op families: pointwise, broadcasting
binary ops (with dtype promotion and Python scalars), in-place ops on non-leaf tensors, views, in-place
writes through views, reductions with ``dim``/``keepdim``, indexing, the matmul family and
cat/stack/split/chunk. While drawing, each step is applied to the torch value, so later steps are drawn
for the shape and dtype the program really has; a step's arguments are sometimes deliberately wrong
(a bad dim, a shape that does not broadcast, a view of a non-contiguous tensor), and then the program is
an error-parity check. The whole program, including ``backward()``, is then run on both engines.

Every op/argument/shape/dtype combination that ran is counted (``tests/stress/_combos.py``); the total is
printed at the end of the session. ``GRADLENS_FUZZ_SCALE`` (default 1) multiplies ``max_examples``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ..conftest import HAS_TORCH
from ..parity import _make, check_error, check_parity
from . import _combos

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")

SCALE = float(os.environ.get("GRADLENS_FUZZ_SCALE", "1"))


def fuzz_settings(n: int):
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------
DTYPES = ("float32", "float64", "int64", "bool")


def make_array(rng: np.random.Generator, shape, dtype: str, positive: bool = False) -> np.ndarray:
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype == "int64":
        low = 1 if positive else -3
        return np.asarray(rng.integers(low, 4, size=shape), dtype=np.int64)
    low, high = (0.5, 2.0) if positive else (-2.0, 2.0)
    return np.asarray(rng.uniform(low, high, size=shape), dtype=dtype)


size_st = st.integers(0, 9).map(lambda v: 0 if v == 9 else v % 3 + 1)  # 1..3, sometimes 0


def shape_st(min_dims=0, max_dims=4):
    return st.lists(size_st, min_size=min_dims, max_size=max_dims).map(tuple)


class Program:
    """A program under construction: its input arrays, its steps, and the torch value it has reached."""

    def __init__(self, data, seed: int):
        self.data = data
        self.rng = np.random.default_rng(seed)
        self.arrays: list[np.ndarray] = []
        self.torch_inputs: list = []
        self.steps: list[tuple[str, object]] = []
        self.labels: list[tuple] = []

    def draw(self, strategy):
        return self.data.draw(strategy)

    def add(self, shape, dtype, positive=False) -> int:
        """A fresh input array; returns its index among the program's inputs."""
        import torch

        arr = make_array(self.rng, shape, dtype, positive)
        self.arrays.append(arr)
        self.torch_inputs.append(_make(torch, arr, True))
        return len(self.arrays) - 1

    def fn(self, lib, *ins):
        x = ins[0]
        for _label, f in self.steps:
            x = f(lib, x, ins)
        return x


def _desc(t):
    return tuple(t.shape), str(t.dtype).replace("torch.", "")


# --------------------------------------------------------------------------------------------------------
# drawing helpers
# --------------------------------------------------------------------------------------------------------
def draw_dim(p: Program, nd: int, bad_ok: bool = True) -> int:
    """A dim of an ``nd``-dim tensor; sometimes one just out of range when ``bad_ok``."""
    n = max(nd, 1)
    lo, hi = (-n - 1, n) if bad_ok else (-n, n - 1)
    return p.draw(st.integers(lo, hi))


def draw_other_dtype(p: Program, dtype: str, inplace: bool = False) -> str:
    if inplace and dtype in ("int64", "bool"):
        # a float source that requires grad written into an int tensor makes torch itself misbehave
        # (an int tensor that requires grad, then an internal assert in backward): not a parity question
        return p.draw(st.sampled_from([dtype, "int64", "bool"]))
    return p.draw(st.sampled_from([dtype, dtype, dtype, "float32", "float64", "int64", "bool"]))


def draw_bshape(p: Program, shape, bigger_ok=True, bad_ok=True) -> tuple:
    """A shape that broadcasts against ``shape`` (drop leading dims, set dims to 1, add a leading dim);
    sometimes one that does not."""
    s = list(shape)
    if bad_ok and s and p.draw(st.integers(0, 11)) == 0:
        i = p.draw(st.integers(0, len(s) - 1))
        if s[i] != 1:
            s[i] = s[i] + 2
            return tuple(s)
    keep = p.draw(st.integers(0, len(s)))
    out = s[len(s) - keep :]
    for i in range(len(out)):
        if p.draw(st.integers(0, 2)) == 0:
            out[i] = 1
    if bigger_ok and p.draw(st.integers(0, 5)) == 0:
        out = [p.draw(st.integers(1, 2))] + out
    return tuple(out)


def _scalar_st(dtype):
    if dtype == "bool":
        return st.booleans()
    return st.one_of(st.integers(-2, 3), st.sampled_from([0.5, -1.25, 2.0]))


# --------------------------------------------------------------------------------------------------------
# op families: each draws one step for the current torch value x and returns (label, f(lib, x, ins))
# --------------------------------------------------------------------------------------------------------
UNARY = {
    "neg": lambda lib, x: -x,
    "abs": lambda lib, x: lib.abs(x),
    "tanh": lambda lib, x: lib.tanh(x),
    "sigmoid": lambda lib, x: lib.sigmoid(x),
    "sin": lambda lib, x: lib.sin(x),
    "exp": lambda lib, x: lib.exp(x * 0.25),
    "relu": lambda lib, x: lib.relu(x),
    "square": lambda lib, x: x * x,
    "pow2": lambda lib, x: x**2,
    "sqrt": lambda lib, x: lib.sqrt(x * x + 1),
    "reciprocal": lambda lib, x: lib.reciprocal(x * x + 1),
    "clone": lambda lib, x: x.clone(),
    "mul1": lambda lib, x: x * 1,
}


def fam_unary(p: Program, x):
    name = p.draw(st.sampled_from(sorted(UNARY) + ["clamp"]))
    if name == "clamp":
        lo = p.draw(st.sampled_from([None, -1.0, -0.5, 0]))
        hi = p.draw(st.sampled_from([None, 0.5, 1.0, 2]))
        return (f"clamp({lo},{hi})",), lambda lib, x, ins: lib.clamp(x, lo, hi)
    f = UNARY[name]
    return (name,), lambda lib, x, ins: f(lib, x)


BINARY = {
    "add": lambda lib, x, y: x + y,
    "radd": lambda lib, x, y: y + x,
    "sub": lambda lib, x, y: x - y,
    "mul": lambda lib, x, y: x * y,
    "div": lambda lib, x, y: x / y,
    "maximum": lambda lib, x, y: lib.maximum(x, y),
    "where": lambda lib, x, y: lib.where(x > y, x, y),
    "torch.add_alpha": lambda lib, x, y: lib.add(x, y, alpha=2),
    "torch.sub": lambda lib, x, y: lib.sub(x, y),
    "torch.mul": lambda lib, x, y: lib.mul(x, y),
}


def fam_binary(p: Program, x):
    name = p.draw(st.sampled_from(sorted(BINARY)))
    f = BINARY[name]
    if p.draw(st.integers(0, 4)) == 0 and name not in ("maximum", "where"):
        c = p.draw(_scalar_st(str(x.dtype).replace("torch.", "")))
        return (name, "scalar", type(c).__name__), lambda lib, x, ins: f(lib, x, c)
    shape = draw_bshape(p, tuple(x.shape))
    dtype = draw_other_dtype(p, str(x.dtype).replace("torch.", ""))
    k = p.add(shape, dtype, positive=(name == "div"))
    return (name, shape, dtype), lambda lib, x, ins: f(lib, x, ins[k])


ACTIVATIONS = {  # nn.functional activations, with and without inplace=True (torch writes in place)
    "hardtanh": lambda F, x, inplace: F.hardtanh(x, -0.5, 0.5, inplace=inplace),
    "relu6": lambda F, x, inplace: F.relu6(x, inplace=inplace),
    "leaky_relu": lambda F, x, inplace: F.leaky_relu(x, 0.2, inplace=inplace),
    "elu": lambda F, x, inplace: F.elu(x, 0.7, inplace=inplace),
    "selu": lambda F, x, inplace: F.selu(x, inplace=inplace),
    "silu": lambda F, x, inplace: F.silu(x, inplace=inplace),
    "relu": lambda F, x, inplace: F.relu(x, inplace=inplace),
}


def fam_inplace(p: Program, x):
    """An in-place op on the current value (a non-leaf, unless the program is still at its leaf input)."""
    dtype = str(x.dtype).replace("torch.", "")
    name = p.draw(
        st.sampled_from(
            ["add_", "sub_", "mul_", "div_", "clamp_", "copy_", "masked_fill_", "setitem", "zero_", "activation"]
        )
    )
    if name == "activation":
        act = p.draw(st.sampled_from(sorted(ACTIVATIONS)))
        inplace = p.draw(st.booleans())
        f = ACTIVATIONS[act]
        return (f"F.{act}", inplace), lambda lib, x, ins: f(lib.nn.functional, x, inplace)
    if name == "zero_":
        return (name,), lambda lib, x, ins: x.zero_()
    if name == "clamp_":
        lo = p.draw(st.sampled_from([None, -1.0, -0.5, 0]))
        hi = p.draw(st.sampled_from([None, 0.5, 1.0, 2]))
        return (f"clamp_({lo},{hi})",), lambda lib, x, ins: x.clamp_(lo, hi)
    if name == "setitem":
        return fam_setitem(p, x)
    if name == "masked_fill_":
        mshape = draw_bshape(p, tuple(x.shape))
        k = p.add(mshape, p.draw(st.sampled_from(["bool", "bool", "bool", "int64"])))
        value = p.draw(st.sampled_from([0.0, -1.5, 3]))
        return (name, mshape, value), lambda lib, x, ins: x.masked_fill_(ins[k], value)
    if p.draw(st.integers(0, 4)) == 0 and name != "copy_":
        c = p.draw(_scalar_st(dtype))
        return (name, "scalar", type(c).__name__), lambda lib, x, ins: getattr(x, name)(c)
    shape = draw_bshape(p, tuple(x.shape), bigger_ok=p.draw(st.integers(0, 3)) == 0)
    odtype = draw_other_dtype(p, dtype, inplace=True)
    k = p.add(shape, odtype, positive=(name == "div_"))
    return (name, shape, odtype), lambda lib, x, ins: getattr(x, name)(ins[k])


def draw_index(p: Program, shape, lib_free=True):
    """An indexing key for ``shape``: ints, slices, None, Ellipsis, int tensors, bool masks.

    Returns a description (hashable) and a function ``lib -> key``."""
    parts = []  # (kind, payload)
    nd = len(shape)
    d = 0
    used_ellipsis = False
    n_items = p.draw(st.integers(1, max(1, min(nd + 1, 4))))
    for _ in range(n_items):
        choices = ["int", "slice", "None"]
        if not used_ellipsis:
            choices.append("ellipsis")
        if d < nd:
            choices += ["tensor", "mask"]
        kind = p.draw(st.sampled_from(choices))
        size = shape[d] if d < nd else 0
        if kind == "int":
            lo, hi = -size - 1, size
            parts.append(("int", p.draw(st.integers(lo, hi))))
            d += 1
        elif kind == "slice":
            start = p.draw(st.sampled_from([None, 0, 1, -1, -2, 5]))
            stop = p.draw(st.sampled_from([None, 1, 2, -1, 10]))
            step = p.draw(st.sampled_from([None, 1, 2, 2, 3, -1]))
            parts.append(("slice", (start, stop, step)))
            d += 1
        elif kind == "None":
            parts.append(("None", None))
        elif kind == "ellipsis":
            used_ellipsis = True
            parts.append(("ellipsis", None))
            d = nd  # the rest is consumed by the ellipsis (approximately)
        elif kind == "tensor":
            n = p.draw(st.integers(0, 4))
            hi = max(size, 1)
            if math.prod(shape) == 0:
                # torch skips the bounds check when the indexed tensor has no elements (a quirk the engine
                # does not copy): only in-range indices there
                n = n if size else 0
                hi = size - 1
            lo = -hi - 1 if math.prod(shape) == 0 else -hi
            vals = tuple(p.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))) if n else ()
            parts.append(("tensor", vals))
            d += 1
        else:  # mask over the next k dims
            k = p.draw(st.integers(1, nd - d))
            mshape = tuple(shape[d : d + k])
            mask = tuple(p.rng.random(mshape).reshape(-1) < 0.5)
            parts.append(("mask", (mshape, mask)))
            d += k

    def key(lib):
        out = []
        for kind, payload in parts:
            if kind == "int":
                out.append(payload)
            elif kind == "slice":
                out.append(slice(*payload))
            elif kind == "None":
                out.append(None)
            elif kind == "ellipsis":
                out.append(Ellipsis)
            elif kind == "tensor":
                out.append(lib.tensor(np.array(payload, dtype=np.int64)))
            else:
                mshape, mask = payload
                out.append(lib.tensor(np.array(mask, dtype=bool).reshape(mshape)))
        return out[0] if len(out) == 1 and p_single[0] else tuple(out)

    p_single = [p.draw(st.booleans()) and len(parts) == 1]
    desc = tuple((k, v if k != "mask" else v[0]) for k, v in parts)
    return desc, key


def fam_index(p: Program, x):
    desc, key = draw_index(p, tuple(x.shape))
    return ("getitem", desc), lambda lib, x, ins: x[key(lib)]


def fam_setitem(p: Program, x):
    desc, key = draw_index(p, tuple(x.shape))
    try:
        target = tuple(x.detach()[key(__import__("torch"))].shape)
    except Exception:
        target = ()
    if p.draw(st.booleans()):
        c = p.draw(st.sampled_from([0.0, -1.0, 2.5, 1]))
        return ("setitem", desc, "scalar"), lambda lib, x, ins: _setitem(x, key(lib), c)
    vshape = draw_bshape(p, target, bigger_ok=False)
    dtype = draw_other_dtype(p, str(x.dtype).replace("torch.", ""), inplace=True)
    k = p.add(vshape, dtype)
    return ("setitem", desc, vshape), lambda lib, x, ins: _setitem(x, key(lib), ins[k])


def _setitem(x, key, value):
    x[key] = value
    return x


def draw_view(p: Program, x):
    """A view op on x: (label, f(lib, x))."""
    shape = tuple(x.shape)
    nd = len(shape)
    numel = math.prod(shape)
    name = p.draw(
        st.sampled_from(
            [
                "view",
                "reshape",
                "transpose",
                "permute",
                "expand",
                "slice",
                "unsqueeze",
                "squeeze",
                "squeeze_all",
                "t",
                "flatten",
                "narrow",
            ]
        )
    )
    if name in ("view", "reshape"):
        options = [(-1,), (numel,), (1, -1), shape + (1,)]
        if nd >= 2:
            i = p.draw(st.integers(0, nd - 2))
            options.append(shape[:i] + (shape[i] * shape[i + 1],) + shape[i + 2 :])
        options.append((numel + 1,))  # wrong size: an error in both
        new = p.draw(st.sampled_from(options))
        return (name, new), lambda lib, x: getattr(x, name)(*new)
    if name == "transpose":
        d0, d1 = draw_dim(p, nd), draw_dim(p, nd)
        return (name, d0, d1), lambda lib, x: x.transpose(d0, d1)
    if name == "permute":
        perm = list(p.draw(st.permutations(range(nd))))
        if nd and p.draw(st.integers(0, 7)) == 0:
            perm[0] = perm[-1]  # a repeated dim: an error in both (nd > 1)
        perm = tuple(perm)
        return (name, perm), lambda lib, x: x.permute(*perm)
    if name == "expand":
        new = []
        for s in shape:
            if s == 1:
                new.append(p.draw(st.sampled_from([1, 2, 3, -1])))
            else:
                new.append(p.draw(st.sampled_from([-1, s, s, s + 1])))
        if p.draw(st.booleans()):
            new = [p.draw(st.integers(1, 2))] + new
        new = tuple(new)
        return (name, new), lambda lib, x: x.expand(*new)
    if name == "slice":
        d = p.draw(st.integers(0, max(nd - 1, 0)))
        sl = slice(
            p.draw(st.sampled_from([None, 0, 1, -2])),
            p.draw(st.sampled_from([None, 2, -1])),
            p.draw(st.sampled_from([None, 1, 2])),
        )
        key = (slice(None),) * d + (sl,)
        return (name, d, (sl.start, sl.stop, sl.step)), lambda lib, x: x[key]
    if name == "unsqueeze":
        d = p.draw(st.integers(-nd - 2, nd + 1))
        return (name, d), lambda lib, x: x.unsqueeze(d)
    if name == "squeeze":
        d = draw_dim(p, nd)
        return (name, d), lambda lib, x: x.squeeze(d)
    if name == "squeeze_all":
        return (name,), lambda lib, x: x.squeeze()
    if name == "t":
        return (name,), lambda lib, x: x.t()
    if name == "flatten":
        a = draw_dim(p, nd, bad_ok=False)
        return (name, a), lambda lib, x: x.flatten(a)
    d = draw_dim(p, nd)
    start = p.draw(st.integers(-1, 2))
    length = p.draw(st.integers(0, 2))
    return (name, d, start, length), lambda lib, x: x.narrow(d, start, length)


def fam_view(p: Program, x):
    label, f = draw_view(p, x)
    return label, lambda lib, x, ins: f(lib, x)


def fam_view_inplace(p: Program, x):
    """Write in place through a view of x, then carry on with x itself (torch records CopySlices)."""
    vlabel, view = draw_view(p, x)
    op = p.draw(st.sampled_from(["mul_", "add_", "zero_", "clamp_", "fill_"]))
    c = p.draw(st.sampled_from([2.0, -0.5, 1]))

    def f(lib, x, ins):
        v = view(lib, x)
        if op == "zero_":
            v.zero_()
        elif op == "clamp_":
            v.clamp_(-0.5, 0.5)
        else:
            getattr(v, op)(c)
        return x

    return ("through-view", vlabel, op), f


def fam_reduce(p: Program, x):
    nd = x.dim()
    name = p.draw(
        st.sampled_from(
            [
                "sum",
                "mean",
                "amax",
                "max_dim",
                "max_all",
                "var",
                "std",
                "norm",
                "logsumexp",
                "softmax",
                "log_softmax",
                "cumsum",
                "prod",
                "sum_dims",
                "min_dim",
                "amin",
            ]
        )
    )
    keep = p.draw(st.booleans())
    if name in ("sum", "mean", "amax", "amin", "prod") and p.draw(st.integers(0, 3)) == 0:
        return (name, "all"), lambda lib, x, ins: getattr(x, name)()
    if name == "max_all":
        return (name,), lambda lib, x, ins: x.max()
    d = draw_dim(p, nd)
    if name in ("sum", "mean", "amax", "amin", "prod", "logsumexp"):
        return (name, d, keep), lambda lib, x, ins: getattr(x, name)(d, keepdim=keep)
    if name == "sum_dims":
        dims = tuple(sorted(set(p.draw(st.lists(st.integers(-nd, max(nd - 1, 0)), min_size=1, max_size=3)))))
        return (name, dims, keep), lambda lib, x, ins: x.sum(dims, keepdim=keep)
    if name in ("max_dim", "min_dim"):
        which = p.draw(st.sampled_from(["values", "indices"]))
        m = name[:3]
        return (name, d, keep, which), lambda lib, x, ins: getattr(getattr(x, m)(d, keepdim=keep), which)
    if name in ("var", "std"):
        corr = p.draw(st.sampled_from([None, 0, 1]))
        dd = p.draw(st.sampled_from([d, None]))
        kw = {} if corr is None else {"correction": corr}
        return (name, dd, keep, corr), lambda lib, x, ins: getattr(x, name)(dd, keepdim=keep, **kw)
    if name == "norm":
        pp = p.draw(st.sampled_from([2, 1, 3, "fro", math.inf]))
        dd = p.draw(st.sampled_from([d, None]))
        if pp == "fro" and dd is not None:
            dd = (dd,)
        return (name, pp, dd, keep), lambda lib, x, ins: x.norm(pp, dd, keep)
    if name in ("softmax", "log_softmax"):
        return (name, d), lambda lib, x, ins: getattr(lib, name)(x, d)
    return (name, d), lambda lib, x, ins: lib.cumsum(x, d)


def fam_matmul(p: Program, x):
    shape = tuple(x.shape)
    nd = len(shape)
    dtype = str(x.dtype).replace("torch.", "")
    name = p.draw(st.sampled_from(["matmul", "@", "mm", "bmm", "addmm", "mv", "dot"]))
    inner = shape[-1] if nd else 2
    if p.draw(st.integers(0, 9)) == 0:
        inner += 1  # mismatched inner dims: an error in both
    n = p.draw(size_st)
    if name in ("matmul", "@"):
        rank = p.draw(st.integers(1, 4))
        batch = (
            list(draw_bshape(p, shape[:-2], bad_ok=False))
            if nd > 2 and rank > 2
            else [p.draw(size_st) for _ in range(max(rank - 2, 0))]
        )
        oshape = (inner,) if rank == 1 else tuple(batch[: max(rank - 2, 0)]) + (inner, n)
    elif name == "mm":
        oshape = (inner, n)
    elif name == "bmm":
        oshape = (shape[0] if nd else 1, inner, n)
    elif name == "addmm":
        oshape = (inner, n)
    else:  # mv, dot
        oshape = (inner,)
    odtype = p.draw(st.sampled_from([dtype, dtype, dtype, "float32", "float64", "int64"]))
    k = p.add(oshape, odtype)
    if name == "addmm":
        bshape = draw_bshape(p, ((shape[0] if nd else 1), n), bigger_ok=False)
        b = p.add(bshape, odtype)
        return (name, oshape, bshape, odtype), lambda lib, x, ins: lib.addmm(ins[b], x, ins[k])
    if name == "@":
        return (name, oshape, odtype), lambda lib, x, ins: x @ ins[k]
    return (name, oshape, odtype), lambda lib, x, ins: getattr(lib, name)(x, ins[k])


def fam_join(p: Program, x):
    shape = tuple(x.shape)
    nd = len(shape)
    dtype = str(x.dtype).replace("torch.", "")
    name = p.draw(st.sampled_from(["cat", "stack", "split", "chunk", "split_sizes", "unbind"]))
    if name in ("cat", "stack"):
        d = draw_dim(p, nd + (name == "stack"))
        oshape = list(shape)
        if name == "cat" and oshape:
            dd = d % nd if -nd <= d < nd else 0
            oshape[dd] = p.draw(size_st)
        if p.draw(st.integers(0, 9)) == 0 and oshape:
            oshape[0] += 1
        oshape = tuple(oshape)
        k = p.add(oshape, p.draw(st.sampled_from([dtype, dtype, "float32", "float64", "int64"])))
        f = getattr_lib(name)
        return (name, d, oshape), lambda lib, x, ins: f(lib)([x, ins[k]], d)
    d = draw_dim(p, nd)
    if name == "unbind":
        i = p.draw(st.integers(0, 3))
        return (name, d, i), lambda lib, x, ins: _pick(x.unbind(d), i)
    if name == "split":
        size = p.draw(st.integers(1, 3))
        i = p.draw(st.integers(0, 3))
        return (name, size, d, i), lambda lib, x, ins: _pick(x.split(size, d), i)
    if name == "split_sizes":
        sizes = tuple(p.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))
        i = p.draw(st.integers(0, 2))
        return (name, sizes, d, i), lambda lib, x, ins: _pick(lib.split(x, list(sizes), d), i)
    chunks = p.draw(st.integers(1, 4))
    i = p.draw(st.integers(0, 3))
    return (name, chunks, d, i), lambda lib, x, ins: _pick(x.chunk(chunks, d), i)


def fam_conv(p: Program, x):
    """Convolution and pooling with random stride/padding/dilation/groups (sometimes a channel count off)."""
    shape = tuple(x.shape)
    nd = len(shape)
    dtype = str(x.dtype).replace("torch.", "")
    name = p.draw(st.sampled_from(["conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                                   "adaptive_avg_pool2d"]))
    k = tuple(p.draw(st.integers(1, 3)) for _ in range(2))
    stride = p.draw(st.integers(1, 2))
    if name in ("conv2d", "conv1d", "conv_transpose2d"):
        dims = 1 if name == "conv1d" else 2
        chan = shape[-dims - 1] if nd > dims else 1
        groups = p.draw(st.sampled_from([g for g in (1, 2, 3) if chan % g == 0]))
        if p.draw(st.integers(0, 9)) == 0:
            chan += 1  # a channel mismatch: an error in both
        per = p.draw(st.integers(1, 2))
        kernel = k[:dims]
        dil = p.draw(st.integers(1, 2))
        if name == "conv_transpose2d":
            wshape = (chan, per) + kernel
            pad = p.draw(st.integers(0, 1))
            outpad = p.draw(st.integers(0, max(stride, dil) - 1))
            w = p.add(wshape, dtype)
            args = (name, wshape, stride, pad, outpad, groups, dil)
            return args, lambda lib, x, ins: lib.nn.functional.conv_transpose2d(x, ins[w], None, stride, pad, outpad,
                                                                                groups, dil)
        wshape = (groups * per, chan // groups) + kernel
        pad = p.draw(st.sampled_from([0, 1, "same", "valid"]))
        if pad == "same":
            stride = 1
        w = p.add(wshape, dtype)
        b = p.add((groups * per,), dtype) if p.draw(st.booleans()) else None
        f = name

        def conv(lib, x, ins):
            return getattr(lib.nn.functional, f)(x, ins[w], None if b is None else ins[b], stride, pad, dil, groups)
        return (name, wshape, b is not None, stride, pad, dil, groups), conv
    if name == "adaptive_avg_pool2d":
        size = (p.draw(st.integers(1, 4)), p.draw(st.integers(1, 4)))
        return (name, size), lambda lib, x, ins: lib.nn.functional.adaptive_avg_pool2d(x, size)
    pad = p.draw(st.integers(0, 1))
    ceil = p.draw(st.booleans())
    if name == "max_pool2d":
        dil = p.draw(st.integers(1, 2))
        if nd >= 3 and any(_all_padding_window(size, kk, stride, pad, dil, ceil) for size, kk in zip(shape[-2:], k)):
            dil = 1  # a window with no input element: torch's backward writes out of bounds (it crashed a run)
        return (name, k, stride, pad, dil, ceil), lambda lib, x, ins: lib.nn.functional.max_pool2d(
            x, k, stride, pad, dil, ceil)
    incl = p.draw(st.booleans())
    return (name, k, stride, pad, ceil, incl), lambda lib, x, ins: lib.nn.functional.avg_pool2d(
        x, k, stride, pad, ceil, incl)


def _all_padding_window(size: int, k: int, stride: int, pad: int, dil: int, ceil: bool) -> bool:
    """Whether a max-pool window along one axis holds no input element (dilation past a small input): torch
    reports an index outside the input for it and its backward scatters there, undefined behaviour that
    the fuzzer must not run (tests/stress/test_fuzz_regressions.py checks the forward and the index)."""
    from gradlens.engine.ops.pool import _pool_out

    for o in range(max(_pool_out(size, k, pad, stride, dil, ceil), 0)):
        start = o * stride - pad
        if start < 0:
            start += -(start // dil) * dil
        if start >= size:
            return True
    return False


def fam_extra(p: Program, x):
    """tril/triu, topk, xlogy, smooth_l1_loss, interpolate (nearest/linear/bilinear) (issue 13's extra ops)."""
    shape = tuple(x.shape)
    nd = len(shape)
    dtype = str(x.dtype).replace("torch.", "")
    floating = dtype.startswith("float")
    names = ["tril", "triu", "topk"] + (["xlogy", "smooth_l1_loss"] if floating else [])
    if floating and nd in (3, 4):
        names.append("interpolate")
    name = p.draw(st.sampled_from(names))
    if name in ("tril", "triu"):
        diag = p.draw(st.integers(-2, 2))
        return (name, diag), lambda lib, x, ins: getattr(lib, name)(x, diag)
    if name == "topk":
        d = draw_dim(p, nd)
        size = shape[d % nd] if nd and -nd <= d < nd else 1
        k = p.draw(st.integers(0, size + (1 if p.draw(st.integers(0, 9)) == 0 else 0)))
        largest = p.draw(st.booleans())
        return (name, k, d, largest), lambda lib, x, ins: x.topk(k, d, largest).values
    if name == "xlogy":
        k = p.add(draw_bshape(p, shape), dtype, positive=True)
        return (name,), lambda lib, x, ins: lib.xlogy(x, ins[k])
    if name == "smooth_l1_loss":
        k = p.add(shape, dtype)
        beta = p.draw(st.sampled_from([1.0, 0.5, 0.0]))
        red = p.draw(st.sampled_from(["mean", "sum", "none"]))
        return (name, beta, red), lambda lib, x, ins: lib.nn.functional.smooth_l1_loss(x, ins[k], reduction=red,
                                                                                      beta=beta)
    mode = p.draw(st.sampled_from(["nearest", "linear" if nd == 3 else "bilinear"]))
    size = tuple(p.draw(st.integers(1, 5)) for _ in range(nd - 2))
    corners = None if mode == "nearest" else p.draw(st.sampled_from([None, True, False]))
    return (name, mode, size, corners), lambda lib, x, ins: lib.nn.functional.interpolate(
        x, size=size, mode=mode, align_corners=corners)


def getattr_lib(name):
    return lambda lib: getattr(lib, name)


def _pick(parts, i):
    return parts[i % len(parts)] if len(parts) else parts[0]


FAMILIES = {
    "unary": fam_unary,
    "binary": fam_binary,
    "inplace": fam_inplace,
    "view": fam_view,
    "view_inplace": fam_view_inplace,
    "reduce": fam_reduce,
    "index": fam_index,
    "setitem": fam_setitem,
    "matmul": fam_matmul,
    "join": fam_join,
    "conv": fam_conv,
    "extra": fam_extra,
}


# --------------------------------------------------------------------------------------------------------
# running a program on both engines
# --------------------------------------------------------------------------------------------------------
def _full(fn):
    """The program followed by backward from every differentiable output (weights 1)."""

    def full(lib, *ins):
        out = fn(lib, *ins)
        outs = out if isinstance(out, (tuple, list)) else [out]
        loss = None
        for o in outs:
            if getattr(o, "requires_grad", False):
                term = o.sum()
                loss = term if loss is None else loss + term
        if loss is not None:
            loss.backward()
        return out

    return full


def _torch_empty_quirk(fn, arrays) -> bool:
    """torch skips some checks when the result has no elements: an out-of-range index tensor
    (``x[tensor([1]), :-1]`` on shape (1, 1), also inside setitem), matmul operands of different dtypes
    with an empty dim (``bmm`` of (1, 1, 0) float32 and (1, 0, 1) float64 gives zeros), an in-place write
    through an expanded view of an empty tensor. The engine checks anyway; such programs are counted
    (``_combos.QUIRKS``), not failed."""
    import torch

    import gradlens.engine as ge

    try:
        _full(fn)(ge, *[_make(ge, a, True) for a in arrays])
        return False
    except Exception as exc:  # noqa: BLE001
        msg = str(exc)
        # torch bounds-checks index tensors only when the result is non-empty, so an out-of-range index that
        # torch accepted always selected nothing
        bounds = isinstance(exc, IndexError) and "out of bounds" in msg
        quirk = isinstance(exc, RuntimeError) and ("same dtype" in msg or "single memory location" in msg)
        out = fn(torch, *[_make(torch, a, True) for a in arrays])
        outs = out if isinstance(out, (tuple, list)) else [out]
        empty = all(getattr(o, "numel", lambda: 1)() == 0 for o in outs) or any(a.size == 0 for a in arrays)
        if bounds or quirk and empty:
            _combos.QUIRKS[0] += 1
            return True
        raise AssertionError(
            f"torch accepted the program; the engine raised {type(exc).__name__}: {exc}"
        ) from exc


def compare(fn, arrays, dtype_hint="float64"):
    """Error parity if torch rejects the program (forward or backward), else value/grad/graph parity."""
    import torch

    import gradlens.engine as ge

    _combos.PROGRAMS[0] += 1
    try:
        t_out = _full(fn)(torch, *[_make(torch, a, True) for a in arrays])
    except Exception as t_exc:
        try:
            _full(fn)(ge, *[_make(ge, a, True) for a in arrays])
        except IndexError as g_exc:
            if "out of bounds" in str(g_exc) and not isinstance(t_exc, IndexError):
                _combos.QUIRKS[0] += 1  # torch selected nothing with the bad index and failed later
                return "quirk"
        except Exception:  # noqa: BLE001 - compared below
            pass
        check_error(_full(fn), *arrays)
        return "error"
    if _torch_empty_quirk(fn, arrays):
        return "quirk"
    # int/bool inputs (or int results inside the program, as max().indices) promote to float32
    outs = t_out if isinstance(t_out, (tuple, list)) else [t_out]
    f32 = any(a.dtype != np.float64 for a in arrays) or any(
        str(getattr(o, "dtype", "torch.float64")) != "torch.float64" for o in outs
    )
    tol = dict(rtol=2e-4, atol=2e-5) if f32 else dict(rtol=1e-8, atol=1e-10)
    check_parity(fn, *arrays, **tol)
    return "ok"


def build_and_run(data, families, max_steps, first_dtypes=DTYPES, min_dims=0, max_dims=4, nonleaf_first=True):
    """Draw a program over ``families`` step by step (tracking the torch value), then compare it."""
    import torch

    seed = data.draw(st.integers(0, 2**31 - 1))
    p = Program(data, seed)
    shape = data.draw(shape_st(min_dims, max_dims))
    dtype = data.draw(st.sampled_from(first_dtypes))
    p.add(shape, dtype)
    x = p.torch_inputs[0]
    if nonleaf_first and dtype.startswith("float") and data.draw(st.integers(0, 7)) != 0:
        # start from a non-leaf so that in-place ops are legal (sometimes not: the leaf error is checked)
        p.steps.append((("mul1",), lambda lib, x, ins: x * 1))
        x = x * 1
    n = data.draw(st.integers(1, max_steps))
    outcome = "ok"
    for _ in range(n):
        fam = data.draw(st.sampled_from(families))
        before = _desc(x)
        inputs_before = len(p.arrays)
        label, f = FAMILIES[fam](p, x)
        p.steps.append((label, f))
        extra = [(a.shape, str(a.dtype)) for a in p.arrays[inputs_before:]]
        try:
            x = f(torch, x, p.torch_inputs)
        except Exception:
            outcome = "error"
        _combos.record(
            str(label[0]),
            repr(label),
            [before[0]] + [e[0] for e in extra],
            [before[1]] + [e[1] for e in extra],
            outcome,
        )
        if outcome == "error" or not hasattr(x, "shape"):
            break
    note(f"program: inputs {[(a.shape, str(a.dtype)) for a in p.arrays]}; steps {[s[0] for s in p.steps]}")
    compare(p.fn, p.arrays)


# --------------------------------------------------------------------------------------------------------
# the tests: one per family (so each family gets its share of examples), then mixed chains
# --------------------------------------------------------------------------------------------------------
@fuzz_settings(600)
@given(st.data())
def test_fuzz_pointwise_and_broadcasting(data):
    build_and_run(data, ["unary", "binary"], 4)


@fuzz_settings(800)
@given(st.data())
def test_fuzz_inplace_on_nonleaf(data):
    build_and_run(data, ["inplace", "unary", "binary"], 4)


@fuzz_settings(800)
@given(st.data())
def test_fuzz_views(data):
    build_and_run(data, ["view", "unary"], 4)


@fuzz_settings(800)
@given(st.data())
def test_fuzz_inplace_through_views(data):
    build_and_run(data, ["view_inplace", "view", "inplace"], 3, first_dtypes=("float32", "float64"))


@fuzz_settings(1000)
@given(st.data())
def test_fuzz_reductions(data):
    build_and_run(data, ["reduce", "unary"], 3)


@fuzz_settings(800)
@given(st.data())
def test_fuzz_indexing(data):
    build_and_run(data, ["index", "setitem", "unary"], 3)


@fuzz_settings(800)
@given(st.data())
def test_fuzz_matmul_family(data):
    build_and_run(
        data,
        ["matmul", "unary"],
        2,
        first_dtypes=("float32", "float64", "float64", "int64"),
        min_dims=1,
        max_dims=4,
    )


@fuzz_settings(600)
@given(st.data())
def test_fuzz_cat_stack_split_chunk(data):
    build_and_run(data, ["join", "unary"], 3)


@fuzz_settings(1000)
@given(st.data())
def test_fuzz_mixed_programs(data):
    build_and_run(data, sorted(FAMILIES), 6)


@fuzz_settings(300)
@given(st.data())
def test_fuzz_convolution_and_pooling(data):
    build_and_run(data, ["conv", "unary"], 2, first_dtypes=("float32", "float64"), min_dims=3, max_dims=4)


@fuzz_settings(300)
@given(st.data())
def test_fuzz_extra_ops(data):
    build_and_run(data, ["extra", "unary", "view"], 3)


def test_fuzz_combination_count():
    """Report the number of distinct op/argument/shape/dtype combinations the fuzzers ran (see the session
    summary); runs last in this file, so it sees the count of every fuzz test above."""
    if _combos.PROGRAMS[0] == 0:
        pytest.skip("no fuzz test ran in this session")
    ops = {c[0] for c in _combos.COMBOS}
    print(
        f"\n{len(_combos.COMBOS)} distinct op/argument/shape/dtype combinations over {len(ops)} ops, "
        f"{_combos.PROGRAMS[0]} programs"
    )
    assert len(_combos.COMBOS) > 0
