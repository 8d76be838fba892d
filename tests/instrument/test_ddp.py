"""DDP on CPU (2 processes, gloo): the rules still judge each rank's gradients after DDP rewrote them at
the end of backward; no_sync() accumulation is accumulation, not a bug. torch only."""

from __future__ import annotations

import os
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, results) -> None:
    import warnings

    import gradlens
    from tests.instrument import scenarios as sc

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(rank)
    torch.set_num_threads(1)
    out = {}
    try:
        for case in ("clean", "missing", "no_sync"):
            model = torch.nn.parallel.DistributedDataParallel(sc.mlp(torch))
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with gradlens.watch(on_finding="collect") as lens:
                    for _ in range(4):
                        if case != "missing":
                            opt.zero_grad()
                        if case == "no_sync":
                            with model.no_sync():
                                for _ in range(3):
                                    x, y = sc.batch(torch)
                                    sc.mse(torch, model(x), y).backward()
                        x, y = sc.batch(torch)
                        sc.mse(torch, model(x), y).backward()
                        opt.step()
            out[case] = sorted(lens.kinds())
            out[case + "_notes"] = lens.not_checked
    finally:
        dist.destroy_process_group()
    results[rank] = out


def test_ddp_two_cpu_processes():
    port = _free_port()
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(port, results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        r = results[rank]
        assert r["clean"] == [], r
        assert r["missing"] == ["missing-zero-grad"], r
        assert r["no_sync"] == ["accumulation"], r
        assert any("DistributedDataParallel" in n for n in r["clean_notes"])
