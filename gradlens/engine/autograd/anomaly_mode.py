"""torch's anomaly mode for the native engine: ``detect_anomaly``, ``set_detect_anomaly``,
``is_anomaly_enabled``.

With it on, each node records the Python stack of the forward call that created it; when its backward
raises, a UserWarning "Error detected in <Node>. Traceback of forward call that caused the error:" shows
that stack before the error propagates, and (``check_nan``) a node whose backward returns a gradient with
nan raises "Function '<Node>' returned nan values in its <i>th output." These are the texts torch prints,
so the engine's own error hint ("enable anomaly detection ...") leads somewhere. Like torch's, the mode is
process-wide, and costs nothing when off (one flag read per node created and per backward). As in torch,
``is_anomaly_enabled`` and friends live on the top-level module, not on ``autograd``.
"""

from __future__ import annotations

import os
import traceback
import warnings

import numpy as np

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "is_anomaly_check_nan_enabled",
           "set_anomaly_enabled"]

_ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # gradlens/engine


class _Mode:
    __slots__ = ("enabled", "check_nan")

    def __init__(self):
        self.enabled = False
        self.check_nan = True


MODE = _Mode()


def is_anomaly_enabled() -> bool:
    return MODE.enabled


def is_anomaly_check_nan_enabled() -> bool:
    return MODE.check_nan


def set_anomaly_enabled(enabled: bool, check_nan: bool = True) -> None:
    MODE.enabled, MODE.check_nan = bool(enabled), bool(check_nan)


class detect_anomaly:  # noqa: N801 - torch's name
    """Context manager that turns anomaly detection on for its block (not a decorator, as in torch)."""

    def __init__(self, check_nan: bool = True) -> None:
        self.prev = MODE.enabled
        self.check_nan = check_nan
        self.prev_check_nan = MODE.check_nan
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and should only "
                      "be enabled for debugging.", stacklevel=2)

    def __enter__(self) -> None:
        set_anomaly_enabled(True, self.check_nan)

    def __exit__(self, *exc) -> None:
        set_anomaly_enabled(self.prev, self.prev_check_nan)


class set_detect_anomaly:  # noqa: N801 - torch's name
    """Turn anomaly detection on or off now (``set_detect_anomaly(True)``), or for a ``with`` block."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.prev, self.prev_check_nan = MODE.enabled, MODE.check_nan
        set_anomaly_enabled(mode, check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        set_anomaly_enabled(self.prev, self.prev_check_nan)


# --- used by the graph and the backward loop --------------------------------------------------------------
def forward_stack() -> list:
    """The creating call's stack without the engine's own frames (stored on a node while the mode is on)."""
    frames = traceback.extract_stack()[:-2]
    return [f for f in frames if not f.filename.startswith(_ENGINE_DIR)]


def warn_forward_trace(node) -> None:
    """torch's warning before a failing node's error propagates: where the node's forward was called."""
    stack = getattr(node, "_trace", None)
    text = "".join(traceback.format_list(stack)) if stack else ""
    warnings.warn(f"Error detected in {type(node).__name__}. Traceback of forward call that caused the "
                  f"error:\n{text}", UserWarning, stacklevel=2)


def check_nan(node, grads) -> None:
    """torch's RuntimeError for a backward output that holds nan (``check_nan``)."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        arr = getattr(g, "_data", g)
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc" and np.isnan(arr).any():
            raise RuntimeError(f"Function '{type(node).__name__}' returned nan values in its {i}th output.")
