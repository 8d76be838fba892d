"""Run a user's script or module the way ``python SCRIPT`` / ``python -m MODULE`` would, under
``gradlens.watch``, and turn what happened into a ``RunRecord``.

The script sees ``__name__ == "__main__"``, its own ``sys.argv`` and ``sys.path[0]`` (its folder, or the
current directory for a module); all of these are restored afterwards. Every engine the script uses is
watched, also one imported after the run started (an import hook starts a watch for ``torch`` or
``gradlens.engine`` when their import completes), with every model and optimizer watched through the
engines' global hooks. ``SystemExit``, uncaught exceptions (syntax errors included) and
``KeyboardInterrupt`` are caught and recorded: the traceback is printed the way Python prints it (without
gradlens's and ``runpy``'s frames) and the findings made so far are kept.

While the script runs on a terminal, one status line on stderr shows steps and findings so far; nothing
of the kind is written when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import linecache
import os
import runpy
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import GradlensError
from .record import Crash, RunRecord, record_from_sessions

__all__ = ["Target", "TargetError", "run", "StatusLine", "EXIT_INTERRUPTED", "ENGINE_MODULES"]

EXIT_INTERRUPTED = 130
"""Exit status after ``KeyboardInterrupt`` (128 + SIGINT, what a shell reports for Python)."""

ENGINE_MODULES = {"gradlens.engine": "native", "torch": "torch"}
"""Top-level modules of the engines gradlens watches, and the engine names the recorder uses."""

_SKIP_FILES = {os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>"}


class TargetError(GradlensError):
    """The script or module to run does not exist or cannot be started (a usage error)."""


@dataclass(frozen=True)
class Target:
    """What to run: a script path or a module name, and the arguments it gets.

    Attributes:
        kind: ``"script"`` or ``"module"``.
        name: the script's path or the module's dotted name.
        args: the script's own arguments.
    """

    kind: str
    name: str
    args: tuple[str, ...] = ()

    @property
    def command(self) -> tuple[str, ...]:
        """The target as typed after the options (``("-m", "pkg.train", "--epochs", "3")``)."""
        head = ("-m", self.name) if self.kind == "module" else (self.name,)
        return head + tuple(self.args)

    def check(self) -> None:
        """Fail early, before anything runs, when the target cannot be started.

        Raises:
            TargetError: the script does not exist or is a folder without ``__main__.py``; the module
                cannot be found.
        """
        if self.kind == "script":
            if not os.path.exists(self.name):
                raise TargetError(f"can't open file {self.name!r}: no such file. Expected the path of a "
                                  "Python script, or a RECORD.json written by `gradlens report --format "
                                  "json`.")
            if os.path.isdir(self.name) and not os.path.exists(os.path.join(self.name, "__main__.py")):
                raise TargetError(f"can't find '__main__.py' in {self.name!r}; expected a script or a folder "
                                  "with a __main__.py.")
            return
        saved = sys.path[:]
        _set_path0(os.getcwd())  # as `python -m` does, before looking the module up
        importlib.invalidate_caches()
        try:
            spec = importlib.util.find_spec(self.name)
        except (ImportError, ValueError) as exc:
            raise TargetError(f"cannot find module {self.name!r}: {exc}") from exc
        finally:
            sys.path[:] = saved
        if spec is None:
            raise TargetError(f"no module named {self.name!r} (searched sys.path from {os.getcwd()}).")


class StatusLine:
    """One self-overwriting line on a terminal: ``gradlens: step 120, 1 finding (graph-retained)``.

    It writes only when ``stream`` is a terminal, at most every ``interval`` seconds, and at once when the
    number of findings changes.

    Args:
        stream: where to write (stderr).
        enabled: force on or off; None means "when ``stream`` is a terminal".
    """

    def __init__(self, stream: TextIO, enabled: bool | None = None, interval: float = 0.2):
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.interval = interval
        self._last = 0.0
        self._kinds = 0
        self._shown = False

    def update(self, steps: int, kinds: Sequence[str]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        news = len(kinds) != self._kinds  # a new finding is shown at once
        if self._shown and not news and now - self._last < self.interval:
            return
        self._last = now
        self._kinds = len(kinds)
        found = f"{len(kinds)} finding{'s' if len(kinds) != 1 else ''}"
        if kinds:
            found += " (" + ", ".join(sorted(set(kinds))) + ")"
        self.stream.write(f"\r\x1b[2Kgradlens: step {steps}, {found}")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


class _ClearsStatus:
    """A stand-in for ``sys.stdout``/``sys.stderr`` that clears the status line before the script writes,
    so the script's output never lands on the end of the status line."""

    def __init__(self, stream: TextIO, line: StatusLine):
        self._stream = stream
        self._line = line

    def write(self, text: str) -> int:
        self._line.clear()
        return self._stream.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        self._line.clear()
        self._stream.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _NotifyingLoader(importlib.abc.Loader):
    """Wraps an engine's loader to call back once the engine's import has completed."""

    def __init__(self, loader: Any, callback: Callable[[], None]):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._callback()

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class _EngineImportHook(importlib.abc.MetaPathFinder):
    """Calls ``on_import(engine_name)`` when ``torch`` or ``gradlens.engine`` finishes importing."""

    def __init__(self, on_import: Callable[[str], None]):
        self.on_import = on_import
        self._busy: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ENGINE_MODULES or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        except (ImportError, ValueError):
            return None
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        engine = ENGINE_MODULES[fullname]
        spec.loader = _NotifyingLoader(spec.loader, lambda: self.on_import(engine))
        return spec


class _Watches:
    """One ``gradlens.watch`` per engine the script uses, each started when that engine is available."""

    def __init__(self, options: dict[str, Any], status: StatusLine):
        self.options = options
        self.status = status
        self.stack = contextlib.ExitStack()
        self.lenses: dict[str, Any] = {}
        self.notes: list[str] = []

    def start(self, engine: str) -> None:
        if engine in self.lenses:
            return
        try:
            lens = self.stack.enter_context(_engine_watch(engine, self.options))
        except Exception as exc:  # never break the user's import because gradlens could not attach
            self.notes.append(f"gradlens could not watch the {engine} engine: {type(exc).__name__}: {exc}")
            return
        self.lenses[engine] = lens
        self._listen(lens)

    def _listen(self, lens: Any) -> None:
        """Refresh the status line on each recorder event (adapts to the recorder's ``emit`` attribute)."""
        rec = getattr(lens, "_recorder", None)
        if not self.status.enabled or rec is None or not hasattr(rec, "emit"):
            return
        emit = rec.emit

        def emit_and_show(event: Any) -> Any:
            out = emit(event)
            kinds = [f.kind for lens in self.lenses.values() for f in lens.findings]
            with contextlib.suppress(Exception):  # a cosmetic line must never break the user's program
                self.status.update(self.steps(), kinds)
            return out

        rec.emit = emit_and_show

    def steps(self) -> int:
        total = 0
        for lens in self.lenses.values():
            rec = getattr(lens, "_recorder", None)
            total += getattr(rec, "step", 0) if rec is not None else lens.session.steps
        return total

    def explain(self, exc: BaseException) -> None:
        """Explain the script's crash (a loud autograd error raised outside backward()) on every lens, while
        its traceback still holds the frames; the exception itself is not changed."""
        from .instrument.explain import explain_exit

        for lens in self.lenses.values():
            explain_exit(getattr(lens, "_recorder", None), exc)

    def close(self) -> None:
        """Stop every watch; a failure to detach is recorded, and the findings made so far are kept."""
        try:
            self.stack.close()
        except Exception as exc:
            self.notes.append(f"gradlens could not cleanly stop watching: {type(exc).__name__}: {exc}")


def _engine_watch(engine: str, options: dict[str, Any]):
    """A ``gradlens.watch`` limited to one engine (so two engines are never hooked twice)."""
    from .instrument.engines import EngineHooks
    from .instrument.watch import Watch

    class _OneEngineWatch(Watch):
        def _engines(self):
            return [EngineHooks(engine)]

    return _OneEngineWatch(**options)


def run(target: Target, *, accumulation: int | None = None, ignore: Iterable[str] = (),
        stderr: TextIO | None = None, status: bool | None = None) -> RunRecord:
    """Run a script or module under gradlens and return what it found.

    Args:
        target: what to run.
        accumulation: the declared number of backward passes per optimizer step, or None.
        ignore: rule slugs not to report.
        stderr: where tracebacks and the status line go (default ``sys.stderr``).
        status: force the live status line on or off; None shows it when ``stderr`` is a terminal.

    Returns:
        The ``RunRecord``: findings, steps, engines, the exit status and, after a crash, the crash.

    Raises:
        TargetError: the target does not exist (checked before anything runs).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "hello.py")
        >>> _ = open(path, "w").write("print('hi')")
        >>> run(Target("script", path)).exit_status
        hi
        0
    """
    target.check()
    # Source lines are read through linecache, keyed by the path as typed: a file of the same relative name
    # read earlier in this process (another directory, or since edited) must not be quoted for this one.
    linecache.checkcache()
    err = stderr if stderr is not None else sys.stderr
    line = StatusLine(err, status)
    options = {"accumulation": accumulation, "ignore": tuple(ignore), "on_finding": "collect"}
    watches = _Watches(options, line)
    hook = _EngineImportHook(watches.start)
    crash: Crash | None = None
    exit_status = 0
    argv_list, saved_argv, saved_path0 = sys.argv, sys.argv[:], (sys.path[0] if sys.path else None)
    saved_streams = sys.stdout, sys.stderr
    if line.enabled:
        sys.stdout, sys.stderr = _ClearsStatus(sys.stdout, line), _ClearsStatus(sys.stderr, line)
    sys.meta_path.insert(0, hook)
    try:
        for module, engine in ENGINE_MODULES.items():
            if module in sys.modules:
                watches.start(engine)
        try:
            _execute(target)
        except SystemExit as exc:
            exit_status = _exit_code(exc.code, err)
        except KeyboardInterrupt as exc:
            line.clear()
            crash = _crash("interrupt", exc)
            err.write(crash.traceback)
            exit_status = EXIT_INTERRUPTED
        except BaseException as exc:  # the script's own crash, reported like Python does
            line.clear()
            watches.explain(exc)
            crash = _crash("exception", exc)
            err.write(crash.traceback)
            exit_status = 1
        finally:
            line.clear()
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(hook)
        argv_list[:] = saved_argv
        sys.argv = argv_list
        sys.stdout, sys.stderr = saved_streams
        if saved_path0 is not None:
            sys.path[0] = saved_path0
        watches.close()
    sessions = [lens.to_dict() for lens in watches.lenses.values()]
    return record_from_sessions(sessions, command=target.command, exit_status=exit_status, crash=crash,
                                root=os.getcwd(), options={"accumulation": accumulation,
                                                           "ignore": sorted(ignore)},
                                notes=watches.notes)


def _execute(target: Target) -> None:
    if target.kind == "script":
        path = target.name
        sys.argv[:] = [path, *target.args]
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        _set_path0(os.path.abspath(folder))
        runpy.run_path(path, run_name="__main__")
    else:
        sys.argv[:] = [target.name, *target.args]
        _set_path0(os.getcwd())
        runpy.run_module(target.name, run_name="__main__", alter_sys=True)


def _set_path0(folder: str) -> None:
    if sys.path:
        sys.path[0] = folder
    else:
        sys.path.append(folder)


def _exit_code(code: Any, err: TextIO) -> int:
    """The status ``sys.exit(code)`` gives, printing a message argument as Python does."""
    if code is None:
        return 0
    if isinstance(code, int):  # bool included, as in Python
        return code & 0xFF
    err.write(f"{code}\n")
    return 1


def _skipped(filename: str) -> bool:
    return filename in _SKIP_FILES or os.path.abspath(filename) in _SKIP_FILES


def _crash(kind: str, exc: BaseException) -> Crash:
    """Record an exception with the traceback Python would print, minus gradlens's and runpy's frames."""
    tb = exc.__traceback__
    while tb is not None and _skipped(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    exc.__traceback__ = None  # drop the frames: they hold the script's tensors and graphs
    return Crash(kind, type(exc).__name__, str(exc), text)
