"""Neural-network ops with their own backward nodes: activations (gelu, leaky_relu, elu, softplus), dropout,
embedding, layer_norm, constant padding, and the losses (mse, l1, nll, cross-entropy, binary cross-entropy
with and without logits).

Signatures follow ``torch.nn.functional`` where torch offers the op only there (``function=False``), and the
top-level ``torch.X`` signature where it exists (``torch.dropout(input, p, train)``,
``torch.embedding(weight, indices, ...)``, ``torch.layer_norm``, ``torch.binary_cross_entropy_with_logits``,
``torch.constant_pad_nd``); ``nn.functional`` adapts. Node names are torch's (``GeluBackward0``,
``NllLossBackward0``, ``NativeLayerNormBackward0``, ...). Backward formulas dispatch on ndarray vs Tensor so
that ``create_graph=True`` records them. ``inplace=True`` activations write into their input by the in-place
protocol of ``inplace.py`` and save what torch saves: the result (``LeakyReluBackward1``, ``EluBackward1``) or
a clone of the input (``hardtanh_``, ``silu_``).
"""

from __future__ import annotations

import math

from ._core import GRAD_MODE, NONE, AddBackward1, DivBackward1, MulBackward1, Node, Tensor, np, op, record
from ._core import scalar_op as _scalar_op

_add_reduce = np.add.reduce
_intp = np.intp
try:  # numpy >= 2: np.errstate's context variable, as the backward engine sets it
    from numpy._core.umath import _extobj_contextvar as _EXTOBJ
    from numpy._core.umath import _make_extobj
except ImportError:  # pragma: no cover - other numpy layouts take np.errstate
    _EXTOBJ = _make_extobj = None

__all__ = [
    "silu",
    "hardtanh",
    "logsigmoid",
    "gelu",
    "leaky_relu",
    "elu",
    "softplus",
    "dropout",
    "dropout_",
    "embedding",
    "layer_norm",
    "batch_norm",
    "constant_pad_nd",
    "mse_loss",
    "l1_loss",
    "nll_loss",
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "unsafe_chunk_",
    "reduction_enum",
]


# --- helpers ----------------------------------------------------------------------------------------------
def _rec(out: np.ndarray, node_cls, *inputs):
    """``record`` that accepts None inputs (shown as ``(None, 0)`` edges, as torch does for absent
    optional tensors)."""
    present = [t for t in inputs if t is not None]
    res, node = record(out, node_cls, *present)
    if node is not None and len(present) != len(inputs):
        it = iter(node._next)
        node._next = tuple(NONE if t is None else next(it) for t in inputs)
    return res, node


def _is_arr(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic))


def _data(x):
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x) if isinstance(x, np.generic) else x._data


def _exp(x):
    return np.exp(x) if _is_arr(x) else x.exp()


def _log(x):
    return np.log(x) if _is_arr(x) else x.log()


def _tanh(x):
    return np.tanh(x) if _is_arr(x) else x.tanh()


def _sigmoid(x):
    if _is_arr(x):
        return _np_sigmoid(x)
    return x.sigmoid()


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _np_log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) as torch computes it: min(x, 0) - log1p(exp(-|x|))."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _log_sigmoid(x):
    if _is_arr(x):
        return _np_log_sigmoid(x)
    return -((-x).relu() + ((-(x.abs())).exp()).log1p()) if hasattr(x, "log1p") else (x.sigmoid()).log()


def _clamp_min(x, lo: float):
    return np.maximum(x, lo) if _is_arr(x) else x.clamp(min=lo)


def _mean(x, axes, keepdims=True):
    if _is_arr(x):
        return x.mean(axis=axes, keepdims=keepdims)
    return x.mean(dim=axes, keepdim=keepdims)


def _sum(x, axes, keepdims=False):
    if _is_arr(x):
        return x.sum(axis=axes, keepdims=keepdims)
    return x.sum(dim=axes, keepdim=keepdims)


def _unsqueeze(x, dim: int):
    return np.expand_dims(x, dim) if _is_arr(x) else x.unsqueeze(dim)


def _const(arr: np.ndarray, like):
    """``arr`` in the form of ``like``: an ndarray, or a constant Tensor during create_graph."""
    return arr if _is_arr(like) else Tensor._make(arr)


_erf_impl = None


def _erf(x: np.ndarray) -> np.ndarray:
    global _erf_impl
    if _erf_impl is None:
        try:
            from scipy.special import erf as _erf_impl  # noqa: PLW0603 - lazy optional import
        except ImportError:  # pragma: no cover - scipy is optional
            _erf_impl = np.vectorize(math.erf, otypes=[np.float64])
    out = _erf_impl(x)
    return out.astype(x.dtype, copy=False) if out.dtype != x.dtype else out


def _erf_any(x):
    return _erf(x) if _is_arr(x) else x.erf()


_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def reduction_enum(reduction) -> int:
    """torch's ``_Reduction.get_enum``: 'none' -> 0, 'mean' -> 1, 'sum' -> 2 (ints pass through)."""
    if isinstance(reduction, int) and not isinstance(reduction, bool):
        return reduction
    r = _REDUCTIONS.get(reduction)
    if r is None:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return r


def _reduce(loss: np.ndarray, red: int) -> np.ndarray:
    if red == 1:
        n = loss.size
        if n and loss.dtype.char in "fd" and _EXTOBJ is not None:
            # what ndarray.mean computes for float32/float64, bit for bit (add.reduce, then a division by the
            # count as np.intp: float64 for a float32 sum, rounded back), under np.errstate(invalid, divide
            # "ignore") set through its context variable: without mean's Python wrapper and errstate's
            # object (~4 us of a loss)
            token = _EXTOBJ.set(_make_extobj(invalid="ignore", divide="ignore"))
            try:
                return np.asarray(_add_reduce(loss, axis=None) / _intp(n), dtype=loss.dtype)
            finally:
                _EXTOBJ.reset(token)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(loss.mean(), dtype=loss.dtype)
    if red == 2:
        return np.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def _type_word(dt) -> str:
    """torch's scalar type word: Float, Double, Long, Int, Bool, ..."""
    return {
        "float32": "Float",
        "float64": "Double",
        "int64": "Long",
        "int32": "Int",
        "int16": "Short",
        "int8": "Char",
        "uint8": "Byte",
        "bool": "Bool",
        "float16": "Half",
    }.get(str(dt), str(dt))


# --- activations ------------------------------------------------------------------------------------------
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_K_BETA = math.sqrt(2.0) * (2.0 / math.sqrt(math.pi)) * 0.5
_K_KAPPA = 0.044715


class GeluBackward0(Node):
    __slots__ = ("approximate",)

    def backward(self, g):
        (x,) = self.saved()
        if self.approximate == "tanh":
            x_sq = x * x
            inner = (x + x_sq * x * _K_KAPPA) * _K_BETA
            t = _tanh(inner)
            left_d = (t + 1.0) * 0.5
            right_d = x * 0.5 * (1.0 - t * t) * _K_BETA * (x_sq * (3.0 * _K_KAPPA) + 1.0)
            return (g * (left_d + right_d),)
        cdf = (_erf_any(x * _SQRT1_2) + 1.0) * 0.5
        pdf = _exp(x * x * -0.5) * _INV_SQRT_2PI
        return (g * (cdf + x * pdf),)


@op(method=False, function=False)
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, exact (``'none'``) or with the tanh approximation."""
    if approximate in ("tanh", "none"):
        _float_kernel(input, "GeluKernelImpl")
    x = input._data
    if approximate == "tanh":
        inner = (x + x * x * x * _K_KAPPA) * _K_BETA
        out = x * 0.5 * (np.tanh(inner) + 1.0)
    elif approximate == "none":
        out = x * 0.5 * (_erf(x * _SQRT1_2) + 1.0)
    else:
        raise RuntimeError("approximate argument must be either none or tanh.")
    out = np.asarray(out)
    res, node = record(out, GeluBackward0, input)
    if node is not None:
        node.approximate = approximate
        node.save(input)
    return res


class LeakyReluBackward0(Node):
    __slots__ = ("slope",)

    def backward(self, g):
        (x,) = self.saved()
        pos = _data(x) > 0
        return (g * np.where(pos, 1.0, self.slope).astype(_data(x).dtype),)


class LeakyReluBackward1(LeakyReluBackward0):
    """``leaky_relu_`` saves its result (the input is overwritten); it has the input's sign unless the slope
    is negative, which torch refuses when backward runs."""

    __slots__ = ()

    def backward(self, g):
        if self.slope < 0:
            raise RuntimeError(_NEGATIVE_SLOPE.format(op="leakyReLu"))
        return LeakyReluBackward0.backward(self, g)


_NEGATIVE_SLOPE = (
    "In-place {op} backward calculation is triggered with a negative slope which is not supported. This is "
    "caused by calling in-place forward function with a negative slope, please call out-of-place version "
    "instead."
)


def _float_kernel(input: Tensor, kernel: str) -> None:
    """torch's CPU kernels of most activations exist for floating dtypes only."""
    dt = input._data.dtype
    if dt.kind != "f":
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{_type_word(dt)}'")


def _write_inplace(input: Tensor, out: np.ndarray, node_cls, save_result: bool):
    """Finish an ``inplace=True`` activation whose value ``out`` was computed from ``input``, by torch's
    in-place protocol: checks, write into ``input``, bump its version, record ``node_cls`` and rebase
    ``input`` onto it (``CopySlices`` for a view). The node saves the result (``save_result``: torch's
    ``...Backward1`` forms) or a copy of the input taken before the write (torch saves ``self.clone()``
    for ``hardtanh_`` and ``silu_``). Returns the node, or None when nothing was recorded."""
    from .inplace import _begin, _node, _rebase, _writable
    from .shape import clone

    rec = _begin(input)
    arr = _writable(input)
    original = clone(input) if rec and not save_result else None
    np.copyto(arr, out, casting="unsafe")
    input._vbox[0] += 1
    if not rec:
        return None
    node = _node(input, node_cls)
    _rebase(input, node)
    node.save(input if save_result else original)
    return node


def _activation(input: Tensor, out: np.ndarray, inplace: bool, node_cls, inplace_cls, save_result: bool):
    """The result of an activation (``input`` itself when ``inplace``) and its node (None if not recorded).
    Out of place the node saves the input."""
    if inplace:
        return input, _write_inplace(input, out, inplace_cls, save_result)
    res, node = record(out, node_cls, input)
    if node is not None:
        node.save(input)
    return res, node


@op(method=False, function=False)
def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere (in place: ``LeakyReluBackward1``)."""
    _float_kernel(input, "leaky_relu_cpu")
    x = input._data
    out = np.where(x > 0, x, x * negative_slope).astype(x.dtype, copy=False)
    res, node = _activation(input, out, inplace, LeakyReluBackward0, LeakyReluBackward1, True)
    if node is not None:
        node.slope = negative_slope
    return res


class EluBackward0(Node):
    __slots__ = ("alpha", "scale", "input_scale")

    def backward(self, g):
        (x,) = self.saved()
        xd = _data(x)
        neg = xd <= 0
        if _is_arr(x):
            d = np.where(
                neg, np.exp(xd * self.input_scale) * (self.input_scale * self.alpha * self.scale), self.scale
            ).astype(xd.dtype)
            return (g * d,)
        d = (x * self.input_scale).exp() * (self.input_scale * self.alpha * self.scale)
        negf = neg.astype(xd.dtype)
        return (g * (d * negf + (1.0 - negf) * self.scale),)


class EluBackward1(EluBackward0):
    """``elu_`` saves its result: where it is <= 0 the derivative is ``input_scale * (result + alpha*scale)``."""

    __slots__ = ()

    def backward(self, g):
        if self.alpha < 0:
            raise RuntimeError(_NEGATIVE_SLOPE.format(op="elu"))
        (r,) = self.saved()
        rd = _data(r)
        neg = rd <= 0
        d = (r + self.alpha * self.scale) * self.input_scale
        if _is_arr(r):
            return (g * np.where(neg, d, self.scale).astype(rd.dtype),)
        negf = neg.astype(rd.dtype)
        return (g * (d * negf + (1.0 - negf) * self.scale),)


@op(method=False, function=False)
def elu(
    input: Tensor, alpha: float = 1.0, inplace: bool = False, scale: float = 1.0, input_scale: float = 1.0
) -> Tensor:
    """Exponential linear unit: ``x`` for positive ``x``, ``alpha * (exp(x) - 1)`` elsewhere (in place:
    ``EluBackward1``)."""
    _float_kernel(input, "elu_cpu")
    x = input._data
    out = np.where(x <= 0, np.expm1(x * input_scale) * (alpha * scale), x * scale).astype(x.dtype, copy=False)
    res, node = _activation(input, out, inplace, EluBackward0, EluBackward1, True)
    if node is not None:
        node.alpha, node.scale, node.input_scale = alpha, scale, input_scale
    return res


class SoftplusBackward0(Node):
    __slots__ = ("beta", "threshold")

    def backward(self, g):
        (x,) = self.saved()
        xd = _data(x)
        lin = (xd * self.beta) > self.threshold
        z = _exp(x * self.beta)
        if _is_arr(x):
            return (np.where(lin, g, g * z / (z + 1.0)),)
        linf = lin.astype(xd.dtype)
        return (g * (linf + (1.0 - linf) * (z / (z + 1.0))),)


@op(method=False, function=False)
def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold``."""
    _float_kernel(input, "softplus_cpu")
    x = input._data
    xb = x * beta
    with np.errstate(over="ignore"):
        out = np.where(xb > threshold, x, np.log1p(np.exp(xb)) / beta).astype(x.dtype, copy=False)
    res, node = record(out, SoftplusBackward0, input)
    if node is not None:
        node.beta, node.threshold = beta, threshold
        node.save(input)
    return res


class SiluBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        sig = _sigmoid(x)
        return (g * (sig * ((1.0 - sig) * x + 1.0)),)


@op(method=False, function=False)
def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (``SiluBackward0``; in place it saves a copy of the input)."""
    _float_kernel(input, "silu_cpu")
    x = input._data
    with np.errstate(invalid="ignore"):  # -inf * 0
        out = np.asarray(x * _np_sigmoid(x), dtype=x.dtype)
    return _activation(input, out, inplace, SiluBackward0, SiluBackward0, False)[0]


class HardtanhBackward0(Node):
    __slots__ = ("min_val", "max_val")

    def backward(self, g):
        (x,) = self.saved()
        xd = _data(x)
        # torch zeroes the gradient where x <= min or x >= max: a nan input passes its gradient
        inside = ~((xd <= self.min_val) | (xd >= self.max_val))
        inside = inside.astype(xd.dtype)
        return (g * inside,)


@op(method=False, function=False)
def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """Clamp to ``[min_val, max_val]`` with zero gradient outside (``HardtanhBackward0``; in place it saves
    a copy of the input)."""
    x = input._data
    if x.dtype == np.bool_:
        raise RuntimeError("Bool inputs not supported for hardtanh")
    out = np.asarray(np.clip(x, min_val, max_val), dtype=x.dtype)
    res, node = _activation(input, out, inplace, HardtanhBackward0, HardtanhBackward0, False)
    if node is not None:
        node.min_val, node.max_val = min_val, max_val
    return res


class LogSigmoidBackward0(Node):
    __slots__ = ()

    def backward(self, g):
        (x,) = self.saved()
        return (g * _sigmoid(-x),)


@op(method=False, function=False)
def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x))``, computed stably (``LogSigmoidBackward0``)."""
    _float_kernel(input, "log_sigmoid_cpu")
    x = input._data
    res, node = record(np.asarray(_np_log_sigmoid(x), dtype=x.dtype), LogSigmoidBackward0, input)
    if node is not None:
        node.save(input)
    return res


# --- dropout ----------------------------------------------------------------------------------------------
def _dropout_factor(input: Tensor, p: float, train: bool):
    """What dropout multiplies ``input`` by (a scaled random mask; a 0-d zero of the input's dtype when
    ``p == 1``), or None when dropout leaves the input as it is (not training, ``p == 0``, no elements)."""
    if p == 0 or not train or input._data.size == 0:
        return None
    x = input._data
    if p == 1:
        return Tensor._make(np.zeros((), dtype=x.dtype))
    if x.dtype.kind != "f":
        raise RuntimeError(f"result type Float can't be cast to the desired output type {_type_word(x.dtype)}")
    from ..creation import _rng

    keep = _rng(None).random(x.shape) < (1.0 - p)
    return Tensor._make(keep.astype(x.dtype) / x.dtype.type(1.0 - p))


@op(method=False, function=True)
def dropout(input: Tensor, p: float, train: bool) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (when ``train``).

    As in torch the result is ``input * mask`` (``MulBackward0``); outside training, with ``p == 0`` or an
    empty input, the input itself is returned.
    """
    factor = _dropout_factor(input, p, train)
    return input if factor is None else input * factor


@op(method=False, function=True)
def dropout_(input: Tensor, p: float, train: bool) -> Tensor:
    """``dropout`` in place (``input.mul_(mask)``: ``MulBackward0``); returns ``input``."""
    factor = _dropout_factor(input, p, train)
    return input if factor is None else input.mul_(factor)


# --- embedding ----------------------------------------------------------------------------------------------
class EmbeddingBackward0(Node):
    __slots__ = ("indices", "num_weights", "padding_idx", "scale_grad_by_freq", "dtype")
    _saves = False

    def backward(self, g):
        idx = self.indices.reshape(-1)
        n = self.num_weights
        valid = idx != self.padding_idx if self.padding_idx >= 0 else None
        scale = None
        if self.scale_grad_by_freq:
            counts = np.bincount(idx, minlength=n)
            scale = (1.0 / counts[idx]).astype(self.dtype)
        if _is_arr(g):
            d = g.shape[-1]
            rows = g.reshape(-1, d)
            if scale is not None:
                rows = rows * scale[:, None]
            if valid is not None:
                idx, rows = idx[valid], rows[valid]
            gw = np.zeros((n, d), dtype=g.dtype)
            np.add.at(gw, idx, rows)
            return (gw,)
        # create_graph: a differentiable scatter-add as a one-hot matmul
        onehot = np.zeros((n, idx.size), dtype=self.dtype)
        onehot[idx, np.arange(idx.size)] = 1.0 if scale is None else scale
        if valid is not None:
            onehot[:, ~valid] = 0.0
        return (Tensor._make(onehot).mm(g.reshape(idx.size, g.shape[-1])),)


@op(method=False, function=True)
def embedding(
    weight: Tensor,
    indices: Tensor,
    padding_idx: int = -1,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` at ``indices`` (``torch.embedding``'s argument order: weight first)."""
    idx = indices._data
    if idx.dtype.kind not in "iu":
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar types: "
            f"Long, Int; but got torch.{_type_word(idx.dtype)}Tensor instead (while checking "
            "arguments for embedding)"
        )
    w = weight._data
    n = w.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    out = w[idx]
    res, node = record(out, EmbeddingBackward0, weight)
    if node is not None:
        node.indices = idx.copy()
        node.num_weights = n
        node.padding_idx = padding_idx
        node.scale_grad_by_freq = scale_grad_by_freq
        node.dtype = w.dtype
    return res


# --- layer norm -----------------------------------------------------------------------------------------
class NativeLayerNormBackward0(Node):
    __slots__ = ("axes", "lead", "eps", "mean", "rstd", "has_w")

    def backward(self, g):
        saved = self.saved()
        x = saved[0]
        w = saved[1] if self.has_w else None
        axes = self.axes
        if _is_arr(x):
            mean, rstd = self.mean, self.rstd
        else:
            mean = _mean(x, axes)
            xc0 = x - mean
            rstd = 1.0 / (_mean(xc0 * xc0, axes) + self.eps).sqrt()
        xhat = (x - mean) * rstd
        nxt = self._next
        gx = gw = gb = None
        if nxt[0][0] is not None:
            gxh = g * w if w is not None else g
            gx = (gxh - _mean(gxh, axes) - xhat * _mean(gxh * xhat, axes)) * rstd
        if nxt[1][0] is not None:
            gw = _sum(g * xhat, self.lead) if self.lead else g * xhat
        if nxt[2][0] is not None:
            gb = _sum(g, self.lead) if self.lead else g
        return gx, gw, gb


@op(method=False, function=True)
def layer_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    cudnn_enable: bool = True,
) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims, then scale by ``weight`` and add ``bias``."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    ns = tuple(int(s) for s in normalized_shape)
    x = input._data
    k = len(ns)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k :]) != ns:
        raise RuntimeError(
            f"Given normalized_shape={list(ns)}, expected input with shape [*, "
            f"{', '.join(map(str, ns))}], but got input of size{list(x.shape)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != ns:
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                f"{list(t.shape)} and normalized_shape = {list(ns)}"
            )
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    out = xc * rstd
    if weight is not None:
        out = out * weight._data
    if bias is not None:
        out = out + bias._data
    res, node = _rec(out, NativeLayerNormBackward0, input, weight, bias)
    if node is not None:
        node.axes, node.lead, node.eps = axes, tuple(range(x.ndim - k)), eps
        node.mean, node.rstd = mean, rstd
        node.has_w = weight is not None
        if weight is not None:
            node.save(input, weight)
        else:
            node.save(input)
    return res


# --- batch norm ---------------------------------------------------------------------------------------------
class NativeBatchNormBackward0(Node):
    __slots__ = ("axes", "cshape", "eps", "mean", "rstd", "has_w", "training")

    def backward(self, g):
        saved = self.saved()
        x = saved[0]
        w = saved[1] if self.has_w else None
        axes, cshape = self.axes, self.cshape
        if _is_arr(x) or not self.training:
            mean, rstd = self.mean, self.rstd
            if not _is_arr(x):
                mean, rstd = Tensor._make(mean), Tensor._make(rstd)
        else:
            mean = _mean(x, axes)
            xc0 = x - mean
            rstd = 1.0 / (_mean(xc0 * xc0, axes) + self.eps).sqrt()
        xhat = (x - mean) * rstd
        nxt = self._next
        gx = gw = gb = None
        if nxt[0][0] is not None:
            gxh = g * w.reshape(cshape) if w is not None else g
            if self.training:
                gx = (gxh - _mean(gxh, axes) - xhat * _mean(gxh * xhat, axes)) * rstd
            else:
                gx = gxh * rstd
        if nxt[1][0] is not None:
            gw = _sum(g * xhat, axes)
        if nxt[2][0] is not None:
            gb = _sum(g, axes)
        return gx, gw, gb


@op(method=False, function=True)
def batch_norm(
    input: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    cudnn_enabled: bool = True,
) -> Tensor:
    """Batch normalisation over every dim but the channel dim 1 (``NativeBatchNormBackward0``).

    In training the batch statistics normalise the input and update ``running_mean``/``running_var`` in
    place (``(1 - momentum) * running + momentum * batch``, the variance unbiased); otherwise the running
    statistics are used.
    """
    x = input._data
    if x.ndim < 2:
        raise RuntimeError(f"batch_norm: expected input with at least 2 dims, got {x.ndim}")
    c = x.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t._data.size != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t._data.size}")
    axes = (0,) + tuple(range(2, x.ndim))
    cshape = (1, c) + (1,) * (x.ndim - 2)
    if training:
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = (xc * xc).mean(axis=axes, keepdims=True)
        rstd = 1.0 / np.sqrt(var + eps)
        n = x.size // c
        if running_mean is not None:
            rm = running_mean._data
            rm *= rm.dtype.type(1.0 - momentum)
            rm += (mean.reshape(c) * momentum).astype(rm.dtype, copy=False)
            running_mean._vbox[0] += 1
        if running_var is not None:
            rv = running_var._data
            unbiased = var.reshape(c) * (n / max(n - 1, 1))
            rv *= rv.dtype.type(1.0 - momentum)
            rv += (unbiased * momentum).astype(rv.dtype, copy=False)
            running_var._vbox[0] += 1
    else:
        mean = running_mean._data.reshape(cshape).astype(x.dtype, copy=False)
        rstd = (1.0 / np.sqrt(running_var._data.reshape(cshape) + eps)).astype(x.dtype, copy=False)
        xc = x - mean
    out = xc * rstd
    if weight is not None:
        out = out * weight._data.reshape(cshape)
    if bias is not None:
        out = out + bias._data.reshape(cshape)
    res, node = _rec(np.asarray(out, dtype=x.dtype), NativeBatchNormBackward0, input, weight, bias)
    if node is not None:
        node.axes, node.cshape, node.eps, node.training = axes, cshape, eps, bool(training)
        node.mean, node.rstd = mean, rstd
        node.has_w = weight is not None
        if weight is not None:
            node.save(input, weight)
        else:
            node.save(input)
    return res


# --- constant padding -----------------------------------------------------------------------------------
def _pad_array(x: np.ndarray, pad, value) -> np.ndarray:
    """``x`` padded (or cropped, for negative pads) by ``pad`` = (last_lo, last_hi, prev_lo, prev_hi, ...)."""
    n = len(pad) // 2
    widths = [(0, 0)] * x.ndim
    crops = [slice(None)] * x.ndim
    for i in range(n):
        d = x.ndim - 1 - i
        lo, hi = int(pad[2 * i]), int(pad[2 * i + 1])
        widths[d] = (max(lo, 0), max(hi, 0))
        size = x.shape[d] + max(lo, 0) + max(hi, 0)
        crops[d] = slice(-min(lo, 0), size + min(hi, 0))
    out = np.pad(x, widths, mode="constant", constant_values=value) if any(w != (0, 0) for w in widths) else x
    return out[tuple(crops)]


class ConstantPadNdBackward0(Node):
    __slots__ = ("pad",)
    _saves = False

    def backward(self, g):
        neg = [-p for p in self.pad]
        if _is_arr(g):
            return (np.ascontiguousarray(_pad_array(g, neg, 0)),)
        return (constant_pad_nd(g, neg, 0),)


@op(method=False, function=True)
def constant_pad_nd(input: Tensor, pad, value=0) -> Tensor:
    """Pad the trailing dims with ``value`` (``pad`` lists (before, after) pairs from the last dim)."""
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Length of pad must be even but instead it equals " + str(len(pad)))
    if len(pad) // 2 > input._data.ndim:
        raise RuntimeError(
            f"Length of pad should be no more than twice the number of dimensions of the input. "
            f"Pad length is {len(pad)} while the input has {input._data.ndim} dimensions."
        )
    out = np.ascontiguousarray(_pad_array(input._data, pad, value))
    res, node = record(out, ConstantPadNdBackward0, input)
    if node is not None:
        node.pad = pad
    return res


# --- split into equal chunks (for the RNN cells' gates) -------------------------------------------------
class UnsafeSplitBackward0(Node):
    __slots__ = ("dim", "sizes", "shape", "dtype", "n")
    _saves = False

    def backward(self, grads):
        if self.n == 1:
            grads = [grads]
        parts = []
        for g, size in zip(grads, self.sizes, strict=False):
            if g is None:
                shape = list(self.shape)
                shape[self.dim] = size
                g = np.zeros(shape, dtype=self.dtype)
                if not all(_is_arr(o) or o is None for o in grads):
                    g = Tensor._make(g)
            parts.append(g)
        if all(_is_arr(p) for p in parts):
            return (np.concatenate(parts, axis=self.dim),)
        from .. import cat

        return (cat([p if isinstance(p, Tensor) else Tensor._make(p) for p in parts], self.dim),)


def unsafe_chunk_(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """``torch.unsafe_chunk``: equal chunks along ``dim`` from one multi-output ``UnsafeSplitBackward0``."""
    x = input._data
    dim = dim + x.ndim if dim < 0 else dim
    size = x.shape[dim]
    step = -(-size // chunks)
    bounds = list(range(0, size, step)) + [size]
    sizes = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
    arrays = np.split(x, bounds[1:-1], axis=dim)
    if not (GRAD_MODE.enabled and input._rg):
        return tuple(Tensor._make(a) for a in arrays)
    node = UnsafeSplitBackward0((input._edge(),))
    node.dim, node.sizes, node.shape, node.dtype, node.n = dim, sizes, x.shape, x.dtype, len(arrays)
    node.num_outputs = len(arrays)
    omd = tuple((a.shape, a.dtype) for a in arrays)
    node._omd = omd if len(arrays) > 1 else omd[0]
    return tuple(Tensor._make(a, node, i) for i, a in enumerate(arrays))


class TransposeBackward1(Node):
    __slots__ = ("dim0", "dim1")
    _saves = False

    def backward(self, g):
        if _is_arr(g):
            return (np.swapaxes(g, self.dim0, self.dim1),)
        return (g.transpose(self.dim0, self.dim1),)


def transposed_(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """What torch's in-place ``transpose_`` on a fresh result records (``TransposeBackward1``), returned as a
    new view; the recurrent modules use it for ``batch_first`` outputs as torch's kernels do."""
    res, node = record(np.swapaxes(input._data, dim0, dim1), TransposeBackward1, input)
    if node is not None:
        node.dim0, node.dim1 = dim0, dim1
    return res


# --- losses -----------------------------------------------------------------------------------------------
class MseLossBackward0(Node):
    __slots__ = ("red", "n")

    def backward(self, g):
        x, t = self.saved()
        scale = 2.0 / self.n if self.red == 1 else 2.0
        gx = g * (x - t) * scale
        nxt = self._next
        return (gx if nxt[0][0] is not None else None, -gx if nxt[1][0] is not None else None)


@op(method=False, function=False)
def mse_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    """Mean squared error (``reduction`` 'mean' | 'sum' | 'none'); shapes must already match."""
    red = reduction_enum(_legacy_reduction(size_average, reduce, reduction))
    d = input._data - target._data
    out = _reduce(d * d, red)
    res, node = record(out, MseLossBackward0, input, target)
    if node is not None:
        node.red, node.n = red, max(d.size, 1) if red == 1 else d.size
        node.save(input, target)
    return res


@op(method=False, function=False)
def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Mean absolute error; torch composes it as ``(input - target).abs()`` then mean/sum."""
    red = reduction_enum(_legacy_reduction(size_average, reduce, reduction))
    loss = (input - target).abs()
    if red == 1:
        return loss.mean()
    if red == 2:
        return loss.sum()
    return loss


def _legacy_reduction(size_average, reduce, reduction):
    """torch's ``_Reduction.legacy_get_string`` when the deprecated arguments are given."""
    if size_average is None and reduce is None:
        return reduction
    import warnings

    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if (size_average and reduce) else ("sum" if reduce else "none")
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
        UserWarning,
        stacklevel=3,
    )
    return ret


class NllLossBackward0(Node):
    # saves (input, target, total_weight) as torch does: their bytes count as saved, an in-place change to
    # either input raises at backward, and so does a second backward; the formula itself reads ``ts``/``w``
    __slots__ = ("red", "ts", "w", "total_weight", "shape", "cdim")

    def _layout(self, coef2: np.ndarray) -> np.ndarray:
        """A (rows, classes) array in the input's layout (class dim ``cdim``)."""
        shape, cdim = self.shape, self.cdim
        if len(shape) == 2:
            return coef2
        if len(shape) == 1:
            return coef2.reshape(shape)
        moved = [s for i, s in enumerate(shape) if i != cdim] + [shape[cdim]]
        return np.ascontiguousarray(np.moveaxis(coef2.reshape(moved), -1, cdim))

    def backward(self, g):
        self.saved()  # raises once freed, or after an in-place change to the input or the target
        is_arr = _is_arr(g)
        gd = _data(g)
        dtype = gd.dtype
        ts = self.ts
        n = ts.size
        vals = -np.ones(n, dtype=dtype) if self.w is None else -self.w.astype(dtype, copy=False)
        if self.red == 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                vals = vals / dtype.type(self.total_weight)
        if is_arr:
            vals = vals * (gd.reshape(-1) if self.red == 0 else gd)
        coef = np.zeros((n, self.shape[self.cdim]), dtype=dtype)
        coef[np.arange(n), ts] = vals
        coef = self._layout(coef)
        if is_arr:
            return (coef,)
        if self.red == 0 and len(self.shape) > 1:
            g = g.unsqueeze(self.cdim)
        return (g * coef,)


class NllLoss2DBackward0(NllLossBackward0):
    __slots__ = ()


@op(method=False, function=False)
def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of the target classes (input holds log-probabilities, class dim 1).

    As torch: 1-D/2-D input gives ``NllLossBackward0``, 4-D ``NllLoss2DBackward0``, other ranks are viewed
    to 4-D around ``NllLoss2DBackward0``.
    """
    red = reduction_enum(_legacy_reduction(size_average, reduce, reduction))
    x = input._data
    t = target._data
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_type_word(t.dtype)}")
    if x.ndim >= 2 and x.shape[0] != (t.shape[0] if t.ndim else 1):
        raise ValueError(
            f"Expected input batch_size ({x.shape[0]}) to match target batch_size "
            f"({t.shape[0] if t.ndim else 1})."
        )
    cdim = 0 if x.ndim == 1 else 1
    expected_t = tuple(s for i, s in enumerate(x.shape) if i != cdim)
    if tuple(t.shape) != expected_t:
        raise RuntimeError(f"Expected target size {list(expected_t)}, got {list(t.shape)}")
    if x.ndim <= 2:
        return _nll(input, target, weight, ignore_index, red, NllLossBackward0)
    if x.ndim == 4:
        return _nll(input, target, weight, ignore_index, red, NllLoss2DBackward0)
    n, c = x.shape[:2]
    out_size = (n,) + tuple(x.shape[2:])
    if x.size > 0:
        input_ = input.contiguous().view(n, c, 1, -1)
        target_ = target.contiguous().view(n, 1, -1)
    else:
        input_ = input.view(n, c, 0, 0)
        target_ = target.view(n, 0, 0)
    out = _nll(input_, target_, weight, ignore_index, red, NllLoss2DBackward0)
    if red == 0:
        out = out.view(*out_size)
    return out


def _nll(input: Tensor, target: Tensor, weight, ignore_index: int, red: int, node_cls) -> Tensor:
    x = input._data
    t = target._data
    cdim = 0 if x.ndim == 1 else 1
    c = x.shape[cdim]
    flat_t = t.reshape(-1)
    n = flat_t.size
    valid = flat_t != ignore_index
    all_valid = bool(valid.all())
    chk = flat_t if all_valid else flat_t[valid]
    if chk.size and (chk.min() < 0 or chk.max() >= c):
        raise IndexError(f"Target {int(chk[(chk < 0) | (chk >= c)][0])} is out of bounds.")
    ts = flat_t.copy() if all_valid else np.where(valid, flat_t, 0)
    x2 = x if x.ndim == 2 else np.moveaxis(x, cdim, -1).reshape(-1, c)
    picked = x2[np.arange(n), ts]
    if weight is None and all_valid:
        w = None
        losses = -picked
        total_weight = float(n)
    else:
        w = weight._data[ts].astype(x.dtype, copy=False) if weight is not None else np.ones(n, dtype=x.dtype)
        if not all_valid:
            w = np.where(valid, w, w.dtype.type(0))
        losses = -(picked * w)
        total_weight = w.sum()
    if red == 0:
        out = losses.reshape(t.shape)
    elif red == 2:
        out = np.asarray(losses.sum(), dtype=x.dtype)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(losses.sum() / total_weight, dtype=x.dtype)
    res, node = record(out, node_cls, input)
    if node is not None:
        node.red, node.ts, node.w = red, ts, w
        node.total_weight, node.shape, node.cdim = total_weight, x.shape, cdim
        node.save(input, target, Tensor._make(np.asarray(total_weight, dtype=x.dtype)))
    return res


@op(method=False, function=False)
def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits ``input`` and class indices (or class probabilities) ``target``.

    With class indices torch computes ``nll_loss(log_softmax(input, 1), target)``, so the graph is
    ``NllLossBackward0 -> LogSoftmaxBackward0``.
    """
    red = reduction_enum(_legacy_reduction(size_average, reduce, reduction))
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    cdim = 0 if input.dim() == 1 else 1
    logp = input.log_softmax(cdim)
    n_classes = input.shape[cdim]
    weight_ = None
    if weight is not None:
        wshape = [1] * input.dim()
        wshape[cdim] = n_classes
        weight_ = weight.view(*wshape) if input.dim() > 1 else weight
    if target._data.dtype.kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise RuntimeError(f"Expected target size {list(input.shape)}, got {list(target.shape)}")
        if label_smoothing > 0:
            target = _scalar_op(
                _scalar_op(target, 1 - label_smoothing, MulBackward1),
                label_smoothing / n_classes,
                AddBackward1,
            )
        prod = logp * target
        if weight_ is not None:
            prod = prod * weight_
        if red == 1:
            if input.numel() == 0:
                return -(prod.sum()) * float("nan")
            return _scalar_op(-prod.sum(), input.numel() // n_classes, DivBackward1)
        if red == 2:
            return -prod.sum()
        return -prod.sum(cdim)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing <= 0:
        return nll
    # torch's composite: (1 - ls) * nll + ls / C * smooth, with smooth = -sum_c(logp [* weight]) masked
    ignore = target._data == ignore_index
    smooth = -(logp * weight_).sum(cdim) if weight_ is not None else -logp.sum(cdim)
    smooth = smooth.masked_fill(Tensor._make(ignore), 0.0)
    if red == 1:
        if weight is not None:
            denom = weight._data[target._data[~ignore].reshape(-1)].sum()
        else:
            denom = np.asarray((~ignore).sum(), dtype=np.int64)
        ret = smooth.sum() / Tensor._make(np.asarray(denom))
    elif red == 2:
        ret = smooth.sum()
    else:
        ret = smooth
    return _scalar_op(nll, 1 - label_smoothing, MulBackward1) + _scalar_op(
        ret, label_smoothing / n_classes, MulBackward1
    )


class BinaryCrossEntropyBackward0(Node):
    __slots__ = ("red", "n", "weight")

    def backward(self, g):
        x, t = self.saved()
        w = self.weight
        nxt = self._next
        scale = 1.0 / self.n if self.red == 1 else 1.0
        gx = gt = None
        if nxt[0][0] is not None:
            gx = g * (x - t) / _clamp_min((1.0 - x) * x, 1e-12)
            if w is not None:
                gx = gx * _const(w, gx)
            if scale != 1.0:
                gx = gx * scale
        if nxt[1][0] is not None:
            gt = g * -_log(x / (1.0 - x))
            if w is not None:
                gt = gt * _const(w, gt)
            if scale != 1.0:
                gt = gt * scale
        return gx, gt


@op(method=False, function=False)
def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross-entropy between probabilities ``input`` and ``target`` (logs clamped at -100)."""
    red = reduction_enum(_legacy_reduction(size_average, reduce, reduction))
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"Using a target size ({target.shape!r}) that is different to the input size "
            f"({input.shape!r}) is deprecated. Please ensure they have the same size."
        )
    x, t = input._data, target._data
    if x.size and (x.min() < 0 or x.max() > 1 or np.isnan(x).any()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):
        loss = (t - 1.0) * np.maximum(np.log1p(-x), -100.0) - t * np.maximum(np.log(x), -100.0)
    w = None
    if weight is not None:
        w = np.broadcast_to(weight._data, x.shape)
        loss = loss * w
    out = _reduce(np.asarray(loss, dtype=x.dtype), red)
    res, node = record(out, BinaryCrossEntropyBackward0, input, target)
    if node is not None:
        node.red, node.n, node.weight = red, x.size, w
        node.save(input, target)
    return res


class BinaryCrossEntropyWithLogitsBackward0(Node):
    __slots__ = ("red", "n", "weight", "pos_weight")

    def backward(self, g):
        x, t = self.saved()
        w, pw = self.weight, self.pos_weight
        nxt = self._next
        scale = 1.0 / self.n if self.red == 1 else 1.0
        gx = gt = None
        if nxt[0][0] is not None:
            if pw is not None:
                tp = t * _const(pw, t)
                gx = (tp + 1.0 - t) * _sigmoid(x) - tp
            else:
                gx = _sigmoid(x) - t
            gx = gx * g
            if w is not None:
                gx = gx * _const(w, gx)
            if scale != 1.0:
                gx = gx * scale
        if nxt[1][0] is not None:
            if pw is not None:
                gt = _log_sigmoid(-x) - _log_sigmoid(x) * _const(pw, x)
            else:
                gt = -x
            gt = gt * g
            if w is not None:
                gt = gt * _const(w, gt)
            if scale != 1.0:
                gt = gt * scale
        return gx, gt


@op(method=False, function=True)
def binary_cross_entropy_with_logits(
    input: Tensor, target: Tensor, weight: Tensor | None = None, pos_weight: Tensor | None = None, reduction=1
) -> Tensor:
    """Binary cross-entropy on logits (a numerically stable sigmoid + BCE); ``reduction`` may be torch's
    enum int (top-level ``torch.binary_cross_entropy_with_logits``) or a string."""
    red = reduction_enum(reduction)
    if pos_weight is not None and pos_weight._rg and GRAD_MODE.enabled:
        raise RuntimeError(
            "The function 'binary_cross_entropy_with_logits' is not differentiable with respect to "
            "argument 'pos_weight'. This input cannot have requires_grad True."
        )
    if weight is not None and weight._rg and GRAD_MODE.enabled:
        raise RuntimeError(
            "The function 'binary_cross_entropy_with_logits' is not differentiable with respect to "
            "argument 'weight'. This input cannot have requires_grad True."
        )
    x, t = input._data, target._data
    lsig = _np_log_sigmoid(x)
    pw = None
    if pos_weight is not None:
        pw = pos_weight._data
        lsig = lsig * ((pw - 1.0) * t + 1.0)
    loss = (1.0 - t) * x - lsig
    w = None
    if weight is not None:
        w = weight._data
        loss = loss * w
    loss = np.asarray(loss, dtype=np.result_type(x, t))
    out = _reduce(loss, red)
    res, node = record(out, BinaryCrossEntropyWithLogitsBackward0, input, target)
    if node is not None:
        node.red, node.n, node.weight, node.pos_weight = red, loss.size, w, pw
        node.save(input, target)
    return res
