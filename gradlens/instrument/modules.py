"""Module forward hooks: naming parameters as modules are first called, evaluation-mode forwards with grad
enabled, node tagging on sampled iterations, and root sentinels on a training model's outputs.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from .callsite import _user_frame, user_location
from .engines import EngineHooks
from .events import EvalForwardEvent, GraphDroppedEvent
from .sentinels import ITERATION_KEY, MODULE_KEY, STEP_KEY, _EvalSentinel, _RootSentinel
from .state import _ModInfo


class ModuleHooks:
    """Recorder part: global module forward hooks and module discovery (``modules``)."""

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
        prefix = self._name_root(module, cls) if root and self.modules[id(module)].has_params else None
        for pname, p in module.named_parameters():
            self._track(p, f"{prefix}.{pname}" if prefix else pname, eng)
        return self.modules[id(module)]

    def _name_root(self, module, cls: str) -> str | None:
        """Remember the user's variable for a root module with parameters; return the prefix its parameter
        names take: none while it is the only such root and holds no parameter of its own (``fc1.weight``,
        as ``named_parameters`` says); else its variable, or its class name (``model.weight`` for a bare
        ``nn.Linear``; ``head.weight``, ``encoder.0.bias`` for two models, when the first root's
        parameters are renamed the same way)."""
        var = self._module_variable(module)
        roots = self._module_vars
        if len(roots) >= 64:  # models built and dropped in a loop: forget the dead ones
            for key in [k for k, r in roots.items() if r[0]() is None]:
                del roots[key]
        others = [r for key, r in roots.items() if key != id(module) and r[0]() is not None]
        own = any(True for _ in module.parameters(recurse=False))
        roots[id(module)] = [weakref.ref(module), var, bool(others) or own]
        if not others:
            return (var or cls) if own else None
        for r in others:
            if not r[2]:
                r[2] = True
                self._prefix_params(r[0](), r[1] or type(r[0]()).__name__)
        return var or cls

    def _prefix_params(self, module, prefix: str) -> None:
        for pname, p in module.named_parameters():
            st = self.params.get(id(p))
            if st is not None and st.ref() is p and st.name == pname:
                st.name = f"{prefix}.{pname}"

    def _module_variable(self, module) -> str | None:
        """The user's variable for a module seen for the first time (``head``, ``self.encoder``), so that
        its parameters are named as written (``head.weight``): read from the calling user frame's
        variables, once per module. None when no variable (or several) is bound to it there."""
        from .rootlines import variable_of

        frame = _user_frame(3)
        try:
            return variable_of(frame, module) if frame is not None else None
        finally:
            del frame

    def _module_label(self, module, info: _ModInfo) -> str:
        """How findings name a root module: the user's variable when known, else its class name."""
        r = self._module_vars.get(id(module))
        return r[1] if r is not None and r[1] and r[0]() is module else info.name

    def _close_eval(self) -> None:
        """At the end of the watch, graphs of evaluation-mode forwards still alive and never reached by a
        backward are graphs built for nothing, kept by the user (an inference script keeping
        ``model(batch)`` outputs): report them now, whatever the engine's collection order at exit."""
        for s in list(self._eval_live):
            if not s.used:
                s.used = True  # reported here: its death must not report it again
                self._dropped.append(GraphDroppedEvent(s.module, s.step, s.nbytes, True, s.location))
        self._eval_live.clear()

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
        label = self._module_label(module, info)
        s = _EvalSentinel(self, label, self.step + 1, self.iteration, loc, nbytes)
        for fn in fns:
            fn.metadata["gradlens.eval"] = s
            s.handles.append(fn.register_prehook(s.prehook()))
        del fns
        self._eval_live.add(s)
        self._eval_hooked.add(s)
        self.emit(EvalForwardEvent(label, self.step + 1, loc))


def _is_compiling_fn(eng: EngineHooks):
    if eng.name != "torch":
        return None
    import torch

    comp = getattr(torch, "compiler", None)
    return getattr(comp, "is_compiling", None)

