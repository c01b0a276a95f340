"""Data parallel training under torchrun semantics: 2 gloo processes on the CPU."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch.multiprocessing as mp

from trainer.checkpoint import load_run

pytestmark = pytest.mark.slow  # two processes, each importing torch and training


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, data: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from trainer.train import make_config, training_loop

    cfg = make_config("gan", data=data, out=out, res=16, width=4, z_dim=8, embed_dim=4, batch=8, kimg=0.08,
                      tick_kimg=0.04, grid_kimg=1000.0, threads=1, seed=3)
    training_loop(cfg, progress=False)  # raises if the processes' weights drift apart
    assert not dist.is_initialized()  # the loop created the process group, so it tears it down
    # Leave without the interpreter's teardown: now and then a worker aborted in torch's C++ exit after
    # the run had finished and been checked (not this project's code; see docs/reports/trainer-notes.md).
    # The rest of this test still checks it all.
    os._exit(0)


def test_two_gloo_processes_train_in_sync(tiny_set, tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tiny_set), str(tmp_path)), nprocs=2, join=True)
    (run,) = list(tmp_path.iterdir())  # only rank 0 writes
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["nimg"] == 80 and meta["step"] == 10  # batch 8 = 4 per process
    assert len((run / "stats.jsonl").read_text().splitlines()) == 2
    assert set(load_run(run).models) == {"G_ema", "D"}
