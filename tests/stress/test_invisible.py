"""The instrument is invisible, on both engines (issue 6).

* Every loop in ``tests/instrument/scenarios.py`` (clean and buggy), and long runs of several optimizers,
  give bit-identical parameters, gradients and optimizer state watched and unwatched, for several
  ``sample_every`` / ``nonfinite_every`` settings.
* Everything the instrument installs is gone after the watch exits: normally, by an exception, by
  ``KeyboardInterrupt``, by a watched generator closed early or garbage-collected mid-iteration, after 100
  sequential watches, after nested watches exited in or out of order.
* A watch in one thread while another thread trains: the other thread's results are bit-identical, the
  watch does not crash, says what it did not check, and cleans up.

``installed_state(lib, objects)`` is the one definition of "everything the instrument installs": both
engines' global hook registries, the saved-tensor hook stack, the functions gradlens wraps, per-tensor,
per-module and per-optimizer hooks, interpreter-wide hooks (trace, profile, warnings, excepthooks, gc
callbacks, SIGINT) and gradlens's own module-level state.
"""

# ruff: noqa: F811 - pytest injects the imported `lib` fixture by parameter name
from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import signal
import sys
import threading
import warnings

import numpy as np
import pytest

import gradlens
from gradlens.instrument import recorder as recorder_mod
from gradlens.instrument import watch as watch_mod

from ..instrument import scenarios as sc
from ..instrument.conftest import lib, need  # noqa: F401 - the two-engine fixture

# --- "everything the instrument installs" ---------------------------------------------------------------
_TENSOR_HOOK_ATTRS = ("_backward_hooks", "_post_accumulate_grad_hooks", "_hooks", "_post_acc_hooks")


def _registry_modules(lib) -> list:
    if lib.__name__ == "torch":
        names = ("torch.nn.modules.module", "torch.optim.optimizer", "torch.autograd.graph")
    else:
        names = ("gradlens.engine.nn.modules.module", "gradlens.engine.optim.optimizer",
                 "gradlens.engine.autograd.graph")
    return [importlib.import_module(n) for n in names]


def _globals_of(mod) -> dict:
    """Every ``_global*`` registry of a module: hook dicts as (key, hook id) tuples, flags as values."""
    out = {}
    for name, val in vars(mod).items():
        if name.startswith("_global"):
            out[f"{mod.__name__}.{name}"] = tuple((k, id(v)) for k, v in val.items()) if isinstance(val, dict) \
                else val
    return out


def _saved_hooks(lib) -> tuple:
    if lib.__name__ == "torch":
        top = lib._C._autograd._top_saved_tensors_default_hooks(True)
        return ("torch top", None if top is None else tuple(id(h) for h in top))
    graph = importlib.import_module("gradlens.engine.autograd.graph")
    return ("native stack", tuple((id(p), id(u)) for p, u in graph.SAVED_HOOKS.stack), graph.SAVED_HOOKS.disabled)


def _patchable_owners(lib) -> list:
    """Objects whose attributes a wrapper could replace (the recorder wraps ``autograd.backward``)."""
    owners = [lib.autograd, lib.Tensor, lib.nn.Module, lib.optim.Optimizer]
    owners += [getattr(lib.optim, n) for n in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LBFGS")
               if hasattr(lib.optim, n)]
    owners += _registry_modules(lib)
    return owners


def _callables_of(owner) -> dict:
    """name -> (identity, defining module) of an owner's functions."""
    return {n: (id(v), getattr(v, "__module__", None) or "") for n, v in list(vars(owner).items())
            if callable(v) and not inspect.ismodule(v) and not inspect.isclass(v)}


def _patched(before: dict, after: dict) -> dict:
    """Functions replaced, and functions added by gradlens (engines add others lazily on first use)."""
    out = {n: "replaced" for n in before.keys() & after.keys() if before[n][0] != after[n][0]}
    out.update({n: "added" for n in after.keys() - before.keys() if after[n][1].startswith("gradlens.")
                and not after[n][1].startswith("gradlens.engine")})
    out.update({n: "removed" for n in before.keys() - after.keys()})
    return out


def _hook_dicts(obj) -> dict:
    """Lengths of every ``*hooks*`` attribute of a module, optimizer or tensor (dicts, lists, None)."""
    out = {}
    names = set(getattr(obj, "__dict__", {})) | {a for a in _TENSOR_HOOK_ATTRS if hasattr(obj, a)}
    for name in sorted(names):
        if "hook" not in name:
            continue
        try:
            val = getattr(obj, name)
        except (AttributeError, RuntimeError):
            continue
        out[name] = len(val) if isinstance(val, (dict, list, tuple)) else val
    out["__dict__ keys"] = tuple(sorted(getattr(obj, "__dict__", {})))
    return out


def installed_state(lib, objects: tuple = ()) -> dict:
    """A comparable snapshot of everything a watch could leave behind.

    Args:
        lib: the engine (``torch`` or ``gradlens.engine``).
        objects: modules, optimizers and tensors whose own hooks and attributes to include.
    """
    state: dict = {}
    for mod in _registry_modules(lib):
        state.update(_globals_of(mod))
    state["saved tensor hooks"] = _saved_hooks(lib)
    for owner in _patchable_owners(lib):
        state[f"callables of {getattr(owner, '__name__', owner)}"] = _callables_of(owner)
    state["grad enabled"] = lib.is_grad_enabled()
    state["inference mode"] = lib.is_inference_mode_enabled()
    if lib.__name__ == "torch":
        state["anomaly mode"] = lib.is_anomaly_enabled()
    for i, obj in enumerate(objects):
        parts = [obj]
        if hasattr(obj, "parameters"):
            parts += list(obj.parameters())
        for j, part in enumerate(parts):
            state[f"object {i}.{j} ({type(part).__name__})"] = _hook_dicts(part)
    state["sys trace/profile"] = (sys.gettrace(), sys.getprofile(), threading.gettrace(), threading.getprofile())
    state["warnings"] = (tuple(warnings.filters), warnings.showwarning, warnings.formatwarning)
    state["excepthooks"] = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    state["gc"] = (tuple(gc.callbacks), gc.isenabled())
    state["SIGINT"] = signal.getsignal(signal.SIGINT)
    state["sys"] = (tuple(sys.meta_path), sys.getrecursionlimit(), sys.getswitchinterval())
    state["gradlens active watches"] = (len(watch_mod._ACTIVE), len(watch_mod._WARNED))
    return state


def assert_same_state(before: dict, after: dict) -> None:
    changed = {}
    for k in before.keys() | after.keys():
        if k.startswith("callables of"):
            patched = _patched(before.get(k, {}), after.get(k, {}))
            if patched:
                changed[k] = patched
        elif before.get(k) != after.get(k):
            changed[k] = (before.get(k), after.get(k))
    assert not changed, f"left behind by the watch: {changed}"


def settle(lib) -> None:
    """Run one unwatched step with each optimizer class: engines patch and attach things on first use
    (torch wraps ``Optimizer.step`` per class; the native engine adds ``_grad`` slots), which must not be
    mistaken for something a watch left behind."""
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"):
        model = sc.mlp(lib)
        opt = getattr(lib.optim, name)(model.parameters(), lr=1e-3)
        _step(lib, model, opt, eval_every=1)


def live_recorder_objects() -> dict:
    """How many of the recorder's own objects are still alive (after a full collection)."""
    gc.collect()
    kinds = (recorder_mod.Recorder, recorder_mod._Packed, recorder_mod._RootSentinel,
             recorder_mod._EvalSentinel, recorder_mod._ParamState)
    counts = {k.__name__: 0 for k in kinds}
    for o in gc.get_objects():
        for k in kinds:
            if type(o) is k:
                counts[k.__name__] += 1
    return {k: v for k, v in counts.items() if v}


def _step(lib, model, opt, eval_every: int = 0, i: int = 0):
    x, y = sc.batch(lib)
    opt.zero_grad()
    loss = sc.mse(lib, model(x), y)
    loss.backward()
    opt.step()
    if eval_every and i % eval_every == 0:
        model.eval()
        model(x).sum().item()  # evaluation with grad enabled: eval sentinels and their hooks get planted
        model.train()
    return loss.item()


@pytest.fixture(autouse=True)
def _settled(request):
    if "lib" in request.fixturenames:
        settle(request.getfixturevalue("lib"))


# --- bit identity -------------------------------------------------------------------------------------
class _Capture:
    """Collects every module called and every optimizer stepped (in order), through the engine's global
    hooks, so that scenario loops that keep their models local can be compared after they ran."""

    def __init__(self, lib):
        self.lib = lib
        self.modules: list = []
        self.optimizers: list = []
        self._mids: set[int] = set()
        self._oids: set[int] = set()

    def __enter__(self):
        mod, opt = _registry_modules(self.lib)[:2]
        self._handles = [mod.register_module_forward_pre_hook(self._on_module),
                         opt.register_optimizer_step_pre_hook(self._on_step)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        return False

    def _on_module(self, module, args):
        if id(module) not in self._mids:
            self._mids.add(id(module))
            self.modules.append(module)

    def _on_step(self, opt, args, kwargs):
        if id(opt) not in self._oids:
            self._oids.add(id(opt))
            self.optimizers.append(opt)


def _bits(x) -> tuple:
    if x is None or isinstance(x, (bool, int, float, str)):
        return ("value", x)
    if hasattr(x, "detach"):
        a = np.ascontiguousarray(x.detach().numpy())
        return ("tensor", a.dtype.str, a.shape, a.tobytes())
    if isinstance(x, (list, tuple)):
        return tuple(_bits(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, _bits(v)) for k, v in sorted(x.items(), key=lambda kv: str(kv[0])))
    return ("other", repr(x))


def outcome(cap: _Capture) -> dict:
    """Bit patterns of every parameter, buffer, gradient and optimizer state the loop produced."""
    out = {}
    for i, m in enumerate(cap.modules):
        for k, v in m.state_dict().items():
            out[f"module {i} {k}"] = _bits(v)
        for k, p in m.named_parameters():
            out[f"module {i} {k}.grad"] = _bits(p.grad)
    for i, o in enumerate(cap.optimizers):
        sd = o.state_dict()
        out[f"optimizer {i} state"] = _bits(sd["state"])
        out[f"optimizer {i} groups"] = _bits([{k: v for k, v in g.items() if k != "params"}
                                               for g in sd["param_groups"]])
    return out


def run_scenario(lib, fn, watch_kwargs: dict | None) -> tuple[dict, str | None, tuple]:
    """Run ``fn(lib)`` from a fixed seed, watched (with ``watch_kwargs``) or not; return its outcome, the
    type of error it raised (if any), and the installed state (global before, global after, and the hooks
    on the loop's own modules, parameters and optimizers after)."""
    lib.manual_seed(1234)
    error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _Capture(lib) as cap:
            before = installed_state(lib)
            try:
                if watch_kwargs is None:
                    fn(lib)
                else:
                    with gradlens.watch(on_finding="collect", **watch_kwargs):
                        fn(lib)
            except RuntimeError as exc:  # bug_rnn_no_detach raises the engine's error by design
                error = type(exc).__name__
            after = installed_state(lib)
        objects = _hooks_of_objects(lib, tuple(cap.modules) + tuple(cap.optimizers))
    return outcome(cap), error, (before, after, objects)


SCENARIOS = sorted(n for n in dir(sc) if n.startswith(("clean_", "bug_", "info_")))
WATCH_SETTINGS = {
    "default": {},
    "sample_every=1,nonfinite_every=1": {"sample_every": 1, "nonfinite_every": 1},
    "sample_every=0,nonfinite_every=0": {"sample_every": 0, "nonfinite_every": 0},
}


@pytest.mark.parametrize("settings", list(WATCH_SETTINGS))
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_is_bit_identical_watched(lib, name, settings):
    fn = getattr(sc, name)
    if name == "clean_lbfgs":
        need(lib, "optim.LBFGS")
    plain, plain_err, (_, _, plain_objects) = run_scenario(lib, fn, None)
    watched, watched_err, (before, after, watched_objects) = run_scenario(lib, fn, WATCH_SETTINGS[settings])
    assert watched_err == plain_err
    assert plain, "the capture saw no module: the comparison would be empty"
    assert watched.keys() == plain.keys()
    diff = [k for k in plain if plain[k] != watched[k]]
    assert diff == [], f"{name}: watched run differs in {diff[:5]}"
    # the global state (registries, wrappers, interpreter hooks) is back to what it was, and the loop's
    # modules, parameters and optimizers carry the same hooks and attributes as in the unwatched run
    assert_same_state(before, after)
    assert_same_state(plain_objects, watched_objects)


def _hooks_of_objects(lib, objects) -> dict:
    return {k: v for k, v in installed_state(lib, objects).items() if k.startswith("object")}


OPTIMIZERS = {
    "SGD(momentum, nesterov, wd)": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    "Adam(amsgrad)": ("Adam", {"lr": 1e-2, "amsgrad": True}),
    "AdamW": ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    "RMSprop(momentum, centered)": ("RMSprop", {"lr": 1e-3, "momentum": 0.5, "centered": True}),
    "Adagrad": ("Adagrad", {"lr": 0.1}),
}


def _long_loop(lib, opt_name: str, opt_kwargs: dict, steps: int):
    """A correct loop with the habits real loops have: clipping, accumulation every third step, an
    evaluation forward with grad enabled, and a loss kept as a number."""
    model = sc.mlp(lib)
    opt = getattr(lib.optim, opt_name)(model.parameters(), **opt_kwargs)
    total = 0.0
    for i in range(steps):
        x, y = sc.batch(lib)
        loss = sc.mse(lib, model(x), y)
        loss.backward()
        if i % 3 != 1:
            lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=i % 2 == 0)
        if i % 7 == 0:
            model.eval()
            total += model(x).mean().item()
            model.train()
        total += loss.item()
    return model, opt, total


@pytest.mark.parametrize("sample_every", [0, 1, 5, 16])
@pytest.mark.parametrize("opt_label", list(OPTIMIZERS))
def test_optimizers_after_many_steps_bit_identical(lib, opt_label, sample_every):
    opt_name, kwargs = OPTIMIZERS[opt_label]
    need(lib, f"optim.{opt_name}", "nn.utils.clip_grad_norm_")
    steps = 60
    results = []
    for watched in (False, True):
        lib.manual_seed(7)
        before = installed_state(lib)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx = gradlens.watch(on_finding="collect", sample_every=sample_every, nonfinite_every=3) if watched \
                else contextlib.nullcontext()
            with ctx:
                model, opt, total = _long_loop(lib, opt_name, kwargs, steps)
        assert_same_state(before, installed_state(lib))
        cap = _Capture(lib)
        cap.modules, cap.optimizers = [model], [opt]
        results.append((outcome(cap), total, _hooks_of_objects(lib, (model, opt))))
    (plain, plain_total, plain_hooks), (watched, watched_total, watched_hooks) = results
    assert plain_total == watched_total
    assert [k for k in plain if plain[k] != watched[k]] == []
    assert any(k.startswith("optimizer 0 state") and v != () for k, v in plain.items())
    assert watched_hooks == plain_hooks  # no hook left on the model, its parameters or the optimizer


# --- everything is removed on every way out ----------------------------------------------------------
def _model_opt(lib):
    """A model and optimizer that already took one unwatched step (so their lazily created state exists)."""
    model = sc.mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _step(lib, model, opt)
    return model, opt


class _Stop(Exception):
    pass


@pytest.mark.parametrize("exit_by", ["normal", "exception", "KeyboardInterrupt", "SystemExit", "GeneratorExit"])
@pytest.mark.parametrize("where", ["after step", "mid-iteration"])
def test_nothing_left_on_any_exit(lib, exit_by, where):
    """Exits mid-iteration happen with a forward graph alive and the saved-tensor hooks pushed."""
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    raised = {"normal": None, "exception": _Stop, "KeyboardInterrupt": KeyboardInterrupt,
              "SystemExit": SystemExit, "GeneratorExit": GeneratorExit}[exit_by]
    out = None
    try:
        with gradlens.watch(model=model, optimizer=opt, on_finding="collect", sample_every=1) as lens:
            for i in range(4):
                _step(lib, model, opt, eval_every=2, i=i)
            assert installed_state(lib, (model, opt)) != before
            if where == "mid-iteration":
                x, _ = sc.batch(lib)
                out = model(x)  # a graph in flight (saved tensors packed by the watch)
            if raised is not None:
                raise raised("stop")
    except BaseException as exc:  # noqa: BLE001 - each way out is checked to be the one raised
        assert raised is not None and type(exc) is raised
    assert_same_state(before, installed_state(lib, (model, opt)))
    assert lens.session.steps == 4
    if out is not None:
        out.sum().backward()  # the graph built under the watch still works after it
        del out
    assert live_recorder_objects() == {}


def test_graphs_kept_past_the_watch_carry_no_hook_and_pin_no_recorder(lib):
    """Outputs built under the watch and kept after it (an evaluation output with its graph, a loss) keep
    only inert marks: their nodes' prehooks are removed, and they do not keep the recorder (and through it
    the model and optimizer) alive."""
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    with gradlens.watch(model=model, optimizer=opt, on_finding="collect", sample_every=1):
        loss = None
        for _ in range(3):
            x, y = sc.batch(lib)
            opt.zero_grad()
            loss = sc.mse(lib, model(x), y)
            loss.backward(retain_graph=True)
            opt.step()
        model.eval()
        kept = model(x)  # evaluation forward with grad enabled, kept by the user
        model.train()
        if lib.__name__ != "torch":
            assert kept.grad_fn._prehooks  # the watch hung its "was it used" prehook there
    assert_same_state(before, installed_state(lib, (model, opt)))
    if lib.__name__ != "torch":
        assert not kept.grad_fn._prehooks
    gc.collect()
    assert "Recorder" not in live_recorder_objects()
    kept.sum().backward()  # the kept graph still works
    del kept, loss
    assert live_recorder_objects() == {}


def _watched_training_generator(lib, model, opt, yield_mid_iteration: bool):
    """A generator-based training loop with the watch inside it: yields a loss per step."""
    with gradlens.watch(on_finding="collect", sample_every=1):
        i = 0
        while True:
            x, y = sc.batch(lib)
            opt.zero_grad()
            out = model(x)
            if yield_mid_iteration:
                yield None  # suspended with a forward graph alive and saved-tensor hooks pushed
            loss = sc.mse(lib, out, y)
            loss.backward()
            opt.step()
            if i % 2:
                model.eval()
                model(x).sum().item()
                model.train()
            i += 1
            yield loss.item()


@pytest.mark.parametrize("ends_by", ["close", "garbage collected", "throw", "exhausted by exception"])
@pytest.mark.parametrize("mid_iteration", [False, True])
def test_generator_closed_early_leaves_nothing(lib, ends_by, mid_iteration):
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    gen = _watched_training_generator(lib, model, opt, mid_iteration)
    for _ in range(5):
        next(gen)
    assert installed_state(lib, (model, opt)) != before
    if ends_by == "close":
        gen.close()
    elif ends_by == "garbage collected":
        del gen
        gc.collect()
    elif ends_by == "throw":
        with pytest.raises(KeyboardInterrupt):
            gen.throw(KeyboardInterrupt())
    else:
        with pytest.raises(_Stop):
            gen.throw(_Stop())
    assert_same_state(before, installed_state(lib, (model, opt)))
    assert live_recorder_objects() == {}


def test_generator_closed_under_a_users_saved_tensors_hooks(lib):
    """The watch's generator is closed while the user's own ``saved_tensors_hooks`` region is active
    (pushed above the watch's hooks): the watch must remove its hooks without disturbing the user's, and
    the user's region must still pop cleanly."""
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    gen = _watched_training_generator(lib, model, opt, yield_mid_iteration=False)
    for _ in range(4):
        next(gen)
    packed = []

    def pack(t):
        packed.append(1)
        return t.detach()

    def unpack(t):
        return t

    with lib.autograd.graph.saved_tensors_hooks(pack, unpack):
        gen.close()
        # the user's hooks are still the ones in force
        x, y = sc.batch(lib)
        n = len(packed)
        sc.mse(lib, model(x), y).backward()
        assert len(packed) > n
    assert_same_state(before, installed_state(lib, (model, opt)))


def test_hundred_sequential_watches_leave_nothing(lib):
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(100):
            kwargs = {"model": model, "optimizer": opt} if i % 2 else {}
            with gradlens.watch(sample_every=i % 3, on_finding="collect" if i % 4 else "warn"):
                _step(lib, model, opt, eval_every=1)
                with gradlens.watch(on_finding="collect", **kwargs):
                    _step(lib, model, opt)
    assert_same_state(before, installed_state(lib, (model, opt)))
    assert live_recorder_objects() == {}


def test_watches_exited_out_of_order(lib):
    """Two watches entered A, B and exited A, B (possible with ExitStack-free code: generators, manual
    ``__exit__``): each removes exactly its own hooks; B keeps working after A left; nothing is left."""
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    a, b = gradlens.watch(on_finding="collect", sample_every=1), gradlens.watch(on_finding="collect", sample_every=1)
    lens_a = a.__enter__()
    _step(lib, model, opt)
    lens_b = b.__enter__()
    _step(lib, model, opt)
    a.__exit__(None, None, None)
    assert installed_state(lib, (model, opt)) != before  # B is still installed
    for _ in range(3):
        x, y = sc.batch(lib)
        sc.mse(lib, model(x), y).backward()  # zero_grad forgotten: B still sees it
        opt.step()
    b.__exit__(None, None, None)
    assert_same_state(before, installed_state(lib, (model, opt)))
    assert "missing-zero-grad" in lens_b.kinds() and "missing-zero-grad" not in lens_a.kinds()
    assert lens_a.session.steps == 2 and lens_b.session.steps == 4
    assert live_recorder_objects() == {}


def test_reused_watch_object_nests_and_unwinds(lib):
    """One ``Watch`` object entered twice (recursion through a decorated function) unwinds in LIFO."""
    model, opt = _model_opt(lib)
    before = installed_state(lib, (model, opt))
    w = gradlens.watch(on_finding="collect")

    @w
    def train(depth):
        _step(lib, model, opt)
        if depth:
            train(depth - 1)
        return depth

    assert train(5) == 5
    assert_same_state(before, installed_state(lib, (model, opt)))
    assert train.lens.session.steps == 6  # the outermost run's lens saw every step
    assert live_recorder_objects() == {}


# --- threads ------------------------------------------------------------------------------------------
def _thread_job(lib, seed: int, steps: int):
    """A model, an optimizer and all the batches, made up front: the thread itself draws no random
    numbers (the generator is shared with the main thread)."""
    lib.manual_seed(seed)
    model = sc.mlp(lib)
    opt = lib.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, [sc.batch(lib) for _ in range(steps)]


def _train_job(lib, job) -> dict:
    model, opt, batches = job
    for x, y in batches:
        opt.zero_grad()
        sc.mse(lib, model(x), y).backward()
        opt.step()
    cap = _Capture(lib)
    cap.modules, cap.optimizers = [model], [opt]
    return outcome(cap)


def _in_thread(fn, results: dict, errors: list, done: threading.Event | None = None) -> threading.Thread:
    def run():
        try:
            results["other"] = fn()
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)
        finally:
            if done is not None:
                done.set()

    return threading.Thread(target=run)


def test_watch_in_one_thread_while_another_trains(lib):
    """The main thread runs a watched, correct loop while a second thread trains its own model."""
    steps = 150
    reference = _train_job(lib, _thread_job(lib, 11, steps))
    job = _thread_job(lib, 11, steps)
    before = installed_state(lib)
    results: dict = {}
    errors: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gradlens.watch(sample_every=1, nonfinite_every=1) as lens:
            t = _in_thread(lambda: _train_job(lib, job), results, errors)
            t.start()
            model, opt = _model_opt(lib)
            for _ in range(steps):
                _step(lib, model, opt)
            t.join(timeout=120)
            assert not t.is_alive()
    assert errors == []
    assert results["other"] == reference, "the other thread's training changed under the watch"
    assert_same_state(before, installed_state(lib))
    # both loops are correct: no false alarm, and the other thread is named as a blind spot
    assert [f.kind for f in lens.findings if f.severity != "info"] == []
    assert [w for w in caught if issubclass(w.category, gradlens.GradlensWarning)] == []
    assert any("thread" in n for n in lens.not_checked), lens.not_checked
    assert live_recorder_objects() == {}


def test_watches_come_and_go_while_another_thread_trains(lib):
    """Short watches enter and exit in the main thread while a second thread trains throughout: no crash
    in either thread, the second thread's result is bit-identical, nothing is left installed."""
    steps = 300
    reference = _train_job(lib, _thread_job(lib, 5, steps))
    job = _thread_job(lib, 5, steps)
    before = installed_state(lib)
    results: dict = {}
    errors: list = []
    done = threading.Event()
    t = _in_thread(lambda: _train_job(lib, job), results, errors, done)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, opt = _model_opt(lib)
        t.start()
        n = 0
        while not done.is_set() and n < 2000:
            with gradlens.watch(on_finding="collect", sample_every=1):
                _step(lib, model, opt, eval_every=2, i=n)
            n += 1
        t.join(timeout=120)
    assert errors == []
    assert results["other"] == reference
    assert_same_state(before, installed_state(lib))


# --- engine behaviours the guarantees above rely on (were defects of the native engine, fixed in issue 6) -
def test_native_saved_tensors_hooks_keep_double_backward_graph():
    import gradlens.engine as lib_

    x = lib_.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with lib_.autograd.graph.saved_tensors_hooks(lambda t: t.detach(), lambda t: t):
        y = (x * x.exp()).sum()
    (g,) = lib_.autograd.grad(y, x, create_graph=True)
    g.sum().backward()
    expected = (x.detach().exp() * (x.detach() + 2)).numpy()  # d/dx of (x + 1) e^x
    assert np.allclose(x.grad.numpy(), expected)


def test_native_grad_mode_is_thread_local():
    import gradlens.engine as lib_

    inside, seen = threading.Event(), {}

    def other():
        with lib_.no_grad():
            inside.set()
            release.wait(10)

    release = threading.Event()
    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    seen["enabled"] = lib_.is_grad_enabled()
    release.set()
    t.join()
    assert seen["enabled"] is True


def test_native_saved_tensors_hooks_are_thread_local():
    import gradlens.engine as lib_

    packed = []
    x = lib_.randn(3, requires_grad=True)

    def other():
        (x * x).sum()  # saves x: must not reach the main thread's hooks

    with lib_.autograd.graph.saved_tensors_hooks(lambda t: packed.append(1) or t.detach(), lambda t: t):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert packed == []
