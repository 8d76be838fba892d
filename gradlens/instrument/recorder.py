"""The recorder: installs gradlens's hooks on an engine, keeps per-parameter gradient state, and emits
plain-data events (``events.py``) at optimizer steps and iteration boundaries.

Mechanisms (DESIGN §3, verified on torch 2.13 and mirrored by the native engine):

* one ``register_post_accumulate_grad_hook`` per parameter classifies each accumulation from the grad's
  identity and ``_version`` (an in-place accumulation bumps the version by exactly one): a fresh gradient,
  a deliberate accumulation, or a *carry* of a gradient an optimizer step already consumed;
* global optimizer step pre/post hooks judge each optimizer's gradients at step time (not at
  accumulation time, which gives false alarms on GAN loops) and snapshot grad identity after the step;
* a wrapper of ``<engine>.autograd.backward`` plants a sentinel in ``loss.grad_fn.metadata`` whose
  ``__del__`` tells when that graph died, and notices a second backward through the same graph;
* sampled ``saved_tensors_hooks`` (pack returns a detached holder, never the tensor: a C++ cycle would
  leak the graph) see saved activations that outlive their iteration and backward passes that reach
  tensors saved in older iterations;
* global module forward hooks name parameters, notice evaluation-mode forwards with grad enabled, and
  tag graph nodes with the module and step on sampled iterations.

It never keeps a tensor, a grad or a node across iterations: only weak references, ints and names.
Every hook handle and wrapped function is recorded and removed by ``close()``, also after an exception.

The recorder is a thin coordinator: it owns the state shared by its parts (see ``.notes/recorder-split.md``)
and the lifecycle (``open``/``close``); each concern lives in its own module and is mixed in here:
``params`` (leaf gradient state), ``modules`` (forward hooks), ``backward`` (the backward wrapper),
``steps`` (optimizer step hooks), ``iterations`` (the tick), ``saved`` (saved-tensor sampling),
``holders`` (on-demand attribution), ``rootlines`` (each finding's root line and the user's names, once per
problem); ``sentinels``, ``state`` and ``callsite`` hold the plain helpers.
"""

from __future__ import annotations

import itertools
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .backward import BackwardHooks
from .callsite import user_location
from .engines import EngineHooks
from .health import HealthLog, HealthSeries
from .holders import HolderFinder
from .iterations import IterationModel
from .leaves import LeafDiscovery
from .manual import ManualUpdates
from .modules import ModuleHooks
from .params import ParamHooks
from .rootlines import RootLines
from .saved import SavedTensorSampling
from .sentinels import (  # noqa: F401 - re-exported: tests and watch import them from here
    ITERATION_KEY,
    MODULE_KEY,
    SENTINEL_KEY,
    STEP_KEY,
    _EvalSentinel,
    _Packed,
    _RootSentinel,
    _SavedLedger,
)
from .state import _ModInfo, _OptState, _ParamState  # noqa: F401 - re-exported for tests
from .steps import StepHooks, _engine_of

__all__ = ["Recorder", "RecorderConfig", "user_location", "STEP_KEY", "MODULE_KEY", "SENTINEL_KEY"]

_SERIAL = itertools.count()  # numbers recorders so that nested watches use distinct metadata keys


@dataclass
class RecorderConfig:
    """What the recorder watches and how much it samples.

    Attributes:
        accumulation: the declared number of backward passes per step, or None.
        sample_every: track saved tensors on one iteration in this many (after the first ``warmup``);
            0 disables saved-tensor tracking.
        warmup: iterations tracked in full at the start.
        nonfinite_every: check gradients for NaN/Inf on one step in this many per optimizer, on its first
            step, and on the step after a non-finite loss (0: never).
        tag_nodes: tag graph nodes with ``gradlens.module`` / ``gradlens.step`` on sampled iterations.
        health_every: record gradient health (``health.py``) on one optimizer step in this many, after each
            optimizer's first steps (0: never).
    """

    accumulation: int | None = None
    sample_every: int = 16
    warmup: int = 3
    nonfinite_every: int = 16
    health_every: int = 16
    tag_nodes: bool = True
    models: tuple = ()
    optimizers: tuple = ()
    not_checked: list[str] = field(default_factory=list)



class Recorder(
    ParamHooks,
    LeafDiscovery,
    ModuleHooks,
    BackwardHooks,
    ManualUpdates,
    StepHooks,
    IterationModel,
    SavedTensorSampling,
    HolderFinder,
    RootLines,
    HealthSeries,
):
    """Installs hooks on the given engines and reports events to ``emit``.

    Args:
        engines: the engines to watch.
        config: what to watch and sample.
        emit: called with each event; returns the findings it produced (used to annotate errors).
    """

    def __init__(self, engines: list[EngineHooks], config: RecorderConfig, emit: Callable[[Any], list]):
        self.engines = engines
        self.config = config
        self.emit = emit
        self.active = False
        self.step = 0
        self.iteration = 0
        self.params: dict[int, _ParamState] = {}
        self.opts: dict[int, _OptState] = {}
        self.modules: dict[int, _ModInfo] = {}
        self._lead: int | None = None
        self._n_opts = 0
        self._since_tick: set[int] = set()
        self._handles: list = []
        self._restores: list[tuple[Any, str, Any, Any]] = []
        self._roots: dict[int, int] = {}
        self._ledger = _SavedLedger()
        self._cross = [0]
        self._pushed: list[EngineHooks] = []
        self._sampled = False
        self._dropped: list = []
        self._eval_live: weakref.WeakSet = weakref.WeakSet()
        self._eval_hooked: weakref.WeakSet = weakref.WeakSet()
        self._name_tuples: dict[tuple, tuple] = {}  # sentinels whose node prehooks may be alive
        self._unheld: set[_ParamState] = set()
        self._manual: list[str] = []
        self._zeroed: list[_ParamState] = []  # grads found zeroed in place at the pending step
        self._frozen: list[_ParamState] = []  # tracked while requires_grad=False: hooked once unfrozen
        self._frozen_at = 0
        self._reread: list[_ParamState] | None = None  # a list once DDP is seen (it rewrites .grad)
        self._cur_eval = False
        self._cur_repeat = False
        self._suspect_nonfinite = False
        self._check_loss = bool(config.nonfinite_every)
        self._last_tick = (0, 0, 0)
        self._fwd_hooks: dict[str, tuple[Callable, Callable]] = {}
        self._mod_handles: list = []
        self._fwd_eval = False
        self._eval_bytes_mark: dict[int, int] = {}
        self._module_vars: dict[int, list] = {}  # modules.py: root module id -> [weakref, variable, prefixed]
        self._thread = threading.get_ident()
        self._owner = _WrapperOwner(self)  # what wrappers hold; emptied by close()
        serial = next(_SERIAL)
        self._skey = SENTINEL_KEY if serial == 0 else f"{SENTINEL_KEY}#{serial}"
        self._model_ids: set[int] | None = None
        self._opt_ids: set[int] | None = None
        self._in_step = 0  # steps.py: optimizers whose step is running (their post-step hook is due)
        self._saved_hooks = {e.name: self._make_saved_hooks(e) for e in engines}
        # leaves.py: walks cached per root node type; hooks of leaves found by walks, dropped as they die
        self._walks: dict[type, Any] = {}
        self._walk_pending = None
        self._acc_calls = 0
        self._leaf_handles: dict[int, Any] = {}
        # manual.py: updates by hand, judged before each backward when no optimizer stepped in between
        self._opt_steps = 0
        self._opt_steps_at_backward = 0
        self._marked: dict[int, _ParamState] = {}  # leaves no optimizer holds, accumulated since last backward
        self._window: dict[int, _ParamState] = {}  # ... since the last update by hand
        self._window_lines: list = []  # the backward calls of the window, as (code, line)
        self._internal_code: dict = {}  # code object -> whether it is gradlens's/torch's (manual._backward_site)
        self._rhythm: list[int] = []  # backward passes per update of recent clean windows
        self._rhythm_sites: set = set()  # (code, line) of the backward calls of the first clean windows
        self._pending_manual = None
        self._manual_updates = 0
        self._update_sites: dict = {}  # (code, line, leaves) of a backward -> its update statement (source scan)
        # health.py: bounded series per parameter; the sampled weights of the optimizer step in flight
        self._health = HealthLog(config.health_every) if config.health_every else None
        self._health_pending: dict[int, tuple] = {}

    # --- lifecycle ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Install every hook and wrapper; on failure, remove what was installed and re-raise."""
        self.active = True
        try:
            cfg = self.config
            if cfg.models:
                self._model_ids = set()
                for m in cfg.models:
                    for sub in m.modules():
                        self._model_ids.add(id(sub))
            if cfg.optimizers:
                self._opt_ids = {id(o) for o in cfg.optimizers}
            for eng in self.engines:
                for miss in eng.missing():
                    cfg.not_checked.append(f"{miss} are missing: the checks that need them did not run")
                self._handles += eng.register_step_hooks(self._pre_step, self._post_step)
                self._fwd_hooks[eng.name] = (self._make_fwd_pre(eng), self._make_fwd_post(eng))
                self._wrap(eng.autograd, "backward", self._make_backward(eng))
            for m in cfg.models:
                self._discover_module(m, _engine_of(self.engines, m), root=True)
            self._module_hooks()
            for o in cfg.optimizers:
                self._opt_state(o)
            if cfg.sample_every:
                self._start_sampling()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove every hook and restore every wrapped function (safe to call twice)."""
        self.active = False
        self._owner.rec = None  # a wrapper that someone else still holds now keeps no recorder alive
        self._stop_sampling(force=True)
        for h in self._handles:
            try:
                h.remove()
            except Exception:  # noqa: BLE001 - removal must go on for the others
                pass
        self._handles.clear()
        for h in list(self._leaf_handles.values()):
            h.remove()
        self._leaf_handles.clear()
        self._marked.clear()
        self._window.clear()
        for s in list(self._eval_hooked):
            for h in s.handles:
                h.remove()
            s.handles.clear()
        self._eval_hooked.clear()
        for st in self.params.values():
            p = st.ref()
            if p is not None:
                st.eng.reset_empty_post_acc_hooks(p)  # removal leaves an empty dict where None was
        for h in self._mod_handles:
            h.remove()
        self._mod_handles.clear()
        for owner, attr, _orig, wrapper in reversed(self._restores):
            if not _unwrap_closed(owner, attr, wrapper):
                self._note(f"{getattr(owner, '__name__', owner)}.{attr} was wrapped again by other code while "
                           "watched: gradlens's wrapper stays beneath that one and only passes calls through")
        self._restores.clear()
        self._close_eval()  # modules.py: evaluation graphs still alive at the end, never backpropagated
        self._final_notes()
        self.flush()

    def _final_notes(self) -> None:
        """Name, in words, the features in use whose effects the hooks cannot see."""
        if not any(e.name == "torch" for e in self.engines):
            return
        mods = sys.modules
        dist = mods.get("torch.distributed")
        if dist is not None and getattr(dist, "is_available", lambda: False)() and dist.is_initialized():
            self._note("torch.distributed was initialised: each rank was checked on its own; gradients were "
                       "read inside backward (before DDP's all-reduce) and cross-rank consistency was not "
                       "checked")
        utils = mods.get("torch._dynamo.utils")
        frames = getattr(utils, "counters", {}).get("frames", {}) if utils is not None else {}
        if frames.get("total", 0):
            self._note("torch.compile compiled code in this process: compiled regions appear as one opaque "
                       "node, and compiled autograd (if enabled) would bypass the per-step gradient checks")

    def flush(self) -> None:
        """Emit events queued by finalizers (graphs that died without backward)."""
        while self._dropped:
            self.emit(self._dropped.pop(0))

    def _wrap(self, owner: Any, attr: str, make: Callable[[Any], Callable]) -> None:
        orig = getattr(owner, attr)
        wrapper = make(orig)
        setattr(owner, attr, wrapper)
        self._restores.append((owner, attr, orig, wrapper))

    def _note(self, text: str) -> None:
        if text not in self.config.not_checked:
            self.config.not_checked.append(text)



class _WrapperOwner:
    """What a wrapper installed by a recorder holds instead of the recorder: ``rec`` until the recorder
    closes, then None. Other code may keep a wrapper long after the watch (torch.compile's trace rules map
    every ``torch.*`` function it sees, a user's ``bw = torch.autograd.backward``): through this it keeps
    nothing of the run alive, and it passes calls straight through."""

    __slots__ = ("rec",)

    def __init__(self, rec: Recorder):
        self.rec: Recorder | None = rec


def _closed_wrapper(fn: Any) -> bool:
    owner = getattr(fn, "_gradlens_recorder", None)
    return isinstance(owner, _WrapperOwner) and (owner.rec is None or not owner.rec.active)


def _unwrap_closed(owner: Any, attr: str, wrapper: Callable) -> bool:
    """Take the wrappers of closed recorders off the top of ``owner.attr``: this recorder's, and those of
    watches that exited while it was wrapped around theirs (watches exited out of order). Returns False
    when ``wrapper`` stays installed because other code wrapped the function above it."""
    fn = top = getattr(owner, attr, None)
    while _closed_wrapper(fn):
        if fn is wrapper:
            wrapper = None
        fn = fn.__wrapped__
    if fn is not top:
        setattr(owner, attr, fn)
    if wrapper is None:
        return True
    # beneath an active watch's wrapper it is taken off later, by that watch
    while fn is not None and fn is not wrapper:
        fn = fn.__wrapped__ if isinstance(getattr(fn, "_gradlens_recorder", None), _WrapperOwner) else None
    return fn is wrapper

