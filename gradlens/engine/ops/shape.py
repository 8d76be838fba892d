"""Shape and view ops: reshape/view, squeeze/unsqueeze, permute/transpose, expand/repeat, cat/stack,
split/chunk/unbind, flip/roll, narrow/select, clone.

Views mirror torch's aliasing: where torch returns a view, the result wraps a numpy view of the input's
array, shares the input's version counter (``_vbox``) and records ``_base``, so in-place changes show
through base and view alike and ``check_inplace`` can raise torch's view-of-a-leaf error. Node names are
torch's for the same call (``ViewBackward0``, ``SqueezeBackward1`` for ``squeeze(dim)``, ``TBackward0`` for
``t()`` but ``PermuteBackward0`` for ``.T``). Split-like ops return several outputs of one node
(``num_outputs`` set per node, ``output_nr`` per output), as torch's ``SplitBackward0`` does.
"""

from __future__ import annotations

import warnings

from ..autograd.grad_mode import STATE as GRAD_MODE
from ..autograd.graph import NONE_EDGE
from ..tensor import MULTI_OUTPUT, NO_GRAD_MODE
from ._core import Node, Tensor, not_a_tensor, np, op, record, sum_to, wrap_dim

__all__ = ["view_of", "fresh", "embed", "slice_dim", "select_dim"]


# --- helpers ------------------------------------------------------------------------------------------
def fresh(t: Tensor) -> None:
    """Bring a view made before an in-place op rewrote its base's history up to date (torch regenerates
    such a view's ``grad_fn``); a no-op for every other tensor."""
    base = t._base
    if base is not None and "_rebased" in base.__dict__:
        t._view_grad_fn()


def view_of(arr: np.ndarray, node_cls: type[Node], input: Tensor):
    """Record ``arr`` (a numpy view of ``input``'s data) as a torch view of ``input``."""
    if input._base is not None:
        fresh(input)
    if input._rg and GRAD_MODE.enabled:
        node = node_cls((input._edge(),))
        node._omd = (arr.shape, arr.dtype)
        res = Tensor._make(arr, node)
    else:
        node = None
        res = Tensor._make(arr)
        if not GRAD_MODE.enabled and not GRAD_MODE.inference and arr.dtype.kind in "fc":
            res._creation_meta = NO_GRAD_MODE  # torch refuses an in-place change of it once grad mode is on
    res._vbox = input._vbox
    base = input._base
    if base is None:
        res._base = input
    else:
        res._base = base
        if input._creation_meta is not None:  # a view of an output of split/chunk/unbind inherits its meta
            res._creation_meta = input._creation_meta
    return res, node


def _is_array(g) -> bool:
    return isinstance(g, (np.ndarray, np.generic))


def _nd(g):
    """A gradient as an ndarray or Tensor (numpy arithmetic on 0-d arrays can hand back numpy scalars)."""
    return np.asarray(g) if isinstance(g, np.generic) else g


def _sizes(args) -> tuple:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` / ``f(torch.Size)`` as a tuple of ints."""
    if len(args) == 1:
        a = args[0]
        if isinstance(a, (tuple, list)):
            args = a
        elif isinstance(a, Tensor) and a.ndim == 1:
            args = a.tolist()
    for a in args:
        if type(a) is not int:
            if isinstance(a, float) or not hasattr(a, "__index__"):
                got = ", ".join(type(b).__name__ for b in args)
                raise TypeError(f"received an invalid combination of arguments - got ({got}), but expected "
                                "(tuple of ints size)")
            return tuple(a.__index__() for a in args)
    return tuple(args)


def _infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one ``-1`` in ``shape`` with torch's errors."""
    if shape == (-1,):
        return (numel,)
    infer = -1
    known = 1
    for i, s in enumerate(shape):
        if s == -1:
            if infer >= 0:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif s < 0:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
        else:
            known *= s
    if infer >= 0:
        if known == 0:
            raise RuntimeError(f"cannot reshape tensor of 0 elements into shape {list(shape)} because the "
                               "unspecified dimension size -1 can be any value and is ambiguous")
        if numel % known == 0:
            return shape[:infer] + (numel // known,) + shape[infer + 1:]
    elif known == numel:
        return shape
    raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")


def _try_view(arr: np.ndarray, shape: tuple):
    """``arr`` reshaped without copying, or None when the strides do not allow it."""
    try:
        return arr.reshape(shape, copy=False)
    except ValueError:
        return None


def slice_dim(g, dim: int, start, stop, step=1):
    """``g[..., start:stop:step, ...]`` along ``dim`` for an ndarray or a Tensor."""
    return g[(slice(None),) * dim + (slice(start, stop, step),)]


def select_dim(g, dim: int, index: int):
    """``g.select(dim, index)`` for an ndarray (a 0-d array, never a scalar) or a Tensor."""
    if _is_array(g):
        return g[(slice(None),) * dim + (index, Ellipsis)]
    return g[(slice(None),) * dim + (index,)]


def _zeros(shape, like):
    if _is_array(like):
        return np.zeros(shape, dtype=like.dtype)
    return Tensor._make(np.zeros(shape, dtype=like._data.dtype))


class _Embed(Node):
    """The gradient of a selecting op, recorded for ``create_graph``: ``g`` placed at ``key`` in zeros.

    Its own backward picks ``key`` out again. Subclasses carry torch's names for these nodes.
    """

    __slots__ = ("key",)
    _saves = False
    # torch's scatter-style gradient nodes have a first edge for the zeros they write into
    _zeros_edge = False

    def backward(self, g):
        g = _nd(g)
        if self._zeros_edge:
            return None, g[self.key]
        return (g[self.key],)


class SelectBackwardBackward0(_Embed):
    __slots__ = ()


class SliceBackwardBackward0(_Embed):
    __slots__ = ()


def embed(g, shape: tuple, key, node_cls: type[Node] = SliceBackwardBackward0, accumulate: bool = False):
    """Zeros of ``shape`` with ``g`` written at ``key`` (added with ``np.add.at`` when ``accumulate``, so
    repeated indices sum). Works on ndarrays and, recording ``node_cls``, on Tensors."""
    if _is_array(g):
        out = np.zeros(shape, dtype=g.dtype)
        if accumulate:
            np.add.at(out, key, g)
        else:
            out[key] = g
        return out
    out = np.zeros(shape, dtype=g._data.dtype)
    if accumulate:
        np.add.at(out, key, g._data)
    else:
        out[key] = g._data
    res, node = record(out, node_cls, g)
    if node is not None:
        node.key = key
        if node._zeros_edge:
            node._next = (NONE_EDGE, node._next[0])
    return res


# --- view / reshape -----------------------------------------------------------------------------------
class ViewBackward0(Node):
    __slots__ = ("shape",)
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (g.reshape(self.shape),)


class UnsafeViewBackward0(ViewBackward0):
    __slots__ = ()


class ReshapeAliasBackward0(ViewBackward0):
    __slots__ = ()


def _view(input: Tensor, shape: tuple) -> Tensor:
    arr = input._data
    shape = _infer_shape(shape, arr.size)
    out = arr.reshape(shape) if arr.flags.c_contiguous else _try_view(arr, shape)
    if out is None:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    res, node = view_of(out, ViewBackward0, input)
    if node is not None:
        node.shape = arr.shape
    return res


def _reshape(input: Tensor, shape: tuple) -> Tensor:
    arr = input._data
    shape = _infer_shape(shape, arr.size)
    contiguous = arr.flags.c_contiguous
    out = arr.reshape(shape) if contiguous else _try_view(arr, shape)
    if out is not None:
        # torch: a plain view of contiguous input, a "reshape alias" of strided input
        cls = ViewBackward0 if contiguous else ReshapeAliasBackward0
        res, node = view_of(out, cls, input)
        if node is not None:
            node.shape = arr.shape
        return res
    # torch: clone to contiguous memory, then an unsafe view of the copy (not a view of the input)
    copy = clone(input)
    res, node = record(copy._data.reshape(shape), UnsafeViewBackward0, copy)
    if node is not None:
        node.shape = arr.shape
    return res


@op(function=False)
def view(input: Tensor, *shape) -> Tensor:
    """A view of ``input`` with a new shape, sharing its memory and version counter.

    Args:
        input: the tensor to view.
        *shape: the new sizes, as ints or one tuple/list/``torch.Size``; one of them may be -1 (inferred).

    Returns:
        A view (``ViewBackward0``); writes through either tensor show in the other.

    Raises:
        RuntimeError: torch's messages for a shape that does not fit the number of elements, for two -1s,
            and for strides that allow no view (use ``reshape`` then).

    Example:
        >>> import gradlens.engine as torch
        >>> torch.arange(6.).view(2, -1).shape
        torch.Size([2, 3])
    """
    return _view(input, _sizes(shape))


@op()
def reshape(input: Tensor, *shape) -> Tensor:
    """``input`` with a new shape: a view when the strides allow it, else a copy, as torch decides.

    Args:
        input: the tensor to reshape.
        *shape: the new sizes (ints or one sequence); one may be -1.

    Returns:
        A view (``ViewBackward0``; ``ReshapeAliasBackward0`` for strided input) or, when no view is
        possible, a contiguous copy (``CloneBackward0`` then ``UnsafeViewBackward0``).

    Raises:
        RuntimeError: with torch's message when the shape does not fit the number of elements.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(2, 3).t().reshape(6).grad_fn is None
        True
    """
    return _reshape(input, _sizes(shape))


@op(function=False)
def view_as(input: Tensor, other: Tensor) -> Tensor:
    """``input.view(other.shape)``."""
    try:
        shape = other._data.shape
    except AttributeError:
        raise not_a_tensor("view_as", other=other) from None
    return _view(input, shape)


@op(function=False)
def reshape_as(input: Tensor, other: Tensor) -> Tensor:
    """``input.reshape(other.shape)``."""
    try:
        shape = other._data.shape
    except AttributeError:
        raise not_a_tensor("reshape_as", other=other) from None
    return _reshape(input, shape)


@op()
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge the dims ``start_dim..end_dim`` into one (a view when possible, as ``reshape``).

    Args:
        input: the tensor to flatten.
        start_dim: first dim to merge (negative counts from the end).
        end_dim: last dim to merge.

    Returns:
        The flattened tensor; ``input`` itself when ``start_dim == end_dim`` (as torch); 0-d becomes 1-d.

    Raises:
        IndexError: for dims out of range.
        RuntimeError: when ``start_dim`` comes after ``end_dim``.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(2, 3, 4).flatten(1).shape
        torch.Size([2, 12])
    """
    shape = input._data.shape
    if start_dim == 0 and end_dim == -1 and len(shape) != 1:
        return _reshape(input, (-1,))
    if not shape:
        return _reshape(input, (1,))
    s, e = wrap_dim(start_dim, len(shape)), wrap_dim(end_dim, len(shape))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    n = 1
    for d in shape[s:e + 1]:
        n *= d
    return _reshape(input, shape[:s] + (n,) + shape[e + 1:])


@op()
def ravel(input: Tensor) -> Tensor:
    """A flattened tensor: a view when ``input`` is contiguous, else a view of a contiguous copy."""
    if not input._data.flags["C_CONTIGUOUS"]:
        input = clone(input)
    return _view(input, (-1,))


@op()
def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one entry may be -1)."""
    shape = input._data.shape
    d = wrap_dim(dim, len(shape))
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    try:
        sizes = _infer_shape(sizes, shape[d])
    except RuntimeError:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim "
                           f"{dim} ({shape[d]}) in the input tensor") from None
    return _view(input, shape[:d] + sizes + shape[d + 1:])


# --- squeeze / unsqueeze ------------------------------------------------------------------------------
class SqueezeBackward0(ViewBackward0):
    __slots__ = ()


class SqueezeBackward1(Node):
    __slots__ = ("shape", "axes")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if _is_array(g):
            return (g.reshape(self.shape),)
        for a in self.axes:  # torch re-inserts the squeezed dims one by one
            g = g.unsqueeze(a)
        return (g,)


class SqueezeBackward2(SqueezeBackward1):
    __slots__ = ()


class UnsqueezeBackward0(Node):
    __slots__ = ("dim",)
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if _is_array(g):
            return (g.reshape(g.shape[:self.dim] + g.shape[self.dim + 1:]),)
        return (g.squeeze(self.dim),)


@op()
def squeeze(input: Tensor, dim=None) -> Tensor:
    """Remove size-1 dims: all of them, one ``dim``, or a tuple of dims (others are left alone).

    Args:
        input: the tensor.
        dim: None (every size-1 dim), an int or a tuple of ints.

    Returns:
        A view; the node is ``SqueezeBackward0`` / ``1`` / ``2`` for the three call forms, as in torch.

    Raises:
        IndexError: for a dim out of range.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(1, 3, 1).squeeze(0).shape
        torch.Size([3, 1])
    """
    arr = input._data
    if type(dim) is int and arr.ndim:  # the common form, kept short
        shape = arr.shape
        d = dim if 0 <= dim < len(shape) else wrap_dim(dim, len(shape))
        squeezed = shape[d] == 1
        res, node = view_of(arr.reshape(shape[:d] + shape[d + 1:]) if squeezed else arr.view(),
                            SqueezeBackward1, input)
        if node is not None:
            node.shape, node.axes = shape, (d,) if squeezed else ()
        return res
    if dim is None:
        cls, axes = SqueezeBackward0, tuple(i for i, s in enumerate(arr.shape) if s == 1)
    elif isinstance(dim, (tuple, list)):
        cls, axes = SqueezeBackward2, tuple(wrap_dim(d, arr.ndim) for d in dim)
    else:
        cls, axes = SqueezeBackward1, (wrap_dim(dim, arr.ndim),)
    axes = tuple(a for a in axes if arr.ndim and arr.shape[a] == 1)
    res, node = view_of(np.squeeze(arr, axes) if axes else arr.view(), cls, input)
    if node is not None:
        node.shape = arr.shape
        if cls is not SqueezeBackward0:
            node.axes = tuple(sorted(axes))
    return res


@op()
def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim``.

    Args:
        input: the tensor.
        dim: the position of the new dim, in ``[-input.dim() - 1, input.dim()]``.

    Returns:
        A view (``UnsqueezeBackward0``).

    Raises:
        IndexError: for a dim out of range.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(3).unsqueeze(-1).shape
        torch.Size([3, 1])
    """
    arr = input._data
    d = wrap_dim(dim, arr.ndim + 1)
    res, node = view_of(arr.reshape(arr.shape[:d] + (1,) + arr.shape[d:]), UnsqueezeBackward0, input)
    if node is not None:
        node.dim = d
    return res


# --- permute / transpose ------------------------------------------------------------------------------
class PermuteBackward0(Node):
    __slots__ = ("inverse",)
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if _is_array(g):
            return (g.transpose(self.inverse),)
        return (g.permute(self.inverse),)


class TransposeBackward0(Node):
    __slots__ = ("dim0", "dim1")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if self.dim0 == self.dim1:
            return (g,)
        if _is_array(g):
            return (np.swapaxes(g, self.dim0, self.dim1),)
        return (g.transpose(self.dim0, self.dim1),)


class TBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if _is_array(g):
            return (g.T,)
        return (g.t(),)


def _permute(input: Tensor, dims: tuple) -> Tensor:
    arr = input._data
    if len(dims) != arr.ndim:
        raise RuntimeError("permute(sparse_coo): number of dimensions in the tensor input does not match "
                           f"the length of the desired ordering of dimensions i.e. input.dim() = {arr.ndim} "
                           f"is not equal to len(dims) = {len(dims)}")
    n = arr.ndim
    if any(d < 0 or d >= n for d in dims):
        dims = tuple(wrap_dim(d, n) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    res, node = view_of(arr.transpose(dims), PermuteBackward0, input)
    if node is not None:
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d] = i
        node.inverse = tuple(inverse)
    return res


@op()
def permute(input: Tensor, *dims) -> Tensor:
    """A view with the dims reordered.

    Args:
        input: the tensor.
        *dims: a permutation of the dims, as ints or one sequence (negative dims allowed).

    Returns:
        A view (``PermuteBackward0``).

    Raises:
        RuntimeError: when ``dims`` has the wrong length or repeats a dim.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(2, 3, 4).permute(2, 0, 1).shape
        torch.Size([4, 2, 3])
    """
    if not dims:
        raise TypeError('permute() missing 1 required positional arguments: "dims"')
    return _permute(input, _sizes(dims))


@op(aliases=("swapaxes", "swapdims"))
def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """A view with ``dim0`` and ``dim1`` swapped (also ``swapaxes`` / ``swapdims``).

    Args:
        input: the tensor.
        dim0: one dim.
        dim1: the other dim.

    Returns:
        A view (``TransposeBackward0``).

    Raises:
        IndexError: for a dim out of range.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(2, 3).transpose(0, 1).shape
        torch.Size([3, 2])
    """
    arr = input._data
    d0, d1 = wrap_dim(dim0, arr.ndim), wrap_dim(dim1, arr.ndim)
    res, node = view_of(np.swapaxes(arr, d0, d1) if arr.ndim else arr.view(), TransposeBackward0, input)
    if node is not None:
        node.dim0, node.dim1 = d0, d1
    return res


@op()
def t(input: Tensor) -> Tensor:
    """Transpose a tensor of at most 2 dims (0-d and 1-d come back unchanged)."""
    arr = input._data
    if arr.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {arr.ndim}D")
    res, _node = view_of(arr.T, TBackward0, input)
    return res


@op()
def movedim(input: Tensor, source, destination) -> Tensor:
    """Move dims ``source`` to positions ``destination`` (a permute)."""
    n = input._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [wrap_dim(d, n) for d in src]
    dst = [wrap_dim(d, n) for d in dst]
    for name, dims in (("source", src), ("destination", dst)):
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({dims})")
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain "
                           f"the same number of dims as destination ({dst} dims)")
    order = [d for d in range(n) if d not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return _permute(input, tuple(order))


moveaxis = op("moveaxis")(movedim)


def _T(self: Tensor) -> Tensor:
    n = self._data.ndim
    if n == 0:
        warnings.warn("Tensor.T is deprecated on 0-D tensors. This function is the identity in these cases.",
                      UserWarning, stacklevel=2)
    elif n != 2:
        warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their shape is "
                      "deprecated and it will throw an error in a future release. Consider `x.mT` to "
                      "transpose batches of matrices or `x.permute(*torch.arange(x.ndim - 1, -1, -1))` to "
                      "reverse the dimensions of a tensor.", UserWarning, stacklevel=2)
    if n == 2:
        res, node = view_of(self._data.T, PermuteBackward0, self)
        if node is not None:
            node.inverse = (1, 0)
        return res
    return _permute(self, tuple(range(n - 1, -1, -1)))


def _mT(self: Tensor) -> Tensor:  # noqa: N802 - torch's name
    n = self._data.ndim
    if n < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got {n}-D "
                           "tensor.")
    return transpose(self, -2, -1)


def _H(self: Tensor) -> Tensor:  # noqa: N802
    n = self._data.ndim
    if n != 2:
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got {n}-D tensor.")
    return transpose(self, 0, 1)


def _mH(self: Tensor) -> Tensor:  # noqa: N802
    n = self._data.ndim
    if n < 2:
        raise RuntimeError(f"tensor.mH is only supported on matrices or batches of matrices. Got {n}-D "
                           "tensor.")
    return transpose(self, -2, -1)


Tensor.T = property(_T, doc="The dims reversed (``permute``); meant for 2-D tensors.")
Tensor.mT = property(_mT, doc="The last two dims swapped (batches of matrices).")
Tensor.H = property(_H, doc="Conjugate transpose of a 2-D tensor (the transpose for real dtypes).")
Tensor.mH = property(_mH, doc="Conjugate transpose of the last two dims (the transpose for real dtypes).")


# --- expand / repeat ----------------------------------------------------------------------------------
class ExpandBackward0(Node):
    __slots__ = ("shape",)
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (sum_to(g, self.shape),)


def _expand(input: Tensor, sizes: tuple) -> Tensor:
    arr = input._data
    shape = arr.shape
    if len(sizes) < len(shape):
        raise RuntimeError(f"expand({_type_name(arr)}{{{list(shape)}}}, size={list(sizes)}): the number of "
                           f"sizes provided ({len(sizes)}) must be greater or equal to the number of "
                           f"dimensions in the tensor ({len(shape)})")
    lead = len(sizes) - len(shape)
    target = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                                   f"non-existing dimension {i}")
            target.append(s)
            continue
        cur = shape[i - lead]
        if s == -1:
            s = cur
        elif cur != s and cur != 1:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({cur}) "
                               f"at non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor "
                               f"sizes: {list(shape)}")
        target.append(s)
    try:
        view = _broadcast(arr, tuple(target), lead)
    except ValueError:  # a size below -1 where the tensor's size is 1
        raise RuntimeError(f"The expanded size of the tensor ({min(sizes)}) must be non-negative, or -1 to keep "
                           f"a dimension's size.  Target sizes: {list(sizes)}.  Tensor sizes: {list(shape)}") from None
    res, node = view_of(view, ExpandBackward0, input)
    if node is not None:
        node.shape = shape
    return res


def _broadcast(arr: np.ndarray, target: tuple, lead: int) -> np.ndarray:
    """A broadcast view, read-only when elements repeat (``np.broadcast_to``, built directly for contiguous
    arrays: faster)."""
    shape = arr.shape
    if target[lead:] == shape:
        if target[:lead].count(1) == lead:
            return arr.reshape(target)  # only new size-1 dims: an ordinary (writable) view
        strides = (0,) * lead + arr.strides
    else:
        strides = (0,) * lead + tuple([st if s == t else 0
                                       for s, t, st in zip(shape, target[lead:], arr.strides, strict=True)])
    if arr.flags.c_contiguous and arr.size:
        out = np.ndarray(target, arr.dtype, arr, 0, strides)
        out.flags.writeable = False
        return out
    return np.broadcast_to(arr, target)


def _type_name(arr) -> str:
    from ..autograd.graph import _type_name as name

    return name(arr)


@op(function=False)
def expand(input: Tensor, *sizes) -> Tensor:
    """A broadcast view of ``input`` with the given sizes (no copy).

    Args:
        input: the tensor.
        *sizes: the target sizes (ints or one sequence): -1 keeps a dim, size-1 dims may grow, and extra
            sizes add leading dims.

    Returns:
        A view (``ExpandBackward0``); it is read-only where elements repeat, as torch refuses in-place
        writes there.

    Raises:
        RuntimeError: with torch's messages for sizes that do not fit.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(3, 1).expand(2, -1, 4).shape
        torch.Size([2, 3, 4])
    """
    if not sizes:
        raise TypeError('expand() missing 1 required positional arguments: "size"')
    return _expand(input, _sizes(sizes))


@op(function=False)
def expand_as(input: Tensor, other: Tensor) -> Tensor:
    """``input.expand(other.shape)``."""
    try:
        shape = other._data.shape
    except AttributeError:
        raise not_a_tensor("expand_as", other=other) from None
    return _expand(input, shape)


@op()
def broadcast_to(input: Tensor, size) -> Tensor:
    """``input.expand(size)``."""
    return _expand(input, tuple(int(s) for s in size))


class RepeatBackward0(Node):
    __slots__ = ("shape", "reps")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        reps = self.reps
        shape = (1,) * (len(reps) - len(self.shape)) + tuple(self.shape)
        split = []
        for r, s in zip(reps, shape, strict=True):
            split += [r, s]
        axes = tuple(range(0, 2 * len(reps), 2))
        g = g.reshape(tuple(split))
        g = g.sum(axis=axes) if _is_array(g) else g.sum(dim=axes)
        return (g.reshape(self.shape) if tuple(g.shape) != tuple(self.shape) else g,)


@op(function=False)
def repeat(input: Tensor, *sizes) -> Tensor:
    """Tile ``input`` ``sizes[i]`` times along each dim (a copy).

    Args:
        input: the tensor.
        *sizes: repetitions per dim (ints or one sequence); extra sizes add leading dims.

    Returns:
        The tiled tensor (``RepeatBackward0``).

    Raises:
        RuntimeError: when fewer sizes than dims are given.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.zeros(2, 3).repeat(2, 1, 2).shape
        torch.Size([2, 2, 6])
    """
    reps = _sizes(sizes)
    arr = input._data
    if len(reps) < arr.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of "
                           "dimensions of tensor")
    res, node = record(np.tile(arr, reps) if reps else arr.copy(), RepeatBackward0, input)
    if node is not None:
        node.shape, node.reps = arr.shape, reps
    return res


@op()
def tile(input: Tensor, dims) -> Tensor:
    """``input`` repeated ``dims[i]`` times along each dim; fewer dims than ``input`` has are padded with
    leading 1s (``repeat`` otherwise)."""
    reps = tuple(int(r) for r in dims)
    if len(reps) < input._data.ndim:
        reps = (1,) * (input._data.ndim - len(reps)) + reps
    return repeat(input, reps)


@op()
def repeat_interleave(input: Tensor, repeats, dim=None, *, output_size=None) -> Tensor:
    """Repeat each element (each slice along ``dim``) ``repeats`` times in place, as torch records it.

    Args:
        input: the tensor; flattened first when ``dim`` is None.
        repeats: an int, or a 1-d int tensor with one count per slice.
        dim: the dim to repeat along.
        output_size: accepted for compatibility.

    Returns:
        The repeated tensor (for an int: unsqueeze, expand, clone and view, as torch; for counts:
        ``IndexSelectBackward0``).

    Example:
        >>> import gradlens.engine as torch
        >>> torch.tensor([1, 2]).repeat_interleave(2).tolist()
        [1, 1, 2, 2]
    """
    if dim is None:
        input = _reshape(input, (-1,))
        dim = 0
    arr = input._data
    d = wrap_dim(dim, arr.ndim)
    if isinstance(repeats, Tensor) and repeats._data.ndim > 0:
        from .index import index_select

        counts = repeats._data.reshape(-1)
        if counts.size != arr.shape[d]:
            raise RuntimeError("repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {counts.size} and input.size({d}) = {arr.shape[d]}")
        return index_select(input, d, Tensor._make(np.repeat(np.arange(arr.shape[d]), counts)))
    r = int(repeats)
    if r < 0:
        raise RuntimeError("Repeats must be non-negative")
    shape = arr.shape
    u = unsqueeze(input, d + 1)
    e = _expand(u, shape[:d + 1] + (r,) + shape[d + 1:])
    return _reshape(clone(e), shape[:d] + (shape[d] * r,) + shape[d + 1:])


# --- clone --------------------------------------------------------------------------------------------
class CloneBackward0(Node):
    __slots__ = ()
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (g,)


@op()
def clone(input: Tensor, *, memory_format=None) -> Tensor:
    """A copy of ``input`` in new (contiguous) memory that stays in the graph."""
    res, _node = record(np.array(input._data, copy=True, order="C"), CloneBackward0, input)
    return res


# --- cat / stack --------------------------------------------------------------------------------------
class CatBackward0(Node):
    __slots__ = ("dim", "sizes")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        out = []
        start = 0
        dim = self.dim
        for (child, _nr), size in zip(self._next, self.sizes, strict=True):
            if size is None:  # a legacy 1-D empty input, skipped by cat
                out.append(None if child is None else _zeros((0,), g))
                continue
            if child is not None:
                out.append(slice_dim(g, dim, start, start + size))
            else:
                out.append(None)
            start += size
        return tuple(out)


class StackBackward0(Node):
    __slots__ = ("dim",)
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return tuple(None if child is None else select_dim(g, self.dim, i)
                     for i, (child, _nr) in enumerate(self._next))


def _tensor_list(tensors, name: str) -> list:
    if isinstance(tensors, Tensor):
        raise TypeError(f"{name}(): argument 'tensors' must be tuple of Tensors, not Tensor")
    tensors = list(tensors)
    for t in tensors:
        if not isinstance(t, Tensor):
            # not tensors.index(t): it compares the Tensors before t with t, elementwise
            i = next(i for i, u in enumerate(tensors) if u is t)
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    return tensors


def _common_dtype(arrays) -> np.dtype:
    dts = {a.dtype for a in arrays}
    if len(dts) == 1:
        return arrays[0].dtype
    floats = [d for d in dts if d.kind == "f"]
    return np.result_type(*(floats or dts))


@op(function=True, method=False, aliases=("concat", "concatenate"))
def cat(tensors, dim: int = 0, *, axis=None, out=None) -> Tensor:
    """Concatenate tensors along ``dim`` (also ``concat`` / ``concatenate``).

    Args:
        tensors: a sequence of tensors with equal sizes except in ``dim``; 1-D empty tensors are skipped,
            as torch allows. Mixed dtypes promote.
        dim: the dim to join along (``axis`` is accepted as an alias).

    Returns:
        A new tensor (``CatBackward0`` with one edge per input).

    Raises:
        ValueError: for an empty sequence.
        RuntimeError: with torch's messages for 0-d inputs and mismatched sizes.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.cat([torch.zeros(2, 3), torch.ones(1, 3)]).shape
        torch.Size([3, 3])
    """
    if axis is not None:
        dim = axis
    tensors = _tensor_list(tensors, "cat")
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    arrays = [t._data for t in tensors]
    # fast path: same ndim and dtype, no legacy empty inputs (numpy checks the sizes)
    ref = arrays[0]
    nd, dt = ref.ndim, ref.dtype
    if nd > 1 or (nd == 1 and ref.shape[0]):
        for a in arrays:
            if a.ndim != nd or a.dtype != dt or (nd == 1 and not a.shape[0]):
                break
        else:
            d = dim if 0 <= dim < nd else wrap_dim(dim, nd)
            try:
                result = np.concatenate(arrays, axis=d)
            except ValueError:
                pass
            else:
                res, node = record(result, CatBackward0, *tensors)
                if node is not None:
                    node.dim = d
                    node.sizes = tuple([a.shape[d] for a in arrays])
                return res
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    used = [i for i, a in enumerate(arrays) if not (a.ndim == 1 and a.shape[0] == 0)]
    if not used:
        used = [0]
    ref = arrays[used[0]]
    d = wrap_dim(dim, ref.ndim)
    for i in used:
        a = arrays[i]
        if a.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {a.ndim}")
        for k in range(ref.ndim):
            if k != d and a.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[k]} but got size {a.shape[k]} for tensor number {i} in the "
                                   "list.")
    dt = _common_dtype(arrays)
    result = np.concatenate([arrays[i] for i in used], axis=d, dtype=dt) if len(used) > 1 \
        else np.array(arrays[used[0]], dtype=dt, copy=True)
    res, node = record(result, CatBackward0, *tensors)
    if node is not None:
        node.dim = d
        used_set = set(used)
        node.sizes = tuple(a.shape[d] if i in used_set else None for i, a in enumerate(arrays))
    return res


@op(function=True, method=False)
def stack(tensors, dim: int = 0, *, out=None) -> Tensor:
    """Stack equally shaped tensors along a new dim ``dim``.

    Args:
        tensors: a non-empty sequence of tensors of one shape.
        dim: the position of the new dim, in ``[-ndim - 1, ndim]``.

    Returns:
        A new tensor (``StackBackward0``).

    Raises:
        RuntimeError: for an empty sequence or differing shapes.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.stack([torch.zeros(3), torch.ones(3)], dim=1).shape
        torch.Size([3, 2])
    """
    tensors = _tensor_list(tensors, "stack")
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    arrays = [t._data for t in tensors]
    ref = arrays[0].shape
    d = dim if 0 <= dim <= len(ref) else wrap_dim(dim, len(ref) + 1)  # torch checks the dim first
    for i, a in enumerate(arrays):
        if a.shape != ref:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(ref)} at entry 0 "
                               f"and {list(a.shape)} at entry {i}")
    dt = _common_dtype(arrays)
    if d == 0:  # the common case: fill a new array row by row
        out = np.empty((len(arrays),) + ref, dtype=dt)
        for i, a in enumerate(arrays):
            out[i] = a
    else:
        new_shape = ref[:d] + (1,) + ref[d:]
        out = np.concatenate([a.reshape(new_shape) for a in arrays], axis=d, dtype=dt)
    res, node = record(out, StackBackward0, *tensors)
    if node is not None:
        node.dim = d
    return res


@op(function=True, method=False)
def hstack(tensors) -> Tensor:
    """Concatenate along dim 1 (dim 0 for 1-D tensors)."""
    tensors = [t if t.ndim else unsqueeze(t, 0) for t in _tensor_list(tensors, "hstack")]
    return cat(tensors, 0 if tensors and tensors[0].ndim == 1 else 1)


@op(function=True, method=False, aliases=("row_stack",))
def vstack(tensors) -> Tensor:
    """Concatenate along dim 0 after making every tensor at least 2-D."""
    out = []
    for t in _tensor_list(tensors, "vstack"):
        while t.ndim < 2:
            t = unsqueeze(t, 0)
        out.append(t)
    return cat(out, 0)


# --- split / chunk / unbind ---------------------------------------------------------------------------
class _MultiOutput(Node):
    """A node with one output per piece; missing output gradients count as zeros."""

    __slots__ = ("num_outputs", "dim", "shapes")
    _saves = False

    def _filled(self, grads):
        if not isinstance(grads, (list, tuple)):  # the engine passes a single-output node its one grad
            grads = [grads]
        like = next(g for g in grads if g is not None)
        return [_nd(g) if g is not None else _zeros(s, like) for g, s in zip(grads, self.shapes, strict=True)]


class SplitBackward0(_MultiOutput):
    __slots__ = ()

    def backward(self, grads):
        parts = self._filled(grads)
        if _is_array(parts[0]):
            return (np.concatenate(parts, axis=self.dim),)
        return (cat(parts, self.dim),)


class SplitWithSizesBackward0(SplitBackward0):
    __slots__ = ()


class UnbindBackward0(_MultiOutput):
    __slots__ = ()

    def backward(self, grads):
        parts = self._filled(grads)
        if _is_array(parts[0]):
            return (np.stack(parts, axis=self.dim),)
        return (stack(parts, self.dim),)


def _record_multi(arrays: list, node_cls: type[_MultiOutput], input: Tensor, dim: int) -> tuple:
    """Wrap ``arrays`` (numpy views of ``input``) as the outputs of one multi-output view node."""
    node = None
    fresh(input)
    if GRAD_MODE.enabled and input._rg:
        node = node_cls((input._edge(),))
        node.num_outputs = len(arrays)
        node.dim = dim
        node.shapes = tuple(a.shape for a in arrays)
        omd = tuple((a.shape, a.dtype) for a in arrays)
        node._omd = omd[0] if len(arrays) == 1 else omd
    base = input._base if input._base is not None else input
    # torch refuses in-place changes of these views while autograd could see them (check_inplace)
    meta = (MULTI_OUTPUT if GRAD_MODE.enabled else NO_GRAD_MODE) if input._data.dtype.kind in "fc" else None
    outs = []
    for i, a in enumerate(arrays):
        t = Tensor._make(a, node, i if node is not None else 0)
        t._vbox = input._vbox
        t._base = base
        if meta is not None:
            t._creation_meta = meta
        outs.append(t)
    return tuple(outs)


def _split_sizes(total: int, size: int) -> list:
    if size == 0:
        if total != 0:
            raise RuntimeError("split_size can only be 0 if dimension size is 0, but got dimension size of "
                               f"{total}")
        return [0]
    if size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
    n = max(1, -(-total // size))
    return [min(size, total - i * size) for i in range(n)]


def _pieces(arr: np.ndarray, d: int, sizes) -> list:
    out, start = [], 0
    pre = (slice(None),) * d
    for s in sizes:
        out.append(arr[pre + (slice(start, start + s),)])
        start += s
    return out


@op()
def split(input: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Split ``input`` along ``dim`` into views: pieces of ``split_size`` (the last may be smaller) or
    of the listed sizes.

    Args:
        input: the tensor (at least 1-D).
        split_size_or_sections: an int, or a list of sizes summing to the size of ``dim``.
        dim: the dim to split.

    Returns:
        A tuple of views, the outputs of one ``SplitBackward0`` (``SplitWithSizesBackward0`` for a list).

    Raises:
        RuntimeError: with torch's messages for a zero or negative size, or sizes that do not sum up.

    Example:
        >>> import gradlens.engine as torch
        >>> [p.shape[0] for p in torch.zeros(5, 2).split(2)]
        [2, 2, 1]
    """
    arr = input._data
    if arr.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, arr.ndim)
    total = arr.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != total or any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {total} (input "
                               f"tensor's size at dimension {d}), but got split_sizes={sizes}")
        return _record_multi(_pieces(arr, d, sizes), SplitWithSizesBackward0, input, d)
    sizes = _split_sizes(total, int(split_size_or_sections))
    return _record_multi(_pieces(arr, d, sizes), SplitBackward0, input, d)


@op()
def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Split ``input`` into ``chunks`` views of ``ceil(size / chunks)`` along ``dim`` (fewer when
    the size runs out).

    Args:
        input: the tensor (at least 1-D).
        chunks: the number of pieces wanted (> 0).
        dim: the dim to split.

    Returns:
        A tuple of views, the outputs of one ``SplitBackward0``.

    Raises:
        RuntimeError: when ``chunks`` is not positive or ``input`` is 0-d.

    Example:
        >>> import gradlens.engine as torch
        >>> len(torch.zeros(5).chunk(3))
        3
    """
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    arr = input._data
    if arr.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, arr.ndim)
    total = arr.shape[d]
    size = -(-total // chunks)
    if size == 0:  # an empty dim: torch returns `chunks` empty pieces
        return _record_multi(_pieces(arr, d, [0] * chunks), SplitWithSizesBackward0, input, d)
    return _record_multi(_pieces(arr, d, _split_sizes(total, size)), SplitBackward0, input, d)


@op()
def unbind(input: Tensor, dim: int = 0) -> tuple:
    """The slices of ``input`` along ``dim``, as views.

    Args:
        input: the tensor (at least 1-D).
        dim: the dim to remove.

    Returns:
        A tuple of views, the outputs of one ``UnbindBackward0``.

    Raises:
        IndexError: for a 0-d input or a dim out of range.

    Example:
        >>> import gradlens.engine as torch
        >>> [r.shape for r in torch.zeros(3, 2).unbind(1)]
        [torch.Size([3]), torch.Size([3])]
    """
    arr = input._data
    if arr.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = wrap_dim(dim, arr.ndim)
    pre = (slice(None),) * d
    return _record_multi([arr[pre + (i, Ellipsis)] for i in range(arr.shape[d])], UnbindBackward0, input, d)


@op()
def tensor_split(input: Tensor, indices_or_sections, dim: int = 0) -> tuple:
    """Split into views along ``dim``: ``n`` near-equal parts (the first ``size % n`` one longer) or at
    the listed indices. Each part is its own ``SliceBackward0`` view, as in torch."""
    arr = input._data
    if arr.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 "
                           "dims")
    d = wrap_dim(dim, arr.ndim)
    size = arr.shape[d]
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, (list, tuple)):
        bounds = [0] + [min(max(int(i) + size if int(i) < 0 else int(i), 0), size)
                        for i in indices_or_sections] + [size]
    else:
        n = int(indices_or_sections)
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        q, extra = divmod(size, n)
        bounds = [0]
        for i in range(n):
            bounds.append(bounds[-1] + q + (1 if i < extra else 0))
    return tuple(slice_view(input, d, bounds[i], max(bounds[i], bounds[i + 1]))
                 for i in range(len(bounds) - 1))


def _split_even(input: Tensor, sections, dim: int, name: str) -> tuple:
    if isinstance(sections, int):
        size = input._data.shape[dim]
        if sections == 0 or size % sections:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the "
                               f"dimension {size} is not divisible by the split_size {sections}!")
    return tensor_split(input, sections, dim)


@op()
def hsplit(input: Tensor, sections) -> tuple:
    """``tensor_split`` along dim 1 (dim 0 for 1-d tensors); an int must divide the size."""
    if input._data.ndim == 0:
        raise RuntimeError("torch.hsplit requires a tensor with at least 1 dimension, but got a tensor with "
                           "0 dimensions!")
    return _split_even(input, sections, 1 if input._data.ndim > 1 else 0, "hsplit")


@op()
def vsplit(input: Tensor, sections) -> tuple:
    """``tensor_split`` along dim 0 of a tensor with at least 2 dims; an int must divide the size."""
    if input._data.ndim < 2:
        raise RuntimeError(f"torch.vsplit requires a tensor with at least 2 dimension, but got a tensor with "
                           f"{input._data.ndim} dimensions!")
    return _split_even(input, sections, 0, "vsplit")


# --- flip / roll --------------------------------------------------------------------------------------
class FlipBackward0(Node):
    __slots__ = ("dims",)
    _saves = False

    def backward(self, g):
        g = _nd(g)
        if _is_array(g):
            return (np.flip(g, self.dims),)
        return (g.flip(self.dims),)


class RollBackward0(Node):
    __slots__ = ("shifts", "dims")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        back = tuple(-s for s in self.shifts)
        if _is_array(g):
            if self.dims is None:
                return (np.roll(g, back[0]),)
            return (np.roll(g, back, self.dims),)
        return (g.roll(back, self.dims),)


def _dims_list(dims, ndim: int) -> tuple:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    out = tuple(wrap_dim(int(d), ndim) for d in dims)
    for d in out:
        if out.count(d) > 1:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return out


@op()
def flip(input: Tensor, *dims) -> Tensor:
    """A copy with the order of elements reversed along ``dims``."""
    arr = input._data
    axes = _dims_list(dims, arr.ndim)
    out = np.flip(arr, axes).copy() if arr.ndim else arr.copy()
    res, node = record(out, FlipBackward0, input)
    if node is not None:
        node.dims = axes if arr.ndim else ()
    return res


@op()
def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Rotate elements by ``shifts`` along ``dims`` (the flattened tensor when ``dims`` is None)."""
    arr = input._data
    shifts_t = (int(shifts),) if not isinstance(shifts, (tuple, list)) else tuple(int(s) for s in shifts)
    if dims is None:
        if len(shifts_t) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts_t)}, dims:0")
        dims_t = None
        out = np.roll(arr, shifts_t[0])
    else:
        dims_t = (dims,) if not isinstance(dims, (tuple, list)) else tuple(dims)
        if len(dims_t) != len(shifts_t):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts_t)}, "
                               f"dims:{len(dims_t)}")
        dims_t = tuple(wrap_dim(d, arr.ndim) for d in dims_t)
        out = np.roll(arr, shifts_t, dims_t)
    res, node = record(out, RollBackward0, input)
    if node is not None:
        node.shifts, node.dims = shifts_t, dims_t
    return res


# --- narrow / select / slice --------------------------------------------------------------------------
class SliceBackward0(Node):
    __slots__ = ("shape", "key")
    _saves = False

    def backward(self, g):
        g = _nd(g)
        return (embed(g, self.shape, self.key, SliceBackwardBackward0),)


class SelectBackward0(SliceBackward0):
    __slots__ = ()

    def backward(self, g):
        g = _nd(g)
        return (embed(g, self.shape, self.key, SelectBackwardBackward0),)


def slice_view(input: Tensor, dim: int, start: int, stop: int, step: int = 1) -> Tensor:
    """``input[..., start:stop:step]`` along ``dim`` (already normalised) as a ``SliceBackward0`` view."""
    arr = input._data
    key = (slice(None),) * dim + (slice(start, stop, step),)
    res, node = view_of(arr[key], SliceBackward0, input)
    if node is not None:
        node.shape, node.key = arr.shape, key
    return res


def select_view(input: Tensor, dim: int, index: int) -> Tensor:
    """``input.select(dim, index)`` with ``index`` already in range (non-negative)."""
    arr = input._data
    key = (slice(None),) * dim + (index,)
    res, node = view_of(arr[key + (Ellipsis,)], SelectBackward0, input)
    if node is not None:
        node.shape, node.key = arr.shape, key
    return res


@op()
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The view ``input[..., start:start + length]`` along ``dim``.

    Args:
        input: the tensor (at least 1-D).
        dim: the dim to narrow.
        start: the first index (negative counts from the end).
        length: the number of elements kept (>= 0).

    Returns:
        A view (``SliceBackward0``).

    Raises:
        IndexError: when ``start`` is out of range.
        RuntimeError: when the range runs past the end, ``length`` is negative or ``input`` is 0-d.

    Example:
        >>> import gradlens.engine as torch
        >>> torch.arange(5).narrow(0, 1, 3).tolist()
        [1, 2, 3]
    """
    arr = input._data
    if arr.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, arr.ndim)
    size = arr.shape[d]
    start = int(start)
    length = int(length)
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], but got "
                         f"{start})")
    if start < 0:
        start += size
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return slice_view(input, d, start, start + length)


@op()
def select(input: Tensor, dim: int, index: int) -> Tensor:
    """The view of ``input`` at ``index`` along ``dim`` (that dim removed)."""
    arr = input._data
    if arr.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, arr.ndim)
    size = arr.shape[d]
    i = int(index)
    if not -size <= i < size:
        raise IndexError(f"select(): index {i} out of range for tensor of size {list(arr.shape)} at "
                         f"dimension {d}")
    return select_view(input, d, i + size if i < 0 else i)
