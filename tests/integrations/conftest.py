"""Helpers for the integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import gradlens

SOURCE_ROOT = str(Path(gradlens.__file__).resolve().parents[1])


def env_with_this_gradlens(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose Python processes import the gradlens under test (not whichever checkout an
    editable install points at)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SOURCE_ROOT, env.get("PYTHONPATH", "")) if p)
    return env
