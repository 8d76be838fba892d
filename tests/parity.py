"""The one parity helper: run the same lambda on torch and on gradlens.engine and compare values,
gradients, graph node names and error types.

Usage::

    check_parity(lambda lib, x, y: lib.add(x, y), rand(3, 4), rand(4))
    check_error(lambda lib, x: x.view(7), rand(3, 4), match="shape")

``lib`` is the torch module or ``gradlens.engine``; inputs are numpy arrays turned into tensors of each
engine (float arrays require grad unless ``grad=False``). The output's gradient is seeded with the same
fixed random weights on both sides, so every element of every input gradient is checked.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradlens.engine as ge

from .conftest import HAS_TORCH

TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12), np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6)}

_rng = np.random.default_rng(1234)


def rand(*shape, dtype=np.float64, low=-2.0, high=2.0, positive=False):
    """Random test input (positive values when the op needs them)."""
    if positive:
        low, high = 0.5, 2.0
    return _rng.uniform(low, high, size=shape).astype(dtype)


def _make(lib, arr, requires_grad):
    if lib is ge:
        t = ge.tensor(arr.copy())
    else:
        import torch

        t = torch.tensor(arr.copy())
    if requires_grad and arr.dtype.kind == "f":
        t.requires_grad_(True)
    return t


def _flatten(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flatten(o))
        return res
    if hasattr(out, "values") and hasattr(out, "indices") and not hasattr(out, "shape"):
        return [out.values, out.indices]
    return [out]


def _to_np(t):
    if t is None:
        return None
    if hasattr(t, "detach"):
        return t.detach().numpy() if not hasattr(t, "_data") else np.asarray(t._data)
    return np.asarray(t)


def graph_signature(t, limit=200):
    """A normalised list of ``(name, [(child name | None, input_nr), ...])`` in walk order."""
    fn = getattr(t, "grad_fn", None)
    sig, seen, stack = [], set(), [fn] if fn is not None else []
    while stack and len(sig) < limit:
        node = stack.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        edges = []
        for child, nr in node.next_functions:
            edges.append((None if child is None else child.name(), nr))
            if child is not None:
                stack.append(child)
        sig.append((node.name(), edges))
    return sig


def run_both(fn, *arrays, grad=True):
    """Run ``fn`` on both engines; return ``(torch_result, native_result)`` of (outputs, inputs)."""
    import torch

    results = []
    for lib in (torch, ge):
        inputs = [_make(lib, a, grad) if isinstance(a, np.ndarray) else a for a in arrays]
        out = fn(lib, *inputs)
        results.append((out, inputs))
    return results


def check_parity(fn, *arrays, grad=True, graph=True, rtol=None, atol=None, seed_scale=1.0):
    """Assert forward values, input gradients and graph node names agree between torch and the engine."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    (t_out, t_in), (g_out, g_in) = run_both(fn, *arrays, grad=grad)
    t_flat, g_flat = _flatten(t_out), _flatten(g_out)
    assert len(t_flat) == len(g_flat), f"output count differs: torch {len(t_flat)}, native {len(g_flat)}"
    for a, b in zip(t_flat, g_flat):
        if not hasattr(a, "shape"):
            assert a == b
            continue
        an, bn = _to_np(a), _to_np(b)
        assert tuple(a.shape) == tuple(b.shape), f"shape: torch {tuple(a.shape)}, native {tuple(b.shape)}"
        assert str(a.dtype) == repr(b.dtype), f"dtype: torch {a.dtype}, native {b.dtype!r}"
        tol = TOL.get(an.dtype, dict(rtol=0, atol=0))
        np.testing.assert_allclose(bn, an, rtol=rtol or tol["rtol"], atol=atol or tol["atol"], equal_nan=True)
        assert a.requires_grad == b.requires_grad, "requires_grad differs"
        assert (a.grad_fn is None) == (b.grad_fn is None), "grad_fn presence differs"
    if graph:
        for a, b in zip(t_flat, g_flat):
            if hasattr(a, "grad_fn"):
                assert graph_signature(b) == graph_signature(a)
    if not grad:
        return
    diff = [(a, b) for a, b in zip(t_flat, g_flat) if getattr(a, "requires_grad", False)]
    if not diff:
        return
    t_loss = g_loss = 0
    for a, b in diff:
        w = _rng.uniform(0.5, 1.5, size=tuple(a.shape)) * seed_scale
        t_loss = t_loss + (a * torch.tensor(w.astype(_to_np(a).dtype))).sum()
        g_loss = g_loss + (b * ge.tensor(w.astype(_to_np(b).dtype))).sum()
    t_loss.backward()
    g_loss.backward()
    for i, (ti, gi) in enumerate(zip(t_in, g_in)):
        if not hasattr(ti, "grad") or not ti.requires_grad:
            continue
        tg, gg = ti.grad, gi.grad
        assert (tg is None) == (gg is None), f"input {i}: grad presence differs (torch {tg is not None})"
        if tg is None:
            continue
        tol = TOL.get(tg.numpy().dtype, dict(rtol=0, atol=0))
        np.testing.assert_allclose(_to_np(gg), tg.numpy(), rtol=rtol or tol["rtol"], atol=atol or tol["atol"],
                                   equal_nan=True, err_msg=f"gradient of input {i}")


def check_error(fn, *arrays, match=None, grad=True):
    """Assert both engines raise the same exception type (and ``match`` in both messages, if given)."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    import torch

    errors = []
    for lib in (torch, ge):
        inputs = [_make(lib, a, grad) if isinstance(a, np.ndarray) else a for a in arrays]
        with pytest.raises(Exception) as info:
            fn(lib, *inputs)
        errors.append(info.value)
    t_err, g_err = errors
    assert type(g_err) is type(t_err) or isinstance(g_err, type(t_err)), \
        f"torch raised {type(t_err).__name__}, native raised {type(g_err).__name__}: {g_err}"
    if match is not None:
        import re

        assert re.search(match, str(t_err)), f"torch's message lacks {match!r}: {t_err}"
        assert re.search(match, str(g_err)), f"native message lacks {match!r}: {g_err}"
    return t_err, g_err
