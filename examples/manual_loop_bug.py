"""BUGGY: a training loop written from scratch, with no optimizer object, never clears ``.grad`` (its twin,
manual_loop_fixed.py, clears it after each update).

``loss.backward()`` adds into ``W.grad``; it does not overwrite it. Without ``W.grad.zero_()`` (or
``W.grad = None``) after the update, every step applies the sum of all gradients so far, so the step size
grows and training drifts or diverges. ``gradlens report`` flags it as ``missing-zero-grad`` at the
``backward()`` line, with the update line as the related location.

    gradlens report examples/manual_loop_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
F = torch.nn.functional


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    labels = (x[:, 0] + x[:, 1] > 0).long()  # two classes
    W = torch.zeros(4, 2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)

    for step in range(1, 101):
        loss = F.cross_entropy(x @ W + b, labels)
        loss.backward()
        with torch.no_grad():
            W -= 0.5 * W.grad
            b -= 0.5 * b.grad
            # BUG: the gradients are never cleared, so the next backward adds to them
        if step % 20 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
