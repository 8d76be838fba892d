"""Loops that hit torch's loud autograd errors, each with a clean twin that runs to the end.

``# ROOT`` marks the line a finding must point at (the line to edit) and ``# RAISES`` the line where the
engine raises (a related location). Every function takes the engine module (``torch`` or
``gradlens.engine``); the tests read the markers from this file, so line numbers are never hard-coded.
"""

from __future__ import annotations


def bug_leaf_rebound(lib):
    w = lib.ones(3, requires_grad=True)
    x = lib.arange(3.0)
    for _ in range(3):
        loss = ((x * w).sum() - 1) ** 2
        loss.backward()
        w = w - 0.1 * w.grad  # ROOT RAISES


def clean_leaf_rebound(lib):
    w = lib.ones(3, requires_grad=True)
    x = lib.arange(3.0)
    for _ in range(3):
        loss = ((x * w).sum() - 1) ** 2
        loss.backward()
        with lib.no_grad():
            w -= 0.1 * w.grad
        w.grad = None


def bug_inplace_on_leaf(lib):
    w = lib.ones(3, requires_grad=True)
    for _ in range(2):
        loss = (w * 2).sum()
        loss.backward()
        w -= 0.1 * w.grad  # ROOT RAISES


def clean_inplace_on_leaf(lib):
    w = lib.ones(3, requires_grad=True)
    for _ in range(2):
        loss = (w * 2).sum()
        loss.backward()
        with lib.no_grad():
            w -= 0.1 * w.grad
        w.grad.zero_()


def bug_inplace_modified_saved(lib):
    x = lib.ones(3, requires_grad=True)
    a = x.exp()
    a.add_(1)  # ROOT
    a.sum().backward()  # RAISES


def clean_inplace_modified_saved(lib):
    x = lib.ones(3, requires_grad=True)
    a = x.exp()
    a = a + 1
    a.sum().backward()


def bug_inplace_modified_saved_input(lib):
    x = lib.ones(2, 3, requires_grad=True)
    a = x * 2
    b = a * a
    a.mul_(2)  # ROOT
    b.sum().backward()  # RAISES


def bug_inplace_modified_saved_leaf(lib):
    w = lib.ones(3, requires_grad=True)
    y = (w * w).sum()
    with lib.no_grad():
        w.add_(1)  # ROOT
    y.backward()  # RAISES


def bug_inplace_relu_second_change(lib):
    x = lib.ones(4, requires_grad=True)
    a = x * 3
    a.add_(1)  # changed before relu saves it: legal
    b = lib.relu(a)
    b.mul_(2)  # ROOT
    b.sum().backward()  # RAISES


def bug_hidden_state_not_detached(lib):
    W = lib.ones(3, 3, requires_grad=True)
    h = lib.zeros(3)
    for _ in range(3):
        h = lib.tanh(h @ W * 0.1 + 1)  # ROOT
        loss = h.sum()
        loss.backward()  # RAISES


def clean_hidden_state_detached(lib):
    W = lib.ones(3, 3, requires_grad=True)
    h = lib.zeros(3)
    for _ in range(3):
        h = h.detach()
        h = lib.tanh(h @ W * 0.1 + 1)
        loss = h.sum()
        loss.backward()


def bug_rnn_module_state(lib):
    cell = lib.nn.RNNCell(2, 3)
    opt = lib.optim.SGD(cell.parameters(), lr=0.01)
    h = lib.zeros(1, 3)
    for _ in range(3):
        opt.zero_grad()
        h = cell(lib.randn(1, 2), h)  # ROOT
        loss = (h ** 2).mean()
        loss.backward()  # RAISES
        opt.step()


def _gan(lib):
    nn = lib.nn
    G = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3))
    D = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt_g = lib.optim.SGD(G.parameters(), lr=0.01)
    opt_d = lib.optim.SGD(D.parameters(), lr=0.01)
    return G, D, opt_g, opt_d


def bug_gan_fake_not_detached(lib):
    G, D, opt_g, opt_d = _gan(lib)
    for _ in range(2):
        real = lib.randn(4, 3)
        fake = G(lib.randn(4, 2))
        opt_d.zero_grad()
        d_loss = (D(real) - 1).pow(2).mean() + D(fake).pow(2).mean()  # ROOT
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = (D(fake) - 1).pow(2).mean()
        g_loss.backward()  # RAISES
        opt_g.step()


def clean_gan_fake_detached(lib):
    G, D, opt_g, opt_d = _gan(lib)
    for _ in range(2):
        real = lib.randn(4, 3)
        fake = G(lib.randn(4, 2))
        opt_d.zero_grad()
        d_loss = (D(real) - 1).pow(2).mean() + D(fake.detach()).pow(2).mean()
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = (D(fake) - 1).pow(2).mean()
        g_loss.backward()
        opt_g.step()


def bug_cut_by_detach(lib):
    w = lib.ones(3, requires_grad=True)
    x = lib.arange(3.0)
    out = (x * w).detach()  # ROOT
    loss = (out - 1).pow(2).sum()
    loss.backward()  # RAISES


def clean_detach_for_logging(lib):
    w = lib.ones(3, requires_grad=True)
    x = lib.arange(3.0)
    out = x * w
    logged = out.detach()
    loss = (out - 1).pow(2).sum() + 0 * logged.sum()
    loss.backward()


def bug_cut_by_item_round_trip(lib):
    w = lib.ones(3, requires_grad=True)
    x = lib.arange(3.0)
    total = (x * w).sum()
    loss = lib.tensor(total.item()) ** 2  # ROOT
    loss.backward()  # RAISES


def clean_item_for_logging(lib):
    w = lib.ones(3, requires_grad=True)
    x = lib.arange(3.0)
    total = (x * w).sum()
    logged = lib.tensor(total.item())
    loss = total ** 2 + 0 * logged
    loss.backward()


def bug_cut_by_no_grad(lib):
    model = lib.nn.Linear(3, 1)
    x = lib.randn(4, 3)
    with lib.no_grad():  # ROOT
        out = model(x)
    loss = out.pow(2).mean()
    loss.backward()  # RAISES


def clean_no_grad_for_evaluation(lib):
    model = lib.nn.Linear(3, 1)
    x = lib.randn(4, 3)
    with lib.no_grad():
        model(x)
    loss = model(x).pow(2).mean()
    loss.backward()


BUGS = {
    "leaf-rebound": [bug_leaf_rebound],
    "inplace-on-leaf": [bug_inplace_on_leaf],
    "inplace-modified-saved": [bug_inplace_modified_saved, bug_inplace_modified_saved_input,
                               bug_inplace_modified_saved_leaf, bug_inplace_relu_second_change],
    "backward-through-freed-graph": [bug_hidden_state_not_detached, bug_rnn_module_state,
                                     bug_gan_fake_not_detached],
    "graph-cut": [bug_cut_by_detach, bug_cut_by_item_round_trip, bug_cut_by_no_grad],
}
CLEAN = [clean_leaf_rebound, clean_inplace_on_leaf, clean_inplace_modified_saved, clean_hidden_state_detached,
         clean_gan_fake_detached, clean_detach_for_logging, clean_item_for_logging, clean_no_grad_for_evaluation]


def marked_line(fn, marker: str) -> int:
    """The line of ``fn``'s source carrying ``# ...marker`` (ROOT or RAISES)."""
    import inspect

    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if "#" in text and marker in text.split("#", 1)[1]:
            return start + i
    raise LookupError(f"{fn.__name__} has no # {marker} line")
