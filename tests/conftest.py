"""Shared test configuration: torch is optional, and tests that need it skip cleanly without it."""

from __future__ import annotations

import importlib.util

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None

requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install gradlens[torch])")


def pytest_configure(config):
    if HAS_TORCH:
        import torch

        torch.set_num_threads(1)
