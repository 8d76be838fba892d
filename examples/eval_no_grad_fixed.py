"""FIXED twin of eval_no_grad_bug.py: validation runs under ``torch.no_grad()``, so it builds no graph.

    gradlens report examples/eval_no_grad_fixed.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


@torch.no_grad()
def evaluate(model, loss_fn, x, y) -> float:
    model.eval()
    loss = loss_fn(model(x), y)
    model.train()
    return loss.item()


def main() -> None:
    torch.manual_seed(0)
    x, x_val = torch.randn(256, 10), torch.randn(64, 10)
    w = torch.randn(10, 1)
    y, y_val = x @ w, x_val @ w
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()

    for epoch in range(1, 21):
        for i in range(0, 256, 64):
            optimizer.zero_grad()
            loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
            loss.backward()
            optimizer.step()
        if epoch % 5 == 0:
            val_loss = evaluate(model, loss_fn, x_val, y_val)
            print(f"epoch {epoch:3d}  train {loss.item():.4f}  val {val_loss:.4f}")


if __name__ == "__main__":
    main()
