"""The remaining ops the well-known PyTorch example scripts use: ``tril``/``triu``, ``topk``, ``baddbmm``,
``multinomial``, ``xlogy``, ``smooth_l1_loss`` and ``interpolate`` (nearest, linear, bilinear).

Each differentiable op has one node named as torch names it (``TrilBackward0``, ``TopkBackward0``,
``BaddbmmBackward0``, ``SmoothL1LossBackward0``, ``UpsampleBilinear2DBackward0``, ...). Interpolation is a
separable linear map, so it is computed as a product with one small interpolation matrix per spatial dim:
vectorized, and its backward (the transposed matrices) works unchanged on Tensors for ``create_graph``.
"""

from __future__ import annotations

import math

from ._core import OPS, Node, Tensor, broadcast_error, np, op, record, sum_to, wrap_dim


def _a(v):
    return v._data if isinstance(v, Tensor) else v


def _const(arr: np.ndarray, like):
    return Tensor._make(arr) if isinstance(like, Tensor) else arr


def _mT(v):  # noqa: N802 - torch's name for the matrix transpose
    return v.transpose(-1, -2) if isinstance(v, Tensor) else np.swapaxes(v, -1, -2)


def _check_tensor(value, name: str, arg: str = "input") -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}(): argument '{arg}' (position 1) must be Tensor, not {type(value).__name__}")


# --- tril / triu ---------------------------------------------------------------------------------------------
class TrilBackward0(Node):
    __slots__ = ("diagonal",)
    _saves = False

    def backward(self, g):
        return (OPS["tril"][0](g, self.diagonal) if isinstance(g, Tensor) else np.tril(g, self.diagonal),)


class TriuBackward0(Node):
    __slots__ = ("diagonal",)
    _saves = False

    def backward(self, g):
        return (OPS["triu"][0](g, self.diagonal) if isinstance(g, Tensor) else np.triu(g, self.diagonal),)


def _tri(input, diagonal, name: str, npfn, node_cls) -> Tensor:
    _check_tensor(input, name)
    if input._data.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    res, node = record(npfn(input._data, int(diagonal)), node_cls, input)
    if node is not None:
        node.diagonal = int(diagonal)
    return res


@op()
def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (elements above ``diagonal`` set to 0); ``TrilBackward0``."""
    return _tri(input, diagonal, "tril", np.tril, TrilBackward0)


@op()
def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (elements below ``diagonal`` set to 0); ``TriuBackward0``."""
    return _tri(input, diagonal, "triu", np.triu, TriuBackward0)


# --- topk --------------------------------------------------------------------------------------------------
def _topk_rt():
    from .reduce import _return_type

    return _return_type("topk")


_TOPK_RT = _topk_rt()


class TopkBackward0(Node):
    """The gradient of each kept value goes back to its index; the rest get 0."""

    __slots__ = ("shape", "dim")

    def backward(self, g):
        (idx,) = self.saved()
        idx = _a(idx)
        d, shape = self.dim, self.shape
        if len(shape) == 0:
            return (g,)
        if isinstance(g, Tensor):  # one-hot (.., n, k, ..) constant times g, summed over k: differentiable
            n = shape[d]
            pos = np.arange(n).reshape([-1 if i == d else 1 for i in range(idx.ndim + 1)])
            onehot = (np.expand_dims(idx, d) == pos).astype(g._data.dtype)
            return ((g.unsqueeze(d) * Tensor._make(onehot)).sum(d + 1),)
        out = np.zeros(shape, dtype=g.dtype)
        np.put_along_axis(out, idx, g, axis=d)
        return (out,)


@op()
def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices, as torch's ``topk``.

    Returns:
        A ``torch.return_types.topk`` tuple ``(values, indices)``; values carry ``TopkBackward0``.

    Raises:
        RuntimeError: ``k`` out of range for the dim's size.
    """
    _check_tensor(input, "topk")
    arr = input._data
    d = wrap_dim(int(dim), max(arr.ndim, 1))
    if arr.dtype == np.bool_:
        raise RuntimeError("topk does not support bool dtypes on CPU")
    size = arr.shape[d] if arr.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError("selected index k out of range")
    if arr.ndim == 0:
        idx = np.zeros((), dtype=np.int64)
        vals = arr.copy()
    else:
        key = -arr if largest else arr
        if arr.dtype.kind == "f":  # torch: nan counts as the largest value
            key = np.where(np.isnan(arr), -np.inf if largest else np.inf, key)
        idx = np.argsort(key, axis=d, kind="stable").take(np.arange(k), axis=d).astype(np.int64)
        vals = np.take_along_axis(arr, idx, axis=d)
    indices = Tensor._make(idx)
    res, node = record(vals, TopkBackward0, input)
    if node is not None:
        node.shape, node.dim = arr.shape, d
        node.save(indices)
    return _TOPK_RT(res, indices)


# --- baddbmm -----------------------------------------------------------------------------------------------
class BaddbmmBackward0(Node):
    __slots__ = ("beta", "alpha", "in_shape")

    def backward(self, g):
        b1, b2 = self.saved()
        need = [e[0] is not None for e in self._next]
        gi = sum_to(g * self.beta if self.beta != 1 else g, self.in_shape) if need[0] else None
        gg = g * self.alpha if self.alpha != 1 else g
        g1 = gg @ _mT(b2) if need[1] else None
        g2 = _mT(b1) @ gg if need[2] else None
        return (gi, g1, g2)


@op()
def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (batch1 @ batch2)`` for 3-D batches; ``BaddbmmBackward0``."""
    for t, arg in ((input, "input"), (batch1, "batch1"), (batch2, "batch2")):
        _check_tensor(t, "baddbmm", arg)
    b1, b2 = batch1._data, batch2._data
    if b1.ndim != 3 or b2.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor" if b1.ndim != 3 else "batch2 must be a 3D tensor")
    if b1.shape[0] != b2.shape[0] or b1.shape[2] != b2.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{b1.shape[0]}, {b1.shape[2]}] but got: [{b2.shape[0]}, {b2.shape[1]}].")
    prod = b1 @ b2
    if alpha != 1:
        prod = prod * alpha
    base = input._data if beta == 1 else (input._data * beta if beta != 0 else np.zeros_like(input._data))
    out = np.broadcast_to(base, prod.shape) + prod if base.shape != prod.shape else base + prod
    res, node = record(out.astype(prod.dtype, copy=False), BaddbmmBackward0, input, batch1, batch2)
    if node is not None:
        node.beta, node.alpha, node.in_shape = beta, alpha, input._data.shape
        node.save(batch1, batch2)
    return res


# --- xlogy -------------------------------------------------------------------------------------------------
class XlogyBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        x, y = self.saved()
        need = [e[0] is not None for e in self._next]
        xa, ya = _a(x), _a(y)
        gx = gy = None
        if need[0]:  # torch: xlogy(grad, other), 0 where input == 0 and other <= 0
            dead = (xa == 0) & (ya <= 0)
            if isinstance(y, Tensor) and isinstance(g, Tensor):
                gx = sum_to((g * y.log()).masked_fill(Tensor._make(dead), 0.0), xa.shape)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    logy = np.where(dead, 0.0, np.log(ya)).astype(xa.dtype)
                gx = sum_to(g * _const(logy, g), xa.shape)
        if need[1]:
            gy = sum_to(g * x / y, ya.shape)
        return (gx, gy)


@op()
def xlogy(input: Tensor, other) -> Tensor:
    """``input * log(other)``, 0 where ``input`` is 0 (unless ``other`` is nan); ``XlogyBackward0``."""
    _check_tensor(input, "xlogy")
    from .. import _dtype

    x = input._data
    if isinstance(other, Tensor):
        dt = _dtype.promote_types(_dtype.from_numpy_dtype(x.dtype), _dtype.from_numpy_dtype(other._data.dtype)).np
    else:  # a Python number is a "wrapped number": it keeps the tensor's dtype unless it is float on an int
        dt = x.dtype if x.dtype.kind == "f" or not isinstance(other, float) else _dtype.get_default_dtype().np
        other = Tensor._make(np.asarray(other, dtype=dt if dt.kind == "f" else np.float64))
    if dt.kind != "f":  # like torch, integer and bool inputs give the default float dtype
        dt = _dtype.get_default_dtype().np
    y = other._data
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise broadcast_error(x.shape, y.shape) from None
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((x == 0) & ~np.isnan(y), 0.0, x * np.log(y)).astype(dt)
    res, node = record(out, XlogyBackward0, input, other)
    if node is not None:
        node.save(input, other)
    return res


# --- multinomial -------------------------------------------------------------------------------------------
@op()
def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """Draw ``num_samples`` category indices per row with probabilities proportional to ``input`` (int64)."""
    from ..creation import _rng

    _check_tensor(input, "multinomial")
    arr = input._data
    if arr.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    rows = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
    n = rows.shape[1]
    if np.any(rows < 0) or not np.all(np.isfinite(rows)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if np.any(rows.sum(1) <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > n:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    rng = _rng(generator)
    out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
    for i, p in enumerate(rows):
        p = p / p.sum()
        if replacement:
            out[i] = rng.choice(n, size=num_samples, replace=True, p=p)
        else:  # Gumbel top-k: sampling without replacement by weight, like torch's algorithm
            with np.errstate(divide="ignore"):
                keys = np.log(p) - np.log(-np.log(rng.random(n)))
            out[i] = np.argsort(-keys, kind="stable")[:num_samples]
    return Tensor._make(out.reshape(arr.shape[:-1] + (num_samples,)))


# --- smooth_l1_loss ----------------------------------------------------------------------------------------
class SmoothL1LossBackward0(Node):
    __slots__ = ("reduction", "beta")

    def backward(self, g):
        x, y = self.saved()
        need = [e[0] is not None for e in self._next]
        d = x - y
        da = _a(d)
        small = np.abs(da) < self.beta
        if isinstance(d, Tensor):
            inner = d * Tensor._make(small.astype(da.dtype) / self.beta) + Tensor._make(
                np.where(small, 0, np.sign(da)).astype(da.dtype))
        else:
            inner = np.where(small, da / self.beta, np.sign(da)).astype(da.dtype)
        if self.reduction == "mean":
            g = g / max(da.size, 1) if da.size else g * float("nan")
        gx = g * inner
        return (gx if need[0] else None, -gx if need[1] else None)


_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """Huber-like loss: ``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``;
    ``SmoothL1LossBackward0`` (``beta == 0`` is the L1 loss, as torch)."""
    from . import nnops

    reduction = nnops._legacy_reduction(size_average, reduce, reduction)
    nnops.reduction_enum(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if input._data.shape != target._data.shape:
        import warnings

        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=2)
        shape = np.broadcast_shapes(input._data.shape, target._data.shape)
        input, target = input.expand(*shape), target.expand(*shape)
    if beta == 0:
        return nnops.l1_loss(input, target, reduction=reduction)
    d = input._data - target._data
    ad = np.abs(d)
    loss = np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta).astype(d.dtype)
    if reduction == "mean":
        loss = np.asarray(loss.mean(), dtype=d.dtype)
    elif reduction == "sum":
        loss = np.asarray(loss.sum(), dtype=d.dtype)
    res, node = record(loss, SmoothL1LossBackward0, input, target)
    if node is not None:
        node.reduction, node.beta = reduction, float(beta)
        node.save(input, target)
    return res


# --- interpolate -------------------------------------------------------------------------------------------
def _nearest_matrix(n_in: int, n_out: int, scale: float | None, dtype) -> np.ndarray:
    s = n_in / n_out if scale is None else 1.0 / scale
    src = np.minimum(np.floor(np.arange(n_out) * s).astype(np.int64), n_in - 1)
    m = np.zeros((n_out, n_in), dtype=dtype)
    m[np.arange(n_out), src] = 1
    return m


def _linear_matrix(n_in: int, n_out: int, scale: float | None, align_corners: bool, dtype) -> np.ndarray:
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        s = n_in / n_out if scale is None else 1.0 / scale
        src = np.maximum((dst + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(m, (np.arange(n_out), i0), 1 - lam)
    np.add.at(m, (np.arange(n_out), i1), lam)
    return m.astype(dtype)


def _apply_matrices(x, mats):
    """``x`` (N, C, *spatial) times one matrix per spatial dim (ndarray or Tensor)."""
    if len(mats) == 1:
        return x @ _mT(mats[0])
    return mats[0] @ x @ _mT(mats[1])


class _UpsampleBackward(Node):
    __slots__ = ("mats",)
    _saves = False

    def backward(self, g):
        mats = [Tensor._make(m) for m in self.mats] if isinstance(g, Tensor) else self.mats
        if len(mats) == 1:
            return (g @ mats[0],)
        return (_mT(mats[0]) @ g @ mats[1],)


class UpsampleNearest1DBackward0(_UpsampleBackward):
    __slots__ = ()


class UpsampleNearest2DBackward0(_UpsampleBackward):
    __slots__ = ()


class UpsampleLinear1DBackward0(_UpsampleBackward):
    __slots__ = ()


class UpsampleBilinear2DBackward0(_UpsampleBackward):
    __slots__ = ()


_NODES = {("nearest", 1): UpsampleNearest1DBackward0, ("nearest", 2): UpsampleNearest2DBackward0,
          ("linear", 1): UpsampleLinear1DBackward0, ("bilinear", 2): UpsampleBilinear2DBackward0}


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize the spatial dims of ``input`` (N, C, W) or (N, C, H, W): modes ``nearest``, ``linear`` (3-D),
    ``bilinear`` (4-D), with torch's source-index rules (``align_corners``, ``scale_factor``)."""
    _check_tensor(input, "interpolate")
    arr = input._data
    spatial = arr.ndim - 2
    if (mode, spatial) not in _NODES:
        if mode in ("nearest", "linear", "bilinear"):
            want = {"linear": "3D", "bilinear": "4D"}.get(mode, "3D or 4D")
            raise NotImplementedError(f"Got {arr.ndim}D input, but {mode} mode needs {want} input")
        raise NotImplementedError(f"gradlens.engine interpolate supports modes nearest, linear and bilinear; "
                                  f"got mode={mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | "
                         "bilinear | bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("either size or scale_factor should be defined" if size is None
                         else "only one of size or scale_factor should be defined")
    if size is not None:
        sizes = [int(size)] * spatial if isinstance(size, (int, np.integer)) else [int(s) for s in size]
        scales = [None] * spatial
    else:
        factors = [float(scale_factor)] * spatial if isinstance(scale_factor, (int, float)) \
            else [float(s) for s in scale_factor]
        sizes = [int(math.floor(n * f)) for n, f in zip(arr.shape[2:], factors)]
        scales = [None] * spatial if recompute_scale_factor else factors
    if len(sizes) != spatial:
        raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                         f"with spatial dimensions of {list(arr.shape[2:])} and output size of {sizes}. Please "
                         f"provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                         f"(o1, o2, ...,oK) format.")
    if arr.shape[1] == 0:
        raise RuntimeError(f"Non-empty {arr.ndim}D data tensor expected but got a tensor with sizes "
                           f"[{', '.join(map(str, arr.shape))}]")  # an empty batch alone is allowed
    if min(arr.shape[2:]) <= 0 or min(sizes) <= 0:
        names = "HW"[-spatial:] if spatial <= 2 else "DHW"
        shown_in = ", ".join(f"{k}: {v}" for k, v in zip(names, arr.shape[2:]))
        shown_out = ", ".join(f"{k}: {v}" for k, v in zip(names, sizes))
        joiner = " and output" if spatial == 1 else " output"
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input ({shown_in})"
                           f"{joiner} ({shown_out})")
    dtype = arr.dtype
    if mode == "nearest":
        mats = [_nearest_matrix(n, o, s, dtype) for n, o, s in zip(arr.shape[2:], sizes, scales)]
    else:
        mats = [_linear_matrix(n, o, s, bool(align_corners), dtype) for n, o, s in zip(arr.shape[2:], sizes, scales)]
    out = np.ascontiguousarray(_apply_matrices(arr, mats))
    res, node = record(out, _NODES[(mode, spatial)], input)
    if node is not None:
        node.mats = mats
    return res


__all__ = ["tril", "triu", "topk", "baddbmm", "xlogy", "multinomial", "smooth_l1_loss", "interpolate", "kl_div"]


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL divergence with ``input`` as log-probabilities, composed as torch composes it (``xlogy(t, t) - t *
    input``, or ``exp(t) * (t - input)`` with ``log_target``); ``batchmean`` divides the sum by the batch."""
    from . import nnops

    reduction = nnops._legacy_reduction(size_average, reduce, reduction)
    if reduction == "mean":
        import warnings

        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    loss = target.exp() * (target - input) if log_target else xlogy(target, target) - target * input
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    total = loss.sum()
    if reduction == "batchmean" and input.dim() != 0:
        return total / Tensor._make(np.asarray(input.shape[0], dtype=total._data.dtype))
    return total
