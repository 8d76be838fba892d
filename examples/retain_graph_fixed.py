"""FIXED twin of retain_graph_bug.py: one backward pass per step; the gradient norm is read from the
gradients that pass produced (``clip_grad_norm_`` with an infinite limit returns it without clipping).

    gradlens report examples/retain_graph_fixed.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


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
        loss.backward()
        norm = float(nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
        optimizer.step()
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}  grad norm {norm:.4f}")


if __name__ == "__main__":
    main()
