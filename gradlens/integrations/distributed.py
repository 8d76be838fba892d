"""Multi-process runs (``torchrun``, DDP): which rank this process is, one record file per rank, and the
merge of the ranks' records into one report that names the rank(s) where each finding occurred.

Each rank is watched on its own (``gradlens report`` under ``torchrun``, or ``gradlens.watch`` in the
script). DDP's ``no_sync()`` accumulation is recognised by the detectors as deliberate accumulation
(the informational ``accumulation`` rule), so it is merged like any other finding.

Example:
    torchrun --nproc_per_node=2 -m gradlens report train.py    # writes gradlens-rank0.json, -rank1.json
    gradlens report gradlens-rank0.json gradlens-rank1.json     # one report, findings name their ranks
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..findings import Finding
from ..record import RunRecord, record_from_sessions

__all__ = ["RankInfo", "rank_info", "is_multiprocess", "rank_path", "save_rank_record", "merge_records",
           "DEFAULT_RANK_PATTERN"]

DEFAULT_RANK_PATTERN = "gradlens-rank{rank}.json"
"""Where each rank's record goes when no ``--output`` is given."""


@dataclass(frozen=True)
class RankInfo:
    """This process's place in a multi-process run.

    Attributes:
        rank: the global rank (0 in a single process).
        world_size: the number of processes (1 in a single process).
        local_rank: the rank on this machine.
        source: where it was read: ``"torch.distributed"``, ``"env"`` or ``"single"``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    source: str = "single"

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "world_size": self.world_size, "local_rank": self.local_rank,
                "source": self.source}


def _env_int(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def rank_info() -> RankInfo:
    """The rank of this process, from an initialised ``torch.distributed`` or else the ``RANK`` /
    ``WORLD_SIZE`` / ``LOCAL_RANK`` environment variables that ``torchrun`` sets.

    torch is never imported here: ``torch.distributed`` is asked only when the program already imported it.

    Example:
        >>> rank_info().world_size >= 1
        True
    """
    dist = sys.modules.get("torch.distributed")
    local = _env_int("LOCAL_RANK") or 0
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return RankInfo(dist.get_rank(), dist.get_world_size(), local, "torch.distributed")
        except Exception:  # a half-torn-down process group: fall back to the environment
            pass
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if rank is not None and world is not None and world >= 1:
        return RankInfo(rank, world, local, "env")
    return RankInfo()


def is_multiprocess() -> bool:
    """Whether this process is one of several (``WORLD_SIZE`` > 1 or an initialised process group)."""
    return rank_info().world_size > 1


def rank_path(path: str | None, rank: int) -> str:
    """The record file of one rank: ``{rank}`` in ``path`` is replaced, else ``.rankN`` goes before the
    extension (``run.json`` -> ``run.rank1.json``); without a path, ``gradlens-rank{rank}.json``.

    Example:
        >>> rank_path("out/run.json", 1)
        'out/run.rank1.json'
    """
    if not path:
        return DEFAULT_RANK_PATTERN.format(rank=rank)
    if "{rank}" in path:
        return path.replace("{rank}", str(rank))
    stem, ext = os.path.splitext(path)
    return f"{stem}.rank{rank}{ext or '.json'}"


def with_rank(record: RunRecord, info: RankInfo | None = None) -> RunRecord:
    """The record tagged with this process's rank (kept in the record under ``"distributed"``)."""
    info = info if info is not None else rank_info()
    return replace(record, extra={**dict(record.extra), "distributed": info.to_dict()})


def save_rank_record(lens: Any, path: str | None = None, *, command: Sequence[str] | None = None) -> str:
    """Write one rank's record of a ``gradlens.watch`` lens, for ``gradlens report`` to merge later.

    Args:
        lens: the ``Lens`` of the watch that ran on this rank.
        path: where to write (see ``rank_path``; default ``gradlens-rank{rank}.json``).
        command: the command to record (default ``sys.argv``).

    Returns:
        The path written.

    Example:
        >>> import gradlens  # doctest: +SKIP
        >>> with gradlens.watch() as lens:  # doctest: +SKIP
        ...     train()
        >>> save_rank_record(lens)  # doctest: +SKIP
        'gradlens-rank0.json'
    """
    from ..report.output import atomic_write

    info = rank_info()
    record = record_from_sessions([lens.to_dict()], command=tuple(command or sys.argv), exit_status=0,
                                  root=os.getcwd())
    target = rank_path(path, info.rank)
    folder = os.path.dirname(target)
    if folder:
        os.makedirs(folder, exist_ok=True)
    atomic_write(target, with_rank(record, info).to_json())
    return target


def _rank_of(record: RunRecord, index: int) -> int:
    dist = record.extra.get("distributed")
    if isinstance(dist, Mapping) and isinstance(dist.get("rank"), int):
        return dist["rank"]
    return index


def _ranks_text(ranks: Sequence[int], world: int) -> str:
    label = "rank" if len(ranks) == 1 else "ranks"
    return f"{label} {', '.join(str(r) for r in ranks)} of {world}"


def merge_records(records: Sequence[RunRecord]) -> RunRecord:
    """One record from the records of the ranks of a run.

    A problem seen on several ranks (same rule, severity, location and subject) becomes one finding whose
    message ends by naming the ranks, with ``evidence["ranks"]`` listing them and the counts added up.
    Steps are the most any rank took; the exit status is the first non-zero one; what could not be checked
    is the union.

    Args:
        records: the per-rank records (each tagged by ``with_rank``; untagged ones count by position).

    Returns:
        The merged ``RunRecord`` (``extra["distributed"]`` lists the ranks and their steps).

    Raises:
        ValueError: ``records`` is empty.
    """
    if not records:
        raise ValueError("merge_records() needs at least one record")
    ranked = sorted(((_rank_of(r, i), r) for i, r in enumerate(records)), key=lambda p: p[0])
    world = max(len(ranked), *(int(r.extra.get("distributed", {}).get("world_size", 1) or 1)
                               for _, r in ranked))
    groups: dict[tuple, list[tuple[int, Finding]]] = {}
    for rank, rec in ranked:
        for f in rec.findings:
            groups.setdefault((f.kind, f.severity, f.location, f.subject), []).append((rank, f))
    merged: list[Finding] = []
    for seen in groups.values():
        ranks = sorted({r for r, _ in seen})
        first = seen[0][1]
        steps = [f.step for _, f in seen if f.step is not None]
        evidence = {**dict(first.evidence), "ranks": ranks}
        merged.append(replace(first, message=f"{first.message} (on {_ranks_text(ranks, world)})",
                              count=sum(f.count for _, f in seen), step=min(steps) if steps else None,
                              evidence=evidence))
    statements: dict[str, str] = {}
    not_checked: list[str] = []
    engines: list[str] = []
    context: dict = {}
    for _, rec in ranked:
        statements.update(rec.statements)
        context.update(rec.source_context)
        not_checked.extend(n for n in rec.not_checked if n not in not_checked)
        engines.extend(e for e in rec.engines if e not in engines)
    crashed = [(rank, rec) for rank, rec in ranked if rec.crash is not None]
    crash = None
    if crashed:
        rank, rec = crashed[0]
        crash = replace(rec.crash, message=f"(rank {rank}) {rec.crash.message}")
    status = next((rec.exit_status for _, rec in ranked if rec.exit_status), 0)
    first_rec = ranked[0][1]
    extra = {k: v for k, v in first_rec.extra.items() if k != "distributed"}
    extra["distributed"] = {"world_size": world, "ranks": [rank for rank, _ in ranked],
                            "steps": {str(rank): rec.steps for rank, rec in ranked}}
    return RunRecord(command=first_rec.command, engines=tuple(engines),
                     steps=max(rec.steps for _, rec in ranked), exit_status=status, findings=tuple(merged),
                     crash=crash, not_checked=tuple(not_checked), statements=statements,
                     source_context=context, root=first_rec.root,
                     gradlens=first_rec.gradlens, python=first_rec.python, options=first_rec.options,
                     step_graph=next((r.step_graph for _, r in ranked if r.step_graph is not None), None),
                     extra=extra)


def write_rank_record(record: RunRecord, output: str | None, err: Any) -> str:
    """What ``gradlens report SCRIPT`` does on one rank of a multi-process run: write the rank's record
    (see ``rank_path``) and say on ``err`` how to merge the ranks.

    Returns:
        The path written.
    """
    from ..report.output import atomic_write
    from ..report.text_report import summary_line

    info = rank_info()
    target = rank_path(output, info.rank)
    atomic_write(target, with_rank(record, info).to_json())
    err.write(f"gradlens: rank {info.rank} of {info.world_size}: {summary_line(record)}; wrote {target}\n")
    if info.rank == 0:
        pattern = rank_path(output, 0).replace(".rank0", ".rank*").replace("rank0", "rank*")
        err.write(f"gradlens: merge the ranks' records with: gradlens report {pattern}\n")
    return target


def load_and_merge(paths: Sequence[str]) -> RunRecord:
    """Read several rank records (``gradlens report A.json B.json ...``) and merge them."""
    from ..record import load_record

    return merge_records([load_record(p) for p in paths])
