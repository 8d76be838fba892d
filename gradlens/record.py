"""The run record: everything one ``gradlens report`` run learned, as versioned plain data.

A record is what every report format renders from, and what ``gradlens report --format json`` writes, so a
JSON report can be re-rendered later in any other format (``gradlens report run.json --format html``). It
holds the command that ran, the engines seen, the optimizer steps counted, how the script ended (exit
status and, for a crash, the exception and its traceback), the findings (``Finding.to_dict()``), what
gradlens could not check, and the source statements the findings point at with a few lines around each
(``source_context``) — snapshotted while the script ran, so rendering a record never reads files named
inside it. Readers ignore fields they do not know, so adding a field keeps the format at version 1.

Reading a record only parses JSON: it never unpickles, imports or executes anything. Truncated, foreign or
newer-version input raises ``gradlens.errors.RecordError`` with a message that says what was expected.
"""

from __future__ import annotations

import json
import linecache
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import RecordError
from .findings import SEVERITIES, Finding, Location

__all__ = ["RECORD_FORMAT", "RECORD_VERSION", "Crash", "RunRecord", "load_record", "parse_record",
           "record_from_sessions", "snapshot_statements", "snapshot_context", "severity_rank", "SourceWindow",
           "CONTEXT_LINES"]

RECORD_FORMAT = "gradlens.report"
"""The value of ``"format"`` in every record; a JSON file without it is not a gradlens record."""

RECORD_VERSION = 1
"""Bumped on any change that an older reader would misread."""

CONTEXT_LINES = 2
"""How many source lines before and after a finding's line the record keeps (as pytest shows them)."""


def severity_rank(severity: str) -> int:
    """0 for the most severe (``"error"``), larger for milder ones; unknown severities sort last."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


@dataclass(frozen=True)
class Crash:
    """How a script ended abnormally.

    Attributes:
        kind: ``"exception"`` (an uncaught exception, a syntax error included) or ``"interrupt"``
            (``KeyboardInterrupt``).
        type: the exception's class name (``"ValueError"``).
        message: ``str()`` of the exception.
        traceback: the traceback as Python prints it, frames of gradlens and ``runpy`` removed.
    """

    kind: str
    type: str
    message: str
    traceback: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Crash:
        return cls(str(data["kind"]), str(data["type"]), str(data["message"]), str(data.get("traceback", "")))


@dataclass(frozen=True)
class SourceWindow:
    """A few source lines around a finding's line, read while the script ran.

    Attributes:
        first: the line number of ``lines[0]``.
        lines: the lines as written (indentation kept, line endings removed).
    """

    first: int
    lines: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "lines": list(self.lines)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceWindow:
        return cls(_int(data["first"]), tuple(str(line) for line in _sequence(data["lines"])))


@dataclass(frozen=True)
class RunRecord:
    """What one watched run of a training script found, as plain data.

    Attributes:
        command: the target and its arguments as given (``["train.py", "--epochs", "3"]``, or
            ``["-m", "pkg.train"]`` for a module).
        engines: engines the script used (``"native"``, ``"torch"``).
        steps: optimizer steps observed.
        exit_status: the script's exit status (0 on success; 130 after ``KeyboardInterrupt``).
        findings: what the detectors found, most severe first.
        crash: how the script crashed, or None.
        not_checked: what gradlens could not check in this run, one sentence each.
        statements: source text of the lines findings point at, keyed ``"file:line"``.
        source_context: a ``SourceWindow`` of lines around each line findings point at, keyed ``"file:line"``.
        root: the directory the run started in (SARIF paths are made relative to it).
        gradlens: the gradlens version that wrote the record.
        python: the Python version that ran the script.
        options: the options the run used (``accumulation``, ``ignore``).
        step_graph: a ``networkx.DiGraph`` of one ordinary training step, or None.
        extra: other JSON-safe data of the watch session, kept as is (``lens.to_dict()``'s own fields).
    """

    command: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    steps: int = 0
    exit_status: int = 0
    findings: tuple[Finding, ...] = ()
    crash: Crash | None = None
    not_checked: tuple[str, ...] = ()
    statements: Mapping[str, str] = field(default_factory=dict)
    source_context: Mapping[str, SourceWindow] = field(default_factory=dict)
    root: str = ""
    gradlens: str = ""
    python: str = field(default_factory=platform.python_version)
    options: Mapping[str, Any] = field(default_factory=dict)
    step_graph: Any = field(default=None, compare=False, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("command", "engines", "findings", "not_checked"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not self.gradlens:
            from . import __version__

            object.__setattr__(self, "gradlens", __version__)

    # --- derived views -------------------------------------------------------------------------------
    def sorted_findings(self) -> list[Finding]:
        """Findings most severe first, then by rule, first step and location (a stable order)."""
        def key(f: Finding):
            loc = f.location
            return (severity_rank(f.severity), f.kind, f.step if f.step is not None else -1,
                    loc.file if loc else "", loc.line if loc else 0, f.message)
        return sorted(self.findings, key=key)

    def statement(self, finding: Finding) -> str | None:
        """The snapshotted source text of the line a finding points at, or None."""
        loc = finding.location
        if loc is None:
            return None
        return self.statements.get(f"{loc.file}:{loc.line}")

    def window(self, location: Location | None) -> SourceWindow | None:
        """The snapshotted lines around a location, or None (an older record, or an unreadable file)."""
        if location is None:
            return None
        return self.source_context.get(f"{location.file}:{location.line}")

    def without(self, rules: Iterable[str]) -> RunRecord:
        """A copy without the findings of the given rule slugs."""
        drop = set(rules)
        if not drop:
            return self
        return replace(self, findings=tuple(f for f in self.findings if f.kind not in drop))

    def reaches(self, fail_on: str) -> bool:
        """Whether a finding is at least as severe as ``fail_on`` (``"never"`` is never reached)."""
        if fail_on == "never":
            return False
        limit = severity_rank(fail_on)
        return any(severity_rank(f.severity) <= limit for f in self.findings)

    # --- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON-safe document (the JSON report); ``parse_record`` reads it back."""
        graph = None
        if self.step_graph is not None:
            import networkx as nx

            graph = nx.node_link_data(self.step_graph, edges="edges")
        out: dict[str, Any] = dict(self.extra)
        out.update({
            "format": RECORD_FORMAT,
            "version": RECORD_VERSION,
            "gradlens": self.gradlens,
            "python": self.python,
            "command": list(self.command),
            "root": self.root,
            "engines": list(self.engines),
            "steps": self.steps,
            "exit_status": self.exit_status,
            "crash": self.crash.to_dict() if self.crash else None,
            "options": dict(self.options),
            "not_checked": list(self.not_checked),
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "statements": dict(sorted(self.statements.items())),
            "source_context": {k: w.to_dict() for k, w in sorted(self.source_context.items())},
            "step_graph": graph,
        })
        return out

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON text ending in a newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


_KNOWN_KEYS = {"format", "version", "gradlens", "python", "command", "root", "engines", "steps",
               "exit_status", "crash", "options", "not_checked", "findings", "statements", "source_context",
               "step_graph"}


def parse_record(data: Any, source: str = "the record") -> RunRecord:
    """Validate a decoded JSON document and rebuild the record it holds.

    Args:
        data: the result of ``json.load`` on a record file.
        source: how to name the input in error messages (a path).

    Returns:
        The ``RunRecord``.

    Raises:
        RecordError: ``data`` is not a gradlens record, is of an unsupported version, or has a missing or
            malformed field.

    Example:
        >>> rec = RunRecord(command=("train.py",), steps=3)
        >>> parse_record(rec.to_dict()).steps
        3
    """
    if not isinstance(data, Mapping) or data.get("format") != RECORD_FORMAT:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise RecordError(f"{source} is not a gradlens record: expected a JSON object with "
                          f"\"format\": \"{RECORD_FORMAT}\", found {found!r}. Pass a file written by "
                          "`gradlens report --format json`.")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordError(f"{source} has no valid \"version\" (found {version!r}); expected an integer.")
    if version > RECORD_VERSION:
        raise RecordError(f"{source} was written by a newer gradlens (record version {version}; this "
                          f"gradlens reads up to {RECORD_VERSION}). Upgrade it: pip install -U gradlens.")
    if version < 1:
        raise RecordError(f"{source} has unsupported record version {version}; expected 1..{RECORD_VERSION}.")
    field_name = "?"
    try:
        field_name = "findings"
        findings = data["findings"]
        if not isinstance(findings, list):
            raise TypeError(f"expected a list, found {type(findings).__name__}")
        parsed = tuple(Finding.from_dict(f) for f in findings)
        field_name = "crash"
        crash = Crash.from_dict(data["crash"]) if data.get("crash") else None
        field_name = "step_graph"
        graph = None
        if data.get("step_graph") is not None:
            import networkx as nx

            graph = nx.node_link_graph(data["step_graph"], edges="edges")
        field_name = "statements"
        statements = {str(k): str(v) for k, v in _mapping(data.get("statements", {})).items()}
        field_name = "source_context"
        context = {str(k): SourceWindow.from_dict(_mapping(v))
                   for k, v in _mapping(data.get("source_context", {})).items()}
        field_name = "command/engines/steps/exit_status"
        return RunRecord(
            command=tuple(str(a) for a in _sequence(data["command"])),
            engines=tuple(str(e) for e in _sequence(data.get("engines", ()))),
            steps=_int(data.get("steps", 0)),
            exit_status=_int(data["exit_status"]),
            findings=parsed,
            crash=crash,
            not_checked=tuple(str(s) for s in _sequence(data.get("not_checked", ()))),
            statements=statements,
            source_context=context,
            root=str(data.get("root", "")),
            gradlens=str(data.get("gradlens", "")),
            python=str(data.get("python", "")),
            options=dict(_mapping(data.get("options", {}))),
            step_graph=graph,
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )
    except RecordError as exc:
        raise RecordError(f"{source}: field {field_name!r}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"{source} is truncated or malformed: field {field_name!r}: "
                          f"{type(exc).__name__}: {exc}. Regenerate it with `gradlens report --format json`."
                          ) from exc


def _ends_mid_document(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether the JSON error is the text ending inside the document: at its end, inside a string (the
    decoder reports an unterminated string only when the text ends first), or inside a last token (``tr``,
    ``1.``) that nothing follows."""
    rest = text[exc.pos:].strip()
    return (exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
            or re.fullmatch(r"[A-Za-z0-9.+-]+", rest) is not None)


def load_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read a record (a JSON report) from a file.

    Args:
        path: the file written by ``gradlens report --format json``.

    Returns:
        The ``RunRecord``.

    Raises:
        RecordError: the file cannot be read, is not valid JSON (e.g. truncated), is not a gradlens record,
            or is of an unsupported version.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise RecordError(f"cannot read record {name}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name} is not a gradlens record: it is not UTF-8 text ({exc.reason}).") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if _ends_mid_document(text, exc) else ""
        what = exc.msg.removesuffix(" at")  # "Unterminated string starting at" + " at line ..."
        raise RecordError(f"{name} is not valid JSON{hint}: {what} at line {exc.lineno}, column "
                          f"{exc.colno}. Expected a file written by `gradlens report --format json`."
                          ) from exc
    except RecursionError:
        raise RecordError(f"{name} is not a gradlens record: its JSON nests too deeply to read. Expected a "
                          "file written by `gradlens report --format json`.") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise RecordError(f"{name} is not a gradlens record: {exc}. Expected a file written by "
                          "`gradlens report --format json`.") from None
    return parse_record(data, source=name)


def record_from_sessions(sessions: Sequence[Mapping[str, Any]], *, command: Sequence[str], exit_status: int,
                         crash: Crash | None = None, root: str = "", options: Mapping[str, Any] | None = None,
                         notes: Iterable[str] = ()) -> RunRecord:
    """Build the record of a run from the watch sessions (``lens.to_dict()``, one per engine) and what the
    runner knows about the run.

    Args:
        sessions: the watch records, as ``Lens.to_dict()`` returns them.
        command: the target and its arguments.
        exit_status: how the script exited.
        crash: the crash, if it crashed.
        root: the directory the run started in.
        options: the run's options (``accumulation``, ``ignore``).
        notes: what the runner itself could not check.

    Returns:
        The ``RunRecord``, with the statements findings point at read from the source files now.

    Raises:
        RecordError: a session is not a gradlens session record.
    """
    findings: list[Finding] = []
    engines: list[str] = []
    used: list[str] = []
    not_checked: list[str] = []
    steps = iterations = 0
    step_graph = None
    healths = []
    for data in sessions:
        if not isinstance(data, Mapping) or "findings" not in data:
            raise RecordError(f"expected lens.to_dict() output; received {type(data).__name__}.")
        these = [Finding.from_dict(f) for f in data["findings"]]
        findings.extend(these)
        names = [str(e) for e in data.get("engines", ())]
        engines.extend(n for n in names if n not in engines)
        n_steps = int(data.get("steps", 0))
        if n_steps or these:
            used.extend(n for n in names if n not in used)
        steps += n_steps
        iterations += int(data.get("iterations", 0))
        healths.append(data.get("health"))
        not_checked.extend(str(n) for n in data.get("not_checked", ()) if str(n) not in not_checked)
        if step_graph is None and data.get("step_graph") is not None:
            import networkx as nx

            step_graph = nx.node_link_graph(data["step_graph"], edges="edges")
    not_checked.extend(notes)
    extra: dict[str, Any] = {"iterations": iterations}
    from .instrument.health import link_findings, merge_health  # plain data: no engine is imported

    health = merge_health(healths)
    if health is not None:
        extra["health"] = health  # {"every", "first", "capacity", "series": {name: {"steps", "grad_norm", ...}}}
        findings = link_findings(findings, health)
    if not sessions:
        not_checked.append("the script imported neither torch nor gradlens.engine, so nothing was watched")
    return RunRecord(command=tuple(command), engines=tuple(used or engines), steps=steps,
                     exit_status=exit_status,
                     findings=tuple(findings), crash=crash, not_checked=tuple(not_checked),
                     statements=snapshot_statements(findings), source_context=snapshot_context(findings),
                     root=root, options=dict(options or {}),
                     step_graph=step_graph, extra=extra)


def snapshot_statements(findings: Iterable[Finding]) -> dict[str, str]:
    """The stripped source text of each line the findings point at, read now (while the files exist).

    Lines that cannot be read are left out.
    """
    out: dict[str, str] = {}
    for loc in _locations(findings):
        text = linecache.getline(loc.file, loc.line).strip()
        if text:
            out[f"{loc.file}:{loc.line}"] = text
    return out


def snapshot_context(findings: Iterable[Finding], radius: int = CONTEXT_LINES) -> dict[str, SourceWindow]:
    """``radius`` lines before and after each line the findings point at (their locations and related
    locations), read now. Blank lines at the window's edges are trimmed; unreadable lines are left out.
    """
    out: dict[str, SourceWindow] = {}
    for loc in _locations(findings):
        key = f"{loc.file}:{loc.line}"
        if key in out or not linecache.getline(loc.file, loc.line).strip():
            continue
        first = max(1, loc.line - radius)
        lines = [linecache.getline(loc.file, n).rstrip("\r\n") for n in range(first, loc.line + radius + 1)]
        while lines and first < loc.line and not lines[0].strip():
            lines.pop(0)
            first += 1
        while lines and first + len(lines) - 1 > loc.line and not lines[-1].strip():
            lines.pop()
        out[key] = SourceWindow(first, tuple(lines))
    return out


def _locations(findings: Iterable[Finding]) -> list[Location]:
    return [loc for f in findings for loc in (f.location, *f.related_locations) if loc is not None]


def _sequence(value: Any) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"expected a list, found {type(value).__name__}")
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, found {value!r}")
    return value
