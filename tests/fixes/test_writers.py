"""The fix writers on small sources, in-process (no run): the edit each writes for the shapes it knows, and
the one-sentence refusal for a shape it does not. The end-to-end round trip is in tests/cli/test_fix.py."""

from __future__ import annotations

import textwrap

import pytest

from gradlens.findings import Finding, Location
from gradlens.fixes import FileFix, eval_mode, manual_update, retention, zero_grad
from gradlens.fixes.source import SourceFile


def _fixed(writer, code: str, marker: str = "# HERE", subject: tuple[str, ...] = (), kind="graph-retained"):
    """The patched text of ``code`` after ``writer`` fixed a finding at the line carrying ``marker``,
    or the writer's refusal."""
    code = textwrap.dedent(code)
    line = next(i for i, text in enumerate(code.splitlines(), 1) if marker in text)
    src = SourceFile("t.py", code)
    finding = Finding(kind=kind, severity="warning", message="m", location=Location("t.py", line, "f"),
                      subject=subject)
    result = writer(finding, src)
    if isinstance(result, str):
        return result
    fix = FileFix("t.py", "t.py", list(src.lines))
    assert fix.accepts(result)
    return "".join(fix.patched())


def test_total_started_as_a_number_becomes_a_float_and_its_item_calls_go():
    out = _fixed(retention.fix, """
        def f(loss_fn, batches):
            total = 0.0
            for b in batches:
                loss = loss_fn(b)
                total += loss  # HERE
            print(total.item() / 2, total.item())
        """)
    assert "total += loss.item()  # HERE" in out and "print(total / 2, total)" in out


def test_total_used_as_a_tensor_is_detached_instead():
    out = _fixed(retention.fix, """
        def f(loss_fn, batches, torch):
            total = torch.zeros(())
            for b in batches:
                total += loss_fn(b)  # HERE
            return total.item()
        """)
    assert "total += loss_fn(b).detach()  # HERE" in out and "return total.item()" in out


def test_history_of_losses_gets_item_and_of_outputs_detach():
    out = _fixed(retention.fix, """
        def f(model, xs):
            history = []
            for x in xs:
                history.append(model(x).sum() * 2)  # HERE
        """)
    assert "history.append((model(x).sum() * 2).detach())" in out
    out = _fixed(retention.fix, """
        def f(model, xs, losses=[]):
            for x in xs:
                loss = model(x)
                losses.append(loss)  # HERE
        """)
    assert "losses.append(loss.item())" in out


def test_only_the_attached_branch_of_a_conditional_changes():
    out = _fixed(retention.fix, """
        def f(loss, detach, total=0.0):
            total += loss.item() if detach else loss  # HERE
        """)
    assert "total += loss.item() if detach else loss.item()" in out
    assert "already detached" in _fixed(retention.fix, "total += loss.item()  # HERE\n")


def test_zero_grad_goes_first_in_the_loop_with_its_indentation_and_the_optimizer_name():
    out = _fixed(zero_grad.fix, """
        for x in data:
        \tloss = model(x)
        \tloss.backward()  # HERE
        \tadam.step()
        """, kind="missing-zero-grad")
    assert "for x in data:\n\tadam.zero_grad()\n\tloss = model(x)\n" in out


def test_zero_grad_after_a_conditional_step_keeps_accumulation():
    out = _fixed(zero_grad.fix, """
        for i, x in enumerate(data):
            model(x).backward()  # HERE
            if i % 4 == 3:
                opt.step()
        """, kind="missing-zero-grad")
    assert "        opt.step()\n        opt.zero_grad()\n" in out


def test_manual_loop_clears_the_named_leaves_after_the_update():
    out = _fixed(zero_grad.fix, """
        for _ in range(3):
            loss = (x @ W + b).sum()
            loss.backward()  # HERE
            with torch.no_grad():
                W -= 0.1 * W.grad
                b -= 0.1 * b.grad
        """, subject=("W", "b"), kind="missing-zero-grad")
    assert "        b -= 0.1 * b.grad\n        W.grad = None\n        b.grad = None\n" in out
    assert "not plain variables" in _fixed(zero_grad.fix, """
        for _ in range(3):
            model(x).sum().backward()  # HERE
            model.step_by_hand()
        """, subject=("0.weight",), kind="missing-zero-grad")


def test_evaluation_loop_is_wrapped_in_the_scripts_no_grad():
    out = _fixed(eval_mode.fix, """
        import torch as T
        for x in val:
            out = model(x)  # HERE
            correct += (out.argmax(1) == 0).sum().item()
        """, kind="graph-without-backward")
    assert "with T.no_grad():\n    for x in val:\n        out = model(x)  # HERE\n" in out


@pytest.mark.parametrize("line,writer", [("w = w - lr * w.grad", manual_update.fix_rebound),
                                         ("w -= lr * w.grad", manual_update.fix_inplace)])
def test_hand_update_goes_in_place_under_no_grad(line, writer):
    out = _fixed(writer, f"""
        import torch
        for _ in range(3):
            loss = (w * 2).sum()
            loss.backward()
            {line}  # HERE
        """, kind="leaf-rebound")
    assert "    with torch.no_grad():\n        w -= lr * w.grad  # HERE\n        w.grad = None\n" in out


def test_a_shape_the_writer_does_not_know_is_refused_with_a_reason():
    reason = _fixed(manual_update.fix_rebound, "w = w * 0.9  # HERE\n", kind="leaf-rebound")
    assert isinstance(reason, str) and "by hand" in reason


def test_update_in_a_loop_over_parameters_clears_each_parameter_there():
    code = textwrap.dedent("""
        for _ in range(3):
            model(x).sum().backward()  # HERE
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-0.1)
        """)
    src = SourceFile("t.py", code)
    finding = Finding(kind="missing-zero-grad", severity="error", message="m", location=Location("t.py", 3, "f"),
                      subject=("0.weight", "0.bias"), related_locations=(Location("t.py", 5, "f"),))
    fix = FileFix("t.py", "t.py", list(src.lines))
    assert fix.accepts(zero_grad.fix(finding, src))
    assert "        p.data.add_(p.grad, alpha=-0.1)\n        p.grad = None\n" in "".join(fix.patched())
