"""Autograd state is per thread, as torch's: grad mode (``no_grad``, ``inference_mode``), the state of a
running backward pass (``create_graph``) and the ``saved_tensors_hooks`` stack set in one thread leave
every other thread as it was. Each test blocks one thread inside the state under test (events, with
timeouts as hang guards only) while the other thread checks what it sees."""

from __future__ import annotations

import threading

import numpy as np
import pytest

WAIT = 30  # seconds: a hang guard, never reached when the test passes


def _run_blocked(enter_state, check):
    """Run ``enter_state(inside, release)`` in a second thread; once it signals ``inside`` (it is now
    within its state and waits for ``release``), run ``check()`` here; return (check's result, errors)."""
    inside, release = threading.Event(), threading.Event()
    errors: list = []

    def other():
        try:
            enter_state(inside, release)
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)
            inside.set()

    t = threading.Thread(target=other)
    t.start()
    try:
        assert inside.wait(WAIT), "the other thread never entered its state"
        result = check()
    finally:
        release.set()
        t.join(WAIT)
    assert not t.is_alive()
    return result, errors


def _records(lib) -> bool:
    x = lib.ones(2, requires_grad=True)
    return (x * 2).grad_fn is not None


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "set_grad_enabled(False)"])
def test_grad_mode_off_in_one_thread_leaves_another_recording(lib, mode):
    def enter(inside, release):
        ctx = {"no_grad": lib.no_grad, "inference_mode": lib.inference_mode,
               "set_grad_enabled(False)": lambda: lib.set_grad_enabled(False)}[mode]()
        with ctx:
            assert not lib.is_grad_enabled() and not _records(lib)
            inside.set()
            assert release.wait(WAIT)
            assert not lib.is_grad_enabled() and not _records(lib)

    seen, errors = _run_blocked(enter, lambda: (lib.is_grad_enabled(), lib.is_inference_mode_enabled(),
                                                _records(lib)))
    assert errors == []
    assert seen == (True, False, True)


def test_a_new_thread_starts_with_grad_mode_on(lib):
    seen = {}

    def other():
        seen["enabled"], seen["records"] = lib.is_grad_enabled(), _records(lib)

    with lib.no_grad():
        t = threading.Thread(target=other)
        t.start()
        t.join(WAIT)
        assert not lib.is_grad_enabled()
    assert seen == {"enabled": True, "records": True}


def test_grad_mode_on_in_one_thread_leaves_another_off(lib):
    def enter(inside, release):
        with lib.enable_grad():
            inside.set()
            assert release.wait(WAIT)

    with lib.no_grad():
        seen, errors = _run_blocked(enter, lambda: (lib.is_grad_enabled(), _records(lib)))
    assert errors == []
    assert seen == (False, False)


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_backward_running_in_one_thread_leaves_another_as_it_was(lib, create_graph):
    """A backward pass switches grad mode (off, or on with create_graph) and records create_graph for the
    pass: none of it may leak into a thread that is not running a backward."""
    def enter(inside, release):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        h = x * x

        def hold(grad):
            inside.set()
            assert release.wait(WAIT)

        h.register_hook(hold)
        (g,) = lib.autograd.grad(h.sum() * 3, x, create_graph=create_graph)
        assert (g.grad_fn is not None) is create_graph

    def check():
        w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        (w ** 3).sum().backward()  # a plain backward here, while the other thread is inside its own
        return lib.is_grad_enabled(), _records(lib), w.grad.requires_grad, w.grad.grad_fn, w.grad.tolist()

    seen, errors = _run_blocked(enter, check)
    assert errors == []
    assert seen == (True, True, False, None, [3.0, 12.0, 27.0])


@pytest.mark.parametrize("other_create_graph", [False, True])
def test_backward_passes_overlapping_in_two_threads_keep_their_own_create_graph(lib, other_create_graph):
    """The other thread's backward stops in a hook; this thread runs a whole backward of the opposite kind
    whose hook lets the other thread finish its pass first. Each result has its own kind (a shared state
    would hand the other thread this thread's create_graph, or restore it wrongly afterwards)."""
    inside, release, done = threading.Event(), threading.Event(), threading.Event()
    results, errors = {}, []

    def other():
        try:
            x = lib.tensor([1.0, 2.0], requires_grad=True)
            h = x * x
            h.register_hook(lambda grad: inside.set() or release.wait(WAIT) and None)
            (g,) = lib.autograd.grad(h.sum() * 3, x, create_graph=other_create_graph)
            results["other"] = (g.grad_fn is not None, g.tolist())
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)
        finally:
            inside.set()
            done.set()

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(WAIT)
    w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = w ** 3
    c.register_hook(lambda grad: release.set() or done.wait(WAIT) and None)
    (gw,) = lib.autograd.grad(c.sum(), w, create_graph=not other_create_graph)
    release.set()
    t.join(WAIT)
    assert errors == []
    assert results["other"] == (other_create_graph, [6.0, 12.0])
    assert (gw.grad_fn is not None, gw.tolist()) == (not other_create_graph, [3.0, 12.0, 27.0])
    assert lib.is_grad_enabled()


def test_saved_tensors_hooks_in_one_thread_do_not_pack_another_threads_tensors(lib):
    packed = []

    def enter(inside, release):
        with lib.autograd.graph.saved_tensors_hooks(lambda t: packed.append(1) or t, lambda t: t):
            inside.set()
            assert release.wait(WAIT)

    def check():
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        (x * x).sum().backward()
        return x.grad.tolist()

    grads, errors = _run_blocked(enter, check)
    assert errors == []
    assert packed == [] and grads == [2.0, 4.0]


def test_interleaved_saved_tensors_hooks_regions_keep_their_own_hooks(lib):
    """Thread A enters a region, thread B enters another and leaves it while A is still inside: A's
    saved tensors still go to A's hooks (a shared stack would pop A's hooks at B's exit)."""
    seen_a, seen_b = [], []

    def enter(inside, release):
        with lib.autograd.graph.saved_tensors_hooks(lambda t: seen_b.append(1) or t, lambda t: t):
            inside.set()
            assert release.wait(WAIT)
        x = lib.ones(2, requires_grad=True)
        (x * x).sum()  # outside B's region: no hook
        assert seen_b == []

    with lib.autograd.graph.saved_tensors_hooks(lambda t: seen_a.append(1) or t, lambda t: t):
        _, errors = _run_blocked(enter, lambda: None)
        x = lib.ones(2, requires_grad=True)
        y = (x * x).sum()
    assert errors == []
    assert seen_a == [1, 1] and seen_b == []  # x * x saves both operands, into A's hooks
    y.backward()
    assert np.allclose(x.grad.tolist(), [2.0, 2.0])
