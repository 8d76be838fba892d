"""gradlens: find the autograd bugs that make PyTorch training silently wrong.

The package root only re-exports the public API. Names are resolved lazily so that ``import gradlens``
stays cheap and never imports torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "GradlensError": "gradlens.errors",
    "GradlensWarning": "gradlens.errors",
    "GraphvizNotFoundError": "gradlens.errors",
    "RecordError": "gradlens.errors",
    "FindingError": "gradlens.errors",
    "watch": "gradlens.instrument.watch",
    "Lens": "gradlens.instrument.watch",
    "Finding": "gradlens.findings",
    "Location": "gradlens.findings",
    "RULES": "gradlens.findings",
    "graph": "gradlens.graphs",
    "to_dot": "gradlens.export.dot",
    "render": "gradlens.export.render",
    "to_svg": "gradlens.export.svg",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gradlens' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython):
    """``%load_ext gradlens`` in Jupyter/IPython (see ``gradlens.integrations.ipython``)."""
    from .integrations.ipython import load_ipython_extension as load

    load(ipython)


def __dir__():
    return sorted(set(globals()) | set(__all__))
