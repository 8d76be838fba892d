"""What the instrument promises, on both engines: watched runs give bit-identical parameters, no graph is
kept alive by gradlens, every hook and wrapper is removed on exit (also when the loop raises), watches
nest, and the decorator and record forms work."""

from __future__ import annotations

import gc
import importlib
import json
import threading
import warnings
import weakref

import numpy as np
import pytest

import gradlens
from gradlens.instrument.session import Session

from . import scenarios as sc


def params_of(model):
    return {k: np.array(v.detach().numpy(), copy=True) for k, v in model.state_dict().items()}


def train(lib, bug=False, steps=6):
    lib.manual_seed(1)
    model = sc.mlp(lib)
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    for i in range(steps):
        x, y = sc.batch(lib)
        if not bug:
            opt.zero_grad()
        loss = sc.mse(lib, model(x), y)
        loss.backward()
        opt.step()
        if i % 2:
            model.eval()
            model(x).sum().item()  # an evaluation forward without no_grad: sentinels get planted
            model.train()
    return model


@pytest.mark.parametrize("bug", [False, True])
@pytest.mark.parametrize("sample_every", [1, 16])
def test_watched_run_is_bit_identical(lib, bug, sample_every):
    plain = params_of(train(lib, bug))
    with gradlens.watch(on_finding="collect", sample_every=sample_every):
        watched = params_of(train(lib, bug))
    assert plain.keys() == watched.keys()
    for k in plain:
        assert np.array_equal(plain[k], watched[k]), k


def test_no_graph_kept_alive(lib):
    """Weak references to graph tensors die once the user drops them, in training and evaluation."""
    model = sc.mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    refs = []
    with gradlens.watch(on_finding="collect", sample_every=1):
        for _ in range(4):
            x, y = sc.batch(lib)
            opt.zero_grad()
            hidden = model.fc1(x).tanh()  # saved for backward by tanh
            loss = sc.mse(lib, model.fc2(hidden), y)
            loss.backward()
            opt.step()
            refs += [weakref.ref(hidden), weakref.ref(loss)]
            del hidden, loss
            model.eval()
            out = model(x)  # graph built without backward (eval, grad on)
            refs.append(weakref.ref(out))
            del out
            model.train()
        gc.collect()
        assert [r for r in refs if r() is not None] == []
    gc.collect()
    from gradlens.instrument import recorder

    assert [o for o in gc.get_objects() if isinstance(o, recorder._Packed)] == []


def _hook_state(lib):
    if lib.__name__ == "torch":
        optim = importlib.import_module("torch.optim.optimizer")
        module = importlib.import_module("torch.nn.modules.module")
        top = lib._C._autograd._top_saved_tensors_default_hooks(True)
        stack = 0 if top is None else 1
    else:
        optim = importlib.import_module("gradlens.engine.optim.optimizer")
        module = importlib.import_module("gradlens.engine.nn.modules.module")
        from gradlens.engine.autograd import graph

        stack = len(graph.SAVED_HOOKS.stack)
    return (
        len(optim._global_optimizer_pre_hooks),
        len(optim._global_optimizer_post_hooks),
        len(module._global_forward_pre_hooks),
        len(module._global_forward_hooks),
        stack,
        lib.autograd.backward,
    )


def _param_hooks(model):
    out = 0
    for p in model.parameters():
        hooks = getattr(p, "_post_accumulate_grad_hooks", None)
        if hooks is None:
            hooks = getattr(p, "_post_acc_hooks", None)
        out += len(hooks or {})
    return out


def test_every_hook_removed_on_exit_and_on_exception(lib):
    before = _hook_state(lib)
    model = sc.mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ZeroDivisionError):
        with gradlens.watch(on_finding="collect", sample_every=1):
            for i in range(3):
                x, y = sc.batch(lib)
                opt.zero_grad()
                sc.mse(lib, model(x), y).backward()
                opt.step()
                assert _hook_state(lib) != before
                if i == 2:
                    model(x)  # mid-iteration: saved-tensor hooks still pushed
                    raise ZeroDivisionError("the loop fails")
    assert _hook_state(lib) == before
    assert _param_hooks(model) == 0
    with gradlens.watch(model=model, optimizer=opt, on_finding="collect"):
        assert _param_hooks(model) == 4
    assert _hook_state(lib) == before
    assert _param_hooks(model) == 0


def test_watches_nest(lib):
    before = _hook_state(lib)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gradlens.watch() as outer:
            sc.clean_basic(lib, steps=2)
            with gradlens.watch() as inner:
                sc.bug_missing_zero_grad(lib)
            inner_state = _hook_state(lib)
            sc.bug_zero_grad_before_step(lib)
    assert inner_state != before and _hook_state(lib) == before
    assert "missing-zero-grad" in inner.kinds() and "missing-zero-grad" in outer.kinds()
    assert "zero-grad-before-step" in outer.kinds() and "zero-grad-before-step" not in inner.kinds()
    ours = [w for w in caught if issubclass(w.category, gradlens.GradlensWarning)]
    assert sorted(w.category.kind for w in ours) == ["missing-zero-grad", "zero-grad-before-step"]


def test_decorator_forms_and_record(lib):
    @gradlens.watch
    def bare(n):
        sc.bug_missing_zero_grad(lib, steps=n)
        return "done"

    @gradlens.watch(on_finding="collect", accumulation=4)
    def with_args():
        sc.info_accumulation(lib)
        return 7

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bare(3) == "done"
    first = bare.lens
    assert "missing-zero-grad" in first.kinds()
    assert with_args() == 7 and with_args.lens.kinds() == {"accumulation"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bare(2)
    assert bare.lens is not first
    record = json.loads(json.dumps(bare.lens.to_dict()))
    assert record["format"] == "gradlens.session" and record["version"] == 1
    back = Session.from_dict(record)
    assert [f.kind for f in back.findings] == [f.kind for f in bare.lens.findings]
    assert back.events == bare.lens.session.events
    assert "missing-zero-grad" in bare.lens.report()


def test_backward_in_another_thread_is_named_not_checked(lib):
    model = sc.mlp(lib)
    with gradlens.watch(on_finding="collect") as lens:
        x, y = sc.batch(lib)
        t = threading.Thread(target=lambda: sc.mse(lib, model(x), y).backward())
        t.start()
        t.join()
    assert any("thread" in n for n in lens.not_checked)
    assert "thread" in lens.report()


def test_holder_search_keeps_nothing_alive(lib):
    """Naming the variable that holds a leaked graph reads the user's frames; that must not pin tensors."""
    refs = []

    def loop():
        model = sc.mlp(lib)
        opt = lib.optim.SGD(model.parameters(), lr=0.01)
        losses = []
        for _ in range(5):
            x, y = sc.batch(lib)
            opt.zero_grad()
            loss = sc.mse(lib, model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss)
            refs.append(weakref.ref(loss))
        del losses, loss
        gc.collect()
        return [r for r in refs if r() is not None]

    with gradlens.watch(on_finding="collect") as lens:
        alive = loop()
    assert "graph-retained" in lens.kinds() and lens.findings[0].subject[0].startswith("losses[")
    assert alive == []


def test_checkpoint_regions_are_named_not_checked():
    torch = pytest.importorskip("torch")
    from torch.utils.checkpoint import checkpoint

    model = sc.mlp(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(3):
            x, y = sc.batch(torch)
            opt.zero_grad()
            out = checkpoint(model, x, use_reentrant=False)
            sc.mse(torch, out, y).backward()
            opt.step()
    assert any("checkpoint" in n for n in lens.not_checked), lens.not_checked
    assert [f for f in lens.findings if f.severity != "info"] == []


@pytest.mark.slow
def test_torch_compile_still_checked_and_named():
    torch = pytest.importorskip("torch")
    model = sc.mlp(torch)
    compiled = torch.compile(model, backend="aot_eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with gradlens.watch(on_finding="collect") as lens:
            for _ in range(4):
                x, y = sc.batch(torch)
                sc.mse(torch, compiled(x), y).backward()  # zero_grad forgotten
                opt.step()
    assert "missing-zero-grad" in lens.kinds()
    assert any("torch.compile" in n for n in lens.not_checked)


def test_engines_option_limits_the_watch():
    torch = pytest.importorskip("torch")
    with gradlens.watch(engines="native", on_finding="collect") as lens:
        sc.bug_missing_zero_grad(torch)
    assert lens.session.engines == ["native"] and lens.findings == []
    with pytest.raises(ValueError, match="engines"):
        gradlens.watch(engines="jax")
    with pytest.raises(ValueError, match="on_finding"):
        gradlens.watch(on_finding="shout")
    with pytest.raises(ValueError, match="unknown"):
        gradlens.watch(ignore={"missing-zerograd"})


def test_lens_keeps_no_model_or_optimizer_alive(lib):
    model = sc.mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    with gradlens.watch(model=model, optimizer=opt, on_finding="collect") as lens:
        x, y = sc.batch(lib)
        sc.mse(lib, model(x), y).backward()
        opt.step()
    refs = [weakref.ref(model), weakref.ref(opt)]
    del model, opt, x, y
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert lens.session.steps == 1


def test_a_wrapper_kept_by_other_code_keeps_no_recorder_alive(lib):
    """Code that keeps the watched ``autograd.backward`` after the watch (torch.compile's trace-rule map does,
    as does ``bw = torch.autograd.backward``) must neither keep the run's recorder alive nor check anything."""
    from gradlens.instrument.recorder import Recorder

    original = lib.autograd.backward
    model = sc.mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    with gradlens.watch(on_finding="collect") as lens:
        kept = lib.autograd.backward
        assert kept is not original  # watched: the wrapper is installed
        x, y = sc.batch(lib)
        sc.mse(lib, model(x), y).backward()
        opt.step()
    assert lib.autograd.backward is original
    gc.collect()
    assert [o for o in gc.get_objects() if type(o) is Recorder] == []
    # the kept wrapper passes calls through: the same gradients as the original, no finding added
    for p in model.parameters():
        p.grad = None
    kept([sc.mse(lib, model(x), y)])
    got = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    original([sc.mse(lib, model(x), y)])
    assert all(bool((a == p.grad).all()) for a, p in zip(got, model.parameters()))
    assert lens.session.steps == 1 and lens.findings == []
