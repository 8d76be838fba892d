"""Mechanical fixes for findings, as unified diffs against the user's files (``gradlens report --fix``).

Each fix kind is one small module that turns a finding and the parsed source file into line edits; the
registry maps rule slugs to them; ``plan_fixes`` runs them over a record and ``FixPlan.diff()`` renders the
result as a ``git apply`` / ``patch -p1`` compatible diff. Nothing here writes a file unless
``FixPlan.apply()`` is called.
"""

from .edits import Edit, FileFix
from .registry import FIXERS, Fix, FixPlan, Skipped, plan_fixes

__all__ = ["Edit", "FileFix", "FIXERS", "Fix", "FixPlan", "Skipped", "plan_fixes"]
