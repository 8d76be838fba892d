"""Indexing: ``Tensor.__getitem__`` / ``__setitem__`` with torch's semantics, and the index ops
(index_select, gather, scatter, scatter_add, masked_select, take_along_dim, nonzero).

torch applies an index in two phases and so does this module: first the basic part, dim by dim (an int is
a ``select``, a slice a ``slice``, ``None`` an ``unsqueeze``; full slices inside a tuple are skipped), each
step a view with its own node (``X[0, 1:3]`` is ``SliceBackward0 -> SelectBackward0``); then, if any
integer or bool tensors remain, one ``IndexBackward0`` gathers with them (numpy's rule places the result
dims: together in place when the index tensors are adjacent, else in front). Its backward scatter-adds, so
repeated indices accumulate.

Assignment writes in place: it bumps the version counter shared with views, and when autograd must track
it the tensor's history gets torch's ``CopySlices`` (basic index), ``IndexPutBackward0`` (advanced) or
``CopyBackwards`` (the whole tensor). A tensor value is first viewed and expanded to the region as torch
does (``ViewBackward0`` / ``ExpandBackward0`` in the graph). Assigning into a view rewrites its base's
history through the in-place ops' protocol (``inplace._rebase``), as torch does.
"""

from __future__ import annotations

from ..autograd.grad_mode import STATE as GRAD_MODE
from ..tensor import _LEAF_INPLACE, _VIEW_LEAF_INPLACE, check_inplace
from ._core import NONE, Node, Tensor, not_a_tensor, np, op, record, sum_to, wrap_dim
from .shape import _Embed, _nd, embed, expand, fresh, reshape, select_view, slice_view, unsqueeze, view_of

__all__ = ["index_select", "index_add", "gather", "scatter", "scatter_add", "masked_select",
           "take_along_dim", "nonzero", "argwhere"]

_BAD_INDEX = ("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid "
              "indices")


# --- parsing an index ---------------------------------------------------------------------------------
def _as_index_array(obj) -> np.ndarray:
    """An integer or bool index array from a Tensor, ndarray or (nested) list."""
    arr = obj._data if isinstance(obj, Tensor) else np.asarray(obj)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iu":
        return arr
    if arr.size == 0 and not isinstance(obj, (Tensor, np.ndarray)):
        return arr.astype(np.int64)
    raise IndexError("tensors used as indices must be long, int, byte or bool tensors")


def _classify(item):
    """``(kind, value)`` for one entry of an index tuple."""
    t = type(item)
    if t is int:
        return "int", item
    if t is slice:
        return "slice", item
    if item is None:
        return "none", None
    if item is Ellipsis:
        return "ellipsis", None
    if isinstance(item, slice):
        return "slice", item
    if isinstance(item, bool) or isinstance(item, np.bool_):
        return "bool", bool(item)
    if isinstance(item, (int, np.integer)):
        return "int", int(item)
    if isinstance(item, range):
        return "array", np.arange(item.start, item.stop, item.step)
    if isinstance(item, (Tensor, np.ndarray, list, tuple)):
        arr = _as_index_array(item)
        if arr.ndim == 0:
            if arr.dtype.kind == "b":
                return "bool", bool(arr)
            return "int", int(arr)
        if arr.dtype == np.uint8 or arr.dtype.kind == "b":
            return "mask", arr.astype(bool, copy=False)
        return "array", arr
    if hasattr(item, "__index__") and not isinstance(item, float):
        return "int", int(item.__index__())
    if isinstance(item, (str, bytes)):  # torch reads a string as data of an index tensor: a TypeError
        raise TypeError(f"{_BAD_INDEX} (got {type(item).__name__})")
    raise IndexError(f"{_BAD_INDEX} (got {type(item).__name__})")


def _as_tuple(key) -> tuple[tuple, bool]:
    """The index as a tuple, and whether it came as one (torch's legacy rule for lists of indices)."""
    if isinstance(key, tuple):
        return key, True
    if isinstance(key, list) and len(key) < 32 and any(
            isinstance(k, (list, tuple, slice, Tensor, np.ndarray)) or k is None or k is Ellipsis
            for k in key):
        return tuple(key), True
    return (key,), False


def _is_full(s: slice, size: int) -> bool:
    """Whether torch skips this slice inside an index tuple: literal start 0, stop >= size, step 1."""
    return (s.step is None or s.step == 1) and (s.start is None or s.start == 0) \
        and (s.stop is None or s.stop >= size)


def _slice_bounds(s: slice, size: int) -> tuple[int, int, int]:
    step = 1 if s.step is None else int(s.step)
    if step <= 0:
        raise ValueError("step must be greater than zero")
    start, stop, _ = slice(s.start, s.stop, 1).indices(size)
    return start, max(stop, start), step


def _parse(shape: tuple, key):
    """Translate ``key`` into basic steps and an advanced key for the result of the steps.

    Returns ``(steps, adv, final_shape)``: ``steps`` is a list of ``("select", dim, i)``,
    ``("slice", dim, start, stop, step)`` and ``("unsqueeze", dim)``; ``adv`` is None or a numpy index
    tuple (int arrays and full slices) to apply to the result of the steps.
    """
    items, was_tuple = _as_tuple(key)
    if not was_tuple and type(key) is slice and key.step is not None and key.step <= 0:
        raise ValueError("step must be greater than zero")  # torch checks a lone slice's step first
    kinds = [_classify(k) for k in items]
    ndim = len(shape)
    specified = 0
    for kind, val in kinds:
        if kind == "int" or kind == "slice" or kind == "array":
            specified += 1
        elif kind == "mask":
            specified += val.ndim
    if specified > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    cur = list(shape)
    steps: list = []
    arrays: list = []  # (dim in the result, array, is_mask)
    dim = real = 0
    seen_ellipsis = False
    for kind, val in kinds:
        if kind == "int":
            size = cur[dim]
            if not -size <= val < size:
                raise IndexError(f"index {val} is out of bounds for dimension {real} with size {size}")
            steps.append(("select", dim, val + size if val < 0 else val))
            del cur[dim]
            real += 1
        elif kind == "slice":
            size = cur[dim]
            if was_tuple and _is_full(val, size):
                dim += 1
                real += 1
                continue
            start, stop, step = _slice_bounds(val, size)
            steps.append(("slice", dim, start, stop, step))
            cur[dim] = len(range(start, stop, step))
            dim += 1
            real += 1
        elif kind == "none":
            steps.append(("unsqueeze", dim))
            cur.insert(dim, 1)
            dim += 1
        elif kind == "ellipsis":
            if not seen_ellipsis:
                dim += ndim - specified
                real += ndim - specified
                seen_ellipsis = True
        elif kind == "bool":
            steps.append(("unsqueeze", dim))
            cur.insert(dim, 1)
            arrays.append((dim, np.array([val]), True))
            dim += 1
        elif kind == "mask":
            arrays.append((dim, val, True))
            dim += val.ndim
            real += val.ndim
        else:
            arrays.append((dim, val, False))
            dim += 1
            real += 1
    if not arrays:
        return steps, None, tuple(cur)
    adv: list = [slice(None)] * len(cur)
    for d, arr, is_mask in arrays:
        if is_mask:
            for j, s in enumerate(arr.shape):
                if cur[d + j] != s:
                    raise IndexError(f"The shape of the mask {list(arr.shape)} at index {j} does not match "
                                     f"the shape of the indexed tensor {list(cur)} at index {d + j}")
            adv[d:d + arr.ndim] = np.nonzero(arr)
        else:
            adv[d] = arr
    while adv and isinstance(adv[-1], slice):
        adv.pop()
    return steps, tuple(adv), tuple(cur)


def _apply_steps(x, steps):
    """Apply basic steps to an ndarray (numpy views) or a Tensor (recorded views)."""
    if isinstance(x, np.ndarray):
        for s in steps:
            kind = s[0]
            if kind == "select":
                x = x[(slice(None),) * s[1] + (s[2], Ellipsis)]
            elif kind == "slice":
                x = x[(slice(None),) * s[1] + (slice(s[2], s[3], s[4]),)]
            else:
                x = x[(slice(None),) * s[1] + (None,)]
        return x
    for s in steps:
        kind = s[0]
        if kind == "select":
            x = select_view(x, s[1], s[2])
        elif kind == "slice":
            x = slice_view(x, s[1], s[2], s[3], s[4])
        else:
            x = unsqueeze(x, s[1])
    return x


# --- getitem ------------------------------------------------------------------------------------------
class AliasBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (g,)


class IndexPutImplBackward0(_Embed):
    """The recorded gradient of an advanced index (``create_graph``): scatter-add; backward gathers."""

    __slots__ = ()
    _zeros_edge = True


class IndexBackward0(Node):
    __slots__ = ("shape", "key")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (embed(g, self.shape, self.key, IndexPutImplBackward0, accumulate=True),)


def _bounds_error(shape: tuple, key: tuple) -> IndexError:
    """torch's message for the first out-of-range entry of an advanced ``key`` (numpy found one)."""
    for d, k in enumerate(key):
        if isinstance(k, np.ndarray) and k.size:
            size = shape[d]
            hi, lo = int(k.max()), int(k.min())
            if hi >= size or lo < -size:
                bad = hi if hi >= size else lo
                return IndexError(f"index {bad} is out of bounds for dimension {d} with size {size}")
    shapes = ", ".join(str(list(k.shape)) for k in key if isinstance(k, np.ndarray))
    return IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                      f"{shapes}")


def _take(arr: np.ndarray, key: tuple) -> np.ndarray:
    try:
        return arr[key]
    except IndexError:
        raise _bounds_error(arr.shape, key) from None


def _advanced(t: Tensor, key: tuple) -> Tensor:
    arr = t._data
    res, node = record(_take(arr, key), IndexBackward0, t)
    if node is not None:
        node.shape, node.key = arr.shape, key
    return res


def _alias(t: Tensor) -> Tensor:
    res, _node = view_of(t._data.view(), AliasBackward0, t)
    return res


def _basic_tuple(self: Tensor, key: tuple):
    """``self[key]`` for a tuple of ints and slices only (the common case), else None."""
    shape = self._data.shape
    specified = 0
    ellipsis = False
    for k in key:
        tk = type(k)
        if tk is int or tk is slice:
            specified += 1
        elif k is Ellipsis:
            if ellipsis:
                return None
            ellipsis = True
        elif k is not None:
            return None
    if specified > len(shape):
        return None
    out = self
    dim = real = 0
    for k in key:
        tk = type(k)
        if tk is int:
            size = shape[real]
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for dimension {real} with size {size}")
            out = select_view(out, dim, k + size if k < 0 else k)
            real += 1
        elif tk is slice:
            size = shape[real]
            if not _is_full(k, size):
                start, stop, step = _slice_bounds(k, size)
                out = slice_view(out, dim, start, stop, step)
            dim += 1
            real += 1
        elif k is None:
            out = unsqueeze(out, dim)
            dim += 1
        else:
            skip = len(shape) - specified
            dim += skip
            real += skip
    return _alias(self) if out is self else out


def _getitem(self: Tensor, key) -> Tensor:
    """``Tensor.__getitem__``: torch's indexing (ints, slices with steps, None, Ellipsis, integer and bool
    tensors / arrays / lists, and mixes of them).

    Args:
        key: the index.

    Returns:
        A view for basic indexes (a chain of ``SelectBackward0`` / ``SliceBackward0`` /
        ``UnsqueezeBackward0``, or ``AliasBackward0`` when nothing changes), a copy (``IndexBackward0``)
        when integer or bool tensors take part.

    Raises:
        IndexError: with torch's messages for out-of-range indices, too many indices, mask shapes and
            unsupported index types.

    Example:
        >>> import gradlens.engine as torch
        >>> x = torch.arange(12.).view(3, 4).requires_grad_()
        >>> x[0, 1:3].grad_fn.name(), x[[0, 0]].grad_fn.name()
        ('SliceBackward0', 'IndexBackward0')
    """
    # fast paths for the common single-entry forms
    if type(key) is int:
        arr = self._data
        if arr.ndim == 0:
            raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                             "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
        size = arr.shape[0]
        if not -size <= key < size:
            raise IndexError(f"index {key} is out of bounds for dimension 0 with size {size}")
        return select_view(self, 0, key + size if key < 0 else key)
    if type(key) is slice:
        arr = self._data
        if key.step is not None and key.step <= 0:
            raise ValueError("step must be greater than zero")
        if arr.ndim == 0:
            raise IndexError("slice() cannot be applied to a 0-dim tensor.")
        start, stop, step = _slice_bounds(key, arr.shape[0])
        return slice_view(self, 0, start, stop, step)
    if key is None:
        return unsqueeze(self, 0)
    if key is Ellipsis:
        return _alias(self)
    if type(key) is tuple:
        out = _basic_tuple(self, key)
        if out is not None:
            return out
    elif type(key) is Tensor and key._data.ndim and key._data.dtype.kind in "iu" \
            and key._data.dtype != np.uint8 and self._data.ndim:
        return _advanced(self, (key._data,))
    if self._data.ndim == 0 and isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                         "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
    steps, adv, _shape = _parse(self._data.shape, key)
    out = _apply_steps(self, steps)
    if adv is not None:
        return _advanced(out, adv)
    if out is self:
        return _alias(self)
    return out


# --- setitem ------------------------------------------------------------------------------------------
class CopySlices(Node):
    """torch's node for an assignment through a basic index: the old values get ``g`` with the written
    region zeroed, the value gets ``g`` at the region (summed to its shape)."""

    __slots__ = ("steps", "adv", "value_shape", "value_dtype")
    _saves = False

    def name(self) -> str:
        return "torch::autograd::CopySlices"

    def backward(self, g):
        g = _nd(g)
        nxt = self._next
        g_self = g_value = None
        if nxt[0][0] is not None:
            if isinstance(g, np.ndarray):
                g_self = np.array(g, copy=True)
                region = _apply_steps(g_self, self.steps)
                if self.adv is None:
                    region[...] = 0
                else:
                    region[self.adv] = 0
            else:
                mask = np.ones(g.shape, dtype=g._data.dtype)
                region = _apply_steps(mask, self.steps)
                if self.adv is None:
                    region[...] = 0
                else:
                    region[self.adv] = 0
                g_self = g * mask
        if nxt[1][0] is not None:
            region = _apply_steps(g, self.steps)
            if self.adv is not None:
                region = region[self.adv]  # in range: the forward checked it
            g_value = _nd(_to_value_shape(region, self.value_shape))
            if isinstance(g_value, np.ndarray):
                g_value = g_value.astype(self.value_dtype, copy=False)
            elif g_value._data.dtype != self.value_dtype:
                g_value = g_value.to(self.value_dtype)
        return g_self, g_value


class IndexPutBackward0(CopySlices):
    __slots__ = ()

    def name(self) -> str:
        return "IndexPutBackward0"


class CopyBackwards(CopySlices):
    """torch's node for an assignment to the whole tensor (``x[...] = v``, ``x[:] = v``): ``copy_``."""

    __slots__ = ()

    def name(self) -> str:
        return "torch::autograd::CopyBackwards"


class FillBackward3(CopySlices):
    """torch's node for ``x[...] = v`` / ``x[:] = v`` with a 0-d tensor ``v`` and a non-0-d ``x``
    (torch fills with the value instead of copying it)."""

    __slots__ = ()

    def name(self) -> str:
        return "FillBackward3"


def _to_value_shape(g, shape: tuple):
    """Sum a region gradient down to the value's shape (which may carry extra leading 1s)."""
    stripped = tuple(shape)
    while len(stripped) > len(g.shape) and stripped[0] == 1:
        stripped = stripped[1:]
    g = sum_to(g, stripped)
    if tuple(g.shape) != tuple(shape):
        g = g.reshape(shape)
    return g


def _strip_leading_ones(shape: tuple) -> tuple:
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return tuple(shape[i:])


def _value_for(region_shape: tuple, value: Tensor, advanced: bool) -> Tensor:
    """The value as torch's setitem feeds it to the copy: leading 1s viewed away, then (basic index only)
    expanded to the region's shape; each step is a recorded view when the value requires grad."""
    from .shape import _expand, _view

    shape = value._data.shape
    if advanced:
        stripped = _strip_leading_ones(shape)
        return _view(value, stripped) if stripped != shape else value
    if shape == region_shape or not shape:  # torch fills with a 0-d value directly
        return value
    value = _view(value, _strip_leading_ones(shape))
    if value._data.shape != region_shape:
        value = _expand(value, region_shape)
    return value


def _setitem(self: Tensor, key, value) -> None:
    """``Tensor.__setitem__``: write ``value`` (a tensor, array or number, broadcast) at ``key`` in place.

    The version counter (shared with views) is bumped. When autograd tracks the write, the tensor's
    history becomes ``CopySlices`` (basic index), ``IndexPutBackward0`` (advanced index) or
    ``CopyBackwards`` (the whole tensor); a view's base is rewritten as torch does.

    Raises:
        RuntimeError: torch's leaf / view-of-leaf errors while grad mode is on, and shape mismatches.
        IndexError: as ``__getitem__``.

    Example:
        >>> import gradlens.engine as torch
        >>> y = torch.ones(2, 3, requires_grad=True) * 2
        >>> y[0] = 0.
        >>> y.grad_fn.name(), y._version
        ('torch::autograd::CopySlices', 1)
    """
    if not isinstance(value, (Tensor, bool, int, float, complex, np.generic, np.ndarray)):
        raise TypeError(f"can't assign a {type(value).__name__} to a {self.dtype!r} tensor; expected a "
                        "tensor or a number")
    if key is True or key is False:
        if not key:
            return  # torch ignores a lone False
        key = None  # a lone True writes through an unsqueezed view of the whole tensor, as None does
    steps, adv, shape = _parse(self._data.shape, key)
    if self._creation_meta is not None and GRAD_MODE.enabled:  # torch writes through a view of self
        check_inplace(self, (value,), None if _whole(key, self._data.shape) or not steps else
                      _STEP_VIEW[steps[-1][0]])
    fresh(self)
    if GRAD_MODE.enabled and self._rg and self._grad_fn is None:
        raise RuntimeError(_VIEW_LEAF_INPLACE if adv is None else _LEAF_INPLACE)
    check_inplace(self)
    region = _apply_steps(self._data, steps)
    if adv is None and not region.flags.writeable and not any(
            st == 0 and n > 1 for st, n in zip(region.strides, region.shape)):
        # a part of an expanded view that does not overlap itself (``y.expand(2, 3)[0] = 1.``): torch writes it
        from .inplace import writable_alias

        region = _apply_steps(writable_alias(self), steps)
    is_tensor = isinstance(value, Tensor)
    if is_tensor:
        value = _value_for(region.shape, value, adv is not None)
    vdata = value._data if is_tensor else value
    if is_tensor and adv is not None and vdata.dtype != region.dtype and _index_put_path(key, vdata.size):
        _check_index_put_dtype(region, adv, vdata)
    track = GRAD_MODE.enabled and (self._rg or (is_tensor and value._rg))
    view = track and _is_view(self)
    if view:
        from .inplace import _view_geometry

        _view_geometry(self)  # refuses views it cannot rebase before anything is written
    try:
        if adv is None:
            region[...] = vdata
        else:
            region[adv] = vdata
    except IndexError:
        raise _bounds_error(region.shape, adv) from None
    except ValueError as exc:
        target = list(region.shape) if adv is None else list(_take(region, adv).shape)
        if "read-only" in str(exc) and 0 in target and _broadcasts(vdata, target):
            pass  # nothing to write: torch skips its overlap check (an expanded view of an empty tensor)
        elif "read-only" in str(exc):
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor "
                               "refers to a single memory location. Please clone() the tensor before "
                               "performing the operation.") from None
        else:
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(np.shape(vdata))} cannot be "
                               f"broadcast to indexing result of shape {target}") from None
    except TypeError:
        raise TypeError(f"can't assign a {type(value).__name__} to a {self.dtype!r} tensor") from None
    self._vbox[0] += 1
    if not track:
        return
    if not _whole(key, self._data.shape):  # torch writes through a view of self: CopySlices
        cls = CopySlices
    elif adv is not None:
        cls = IndexPutBackward0
    else:  # torch skips full-range slices in setitem and fills with a 0-d (or Python scalar) value
        cls = FillBackward3 if (not is_tensor or value._data.ndim == 0) and region.ndim else CopyBackwards
    node = cls((self._edge(), value._edge() if is_tensor else NONE))
    node.steps, node.adv = steps, adv
    if is_tensor:
        node.value_shape, node.value_dtype = value._data.shape, value._data.dtype
    node._omd = (self._data.shape, self._data.dtype)
    # as every in-place op: the tensor becomes the node's output; a view's base gets CopySlices around the
    # node and the view AsStridedBackward0; views made earlier are regenerated when next used
    from .inplace import _rebase

    _rebase(self, node)


def _index_put_path(key, value_numel: int) -> bool:
    """Whether torch's setitem writes with ``index_put_`` (which wants the value's dtype to match): an
    index tensor (a 0-d bool tensor counts, as torch turns it into one), several masks, or one mask with
    a value of more than one element. One mask and a one-element value take ``masked_fill_``; Python bools
    are views, not indices."""
    masks = 0
    for item in _as_tuple(key)[0]:
        kind, _val = _classify(item)
        if kind == "array" or (kind == "bool" and not isinstance(item, (bool, np.bool_))):
            return True
        if kind == "mask":
            masks += 1
    return masks > 1 or (masks == 1 and value_numel != 1)


def _check_index_put_dtype(region: np.ndarray, adv: tuple, vdata: np.ndarray) -> None:
    """torch's dtype check of ``index_put_``: after the index and value shape checks, before the bounds check."""
    try:
        np.broadcast_shapes(*[a.shape for a in adv if isinstance(a, np.ndarray)])
    except ValueError:
        return  # the write raises torch's IndexError for indices that do not broadcast together
    try:
        target = region[adv].shape
    except IndexError:
        target = None
    if target is not None:
        try:
            np.broadcast_shapes(vdata.shape, target)
        except ValueError:
            return  # the write raises torch's shape error
    from .linalg import _SCALAR_NAMES

    names = [_SCALAR_NAMES.get(str(d), str(d)) for d in (region.dtype, vdata.dtype)]
    raise RuntimeError(f"Index put requires the source and destination dtypes match, got {names[0]} for the "
                       f"destination and {names[1]} for the source.")


_STEP_VIEW = {"select": "Select", "slice": "Slice", "unsqueeze": "Unsqueeze"}  # torch's view per basic step


def _whole(key, shape: tuple) -> bool:
    """Whether torch's setitem writes ``key`` into the tensor itself rather than into a view of it: the
    key's basic entries are all full-range slices (literal start 0 or None, stop >= size, step 1) or
    Ellipsis; advanced entries (int arrays, masks) are allowed."""
    kinds = [_classify(k) for k in (key if type(key) is tuple else (key,))]
    width = {"slice": 1, "array": 1}
    dim = 0
    for i, (kind, val) in enumerate(kinds):
        if kind == "ellipsis":
            rest = sum(v.ndim if k == "mask" else width.get(k, 0) for k, v in kinds[i + 1:])
            dim = len(shape) - rest
        elif kind == "slice":
            if dim >= len(shape) or not _is_full(val, shape[dim]):
                return False
            dim += 1
        elif kind == "array":
            dim += 1
        elif kind == "mask":
            dim += val.ndim
        else:  # int, None, bool: a view
            return False
    return True


def _is_view(t: Tensor) -> bool:
    """A differentiable view (as the in-place ops define it): not a ``detach()`` / ``.data`` alias."""
    base = t._base
    return base is not None and t._data is not base._data and (t._rg or not base._rg)


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


# --- index ops ----------------------------------------------------------------------------------------
class IndexAddBackward0(IndexPutImplBackward0):
    """``index_add``'s node, also the recorded gradient of ``index_select`` (then its first edge is None)."""

    __slots__ = ("dim", "index", "alpha")

    def backward(self, g):
        g = _nd(g)
        first = g if self._next[0][0] is not None else None
        if getattr(self, "index", None) is None:  # index_select's recorded gradient
            return first, g[self.key]
        if self._next[1][0] is None:
            return first, None
        if isinstance(g, np.ndarray):
            picked = g[self.key]
        else:  # torch: grad.index_select(dim, index).expand_as(source), times alpha as mul.Scalar
            picked = index_select(g, self.dim, Tensor._make(self.index))
            picked = expand(picked, picked.shape)
            if self.alpha != 1:
                from ._core import MulBackward1, scalar_op

                return first, scalar_op(picked, self.alpha, MulBackward1)
        return first, picked if self.alpha == 1 else picked * self.alpha


class ScatterAddBackward0(IndexPutImplBackward0):
    """``scatter_add``'s node, also the recorded gradient of ``gather`` (then its first edge is None)."""

    __slots__ = ("dim", "index", "src_shape")

    def backward(self, g):
        g = _nd(g)
        first = g if self._next[0][0] is not None else None
        if getattr(self, "index", None) is None:  # gather's recorded gradient
            return first, g[self.key]
        picked = _gather_from(g, self.dim, self.index, self.key) if self._next[1][0] is not None else None
        if picked is not None and tuple(picked.shape) != tuple(self.src_shape):
            picked = embed(picked, self.src_shape, tuple(slice(0, s) for s in picked.shape))
        return first, picked


class MaskedScatterBackward0(IndexPutImplBackward0):
    __slots__ = ()


class IndexSelectBackward0(Node):
    __slots__ = ("shape", "key")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if self.key is None:
            return (g,)
        return (embed(g, self.shape, self.key, IndexAddBackward0, accumulate=True),)


def _index_tensor(index, name: str, arg: str = "index") -> np.ndarray:
    arr = index._data if isinstance(index, Tensor) else np.asarray(index)
    if arr.dtype not in (np.int64, np.int32):
        if not isinstance(index, (Tensor, np.ndarray)):
            raise not_a_tensor(name, **{arg: index})
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")
    return arr


@op()
def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries at ``index`` along ``dim`` (repeats allowed; a copy).

    Args:
        input: the tensor.
        dim: the dim to index.
        index: a 0-d or 1-d int32/int64 tensor of indices in ``[0, size)``.

    Returns:
        A tensor (``IndexSelectBackward0``); its backward adds the gradients of repeated indices.

    Raises:
        RuntimeError: for an index that is not an integer tensor.
        IndexError: for an index out of range or with more than one dim.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.arange(6).view(2, 3).index_select(1, torch.tensor([2, 2])).tolist()
        [[2, 2], [5, 5]]
    """
    arr = input._data
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype not in (np.int64, np.int32):
        if not isinstance(index, (Tensor, np.ndarray)):
            raise not_a_tensor("index_select", index=index)
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    idx = idx.reshape(-1)
    d = wrap_dim(dim, arr.ndim)
    size = arr.shape[d] if arr.ndim else 1
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise IndexError("index out of range in self")
    if arr.ndim == 0:  # the one element (torch keeps the 0-d shape)
        res, node = record(arr.copy(), IndexSelectBackward0, input)
        if node is not None:
            node.shape, node.key = (), None
        return res
    key = (slice(None),) * d + (idx,)
    res, node = record(arr[key], IndexSelectBackward0, input)
    if node is not None:
        node.shape, node.key = arr.shape, key
    return res


@op()
def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """A copy of ``input`` with ``alpha * source`` added at ``index`` along ``dim`` (repeats add up).

    Args:
        input: the tensor to add into.
        dim: the dim that ``index`` selects along.
        index: a 1-d int32/int64 tensor, one entry per slice of ``source`` along ``dim``.
        source: the values, shaped as ``input`` except ``source.size(dim) == len(index)``.
        alpha: a scale for ``source``.

    Returns:
        A new tensor (``IndexAddBackward0``).

    Raises:
        IndexError: for an index out of range.
        RuntimeError: for a non-integer index or mismatched shapes.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(3).index_add(0, torch.tensor([0, 0]), torch.ones(2)).tolist()
        [2.0, 0.0, 0.0]
    """
    arr = input._data
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype not in (np.int64, np.int32):
        raise RuntimeError("index_add_(): Expected dtype int32/int64 for index")
    idx = idx.reshape(-1)
    d = wrap_dim(dim, arr.ndim)
    sd = source._data
    n_src = sd.shape[d] if sd.ndim else 1
    if n_src != idx.size:
        raise RuntimeError(f"index_add_(): Number of indices ({idx.size}) should be equal to "
                           f"source.size(dim): ({n_src}), for dim: {d}")
    expected = arr.shape[:d] + (idx.size,) + arr.shape[d + 1:] if arr.ndim else (idx.size,)
    if sd.shape != expected and not (arr.ndim == 0 and sd.size == idx.size):
        raise RuntimeError(f"index_add_(): source shape {list(sd.shape)} does not match the expected shape "
                           f"{list(expected)}")
    size = arr.shape[d] if arr.ndim else 1
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = int(idx.max()) if idx.max() >= size else int(idx.min())
        raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {size}")
    key = (slice(None),) * d + (idx,)
    out = arr.copy()
    np.add.at(out, key, sd if alpha == 1 else sd * alpha)
    res, node = record(out, IndexAddBackward0, input, source)
    if node is not None:
        node.key, node.dim, node.index, node.alpha = key, d, idx, alpha
    return res


class GatherBackward0(Node):
    __slots__ = ("shape", "key")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (embed(g, self.shape, self.key, ScatterAddBackward0, accumulate=True),)


def _gather_key(arr_shape: tuple, d: int, idx: np.ndarray, name: str, check_src=None) -> tuple:
    """The numpy index that picks ``idx`` along ``d`` and the matching positions elsewhere."""
    n = len(arr_shape)
    if idx.ndim != n and not (n == 0 and idx.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    if n == 0:
        return ()
    for k in range(n):
        if k != d and idx.shape[k] > arr_shape[k]:
            raise RuntimeError(f"Size does not match at dimension {k} expected index {list(idx.shape)} to be "
                               f"no larger than self {list(arr_shape)} apart from dimension {d}")
    size = arr_shape[d]
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= size:
            raise RuntimeError(f"index {lo if lo < 0 else hi} is out of bounds for dimension {d} with size "
                               f"{size}")
    key = []
    for k in range(n):
        if k == d:
            key.append(idx)
        else:
            shape = [1] * n
            shape[k] = idx.shape[k]
            key.append(np.arange(idx.shape[k]).reshape(shape))
    return tuple(key)


@op()
def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """Values of ``input`` at ``index`` along ``dim``: ``out[i][j] = input[index[i][j]][j]`` for
    ``dim=0``.

    Args:
        input: the tensor.
        dim: the dim to gather along.
        index: an int64 tensor with ``input``'s number of dims, no larger than ``input`` outside ``dim``.
        sparse_grad: accepted for compatibility (the gradient is dense).

    Returns:
        A tensor of ``index``'s shape (``GatherBackward0``; the backward scatter-adds).

    Raises:
        RuntimeError: with torch's messages for a bad index dtype, shape or value.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([[1, 2], [3, 4]]).gather(1, torch.tensor([[1], [0]])).tolist()
        [[2], [3]]
    """
    arr = input._data
    idx = _index_tensor(index, "gather")
    d = wrap_dim(dim, arr.ndim)
    key = _gather_key(arr.shape, d, idx, "gather")
    out = arr[key] if key else arr.copy()
    res, node = record(out, GatherBackward0, input)
    if node is not None:
        node.shape, node.key = arr.shape, key
    return res


class ScatterBackward0(Node):
    __slots__ = ("key", "src_shape")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        nxt = self._next
        g_self = g_src = None
        if nxt[0][0] is not None:
            if isinstance(g, np.ndarray):
                g_self = np.array(g, copy=True)
                g_self[self.key] = 0
            else:
                mask = np.ones(g.shape, dtype=g._data.dtype)
                mask[self.key] = 0
                g_self = g * mask
        if len(nxt) > 1 and nxt[1][0] is not None:
            picked = g[self.key]
            region = tuple(slice(0, s) for s in picked.shape)
            g_src = embed(picked, self.src_shape, region) if tuple(picked.shape) != tuple(self.src_shape) \
                else picked
        return (g_self, g_src) if len(nxt) > 1 else (g_self,)


class ScatterBackward1(ScatterBackward0):
    __slots__ = ()


@op()
def scatter(input: Tensor, dim: int, index: Tensor, src=None, *, value=None, reduce=None) -> Tensor:
    """A copy of ``input`` with ``src`` (a tensor or a number) written at ``index`` along ``dim``."""
    if reduce is not None:
        raise NotImplementedError("scatter(reduce=...) is not supported by gradlens.engine")
    if src is None:
        src = value
    arr = input._data
    idx = _index_tensor(index, "scatter")
    d = wrap_dim(dim, arr.ndim)
    key = _gather_key(arr.shape, d, idx, "scatter")
    out = arr.copy()
    if isinstance(src, Tensor):
        sd = src._data
        if sd.dtype != arr.dtype:
            raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
        if sd.ndim != idx.ndim or any(idx.shape[k] > sd.shape[k] for k in range(idx.ndim)):
            raise RuntimeError(f"Expected index {list(idx.shape)} to be no larger than self "
                               f"{list(arr.shape)} apart from dimension {d} and to be no larger size than "
                               f"src {list(sd.shape)}")
        out[key] = sd[tuple(slice(0, s) for s in idx.shape)]
        res, node = record(out, ScatterBackward0, input, src)
        if node is not None:
            node.key, node.src_shape = key, sd.shape
        return res
    out[key] = src
    res, node = record(out, ScatterBackward1, input)
    if node is not None:
        node.key, node.src_shape = key, None
    return res


def _gather_from(g, dim: int, index: np.ndarray, key: tuple):
    if isinstance(g, np.ndarray):
        return g[key]
    return gather(g, dim, Tensor._make(index))


@op()
def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of ``input`` with the values of ``src`` added at ``index`` along ``dim`` (repeats add up).

    Args:
        input: the tensor to add into.
        dim: the dim along which ``index`` points.
        index: an int64 tensor with ``input``'s number of dims, no larger than ``input`` outside ``dim``
            and no larger than ``src``.
        src: the values (the part of ``src`` that ``index`` covers is used).

    Returns:
        A new tensor (``ScatterAddBackward0``).

    Raises:
        RuntimeError: with torch's messages for a bad index dtype, shape or value.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(3).scatter_add(0, torch.tensor([0, 0, 2]), torch.ones(3)).tolist()
        [2.0, 0.0, 1.0]
    """
    arr = input._data
    idx = _index_tensor(index, "scatter_add")
    d = wrap_dim(dim, arr.ndim)
    key = _gather_key(arr.shape, d, idx, "scatter_add")
    sd = src._data
    if sd.ndim != idx.ndim or any(idx.shape[k] > sd.shape[k] for k in range(idx.ndim)):
        raise RuntimeError(f"Expected index {list(idx.shape)} to be no larger than self {list(arr.shape)} "
                           f"apart from dimension {d} and to be no larger size than src {list(sd.shape)}")
    if sd.dtype != arr.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    out = arr.copy()
    np.add.at(out, key, sd[tuple(slice(0, s) for s in idx.shape)])
    res, node = record(out, ScatterAddBackward0, input, src)
    if node is not None:
        node.key, node.dim, node.index, node.src_shape = key, d, idx, sd.shape
    return res


class MaskedSelectBackward0(Node):
    __slots__ = ("shape", "bshape", "mask")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (sum_to(embed(g, self.bshape, self.mask, MaskedScatterBackward0), self.shape),)


@op()
def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    """The 1-D tensor of the entries where ``mask`` (broadcast with ``input``) is True.

    Args:
        input: the tensor.
        mask: a bool tensor broadcastable with ``input``.

    Returns:
        A 1-D copy (``MaskedSelectBackward0``).

    Raises:
        RuntimeError: when ``mask`` is not bool or the shapes do not broadcast.

    Example:
        >>> import gradlens.engine as torch
        >>> x = torch.tensor([1., -2., 3.])
        >>> x.masked_select(x > 0).tolist()
        [1.0, 3.0]
    """
    arr = input._data
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        if not isinstance(mask, (Tensor, np.ndarray)):
            raise not_a_tensor("masked_select", mask=mask)
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    try:
        bshape = np.broadcast_shapes(arr.shape, m.shape)
    except ValueError:
        from ._core import broadcast_error

        raise broadcast_error(arr.shape, m.shape) from None
    mb = np.broadcast_to(m, bshape)
    res, node = record(np.broadcast_to(arr, bshape)[mb], MaskedSelectBackward0, input)
    if node is not None:
        node.shape, node.bshape, node.mask = arr.shape, bshape, mb
    return res


@op()
def take_along_dim(input: Tensor, indices: Tensor, dim=None) -> Tensor:
    """Pick values at ``indices`` along ``dim`` (broadcasting the other dims), or from the flattened input."""
    idx = _index_tensor(indices, "take_along_dim", "indices")
    if dim is None:
        return gather(reshape(input, -1), 0, Tensor._make(idx.reshape(-1)))
    arr = input._data
    d = wrap_dim(dim, arr.ndim)
    if idx.ndim != arr.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of "
                           f"dimensions, but got {arr.ndim} dimensions for input, and {idx.ndim} dimensions "
                           "for indices")
    sizes = list(arr.shape)
    sizes[d] = idx.shape[d]
    bshape = list(np.broadcast_shapes(tuple(sizes), idx.shape))
    idx_b = np.broadcast_to(idx, tuple(bshape))
    bshape[d] = arr.shape[d]
    return gather(expand(input, tuple(bshape)), d, Tensor._make(idx_b))


@op()
def nonzero(input: Tensor, *, out=None, as_tuple: bool = False):
    """Indices of the non-zero entries of ``input`` (not differentiable).

    Args:
        input: the tensor.
        as_tuple: return one 1-D index tensor per dim instead of one ``(n, ndim)`` tensor.

    Returns:
        An int64 tensor of shape ``(n, ndim)``, or a tuple of ``ndim`` int64 tensors.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([[0, 1], [2, 0]]).nonzero().tolist()
        [[0, 1], [1, 0]]
    """
    arr = input._data
    if as_tuple:
        return tuple(Tensor._make(a.astype(np.int64)) for a in np.nonzero(np.atleast_1d(arr)))
    return Tensor._make(np.argwhere(arr).astype(np.int64))


@op()
def argwhere(input: Tensor) -> Tensor:
    """``nonzero(input)``."""
    return nonzero(input)


def _broadcasts(value, target: list) -> bool:
    try:
        np.broadcast_shapes(np.shape(value), tuple(target))
    except ValueError:
        return False
    return True
