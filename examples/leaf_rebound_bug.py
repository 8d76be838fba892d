"""BUGGY: a from-scratch linear regression whose update rebinds the weights (its twin,
leaf_rebound_fixed.py, updates them in place under ``torch.no_grad()``).

``w = w - lr * w.grad`` makes ``w`` the result of a subtraction: a new tensor with a ``grad_fn``, no longer
the leaf that backward fills. At the next step torch warns that ``.grad`` of a non-leaf is being read, and
``w.grad`` is None: ``TypeError: unsupported operand type(s) for *: 'float' and 'NoneType'``.
``gradlens report`` keeps torch's error as it is and adds a ``leaf-rebound`` finding at the update line.

    gradlens report examples/leaf_rebound_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    w = torch.zeros(3, 1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    lr = 0.1
    for step in range(1, 51):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        w = w - lr * w.grad  # BUG: rebinds w to a non-leaf; the next w.grad is None
        b = b - lr * b.grad
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
