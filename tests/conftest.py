"""Shared test configuration: torch is optional, and tests that need it skip cleanly without it."""

from __future__ import annotations

import importlib.util
import os

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None

# Property-based tests explore new random programs on every local run; under CI (CI=true) they replay the
# same derandomized examples, so a landing never depends on the luck of the draw.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is a dev extra; its tests skip without it
    pass

requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install gradlens[torch])")


def pytest_configure(config):
    if HAS_TORCH:
        import torch

        torch.set_num_threads(1)
