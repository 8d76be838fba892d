"""Adapters: the only code that knows an autograd engine. ``adapter_for(obj)`` picks the one that owns
an object; each adapter imports its engine lazily, so importing this package imports neither torch nor
``gradlens.engine``."""

from __future__ import annotations

from typing import Any

from .base import MODULE_KEY, STEP_KEY, GraphAdapter, NodeInfo
from .native import NativeAdapter
from .torch import TorchAdapter

__all__ = ["GraphAdapter", "NodeInfo", "TorchAdapter", "NativeAdapter", "ADAPTERS", "adapter_for",
           "STEP_KEY", "MODULE_KEY"]

ADAPTERS: tuple[GraphAdapter, ...] = (TorchAdapter(), NativeAdapter())
"""One adapter per engine, asked in order."""


def adapter_for(obj: Any) -> GraphAdapter | None:
    """The adapter that owns ``obj`` (a tensor or backward node of some engine), or None.

    Args:
        obj: any object.

    Returns:
        The owning adapter, or None when no engine claims ``obj``.

    Example:
        >>> import gradlens.engine as ge
        >>> adapter_for(ge.tensor([1.0])).engine
        'native'
    """
    for adapter in ADAPTERS:
        if adapter.owns(obj):
            return adapter
    return None
