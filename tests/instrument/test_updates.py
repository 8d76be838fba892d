"""updates.py: every way of updating a leaf by hand changes its mark; reads and accumulation do not."""

from __future__ import annotations

import pytest

from gradlens.instrument.state import _ParamState
from gradlens.instrument.updates import FINGERPRINT_ELEMENTS, changed_since_mark, fingerprint, mark


def _state():
    return _ParamState("w", None, None)


UPDATES = {
    "sub_ under no_grad": lambda lib, w: _no_grad(lib, lambda: w.sub_(0.1)),
    "-= under no_grad": lambda lib, w: _no_grad(lib, lambda: w.__isub__(0.1)),
    "copy_ under no_grad": lambda lib, w: _no_grad(lib, lambda: w.copy_(w * 0.5)),
    ".data -=": lambda lib, w: w.data.__isub__(0.1),
    ".data.add_(alpha=)": lambda lib, w: w.data.add_(lib.ones_like(w), alpha=-0.1),
    ".data =": lambda lib, w: setattr(w, "data", w.data * 0.5),
}


def _no_grad(lib, fn):
    with lib.no_grad():
        fn()


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_each_update_style_changes_the_mark(lib, name):
    w = lib.randn(4, 3, requires_grad=True)
    st = _state()
    mark(st, w)
    assert not changed_since_mark(st, w)
    UPDATES[name](lib, w)
    assert changed_since_mark(st, w)


def test_reads_and_accumulation_are_not_updates(lib):
    w = lib.randn(4, 3, requires_grad=True)
    st = _state()
    mark(st, w)
    (w * 2).sum().backward()
    _ = w.data.sum(), w.detach().clone()
    assert not changed_since_mark(st, w)


def test_unmarked_state_never_reports_a_change(lib):
    w = lib.randn(3, requires_grad=True)
    assert not changed_since_mark(_state(), w)


def test_large_tensor_fingerprint_is_a_bounded_strided_copy(lib):
    w = lib.zeros(100, 1000, requires_grad=True)
    fp = fingerprint(w)
    assert 0 < len(fp) <= FINGERPRINT_ELEMENTS * 4  # float32 values, at most FINGERPRINT_ELEMENTS of them
    st = _state()
    mark(st, w)
    w.data.add_(1.0)  # a dense update: every sampled element moves
    assert changed_since_mark(st, w)


def test_nan_values_are_not_an_update(lib):
    w = lib.tensor([float("nan"), 1.0], requires_grad=True)
    st = _state()
    mark(st, w)
    assert not changed_since_mark(st, w)
