"""Convolutions (``conv1d``, ``conv2d``, ``conv_transpose2d``) with torch's ``ConvolutionBackward0``.

Everything is computed on 4-D arrays (1-D convolutions get a height of 1, unbatched input a batch of 1) by
three numpy kernels that are bilinear in their two arguments and adjoint to each other:

- ``_forward(x, w)``: the convolution itself (im2col by ``sliding_window_view`` + one batched matmul);
- ``_input_grad(g, w)``: its adjoint in ``x`` (matmul + col2im over the kernel positions), which is also the
  transposed convolution;
- ``_weight_grad(x, g)``: its adjoint in ``w`` (im2col + matmul).

So each kernel's derivatives are the other kernels: the backward of a convolution is a transposed
convolution and a weight gradient, and under ``create_graph=True`` those are recorded as differentiable ops
again, which gives second (and higher) derivatives.
"""

from __future__ import annotations

from numpy.lib.stride_tricks import sliding_window_view

from ._core import NONE, Node, Tensor, np, op, record

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "convolution"]


# --- numpy kernels (4-D, groups, asymmetric padding pads = (top, bottom, left, right)) -----------------------
def _padded(x: np.ndarray, pads: tuple, rows: int, cols: int) -> np.ndarray:
    """``x`` zero-padded by ``pads`` and cut to ``rows x cols`` (the extent the windows touch)."""
    t, _b, lft, _r = pads
    h, w = x.shape[2], x.shape[3]
    hi_r, hi_c = max(rows - h - t, 0), max(cols - w - lft, 0)
    if t or lft or hi_r or hi_c:
        x = np.pad(x, ((0, 0), (0, 0), (t, hi_r), (lft, hi_c)))
    return x[:, :, :rows, :cols]


def _columns(x: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride, pads, dil, groups: int) -> np.ndarray:
    """im2col: ``(N, groups, C/groups*kh*kw, oh*ow)`` patches of ``x`` for an ``oh x ow`` output (the layout
    whose copy keeps numpy's inner loop on contiguous output rows)."""
    sh, sw = stride
    dh, dw = dil
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    xp = _padded(x, pads, (oh - 1) * sh + eh, (ow - 1) * sw + ew)
    win = sliding_window_view(xp, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    n, c = x.shape[0], x.shape[1]
    cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3))  # (N, C, kh, kw, oh, ow)
    return cols.reshape(n, groups, (c // groups) * kh * kw, oh * ow)


def _out_size(size: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _forward(x: np.ndarray, w: np.ndarray, stride, pads, dil, groups: int) -> np.ndarray:
    """The convolution of ``x`` (N, C, H, W) with ``w`` (O, C/groups, kh, kw): (N, O, oh, ow)."""
    n = x.shape[0]
    o, _cg, kh, kw = w.shape
    oh = _out_size(x.shape[2], kh, stride[0], pads[0], pads[1], dil[0])
    ow = _out_size(x.shape[3], kw, stride[1], pads[2], pads[3], dil[1])
    cols = _columns(x, kh, kw, oh, ow, stride, pads, dil, groups)
    out = np.matmul(w.reshape(groups, o // groups, -1), cols)  # (N, G, O/G, oh*ow): already NCHW
    return out.reshape(n, o, oh, ow)


def _input_grad(g: np.ndarray, w: np.ndarray, in_hw: tuple, stride, pads, dil, groups: int) -> np.ndarray:
    """The adjoint of ``_forward`` in ``x``: (N, C, H, W) from ``g`` (N, O, oh, ow) (transposed convolution)."""
    n, o, oh, ow = g.shape
    _o, cg, kh, kw = w.shape
    gm = g.reshape(n, groups, o // groups, oh * ow)
    wt = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)
    cols = np.matmul(wt, gm).reshape(n, groups * cg, kh, kw, oh, ow)
    h, wd = in_hw
    t, b, lft, r = pads
    sh, sw = stride
    dh, dw = dil
    rows = max(h + t + b, (oh - 1) * sh + dh * (kh - 1) + 1)
    ncols = max(wd + lft + r, (ow - 1) * sw + dw * (kw - 1) + 1)
    xp = np.zeros((n, groups * cg, rows, ncols), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw] += cols[:, :, i, j]
    if t or lft or rows != h or ncols != wd:
        return np.ascontiguousarray(xp[:, :, t:t + h, lft:lft + wd])
    return xp


def _weight_grad(x: np.ndarray, g: np.ndarray, kernel: tuple, stride, pads, dil, groups: int) -> np.ndarray:
    """The adjoint of ``_forward`` in ``w``: (O, C/groups, kh, kw) from ``x`` and ``g`` (N, O, oh, ow)."""
    n, o, oh, ow = g.shape
    kh, kw = kernel
    cols = _columns(x, kh, kw, oh, ow, stride, pads, dil, groups)  # (N, G, K, L)
    gm = g.reshape(n, groups, o // groups, oh * ow)
    # one GEMM per sample against the transposed patches (BLAS reads them transposed, no copy), then a sum
    return np.matmul(gm, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(o, x.shape[1] // groups, kh, kw)


# --- differentiable wrappers of the kernels (nodes) ----------------------------------------------------------
class _ConvNode(Node):
    __slots__ = ("kind", "stride", "pads", "dil", "groups", "in_hw", "kernel", "shapes")

    def backward(self, g):
        a, b = self.saved()
        if self.kind == "empty":  # an empty input or output: every gradient is zero
            zeros = [None if nxt[0] is None else np.zeros(shape, dtype=a._data.dtype if isinstance(a, Tensor)
                                                          else a.dtype)
                     for nxt, shape in zip(self._next, self.shapes)]
            if not isinstance(g, np.ndarray):
                zeros = [None if z is None else Tensor._make(z) for z in zeros]
            return tuple(zeros) + (None,) * (len(self._next) - len(zeros))
        xs, ws, os_ = self.shapes  # the caller's shapes (1-D / unbatched are reshaped to 4-D here)
        g4 = g.reshape(os_[0]) if tuple(g.shape) != os_[0] else g
        nxt = self._next
        ga = gb = gbias = None
        args = (self.stride, self.pads, self.dil, self.groups)
        a4 = a.reshape(xs[1]) if tuple(a.shape) != xs[1] else a
        b4 = b.reshape(ws[1]) if tuple(b.shape) != ws[1] else b
        if self.kind == "conv":  # y = F(x, w)
            if nxt[0][0] is not None:
                ga = _apply("input_grad", g4, b4, self.in_hw, self.kernel, *args)
            if nxt[1][0] is not None:
                gb = _apply("weight_grad", a4, g4, self.in_hw, self.kernel, *args)
        elif self.kind == "input_grad":  # y = I(g', w): dg' = F(g, w), dw = W(g, g')
            if nxt[0][0] is not None:
                ga = _apply("conv", g4, b4, self.in_hw, self.kernel, *args)
            if nxt[1][0] is not None:
                gb = _apply("weight_grad", g4, a4, self.in_hw, self.kernel, *args)
        else:  # y = W(x, g'): dx = I(g', g), dg' = F(x, g)
            if nxt[0][0] is not None:
                ga = _apply("input_grad", b4, g4, self.in_hw, self.kernel, *args)
            if nxt[1][0] is not None:
                gb = _apply("conv", a4, g4, self.in_hw, self.kernel, *args)
        # a transposed convolution's output padding beyond the stride (allowed below the dilation) adds
        # rows no window reaches: the convolution that maps back then overshoots, and is cut to size
        ga = _crop(ga, xs[1])
        gb = _crop(gb, ws[1])
        if ga is not None and tuple(ga.shape) != xs[0]:
            ga = ga.reshape(xs[0])
        if gb is not None and tuple(gb.shape) != ws[0]:
            gb = gb.reshape(ws[0])
        if len(nxt) > 2 and nxt[2][0] is not None:
            gbias = g4.sum(axis=(0, 2, 3)) if isinstance(g4, np.ndarray) else g4.sum(dim=(0, 2, 3))
        return (ga, gb) if len(nxt) == 2 else (ga, gb, gbias)


def _crop(v, shape4: tuple):
    if v is None or tuple(v.shape[2:]) == tuple(shape4[2:]):
        return v
    return v[:, :, :shape4[2], :shape4[3]]


class ConvolutionBackward0(_ConvNode):
    """The node of every convolution, transposed ones included (edges: input, weight, bias)."""


class ConvolutionBackwardBackward0(_ConvNode):
    """A convolution's weight gradient recorded under ``create_graph=True``."""


def _kernel(kind: str, a: np.ndarray, b: np.ndarray, in_hw, kernel, stride, pads, dil, groups) -> np.ndarray:
    if kind == "conv":
        return _forward(a, b, stride, pads, dil, groups)
    if kind == "input_grad":
        return _input_grad(a, b, in_hw, stride, pads, dil, groups)
    return _weight_grad(a, b, kernel, stride, pads, dil, groups)


def _record(kind, a: Tensor, b: Tensor, bias, in_hw, kernel, stride, pads, dil, groups, a_shape, b_shape):
    """Run kernel ``kind`` on the 4-D forms ``a_shape``/``b_shape`` of ``a``/``b`` and record its node."""
    a4 = a._data.reshape(a_shape)
    b4 = b._data.reshape(b_shape)
    out = _kernel(kind, a4, b4, in_hw, kernel, stride, pads, dil, groups)
    if bias is not None:
        out += bias._data.reshape(1, -1, 1, 1)
    return out


def _conv_record(kind, a: Tensor, b: Tensor, bias, out_shape, in_hw, kernel, stride, pads, dil, groups,
                 a4_shape, b4_shape):
    out = _record(kind, a, b, bias, in_hw, kernel, stride, pads, dil, groups, a4_shape, b4_shape)
    out4_shape = out.shape
    if out_shape is not None and out.shape != out_shape:
        out = out.reshape(out_shape)
    cls = ConvolutionBackwardBackward0 if kind == "weight_grad" else ConvolutionBackward0
    if bias is not None:
        res, node = record(out, cls, a, b, bias)
    else:
        res, node = record(out, cls, a, b)
        if node is not None and cls is ConvolutionBackward0:
            node._next = (*node._next, NONE)  # torch's (None, 0) edge for the absent bias
    if node is not None:
        node.kind, node.stride, node.pads, node.dil, node.groups = kind, stride, pads, dil, groups
        node.in_hw, node.kernel = in_hw, kernel
        node.shapes = ((a._data.shape, a4_shape), (b._data.shape, b4_shape), (out4_shape,))
        node.save(a, b)
    return res


def _apply(kind: str, a, b, in_hw, kernel, stride, pads, dil, groups):
    """One kernel on ndarrays, or recorded as a differentiable op on Tensors (create_graph)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return _kernel(kind, a, b, in_hw, kernel, stride, pads, dil, groups)
    a = a if isinstance(a, Tensor) else Tensor._make(a)
    b = b if isinstance(b, Tensor) else Tensor._make(b)
    if kind != "input_grad":  # in_hw is the spatial size of the convolution's input ("x" role)
        in_hw = tuple(a._data.shape[2:])
    return _conv_record(kind, a, b, None, None, in_hw, kernel, stride, pads, dil, groups,
                        tuple(a._data.shape), tuple(b._data.shape))


# --- argument handling and torch's checks -------------------------------------------------------------------
def _tuple(v, n: int, name: str) -> tuple:
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return tuple(int(v[0]) for _ in range(n))
        if len(v) != n:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match "
                               f"the convolution dimensions, but got {name}={list(v)}")
        return tuple(int(e) for e in v)
    return (int(v),) * n


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _check_dtypes(x: Tensor, w: Tensor, bias) -> None:
    """torch's CPU message for mixed dtypes (the input's dtype is the expected one)."""
    names = {np.dtype(np.float32): "Float", np.dtype(np.float64): "Double", np.dtype(np.float16): "Half"}
    for other in (w, bias):
        if other is not None and other._data.dtype != x._data.dtype:
            xd, od = (names.get(t._data.dtype, str(t._data.dtype)) for t in (x, other))
            raise RuntimeError(f"expected scalar type {xd} but found {od}")


_TORCH_DTYPE_NAMES = {"bool": "Bool", "int8": "Char", "uint8": "Byte", "int16": "Short", "int32": "Int"}


def _check_kernel_dtype(dtype: np.dtype, transposed: bool, dil: tuple) -> None:
    """torch's CPU kernels: bool has no convolution at all, and the integer types below int64 only the plain
    (non-transposed, non-dilated) one; the NotImplementedError names the kernel torch dispatched to."""
    name = _TORCH_DTYPE_NAMES.get(dtype.name)
    if name is None:
        return
    kernel = ("slow_conv_transpose2d_out_cpu" if transposed else
              "slow_conv_dilated<>" if any(d > 1 for d in dil) else "slow_conv2d_cpu")
    if name == "Bool" or kernel != "slow_conv2d_cpu":
        raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')


def _uses_onednn(dtype: np.dtype, x_shape: tuple, kernel: tuple, stride: tuple, dil: tuple, groups: int) -> bool:
    """Whether torch (one thread) runs this float32 convolution with oneDNN (ATen's ``use_mkldnn``), whose
    size errors differ from its own kernels'."""
    if dtype != np.float32:
        return False
    n, numel = x_shape[0], int(np.prod(x_shape))
    kh, kw = kernel
    worth_it = any(s != 1 for s in stride) or any(d != 1 for d in dil) or n >= 16 or kh != 1 or kw != 1
    return worth_it and (groups > 1 or (kh > 3 and kw > 3) or n > 1 or numel > 20480)


def convolution(input: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, dilation,
                transposed: bool, output_padding, groups: int, dims: int = 2, name: str = "conv2d") -> Tensor:
    """``torch.convolution``: an N-d (N = 1 or 2) convolution, or a transposed one (``ConvolutionBackward0``).

    Args:
        input: (N, C, *spatial) or unbatched (C, *spatial).
        weight: (O, C/groups, *kernel), or (C, O/groups, *kernel) when ``transposed``.
        bias: (O,) or None.
        stride, padding, dilation, output_padding: ints or tuples; ``padding`` may be 'same' or 'valid'.
        transposed: a transposed convolution (the adjoint of a convolution in its input).
        groups: split the channels into ``groups`` independent convolutions.

    Returns:
        The output tensor (batched like ``input``).

    Raises:
        RuntimeError: torch's messages for channel, bias, kernel-size and padding mismatches.
    """
    try:
        x, w = input._data, weight._data
    except AttributeError:
        from .._args import not_a_tensor

        raise not_a_tensor(name, input=input, weight=weight) from None
    if x.ndim not in (dims + 1, dims + 2):
        raise RuntimeError(f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {name}, but got "
                           f"input of size: {_shape_str(x.shape)}")
    if x.ndim == dims + 1:  # unbatched: torch adds the batch dim and removes it again (SqueezeBackward1)
        return convolution(input.unsqueeze(0), weight, bias, stride, padding, dilation, transposed, output_padding,
                           groups, dims, name).squeeze(0)
    xb_shape = x.shape
    if 0 in xb_shape[2:] and xb_shape[0] and xb_shape[1]:
        raise RuntimeError(f"Only zero batch or zero channel inputs are supported, but got input shape: "
                           f"{_shape_str(xb_shape)}")
    if w.ndim != dims + 2:
        raise RuntimeError(f"weight should have at least three dimensions; expected {dims + 2}-dimensional weight "
                           f"for {dims + 2}-dimensional input, but got {w.ndim}-dimensional weight of size "
                           f"{_shape_str(w.shape)}" if w.ndim < 3 else
                           f"Expected {dims + 2}-dimensional input for {dims + 2}-dimensional weight "
                           f"{_shape_str(w.shape)}, but got {len(xb_shape)}-dimensional input of size "
                           f"{_shape_str(xb_shape)} instead")
    _check_dtypes(input, weight, bias)
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    stride = _tuple(stride, dims, "stride")
    dil = _tuple(dilation, dims, "dilation")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dil):
        raise RuntimeError("dilation should be greater than zero")
    kernel = tuple(w.shape[2:])
    in_ch = xb_shape[1]
    if w.shape[0] < groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but "
                           f"got weight of size {_shape_str(w.shape)} instead")
    if w.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size {_shape_str(w.shape)} instead")
    if transposed:
        if in_ch != w.shape[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {_shape_str(w.shape)}, expected input"
                               f"{_shape_str(xb_shape)} to have {w.shape[0]} channels, but got {in_ch} channels "
                               f"instead")
        out_ch = w.shape[1] * groups
    else:
        if in_ch != w.shape[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {_shape_str(w.shape)}, expected input"
                               f"{_shape_str(xb_shape)} to have {w.shape[1] * groups} channels, but got {in_ch} "
                               f"channels instead")
        out_ch = w.shape[0]
    if bias is not None and (bias._data.ndim != 1 or bias._data.shape[0] != out_ch):
        raise RuntimeError(f"Given weight of size {_shape_str(w.shape)}, expected bias to be 1-dimensional with "
                           f"{out_ch} elements, but got bias of size {_shape_str(bias._data.shape)} instead")
    spatial = xb_shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads_nd = [(0, 0)] * dims
        elif padding == "same":
            if transposed:
                raise RuntimeError("padding='same' is not supported for transposed convolutions")
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            totals = [d * (k - 1) for k, d in zip(kernel, dil)]
            if any(t % 2 for t in totals):  # torch pads the odd extra on the far side first (ConstantPadNd)
                from .nnops import constant_pad_nd

                extra = []
                for t in reversed(totals):
                    extra += [0, t % 2]
                return convolution(constant_pad_nd(input, extra, 0), weight, bias, stride,
                                   [t // 2 for t in totals], dilation, transposed, output_padding, groups, dims, name)
            pads_nd = [(t // 2, t // 2) for t in totals]
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        p = _tuple(padding, dims, "padding")
        if any(v < 0 for v in p):
            raise RuntimeError("negative padding is not supported")
        pads_nd = [(v, v) for v in p]
    if not transposed:
        padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads_nd)]
        eff = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
        if any(pv < e for pv, e in zip(padded, eff)):
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel "
                               f"size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than actual input "
                               f"size")
    if transposed and w.shape[1] == 0:  # no output channels: torch's kernels refuse the empty weight
        if xb_shape[0] == 0:
            raise IndexError("select(): index 0 out of range for tensor of size [0] at dimension 0")
        w4 = (w.shape[0], 0, 1, *w.shape[2:]) if dims == 1 else w.shape
        raise RuntimeError(f"non-empty 2D or 4D weight tensor expected, but got: [{', '.join(map(str, w4))}]")
    if xb_shape[0] and in_ch:  # an empty batch or no channels take torch's empty path, which has every dtype
        _check_kernel_dtype(x.dtype, transposed, dil)
    # everything below is 4-D: a 1-D convolution is a 2-D one of height 1
    if dims == 1:
        stride4, dil4, kernel4 = (1, stride[0]), (1, dil[0]), (1, kernel[0])
        pads = (0, 0, *pads_nd[0])
        spatial4 = (1, spatial[0])
    else:
        stride4, dil4, kernel4 = stride, dil, kernel
        pads = (*pads_nd[0], *pads_nd[1])
        spatial4 = tuple(spatial)
    x4_shape = (xb_shape[0], in_ch, *spatial4)
    w4_shape = (w.shape[0], w.shape[1], *kernel4)
    if not transposed:
        oh = _out_size(spatial4[0], kernel4[0], stride4[0], pads[0], pads[1], dil4[0])
        ow = _out_size(spatial4[1], kernel4[1], stride4[1], pads[2], pads[3], dil4[1])
        kind, in_hw = "conv", spatial4
    else:
        op_ = _tuple(output_padding, dims, "output_padding")
        if any(o >= s and o >= d for o, s, d in zip(op_, stride, dil)):
            raise RuntimeError("output padding must be smaller than either stride or dilation, but got "
                               f"output_padding={list(op_)}, stride={list(stride)}, dilation={list(dil)}")
        op4 = (0, op_[0]) if dims == 1 else op_
        oh = (spatial4[0] - 1) * stride4[0] - pads[0] - pads[1] + dil4[0] * (kernel4[0] - 1) + op4[0] + 1
        ow = (spatial4[1] - 1) * stride4[1] - pads[2] - pads[3] + dil4[1] * (kernel4[1] - 1) + op4[1] + 1
        onednn = _uses_onednn(x.dtype, xb_shape, kernel4, stride4, dil4, groups)
        if onednn and (oh < 0 or ow < 0):  # torch's oneDNN path allows an output size of 0
            raise RuntimeError("could not construct a memory descriptor using a format tag")
        if not onednn and xb_shape[0] == 0:  # torch skips the size check for an empty batch...
            if oh < 0 or ow < 0:  # ...and builds the output by a reshape, whose errors these are
                raise _reshape_error([0, out_ch, oh, ow])  # 4-D also for conv_transpose1d (height 1)
        elif not onednn and (oh <= 0 or ow <= 0):
            raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, spatial4))}). Calculated output "
                               f"size per channel: ({oh} x {ow}). Output size is too small")
        kind, in_hw = "input_grad", (oh, ow)
    n = xb_shape[0]
    if not transposed and in_ch == 0:  # torch's empty backend: no input channels give no output channels
        out_ch = 0
    out4 = (n, out_ch, oh, ow)
    out_shape = (n, out_ch, ow) if dims == 1 else out4
    if 0 in out4 or 0 in x4_shape:
        return _empty_conv(input, weight, bias, out_shape)
    return _conv_record(kind, input, weight, bias, out_shape, in_hw, kernel4, stride4, pads, dil4, groups,
                        x4_shape, w4_shape)


def _reshape_error(shape: list) -> RuntimeError:
    """torch's error for reshaping 0 elements into ``shape`` (which holds a negative size)."""
    shown = ", ".join(map(str, shape))
    if shape.count(-1) > 1:
        return RuntimeError("only one dimension can be inferred")
    bad = [(i, v) for i, v in enumerate(shape) if v < -1]
    if bad:
        return RuntimeError(f"invalid shape dimension {bad[0][1]} at index {bad[0][0]} of shape [{shown}]")
    return RuntimeError(f"cannot reshape tensor of 0 elements into shape [{shown}] because the unspecified "
                        f"dimension size -1 can be any value and is ambiguous")


def _empty_conv(input: Tensor, weight: Tensor, bias, out_shape: tuple) -> Tensor:
    """A convolution whose input or output has no elements (zero batch, channels or output size)."""
    out = np.zeros(out_shape, dtype=input._data.dtype)
    ins = (input, weight) if bias is None else (input, weight, bias)
    res, node = record(out, ConvolutionBackward0, *ins)
    if node is not None:
        node.kind, node.shapes = "empty", tuple(t._data.shape for t in ins)
        node.save(input, weight)
        if bias is None:
            node._next = (*node._next, NONE)
    return res


@op(method=False, function=True)
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution of (N, C, H, W) or (C, H, W) input (``ConvolutionBackward0``).

    Example:
        >>> import gradlens.engine as torch
        >>> x = torch.ones(1, 1, 4, 4)
        >>> torch.nn.functional.conv2d(x, torch.ones(2, 1, 3, 3)).shape
        torch.Size([1, 2, 2, 2])
    """
    return convolution(input, weight, bias, stride, padding, dilation, False, 0, groups, 2, "conv2d")


@op(method=False, function=True)
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) or (C, L) input (``ConvolutionBackward0``)."""
    return convolution(input, weight, bias, stride, padding, dilation, False, 0, groups, 1, "conv1d")


@op(method=False, function=True)
def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution; ``weight`` is (C_in, C_out/groups, kH, kW) (``ConvolutionBackward0``)."""
    return convolution(input, weight, bias, stride, padding, dilation, True, output_padding, groups, 2,
                       "conv_transpose2d")


@op(method=False, function=True)
def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-D transposed convolution; ``weight`` is (C_in, C_out/groups, kL) (``ConvolutionBackward0``)."""
    return convolution(input, weight, bias, stride, padding, dilation, True, output_padding, groups, 1,
                       "conv_transpose1d")
