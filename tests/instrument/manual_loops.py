"""Training loops written from scratch (no optimizer object), once for both engines (``lib`` is ``torch`` or
``gradlens.engine``). Lines the findings must point at carry a marker comment: ``# <backward>`` (the
backward of the loop that needs a clear), ``# <update>`` (the update statement) and ``# <extra>`` (a backward
outside the update rhythm); ``line_of(loop, marker)`` finds them.
"""

from __future__ import annotations

import inspect

LR = 0.1


def line_of(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    hits = [start + i for i, text in enumerate(lines) if f"# <{marker}>" in text]
    assert len(hits) == 1, (fn.__name__, marker, hits)
    return hits[0]


def data(lib):
    lib.manual_seed(0)
    return lib.randn(16, 4), lib.randn(16, 2)


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


# --- bare leaf tensors ---------------------------------------------------------------------------------
def bare_sub_(lib, steps=5, clear=None):
    """The issue's loop: ``W.sub_(lr * W.grad)`` under no_grad; ``clear`` is None (the bug), "zero_" or
    "none"."""
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    b = lib.zeros(2, requires_grad=True)
    for _ in range(steps):
        loss = ((x @ W + b - y) ** 2).mean()
        loss.backward()  # <backward>
        with lib.no_grad():
            W.sub_(LR * W.grad)  # <update>
            b.sub_(LR * b.grad)
            if clear == "zero_":
                W.grad.zero_()
                b.grad.zero_()
        if clear == "none":
            W.grad = None
            b.grad = None
    return W, b


def bare_isub(lib, steps=5, clear=False):
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    for _ in range(steps):
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()  # <backward>
        with lib.no_grad():
            W -= LR * W.grad  # <update>
        if clear:
            W.grad = None
    return W


def bare_copy_(lib, steps=5, clear=False):
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    for _ in range(steps):
        if clear:
            W.grad = None
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()  # <backward>
        with lib.no_grad():
            W.copy_(W - LR * W.grad)  # <update>
    return W


def bare_data_assign(lib, steps=5, clear=False):
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    for _ in range(steps):
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()  # <backward>
        W.data = W.data - LR * W.grad  # <update>
        if clear:
            W.grad.zero_()
    return W


def bare_data_isub(lib, steps=5, clear=False):
    """``.data`` updates change neither the leaf's version nor its storage."""
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    for _ in range(steps):
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()  # <backward>
        W.data -= LR * W.grad  # <update>
        if clear:
            W.grad.zero_()
    return W


def bare_accumulation(lib, updates=3, k=3):
    """Deliberate accumulation: k backward passes, one update, then a clear."""
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    for _ in range(updates):
        for j in range(k):
            loss = ((x[j::k] @ W - y[j::k]) ** 2).mean() / k
            loss.backward()
        with lib.no_grad():
            W -= LR * W.grad
            W.grad.zero_()
    return W


def bare_detach_rebind(lib, steps=5):
    """From scratch, rebinding: each step makes a fresh leaf with detach()."""
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    for _ in range(steps):
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()
        W = (W - LR * W.grad).detach().requires_grad_()
    return W


def bare_eval_backward(lib, steps=8, guarded=False):
    """An evaluation pass between updates calls backward (e.g. for a gradient-norm log) after the clear:
    its gradient goes into the next update. ``guarded``: evaluated under no_grad, no backward."""
    x, y = data(lib)
    xv, yv = x.flip(0), y.flip(0)
    W = lib.randn(4, 2, requires_grad=True)
    for step in range(steps):
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()
        with lib.no_grad():
            W -= LR * W.grad  # <update>
            W.grad.zero_()
        if step == 5:
            if guarded:
                with lib.no_grad():
                    val = ((xv @ W - yv) ** 2).mean()
            else:
                val = ((xv @ W - yv) ** 2).mean()
                val.backward()  # <extra>
    return W


def bare_total_loss(lib, steps=6, detach=False):
    """``total += loss`` in a from-scratch loop keeps every iteration's graph alive."""
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    total = 0.0
    for _ in range(steps):
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()
        with lib.no_grad():
            W -= LR * W.grad
            W.grad = None
        total += loss.item() if detach else loss
    return W


# --- modules updated by hand ---------------------------------------------------------------------------
def module_data_add_(lib, steps=5, clear=True):
    """PyTorch's word_language_model / regression examples: zero_grad before forward, p.data.add_ after."""
    x, y = data(lib)
    model = mlp(lib)
    for _ in range(steps):
        if clear:
            model.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()  # <backward>
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-LR)  # <update>
    return model


def module_data_isub(lib, steps=5, clear=True):
    x, y = data(lib)
    model = mlp(lib)
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()  # <backward>
        for p in model.parameters():
            p.data -= LR * p.grad  # <update>
            if clear:
                p.grad = None
    return model


def module_isub_no_grad(lib, steps=5, clear=True):
    x, y = data(lib)
    model = mlp(lib)
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()  # <backward>
        with lib.no_grad():
            for p in model.parameters():
                p -= LR * p.grad  # <update>
        if clear:
            model.zero_grad()
    return model


# --- other loop shapes ---------------------------------------------------------------------------------
def lbfgs_bare(lib, steps=3):
    """LBFGS on bare tensors: several backward passes per step(), zero_grad inside the closure."""
    x, y = data(lib)
    W = lib.randn(4, 2, requires_grad=True)
    opt = lib.optim.LBFGS([W], lr=0.5, max_iter=4)

    def closure():
        opt.zero_grad()
        loss = ((x @ W - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return W


def per_layer_optimizers(lib, steps=4, forget_bias=False):
    """Forward-forward style: each layer has its own optimizer and its own local loss."""
    nn = lib.nn
    x, _ = data(lib)
    layers = [nn.Linear(4, 8), nn.Linear(8, 8)]
    opts = []
    for layer in layers:
        params = [layer.weight] if forget_bias and layer is layers[1] else list(layer.parameters())
        opts.append(lib.optim.SGD(params, lr=0.05))
    for _ in range(steps):
        h = x
        for layer, opt in zip(layers, opts):
            out = layer(h).relu()
            loss = (out.pow(2).mean() - 1.0) ** 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            h = out.detach()
    return layers
