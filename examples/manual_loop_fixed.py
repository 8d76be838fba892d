"""FIXED: a training loop written from scratch, with no optimizer object, clears ``.grad`` after each
update (its twin, manual_loop_bug.py, never does).

``loss.backward()`` adds into ``W.grad``; clearing it inside the ``torch.no_grad()`` block, right after
the update, makes each step use only this step's gradient. ``gradlens report`` finds nothing.

    gradlens report examples/manual_loop_fixed.py [--engine native|torch]
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
            W.grad.zero_()  # FIX: start the next step from a zero gradient
            b.grad.zero_()
        if step % 20 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
