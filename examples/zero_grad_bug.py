"""BUGGY: a regression loop that never clears gradients (its twin, zero_grad_fixed.py, does).

Every ``loss.backward()`` adds to the ``.grad`` left by the previous step, so each ``optimizer.step()``
applies the sum of all gradients so far. The loss still goes down for a while, which is why this bug
survives code review. ``gradlens report`` flags it as ``missing-zero-grad`` at the ``step()`` line.

    gradlens report examples/zero_grad_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()

    for epoch in range(1, 21):
        for i in range(0, 256, 64):
            loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
            loss.backward()  # BUG: no optimizer.zero_grad() in this loop
            optimizer.step()
        if epoch % 5 == 0:
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
