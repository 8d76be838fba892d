"""torch's loud autograd errors, explained at the line that caused them, on both engines: each bug gets an
error finding naming the variable at the ``# ROOT`` line (the ``# RAISES`` line as a related location), the
script raises the engine's own exception unchanged (type, message and warnings, byte for byte, against an
unwatched run), and each clean twin stays silent."""

from __future__ import annotations

import warnings

import pytest

import gradlens
from gradlens.errors import GradlensWarning

from . import loud_cases as lc
from .conftest import need

LOUD = set(lc.BUGS)
CASES = [(rule, fn) for rule, fns in lc.BUGS.items() for fn in fns]


def _outcome(fn, lib, watched: bool, on_finding: str = "collect"):
    """The exception (type, message, notes) and the engine's warnings (category, text, file, line), and the lens."""
    lens = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib.manual_seed(0)
        try:
            if watched:
                with gradlens.watch(on_finding=on_finding) as lens:
                    fn(lib)
            else:
                fn(lib)
        except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
            error = (type(exc), str(exc), getattr(exc, "__notes__", None))
        else:
            error = None
    said = [(w.category, str(w.message), w.filename, w.lineno) for w in caught
            if not issubclass(w.category, GradlensWarning)]
    return error, said, lens


def _needs(lib, fn):
    if fn in (lc.bug_rnn_module_state,):
        need(lib, "nn.RNNCell")


@pytest.mark.parametrize("rule,fn", CASES, ids=[fn.__name__ for _, fn in CASES])
def test_loud_error_is_explained_at_its_root_line(lib, rule, fn):
    _needs(lib, fn)
    plain_error, plain_said, _ = _outcome(fn, lib, watched=False)
    error, said, lens = _outcome(fn, lib, watched=True)
    assert plain_error is not None, f"{fn.__name__} must raise"
    assert error == plain_error  # same type, same text byte for byte, no note added
    assert said == plain_said  # the engine's own warnings, unchanged
    found = [f for f in lens.findings if f.kind in LOUD]
    assert [f.kind for f in found] == [rule], lens.report()
    (f,) = found
    assert f.severity == "error"
    assert f.location is not None and f.location.file == lc.__file__, f.location
    assert f.location.line == lc.marked_line(fn, "ROOT"), (f.message, f.location)
    raises = lc.marked_line(fn, "RAISES")
    if raises != f.location.line:
        assert raises in [r.line for r in f.related_locations], f.related_locations
    assert f.subject and f"`{f.subject[0]}`" in f.message
    fixes = {"leaf-rebound": "under torch.no_grad()", "inplace-on-leaf": "under torch.no_grad()",
             "inplace-modified-saved": "out-of-place", "backward-through-freed-graph": ".detach()",
             "graph-cut": ("Remove the detach()", "use .item() only for logging", "outside torch.no_grad()")}
    assert any(fix in f.message for fix in _as_tuple(fixes[rule])), f.message


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.mark.parametrize("fn", lc.CLEAN, ids=[fn.__name__ for fn in lc.CLEAN])
def test_clean_twin_is_silent(lib, fn):
    error, _, lens = _outcome(fn, lib, watched=True)
    assert error is None
    assert not [f for f in lens.findings if f.kind in LOUD], lens.report()


def test_raise_mode_keeps_the_engines_exception(lib):
    """on_finding="raise" must not replace the engine's error by a FindingError."""
    for fn in (lc.bug_leaf_rebound, lc.bug_hidden_state_not_detached):
        plain, _, _ = _outcome(fn, lib, watched=False)
        error, _, lens = _outcome(fn, lib, watched=True, on_finding="raise")
        assert error == plain
        assert {f.kind for f in lens.findings} & LOUD


def test_caught_backward_error_is_still_explained(lib):
    with gradlens.watch(on_finding="collect") as lens:
        with pytest.raises(RuntimeError, match="does not require grad"):
            lc.bug_cut_by_detach(lib)
    assert [f.kind for f in lens.findings if f.kind in LOUD] == ["graph-cut"]


def test_saved_hook_raises_the_engines_text_with_anomaly_mode():
    """Under anomaly mode torch's in-place text ends with another hint; the saved-tensor hook copies it."""
    torch = pytest.importorskip("torch")

    def run():
        with torch.autograd.set_detect_anomaly(True):
            lc.bug_inplace_modified_saved(torch)

    plain, plain_said, _ = _outcome(lambda lib: run(), torch, watched=False)
    error, said, _ = _outcome(lambda lib: run(), torch, watched=True)
    assert "Good luck!" in plain[1]
    assert error == plain
    # anomaly's warning quotes the forward's stack, whose test-harness frames differ: compare its first line
    assert [(s[0], s[1].splitlines()[0]) for s in said] == [(s[0], s[1].splitlines()[0]) for s in plain_said]


@pytest.mark.parametrize("make", ["split", "elu"])
def test_saved_hook_names_the_producer_as_torch_does(make):
    """Output numbers and overload suffixes: "output 1 of Split", "output 0 of Elu1"."""
    torch = pytest.importorskip("torch")

    def bug(lib):
        x = torch.ones(4, requires_grad=True)
        if make == "split":
            s = torch.split(x * 1, 2)
            y = s[1] * s[1]
            s[1].add_(1)
        else:
            s = torch.nn.functional.elu(x * 1, inplace=True)
            y = s * 2
            s.add_(1)
        y.sum().backward()

    plain, _, _ = _outcome(bug, torch, watched=False)
    error, _, _ = _outcome(bug, torch, watched=True)
    assert plain is not None and error == plain


def _keeps(lib, raised_in_backward: bool):
    import weakref

    refs = []

    def bug(lib):
        x = lib.ones(3, requires_grad=True)
        a = x.exp()
        refs.append(weakref.ref(a))
        if raised_in_backward:
            a.add_(1)
            a.sum().backward()
        else:
            a -= 1  # not a leaf: legal; then a leaf changed in place
            x -= 1

    return bug, refs


@pytest.mark.parametrize("where", ["backward", "exit"])
def test_explaining_keeps_no_graph_alive(lib, where):
    import gc

    bug, refs = _keeps(lib, where == "backward")
    with pytest.raises(RuntimeError) as info:
        with gradlens.watch(on_finding="collect") as lens:
            bug(lib)
    assert {f.kind for f in lens.findings} & LOUD
    del info
    gc.collect()
    assert refs[0]() is None
