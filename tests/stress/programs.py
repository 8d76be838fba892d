"""Random training programs for the detectors: a seed becomes a ``Spec``, a spec becomes Python source.

Each program is a small, ordinary training loop written once for both engines (``def train(lib)``, with
``lib`` being ``torch`` or ``gradlens.engine``). A spec chooses the model (MLP, a hand-written RNN cell
trained with truncated BPTT, a partly frozen MLP, tied/shared weights, a two-headed model), the optimizer
and its split (one optimizer, two param groups, two optimizers), gradient accumulation, how and when
gradients are cleared, evaluation, logging, clipping and a scheduler. A buggy spec also names one rule
slug and a variant: a realistic edit of that same loop (a line deleted, moved or changed), never a canned
scenario.

``run(spec, lib, directory)`` writes the source to a file (so findings point at its lines), runs it under
``gradlens.watch(on_finding="collect")`` and judges the outcome against the oracle:

* a clean program reports nothing above info, and the info-level ``accumulation`` finding exactly when it
  runs more than one backward pass per optimizer step;
* a buggy program reports exactly its slug above info, located in the generated file.

The source doubles as a standalone script (``python program.py [--torch]``) for regression tests.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradlens.findings import RULES as FINDING_RULES

__all__ = ["Spec", "generate", "render", "run", "Outcome", "Tally", "TALLY", "RULES", "VARIANTS", "variants",
           "ManualSpec", "generate_manual", "MANUAL_VARIANTS"]

# every edit that injects each rule (``variants`` says which apply to a given program)
VARIANTS = {
    "missing-zero-grad": ("forgotten", "once_per_epoch", "wrong_optimizer", "head_only"),
    "unexpected-accumulation": ("double_backward", "eval_backward"),
    "graph-retained": ("total_loss", "history", "kept_outputs", "rnn_no_detach", "rnn_no_detach_retain"),
    "graph-without-backward": ("no_guard", "no_guard_kept", "no_decorator"),
    "zero-grad-before-step": ("moved",),
    "no-gradient": ("detached_features", "loss_from_item", "unused_head"),
    "param-not-in-optimizer": ("head_replaced", "group_omitted", "second_never_steps", "unfrozen_later"),
    "nonfinite-gradient": ("sqrt_of_zero", "overflow", "log_of_zero", "divide_by_zero"),
}
# the quiet-bug rules these programs inject (every rule above info that a training loop can hide; the
# info-level ``accumulation`` finding is judged on clean programs instead, and the loud-error rules crash)
RULES = tuple(rule for rule in FINDING_RULES if rule in VARIANTS)
# seed % 10 picks the bug: two clean programs, then one per rule (balanced coverage for any seed range)
CHOICES: tuple[str | None, ...] = (None, None, *RULES)
MODELS = ("mlp", "rnn", "frozen", "tied", "two_head")
OPTIMIZERS = {
    "sgd": "SGD({params}, lr=0.05)",
    "sgd_momentum": "SGD({params}, lr=0.05, momentum=0.9)",
    "sgd_nesterov_wd": "SGD({params}, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)",
    "adam": "Adam({params}, lr=0.01)",
    "adamw": "AdamW({params}, lr=0.01, weight_decay=0.01)",
    "rmsprop": "RMSprop({params}, lr=0.005)",
    "adagrad": "Adagrad({params}, lr=0.05)",
}
CLEARINGS = ("zero_grad", "zero_grad_keep", "model_zero_grad", "grad_none", "grad_zero_")
EVALUATIONS = ("none", "no_grad", "inference_mode", "set_grad_enabled", "function", "no_grad_no_toggle")
SCHEDULERS = {
    None: None,
    "step": "StepLR({opt}, step_size=3, gamma=0.5)",
    "cosine": "CosineAnnealingLR({opt}, T_max=10)",
    "exponential": "ExponentialLR({opt}, gamma=0.9)",
}
D_IN, D_OUT, N = 4, 2, 8


@dataclass(frozen=True)
class Spec:
    """One training program. ``bug`` is a rule slug (None: clean) and ``variant`` the edit that injects it."""

    seed: int
    model: str = "mlp"
    depth: int = 2  # hidden layers (mlp, frozen, two_head), block reuses (tied), chunk length (rnn)
    width: int = 8
    head_loss: str = "sum"  # two_head: "sum" (one backward) or "retain" (one backward per head)
    optimizer: str = "sgd"
    split: str = "one"  # "one" optimizer, two param "groups", or "two" optimizers
    frozen_in_optimizer: bool = True  # frozen: the frozen layer's parameters are given to the optimizer
    epochs: int = 2
    micro: int = 3  # micro-batches per epoch
    k: int = 1  # micro-batches per optimizer step (1: no accumulation)
    summed: bool = False  # k > 1: sum the window's losses and call backward once (else backward per micro-batch)
    clearing: str = "zero_grad"
    clear_when: str = "before_backward"  # or "after_step"
    evaluation: str = "none"
    logging: str = "item"  # "item", "detach" or "none"
    clip: bool = False
    scheduler: str | None = None
    scheduler_per_epoch: bool = False
    declare: bool = False  # pass accumulation=k to watch()
    bug: str | None = None
    variant: str | None = None

    @property
    def optimizers(self) -> list[str]:
        return ["opt_body", "opt_head"] if self.split == "two" else ["opt"]

    @property
    def backward_per_step(self) -> int:
        """The most backward passes any optimizer step sees in the clean program."""
        return (1 if self.summed else self.k) * (2 if self.model == "two_head" and self.head_loss == "retain" else 1)

    @property
    def steps(self) -> int:
        return self.epochs * -(-self.micro // self.k)


def variants(spec: Spec, bug: str) -> list[str]:
    """The realistic edits of ``spec``'s loop that inject ``bug`` (empty when none applies).

    Combinations left out on purpose, because the bug is undetectable by design:
    * graph-without-backward needs the model in eval mode: the rule keys on "eval-mode forward with grad
      enabled whose graph never reaches backward"; a train-mode forward whose graph is dropped looks like an
      abandoned training step (``no_grad_no_toggle`` evaluation);
    * unexpected-accumulation from an evaluation-time backward needs eval mode too (a train-mode extra
      backward is indistinguishable from deliberate accumulation) and gradients cleared after the step
      (cleared before backward, the extra gradient is wiped before it does harm: no bug);
    * unexpected-accumulation from backward on a sum and again on one of its terms (different roots) is
      indistinguishable from two heads on a shared trunk (legitimate);
    * graph-retained from training outputs kept in a list emptied every epoch needs epochs of four steps or
      more: retention is judged from growth across iterations two or more steps old, and a list that never
      spans three iterations is bounded (in real training an epoch is long).
    """
    s = spec
    out: list[str] = []
    if bug == "missing-zero-grad":
        out += ["forgotten", "once_per_epoch"]
        if s.split == "two" and s.clearing in ("zero_grad", "zero_grad_keep"):
            out.append("wrong_optimizer")
        if s.clearing in ("grad_none", "grad_zero_"):
            out.append("head_only")
    elif bug == "unexpected-accumulation":
        out.append("double_backward")
        if s.clear_when == "after_step" and s.evaluation in ("no_grad", "inference_mode", "set_grad_enabled"):
            out.append("eval_backward")
    elif bug == "graph-retained":
        if s.logging == "item":
            out.append("total_loss")
        if s.logging == "detach":
            out.append("history")
        if -(-s.micro // s.k) >= 4:
            out.append("kept_outputs")
        if s.model == "rnn":
            out += ["rnn_no_detach", "rnn_no_detach_retain"]
    elif bug == "graph-without-backward":
        if s.evaluation in ("no_grad", "inference_mode", "set_grad_enabled"):
            out += ["no_guard", "no_guard_kept"]
        if s.evaluation == "function":
            out.append("no_decorator")
    elif bug == "zero-grad-before-step":
        out.append("moved")
    elif bug == "no-gradient":
        out.append("detached_features")
        if not (s.model == "two_head" and s.head_loss == "retain"):
            out.append("loss_from_item")
        if s.model == "two_head" and s.head_loss == "sum":
            out.append("unused_head")
    elif bug == "param-not-in-optimizer":
        out.append("head_replaced")
        out.append("group_omitted")
        if s.split == "two":
            out.append("second_never_steps")
        if s.model == "frozen" and not s.frozen_in_optimizer:
            out.append("unfrozen_later")
    elif bug == "nonfinite-gradient":
        out += ["sqrt_of_zero", "overflow", "log_of_zero", "divide_by_zero"]
    return out


def _base(rng: random.Random, seed: int) -> Spec:
    model = rng.choice(MODELS)
    k = rng.choice((1, 1, 1, 2, 3, 4))
    evaluation = rng.choice(EVALUATIONS)
    sched = rng.choice(list(SCHEDULERS))
    head_loss = rng.choice(("sum", "retain")) if model == "two_head" else "sum"
    return Spec(
        seed=seed,
        model=model,
        summed=k > 1 and head_loss == "sum" and rng.random() < 0.3,
        depth=rng.randint(2, 4) if model == "rnn" else rng.randint(2 if model in ("frozen", "tied") else 1, 3),
        width=rng.choice((4, 8, 16)),
        head_loss=head_loss,
        optimizer=rng.choice(list(OPTIMIZERS)),
        split=rng.choice(("one", "one", "groups", "two")),
        frozen_in_optimizer=rng.random() < 0.5 if model == "frozen" else True,
        epochs=rng.choice((2, 3)),
        micro=k * rng.randint(2, 4) + rng.randrange(k),
        k=k,
        clearing=rng.choice(CLEARINGS),
        clear_when=rng.choice(("before_backward", "after_step")),
        evaluation=evaluation,
        logging=rng.choice(("item", "detach", "none")),
        clip=rng.random() < 0.3,
        scheduler=sched,
        scheduler_per_epoch=sched is not None and rng.random() < 0.5,
        declare=k > 1 and rng.random() < 0.3,
    )


def generate(seed: int) -> Spec:
    """The program for ``seed``: its bug is ``CHOICES[seed % 10]``, its variant and the rest are drawn from
    ``seed`` (the variant first, then programs until one admits it, so that rare variants are not starved)."""
    rng = random.Random(seed)
    bug = CHOICES[seed % len(CHOICES)]
    if bug is None:
        return _base(rng, seed)
    variant = rng.choice(VARIANTS[bug])
    for _ in range(10_000):
        spec = _base(rng, seed)
        if variant in variants(spec, bug):
            return dataclasses.replace(spec, bug=bug, variant=variant)
    raise AssertionError(f"no program for seed {seed} admits {bug}/{variant}")


# --- rendering --------------------------------------------------------------------------------------------
class _Src:
    """Lines of source with an indentation level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def add(self, *lines: str) -> None:
        for line in lines:
            self.lines.append("    " * self.level + line if line else "")

    def block(self, header: str) -> _Block:
        self.add(header)
        return _Block(self)


class _Block:
    def __init__(self, src: _Src) -> None:
        self.src = src

    def __enter__(self) -> None:
        self.src.level += 1

    def __exit__(self, *exc: Any) -> None:
        self.src.level -= 1


def _is(spec: Spec, bug: str, *variant: str) -> bool:
    return spec.bug == bug and (not variant or spec.variant in variant)


def _model_class(s: Spec, src: _Src) -> None:
    w = s.width
    detach = _is(s, "no-gradient", "detached_features")
    with src.block("class Net(nn.Module):"):
        if s.model == "rnn":
            src.add('"""A hand-written RNN cell: h = tanh(W_x x + W_h h), read out by a linear head."""', "")
            with src.block("def __init__(self):"):
                src.add(
                    "super().__init__()",
                    f"self.wx = nn.Linear({D_IN}, {w})",
                    f"self.wh = nn.Linear({w}, {w}, bias=False)",
                    f"self.head = nn.Linear({w}, {D_OUT})",
                )
            src.add("")
            with src.block("def forward(self, x, h):"):
                wx = "self.wx(x).detach()" if detach else "self.wx(x)"
                src.add(f"h = ({wx} + self.wh(h)).tanh()", "return self.head(h), h")
        elif s.model == "tied":
            src.add('"""One block applied several times, and a decoder tied to the input layer\'s weight."""', "")
            with src.block("def __init__(self):"):
                src.add(
                    "super().__init__()",
                    f"self.inp = nn.Linear({D_IN}, {w})",
                    f"self.block = nn.Linear({w}, {w})",
                    f"self.head = nn.Linear({w}, {D_OUT})",
                )
            src.add("")
            with src.block("def forward(self, x):"):
                src.add("h = self.inp(x).tanh().detach()" if detach else "h = self.inp(x).tanh()")
                with src.block(f"for _ in range({s.depth}):"):
                    src.add("h = self.block(h).tanh()")
                src.add("return self.head(h), h @ self.inp.weight")
        else:
            layers = [f"nn.Linear({D_IN}, {w})", "nn.Tanh()"]
            for i in range(1, s.depth):
                layers += [f"nn.Linear({w}, {w})", "nn.ReLU()" if i % 2 else "nn.Tanh()"]
            with src.block("def __init__(self):"):
                src.add("super().__init__()", f"self.body = nn.Sequential({', '.join(layers)})")
                src.add(f"self.head = nn.Linear({w}, {D_OUT})")
                if s.model == "two_head":
                    src.add(f"self.aux = nn.Linear({w}, 1)")
            src.add("")
            with src.block("def forward(self, x):"):
                src.add("h = self.body(x).detach()" if detach else "h = self.body(x)")
                src.add("return self.head(h), self.aux(h)" if s.model == "two_head" else "return self.head(h)")


def _param_lists(s: Spec) -> tuple[str, str]:
    """Source expressions for the body's and the head's parameters."""
    if s.model == "rnn":
        body = "list(model.wx.parameters()) + list(model.wh.parameters())"
    elif s.model == "tied":
        body = "list(model.inp.parameters()) + list(model.block.parameters())"
    else:
        body = "list(model.body.parameters())"
    head = "list(model.head.parameters())"
    if s.model == "two_head":
        head += " + list(model.aux.parameters())"
    if s.model == "frozen" and not s.frozen_in_optimizer:
        body = "[p for p in model.body.parameters() if p.requires_grad]"
    return body, head


def _optimizers(s: Spec, src: _Src) -> None:
    make = "lib.optim." + OPTIMIZERS[s.optimizer]
    body, head = _param_lists(s)
    omitted = _is(s, "param-not-in-optimizer", "group_omitted")
    if s.split == "one":
        if omitted:
            params = body
        elif s.model == "frozen" and not s.frozen_in_optimizer:
            params = "[p for p in model.parameters() if p.requires_grad]"
        else:
            params = "model.parameters()"
        src.add("opt = " + make.format(params=params))
        return
    src.add(f"body_params = {body}", f"head_params = {head}")
    if s.split == "groups":
        groups = '[{"params": body_params}]' if omitted else '[{"params": body_params}, {"params": head_params}]'
        src.add("opt = " + make.format(params=groups))
        if not omitted:
            src.add('opt.param_groups[1]["lr"] *= 0.5  # a slower head')
    else:
        src.add("opt_body = " + make.format(params="body_params"))
        if omitted:
            src.add("opt_head = None  # the head is trained later")
        else:
            src.add("opt_head = " + make.format(params="head_params"))


def _clear_lines(s: Spec) -> list[str]:
    opts = s.optimizers
    if _is(s, "param-not-in-optimizer", "group_omitted") and s.split == "two":
        opts = ["opt_body"]
    params = "model.head.parameters()" if _is(s, "missing-zero-grad", "head_only") else "model.parameters()"
    if s.clearing == "zero_grad":
        lines = [f"{o}.zero_grad()" for o in opts]
        if _is(s, "missing-zero-grad", "wrong_optimizer"):
            lines = [f"{opts[0]}.zero_grad()" for _ in opts]
        return lines
    if s.clearing == "zero_grad_keep":
        lines = [f"{o}.zero_grad(set_to_none=False)" for o in opts]
        if _is(s, "missing-zero-grad", "wrong_optimizer"):
            lines = [f"{opts[0]}.zero_grad(set_to_none=False)" for _ in opts]
        return lines
    if s.clearing == "model_zero_grad":
        return ["model.zero_grad()"]
    if s.clearing == "grad_none":
        return [f"for p in {params}:", "    p.grad = None"]
    return [f"for p in {params}:", "    if p.grad is not None:", "        p.grad.zero_()"]


def _loss(s: Spec, src: _Src) -> str:
    """Forward and loss of one micro-batch; returns the name of the tensor that backward starts from."""
    k = f" / {s.k}" if s.k > 1 else ""
    if s.model == "rnn":
        if not _is(s, "graph-retained", "rnn_no_detach", "rnn_no_detach_retain"):
            src.add("h = h.detach()  # truncated BPTT: cut the graph at the chunk boundary")
        src.add("out, h = model(x[0], h)", "loss = F.mse_loss(out, y[0])")
        with src.block(f"for t in range(1, {s.depth}):"):
            src.add("out, h = model(x[t], h)", "loss = loss + F.mse_loss(out, y[t])")
        src.add(f"loss = loss / {s.depth * s.k}")
        main = "loss"
    elif s.model == "tied":
        src.add("out, recon = model(x)", f"loss = (F.mse_loss(out, y) + 0.1 * F.mse_loss(recon, x)){k}")
        main = "loss"
    elif s.model == "two_head":
        src.add("out, aux = model(x)")
        aux = "0.5 * F.mse_loss(aux, y.mean(1, keepdim=True))"
        if s.head_loss == "retain":
            src.add(f"loss_main = F.mse_loss(out, y){k}", f"loss_aux = {aux}{k}")
            main = "loss_main"
        elif _is(s, "no-gradient", "unused_head"):
            src.add(f"loss = F.mse_loss(out, y){k}")
            main = "loss"
        else:
            src.add(f"loss = (F.mse_loss(out, y) + {aux}){k}")
            main = "loss"
    else:
        src.add("out = model(x)", f"loss = F.mse_loss(out, y){k}")
        main = "loss"
    if s.bug == "nonfinite-gradient":
        src.add(
            {
                "sqrt_of_zero": f"{main} = {main} + 1e-3 * (out - out.detach()).abs().sqrt().mean()  # smoothness term",
                "overflow": f"{main} = {main} + (out * 1e30).pow(2).mean()  # unscaled energy term",
                "log_of_zero": f"{main} = {main} - 1e-3 * (out - out.min()).log().mean()  # log barrier, no eps",
                "divide_by_zero": f"{main} = {main} / (y > 10).float().sum()  # normalise by the positives",
            }[s.variant]
        )
    if s.model == "two_head" and s.head_loss == "retain":
        src.add("loss = loss_main + loss_aux")
    if _is(s, "no-gradient", "loss_from_item"):
        src.add("loss = lib.tensor(loss.item(), requires_grad=True)  # silences 'does not require grad'")
    return main


def _backward(s: Spec, src: _Src, loss: str = "loss") -> None:
    retain = _is(s, "graph-retained", "rnn_no_detach_retain")
    double = _is(s, "unexpected-accumulation", "double_backward")
    if s.model == "two_head" and s.head_loss == "retain":
        src.add("loss_main.backward(retain_graph=True)")
        if double:
            src.add("loss_aux.backward(retain_graph=True)", "loss_aux.backward()  # again, in a logging helper")
        else:
            src.add("loss_aux.backward()")
        return
    if double:
        src.add(f"{loss}.backward(retain_graph=True)", f"{loss}.backward()  # again, in a logging helper")
    else:
        src.add(f"{loss}.backward(retain_graph=True)" if retain else f"{loss}.backward()")


def _log(s: Spec, src: _Src) -> None:
    if _is(s, "graph-retained", "kept_outputs"):
        src.add("train_preds.append(out)  # for the epoch's accuracy")
    if s.logging == "item":
        src.add("running += loss" if _is(s, "graph-retained", "total_loss") else "running += loss.item()")
    elif s.logging == "detach":
        src.add("history.append(loss)" if _is(s, "graph-retained", "history") else "history.append(loss.detach())")


def _step(s: Spec, src: _Src) -> None:
    clear = _clear_lines(s)
    if _is(s, "zero-grad-before-step"):
        src.add(*clear)
    if s.clip:
        src.add("lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)")
    for o in s.optimizers:
        if o == "opt_head" and _is(s, "param-not-in-optimizer", "second_never_steps", "group_omitted"):
            continue
        src.add(f"{o}.step()")
    if s.scheduler and not s.scheduler_per_epoch:
        src.add("sched.step()")
    if s.clear_when == "after_step" and not _clear_removed(s):
        src.add(*clear)


def _clear_removed(s: Spec) -> bool:
    return _is(s, "missing-zero-grad", "forgotten", "once_per_epoch") or _is(s, "zero-grad-before-step")


def _eval_forward(s: Spec, src: _Src, total: str, keep: bool) -> None:
    if s.model == "rnn":
        src.add(f"h_val = lib.zeros({N}, {s.width})")
        with src.block(f"for t in range({s.depth}):"):
            src.add("out, h_val = model(x[t], h_val)", f"{total} += F.mse_loss(out, y[t]).item()")
            if keep:
                src.add("preds.append(out)")
        return
    src.add("out = model(x)[0]" if s.model in ("tied", "two_head") else "out = model(x)")
    src.add(f"{total} += F.mse_loss(out, y).item()")
    if keep:
        src.add("preds.append(out)  # kept for a confusion plot")


def _evaluate(s: Spec, src: _Src) -> None:
    """The evaluation after each epoch (the ``function`` style calls ``evaluate()`` defined earlier)."""
    if s.evaluation == "none":
        return
    if s.evaluation == "function":
        src.add("val_loss = evaluate()")
        return
    unguarded = _is(s, "graph-without-backward", "no_guard", "no_guard_kept")
    keep = _is(s, "graph-without-backward", "no_guard_kept")
    if s.evaluation != "no_grad_no_toggle":
        src.add("model.eval()")
    src.add("val_loss = 0.0")
    if keep:
        src.add("preds = []")
    guard = {"inference_mode": "lib.inference_mode()", "set_grad_enabled": "lib.set_grad_enabled(False)"}.get(
        s.evaluation, "lib.no_grad()"
    )
    if unguarded:
        with src.block("for x, y in val:"):
            _eval_forward(s, src, "val_loss", keep)
    else:
        with src.block(f"with {guard}:"):
            with src.block("for x, y in val:"):
                _eval_forward(s, src, "val_loss", keep)
    if _is(s, "unexpected-accumulation", "eval_backward"):
        src.add("x, y = val[0]")
        if s.model == "rnn":
            src.add(f"out, _ = model(x[0], lib.zeros({N}, {s.width}))", "y = y[0]")
        else:
            src.add("out = model(x)[0]" if s.model in ("tied", "two_head") else "out = model(x)")
        src.add(
            "F.mse_loss(out, y).backward()  # for the gradient-norm log",
            "grad_norm = sum(float((p.grad ** 2).sum()) for p in model.parameters() if p.grad is not None)",
        )


def _evaluate_function(s: Spec, src: _Src) -> None:
    if not _is(s, "graph-without-backward", "no_decorator"):
        src.add("@lib.no_grad()")
    with src.block("def evaluate():"):
        src.add("model.eval()", "total = 0.0")
        with src.block("for x, y in val:"):
            _eval_forward(s, src, "total", keep=False)
        src.add("model.train()", "return total / len(val)")


def render(s: Spec | ManualSpec) -> str:
    """The program's Python source: ``train(lib)`` plus a ``__main__`` block that watches it."""
    if isinstance(s, ManualSpec):
        return render_manual(s)
    src = _Src()
    src.add(f'"""gradlens training program (tests/stress/programs.py): {s!r}"""', "", "")
    with src.block("def train(lib):"):
        src.add("nn = lib.nn", "F = lib.nn.functional", f"lib.manual_seed({s.seed})", "")
        _model_class(s, src)
        src.add("", "model = Net()")
        if s.model == "frozen":
            src.add("model.body[0].requires_grad_(False)  # keep the pretrained input layer fixed")
        _optimizers(s, src)
        if _is(s, "param-not-in-optimizer", "head_replaced"):
            src.add(f"model.head = nn.Linear({s.width}, {D_OUT})  # a fresh head for the new task")
        if s.scheduler:
            sched_opt = s.optimizers[0]
            src.add("sched = lib.optim.lr_scheduler." + SCHEDULERS[s.scheduler].format(opt=sched_opt))
        if s.model == "rnn":
            data = f"(lib.randn({s.depth}, {N}, {D_IN}), lib.randn({s.depth}, {N}, {D_OUT}))"
        else:
            data = f"(lib.randn({N}, {D_IN}), lib.randn({N}, {D_OUT}))"
        src.add(f"data = [{data} for _ in range({s.micro})]")
        if s.evaluation != "none":
            src.add(f"val = [{data} for _ in range(2)]")
        if s.logging == "item":
            src.add("running = 0.0")
        elif s.logging == "detach":
            src.add("history = []")
        if s.evaluation == "function":
            src.add("")
            _evaluate_function(s, src)
        src.add("")
        clear = _clear_lines(s)
        with src.block(f"for epoch in range({s.epochs}):"):
            src.add("model.train()")
            if _is(s, "graph-retained", "kept_outputs"):
                src.add("train_preds = []")
            if s.model == "rnn":
                src.add(f"h = lib.zeros({N}, {s.width})")
            if _is(s, "param-not-in-optimizer", "unfrozen_later"):
                with src.block("if epoch == 1:"):
                    src.add("model.body[0].requires_grad_(True)  # fine-tune everything from now on")
            if _is(s, "missing-zero-grad", "once_per_epoch"):
                src.add(*clear)
            with src.block("for i, (x, y) in enumerate(data):"):
                if s.clear_when == "before_backward" and not _clear_removed(s):
                    if s.k > 1:
                        with src.block(f"if i % {s.k} == 0:"):
                            src.add(*clear)
                    else:
                        src.add(*clear)
                _loss(s, src)
                if s.summed:
                    src.add(f"window = loss if i % {s.k} == 0 else window + loss")
                else:
                    _backward(s, src)
                _log(s, src)
                if s.k > 1:
                    with src.block(f"if (i + 1) % {s.k} == 0 or i == len(data) - 1:"):
                        if s.summed:
                            _backward(s, src, "window")
                        _step(s, src)
                else:
                    _step(s, src)
            if s.scheduler and s.scheduler_per_epoch:
                src.add("sched.step()")
            _evaluate(s, src)
        src.add("return model")
    accumulation = s.k if s.declare else None
    src.add(
        "",
        "",
        'if __name__ == "__main__":',
        "    import sys",
        "",
        "    import gradlens",
        "",
        '    if "--torch" in sys.argv:',
        "        import torch as engine",
        "    else:",
        "        import gradlens.engine as engine",
        f'    with gradlens.watch(on_finding="collect", accumulation={accumulation}) as lens:',
        "        train(engine)",
        "    print(lens.report())",
    )
    return "\n".join(src.lines) + "\n"


# --- manual loops: no optimizer object ----------------------------------------------------------------
MANUAL_UPDATES = {
    "sub_": ("with lib.no_grad():", "p.sub_(LR * p.grad)"),
    "isub": ("with lib.no_grad():", "p -= LR * p.grad"),
    "copy_": ("with lib.no_grad():", "p.copy_(p - LR * p.grad)"),
    "data_isub": (None, "p.data -= LR * p.grad"),
    "data_add": (None, "p.data.add_(p.grad, alpha=-LR)  # word_language_model style"),
    "data_assign": (None, "p.data = p.data - LR * p.grad"),
}
MANUAL_CLEARINGS = ("grad_none", "grad_zero_", "model_zero_grad", "rebind_detach")
MANUAL_VARIANTS = {"missing-zero-grad": ("forgotten",), "unexpected-accumulation": ("eval_backward",)}
# seed % 4 picks the bug of a manual program: two clean ones, then one per rule
MANUAL_CHOICES: tuple[str | None, ...] = (None, None, "missing-zero-grad", "unexpected-accumulation")


@dataclass(frozen=True)
class ManualSpec:
    """A training loop written from scratch: bare leaf tensors (``W1, b1, W2, b2``) or a module, updated by
    hand with one of ``MANUAL_UPDATES``, gradients cleared one of ``MANUAL_CLEARINGS`` ways (or the leaves
    rebound to fresh detached copies), ``k`` backward passes per update."""

    seed: int
    model: str = "bare"  # or "module"
    update: str = "sub_"
    clearing: str = "grad_none"
    clear_when: str = "after_update"  # or "before_forward" (at the start of each window)
    k: int = 1
    epochs: int = 2
    micro: int = 3
    evaluation: str = "none"  # or "no_grad"
    width: int = 8
    bug: str | None = None
    variant: str | None = None
    declare: bool = False

    @property
    def backward_per_step(self) -> int:
        return self.k

    @property
    def steps(self) -> int:
        return self.epochs * (self.micro // self.k)


def manual_variants(s: ManualSpec, bug: str) -> list[str]:
    """The edits of ``s`` that inject ``bug``: forgetting the clear (not possible when every update rebinds
    fresh leaves), or a backward in an evaluation pass after the clear (cleared before the next forward,
    that gradient would be wiped before it does harm: no bug)."""
    if s.clearing == "rebind_detach":
        return []
    if bug == "missing-zero-grad":
        return ["forgotten"]
    if bug == "unexpected-accumulation" and s.clear_when == "after_update" and s.micro // s.k >= 3:
        return ["eval_backward"]
    return []


def _manual_base(rng: random.Random, seed: int) -> ManualSpec:
    model = rng.choice(("bare", "module"))
    clearings = [c for c in MANUAL_CLEARINGS if not (c == "model_zero_grad" and model == "bare")
                 and not (c == "rebind_detach" and model == "module")]
    k = rng.choice((1, 1, 2, 3))
    return ManualSpec(
        seed=seed,
        model=model,
        update=rng.choice(list(MANUAL_UPDATES)),
        clearing=rng.choice(clearings),
        clear_when=rng.choice(("after_update", "before_forward")),
        k=k,
        epochs=rng.choice((2, 3)),
        micro=k * rng.randint(3, 4),
        evaluation=rng.choice(("none", "no_grad")),
        width=rng.choice((4, 8)),
    )


def generate_manual(seed: int) -> ManualSpec:
    """The manual-loop program for ``seed`` (its bug is ``MANUAL_CHOICES[seed % 4]``)."""
    rng = random.Random(10_000 + seed)
    bug = MANUAL_CHOICES[seed % len(MANUAL_CHOICES)]
    for _ in range(10_000):
        spec = _manual_base(rng, seed)
        if bug is None:
            return spec
        admits = manual_variants(spec, bug)
        if admits:
            return dataclasses.replace(spec, bug=bug, variant=rng.choice(admits))
    raise AssertionError(f"no manual program for seed {seed} admits {bug}")


def render_manual(s: ManualSpec) -> str:
    src = _Src()
    src.add(f'"""gradlens manual training program (tests/stress/programs.py): {s!r}"""', "", "")
    forgotten = s.bug == "missing-zero-grad"
    with src.block("def train(lib):"):
        src.add("F = lib.nn.functional", f"lib.manual_seed({s.seed})", "LR = 0.05", "")
        if s.model == "bare":
            w = s.width
            src.add(
                f"W1 = (lib.randn({D_IN}, {w}) * 0.5).requires_grad_()",
                f"b1 = lib.zeros({w}, requires_grad=True)",
                f"W2 = (lib.randn({w}, {D_OUT}) * 0.5).requires_grad_()",
                f"b2 = lib.zeros({D_OUT}, requires_grad=True)",
                "params = [W1, b1, W2, b2]",
                "",
            )
            with src.block("def forward(x):"):
                src.add("return (x @ W1 + b1).tanh() @ W2 + b2")
        else:
            src.add(f"model = lib.nn.Sequential(lib.nn.Linear({D_IN}, {s.width}), lib.nn.Tanh(), "
                    f"lib.nn.Linear({s.width}, {D_OUT}))", "params = list(model.parameters())", "forward = model")
        src.add("", f"data = [(lib.randn({N}, {D_IN}), lib.randn({N}, {D_OUT})) for _ in range({s.micro})]",
                f"xv, yv = lib.randn({N}, {D_IN}), lib.randn({N}, {D_OUT})", "running = 0.0", "")

        def clear() -> None:
            if forgotten:
                return
            if s.clearing == "grad_none":
                with src.block("for p in params:"):
                    src.add("p.grad = None")
            elif s.clearing == "grad_zero_":
                with src.block("for p in params:"):
                    with src.block("if p.grad is not None:"):
                        src.add("p.grad.zero_()")
            elif s.clearing == "model_zero_grad":
                src.add("model.zero_grad()")

        def update() -> None:
            if s.clearing == "rebind_detach":
                src.add("params = [(p - LR * p.grad).detach().requires_grad_() for p in params]",
                        "W1, b1, W2, b2 = params")
                return
            guard, stmt = MANUAL_UPDATES[s.update]
            if guard:
                with src.block(guard):
                    with src.block("for p in params:"):
                        src.add(stmt)
            else:
                with src.block("for p in params:"):
                    src.add(stmt)

        with src.block(f"for epoch in range({s.epochs}):"):
            with src.block("for i, (x, y) in enumerate(data):"):
                if s.clear_when == "before_forward":
                    if s.k > 1:
                        with src.block(f"if i % {s.k} == 0:"):
                            clear()
                            if forgotten:
                                src.add("pass")
                    else:
                        clear()
                src.add(f"loss = F.mse_loss(forward(x), y){f' / {s.k}' if s.k > 1 else ''}", "loss.backward()",
                        "running += loss.item()")
                with src.block(f"if (i + 1) % {s.k} == 0:"):
                    update()
                    if s.clear_when == "after_update":
                        clear()
            if s.evaluation == "no_grad":
                with src.block("with lib.no_grad():"):
                    src.add("val_loss = F.mse_loss(forward(xv), yv).item()")
            if s.bug == "unexpected-accumulation":
                with src.block("if epoch == 0:"):
                    src.add("F.mse_loss(forward(xv), yv).backward()  # for the gradient-norm log")
        src.add("return params")
    src.add(
        "",
        "",
        'if __name__ == "__main__":',
        "    import sys",
        "",
        "    import gradlens",
        "",
        '    if "--torch" in sys.argv:',
        "        import torch as engine",
        "    else:",
        "        import gradlens.engine as engine",
        '    with gradlens.watch(on_finding="collect") as lens:',
        "        train(engine)",
        "    print(lens.report())",
    )
    return "\n".join(src.lines) + "\n"


# --- running and judging ----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What a watched run of one program found, and the oracle's verdict."""

    spec: Spec
    engine: str
    path: str
    above_info: dict[str, Any] = field(default_factory=dict)  # kind -> Finding
    info: set[str] = field(default_factory=set)
    error: str | None = None
    report: str = ""

    @property
    def expected(self) -> str | None:
        """The rule the injected bug must be reported as: its slug, except where the engine raises and
        gradlens explains the loud error (an RNN state never detached: the second backward fails)."""
        s = self.spec
        return LOUD.get((s.bug, s.variant), s.bug)

    @property
    def verdict(self) -> str:
        """``caught``/``clean`` (both correct), or ``missed``, ``false-alarm``, ``misplaced``, ``crash``."""
        s = self.spec
        if self.error is not None:
            return "crash"
        rule = self.expected
        extra = set(self.above_info) - {rule}
        if extra:
            return "false-alarm"
        if s.bug is None:
            want_info = s.backward_per_step > 1
            return "clean" if ("accumulation" in self.info) == want_info else "false-alarm"
        if rule not in self.above_info:
            return "missed"
        loc = self.above_info[rule].location
        if loc is None or loc.file != self.path:
            return "misplaced"
        return "caught"

    @property
    def ok(self) -> bool:
        return self.verdict in ("caught", "clean")

    def explain(self) -> str:
        s = self.spec
        return (
            f"seed {s.seed} [{self.engine}]: {self.verdict}; injected {s.bug}/{s.variant}; "
            f"found above info {sorted(self.above_info)}; info {sorted(self.info)}"
            + (f"; error {self.error}" if self.error else "")
            + f"\n  {s!r}\n  program: {self.path}\n{self.report}"
        )


# bugs whose program raises, reported as the loud-error rule that explains the error
LOUD = {("graph-retained", "rnn_no_detach"): "backward-through-freed-graph"} \
    if "backward-through-freed-graph" in FINDING_RULES else {}


def _expected_raise(s: Spec) -> bool:
    """The RNN without detach fails in backward (freed graph, or weights changed in place since)."""
    return _is(s, "graph-retained", "rnn_no_detach", "rnn_no_detach_retain")


def run(spec: Spec | ManualSpec, lib: Any, directory: str | Path) -> Outcome:
    """Write ``spec``'s program into ``directory``, run it watched on ``lib`` and judge it."""
    import gradlens

    engine = "torch" if lib.__name__ == "torch" else "native"
    prefix = "manual_" if isinstance(spec, ManualSpec) else "program_"
    path = Path(directory) / f"{prefix}{spec.seed}.py"
    source = render(spec)
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    namespace: dict[str, Any] = {"__name__": f"gradlens_program_{spec.seed}"}
    exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - our own generated program
    error = None
    with gradlens.watch(on_finding="collect", accumulation=spec.k if spec.declare else None) as lens:
        try:
            namespace["train"](lib)
        except RuntimeError as exc:
            if not _expected_raise(spec):
                error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a crash is a verdict, reported with the program
            error = f"{type(exc).__name__}: {exc}"
    out = Outcome(spec, engine, str(path), error=error)
    for f in lens.findings:
        if f.severity == "info":
            out.info.add(f.kind)
        else:
            out.above_info[f.kind] = f
    if not out.ok:
        out.report = lens.report()
    return out


@dataclass
class Tally:
    """Figures over many runs: programs, bugs injected / caught / missed per rule, false alarms."""

    programs: int = 0
    clean: int = 0
    injected: Counter = field(default_factory=Counter)
    caught: Counter = field(default_factory=Counter)
    accumulation_info: int = 0  # clean programs with accumulation whose info finding was expected
    failures: list[Outcome] = field(default_factory=list)

    def add(self, out: Outcome) -> None:
        self.programs += 1
        s = out.spec
        if s.bug is None:
            self.clean += 1
            if s.backward_per_step > 1:
                self.accumulation_info += 1
        else:
            self.injected[s.bug] += 1
            if out.verdict == "caught":
                self.caught[s.bug] += 1
        if not out.ok:
            self.failures.append(out)

    def verdicts(self) -> Counter:
        return Counter(o.verdict for o in self.failures)

    def summary(self) -> str:
        bad = self.verdicts()
        injected = sum(self.injected.values())
        return (
            f"{self.programs} programs ({self.clean} clean, {injected} with one injected bug); "
            f"caught {sum(self.caught.values())}, missed {bad['missed']}, false alarms {bad['false-alarm']}"
            + (f", misplaced {bad['misplaced']}" if bad["misplaced"] else "")
            + (f", crashed {bad['crash']}" if bad["crash"] else "")
        )

    def per_rule(self) -> str:
        return ", ".join(f"{r} {self.caught[r]}/{self.injected[r]}" for r in RULES if self.injected[r])


TALLY = Tally()  # filled by tests/stress/test_training_programs.py, printed by the stress conftest
