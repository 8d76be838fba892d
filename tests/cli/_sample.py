"""Hand-built records for the report tests: stable (fixed versions, paths and numbers) so the golden
files do not depend on the machine."""

from __future__ import annotations

import networkx as nx

from gradlens.findings import Finding, Location
from gradlens.graphs import schema as S
from gradlens.record import Crash, RunRecord

ROOT = "/home/user/project"


def retained_graph() -> nx.DiGraph:
    """A small loss graph whose first addition was created two steps earlier (a retained running total)."""
    g = nx.DiGraph(**{S.ENGINE: "native", S.NODE_COUNT: 4, S.SAVED_BYTES: 2048, S.TRUNCATED: False,
                      S.MAX_NODES: 20000, S.ROOTS: ("n0",), S.SCHEMA_VERSION: 1})

    def node(nid, name, kind, shapes, step, param=None):
        g.add_node(nid, **{S.NAME: name, S.KIND: kind, S.SHAPES: shapes, S.DTYPES: ("float32",) * len(shapes),
                           S.SAVED_BYTES: 0, S.PARAM: param, S.STEP: step, S.MODULE: None})

    node("n0", "AddBackward0", S.KIND_ROOT, ((),), 3)
    node("n1", "AddBackward0", S.KIND_OP, ((),), 2)
    node("n2", "MseLossBackward0", S.KIND_OP, ((),), 1)
    node("n3", "AccumulateGrad", S.KIND_PARAM, ((4, 2),), None, param="0.weight")
    g.add_edge("n3", "n2", **{S.SLOTS: (0,), S.OUTPUT_NRS: (0,)})
    g.add_edge("n2", "n1", **{S.SLOTS: (0,), S.OUTPUT_NRS: (0,)})
    g.add_edge("n1", "n0", **{S.SLOTS: (0,), S.OUTPUT_NRS: (0,)})
    return g


def sample_record(crash: bool = False, with_graph: bool = True) -> RunRecord:
    train = f"{ROOT}/train.py"
    findings = (
        Finding("graph-without-backward", "warning", "Sequential ran forward in evaluation mode with grad "
                "enabled and its graph never reached backward. Wrap evaluation in torch.no_grad().",
                Location(train, 22, "evaluate"), step=21, subject=("Sequential",),
                evidence={"graphs": 4, "saved_bytes_per_forward": 19072}, count=4),
        Finding("graph-retained", "error", "Autograd graphs built in earlier iterations stay alive. Keep "
                "plain numbers (loss.item()). The graph is held by `total_loss`.",
                Location(train, 35, "main"), step=3, subject=("total_loss",),
                evidence={"old_graphs": 45, "retained_bytes": 1048576}, count=45,
                related_locations=(Location(train, 34, "main"),),
                graph=retained_graph() if with_graph else None),
        Finding("accumulation", "info", "4 backward passes contributed to each optimizer step.", None,
                step=1),
        Finding("missing-zero-grad", "error", "SGD#0 stepped on gradients that still held contributions an "
                "earlier step already applied. Call optimizer.zero_grad() once per step.",
                Location("/usr/lib/python3/site-packages/trainer/loop.py", 88, "fit"), step=2,
                subject=("0.weight", "0.bias"), evidence={"parameters": 2, "max_contributions": 20},
                count=19),
    )
    return RunRecord(
        command=("train.py", "--epochs", "3"), engines=("native",), steps=48,
        exit_status=1 if crash else 0, findings=findings,
        crash=Crash("exception", "ValueError", "bad batch",
                    'Traceback (most recent call last):\n  File "/home/user/project/train.py", line 40, in '
                    "<module>\n    main()\nValueError: bad batch\n") if crash else None,
        not_checked=("backward in another thread: gradient-state checks ran, iteration tracking did not",),
        statements={f"{train}:22": "loss = loss_fn(model(x), y)", f"{train}:35": "total_loss += loss"},
        root=ROOT, gradlens="0.1.0", python="3.11.7", options={"accumulation": None, "ignore": []},
        extra={"iterations": 48})
