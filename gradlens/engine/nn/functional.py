"""``torch.nn.functional`` for the native engine: stateless layers, activations and losses.

Each function builds the same graph torch builds for the same call (``linear`` on 2-D input is one
``AddmmBackward0``; ``cross_entropy`` is ``NllLossBackward0 -> LogSoftmaxBackward0``). Element-wise and
shape ops come from the Tensor API; the ops with their own nodes live in ``gradlens.engine.ops.nnops``.

Example:
    >>> import gradlens.engine as torch
    >>> import gradlens.engine.nn.functional as F
    >>> x = torch.tensor([[1.0, -2.0]], requires_grad=True)
    >>> F.relu(x).grad_fn.name()
    'ReluBackward0'
"""

from __future__ import annotations

import warnings

import numpy as np

from .._args import not_a_tensor
from ..ops import nnops as _nnops
from ..ops._core import broadcast_error
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ..ops.extra import interpolate, kl_div, smooth_l1_loss  # noqa: F401 - F.<name>, as torch
from ..ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d, max_pool2d_with_indices
from ..tensor import Tensor


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale=None, enable_gqa: bool = False):
    """torch's math reference of SDPA, composed of engine ops (see nn/modules/attention.py)."""
    from .modules.attention import scaled_dot_product_attention as sdpa

    return sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)

__all__ = [
    "linear",
    "bilinear",
    "relu",
    "relu_",
    "relu6",
    "gelu",
    "leaky_relu",
    "elu",
    "selu",
    "softplus",
    "sigmoid",
    "tanh",
    "silu",
    "logsigmoid",
    "hardtanh",
    "softmax",
    "log_softmax",
    "softmin",
    "dropout",
    "dropout1d",
    "dropout2d",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool2d",
    "max_pool2d_with_indices",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "embedding",
    "layer_norm",
    "batch_norm",
    "mse_loss",
    "l1_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "one_hot",
    "pad",
    "normalize",
]


_addmm = None


def _get_addmm():
    global _addmm
    if _addmm is None:
        from ..ops import OPS

        _addmm = OPS["addmm"][0]
    return _addmm


# --- linear ---------------------------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with torch's graph.

    2-D input with bias gives ``AddmmBackward0(bias, input, TBackward0(weight))``; other contiguous
    inputs are flattened to 2-D around the same addmm (``ViewBackward0`` on both sides); without bias it is
    ``mm`` (2-D) or ``matmul``.

    Raises:
        RuntimeError: 'mat1 and mat2 shapes cannot be multiplied (64x100 and 784x128)' on a width mismatch.
    """
    try:
        ndim = input._data.ndim
        wt = weight.t()
    except AttributeError:
        raise not_a_tensor("linear", input=input, weight=weight) from None
    if bias is None:
        if ndim == 2:
            return input.mm(wt)
        return input.matmul(wt)
    addmm = _addmm or _get_addmm()
    if ndim == 2:
        return addmm(bias, input, wt)
    if ndim >= 1 and input._data.flags.c_contiguous and bias._data.ndim == 1:
        lead = input._data.shape[:-1]
        flat = 1
        for s in lead:
            flat *= s
        out = addmm(bias, input.reshape(flat, input._data.shape[-1]), wt)
        return out.view(*lead, out._data.shape[1])
    return input.matmul(wt) + bias


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x1^T A x2 + b`` (composed from einsum-free matmuls)."""
    out = (input1.unsqueeze(-2).unsqueeze(-2).matmul(weight).squeeze(-2) * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


# --- activations -------------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) (``ReluBackward0``)."""
    if inplace:
        return input.relu_()
    return input.relu()


def relu_(input: Tensor) -> Tensor:
    return input.relu_()


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """Clamp to ``[min_val, max_val]`` (``HardtanhBackward0``)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _nnops.hardtanh(input, min_val, max_val, inplace)


gelu = _nnops.gelu  # the op itself: same signature as torch's F


leaky_relu = _nnops.leaky_relu  # the op itself: same signature as torch's F


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``EluBackward0``."""
    return _nnops.elu(input, alpha, inplace)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU (torch computes it with the ELU kernel: ``EluBackward0``)."""
    return _nnops.elu(input, _SELU_ALPHA, inplace, _SELU_SCALE, 1.0)


softplus = _nnops.softplus  # the op itself: same signature as torch's F


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


silu = _nnops.silu  # the op itself: same signature as torch's F


logsigmoid = _nnops.logsigmoid  # the op itself: same signature as torch's F


def _get_softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
        "as an argument.",
        stacklevel=stacklevel,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """Softmax along ``dim`` (``SoftmaxBackward0``)."""
    if dim is None:
        dim = _get_softmax_dim("softmax", input.dim(), _stacklevel)
    if dtype is None:
        return input.softmax(dim)
    return input.softmax(dim, dtype=dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _get_softmax_dim("softmin", input.dim(), _stacklevel)
    return softmax(-input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """Log-softmax along ``dim`` (``LogSoftmaxBackward0``)."""
    if dim is None:
        dim = _get_softmax_dim("log_softmax", input.dim(), _stacklevel)
    if dtype is None:
        return input.log_softmax(dim)
    return input.log_softmax(dim, dtype=dtype)


# --- dropout, embedding, normalization ----------------------------------------------------------------
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability ``p`` during training (``MulBackward0`` by a scaled mask).

    Raises:
        ValueError: if ``p`` is not in [0, 1].
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if inplace:
        return _nnops.dropout_(input, p, training)
    return _nnops.dropout(input, p, training)


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool, batched: bool) -> Tensor:
    """Zero whole channels: one mask value per (sample, channel), broadcast over the spatial dims."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = input._data
    if not training or p == 0 or x.size == 0:
        return input
    from ..creation import _rng

    lead = 2 if batched else 1
    shape = x.shape[:lead] + (1,) * (x.ndim - lead)
    if p == 1:
        mask = np.zeros(shape, dtype=x.dtype)
    else:
        mask = (_rng(None).random(shape) < (1.0 - p)).astype(x.dtype) / x.dtype.type(1.0 - p)
    mask_t = Tensor._make(mask)
    return input.mul_(mask_t) if inplace else input * mask_t


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) input with probability ``p`` (``MulBackward0``).

    Raises:
        ValueError: if ``p`` is not in [0, 1].
        RuntimeError: if the input is not 2-D or 3-D.
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.dim() not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _feature_dropout(input, p, training, inplace, input.dim() == 3)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) input with probability ``p``, scaling the rest by ``1 / (1 - p)``
    (``MulBackward0`` by a (N, C, 1, 1) mask). 3-D input is treated as (N, C, L) with torch's warning.

    Raises:
        ValueError: if ``p`` is not in [0, 1].
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    ndim = input.dim()
    if ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {ndim}-D input to dropout2d, which is deprecated and will result "
                      "in an error in a future release. To retain the behavior and silence this warning, please "
                      "use dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs "
                      "with 2 spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D "
                      "or 4D inputs).", stacklevel=2)
    if ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace, True)


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Look up rows of ``weight`` (``EmbeddingBackward0``); rows at ``padding_idx`` get no gradient."""
    n = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0:
            assert padding_idx < n, "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -n, "Padding_idx must be within num_embeddings"
            padding_idx = n + padding_idx
    else:
        padding_idx = -1
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    return _nnops.embedding(weight, input, padding_idx, scale_grad_by_freq, sparse)


def _embedding_renorm_(weight: Tensor, input: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale in place (outside autograd) the looked-up rows whose norm exceeds ``max_norm``."""
    rows = np.unique(input._data.reshape(-1))
    w = weight._data
    norms = np.linalg.norm(w[rows], ord=norm_type, axis=1)
    over = norms > max_norm
    if over.any():
        scale = (max_norm / (norms[over] + 1e-7)).astype(w.dtype)
        w[rows[over]] *= scale[:, None]
        weight._vbox[0] += 1


def layer_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims (``NativeLayerNormBackward0``)."""
    return _nnops.layer_norm(input, normalized_shape, weight, bias, eps)


def _verify_batch_size(size) -> None:
    size_prods = size[0]
    for i in range(len(size) - 2):
        size_prods *= size[i + 2]
    if size_prods == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {size}")


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over the channel dim 1 (``NativeBatchNormBackward0``); in training it updates the
    running statistics in place.

    Raises:
        ValueError: with one value per channel in training, or a non-positive ``eps``.
    """
    if training:
        _verify_batch_size(input.size())
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    return _nnops.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim``."""
    denom = input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
    return input / denom


# --- losses -------------------------------------------------------------------------------------------------
def _broadcast_pair(input: Tensor, target: Tensor, stacklevel: int = 3):
    try:
        same = target._data.shape == input._data.shape  # the common case, without building two Sizes
    except AttributeError:  # not tensors: the checks below raise torch's errors
        same = False
    if not same and tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({target.shape!r}) that is different to the input size "
            f"({input.shape!r}). This will likely lead to incorrect results due to broadcasting. Please "
            "ensure they have the same size.",
            stacklevel=stacklevel,
        )
        try:
            shape = tuple(np.broadcast_shapes(tuple(input.shape), tuple(target.shape)))
        except ValueError:
            raise broadcast_error(tuple(input.shape), tuple(target.shape)) from None
        if tuple(input.shape) != shape:
            input = input.expand(*shape)
        if tuple(target.shape) != shape:
            target = target.expand(*shape)
    return input, target


def mse_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", weight=None
) -> Tensor:
    """Mean squared error (``MseLossBackward0``); differing shapes broadcast with torch's warning."""
    reduction = _nnops._legacy_reduction(size_average, reduce, reduction)
    _nnops.reduction_enum(reduction)
    input, target = _broadcast_pair(input, target)
    if weight is not None:
        loss = (input - target) ** 2 * weight
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
    return _nnops.mse_loss(input, target, reduction=reduction)


def l1_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", weight=None
) -> Tensor:
    """Mean absolute error (torch's graph: ``SubBackward0 -> AbsBackward0 -> Mean/SumBackward0``)."""
    reduction = _nnops._legacy_reduction(size_average, reduce, reduction)
    _nnops.reduction_enum(reduction)
    input, target = _broadcast_pair(input, target)
    return _nnops.l1_loss(input, target, reduction=reduction)


nll_loss = _nnops.nll_loss  # the op itself: same signature as torch's F


cross_entropy = _nnops.cross_entropy  # the op itself: same signature as torch's F


binary_cross_entropy = _nnops.binary_cross_entropy  # the op itself: same signature as torch's F


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross-entropy on logits (``BinaryCrossEntropyWithLogitsBackward0``).

    Raises:
        ValueError: when target and input sizes differ.
    """
    reduction = _nnops._legacy_reduction(size_average, reduce, reduction)
    red = _nnops.reduction_enum(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape!r}) must be the same as input size ({input.shape!r})")
    return _nnops.binary_cross_entropy_with_logits(input, target, weight, pos_weight, red)


# --- misc ---------------------------------------------------------------------------------------------------
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dim of size ``num_classes`` (inferred when -1)."""
    a = tensor._data
    if a.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(a.max()) + 1
    if a.size:
        if a.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if a.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(a.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, a[..., None], 1, axis=-1)
    return Tensor._make(out)


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the trailing dims (``ConstantPadNdBackward0``); only ``mode='constant'`` is supported."""
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.dim():
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but got "
            f"padding length {len(pad)} and input of dimension {input.dim()}"
        )
    if mode != "constant":
        raise NotImplementedError(f"gradlens.engine: F.pad supports mode='constant' only, got {mode!r}")
    return _nnops.constant_pad_nd(input, pad, 0 if value is None else value)
