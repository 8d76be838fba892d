"""BUGGY: a small CNN whose training loop never clears the gradients (its twin, cnn_fixed.py, calls
``optimizer.zero_grad()`` every step).

``loss.backward()`` adds into ``.grad``; without ``zero_grad()`` each step's update uses the sum of all
earlier gradients, so the steps grow and training drifts. ``gradlens report`` flags it as
``missing-zero-grad`` at the ``backward()`` call, on either engine.

    gradlens report examples/cnn_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 1, 16, 16)
    y = torch.randint(0, 4, (64,))
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout2d(0.1),
                          nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()

    for step in range(8):
        i = (step % 4) * 16
        loss = loss_fn(model(x[i:i + 16]), y[i:i + 16])
        loss.backward()  # BUG: the gradients of every earlier step are still in .grad
        optimizer.step()
        print(f"step {step}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
