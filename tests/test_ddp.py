"""2-process DDP with gloo equals one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from algodistill.checkpoint import load_checkpoint
from algodistill.jsonio import jsonable
from algodistill.train import train
from test_train import make_dataset, tiny

torch.set_num_threads(1)

# Each rank trains, then saves its own final parameters so the test can compare the ranks bitwise.
WORKER = """
import json, os, sys, torch
torch.set_num_threads(1)
import algodistill.train as T
from algodistill.configs import TrainJob
from algodistill.jsonio import from_jsonable
models = []
make = T._adamw
T._adamw = lambda model, cfg, fused: (models.append(model), make(model, cfg, fused))[1]
T.train(from_jsonable(TrainJob, json.loads(sys.argv[1])))
torch.save(models[0].state_dict(), os.path.join(sys.argv[2], "rank%s.pt" % os.environ["RANK"]))
"""


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_two_gloo_ranks_equal_one_process(tmp_path):
    data = make_dataset(tmp_path / "data")
    # No dropout or token masking: those draw per-rank random numbers, everything else is deterministic.
    model = {
        "n_embd": 16,
        "n_layer": 1,
        "n_head": 2,
        "n_ff": 32,
        "context": 40,
        "dropout": 0.0,
        "attn_dropout": 0.0,
        "token_mask": 0.0,
    }
    job = tiny(data, tmp_path / "ddp", model=model, train={"iters": 5, "ckpt_every": 2})
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            str(worker),
            json.dumps(jsonable(job)),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # DDP keeps the replicas identical
    ddp = load_checkpoint(tmp_path / "ddp" / "ckpt.pt")
    assert ddp["iter"] == 5 and all(torch.equal(ddp["model"][k], ranks[0][k]) for k in ranks[0])
    # Only rank 0 wrote the run's files.
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["ckpt.pt", "config.json", "metrics.jsonl"]
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 5

    single = load_checkpoint(train(tiny(data, tmp_path / "single", model=model, train={"iters": 5, "ckpt_every": 2})))
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    ddp_loss, one_loss = (
        [json.loads(x)["loss"] for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        for d in ("ddp", "single")
    )
    assert ddp_loss == pytest.approx(one_loss, rel=1e-5)
