"""The gradlens pytest plugin (registered through the ``pytest11`` entry point, so installing gradlens is
enough).

- ``pytest --gradlens`` watches every test; ``@pytest.mark.gradlens(...)`` watches one test without the
  flag and takes ``gradlens.watch``'s options (``accumulation=``, ``ignore=``, ``sample_every=`` ...) plus
  ``fail_on=``.
- A test whose code has a finding at or above the ``fail_on`` level (default ``warning``) fails with a
  short message; ``-v`` adds the full gradlens report.
- The ``gradlens`` fixture watches the test (from the fixture's setup on) and yields its ``Lens``.
- ini options set the defaults: ``gradlens`` (watch every test), ``gradlens_fail_on``, ``gradlens_ignore``.
- With ``GITHUB_ACTIONS=true``, the findings that failed tests are also printed as workflow annotations.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "gradlens"]

FAIL_ON = ("error", "warning", "info", "never")
_LEVELS = {"error": 0, "warning": 1, "info": 2}


@dataclass
class _State:
    """One test's watch: the ``Watch`` it entered, its lens, and when it fails."""

    watch: Any
    lens: Any
    fail_on: str
    closed: bool = False


@dataclass
class _Totals:
    watched: int = 0
    failed: list[tuple[str, Any]] = field(default_factory=list)  # (test id, finding)


_STATE = pytest.StashKey[_State]()
_TOTALS = pytest.StashKey[_Totals]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradlens", "gradlens: watch tests' training code for autograd bugs")
    group.addoption("--gradlens", action="store_true", default=False,
                    help="watch every test with gradlens.watch and fail tests with findings")
    group.addoption("--gradlens-fail-on", choices=FAIL_ON, default=None,
                    help="fail a watched test on a finding at least this severe (default: ini "
                         "gradlens_fail_on, else warning)")
    parser.addini("gradlens", type="bool", default=False, help="gradlens: watch every test (like --gradlens)")
    parser.addini("gradlens_fail_on", default="warning",
                  help="gradlens: fail a watched test on a finding at least this severe "
                       "(error|warning|info|never)")
    parser.addini("gradlens_ignore", type="args", default=[],
                  help="gradlens: rule slugs never reported (e.g. accumulation graph-retained)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gradlens(**options): watch this test with gradlens.watch(**options); fail_on='error|warning|info|"
        "never' sets when a finding fails it")
    config.stash[_TOTALS] = _Totals()


def _fail_on_default(config: pytest.Config) -> str:
    value = config.getoption("gradlens_fail_on") or config.getini("gradlens_fail_on") or "warning"
    if value not in FAIL_ON:
        raise pytest.UsageError(f"gradlens_fail_on expects one of {', '.join(FAIL_ON)}; received {value!r}")
    return value


def _watch_options(item: pytest.Item, forced: bool = False) -> tuple[dict[str, Any], str] | None:
    """The watch options and fail level of a test, or None when it is not watched."""
    config = item.config
    marker = item.get_closest_marker("gradlens")
    everything = config.getoption("gradlens") or config.getini("gradlens")
    if marker is None and not everything and not forced:
        return None
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        pytest.fail(f"@pytest.mark.gradlens takes keyword options only (those of gradlens.watch, and "
                    f"fail_on=); received {marker.args!r}", pytrace=False)
    fail_on = options.pop("fail_on", None) or _fail_on_default(config)
    if fail_on not in FAIL_ON:
        pytest.fail(f"gradlens fail_on expects one of {', '.join(FAIL_ON)}; received {fail_on!r}",
                    pytrace=False)
    ignore = options.get("ignore", ())
    ignore = (ignore,) if isinstance(ignore, str) else tuple(ignore)
    options["ignore"] = tuple(dict.fromkeys([*config.getini("gradlens_ignore"), *ignore]))
    options.setdefault("on_finding", "collect")
    return options, fail_on


def _start(item: pytest.Item, forced: bool = False) -> _State | None:
    state = item.stash.get(_STATE, None)
    if state is not None:
        return state
    found = _watch_options(item, forced)
    if found is None:
        return None
    options, fail_on = found
    from ..instrument.watch import watch

    try:
        w = watch(**options)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"gradlens options: {exc}", pytrace=False)
    state = _State(w, w.__enter__(), fail_on)
    item.stash[_STATE] = state
    item.config.stash[_TOTALS].watched += 1
    return state


def _stop(state: _State) -> None:
    if state.closed:
        return
    state.closed = True
    exc_type, exc, tb = sys.exc_info()
    state.watch.__exit__(exc_type, exc, tb)


@pytest.fixture
def gradlens(request: pytest.FixtureRequest):
    """Watch this test with gradlens (from this fixture's setup on) and yield the ``Lens``.

    The marker's options and the ini defaults apply; the watch closes when the test body returns.
    """
    state = _start(request.node, forced=True)
    assert state is not None
    try:
        yield state.lens
    finally:
        _stop(state)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    state = _start(item)
    if state is None:
        return (yield)
    try:
        return (yield)
    finally:
        _stop(state)


def _reaching(findings: list[Any], fail_on: str) -> list[Any]:
    if fail_on == "never":
        return []
    limit = _LEVELS[fail_on]
    return [f for f in findings if _LEVELS.get(f.severity, 3) <= limit]


def _first_sentence(text: str, limit: int = 200) -> str:
    cut = text.find(". ")
    text = text if cut < 0 else text[:cut + 1]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _where(f: Any, root: str) -> str:
    if f.location is None:
        return ""
    from ..report.base import display_path

    return f" at {display_path(f.location.file, root)}:{f.location.line}"


def failure_message(findings: list[Any], fail_on: str, root: str, full_report: str | None = None) -> str:
    """The short text of a test failed by gradlens (the full report appended when given)."""
    n = len(findings)
    lines = [f"gradlens: {n} finding{'s' if n != 1 else ''} at or above {fail_on!r} in this test:"]
    for f in findings:
        step = f" (step {f.step})" if f.step is not None else ""
        lines.append(f"  {f.severity.upper()} {f.kind}{_where(f, root)}{step}: {_first_sentence(f.message)}")
    if full_report is None:
        lines.append("(-v shows the full gradlens report; silence a rule with @pytest.mark.gradlens("
                     f"ignore=[{findings[0].kind!r}]) or gradlens_ignore in the ini file)")
    else:
        lines += ["", full_report.rstrip()]
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    state = item.stash.get(_STATE, None)
    if call.when != "call" or state is None or not state.closed:
        return report
    bad = _reaching(state.lens.findings, state.fail_on)
    if bad and report.passed and not hasattr(report, "wasxfail"):
        root = str(item.config.rootpath)
        full = _full_report(state.lens, item.nodeid, root) if item.config.getoption("verbose") > 0 else None
        report.outcome = "failed"
        report.longrepr = failure_message(bad, state.fail_on, root, full)
        item.config.stash[_TOTALS].failed.extend((item.nodeid, f) for f in bad)
    return report


def _full_report(lens: Any, nodeid: str, root: str) -> str:
    """The lens as ``gradlens report`` prints it."""
    from ..record import record_from_sessions
    from ..report import get_reporter

    record = record_from_sessions([lens.to_dict()], command=(nodeid,), exit_status=0, root=root)
    return get_reporter("text").render(record)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    totals = config.stash.get(_TOTALS, None)
    if totals is None or not totals.watched:
        return
    failed_tests = len({nodeid for nodeid, _ in totals.failed})
    terminalreporter.write_sep("-", "gradlens")
    plural = "s" if totals.watched != 1 else ""
    terminalreporter.write_line(f"gradlens: watched {totals.watched} test{plural}; {failed_tests} failed on "
                                "findings")
    from .github import annotations, in_github_actions

    if in_github_actions() and totals.failed:
        annotations([f for _, f in totals.failed], _Lines(terminalreporter), root=str(config.rootpath))


class _Lines:
    """A text stream that writes through pytest's terminal reporter."""

    def __init__(self, reporter: Any):
        self._reporter = reporter

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self._reporter.write_line(line)
        return len(text)

    def flush(self) -> None:
        pass


