"""``torch.save`` / ``torch.load`` for the native engine, in a format that is safe to load.

A checkpoint is a zip archive: ``gradlens-archive/manifest.json`` describes the saved object's structure
(dicts, lists, tuples, numbers, strings, None, tensors) and each tensor is one ``.npy`` array beside it,
read back with ``allow_pickle=False``. Loading such a file never runs code. Objects outside that vocabulary
(a whole module, an optimizer's custom class) are pickled into the archive on save, as torch would, but
loading them needs an explicit ``weights_only=False``, as torch's own safe default asks.

Files written by real ``torch.save`` are pickle-based (torch's zip of ``data.pkl`` plus storages); reading
them safely would mean reimplementing torch's restricted unpickler, so ``load`` recognises them and says how
to convert them instead of guessing.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import zipfile

import numpy as np

from .tensor import Tensor

FORMAT = "gradlens.engine.save"
VERSION = 1
_ROOT = "gradlens-archive"
_MANIFEST = f"{_ROOT}/manifest.json"


class _Writer:
    """Walks the object once, writing each distinct tensor as one .npy entry."""

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        self.tensor_ids: dict[int, int] = {}
        self.keep_alive: list = []  # id() keys stay unique while the walk runs
        self.pickles = 0

    def encode(self, obj):
        from .nn.parameter import Parameter

        if isinstance(obj, Tensor):
            key = id(obj)
            if key not in self.tensor_ids:
                self.tensor_ids[key] = len(self.tensor_ids)
                self.keep_alive.append(obj)
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(obj._data), allow_pickle=False)
                self.archive.writestr(f"{_ROOT}/tensors/{self.tensor_ids[key]}.npy", buf.getvalue())
            return {"kind": "tensor", "id": self.tensor_ids[key], "requires_grad": bool(obj.requires_grad),
                    "parameter": isinstance(obj, Parameter)}
        if obj is None or isinstance(obj, (bool, str)):
            return {"kind": "value", "value": obj}
        if isinstance(obj, int):
            return {"kind": "value", "value": obj}
        if isinstance(obj, float):
            return {"kind": "float", "value": repr(obj)}  # repr keeps inf/nan and every bit
        if isinstance(obj, (np.integer, np.floating, np.bool_)):
            return self.encode(obj.item())
        if type(obj) in (dict, collections.OrderedDict) and all(isinstance(k, (str, int)) for k in obj):
            return {"kind": "dict", "ordered": type(obj) is collections.OrderedDict,
                    "items": [[k, self.encode(v)] for k, v in obj.items()],
                    "metadata": self._metadata(obj)}
        if type(obj) in (list, tuple):
            return {"kind": type(obj).__name__, "items": [self.encode(v) for v in obj]}
        return self._pickle(obj)

    def _metadata(self, obj):
        meta = getattr(obj, "_metadata", None)  # state_dict()'s per-module versions
        if meta is None:
            return None
        try:
            json.dumps(meta)
        except TypeError:
            return None
        return meta

    def _pickle(self, obj):
        name = f"{_ROOT}/objects/{self.pickles}.pkl"
        self.pickles += 1
        self.archive.writestr(name, pickle.dumps(obj))
        return {"kind": "pickle", "entry": name, "type": f"{type(obj).__module__}.{type(obj).__qualname__}"}


def save(obj, f, pickle_module=None, pickle_protocol: int = 2, _use_new_zipfile_serialization: bool = True) -> None:
    """Save ``obj`` (tensors, state dicts, containers of them and of numbers) to a path or binary file.

    Args:
        obj: what to save; tensors, dicts with str/int keys, lists, tuples, numbers, strings and None are
            stored as data; anything else is pickled and needs ``weights_only=False`` to load.
        f: a path (str or os.PathLike) or a writable binary file object.

    Example:
        >>> import io, gradlens.engine as torch
        >>> buf = io.BytesIO(); torch.save({"w": torch.ones(2)}, buf); _ = buf.seek(0)
        >>> torch.load(buf)["w"]
        tensor([1., 1.])
    """
    target = os.fspath(f) if isinstance(f, (str, os.PathLike)) else f
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        writer = _Writer(archive)
        root = writer.encode(obj)
        archive.writestr(_MANIFEST, json.dumps({"format": FORMAT, "version": VERSION, "root": root}))


def _torch_file_error(what: str) -> RuntimeError:
    return RuntimeError(
        f"{what} was written by torch.save (a pickle-based format), which gradlens.engine does not read: "
        "unpickling it safely needs torch's own restricted unpickler. Convert it with real torch, e.g. "
        "`gradlens.engine.save({k: gradlens.engine.tensor(v.numpy()) for k, v in torch.load(path).items()}, "
        "new_path)`, then load the new file.")


class _Reader:
    def __init__(self, archive: zipfile.ZipFile, weights_only: bool):
        self.archive = archive
        self.weights_only = weights_only
        self.tensors: dict[int, Tensor] = {}

    def decode(self, node):
        kind = node["kind"]
        if kind == "value":
            return node["value"]
        if kind == "float":
            return float(node["value"])
        if kind == "tensor":
            return self._tensor(node)
        if kind == "dict":
            cls = collections.OrderedDict if node["ordered"] else dict
            out = cls((k, self.decode(v)) for k, v in node["items"])
            if node.get("metadata") is not None:
                out._metadata = node["metadata"]
            return out
        if kind in ("list", "tuple"):
            items = [self.decode(v) for v in node["items"]]
            return items if kind == "list" else tuple(items)
        if kind == "pickle":
            data = self.archive.read(node["entry"])
            if self.weights_only:
                return _RestrictedUnpickler(io.BytesIO(data), node["type"]).load()
            return pickle.loads(data)
        raise RuntimeError(f"gradlens.engine.load: unknown entry kind {kind!r} in the manifest; the file was "
                           f"written by a newer gradlens, upgrade it to load the file")

    def _tensor(self, node):
        from .nn.parameter import Parameter

        tid = node["id"]
        if tid not in self.tensors:
            with self.archive.open(f"{_ROOT}/tensors/{tid}.npy") as fh:
                arr = np.load(io.BytesIO(fh.read()), allow_pickle=False)
            if node["parameter"]:
                t = Parameter(Tensor._make(arr), requires_grad=node["requires_grad"])
            else:
                t = Tensor._make(arr)
                if node["requires_grad"]:
                    t.requires_grad_(True)
            self.tensors[tid] = t
        return self.tensors[tid]


# what a pickled engine module or tensor needs besides the user's allow-list: data, never behaviour
_BASE_SAFE = {
    ("gradlens.engine.tensor", "_rebuild"), ("gradlens.engine.nn.parameter", "_rebuild_parameter"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "slice"), ("builtins", "complex"), ("gradlens.engine.device", "device"),
    ("gradlens.engine._dtype", "dtype"),
}
_user_safe: dict[tuple[str, str], object] = {}
_scoped_safe: list[dict[tuple[str, str], object]] = []


def _global_key(obj) -> tuple[str, str]:
    return (obj.__module__, obj.__qualname__)


def add_safe_globals(safe_globals) -> None:
    """Allow these classes/functions in pickled objects loaded with ``weights_only=True`` (as torch's)."""
    for obj in safe_globals:
        _user_safe[_global_key(obj)] = obj


def get_safe_globals() -> list:
    return list(_user_safe.values())


def clear_safe_globals() -> None:
    _user_safe.clear()


class safe_globals:  # noqa: N801 - torch's name
    """Context manager: ``with torch.serialization.safe_globals([Model, nn.Linear]): torch.load(f)``."""

    def __init__(self, safe_globals):
        self.allowed = {_global_key(obj): obj for obj in safe_globals}

    def __enter__(self):
        _scoped_safe.append(self.allowed)
        return self

    def __exit__(self, *exc):
        _scoped_safe.remove(self.allowed)
        return False


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only the data-like globals above plus those the user allowed (torch's weights_only rule)."""

    def __init__(self, file, type_name: str):
        super().__init__(file)
        self.type_name = type_name

    def find_class(self, module: str, name: str):
        key = (module, name)
        for allowed in (*_scoped_safe, _user_safe):
            if key in allowed:
                return allowed[key]
        if key in _BASE_SAFE:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Weights only load failed: the file holds a pickled {self.type_name} object that uses the global "
            f"{module}.{name}, which is not allowed (unpickling can run arbitrary code). If you trust the "
            f"file's source, allow it with gradlens.engine.serialization.add_safe_globals([{name}]) or the "
            f"safe_globals([...]) context manager, or pass weights_only=False.")


def load(f, map_location=None, pickle_module=None, *, weights_only: bool | None = None, mmap=None, **kwargs):
    """Load what ``save`` wrote, from a path or a readable, seekable binary file.

    Args:
        f: a path or a binary file object.
        map_location: accepted as torch's; only the CPU exists, so any other device raises torch's error.
        weights_only: True (the default, as in torch) refuses pickled objects; pass False explicitly to
            unpickle objects that ``save`` could not store as data (only for files you trust).

    Raises:
        RuntimeError: the file is not a gradlens.engine checkpoint (e.g. one torch wrote).
        pickle.UnpicklingError: the file holds a pickled object and ``weights_only`` is not False.
    """
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        from .device import require_available

        require_available(map_location)
    what = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else "the file"
    source = os.fspath(f) if isinstance(f, (str, os.PathLike)) else f
    try:
        archive = zipfile.ZipFile(source, "r")
    except zipfile.BadZipFile:
        raise RuntimeError(f"{what} is not a gradlens.engine checkpoint (not a zip archive); expected a file "
                           f"written by gradlens.engine.save") from None
    with archive:
        names = archive.namelist()
        if _MANIFEST not in names:
            if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
                raise _torch_file_error(what)
            raise RuntimeError(f"{what} is a zip archive but not a gradlens.engine checkpoint (no {_MANIFEST}); "
                               f"expected a file written by gradlens.engine.save")
        manifest = json.loads(archive.read(_MANIFEST))
        if manifest.get("format") != FORMAT or manifest.get("version", 0) > VERSION:
            raise RuntimeError(f"{what}: unsupported checkpoint format {manifest.get('format')!r} version "
                               f"{manifest.get('version')!r}; expected {FORMAT!r} version <= {VERSION}")
        return _Reader(archive, weights_only is not False).decode(manifest["root"])


__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals"]
