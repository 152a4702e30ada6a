"""Source throughput: transitions per second of each grid-world source on Dark Room, batched over learners.

Times `sources.rollout` (the generation loop: act, env step, record, update) for `--learners` learners
stepped together for a bounded number of steps, extrapolates the time of a full dataset of
learners x history transitions (default 2000 x 20,000 = 4e7), and compares with the same learner class
run one task at a time in a Python loop (N = 1), the way a per-task generator would.

Targets: 4e7 Dark Room transitions in <= 120 s with qlearning or noise, <= 600 s with a2c.

    .venv/bin/python benchmarks/generate.py                          # all three sources, 2000 learners
    .venv/bin/python benchmarks/generate.py --sources a2c --steps 400 --threads 2
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import tyro

from algodistill import envs
from algodistill.presets import TABLE_4_A2C
from algodistill.sources import SourceConfig, make_source, rollout

TARGET_SECONDS = {"qlearning": 120.0, "noise": 120.0, "a2c": 600.0}


@dataclass(frozen=True)
class Args:
    sources: tuple[str, ...] = ("qlearning", "noise", "a2c")
    """grid sources to time"""
    env: str = "darkroom"
    """task family"""
    learners: int = 2000
    """learners stepped together (one training task each, cycling over the split)"""
    steps: int = 1000
    """batched steps to time, after a one-episode warm-up (a2c: one update per 20 steps)"""
    history: int = 20_000
    """steps per learner in the dataset whose generation time is extrapolated"""
    loop_steps: int = 300
    """steps of the one-task-at-a-time baseline (N = 1)"""
    a2c_preset: Literal["fast", "paper"] = "fast"
    """A2C settings: fast (A2CConfig's defaults: 2 x 64 MLP, lr 1e-3) or paper (presets.TABLE_4_A2C: 3 x 128 MLP)"""
    threads: int = 1
    """torch intra-op threads (A2C's small per-learner matmuls gain little from more on a busy machine)"""
    seed: int = 0
    """run seed"""


def transitions_per_second(args: Args, name: str, n: int, steps: int) -> tuple[float, float]:
    """(transitions per second of rollout, seconds to build the learners) for n learners."""
    family = envs.get_family(args.env)
    tasks = np.resize(family.split("train"), n)
    ids = np.arange(n)
    env = family.make(tasks, seed=args.seed, ids=ids)
    t0 = time.perf_counter()
    cfg = TABLE_4_A2C if args.a2c_preset == "paper" else SourceConfig()
    source = make_source(name, env, args.seed, ids, args.history, cfg)
    init_s = time.perf_counter() - t0
    _, o_t = rollout(env, source, family.spec.episode_length)  # warm-up: one episode (and one a2c update)
    t0 = time.perf_counter()
    rollout(env, source, steps, o_t)
    return n * steps / (time.perf_counter() - t0), init_s


def main(args: Args) -> None:
    torch.set_num_threads(args.threads)
    total = args.learners * args.history
    print(f"{args.env}: {args.learners} learners x {args.history} steps = {total:.1e} transitions")
    print(f"a2c preset {args.a2c_preset}; torch threads {args.threads}")
    print(f"timing {args.steps} batched steps and {args.loop_steps} steps of N=1")
    cols = ("source", "batched tr/s", "est. time", "target", "", "N=1 loop tr/s", "loop est.", "speed-up")
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, (10, 13, 10, 7, 4, 14, 10, 9), strict=True)))
    for name in args.sources:
        tps, init_s = transitions_per_second(args, name, args.learners, args.steps)
        tps1, _ = transitions_per_second(args, name, 1, args.loop_steps)
        est = init_s + total / tps
        verdict = "PASS" if est <= TARGET_SECONDS[name] else "FAIL"
        print(
            f"{name:>10} {tps:>13,.0f} {est:>9.0f}s {TARGET_SECONDS[name]:>6.0f}s {verdict:>4} "
            f"{tps1:>14,.0f} {total / tps1:>9.0f}s {tps / tps1:>8.0f}x"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
