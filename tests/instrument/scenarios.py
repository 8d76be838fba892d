"""Realistic training loops, written once for both engines (``lib`` is ``torch`` or ``gradlens.engine``).

Each ``clean_*`` loop is correct and must stay silent (nothing above info); each ``bug_*`` loop holds one
bug and names the rule that must fire. Loops run a handful of steps on tiny models.
"""

from __future__ import annotations


def mlp(lib, d_in=4, hidden=8, d_out=1):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(d_in, hidden)
            self.fc2 = nn.Linear(hidden, d_out)

        def forward(self, x):
            return self.fc2(self.fc1(x).tanh())

    return Net()


def batch(lib, n=8, d_in=4, d_out=1):
    return lib.randn(n, d_in), lib.randn(n, d_out)


def mse(lib, out, y):
    return ((out - y) ** 2).mean()


class Cell:
    """A hand-written RNN cell (both engines): h' = tanh(W_x x + W_h h)."""

    def __init__(self, lib, d=4):
        nn = lib.nn

        class RNNCell(nn.Module):
            def __init__(self):
                super().__init__()
                self.wx = nn.Linear(d, d)
                self.wh = nn.Linear(d, d)
                self.out = nn.Linear(d, 1)

            def forward(self, x, h):
                h = (self.wx(x) + self.wh(h)).tanh()
                return self.out(h), h

        self.model = RNNCell()


# --- clean loops ----------------------------------------------------------------------------------------
def clean_basic(lib, steps=5):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        loss.backward()
        opt.step()
    return model


def clean_zero_grad_after_step(lib, steps=5):
    model = mlp(lib)
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        loss = mse(lib, model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()


def clean_accumulation(lib, micro=10, k=4):
    """Step every k micro-batches and once more for the shorter last window."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    for i in range(micro):
        x, y = batch(lib)
        loss = mse(lib, model(x), y) / k
        loss.backward()
        if (i + 1) % k == 0 or i == micro - 1:
            opt.step()
            opt.zero_grad()


def clean_two_losses(lib, steps=4):
    """Several backward passes on separate graphs (two forwards) before one step."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        for _ in range(2):
            x, y = batch(lib)
            mse(lib, model(x), y).backward()
        opt.step()


def clean_multi_head_retain(lib, steps=4):
    """Two losses on one shared trunk: backward(retain_graph=True) on the first, then the second."""
    model = mlp(lib, d_out=2)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = batch(lib, d_out=2)
        opt.zero_grad()
        out = model(x)
        l1 = mse(lib, out[:, 0], y[:, 0])
        l2 = mse(lib, out[:, 1], y[:, 1])
        l1.backward(retain_graph=True)
        l2.backward()
        opt.step()


def clean_gan(lib, steps=4):
    nn = lib.nn
    G = mlp(lib, d_in=2, d_out=4)
    D = mlp(lib, d_in=4, d_out=1)
    optG = lib.optim.Adam(G.parameters(), lr=1e-3)
    optD = lib.optim.Adam(D.parameters(), lr=1e-3)
    del nn
    for _ in range(steps):
        real = lib.randn(8, 4)
        z = lib.randn(8, 2)
        fake = G(z)
        # discriminator
        D.zero_grad()
        errD_real = ((D(real) - 1) ** 2).mean()
        errD_real.backward()
        errD_fake = (D(fake.detach()) ** 2).mean()
        errD_fake.backward()
        optD.step()
        # generator (its loss also flows into D's grads, cleared before D's next step)
        G.zero_grad()
        errG = ((D(fake) - 1) ** 2).mean()
        errG.backward()
        optG.step()


def clean_lbfgs(lib, steps=3):
    model = mlp(lib)
    opt = lib.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    x, y = batch(lib)

    def closure():
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)


def _clear_variant(lib, how, steps=5):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        x, y = batch(lib)
        if how == "model.zero_grad":
            model.zero_grad()
        elif how == "set_to_none=False":
            opt.zero_grad(set_to_none=False)
        elif how == "grad.zero_":
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.zero_()
        elif how == "grad=None":
            for p in model.parameters():
                p.grad = None
        mse(lib, model(x), y).backward()
        opt.step()


def clean_clip(lib, steps=5):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        mse(lib, model(x), y).backward()
        lib.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()


def clean_tbptt(lib, chunks=5, length=3):
    cell = Cell(lib).model
    opt = lib.optim.SGD(cell.parameters(), lr=0.05)
    h = lib.zeros(2, 4)
    for _ in range(chunks):
        opt.zero_grad()
        h = h.detach()
        loss = 0
        for _ in range(length):
            out, h = cell(lib.randn(2, 4), h)
            loss = loss + (out**2).mean()
        loss.backward()
        opt.step()


def clean_eval_no_grad(lib, epochs=3, inference=False):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    scores = []
    for _ in range(epochs):
        model.train()
        for _ in range(2):
            x, y = batch(lib)
            opt.zero_grad()
            mse(lib, model(x), y).backward()
            opt.step()
        model.eval()
        ctx = lib.inference_mode() if inference else lib.no_grad()
        with ctx:
            for _ in range(2):
                x, y = batch(lib)
                out = model(x)
                scores.append(out)
    return scores


def clean_frozen_backbone(lib, steps=5, all_params_in_optimizer=True):
    model = mlp(lib)
    model.fc1.requires_grad_(False)
    params = model.parameters() if all_params_in_optimizer else model.fc2.parameters()
    opt = lib.optim.SGD(params, lr=0.1)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        mse(lib, model(x), y).backward()
        opt.step()


def clean_ema_teacher(lib, steps=5):
    student = mlp(lib)
    teacher = mlp(lib)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = lib.optim.SGD(student.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = batch(lib)
        with lib.no_grad():
            target = teacher(x)
        opt.zero_grad()
        mse(lib, student(x), target).backward()
        opt.step()
        with lib.no_grad():
            for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
                pt.mul_(0.99).add_(ps, alpha=0.01)


def clean_ema_teacher_requires_grad(lib, steps=5):
    """A teacher whose parameters still require grad, only ever run and updated under no_grad."""
    student = mlp(lib)
    teacher = mlp(lib)
    opt = lib.optim.SGD(student.parameters(), lr=0.1)
    for _ in range(steps):
        x, y = batch(lib)
        with lib.no_grad():
            target = teacher(x)
        opt.zero_grad()
        mse(lib, student(x), target).backward()
        opt.step()
        with lib.no_grad():
            for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
                pt.mul_(0.9).add_(ps * 0.1)


def clean_grad_penalty(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        x, y = batch(lib)
        x.requires_grad_(True)
        opt.zero_grad()
        out = model(x)
        (gx,) = lib.autograd.grad(out.sum(), x, create_graph=True)
        loss = mse(lib, out, y) + 0.1 * (gx**2).sum()
        loss.backward()
        opt.step()


def clean_meta_inner_loop(lib, steps=3):
    """MAML-style: fast weights from autograd.grad(create_graph=True), outer step on the query loss."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        xs, ys = batch(lib)
        xq, yq = batch(lib)
        w1, b1, w2, b2 = model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias

        def f(x, w1, b1, w2, b2):
            return ((x @ w1.t() + b1).tanh()) @ w2.t() + b2

        inner = mse(lib, f(xs, w1, b1, w2, b2), ys)
        grads = lib.autograd.grad(inner, (w1, b1, w2, b2), create_graph=True)
        fast = [w - 0.1 * g for w, g in zip((w1, b1, w2, b2), grads, strict=True)]
        mse(lib, f(xq, *fast), yq).backward()
        opt.step()


def clean_saliency_then_step(lib, steps=4):
    """An input-saliency backward in eval mode, then a normal training step that clears first."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        model.eval()
        x, _ = batch(lib)
        x.requires_grad_(True)
        model(x).sum().backward()
        _saliency = x.grad.abs()
        model.train()
        x, y = batch(lib)
        opt.zero_grad()
        mse(lib, model(x), y).backward()
        opt.step()


def clean_loss_history(lib, steps=6):
    """Logging losses the right ways: .item() and .detach()."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    total, history = 0.0, []
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        loss.backward()
        opt.step()
        total += loss.item()
        history.append(loss.detach())
    return total, history


# --- bugs -----------------------------------------------------------------------------------------------
def bug_missing_zero_grad(lib, steps=5):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        mse(lib, model(x), y).backward()
        opt.step()


def bug_zero_grad_once_per_epoch(lib, epochs=2, batches=3):
    model = mlp(lib)
    opt = lib.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        for _ in range(batches):
            x, y = batch(lib)
            mse(lib, model(x), y).backward()
            opt.step()


def bug_wrong_optimizer_cleared(lib, steps=4):
    enc, dec = mlp(lib, d_out=4), mlp(lib, d_in=4)
    opt_enc = lib.optim.SGD(enc.parameters(), lr=0.01)
    opt_dec = lib.optim.SGD(dec.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        opt_enc.zero_grad()
        opt_enc.zero_grad()  # meant opt_dec
        mse(lib, dec(enc(x)), y).backward()
        opt_enc.step()
        opt_dec.step()


def bug_manual_sgd_no_zero(lib, steps=4):
    model = mlp(lib)
    for _ in range(steps):
        x, y = batch(lib)
        mse(lib, model(x), y).backward()
        with lib.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad


def bug_double_backward(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        loss.backward(retain_graph=True)
        loss.backward()  # e.g. a logging helper that calls backward again
        opt.step()


def bug_eval_backward_leaks(lib, steps=4):
    """A validation loss backward (model in eval mode) flows into the next training step."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        model.train()
        x, y = batch(lib)
        mse(lib, model(x), y).backward()
        opt.step()
        opt.zero_grad()
        model.eval()
        xv, yv = batch(lib)
        mse(lib, model(xv), yv).backward()  # e.g. to log a gradient norm during validation


def bug_total_loss(lib, steps=6):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    total_loss = 0
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        loss.backward()
        opt.step()
        total_loss += loss
    return total_loss


def bug_loss_list(lib, steps=6):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss)
    return losses


def bug_loss_list_scaled_backward(lib, steps=6):
    """Losses kept while backward runs on a scaled copy (``loss / accumulation``, as HF's Trainer does)."""
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = mse(lib, model(x), y)
        (loss / 2).backward()
        opt.step()
        losses.append(loss)
    return losses


def bug_rnn_retain_graph(lib, chunks=5):
    cell = Cell(lib).model
    opt = lib.optim.SGD(cell.parameters(), lr=0.01)
    h = lib.zeros(2, 4)
    for _ in range(chunks):
        opt.zero_grad()
        out, h = cell(lib.randn(2, 4), h)  # h never detached
        loss = (out**2).mean()
        loss.backward(retain_graph=True)
        opt.step()


def bug_carried_context(lib, steps=6):
    """A running context of encoder features carried across steps without detach(), kept with
    retain_graph=True: every backward runs through all earlier iterations' graphs."""
    enc = lib.nn.Linear(4, 4)
    head = lib.nn.Linear(4, 1)
    opt = lib.optim.SGD(list(enc.parameters()) + list(head.parameters()), lr=0.01)
    ctx = lib.zeros(4)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        ctx = 0.9 * ctx + enc(x).mean(0)  # never detached
        loss = mse(lib, head(x * ctx), y)
        loss.backward(retain_graph=True)
        opt.step()


def bug_rnn_no_detach(lib, chunks=3):
    """Raises the engine's 'backward through the graph a second time' at the second chunk."""
    cell = Cell(lib).model
    opt = lib.optim.SGD(cell.parameters(), lr=0.01)
    h = lib.zeros(2, 4)
    for _ in range(chunks):
        opt.zero_grad()
        out, h = cell(lib.randn(2, 4), h)
        loss = (out**2).mean()
        loss.backward()
        opt.step()


def bug_eval_without_no_grad(lib, epochs=3, keep=False):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    kept = []
    for _ in range(epochs):
        model.train()
        for _ in range(2):
            x, y = batch(lib)
            opt.zero_grad()
            mse(lib, model(x), y).backward()
            opt.step()
        model.eval()
        val = 0.0
        for _ in range(2):
            x, y = batch(lib)
            out = model(x)
            if keep:
                kept.append(out)
            val += mse(lib, out, y).item()
    return kept


def bug_zero_grad_before_step(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        mse(lib, model(x), y).backward()
        opt.zero_grad()
        opt.step()


def bug_zero_grad_in_place_before_step(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        mse(lib, model(x), y).backward()
        model.zero_grad(set_to_none=False)
        opt.step()


def bug_detached_branch(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        hidden = model.fc1(x).tanh().detach()  # cuts fc1 off the loss
        mse(lib, model.fc2(hidden), y).backward()
        opt.step()


def bug_loss_from_item(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        value = mse(lib, model(x), y).item()
        loss = lib.tensor(value, requires_grad=True)  # "fixes" the backward error; trains nothing
        loss.backward()
        opt.step()


def bug_head_replaced(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    model.fc2 = lib.nn.Linear(8, 1)  # new head, not in the optimizer
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        mse(lib, model(x), y).backward()
        opt.step()


def bug_param_group_omitted(lib, steps=4):
    model = mlp(lib)
    opt = lib.optim.SGD(model.fc1.parameters(), lr=0.01)  # forgot model.fc2
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        model.zero_grad()
        mse(lib, model(x), y).backward()
        opt.step()


def bug_nonfinite_log(lib, steps=3):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        out = model(x)
        loss = (out - out.detach()).abs().sqrt().mean() + mse(lib, out, y)  # sqrt(0): infinite gradient
        loss.backward()
        opt.step()


def bug_nonfinite_overflow(lib, steps=3):
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = batch(lib)
        opt.zero_grad()
        loss = (model(x) * 1e30).pow(2).mean()  # overflows float32
        loss.backward()
        opt.step()


def info_accumulation(lib, micro=8, k=4):
    clean_accumulation(lib, micro=micro, k=k)
