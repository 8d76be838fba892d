"""Stress-suite configuration: prints how many distinct op/shape/dtype combinations the fuzzers ran, and
the figures of the random training programs (programs run, bugs injected, caught, missed, false alarms)."""

from __future__ import annotations

from . import _combos, programs


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tally = programs.TALLY
    if tally.programs:
        terminalreporter.write_line(f"gradlens training programs: {tally.summary()}; caught/injected per rule: "
                                    f"{tally.per_rule()}")
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
