"""The ``lib`` fixture: every watch test runs on torch and on gradlens.engine (skipped where an engine
lacks what the test needs, with the missing piece named)."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _native_missing() -> str | None:
    import gradlens.engine as eng

    try:
        nn = importlib.import_module("gradlens.engine.nn")
        optim = importlib.import_module("gradlens.engine.optim")
        mod = importlib.import_module("gradlens.engine.nn.modules.module")
    except ImportError as exc:
        return f"gradlens.engine is missing {exc.name}"
    for owner, name in (
        (nn, "Module"),
        (nn, "Linear"),
        (optim, "SGD"),
        (mod, "register_module_forward_pre_hook"),
        (eng, "randn"),
        (eng, "manual_seed"),
    ):
        if not hasattr(owner, name):
            return f"gradlens.engine is missing {owner.__name__}.{name}"
    return None


@pytest.fixture(params=["torch", "native"])
def lib(request):
    """The engine module (``torch`` or ``gradlens.engine``), seeded."""
    if request.param == "torch":
        if not HAS_TORCH:
            pytest.skip("torch is not installed")
        import torch as lib_
    else:
        missing = _native_missing()
        if missing:
            pytest.skip(missing)
        import gradlens.engine as lib_
    lib_.manual_seed(0)
    return lib_


def need(lib, *paths: str) -> None:
    """Skip unless ``lib`` has every dotted attribute path (e.g. ``"optim.LBFGS"``)."""
    for path in paths:
        obj = lib
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                pytest.skip(f"{lib.__name__} has no {path}")
