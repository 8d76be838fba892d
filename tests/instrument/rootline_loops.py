"""Loops for the root-line tests, written once for both engines (``lib`` is ``torch`` or ``gradlens.engine``).

Each ``bug_*`` loop holds one bug; the line a finding must point at (the line to edit) carries ``# <root>``
and the line where gradlens notices the symptom carries ``# <noticed>``; ``line_of(fn, marker)`` finds them
in this file's source, so no line number is written by hand. Each ``clean_*`` loop is the fixed version and
must stay silent for its rule.
"""

from __future__ import annotations

from .manual_loops import line_of

__all__ = ["line_of"]


def data(lib, n=8):
    return lib.randn(n, 4), lib.randn(n, 1)


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


# --- graph-retained --------------------------------------------------------------------------------------
def bug_history_append(lib, steps=6):
    """The issue's loop: ``final_loss.append(loss)`` keeps every iteration's graph."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    final_loss = []
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        final_loss.append(loss)  # <root>
        opt.step()  # <noticed>
    return final_loss


def bug_running_total(lib, steps=6):
    """``total += loss``: a running total that keeps every iteration's graph."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    total = 0
    for _ in range(steps):
        opt.zero_grad()
        x, y = data(lib)
        loss = ((model(x) - y) ** 2).mean()
        total += loss  # <root>
        loss.backward()
        opt.step()  # <noticed>
    return total


def bug_outputs_by_key(lib, steps=6):
    """Outputs kept in a dict (``kept[i] = out``) with their graph."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    kept = {}
    for i in range(steps):
        x, y = data(lib)
        out = model(x)
        kept[i] = out  # <root>
        opt.zero_grad()
        ((out - y) ** 2).mean().backward()
        opt.step()  # <noticed>
    return kept


def bug_hidden_state_retained(lib, chunks=5):
    """A hidden state carried without ``detach()`` and kept with ``retain_graph=True``: the backward fails
    once a step changed the weights the old graph saved; the state's assignment is the line to edit."""
    nn = lib.nn
    wx, wh, head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 1)
    opt = lib.optim.SGD([*wx.parameters(), *wh.parameters(), *head.parameters()], lr=0.01)
    h = lib.zeros(2, 4)
    for _ in range(chunks):
        opt.zero_grad()
        h = (wx(lib.randn(2, 4)) + wh(h)).tanh()  # <root>
        loss = (head(h) ** 2).mean()
        loss.backward(retain_graph=True)  # <noticed>
        opt.step()


def clean_history(lib, steps=6):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    final_loss, total = [], 0.0
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        final_loss.append(loss.item())
        total += loss.detach()
        opt.step()
    return final_loss, total


# --- missing-zero-grad -----------------------------------------------------------------------------------
def bug_no_zero_grad(lib, steps=5):
    """No zero_grad at all: the root line is the loop's backward()."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()  # <root>
        opt.step()  # <noticed>


def bug_wrong_module_cleared(lib, steps=5):
    """The issue's loop: ``encoder.zero_grad()`` while the optimizer owns ``head``'s parameters."""
    nn = lib.nn
    encoder = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    head = nn.Linear(4, 1)
    opt = lib.optim.SGD(head.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        encoder.zero_grad()  # <root>
        loss = ((head(encoder(x)) - y) ** 2).mean()
        loss.backward()
        opt.step()  # <noticed>


def bug_conditional_zero_grad(lib, steps=6):
    """The right ``zero_grad`` under a condition that does not hold on every step."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for i in range(steps):
        x, y = data(lib)
        if i % 3 == 0:
            opt.zero_grad()  # <root>
        ((model(x) - y) ** 2).mean().backward()
        opt.step()  # <noticed>


class Trainer:
    """A trainer object: the loop is a method, the optimizer an attribute (built in ``__init__``)."""

    def __init__(self, lib, params):
        self.lib = lib
        self.opt = lib.optim.SGD(params, lr=0.01)  # <built>

    def fit(self, model, steps=5):
        for _ in range(steps):
            x, y = data(self.lib)
            loss = ((model(x) - y) ** 2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()  # <step>

    def fit_without_clearing(self, model, steps=5):
        for _ in range(steps):
            x, y = data(self.lib)
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()  # <backward>
            self.opt.step()  # <bare step>


def bug_trainer_no_zero_grad(lib, steps=5):
    model = mlp(lib)
    Trainer(lib, model.parameters()).fit_without_clearing(model, steps)


def clean_zero_grad(lib, steps=5):
    nn = lib.nn
    encoder = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    head = nn.Linear(4, 1)
    opt = lib.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.01)
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        loss = ((head(encoder(x)) - y) ** 2).mean()
        loss.backward()
        opt.step()


# --- param-not-in-optimizer ------------------------------------------------------------------------------
def bug_optimizer_misses_layer(lib, steps=4):
    """The optimizer is built over the first layer only: its construction is the line to edit."""
    model = mlp(lib)
    opt = lib.optim.SGD(model[0].parameters(), lr=0.01)  # <root>
    for _ in range(steps):
        x, y = data(lib)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()  # <noticed>


def bug_trainer_misses_layer(lib, steps=4):
    """The same, with the optimizer built in a trainer's ``__init__`` and stepped in its method."""
    model = mlp(lib)
    Trainer(lib, model[2].parameters()).fit(model, steps)


def clean_trainer(lib, steps=4):
    model = mlp(lib)
    Trainer(lib, model.parameters()).fit(model, steps)


# --- graph-without-backward ------------------------------------------------------------------------------
def bug_eval_without_no_grad(lib, epochs=3):
    """A validation pass inside a training loop, without no_grad: the forward call is the root line."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        model.train()
        x, y = data(lib)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        model.eval()
        val = ((model(x) - y) ** 2).mean()  # <root>
        float(val.detach())
        model.train()


def bug_inference_keeps_outputs(lib, batches=6):
    """An inference script (no optimizer, no backward) that keeps ``model(batch)`` outputs with their graph."""
    model = mlp(lib)
    model.eval()
    preds = []
    for _ in range(batches):
        batch, _y = data(lib)
        preds.append(model(batch))  # <root>
    return preds


def clean_inference(lib, batches=6):
    model = mlp(lib)
    model.eval()
    preds = []
    with lib.no_grad():
        for _ in range(batches):
            batch, _y = data(lib)
            preds.append(model(batch))
    return preds
