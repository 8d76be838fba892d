"""Stress-suite configuration: prints how many distinct op/shape/dtype combinations the fuzzers ran."""

from __future__ import annotations

from . import _combos


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _combos.COMBOS:
        return
    ops = {c[0] for c in _combos.COMBOS}
    labels = {c[1] for c in _combos.COMBOS}
    errors = sum(1 for c in _combos.COMBOS if c[-1] == "error")
    terminalreporter.write_line(
        f"gradlens fuzz: {len(_combos.COMBOS)} distinct op/argument/shape/dtype combinations over "
        f"{len(ops)} ops ({len(labels)} op+argument variants; {errors} combinations checked as rejected by "
        f"both engines); {_combos.PROGRAMS[0]} programs compared, {_combos.QUIRKS[0]} skipped as torch's "
        "empty-result quirk"
    )
