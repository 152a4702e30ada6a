"""RL^2 training throughput: env steps per second (all tasks together) of `algodistill rl2`.

Times whole trials (acting, environment, GAE and the PPO updates) of the quick preset's network (Dark
Room: GRU 128 x 1) and of the paper's (LSTM 256 x 2) at 1, 256 and 4096 parallel tasks, after one
warm-up trial. On Watermaze (`--env watermaze`) each step also draws the frames and encodes them.

    .venv/bin/python benchmarks/rl2.py [--env darkroom] [--scales quick paper] [--tasks 1 256 4096]
                                       [--threads 2] [--device cpu] [--trials 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from algodistill.envs import get_family
from algodistill.presets import rl2_preset
from algodistill.rl2 import train_rl2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="darkroom")
    p.add_argument("--scales", nargs="+", default=["quick", "paper"])
    p.add_argument("--tasks", nargs="+", type=int, default=[1, 256, 4096], help="parallel tasks per setting")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--trials", type=int, default=2, help="timed trials per setting")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"RL^2 training, {args.env}, {args.device}, {args.threads} threads: env steps/s")
    for scale in args.scales:
        base = rl2_preset(args.env, scale)
        for tasks in args.tasks:
            trial = base.net.trial_episodes * get_family(base.env).spec.episode_length * tasks
            with tempfile.TemporaryDirectory() as d:
                cfg = dataclasses.replace(
                    base,
                    out=Path(d),
                    tasks=tasks,
                    steps=trial,
                    device=args.device,
                    quiet=True,
                    ppo=dataclasses.replace(base.ppo, minibatches=min(base.ppo.minibatches, tasks)),
                    eval=dataclasses.replace(base.eval, episodes=1, tasks=1, streams_per_task=1),
                )
                train_rl2(cfg)  # warm-up: one trial
                cfg = dataclasses.replace(cfg, steps=trial * (1 + args.trials))
                t0 = time.perf_counter()
                train_rl2(cfg)  # resumes: the timed trials only
                seconds = time.perf_counter() - t0
            net = f"{base.env} {base.net.cell} {base.net.hidden} x {base.net.layers}"
            print(f"  {scale:<6} {net:<30} tasks {tasks:>5}: {trial * args.trials / seconds:>10,.0f} steps/s")


if __name__ == "__main__":
    main()
