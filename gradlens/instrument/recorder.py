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
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..findings import Location
from .engines import EngineHooks
from .events import BackwardErrorEvent, EvalForwardEvent, GraphDroppedEvent, StepEvent, TickEvent

__all__ = ["Recorder", "RecorderConfig", "user_location", "STEP_KEY", "MODULE_KEY", "SENTINEL_KEY"]

STEP_KEY = "gradlens.step"
MODULE_KEY = "gradlens.module"
SENTINEL_KEY = "gradlens.sentinel"
ITERATION_KEY = "gradlens.iteration"

_SERIAL = itertools.count()  # numbers recorders so that nested watches use distinct metadata keys
_GRADLENS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_DIRS: list[str] = [_GRADLENS_DIR + os.sep]
_BACKWARD_TWICE = "backward through the graph a second time"
_INPLACE = "modified by an inplace operation"


def _skip_dirs() -> list[str]:
    if len(_SKIP_DIRS) == 1:
        torch_mod = sys.modules.get("torch")
        if torch_mod is not None and getattr(torch_mod, "__file__", None):
            _SKIP_DIRS.append(os.path.dirname(os.path.abspath(torch_mod.__file__)) + os.sep)
    return _SKIP_DIRS


def _user_frame(start: int = 2):
    """The innermost frame outside gradlens, torch and the stdlib helpers that call back into them."""
    try:
        f = sys._getframe(start)
    except ValueError:
        return None
    skip = _skip_dirs()
    while f is not None:
        fn = f.f_code.co_filename
        if (
            not any(fn.startswith(d) for d in skip)
            and not fn.endswith(("contextlib.py", "functools.py"))
            and not fn.startswith("<frozen")
        ):
            return f
        f = f.f_back
    return None


def user_location(start: int = 2) -> Location | None:
    """The user's statement that is running now (file, line, function), or None."""
    f = _user_frame(start + 1)
    if f is None:
        return None
    return Location(f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


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
    """

    accumulation: int | None = None
    sample_every: int = 16
    warmup: int = 3
    nonfinite_every: int = 16
    tag_nodes: bool = True
    models: tuple = ()
    optimizers: tuple = ()
    not_checked: list[str] = field(default_factory=list)


class _ParamState:
    """Gradient bookkeeping for one parameter (weak references and ints only)."""

    __slots__ = (
        "name",
        "ref",
        "acc_ref",
        "acc_ver",
        "step_ref",
        "step_ver",
        "stepped",
        "count",
        "since_step",
        "carried",
        "received",
        "received_step",
        "held",
        "evalc",
        "repc",
        "p_ver",
        "eng",
    )

    def __init__(self, name: str, ref, eng: EngineHooks):
        self.name = name
        self.ref = ref
        self.eng = eng
        self.acc_ref = None
        self.acc_ver = -1
        self.step_ref = None
        self.step_ver = -1
        self.stepped = False
        self.count = 0
        self.since_step = 0
        self.carried = False
        self.received = False
        self.received_step = 0
        self.held = False
        self.evalc = 0
        self.repc = 0
        self.p_ver = -1


class _OptState:
    """One optimizer's parameters (as ``_ParamState``), how often it stepped, and a weak reference to it."""

    __slots__ = ("label", "states", "key", "steps", "eng", "ref")

    def __init__(self, label: str, eng: EngineHooks, ref):
        self.ref = ref
        self.label = label
        self.states: list[_ParamState] = []
        self.key: tuple = ()
        self.steps = 0
        self.eng = eng


class _ModInfo:
    """What the recorder knows of one module: its name, whether it holds parameters, whether it is the
    outermost module of a call (a root), and whether hooks skip it (compiled modules)."""

    __slots__ = ("name", "has_params", "root", "skip", "eng", "ref")

    def __init__(self, name: str, has_params: bool, root: bool, skip: bool, eng: EngineHooks, ref):
        self.ref = ref  # weak: ids are reused once a module dies
        self.name = name
        self.has_params = has_params
        self.root = root
        self.skip = skip
        self.eng = eng


class _RootSentinel:
    """Lives in ``loss.grad_fn.metadata``; dies with the graph's root node."""

    __slots__ = ("live", "it", "uses")

    def __init__(self, live: dict, it: int):
        self.live = live
        self.it = it
        self.uses = 1
        live[it] = live.get(it, 0) + 1

    def __del__(self):
        live = self.live
        n = live.get(self.it, 0) - 1
        if n > 0:
            live[self.it] = n
        else:
            live.pop(self.it, None)


def _plant_down_chain(root, sentinel: _RootSentinel, key: str, depth: int = 2) -> None:
    """Also hang the root's sentinel on the nodes below a single-input root (``(loss / k).backward()``
    backpropagates a scaled copy while ``loss`` itself may be the variable kept alive): the one sentinel
    object then dies only when the last of those nodes does, so a kept ``loss`` counts as a retained graph
    without counting twice. A separate key keeps these marks out of repeated-backward detection."""
    node = root
    for _ in range(depth):
        children = [c for c, _ in node.next_functions if c is not None]
        if len(children) != 1 or not hasattr(children[0], "metadata") or children[0].next_functions == ():
            return
        node = children[0]
        node.metadata.setdefault(key, sentinel)


class _SavedLedger:
    """Counts of tracked saved tensors alive per iteration, shared by every holder."""

    __slots__ = ("live", "bytes", "discarded", "discarded_bytes", "packed_bytes")

    def __init__(self):
        self.live: dict[int, int] = {}
        self.bytes: dict[int, int] = {}
        self.discarded = 0
        self.discarded_bytes = 0
        self.packed_bytes = 0


class _Packed:
    """What the pack hook returns: a detached alias of the saved tensor, tagged with its iteration, and the
    tensor's version when saved (engines skip their in-place check for hooked saved tensors: unpack redoes it).
    """

    __slots__ = ("t", "it", "nb", "used", "ledger", "ver")

    def __init__(self, t, it: int, nb: int, ledger: _SavedLedger):
        self.t = t
        try:
            self.ver = t._version
        except RuntimeError:  # inference tensors have no version counter
            self.ver = None
        self.it = it
        self.nb = nb
        self.used = False
        self.ledger = ledger
        ledger.live[it] = ledger.live.get(it, 0) + 1
        ledger.bytes[it] = ledger.bytes.get(it, 0) + nb
        ledger.packed_bytes += nb

    def __del__(self):
        lg = self.ledger
        n = lg.live.get(self.it, 0) - 1
        if n > 0:
            lg.live[self.it] = n
            lg.bytes[self.it] = lg.bytes.get(self.it, 0) - self.nb
        else:
            lg.live.pop(self.it, None)
            lg.bytes.pop(self.it, None)
        if not self.used:
            lg.discarded += 1
            lg.discarded_bytes += self.nb


class _EvalSentinel:
    """Lives in the metadata of an evaluation-mode output's node; says whether backward ever reached it."""

    __slots__ = ("rec", "module", "step", "it", "location", "nbytes", "used", "handles", "__weakref__")

    def __init__(self, rec: Recorder, module: str, step: int, it: int, location, nbytes):
        self.rec = weakref.ref(rec)  # a node the user keeps past the watch must not keep the recorder alive
        self.handles: list = []  # its prehooks' handles: they live as long as the node, not the recorder
        self.module = module
        self.step = step
        self.it = it
        self.location = location
        self.nbytes = nbytes
        self.used = False

    def prehook(self) -> Callable:
        """The node prehook that marks the sentinel used; it holds the sentinel weakly (a native hook
        handle holds its hook dict, so a strong reference would keep the sentinel alive past its node)."""
        ref = weakref.ref(self)

        def mark_used(*args):
            s = ref()
            if s is not None:
                s.used = True

        return mark_used

    def __del__(self):
        rec = self.rec()
        if not self.used and rec is not None:
            rec._dropped.append(GraphDroppedEvent(self.module, self.step, self.nbytes, False, self.location))


class Recorder:
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
        self._thread = threading.get_ident()
        serial = next(_SERIAL)
        self._skey = SENTINEL_KEY if serial == 0 else f"{SENTINEL_KEY}#{serial}"
        self._model_ids: set[int] | None = None
        self._opt_ids: set[int] | None = None
        self._saved_hooks = {e.name: self._make_saved_hooks(e) for e in engines}

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
        self._stop_sampling(force=True)
        for h in self._handles:
            try:
                h.remove()
            except Exception:  # noqa: BLE001 - removal must go on for the others
                pass
        self._handles.clear()
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

    # --- parameters -----------------------------------------------------------------------------------
    def _track(self, p, name: str, eng: EngineHooks) -> _ParamState:
        st = self.params.get(id(p))
        if st is not None and st.ref() is p:
            return st
        st = _ParamState(name, weakref.ref(p), eng)
        self.params[id(p)] = st
        if p.requires_grad:
            self._handles.append(p.register_post_accumulate_grad_hook(self._make_post_acc(st)))
        else:
            self._frozen.append(st)
        return st

    def _hook_unfrozen(self, batch: int = 256) -> None:
        """Hang the accumulation hook on parameters frozen when first seen and unfrozen since (fine-tuning
        that unfreezes a backbone): a rotating slice of at most ``batch`` of them before each backward."""
        frozen = self._frozen
        start = self._frozen_at % len(frozen)
        chunk = frozen[start : start + batch]
        keep = []
        for st in chunk:
            p = st.ref()
            if p is None:
                continue
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(self._make_post_acc(st)))
            else:
                keep.append(st)
        frozen[start : start + len(chunk)] = keep
        self._frozen_at = start + len(keep)

    def _make_post_acc(self, st: _ParamState) -> Callable:
        rec = self
        wref = weakref.ref

        def post_accumulate(p) -> None:
            if not rec.active:
                return
            g = p.grad
            if g is None:
                return
            try:
                ver = g._version
            except RuntimeError:  # inference tensors have no version counter
                return
            ref = st.acc_ref
            prev = ref() if ref is not None else None
            if st.stepped:
                sr = st.step_ref
                if sr is not None and sr() is g and ver - 1 == st.step_ver:
                    st.count += 1
                    st.carried = True
                else:
                    st.count = 1
                    st.carried = False
                    st.evalc = st.repc = 0
            elif prev is g and ver - 1 == st.acc_ver:
                st.count += 1
                if not st.held and st.count > 1:
                    pv = p._version
                    if pv != st.p_ver and st.p_ver >= 0:
                        st.carried = True  # updated by hand since the last backward, gradient not cleared
                        rec._manual.append(st.name)
            else:
                st.count = 1
                st.carried = False
                st.evalc = st.repc = 0
            if prev is not g:
                st.acc_ref = wref(g)
            st.acc_ver = ver
            st.stepped = False
            st.since_step += 1
            if not st.held:
                st.p_ver = p._version
            if rec._cur_eval:
                st.evalc += 1
            if rec._cur_repeat:
                st.repc += 1
            if rec._reread is not None:
                rec._reread.append(st)
            if not st.received:
                st.received = True
                st.received_step = rec.step
                # orphans are judged against the watching thread's optimizer steps only: another thread's
                # model gets its first gradients before its own optimizer has stepped
                if not st.held and threading.get_ident() == rec._thread:
                    rec._unheld.add(st)

        return post_accumulate

    # --- modules ------------------------------------------------------------------------------------
    def _module_hooks(self) -> None:
        """Global forward hooks (every module of the engine, including ones created during the watch):
        they name parameters as modules are first called, notice evaluation-mode forwards with grad
        enabled, and tag nodes on sampled iterations. (Hooks on the root modules only would save about
        2% on a 0.2 ms/step toy, but miss modules created or replaced mid-watch until the next sample.)"""
        for eng in self.engines:
            hooks = self._fwd_hooks.get(eng.name)
            if hooks is not None:
                self._mod_handles += eng.register_module_hooks(*hooks)

    def _discover_module(self, module, eng: EngineHooks, root: bool) -> _ModInfo:
        info = self.modules.get(id(module))
        if info is not None and info.ref() is module:
            return info
        cls = type(module).__name__
        skip = False
        if cls == "OptimizedModule":
            skip = True
            self._note(
                "torch.compile: module hooks are not used on compiled modules (they would recompile); "
                "evaluation-mode checks and node tagging did not run there"
            )
        if cls in ("DistributedDataParallel", "DataParallel"):
            self._note(f"{cls}: each rank was checked on its own (cross-rank consistency was not checked); "
                       "no_sync() accumulation is reported as accumulation")
            if self._reread is None:
                self._reread = []
        for sub_name, sub in module.named_modules():
            old = self.modules.get(id(sub))
            if old is not None and old.ref() is sub:
                continue
            is_root = sub is module and root
            has = any(True for _ in sub.parameters(recurse=is_root))
            self.modules[id(sub)] = _ModInfo(sub_name or cls, has, is_root, skip, eng, weakref.ref(sub))
        for pname, p in module.named_parameters():
            self._track(p, pname, eng)
        return self.modules[id(module)]

    def _make_fwd_pre(self, eng: EngineHooks) -> Callable:
        rec = self
        grad_enabled = eng.grad_enabled()
        compiling = _is_compiling_fn(eng)

        def forward_pre(module, args) -> None:
            if not rec.active or (compiling is not None and compiling()):
                return
            info = rec.modules.get(id(module))
            if info is None or info.ref() is not module:
                if rec._model_ids is not None and id(module) not in rec._model_ids:
                    return
                info = rec._discover_module(module, eng, root=True)
            if info.skip or not info.has_params and not info.root:
                return
            if info.has_params:
                if threading.get_ident() == rec._thread:  # read by the watching thread's next backward
                    rec._fwd_eval = not module.training
                if rec._sampled and eng in rec._pushed \
                        and not eng.saved_hooks_top_is(rec._saved_hooks[eng.name][0]):
                    rec._note("saved_tensors_hooks of the user's code (torch.utils.checkpoint, save_on_cpu, "
                              "...) were active: tensors saved there were invisible to the retention checks")
            if info.root and not module.training and grad_enabled() and not eng.inference_mode_enabled():
                if threading.get_ident() != rec._thread:
                    rec._note("forward in another thread: saved-tensor retention was not tracked there "
                              "(saved_tensors_hooks are thread-local)")
                    return
                if rec.config.sample_every and eng not in rec._pushed:
                    rec._start_sampling(force=True)
                rec._eval_bytes_mark[id(module)] = rec._ledger.packed_bytes

        return forward_pre

    def _make_fwd_post(self, eng: EngineHooks) -> Callable:
        rec = self
        grad_enabled = eng.grad_enabled()
        compiling = _is_compiling_fn(eng)

        def forward_post(module, args, output) -> None:
            if not rec.active or (compiling is not None and compiling()):
                return
            info = rec.modules.get(id(module))
            if info is None or info.skip or info.ref() is not module:
                return
            if (
                info.root
                and info.has_params
                and not module.training
                and grad_enabled()
                and not eng.inference_mode_enabled()
            ):
                rec._eval_output(module, info, output)
            elif rec._sampled and rec.config.tag_nodes:
                for out in output if isinstance(output, (tuple, list)) else (output,):
                    fn = getattr(out, "grad_fn", None)
                    if fn is not None:
                        md = fn.metadata
                        if MODULE_KEY not in md:
                            md[MODULE_KEY] = info.name
                            md[STEP_KEY] = rec.step + 1
                            md[ITERATION_KEY] = rec.iteration
            if info.root and info.has_params and module.training:
                rec._mark_output(output)

        return forward_post

    def _mark_output(self, output) -> None:
        """Hang a root sentinel (one per call, shared by its outputs) on a training-mode model's outputs, so
        that outputs kept with their graph (``preds.append(out)``) count as retained graphs whatever loss is
        built on them (the loss's own sentinel reaches them only through a single-input chain)."""
        key = self._skey + ".chain"
        s = None
        for out in output if isinstance(output, (tuple, list)) else (output,):
            fn = getattr(out, "grad_fn", None)
            if fn is not None and getattr(fn, "metadata", None) is not None and key not in fn.metadata:
                if s is None:
                    s = _RootSentinel(self._roots, self.iteration)
                fn.metadata[key] = s

    def _eval_output(self, module, info: _ModInfo, output) -> None:
        # one sentinel for all of a call's outputs (``return logits, hidden``): a backward through any of
        # them uses the forward; it dies with the last of their nodes
        fns = []
        for out in output if isinstance(output, (tuple, list)) else (output,):
            fn = getattr(out, "grad_fn", None)
            if fn is not None and not any(fn is f for f in fns):
                fns.append(fn)
        mark = self._eval_bytes_mark.pop(id(module), None)
        if not fns:
            return
        nbytes = None if mark is None or not self._pushed else self._ledger.packed_bytes - mark
        loc = user_location(3)
        s = _EvalSentinel(self, info.name, self.step + 1, self.iteration, loc, nbytes)
        for fn in fns:
            fn.metadata["gradlens.eval"] = s
            s.handles.append(fn.register_prehook(s.prehook()))
        del fns
        self._eval_live.add(s)
        self._eval_hooked.add(s)
        self.emit(EvalForwardEvent(info.name, self.step + 1, loc))

    # --- backward -------------------------------------------------------------------------------------
    def _make_backward(self, eng: EngineHooks) -> Callable:
        rec = self
        native = eng.name == "native"  # CPU-only engine: its losses can always be read cheaply

        def make(orig):
            def backward(tensors, *args, **kwargs):
                if not rec.active:
                    return orig(tensors, *args, **kwargs)
                if threading.get_ident() != rec._thread:
                    # per-backward state (sentinels, repeat and eval flags) belongs to the watching thread
                    rec._note("backward in another thread: gradient-state checks ran, iteration tracking "
                              "did not")
                    return orig(tensors, *args, **kwargs)
                create = kwargs.get("create_graph", False) if kwargs else (len(args) > 2 and args[2])
                repeat = rec._before_backward(tensors, bool(create), native)
                try:
                    return orig(tensors, *args, **kwargs)
                except RuntimeError as exc:
                    if not repeat:
                        rec._backward_error(tensors, exc)
                    raise
                finally:
                    rec._cur_repeat = False
                    rec._cur_eval = False
                    if rec._reread:
                        rec._reread_grads()
                    if rec._manual:
                        rec._emit_manual()

            backward.__wrapped__ = orig
            backward._gradlens_recorder = rec
            backward.__doc__ = orig.__doc__
            backward.__name__ = getattr(orig, "__name__", "backward")
            return backward

        return make

    def _reread_grads(self) -> None:
        """After a backward under DDP: it wrote the all-reduced gradient into ``.grad`` at the end of
        backward (in place, or by swapping in a bucket view), so record identity and version again."""
        wref = weakref.ref
        for st in self._reread:
            p = st.ref()
            g = p.grad if p is not None else None
            if g is None:
                continue
            ref = st.acc_ref
            if ref is None or ref() is not g:
                st.acc_ref = wref(g)
            st.acc_ver = g._version
        self._reread.clear()

    def _before_backward(self, tensors, create_graph: bool, native: bool) -> bool:
        """Plant the root sentinels, notice a repeated backward, and read a scalar loss's finiteness (a
        non-finite loss makes the next step check every gradient; CPU tensors only: no device sync)."""
        if self._frozen:
            self._hook_unfrozen()
        repeat = False
        check = self._check_loss and not self._suspect_nonfinite
        skey = self._skey
        for t in tensors if isinstance(tensors, (tuple, list)) else (tensors,):
            fn = getattr(t, "grad_fn", None)
            if fn is None:
                continue
            md = fn.metadata
            s = md.get(skey)
            if s is None:
                s = md[skey] = _RootSentinel(self._roots, self.iteration)
                if STEP_KEY not in md:
                    md[STEP_KEY] = self.step + 1
                _plant_down_chain(fn, s, skey + ".chain")
            else:
                s.uses += 1
                repeat = True
            if check and (native or t.is_cpu) and t.numel() == 1 and not math.isfinite(t.item()):
                self._suspect_nonfinite = True
        self._cur_repeat = repeat and not create_graph
        self._cur_eval = self._fwd_eval
        return repeat

    def _backward_error(self, tensors, exc: BaseException) -> None:
        """Explain a backward that failed on an earlier iteration's graph (freed, or its saved weights
        since changed in place by an optimizer step): state carried across iterations without detach()."""
        text = str(exc)
        if _BACKWARD_TWICE not in text:
            if _INPLACE not in text:
                return
            roots = tensors if isinstance(tensors, (tuple, list)) else (tensors,)
            oldest = [_oldest_tag(t) for t in roots if getattr(t, "grad_fn", None) is not None]
            if not any(o is not None and o < self.iteration for o in oldest):
                return
        holder = self._find_holder(before=self.iteration)
        ev = BackwardErrorEvent(
            self.step + 1,
            self.iteration,
            text.split(".")[0],
            holder[0] if holder else None,
            holder[1] if holder else user_location(3),
        )
        findings = self.emit(ev)
        if findings and hasattr(exc, "add_note"):
            exc.add_note("gradlens: " + findings[0].message)

    def _emit_manual(self) -> None:
        names = tuple(dict.fromkeys(self._manual))
        self._manual.clear()
        self.emit(
            StepEvent(
                step=self.step,
                optimizer="manual update",
                optimizer_steps=self.step,
                n_params=len(names),
                touched=names,
                max_count=0,
                carried=names,
                location=user_location(3),
            )
        )

    # --- optimizers -----------------------------------------------------------------------------------
    def _opt_state(self, opt) -> _OptState:
        os_ = self.opts.get(id(opt))
        if os_ is not None and os_.ref() is not opt:
            os_ = None  # a dead optimizer's id, reused
        groups = opt.param_groups
        last = groups[-1]["params"] if groups else ()
        key = (len(groups), id(last), len(last))
        if os_ is not None and os_.key == key:
            return os_
        if os_ is None:
            eng = _engine_of(self.engines, opt)
            os_ = _OptState(f"{type(opt).__name__}#{self._n_opts}", eng, weakref.ref(opt))
            self._n_opts += 1
            self.opts[id(opt)] = os_
        os_.key = key
        states = []
        for gi, g in enumerate(groups):
            for pi, p in enumerate(g["params"]):
                st = self._track(p, f"{os_.label}.param_groups[{gi}][{pi}]", os_.eng)
                if not st.held:
                    st.held = True
                    self._unheld.discard(st)
                states.append(st)
        os_.states = states
        return os_

    def _pre_step(self, opt, args, kwargs) -> None:
        if not self.active:
            return
        if self._dropped:
            self.flush()
        os_ = self.opts.get(id(opt))
        if os_ is None or os_.ref() is not opt or os_.key[0] != len(opt.param_groups):
            os_ = self._opt_state(opt)
        elif os_.steps % 16 == 0:
            os_ = self._opt_state(opt)  # param groups edited in place: re-read now and then
        if self._opt_ids is not None and id(opt) not in self._opt_ids:
            return
        cfg = self.config
        touched, carried, cleared, never, evalm, rep = [], [], [], [], [], []
        grads, gnames = [], []
        kmax = 0
        zeros = None
        eng = os_.eng
        self._zeroed.clear()
        for st in os_.states:
            p = st.ref()
            if p is None:
                continue
            g = p.grad
            if st.since_step:
                touched.append(st.name)
                if g is None:
                    cleared.append(st.name)
                else:
                    ref = st.acc_ref
                    if zeros is not False and ref is not None and ref() is g and g._version != st.acc_ver:
                        # changed in place since backward: cleared (zero_) or rescaled (clipping, unscale_);
                        # read values once, and again only while they keep coming out zero
                        zeros = eng.is_zero(g)
                        if zeros:
                            cleared.append(st.name)
                            self._zeroed.append(st)
                    grads.append(g)
                    gnames.append(st.name)
                if st.carried:
                    carried.append(st.name)
                if st.count > kmax:
                    kmax = st.count
                if st.evalc and st.evalc < st.count:
                    evalm.append(st.name)
                if st.repc:
                    rep.append(st.name)
            elif not st.received and g is None and p.requires_grad:
                never.append(st.name)
        if zeros is False and self._zeroed:
            # zero after an in-place change while other changed grads are not: units that got no signal (dead
            # ReLUs) rescaled by clipping, not a clear (zeroing in place clears every gradient it reaches)
            rescaled = {st.name for st in self._zeroed}
            cleared = [name for name in cleared if name not in rescaled]
        nonfinite = None
        every = cfg.nonfinite_every
        if grads and (self._suspect_nonfinite or (every and os_.steps % every == 0)):
            nonfinite = tuple(gnames[i] for i in eng.nonfinite(grads))
            if not nonfinite:
                self._suspect_nonfinite = False
        del grads
        orphans = ()
        if self._unheld and threading.get_ident() == self._thread:  # another thread's steps age nothing
            orphans = tuple(sorted(s.name for s in self._unheld if s.received_step <= self.step - 1))
        if not (carried or cleared or never or nonfinite or evalm or rep or orphans or kmax > 1):
            return  # nothing to judge: a clean step costs no event
        n = sum(1 for st in os_.states if (p := st.ref()) is not None and p.requires_grad)
        # the location is filled in by the host only when a finding needs it (frame walks cost)
        self.emit(
            StepEvent(
                self.step + 1,
                os_.label,
                os_.steps + 1,
                n,
                self._names(touched),
                kmax,
                self._names(carried),
                self._names(cleared),
                self._names(never),
                nonfinite if nonfinite is None else self._names(nonfinite),
                self._names(evalm),
                self._names(rep),
                self._names(orphans),
                cfg.accumulation,
                None,
            )
        )

    def _names(self, names) -> tuple:
        """``tuple(names)``, shared with earlier events holding the same names: a buggy loop emits an event
        per step, and the session keeps up to ``MAX_EVENTS`` of them (memory per event stays constant
        instead of growing with the model's parameter count)."""
        if not names:
            return ()
        t = tuple(names)
        cache = self._name_tuples
        shared = cache.get(t)
        if shared is None:
            if len(cache) >= 256:
                cache.clear()
            shared = cache[t] = t
        return shared

    def _post_step(self, opt, args, kwargs) -> None:
        if not self.active:
            return
        os_ = self.opts.get(id(opt))
        if os_ is None or os_.ref() is not opt:
            return
        wref = weakref.ref
        zeroed, self._zeroed = self._zeroed, []
        for st in os_.states:
            p = st.ref()
            if p is None:
                continue
            g = p.grad
            if zeroed and g is not None and any(st is z for z in zeroed):
                st.step_ref = None  # the step applied zeros: adding to them next is not a carry
            elif g is not None:
                ref = st.acc_ref
                st.step_ref = ref if ref is not None and ref() is g else wref(g)
                try:
                    st.step_ver = g._version
                except RuntimeError:
                    st.step_ref = None
            else:
                st.step_ref = None
            st.stepped = True
            st.since_step = 0
            st.carried = False
            st.evalc = st.repc = 0
        os_.steps += 1
        self.step += 1
        # an iteration ends when the lead optimizer steps; the lead is the first optimizer to step, and
        # passes to any optimizer that steps twice without the lead stepping in between (the old lead's
        # loop is over, or it steps less often)
        if threading.get_ident() != self._thread:
            # iterations are the watching thread's: another thread's steps must not age its graphs
            self._note("optimizer steps in another thread: their gradient checks ran; iteration-based "
                       "retention checks followed the watching thread only")
            return
        oid = id(opt)
        if self._lead is None or oid in self._since_tick:
            self._lead = oid
        if self._lead == oid:
            self._since_tick.clear()
            self._tick()
        else:
            self._since_tick.add(oid)

    # --- iterations and retention -------------------------------------------------------------------
    def _tick(self) -> None:
        ended = self.iteration
        self.iteration += 1
        cur = self.iteration
        old_roots = old_root_its = old_saved = old_saved_its = saved_bytes = 0
        for k, v in list(self._roots.items()):
            if k < cur - 1:
                old_roots += v
                old_root_its += 1
        lg = self._ledger
        for k, v in list(lg.live.items()):
            if k < cur - 1:
                old_saved += v
                old_saved_its += 1
                saved_bytes += lg.bytes.get(k, 0)
        sampled = self._sampled
        every = self.config.sample_every
        want = cur < self.config.warmup or (every and cur % every == 0)
        if every:
            if sampled and not want:
                self._stop_sampling()
            elif want and not sampled:
                self._start_sampling()
        if self._eval_live:
            for s in list(self._eval_live):
                if not s.used and s.it < cur - 1:
                    self._eval_live.discard(s)
                    self._dropped.append(GraphDroppedEvent(s.module, s.step, s.nbytes, True, s.location))
        self.flush()
        state = (old_roots, saved_bytes, self._cross[0])
        if state == self._last_tick:
            return  # unchanged: detectors judge growth between the ticks that differ
        self._last_tick = state
        self.emit(
            TickEvent(
                ended,
                self.step,
                old_roots,
                old_root_its,
                old_saved,
                saved_bytes,
                old_saved_its,
                self._cross[0],
                sampled,
                None,
            )
        )

    def _make_saved_hooks(self, eng: EngineHooks):
        # weakly: a graph built on a sampled iteration and kept past the watch holds these hooks (torch
        # stores the pair with each saved tensor), and must not keep the recorder and its models alive
        rec_ref = weakref.ref(self)
        ledger = self._ledger
        cross = self._cross
        nbytes = eng.nbytes
        detach = eng.detach

        def pack(t):
            nb = 0
            if t.grad_fn is not None or not t.requires_grad:
                nb = nbytes(t)
            rec = rec_ref()
            return _Packed(detach(t), rec.iteration if rec is not None else -1, nb, ledger)

        def unpack(p):
            p.used = True
            rec = rec_ref()
            if rec is not None and p.it < rec.iteration - 1:
                cross[0] += 1
            t = p.t
            if p.ver is not None and t._version != p.ver:
                # what the engine itself raises without saved-tensor hooks (it skips the check with them)
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: [{t.type()} {list(t.shape)}] is at version {t._version}; expected version "
                    f"{p.ver} instead. (Checked by gradlens's saved-tensor hook.)"
                )
            return t

        return pack, unpack

    def _start_sampling(self, force: bool = False) -> None:
        """Push the saved-tensor hooks on every engine whose hook stack is empty (so popping them later
        cannot disturb the user's own saved_tensors_hooks regions)."""
        for eng in self.engines:
            if eng in self._pushed:
                continue
            pack, unpack = self._saved_hooks[eng.name]
            if not eng.saved_hooks_stack_empty():
                if force:
                    self._note(
                        "saved_tensors_hooks of the user's code (checkpoint, save_on_cpu, ...) were "
                        "active: saved-tensor retention was not tracked there"
                    )
                continue
            if eng.push_saved_hooks(pack, unpack):
                self._pushed.append(eng)
            else:
                self._note("saved_tensors_hooks were disabled by a library (disable_saved_tensors_hooks): "
                           "saved-tensor retention was not tracked there; graph roots still were")
        self._sampled = bool(self._pushed)

    def _stop_sampling(self, force: bool = False) -> None:
        self._sampled = False
        for eng in list(self._pushed):
            pack = self._saved_hooks[eng.name][0]
            if eng.saved_hooks_top_is(pack):
                eng.pop_saved_hooks()
                self._pushed.remove(eng)
            elif force:
                # the watch ends inside a saved_tensors_hooks region opened after it (a watched generator
                # closed there): take ours out from beneath, keeping the region's hooks in force
                if eng.remove_saved_hooks(pack):
                    self._pushed.remove(eng)
                else:
                    self._note(
                        "gradlens's saved-tensor hooks could not be removed on exit (the watch ended in "
                        "another thread than it started in, or with saved-tensor hooks disabled): they stay "
                        "in that thread and only pass saved tensors through"
                    )

    # --- attribution (on demand only) ---------------------------------------------------------------
    def _find_holder(self, before: int) -> tuple[str, Location, Any] | None:
        """Name the user variable whose graph reaches a graph of an iteration older than ``before`` (user
        frames only, bounded walks; run on demand, never per step)."""
        f = _user_frame(2)
        types = tuple(e.tensor_type for e in self.engines)
        while f is not None:
            fn = f.f_code.co_filename
            if not fn.startswith(_GRADLENS_DIR):
                found = None
                snapshot = f.f_locals
                for name, val in list(snapshot.items()):
                    for label, t in _tensors_in(name, val, types):
                        md = t.grad_fn.metadata
                        root = md.get(self._skey) if md else None
                        if root is not None and root.it >= before:
                            continue  # the loss being backpropagated now
                        age = _oldest_tag(t)
                        if age is not None and age < before:
                            line = _assignment_line(f, name) or f.f_lineno
                            found = label, Location(fn, line, f.f_code.co_name), _graph_of(t)
                            break
                    if found:
                        break
                _drop_snapshot(f, snapshot)
                del snapshot
                if found:
                    return found
            f = f.f_back
        return None

    def find_holder(self) -> tuple[str, Location, Any] | None:
        """The variable holding a graph from an earlier iteration, where it is, and its graph (networkx,
        capped), or None. Runs on demand only (walks the user's frames and a bounded graph)."""
        return self._find_holder(before=self.iteration - 1)

    def _note(self, text: str) -> None:
        if text not in self.config.not_checked:
            self.config.not_checked.append(text)


def _unwrap_closed(owner: Any, attr: str, wrapper: Callable) -> bool:
    """Take the wrappers of closed recorders off the top of ``owner.attr``: this recorder's, and those of
    watches that exited while it was wrapped around theirs (watches exited out of order). Returns False
    when ``wrapper`` stays installed because other code wrapped the function above it."""
    fn = top = getattr(owner, attr, None)
    while isinstance(rec := getattr(fn, "_gradlens_recorder", None), Recorder) and not rec.active:
        if fn is wrapper:
            wrapper = None
        fn = fn.__wrapped__
    if fn is not top:
        setattr(owner, attr, fn)
    if wrapper is None:
        return True
    # beneath an active watch's wrapper it is taken off later, by that watch
    while fn is not None and fn is not wrapper:
        fn = fn.__wrapped__ if isinstance(getattr(fn, "_gradlens_recorder", None), Recorder) else None
    return fn is wrapper


def _graph_of(t, max_nodes: int = 5000):
    """The graph behind a leaked tensor, as plain networkx data (capped; None if the walk fails)."""
    try:
        from ..graphs.walk import graph

        return graph(t, max_nodes=max_nodes)
    except Exception:  # noqa: BLE001 - attribution is best effort; the finding stands without it
        return None


def _drop_snapshot(frame, snapshot: dict) -> None:
    """Before Python 3.13, ``frame.f_locals`` caches a dict of the locals on the frame, which would keep
    this iteration's tensors (and graphs) alive as long as the user's function runs; empty it. Module
    frames (whose f_locals are the globals) and 3.13+ write-through proxies are left alone."""
    if sys.version_info < (3, 13) and frame.f_code.co_flags & 0x1 and snapshot is not frame.f_globals:
        snapshot.clear()


def _engine_of(engines: list[EngineHooks], obj: Any) -> EngineHooks:
    from .engines import engine_for

    eng = engine_for(obj)
    for e in engines:
        if e.name == eng.name:
            return e
    return eng


def _is_compiling_fn(eng: EngineHooks):
    if eng.name != "torch":
        return None
    import torch

    comp = getattr(torch, "compiler", None)
    return getattr(comp, "is_compiling", None)


def _tensors_in(name: str, val: Any, types: tuple):
    if isinstance(val, types):
        if val.grad_fn is not None:
            yield name, val
    elif isinstance(val, (list, tuple)):
        for i, v in enumerate(val[-50:]):
            if isinstance(v, types) and v.grad_fn is not None:
                yield f"{name}[{len(val) - min(len(val), 50) + i}]", v
    elif isinstance(val, dict):
        for k, v in list(val.items())[:50]:
            if isinstance(v, types) and v.grad_fn is not None:
                yield f"{name}[{k!r}]", v


def _oldest_tag(t, max_nodes: int = 2000) -> int | None:
    """The oldest iteration tag reachable from ``t.grad_fn`` (bounded walk), or None."""
    root = t.grad_fn
    seen = {root}
    stack = [root]
    oldest = None
    while stack and len(seen) < max_nodes:
        node = stack.pop()
        md = node.metadata
        if md:
            it = md.get(ITERATION_KEY)
            for v in md.values():
                if isinstance(v, _RootSentinel) and (it is None or v.it < it):
                    it = v.it
            if it is not None and (oldest is None or it < oldest):
                oldest = it
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    del seen, stack, root
    return oldest


def _assignment_line(frame, name: str) -> int | None:
    """The line in the frame's function that accumulates into ``name`` (``+=``, ``.append(``, ``=``)."""
    import inspect
    import re

    try:
        lines, start = inspect.getsourcelines(frame.f_code)
    except (OSError, TypeError):
        return None
    pats = [
        re.compile(rf"\b{re.escape(name)}\s*(\+=|-=|\*=)"),
        re.compile(rf"\b{re.escape(name)}\s*\.\s*(append|extend|insert)\("),
        re.compile(rf"\b{re.escape(name)}\s*=(?!=)"),
    ]
    for pat in pats:
        for i, text in enumerate(lines):
            if pat.search(text):
                return start + i
    return None

