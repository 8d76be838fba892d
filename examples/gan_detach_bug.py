"""BUGGY: a GAN step whose discriminator update forgets ``fake.detach()`` (its twin, gan_detach_fixed.py,
detaches the fake batch for the discriminator, as PyTorch's DCGAN tutorial does).

The discriminator's backward runs through the generator too and frees its graph; the generator's backward
then needs that graph again: ``RuntimeError: Trying to backward through the graph a second time``.
``gradlens report`` keeps torch's error as it is and adds a ``backward-through-freed-graph`` finding at the
discriminator's line, where ``fake`` must be detached.

    gradlens report examples/gan_detach_bug.py [--engine native|torch]
"""

from __future__ import annotations

from _engine import load_engine

torch = load_engine()
nn = torch.nn


def main() -> None:
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    bce = nn.BCELoss()
    ones, zeros = torch.ones(32, 1), torch.zeros(32, 1)
    for step in range(1, 21):
        real = torch.randn(32, 2) * 0.5 + 1.0
        fake = G(torch.randn(32, 4))
        opt_d.zero_grad()
        d_loss = bce(D(real), ones) + bce(D(fake), zeros)  # BUG: D(fake.detach())
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = bce(D(fake), ones)
        g_loss.backward()
        opt_g.step()
        if step % 5 == 0:
            print(f"step {step:3d}  d_loss {d_loss.item():.4f}  g_loss {g_loss.item():.4f}")


if __name__ == "__main__":
    main()
