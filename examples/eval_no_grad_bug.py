"""BUGGY: validation inside the training loop runs with autograd on (its twin, eval_no_grad_fixed.py,
wraps it in ``torch.no_grad()``).

``model.eval()`` switches layers like dropout to evaluation behaviour but does not turn off autograd:
every validation forward still builds a graph and saves activations for a backward pass that never
comes. That costs memory and time on every evaluation. ``gradlens report`` flags it as
``graph-without-backward`` at the validation call.

    gradlens report examples/eval_no_grad_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def evaluate(model, loss_fn, x, y) -> float:
    model.eval()
    loss = loss_fn(model(x), y)  # BUG: builds a graph; wrap the evaluation in torch.no_grad()
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
