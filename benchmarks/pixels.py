"""Pixels in the dataset: disk per step, window sampling with the frames redrawn, against a training step.

Watermaze datasets store (x, y, heading) per step and `Dataset.sample` redraws each window's frames
(docs/dataset.md, "Stored form"). This prints the bytes per step on disk against the frames', how many
windows (and frames) per second the sampler delivers at the training batch shape, and how long one AD
optimizer step on such a batch takes with a conv encoder: the loader keeps up when its time per batch
is well under the step's.

    .venv/bin/python benchmarks/pixels.py
    .venv/bin/python benchmarks/pixels.py --env watermaze --channels 32 64 64
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from algodistill.encoders import EncoderConfig
from algodistill.envs import get_family
from algodistill.generate import GenerateConfig, generate
from algodistill.methods import get_method
from algodistill.model import ModelConfig
from algodistill.sampler import Dataset


@dataclass(frozen=True)
class Args:
    env: str = "watermaze-small"
    """watermaze (72 x 96) or watermaze-small (36 x 48)"""
    histories: int = 32
    """histories of the privq source in the measured dataset"""
    episodes: int = 100
    """episodes per history (50 steps each)"""
    batch: int = 32
    """windows per batch (the quick presets' batch)"""
    context: int = 100
    """steps per window: two episodes"""
    channels: tuple[int, ...] = (16, 32)
    """conv encoder blocks (2 blocks fit 36 x 48; the paper's Table 3: 128 128 128)"""
    kernel: int = 5
    """conv kernel size (Table 3: 5; the quick preset's `QUICK_ENCODER`: 4)"""
    stride: int = 2
    """conv stride (Table 3: 2; `QUICK_ENCODER`: 4)"""
    repeats: int = 10
    """batches timed for each figure (the best of them is kept)"""


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(args: Args) -> None:
    spec = get_family(args.env).spec
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data"
        steps = args.episodes * spec.episode_length
        generate(GenerateConfig(args.env, "privq", out, args.histories, steps, shard_size=args.histories, quiet=True))
        on_disk = sum(p.stat().st_size for p in out.glob("shard-*.h5"))
        ds = Dataset.open(out)
        ad = get_method("ad")
        model_cfg = ModelConfig(
            n_embd=64,
            n_layer=3,
            n_head=4,
            n_ff=256,
            context=args.context,
            encoder=EncoderConfig("conv", channels=args.channels, kernel=args.kernel, stride=args.stride),
        )
        length, lead = ad.window(model_cfg)
        g = np.random.default_rng(0)
        t_sample = best(lambda: ds.sample(g, args.batch, length, lead=lead), args.repeats)
        model = ad.build_model(model_cfg, spec, torch.Generator().manual_seed(0))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = ad.make_batch(ds.sample(g, args.batch, length, lead=lead), spec)

        def step() -> None:
            loss, _ = ad.loss(model, batch, 0.0)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # allocations
        t_step = best(step, max(3, args.repeats // 3))
    frame_bytes = int(np.prod(spec.obs_shape))
    n_steps = args.histories * steps
    print(f"{args.env} {spec.obs_shape}: {args.histories} privq histories x {steps} steps")
    print(f"  on disk: {on_disk / n_steps:.2f} bytes per step (a raw frame: {frame_bytes:,} bytes)")
    print(
        f"  sampler: {t_sample * 1e3:.1f} ms per batch of {args.batch} x {length} windows "
        f"({args.batch / t_sample:,.0f} windows/s, {args.batch * length / t_sample:,.0f} frames/s)"
    )
    conv = f"conv {args.channels}, kernel {args.kernel}, stride {args.stride}"
    print(f"  one AD optimizer step on that batch ({conv}, {torch.get_num_threads()} threads): "
          f"{t_step * 1e3:.0f} ms")  # fmt: skip
    print(f"  loader share of a step: {t_sample / (t_sample + t_step):.0%}")


if __name__ == "__main__":
    main(tyro.cli(Args))
