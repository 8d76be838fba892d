"""Train a small MNIST-style CNN on synthetic 28x28 digits.

The network of PyTorch's MNIST example (conv 1->32->64 3x3, max-pool, dropout, two linears) on random
"images" whose class is written into their pixels, so the loss falls. An ordinary PyTorch training loop: it
runs on gradlens's native engine by default and on real torch with ``--engine torch`` (or
``GRADLENS_ENGINE=torch``), unchanged.

    python examples/train_cnn.py [--engine native|torch] [--steps N] [--batch-size B]
"""

from __future__ import annotations

import argparse

from _engine import load_engine

torch = load_engine()
nn = torch.nn
F = nn.functional


class Net(nn.Module):
    """PyTorch's MNIST example network."""

    def __init__(self, dropout: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25 if dropout else 0.0)
        self.dropout2 = nn.Dropout(0.5 if dropout else 0.0)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def synthetic_digits(n: int, seed: int = 0):
    """``n`` noisy 1x28x28 images whose label ``k`` is a bright 4x4 square at row band ``k``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    rows = (2 + 2 * y).tolist()
    for i, r in enumerate(rows):
        x[i, 0, r:r + 4, 12:16] += 1.0
    return x, y


def train(steps: int, batch_size: int, lr: float = 0.05, dropout: bool = True, model=None, data=None, log=print):
    """Train for ``steps`` SGD steps (on ``data = (images, labels)``, default synthetic digits, four batches
    of them); returns the list of losses."""
    torch.manual_seed(0)
    model = model if model is not None else Net(dropout)
    x, y = data if data is not None else synthetic_digits(batch_size * 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        lo = (step % 4) * batch_size
        xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
        optimizer.zero_grad()
        loss = F.nll_loss(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log is not None and (step % 5 == 0 or step == steps - 1):
            log(f"step {step:3d}  loss {loss.item():.4f}")
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    train(args.steps, args.batch_size)


if __name__ == "__main__":
    main()
