"""Pick the engine an example runs on: gradlens's native engine by default, real torch with
``--engine torch`` or ``GRADLENS_ENGINE=torch``. Examples import ``torch`` from here and are otherwise
ordinary PyTorch scripts."""

from __future__ import annotations

import importlib
import os
import sys


def load_engine():
    """Return the torch-compatible module to use, removing ``--engine NAME`` from ``sys.argv``."""
    name = os.environ.get("GRADLENS_ENGINE", "native")
    if "--engine" in sys.argv:
        i = sys.argv.index("--engine")
        if i + 1 >= len(sys.argv):
            sys.exit("--engine needs a value: native or torch")
        name = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    if name not in ("native", "torch"):
        sys.exit(f"unknown engine {name!r}: expected 'native' or 'torch'")
    return importlib.import_module("gradlens.engine" if name == "native" else "torch")
