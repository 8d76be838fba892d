"""Multi-process runs: rank detection, per-rank records, the merged report naming the ranks, and a real
two-process DDP run under ``torchrun`` on gloo (CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradlens.cli import main
from gradlens.findings import Finding, Location
from gradlens.integrations import distributed as dd
from gradlens.record import RunRecord
from tests.integrations.conftest import env_with_this_gradlens

DATA = Path(__file__).parent / "data"


def _ranked(rank: int, *findings: Finding, steps: int = 4) -> RunRecord:
    rec = RunRecord(command=("train.py",), steps=steps, findings=findings)
    return dd.with_rank(rec, dd.RankInfo(rank, 2, rank, "env"))


def test_rank_info_reads_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = dd.rank_info()
    assert (info.rank, info.world_size, info.local_rank) == (1, 2, 1)
    assert dd.is_multiprocess()
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert dd.rank_info() == dd.RankInfo() and not dd.is_multiprocess()


def test_rank_path():
    assert dd.rank_path(None, 3) == "gradlens-rank3.json"
    assert dd.rank_path("out/run.json", 1) == "out/run.rank1.json"
    assert dd.rank_path("run-{rank}.json", 0) == "run-0.json"


def test_merge_names_the_ranks_of_each_finding():
    loc = Location("train.py", 9, "main")
    missing = Finding("missing-zero-grad", "error", "Call zero_grad().", loc, step=2, count=3)
    accum = Finding("accumulation", "info", "Deliberate.", Location("train.py", 7, "main"), step=1)
    merged = dd.merge_records([_ranked(1, missing, accum), _ranked(0, accum)])
    by_kind = {f.kind: f for f in merged.findings}
    assert by_kind["missing-zero-grad"].evidence["ranks"] == [1]
    assert by_kind["missing-zero-grad"].message.endswith("(on rank 1 of 2)")
    assert by_kind["accumulation"].evidence["ranks"] == [0, 1]
    assert by_kind["accumulation"].count == 2
    assert "(on ranks 0, 1 of 2)" in by_kind["accumulation"].message
    assert merged.extra["distributed"]["ranks"] == [0, 1]


def test_cli_merges_rank_records(tmp_path, capsys):
    missing = Finding("missing-zero-grad", "error", "Call zero_grad().", Location("t.py", 3, "f"), step=2)
    paths = []
    for rank, found in ((0, ()), (1, (missing,))):
        p = tmp_path / f"run.rank{rank}.json"
        p.write_text(_ranked(rank, *found).to_json())
        paths.append(str(p))
    assert main(["report", "--format", "json", *paths]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [f["evidence"]["ranks"] for f in data["findings"]] == [[1]]
    assert main(["report", "--fail-on", "never", *paths]) == 0
    assert "(on rank 1 of 2)" in capsys.readouterr().out


def test_cli_rejects_non_record_arguments_after_a_record(tmp_path, capsys):
    p = tmp_path / "run.json"
    p.write_text(RunRecord().to_json())
    assert main(["report", str(p), "extra"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed (pip install torch)")
def test_torchrun_two_ranks_ddp_gloo(tmp_path):
    pytest.importorskip("torch.distributed")
    env = env_with_this_gradlens({**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    env.pop("GITHUB_ACTIONS", None)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "gradlens", "report", "--fail-on", "never", "--format", "json", "-o", "run.json",
         str(DATA / "ddp_train.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rank 0 done" in run.stdout and "rank 1 done" in run.stdout
    assert "gradlens report run.rank*.json" in run.stderr
    ranks = sorted(p.name for p in tmp_path.glob("run.rank*.json"))
    assert ranks == ["run.rank0.json", "run.rank1.json"]
    for i, name in enumerate(ranks):
        assert json.loads((tmp_path / name).read_text())["distributed"]["rank"] == i

    merged = subprocess.run([sys.executable, "-m", "gradlens", "report", "--format", "json", *ranks],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert merged.returncode == 1, merged.stderr  # an error finding reaches the default --fail-on
    found = {f["kind"]: f for f in json.loads(merged.stdout)["findings"]}
    assert set(found) == {"missing-zero-grad", "accumulation"}, found
    assert found["missing-zero-grad"]["evidence"]["ranks"] == [1]
    assert "rank 1 of 2" in found["missing-zero-grad"]["message"]
    # no_sync() accumulation is deliberate on both ranks: informational, never unexpected-accumulation
    assert found["accumulation"]["severity"] == "info"
    assert found["accumulation"]["evidence"]["ranks"] == [0, 1]
