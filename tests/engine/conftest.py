"""The ``lib`` fixture of the engine tests that run one body on both engines: ``gradlens.engine`` and, when
installed, ``torch`` (most engine tests compare the two through ``tests/parity.py`` instead)."""

from __future__ import annotations

import pytest

import gradlens.engine as ge

from ..conftest import HAS_TORCH

ENGINES = [pytest.param("native", id="native"),
           pytest.param("torch", id="torch", marks=pytest.mark.skipif(not HAS_TORCH, reason="no torch"))]


@pytest.fixture(params=ENGINES)
def lib(request):
    """The engine module under test."""
    if request.param == "torch":
        import torch

        return torch
    return ge
