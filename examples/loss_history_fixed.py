"""FIXED twin of loss_history_bug.py: the running total adds ``loss.item()``, a plain float, so each
batch's graph is freed as soon as its step is done.

    gradlens report examples/loss_history_fixed.py [--engine native|torch]
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
            total_loss += loss.item()
        print(f"epoch {epoch}  mean loss {total_loss / 16:.4f}")


if __name__ == "__main__":
    main()
