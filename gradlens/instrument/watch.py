"""``gradlens.watch``: watch a training loop as a decorator (with or without arguments) or a context
manager, and collect the findings on a ``Lens``.

Entering a watch creates a fresh ``Lens`` with its own recorder and detectors; leaving it removes every
hook and wrapper, also when the loop raised. Watches nest: each lens records on its own, and a problem is
warned about once across the active watches.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._checks import check_choice, check_int, check_names, check_type
from ..detectors import default_detectors
from ..errors import FindingError, warning_class_for
from ..findings import RULES, Finding, Location
from .engines import EngineHooks, active_engines, engine_for
from .explain import explain_exit
from .positional import sort_positional
from .recorder import Recorder, RecorderConfig
from .session import Session

__all__ = ["watch", "Watch", "Lens"]

_ON_FINDING = ("warn", "collect", "raise")
_OPTION_KEYS = ("engines", "model", "optimizer", "accumulation", "ignore", "on_finding", "sample_every",
                "nonfinite_every", "health_every")
_ACTIVE: list[Lens] = []
_WARNED: set[str] = set()


class Lens:
    """What one watched run found: ``findings``, ``report()``, ``to_dict()``.

    Attributes:
        findings: one ``Finding`` per problem, in order of first appearance.
        not_checked: what gradlens could not check in this run, in words.
        session: the full record (events included).
    """

    def __init__(self, options: dict[str, Any] | None = None):
        fix = "get a lens from `with gradlens.watch(...) as lens:` rather than calling Lens() yourself."
        check_type(options, "Lens(options)", Mapping, "the dict of options gradlens.watch() builds", fix=fix)
        missing = [k for k in _OPTION_KEYS if k not in options]
        if missing:
            raise ValueError(f"Lens(options) expects the dict of options gradlens.watch() builds, with keys "
                             f"{_OPTION_KEYS}; received one without {missing}. Fix: {fix}")
        self._options = options
        self._found: dict[str, Finding] = {}
        self._detectors = default_detectors()
        self._ignore = frozenset(options["ignore"])
        self.session = Session(options=_json_options(options))
        self._recorder: Recorder | None = None

    # --- results -------------------------------------------------------------------------------------
    @property
    def findings(self) -> list[Finding]:
        return list(self._found.values())

    @property
    def not_checked(self) -> list[str]:
        return list(self.session.not_checked)

    @property
    def events(self) -> list[Any]:
        return list(self.session.events)

    def kinds(self, min_severity: str = "info") -> set[str]:
        """The rule slugs found at or above ``min_severity``."""
        levels = {"info": 0, "warning": 1, "error": 2}
        floor = levels[min_severity]
        return {f.kind for f in self._found.values() if levels[f.severity] >= floor}

    def report(self) -> str:
        """The findings as readable text."""
        from ..record import record_from_sessions
        from ..report.text_report import TextReporter

        return TextReporter().render(record_from_sessions([self.to_dict()], command=(), exit_status=0))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe, versioned record of the run (what the CLI serialises)."""
        self._sync()
        return self.session.to_dict()

    def __repr__(self) -> str:
        return f"<gradlens.Lens steps={self.session.steps} findings={[f.kind for f in self.findings]}>"

    # --- recording -----------------------------------------------------------------------------------
    def _sync(self) -> None:
        rec = self._recorder
        if rec is not None:
            self.session.steps = rec.step
            self.session.iterations = rec.iteration
            self.session.health = rec.health_dict()
        self.session.findings = self.findings

    def _emit(self, event: Any) -> list[Finding]:
        self.session.add_event(event)
        out = []
        for det in self._detectors:
            for f in det.observe(event):
                if f.kind in self._ignore:
                    continue
                out.append(self._accept(f))
        return out

    def _accept(self, f: Finding) -> Finding:
        key = f.key or f.kind
        old = self._found.get(key)
        if old is not None:
            self._found[key] = old.with_count(f.count, {**old.evidence, **f.evidence})
            return self._found[key]
        if f.location is None:
            from .recorder import user_location

            f = _replace(f, location=user_location(2))
        if f.kind == "graph-retained" and not f.subject and self._recorder is not None:
            holder = self._recorder.find_holder()
            if holder is not None:
                name, loc, graph = holder
                evidence = dict(f.evidence)
                if graph is not None:
                    evidence["holder_graph_nodes"] = graph.number_of_nodes()
                    evidence["holder_saved_bytes"] = graph.graph.get("saved_bytes")
                    evidence["holder_nodes_freed_by_backward"] = graph.graph.get("saved_freed")
                    evidence["holder_graph_truncated"] = bool(graph.graph.get("truncated", False))
                noticed = (f.location,) if f.location is not None and f.location != loc else ()
                f = _replace(f, subject=(name,), location=loc, graph=graph, evidence=evidence,
                             related_locations=noticed + f.related_locations,
                             message=f.message + f" The graph is held by `{name}`.")
        if self._recorder is not None:
            f = self._recorder.root_line(f)  # rootlines.py: the line to edit; the noticed one goes to related
        self._found[key] = f
        self._surface(f)
        return f

    def _surface(self, f: Finding) -> None:
        mode = self._options["on_finding"]
        if mode == "collect" or f.severity == "info":
            return
        if mode == "raise" and f.severity == "error":
            raise FindingError(f)
        wkey = f"{f.kind}|{f.location}|{f.subject}"  # nested watches report a problem once
        if wkey in _WARNED:
            return
        _WARNED.add(wkey)
        _warn(f)


def _warn(f: Finding) -> None:
    """Issue a finding as a warning attributed to the user's source line."""
    category = warning_class_for(f.kind)
    text = f"[{f.kind}] {f.message}"
    loc = f.location
    if loc is None:
        warnings.warn(text, category, stacklevel=2)
        return
    frame = _frame_for(loc)
    module_globals = frame.f_globals if frame is not None else None
    registry = module_globals.setdefault("__warningregistry__", {}) if module_globals is not None else None
    module = module_globals.get("__name__", "gradlens") if module_globals is not None else "gradlens"
    warnings.warn_explicit(
        text, category, loc.file, loc.line, module=module, registry=registry, module_globals=module_globals
    )


def _frame_for(loc: Location):
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_filename == loc.file and f.f_code.co_name == loc.function:
            return f
        f = f.f_back
    return None


def _replace(f: Finding, **changes) -> Finding:
    import dataclasses

    out = dataclasses.replace(f, **changes)
    object.__setattr__(out, "key", f.key)
    return out


def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "accumulation": options["accumulation"],
        "ignore": sorted(options["ignore"]),
        "on_finding": options["on_finding"],
        "sample_every": options["sample_every"],
        "nonfinite_every": options["nonfinite_every"],
        "health_every": options["health_every"],
        "engines": list(options["engines"]) if options["engines"] else None,
        "model": options["model"] is not None,
        "optimizer": options["optimizer"] is not None,
    }


def _as_tuple(x: Any) -> tuple:
    if x is None:
        return ()
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)


class Watch:
    """A reusable watch: a context manager yielding a ``Lens``, and a decorator.

    Use ``gradlens.watch(...)`` to build one; see its docstring for the options.
    """

    def __init__(
        self,
        *,
        model: Any = None,
        optimizer: Any = None,
        accumulation: int | None = None,
        ignore: Iterable[str] = (),
        on_finding: str = "warn",
        sample_every: int = 16,
        nonfinite_every: int = 16,
        engines: Iterable[str] | None = None,
        health_every: int = 16,
    ):
        check_choice(on_finding, "watch(on_finding=...)", _ON_FINDING,
                     fix="use 'warn' (default), 'collect' or 'raise'.")
        ignore = check_names(ignore, "watch(ignore=...)", RULES, "rule slugs", fix="ignore={'accumulation'}.")
        if accumulation is not None:
            accumulation = check_int(accumulation, "watch(accumulation=...)", minimum=1,
                                     meaning="backward passes per step", fix="accumulation=4, or None.")
        sample_every = check_int(sample_every, "watch(sample_every=...)", minimum=0, meaning="0 disables it")
        nonfinite_every = check_int(nonfinite_every, "watch(nonfinite_every=...)", minimum=0,
                                    meaning="0 disables it")
        health_every = check_int(health_every, "watch(health_every=...)", minimum=0, meaning="0 disables it")
        for m in _as_tuple(model):
            if not hasattr(m, "modules") or not hasattr(m, "named_parameters"):
                raise TypeError(
                    f"watch(model=...) expects a torch or gradlens.engine nn.Module; received "
                    f"{type(m).__name__}."
                )
        for o in _as_tuple(optimizer):
            if not hasattr(o, "param_groups"):
                raise TypeError(
                    f"watch(optimizer=...) expects a torch or gradlens.engine optimizer; received "
                    f"{type(o).__name__}."
                )
        if engines is not None:
            engines = check_names(engines, "watch(engines=...)", ("torch", "native"), "engine names",
                                  fix="engines=['torch'], or None for every engine imported.")
        self._options = {
            "engines": engines,
            "model": model,
            "optimizer": optimizer,
            "accumulation": accumulation,
            "ignore": frozenset(ignore),
            "on_finding": on_finding,
            "sample_every": sample_every,
            "nonfinite_every": nonfinite_every,
            "health_every": health_every,
        }
        self._stack: list[Lens] = []

    def _engines(self) -> list[EngineHooks]:
        given = _as_tuple(self._options["model"]) + _as_tuple(self._options["optimizer"])
        if given:
            out: dict[str, EngineHooks] = {}
            for obj in given:
                e = engine_for(obj)
                out.setdefault(e.name, e)
            return list(out.values())
        names = self._options["engines"]
        if names is not None:
            from .engines import _get

            return [_get(n) for n in names]
        return active_engines()

    def __enter__(self) -> Lens:
        lens = Lens(self._options)
        engines = self._engines()
        lens.session.engines = [e.name for e in engines]
        if not engines:
            lens.session.not_checked.append(
                "no engine was imported when the watch started (import torch or "
                "gradlens.engine before entering it): nothing was watched"
            )
        cfg = RecorderConfig(
            accumulation=self._options["accumulation"],
            sample_every=self._options["sample_every"],
            nonfinite_every=self._options["nonfinite_every"],
            health_every=self._options["health_every"],
            models=_as_tuple(self._options["model"]),
            optimizers=_as_tuple(self._options["optimizer"]),
            not_checked=lens.session.not_checked,
        )
        rec = Recorder(engines, cfg, lens._emit)
        lens._recorder = rec
        rec.open()
        self._stack.append(lens)
        _ACTIVE.append(lens)
        return lens

    def __exit__(self, exc_type, exc, tb) -> bool:
        lens = self._stack.pop()
        try:
            if lens._recorder is not None:
                explain_exit(lens._recorder, exc)  # a loud error raised outside backward(): explained, untouched
                try:
                    lens._recorder.close()
                except FindingError:
                    if exc_type is None:
                        raise  # on_finding="raise" and a last finding surfaced on exit
                    # the loop's own exception matters more; the finding is on the lens
        finally:
            if lens in _ACTIVE:
                _ACTIVE.remove(lens)
            if not _ACTIVE:
                _WARNED.clear()
            lens._sync()
            # a lens outlives its run (fn.lens): keep plain data only, not the models and optimizers
            lens._recorder = None
            lens._options = {k: v for k, v in lens._options.items() if k not in ("model", "optimizer")}
        return False

    def __call__(self, fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(f"watch(...) decorates a function; received {type(fn).__name__}.")
        if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError(
                "watch decorates plain functions; wrap the body of a generator or coroutine in "
                "`with gradlens.watch() as lens:` instead."
            )

        @functools.wraps(fn)
        def watched(*args, **kwargs):
            lens = None
            try:
                with self as lens:
                    watched.lens = lens
                    return fn(*args, **kwargs)
            finally:
                if lens is not None:
                    watched.lens = lens  # the run that finished last: the outermost one, if fn recursed

        watched.lens = None
        return watched


def watch(
    *args: Any,
    model: Any = None,
    optimizer: Any = None,
    accumulation: int | None = None,
    ignore: Iterable[str] = (),
    on_finding: str = "warn",
    sample_every: int = 16,
    nonfinite_every: int = 16,
    engines: Iterable[str] | None = None,
    health_every: int = 16,
) -> Any:
    """Watch a training loop for autograd bugs.

    Use as ``@gradlens.watch``, ``@gradlens.watch(...)``, ``with gradlens.watch(...) as lens:`` or
    ``with gradlens.watch(model, optimizer) as lens:`` (positional modules and optimizers). Without
    ``model``/``optimizer`` it watches every model and optimizer of each engine imported (torch,
    ``gradlens.engine``) through global hooks.

    Args:
        *args: modules and optimizers (any order; the same as ``model=``/``optimizer=``), or the function
            to decorate (when used as ``@gradlens.watch`` without parentheses).
        model: a module (or several) to narrow the watch to.
        optimizer: an optimizer (or several) to narrow the step checks to.
        accumulation: the declared number of backward passes per optimizer step.
        ignore: rule slugs not to report (e.g. ``{"accumulation"}``).
        on_finding: ``"warn"`` (a ``GradlensWarning`` subclass per rule, at the user's line), ``"collect"``
            (only on the lens) or ``"raise"`` (raise ``FindingError`` on errors, warn otherwise).
        sample_every: track saved tensors (the costly retention layer) on one iteration in this many, after
            the first three; 0 disables it.
        nonfinite_every: check all gradients for NaN/Inf on one step in this many per optimizer (and on
            the first step, and on the step after any non-finite loss); 0 disables the check.
        engines: watch only these engines (``"torch"``, ``"native"``); default: every engine imported when
            the watch starts (torch is never imported by gradlens itself).
        health_every: record gradient health per parameter (gradient norm, update/weight ratio, share of
            exact zeros, NaN/Inf count; see ``gradlens.instrument.health``) on each optimizer's first 8 steps,
            then on one step in this many; a series keeps at most 256 points (the sampling halves when one
            is full); 0 disables the series. They are in ``lens.to_dict()["health"]`` and the reports.

    Returns:
        The decorated function (its last run's lens is ``fn.lens``), or a ``Watch`` usable as a context
        manager (yielding a ``Lens``) or decorator.

    Raises:
        ValueError: an option is out of range (``accumulation=0``, ``sample_every=1.5``, ``True`` as a
            count), is not one of its choices, or names an unknown rule or engine.
        TypeError: an option is of the wrong kind (``accumulation="2"``, ``ignore=5``), or
            ``model``/``optimizer`` is not a module/optimizer of a supported engine.

    Example:
        >>> import gradlens
        >>> with gradlens.watch(on_finding="collect") as lens:
        ...     pass
        >>> lens.findings
        []
    """
    fn, model, optimizer = sort_positional(args, model, optimizer)
    w = Watch(
        model=model,
        optimizer=optimizer,
        accumulation=accumulation,
        ignore=ignore,
        on_finding=on_finding,
        sample_every=sample_every,
        nonfinite_every=nonfinite_every,
        engines=engines,
        health_every=health_every,
    )
    if fn is not None:
        return w(fn)
    return w
