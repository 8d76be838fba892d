"""Train a small MLP classifier on a synthetic two-spirals data set.

An ordinary PyTorch training loop: it runs on gradlens's native engine by default and on real torch with
``--engine torch`` (or ``GRADLENS_ENGINE=torch``), unchanged.

    python examples/train_mlp.py [--engine native|torch] [--epochs N]
"""

from __future__ import annotations

import argparse
import math

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def two_spirals(n: int, noise: float = 0.15):
    """n points per class on two interleaved spirals, as float32 features and int64 labels."""
    t = torch.linspace(0.25, 3 * math.pi, n)
    xs, ys = [], []
    for label, sign in ((0, 1.0), (1, -1.0)):
        x = torch.stack([sign * t * torch.cos(t), sign * t * torch.sin(t)], dim=1) / (3 * math.pi)
        xs.append(x + noise * torch.randn(n, 2) / 3)
        ys.append(torch.full((n,), label, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()

    torch.manual_seed(0)
    x, y = two_spirals(200)
    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(1, args.epochs + 1):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if epoch % 50 == 0 or epoch == 1:
            with torch.no_grad():
                accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
            print(f"epoch {epoch:4d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
