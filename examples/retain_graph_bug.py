"""BUGGY: a second backward pass through the same graph doubles every gradient (its twin,
retain_graph_fixed.py, reads the gradient norm after the one backward pass).

To log the gradient norm, ``grad_norm()`` runs ``loss.backward(retain_graph=True)`` — and then the loop
runs ``loss.backward()`` again. Gradients accumulate, so each step uses twice the gradient: the same as a
silently doubled learning rate. ``retain_graph=True`` is what made the second pass possible without an
error. ``gradlens report`` flags it as ``unexpected-accumulation``.

    gradlens report examples/retain_graph_bug.py [--engine native|torch]
"""

from __future__ import annotations

import math

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def grad_norm(loss, model) -> float:
    loss.backward(retain_graph=True)  # BUG: a second backward below adds the same gradients again
    return math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters()))


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    y = (x[:, 0] * x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()

    for step in range(1, 41):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        norm = grad_norm(loss, model)
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}  grad norm {norm:.4f}")


if __name__ == "__main__":
    main()
