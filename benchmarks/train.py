"""Training throughput of the real `algodistill.train` loop: history time steps per second.

history steps/s = batch * context * optimizer steps/s, i.e. how many steps of learning history the
trainer consumes per second. Measured for the quick and the paper model shapes (presets,
`algodistill.presets.get_preset("darkroom", ...)`: Dark Room, context 80, here with subsample 1), with
the one-token ("step") and the three-token ("sar") layout side by side, on the CPU and on CUDA when
present. The first `warmup` steps are not timed; one optimizer step is one `iter` of the trainer.
Data: a synthetic in-RAM Dark Room dataset (random transitions; throughput does not depend on what the
histories contain).

    .venv/bin/python benchmarks/train.py                # ~1-2 minutes on 2 CPU cores
    .venv/bin/python benchmarks/train.py --threads 1    # on a shared, loaded machine: 2 OpenMP threads
                                                        # competing with other work can be 10x slower
    .venv/bin/python benchmarks/train.py --steps 40     # longer, steadier numbers
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro
from rich.console import Console
from rich.table import Table

from algodistill.configs import TrainJob
from algodistill.dataset import Histories, finalize, write_shard
from algodistill.envs import get_family
from algodistill.presets import get_preset
from algodistill.train import train


@dataclass(frozen=True)
class Args:
    """Benchmark the trainer's throughput (history time steps per second)."""

    steps: int = 0
    """timed optimizer steps per case (0: per-shape defaults that keep the run near 2 minutes on 2 CPU cores)"""
    warmup: int = 2
    """untimed steps first (allocations, autotuning)"""
    devices: tuple[str, ...] = ("cpu", "cuda")
    """devices to measure; cuda is skipped when absent"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""


def make_data(out: Path, n: int = 64, episodes: int = 20) -> Path:
    """A Dark Room dataset of random transitions: n histories of `episodes` episodes."""
    spec = get_family("darkroom").spec
    T, H = episodes * spec.episode_length, spec.episode_length
    rng = np.random.default_rng(0)
    obs = np.stack([rng.integers(0, h, (n, T)) for h in spec.obs_high], -1).astype(np.uint8)  # (n, T, 2)
    hist = Histories(
        obs,
        rng.integers(0, spec.num_actions, (n, T)).astype(np.uint8),
        (rng.random((n, T)) < 0.1).astype(np.float32),
        np.broadcast_to((np.arange(T) + 1) % H == 0, (n, T)).copy(),
        np.arange(n, dtype=np.int64),
    )
    write_shard(
        out, 0, hist, learner_start=0, num_histories=n, meta={"spec": spec.record()}, config={"benchmark": "train"}
    )
    finalize(out)
    return out


def measure(
    data: Path, out: Path, preset: str, layout: Literal["step", "sar"], device: str, steps: int, warmup: int
) -> dict:
    """Steps/s over `steps` timed steps after `warmup` untimed ones, from the run's own metrics.jsonl."""
    steps = -(-steps // warmup) * warmup  # a multiple of warmup: metrics lines at warmup, 2 warmup, ...
    run = get_preset("darkroom", preset)
    job = TrainJob(
        env="darkroom",
        method="ad",
        data=data,
        out=out,
        preset=preset,
        model=dataclasses.replace(run.model, layout=layout),
        # subsample 1: windows from every episode (the quick preset's 10 needs longer histories than make_data's)
        train=dataclasses.replace(
            run.train, iters=warmup + steps, warmup_iters=0, subsample=1, log_every=warmup, ckpt_every=10**9
        ),
        device=device,
        quiet=True,
    )
    train(job)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]  # drop the warm-up line
    sps = steps / sum(warmup / r["iters_per_s"] for r in rows)
    return {
        "preset": preset,
        "layout": layout,
        "device": device,
        "batch": job.train.batch_size,
        "context": job.model.context,
        "steps_per_s": sps,
        "history_steps_per_s": sps * job.train.batch_size * job.model.context,
    }


def main(args: Args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    default_steps = {("quick", "cpu"): 20, ("paper", "cpu"): 2, ("quick", "cuda"): 100, ("paper", "cuda"): 100}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data")
        for device in devices:
            for preset in ("quick", "paper"):
                for layout in ("step", "sar"):  # type: Literal["step", "sar"]
                    steps = args.steps or default_steps[preset, device]
                    out = Path(tmp) / f"{device}-{preset}-{layout}"
                    results.append(measure(data, out, preset, layout, device, steps, args.warmup))
                    r = results[-1]
                    print(
                        f"{device} {preset} {layout}: {r['steps_per_s']:.2f} steps/s, "
                        f"{r['history_steps_per_s']:,.0f} history steps/s",
                        flush=True,
                    )
    table = Table(title=f"AD training throughput (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")
    for col in (
        "device",
        "shape",
        "batch x context",
        "step: steps/s",
        "step: hist steps/s",
        "sar: steps/s",
        "sar: hist steps/s",
        "step / sar",
    ):
        table.add_column(col, justify="right")
    for device in devices:
        for preset in ("quick", "paper"):
            one, three = (
                next(r for r in results if (r["device"], r["preset"], r["layout"]) == (device, preset, lay))
                for lay in ("step", "sar")
            )
            table.add_row(
                device,
                preset,
                f"{one['batch']} x {one['context']}",
                f"{one['steps_per_s']:.2f}",
                f"{one['history_steps_per_s']:,.0f}",
                f"{three['steps_per_s']:.2f}",
                f"{three['history_steps_per_s']:,.0f}",
                f"{one['steps_per_s'] / three['steps_per_s']:.2f}x",
            )
    Console(width=160).print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
