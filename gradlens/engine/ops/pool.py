"""2-D pooling (``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``, ``adaptive_max_pool2d``) with torch's
nodes (``MaxPool2DWithIndicesBackward0``, ``AvgPool2DBackward0``, ``AdaptiveAvgPool2DBackward0``, ...).

Each pooling's backward is linear in the output gradient (max pooling scatters it to the winning
positions, average pooling spreads it over the windows), so every backward is written as a pair of
numpy functions adjoint to each other. Under ``create_graph=True`` the backward is recorded as a node
whose own backward is the forward map again (torch's ``...BackwardBackward0``), which gives second
derivatives. The loops run over kernel positions (k*k strided slices), never over pixels or the batch.
"""

from __future__ import annotations

from ._core import Node, Tensor, np, op, record, wrap_dim

__all__ = ["max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
           "adaptive_max_pool2d"]


# --- a linear map and its adjoint as a pair of nodes -------------------------------------------------------
class _LinearNode(Node):
    """A node whose backward is a fixed linear map ``adj`` (numpy); under create_graph the map is recorded
    as ``adj_cls`` whose backward is ``fwd`` again."""

    __slots__ = ("fwd", "adj", "adj_cls", "saves_input")
    adj_cls_name = ""

    def backward(self, g):
        if self.saves_input:
            self.saved()  # torch's errors for a freed graph or an input modified in place
        if isinstance(g, np.ndarray):
            return (self.adj(g),)
        return (_linear(g, self.adj, self.fwd, _ADJOINT[type(self)], save=False),)


def _linear(t: Tensor, fwd, adj, node_cls, save: bool = True) -> Tensor:
    res, node = record(fwd(t._data), node_cls, t)
    if node is not None:
        node.fwd, node.adj, node.saves_input = fwd, adj, save
        if save:
            node.save(t)
    return res


class MaxPool2DWithIndicesBackward0(_LinearNode):
    """``max_pool2d`` (with or without ``return_indices``)."""


class MaxPool2DWithIndicesBackwardBackward0(_LinearNode):
    """``max_pool2d``'s backward recorded under create_graph (a gather of the gradient's gradient)."""


class AvgPool2DBackward0(_LinearNode):
    """``avg_pool2d``."""


class AvgPool2DBackwardBackward0(_LinearNode):
    """``avg_pool2d``'s backward recorded under create_graph."""


class AdaptiveAvgPool2DBackward0(_LinearNode):
    """``adaptive_avg_pool2d``."""


class AdaptiveAvgPool2DBackwardBackward0(_LinearNode):
    """``adaptive_avg_pool2d``'s backward recorded under create_graph."""


class AdaptiveMaxPool2DBackward0(_LinearNode):
    """``adaptive_max_pool2d``."""


class AdaptiveMaxPool2DBackwardBackward0(_LinearNode):
    """``adaptive_max_pool2d``'s backward recorded under create_graph."""


_ADJOINT = {
    MaxPool2DWithIndicesBackward0: MaxPool2DWithIndicesBackwardBackward0,
    MaxPool2DWithIndicesBackwardBackward0: MaxPool2DWithIndicesBackward0,
    AvgPool2DBackward0: AvgPool2DBackwardBackward0,
    AvgPool2DBackwardBackward0: AvgPool2DBackward0,
    AdaptiveAvgPool2DBackward0: AdaptiveAvgPool2DBackwardBackward0,
    AdaptiveAvgPool2DBackwardBackward0: AdaptiveAvgPool2DBackward0,
    AdaptiveMaxPool2DBackward0: AdaptiveMaxPool2DBackwardBackward0,
    AdaptiveMaxPool2DBackwardBackward0: AdaptiveMaxPool2DBackward0,
}


# --- argument handling --------------------------------------------------------------------------------------
def _pair(v, name: str, default=None) -> tuple:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        if default is None:
            raise RuntimeError(f"{name} must either be a single int, or a tuple of two ints")
        return default
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        if len(v) != 2:
            raise RuntimeError(f"max_pool2d: {name} must either be a single int, or a tuple of two ints")
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def _pool_out(size: int, k: int, p: int, s: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape."""
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _as_4d(input: Tensor, name: str, avg: bool = False) -> np.ndarray:
    """The (N, C, H, W) view of a 3-D or 4-D pooling input, with torch's error for any other input (average
    pooling reads ``size(-3)`` first, so a 0-D/1-D/2-D input is torch's IndexError there)."""
    try:
        x = input._data
    except AttributeError:
        from .._args import not_a_tensor

        raise not_a_tensor(name, input=input) from None
    nd = x.ndim
    if avg and nd < 3:
        if nd == 0:
            raise IndexError("Dimension specified as -3 but tensor has no dimensions")
        wrap_dim(-3, nd)
    shape_text = f"[{', '.join(map(str, x.shape))}]"
    if nd not in (3, 4):
        if avg:
            raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                               f"but got:{shape_text}")
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    if 0 in x.shape[nd - 3:]:
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                           f"but got:{shape_text}")
    return x if nd == 4 else x[None]


def _check_output(x4: np.ndarray, oh: int, ow: int, unbatched: bool) -> None:
    if oh < 1 or ow < 1:
        c, h, w = x4.shape[1:]
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{oh}x{ow}). Output "
                           "size is too small")


_TORCH_DTYPE_NAMES = {"bool": "Bool", "int8": "Char", "uint8": "Byte", "int16": "Short", "int32": "Int",
                      "int64": "Long"}


def _check_kernel_dtype(x: np.ndarray, name: str, integers: tuple = ()) -> None:
    """torch's CPU pooling kernels exist for floating types and only the integer types in ``integers``."""
    label = _TORCH_DTYPE_NAMES.get(x.dtype.name)
    if label is not None and x.dtype.name not in integers:
        raise NotImplementedError(f'"{name}" not implemented for \'{label}\'')


# --- max pooling -----------------------------------------------------------------------------------------------
def _max_pool(input: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool):
    x = input._data
    x4 = _as_4d(input, "max_pool2d")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride", (kh, kw))
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    if sh <= 0 or sw <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {sh} dW: {sw}")
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}")
    if dh <= 0 or dw <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {dh} dilationW: {dw}")
    for p, k, d in ((ph, kh, dh), (pw, kw, dw)):
        if p < 0 or p > ((k - 1) * d + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation={d}")
    n, c, h, w = x4.shape
    oh = _pool_out(h, kh, ph, sh, dh, ceil_mode)
    ow = _pool_out(w, kw, pw, sw, dw, ceil_mode)
    _check_output(x4, oh, ow, x.ndim == 3)
    _check_kernel_dtype(x4, "max_pool2d", ("int8", "uint8", "int16", "int32", "int64"))
    rows, cols = (oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1
    lo = -np.inf if x4.dtype.kind == "f" else np.iinfo(x4.dtype).min
    if ph or pw or rows > h + ph or cols > w + pw:
        xp = np.full((n, c, max(rows, h + ph), max(cols, w + pw)), lo, dtype=x4.dtype)
        xp[:, :, ph:ph + h, pw:pw + w] = x4
    else:
        xp = x4
    # torch's kernel starts each window at its first in-bounds row and column (the padded start moved on by
    # whole dilation steps) with that element's index and a max of -inf, and takes an element only when it
    # is greater (or nan, the last nan winning); so a window of -inf values, or one that is all padding,
    # reports that start, even when it lies past the input (dilation larger than the input)
    starts_h, starts_w = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw
    skip_h = np.where(starts_h < 0, -(starts_h // dh) * dh, 0)
    skip_w = np.where(starts_w < 0, -(starts_w // dw) * dw, 0)
    off = np.broadcast_to(skip_h[:, None] * w + skip_w[None, :], (n, c, oh, ow)).astype(np.int64)
    best = np.full((n, c, oh, ow), lo, dtype=x4.dtype)
    for i in range(kh):
        for j in range(kw):
            v = xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            take = v > best
            if x4.dtype.kind == "f":
                take |= np.isnan(v)
            np.copyto(best, v, where=take)
            off[take] = i * dh * w + j * dw
    idx = off + (starts_h * w)[:, None] + starts_w[None, :]
    npix, cells = h * w, idx.shape[-2] * idx.shape[-1]  # explicit: reshape(.., -1) fails on an empty batch
    # an all-padding window past the input: torch's backward writes out of bounds (undefined behaviour);
    # here its gradient goes nowhere. One past the end of a row aliases the next row's element, as in torch.
    outside = (idx < 0) | (idx >= npix)
    if not outside.any():
        outside = None
    past = bool((starts_h + skip_h >= h).any() or (starts_w + skip_w >= w).any())  # windows that may alias
    overlap = sh < dh * (kh - 1) + 1 or sw < dw * (kw - 1) + 1 or past

    def scatter(g: np.ndarray) -> np.ndarray:
        flat = (idx.reshape(n * c, cells) + (np.arange(n * c) * npix)[:, None]).ravel()
        weights = g.reshape(-1)
        if outside is not None:
            keep = ~outside.reshape(-1)
            flat, weights = flat[keep], weights[keep]
        if overlap:
            out = np.bincount(flat, weights=weights, minlength=n * c * npix).astype(g.dtype, copy=False)
        else:
            out = np.zeros(n * c * npix, dtype=g.dtype)
            out[flat] = weights
        return out.reshape(x.shape)

    def gather(g: np.ndarray) -> np.ndarray:
        gf = g.reshape(n, c, npix)
        safe = idx if outside is None else np.where(outside, 0, idx)
        res = np.take_along_axis(gf, safe.reshape(n, c, cells), axis=2).reshape(idx.shape)
        if outside is not None:
            res = np.where(outside, 0, res)
        return res if x.ndim == 4 else res.reshape(idx.shape[1:])

    out = best if x.ndim == 4 else best[0]
    res = _linear(input, lambda _x: out, scatter, MaxPool2DWithIndicesBackward0)
    if res._grad_fn is not None:
        res._grad_fn.fwd = gather
    return res, Tensor._make(idx if x.ndim == 4 else idx[0])


@op(method=False, function=True)
def max_pool2d_with_indices(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False):
    """``max_pool2d`` returning ``(output, indices)``; indices are flat ``h * W + w`` positions per plane."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode)


@op(method=False, function=True)
def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over ``kernel_size`` windows of (N, C, H, W) or (C, H, W) input (``MaxPool2DWithIndicesBackward0``).

    Ties keep the first maximum and NaN wins, as in torch.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.nn.functional.max_pool2d(torch.arange(16.0).view(1, 1, 4, 4), 2).flatten().tolist()
        [5.0, 7.0, 13.0, 15.0]

    Raises:
        RuntimeError: torch's messages for a pad over half the kernel or an output size below 1.
    """
    out, idx = _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode)
    return (out, idx) if return_indices else out


# --- average pooling ----------------------------------------------------------------------------------------
def _window_bounds(size: int, k: int, s: int, p: int, out: int, count_include_pad: bool) -> np.ndarray:
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    pool = end - start
    if count_include_pad:
        return pool
    return np.minimum(end, size) - np.maximum(start, 0)


@op(method=False, function=True)
def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over ``kernel_size`` windows (``AvgPool2DBackward0``); padding counts unless ``count_include_pad``
    is False; ``divisor_override`` replaces the window size."""
    x = input._data
    x4 = _as_4d(input, "avg_pool2d", avg=True)
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride", (kh, kw))
    ph, pw = _pair(padding, "padding")
    for p, k in ((ph, kh), (pw, kw)):
        if p > k // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation=1")
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    n, c, h, w = x4.shape
    oh = _pool_out(h, kh, ph, sh, 1, ceil_mode)
    ow = _pool_out(w, kw, pw, sw, 1, ceil_mode)
    _check_output(x4, oh, ow, x.ndim == 3)
    _check_kernel_dtype(x4, "avg_pool2d", ("int64",))
    if divisor_override is not None:
        div = np.full((oh, ow), float(divisor_override))
    else:
        div = np.outer(_window_bounds(h, kh, sh, ph, oh, count_include_pad),
                       _window_bounds(w, kw, sw, pw, ow, count_include_pad)).astype(np.float64)
    rows, cols = max((oh - 1) * sh + kh, h + ph), max((ow - 1) * sw + kw, w + pw)
    dt = x4.dtype
    div = div.astype(dt)

    def windows_sum(xp: np.ndarray) -> np.ndarray:
        acc = None
        for i in range(kh):
            for j in range(kw):
                v = xp[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
                acc = v.copy() if acc is None else acc + v
        return acc

    def fwd(a: np.ndarray) -> np.ndarray:
        a4 = a if a.ndim == 4 else a[None]
        xp = np.zeros((n, c, rows, cols), dtype=a4.dtype)
        xp[:, :, ph:ph + h, pw:pw + w] = a4
        if a4.dtype.kind in "iu":  # torch divides integer sums in C (truncating toward zero)
            total, whole = windows_sum(xp), div.astype(np.int64)
            out = (np.sign(total) * (np.abs(total) // whole)).astype(a4.dtype)
        else:
            out = windows_sum(xp) / div
        return out if a.ndim == 4 else out[0]

    def adj(g: np.ndarray) -> np.ndarray:
        g4 = (g if g.ndim == 4 else g[None]) / div
        xp = np.zeros((n, c, rows, cols), dtype=g4.dtype)
        for i in range(kh):
            for j in range(kw):
                xp[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += g4
        out = np.ascontiguousarray(xp[:, :, ph:ph + h, pw:pw + w])
        return out if g.ndim == 4 else out[0]

    del x
    return _linear(input, fwd, adj, AvgPool2DBackward0)


# --- adaptive pooling -------------------------------------------------------------------------------------
def _adaptive_output_size(x: np.ndarray, output_size) -> list:
    """torch.nn.functional's ``_list_with_default``: the output sizes with None entries taken from the input
    (an int is not checked against the input's rank there)."""
    if not isinstance(output_size, (list, tuple)):
        return [int(output_size), int(output_size)]
    if x.ndim <= len(output_size):
        raise ValueError(f"Input dimension should be at least {len(output_size) + 1}")
    return [x.shape[x.ndim - len(output_size) + i] if v is None else int(v) for i, v in enumerate(output_size)]


def _check_adaptive_input(x: np.ndarray, name: str) -> None:
    """torch's checks of a 3-D/4-D adaptive pooling input: average pooling needs non-empty H and W, max
    pooling every non-batch dimension non-empty."""
    if x.ndim not in (3, 4):
        sep = ":" if name == "adaptive_max_pool2d" else ""
        raise RuntimeError(f"{name}(): Expected 3D or 4D tensor, but got{sep} [{', '.join(map(str, x.shape))}]")
    for d in range(x.ndim - 2 if name == "adaptive_avg_pool2d" else 1, x.ndim):
        if x.shape[d] == 0:
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but input "
                               f"has sizes [{', '.join(map(str, x.shape))}] with dimension {d} being empty")


def _bounds(size: int, out: int):
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)  # floor(i*H/oh), ceil((i+1)*H/oh)


def _avg_matrix(size: int, out: int, dt) -> np.ndarray:
    start, end = _bounds(size, out)
    cols = np.arange(size)
    inside = (cols[None, :] >= start[:, None]) & (cols[None, :] < end[:, None])
    return (inside / (end - start)[:, None]).astype(dt)


@op(method=False, function=True)
def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over the windows that split H and W into ``output_size`` parts (``AdaptiveAvgPool2DBackward0``;
    ``output_size=1`` is a ``mean`` over H and W, as in torch)."""
    x = input._data
    sizes = _adaptive_output_size(x, output_size)
    if min(sizes) < 0:
        raise RuntimeError("adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but "
                           f"received {{{', '.join(map(str, sizes))}}}")
    if len(sizes) != 2:
        raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
    oh, ow = sizes
    if oh == 1 and ow == 1:
        return input.mean(dim=(-1, -2), keepdim=True)
    _check_adaptive_input(x, "adaptive_avg_pool2d")
    _check_kernel_dtype(x, "adaptive_avg_pool2d")
    h, w = x.shape[-2:]
    ph, pw = _avg_matrix(h, oh, x.dtype), _avg_matrix(w, ow, x.dtype)

    def fwd(a: np.ndarray) -> np.ndarray:
        if not np.isfinite(a).all():  # a matmul would spread inf/nan into every window through 0 * inf
            return np.ascontiguousarray(_window_rows(pw, _window_rows(ph, a, -2), -1))
        return np.ascontiguousarray(np.matmul(np.matmul(ph, a), pw.T))

    def adj(g: np.ndarray) -> np.ndarray:
        for d in range(1, g.ndim):
            if g.shape[d] == 0:
                raise RuntimeError("adaptive_avg_pool2d_backward(): Expected grad_output to have non-zero size for "
                                   f"non-batch dimensions, but grad_output has sizes [{', '.join(map(str, g.shape))}]"
                                   f" with dimension {d} being empty")
        if not np.isfinite(g).all():
            return np.ascontiguousarray(_window_rows(pw.T, _window_rows(ph.T, g, -2), -1))
        return np.ascontiguousarray(np.matmul(np.matmul(ph.T, g), pw))

    return _linear(input, fwd, adj, AdaptiveAvgPool2DBackward0)


def _window_rows(m: np.ndarray, a: np.ndarray, axis: int) -> np.ndarray:
    """``m`` applied along ``axis`` of ``a`` (out[.., i, ..] = sum_j m[i, j] * a[.., j, ..]) summing only the
    nonzero weights of each row, so a non-finite element reaches only the windows that contain it."""
    moved = np.moveaxis(a, axis, -1)
    rows = []
    for weights in m:
        nz = np.flatnonzero(weights)
        rows.append((moved[..., nz] * weights[nz]).sum(-1, dtype=a.dtype) if nz.size
                    else np.zeros(moved.shape[:-1], a.dtype))
    out = np.stack(rows, -1) if rows else np.zeros((*moved.shape[:-1], 0), a.dtype)
    return np.moveaxis(out, -1, axis)


@op(method=False, function=True)
def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max over the windows that split H and W into ``output_size`` parts (``AdaptiveMaxPool2DBackward0``).

    The windows of one axis are gathered with fancy indexing into a padded array of the widest window
    (padded with -inf), so the max is one reduction.
    """
    x = input._data
    sizes = _adaptive_output_size(x, output_size)
    _check_adaptive_input(x, "adaptive_max_pool2d")
    if len(sizes) != 2:
        raise RuntimeError("adaptive_max_pool2d(): internal error: output_size.size() must be 2")
    oh, ow = sizes
    _check_kernel_dtype(x, "adaptive_max_pool2d")
    h, w = x.shape[-2:]
    if oh < 0 or ow < 0:
        out_shape = x.shape[:-2] + (oh, ow)
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(oh, ow) if oh >= 0 else oh}: "
                           f"[{', '.join(map(str, out_shape))}]")
    if oh == 0 or ow == 0:  # an empty output: nothing to take a max over
        empty = np.zeros(x.shape[:-2] + (oh, ow), dtype=x.dtype)
        res = _linear(input, lambda _x: empty, lambda g: np.zeros(x.shape, dtype=g.dtype),
                      AdaptiveMaxPool2DBackward0)
        if res._grad_fn is not None:
            res._grad_fn.fwd = lambda g: np.zeros(empty.shape, dtype=g.dtype)
        ind = Tensor._make(np.zeros(empty.shape, dtype=np.int64))
        return (res, ind) if return_indices else res
    x4 = x if x.ndim == 4 else x[None]
    n, c = x4.shape[:2]
    (sh, eh), (sw, ew) = _bounds(h, oh), _bounds(w, ow)
    kh, kw = int((eh - sh).max()), int((ew - sw).max())
    ri = sh[:, None] + np.arange(kh)[None, :]
    ci = sw[:, None] + np.arange(kw)[None, :]
    rvalid, cvalid = ri < eh[:, None], ci < ew[:, None]
    ri, ci = np.where(rvalid, ri, h), np.where(cvalid, ci, w)  # row h / column w hold -inf
    lo = -np.inf if x4.dtype.kind == "f" else np.iinfo(x4.dtype).min
    xp = np.full((n, c, h + 1, w + 1), lo, dtype=x4.dtype)
    xp[:, :, :h, :w] = x4
    win = xp[:, :, ri[:, :, None, None], ci[None, None, :, :]]  # (N, C, oh, kh, ow, kw)
    win = win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, kh * kw)
    if x4.dtype.kind == "f":
        nan = np.isnan(win)
        arg = np.where(nan.any(-1), nan.argmax(-1), win.argmax(-1))
    else:
        arg = win.argmax(-1)
    best = np.take_along_axis(win, arg[..., None], -1)[..., 0]
    r = np.take_along_axis(np.broadcast_to(ri[:, None, :, None], (oh, ow, kh, kw)).reshape(oh, ow, -1)[None, None],
                           arg[..., None], -1)[..., 0]
    cc = np.take_along_axis(np.broadcast_to(ci[None, :, None, :], (oh, ow, kh, kw)).reshape(oh, ow, -1)[None, None],
                            arg[..., None], -1)[..., 0]
    idx = (r * w + cc).astype(np.int64)
    npix, cells = h * w, idx.shape[-2] * idx.shape[-1]  # explicit: reshape(.., -1) fails on an empty batch

    def scatter(g: np.ndarray) -> np.ndarray:
        flat = (idx.reshape(n * c, cells) + (np.arange(n * c) * npix)[:, None]).ravel()
        out = np.bincount(flat, weights=g.reshape(-1), minlength=n * c * npix).astype(g.dtype, copy=False)
        return out.reshape(x.shape)

    def gather(g: np.ndarray) -> np.ndarray:
        res = np.take_along_axis(g.reshape(n, c, npix), idx.reshape(n, c, cells), axis=2).reshape(idx.shape)
        return res if x.ndim == 4 else res[0]

    out = best if x.ndim == 4 else best[0]
    res = _linear(input, lambda _x: out, scatter, AdaptiveMaxPool2DBackward0)
    if res._grad_fn is not None:
        res._grad_fn.fwd = gather
    ind = Tensor._make(idx if x.ndim == 4 else idx[0])
    return (res, ind) if return_indices else res

