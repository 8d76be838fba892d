"""BUGGY: a classifier loop that sums its losses with their autograd graphs attached (its twin,
loss_history_fixed.py, sums plain numbers).

``total_loss += loss`` builds one more addition on a graph that reaches back to every batch so far, so
every batch's activations stay in memory until the epoch ends: memory grows with each step, and on a
real model the run dies of out-of-memory. ``gradlens report`` flags it as ``graph-retained`` and names
``total_loss``.

    gradlens report examples/loss_history_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = (x[:, :2].sum(dim=1) > 0).long()
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(1, 4):
        total_loss = 0.0
        for i in range(0, 512, 32):
            optimizer.zero_grad()
            loss = loss_fn(model(x[i:i + 32]), y[i:i + 32])
            loss.backward()
            optimizer.step()
            total_loss += loss  # BUG: keeps every batch's graph alive; use loss.item()
        print(f"epoch {epoch}  mean loss {total_loss.item() / 16:.4f}")


if __name__ == "__main__":
    main()
