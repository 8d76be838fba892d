"""Devices on a CPU-only engine: ``torch.device``, ``torch.cuda``, ``torch.accelerator``, ``torch.backends``.

Training scripts probe for accelerators before they start (``torch.cuda.is_available()``,
``torch.accelerator.current_accelerator()``, ``torch.backends.mps.is_available()``) and set cuDNN flags. The
native engine answers these honestly: only the CPU exists. A ``device`` object can name any device type, as
torch's can (``torch.device("cuda")`` works on a CPU-only torch); moving data to a device the engine has not
raises the error a CPU-only torch build raises, with the same type and text.
"""

from __future__ import annotations

import types

import numpy as np

# torch's device types, in the order its parser error lists them
DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia",
                "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")


class device:  # noqa: N801 - torch's name
    """A device name: ``device("cpu")``, ``device("cuda:1")``, ``device("cuda", 0)``, ``device(other)``."""

    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):  # noqa: A002 - torch's argument name
        if isinstance(type, device):
            type, index = type.type, type.index  # noqa: A001
        elif isinstance(type, (int, np.integer)) and not isinstance(type, bool):
            # torch reads a bare index as an ordinal of the current accelerator; a CPU-only build has none
            if type < 0:
                raise RuntimeError("Device index must not be negative")
            raise RuntimeError("Cannot access accelerator device when none is available.")
        elif not isinstance(type, str):
            raise TypeError(f"device() received an invalid combination of arguments - got "
                            f"({_type_name(type)}), but expected one of:\n * (torch.device device)\n"
                            f" * (str type, int index = -1)")
        name, _, idx = type.partition(":")
        if name not in DEVICE_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(DEVICE_TYPES)} device type at start of device "
                               f"string: {type}")
        if idx:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was passed "
                                   f"explicitly: {type}")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if index is not None and index < 0:
            raise RuntimeError(f"Device index must not be negative, got {index}")
        self.type = name
        self.index = index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        # as torch: only another device compares equal (torch.device('cpu') == 'cpu' is False)
        return isinstance(other, device) and other.type == self.type and other.index == self.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (self.type, self.index))


def _type_name(value) -> str:
    return type(value).__name__


def require_available(value, creating: bool = False) -> device:
    """The device ``value`` names, or the error a CPU-only torch raises when data is moved there, or, with
    ``creating``, allocated there: a device type this build does not link (mps, hip, ...) then has no kernel
    to allocate with (NotImplementedError, not RuntimeError)."""
    dev = value if isinstance(value, device) else device(value)
    if dev.type == "cpu":
        return dev
    if dev.type in ("cuda", "xpu"):
        raise AssertionError(f"Torch not compiled with {dev.type.upper()} enabled")
    if creating:
        raise NotImplementedError(f"Could not run 'aten::empty.memory_format' with arguments from the "
                                  f"'{dev.type.upper()}' backend. This could be because the operator doesn't exist "
                                  f"for this backend, or was omitted during the selective/custom build process "
                                  f"(if using custom build).")
    raise RuntimeError(f"PyTorch is not linked with support for {dev.type} devices")


# --- torch.cuda ---------------------------------------------------------------------------------------------
def _false() -> bool:
    return False


def _zero() -> int:
    return 0


def _no_cuda(*args, **kwargs):
    raise AssertionError("Torch not compiled with CUDA enabled")


def _nothing(*args, **kwargs) -> None:
    return None


cuda = types.ModuleType("gradlens.engine.cuda", "CUDA on a CPU-only engine: never available.")
cuda.is_available = _false
cuda.device_count = _zero
cuda.is_initialized = _false
cuda.current_device = _no_cuda
cuda.get_device_name = _no_cuda
cuda.set_device = _no_cuda
cuda.synchronize = _no_cuda
cuda.manual_seed = _nothing  # torch: silently ignored without CUDA
cuda.manual_seed_all = _nothing
cuda.empty_cache = _nothing


# --- torch.accelerator --------------------------------------------------------------------------------------
accelerator = types.ModuleType("gradlens.engine.accelerator", "The current accelerator: none on the CPU.")
accelerator.is_available = _false
accelerator.device_count = _zero


def _current_accelerator(check_available: bool = False):
    return None


accelerator.current_accelerator = _current_accelerator


# --- torch.backends -----------------------------------------------------------------------------------------
backends = types.ModuleType("gradlens.engine.backends", "Backend flags scripts set; none changes a CPU result.")
backends.mps = types.ModuleType("gradlens.engine.backends.mps")
backends.mps.is_available = _false
backends.mps.is_built = _false
backends.cudnn = types.ModuleType("gradlens.engine.backends.cudnn")
backends.cudnn.deterministic = False
backends.cudnn.benchmark = False
backends.cudnn.enabled = True
backends.cudnn.allow_tf32 = True
backends.cudnn.is_available = _false
backends.cuda = types.ModuleType("gradlens.engine.backends.cuda")
backends.cuda.is_built = _false
backends.__path__ = []  # a package, so `import torch.backends.cudnn as cudnn` works
cuda.__path__ = []

__all__ = ["device", "require_available", "cuda", "accelerator", "backends", "DEVICE_TYPES"]


def _register_submodules() -> None:
    """Make ``import gradlens.engine.cuda`` (and ``.backends.cudnn`` ...) work as ``import torch.cuda`` does."""
    import sys

    for name, module in (("cuda", cuda), ("accelerator", accelerator), ("backends", backends),
                         ("backends.mps", backends.mps), ("backends.cudnn", backends.cudnn),
                         ("backends.cuda", backends.cuda)):
        sys.modules.setdefault(f"gradlens.engine.{name}", module)


_register_submodules()
