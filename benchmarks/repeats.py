"""Does a frozen AD repeat an episode that paid? A diagnostic for replay-style data on deterministic
families (Dark Room, Watermaze), where the source repeats its first paying episode for ever after.

Rolls the AD checkpoint of a run seed out in context on training tasks (or `--split test`; `--tasks` x
`--streams` streams, `--episodes` episodes, sampled actions) and prints the return per episode, and,
over pairs of consecutive episodes: after an episode that paid, the share of steps whose action
repeats it and the share of the next episodes that pay; after one that did not, the share of repeated
steps (1/A for a policy that searches afresh; replay's own data has 1 after a paying episode, 1/A
otherwise). The loop is `evaluate.rollout_policy`'s, written out because that one keeps no actions.

`--recompute-bn` first recomputes the BatchNorm statistics from the run's AD dataset as training now
does at its end (`train.precise_batchnorm`): for checkpoints trained before it did, to compare.

    .venv/bin/python benchmarks/repeats.py runs/wm-replay/seed-0
    .venv/bin/python benchmarks/repeats.py runs/wm-replay/seed-0 --recompute-bn --split test --episodes 20
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

from algodistill.checkpoint import load_model
from algodistill.configs import TrainConfig
from algodistill.envs import get_family
from algodistill.evaluate import InContextActor, eval_streams
from algodistill.jsonio import from_jsonable
from algodistill.methods import get_method
from algodistill.model import ModelConfig
from algodistill.sampler import Dataset
from algodistill.train import precise_batchnorm


@dataclass(frozen=True)
class Args:
    seed_dir: tyro.conf.Positional[Path]
    """a run's seed directory (runs/<name>/seed-<s>): its ad/ckpt.pt and data/ad are read"""
    episodes: int = 12
    """episodes per stream"""
    split: Literal["train", "test"] = "train"
    """tasks of the training split or the held-out one"""
    tasks: int = 16
    """tasks of the split (those the run evaluates on, `evaluate.eval_streams`)"""
    streams: int = 2
    """streams per task (different action samples)"""
    recompute_bn: bool = False
    """recompute the BatchNorm statistics from data/ad first (as training does since it ends so)"""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    model, job = load_model(args.seed_dir / "ad" / "ckpt.pt")  # in eval mode, which precise_batchnorm keeps
    family, method = get_family(job["env"]), get_method("ad")
    if args.recompute_bn:
        train_cfg = from_jsonable(TrainConfig, job["train"], "train.")
        with Dataset.open(args.seed_dir / "data" / "ad") as ds:
            window = method.window(from_jsonable(ModelConfig, job["model"], "model."))
            precise_batchnorm(model, ds, method, family.spec, window, seed=job["seed"], train=train_cfg, device=cpu)
    H, E = family.spec.episode_length, args.episodes
    tasks = eval_streams(family, args.split, args.tasks, args.streams)  # (S,) as the run evaluates
    S = len(tasks)
    env = family.make(tasks, seed=0, ids=np.arange(S))
    actor = InContextActor(method.policy(model), S, device=cpu, seed=0)
    actions, returns = np.zeros((S, E, H), np.int64), np.zeros((S, E))
    r_tm1 = done_tm1 = None
    for e in range(E):
        o_t = env.reset()
        for k in range(H):
            a_t = actor.act(o_t, r_tm1, done_tm1)  # (S,)
            actions[:, e, k] = a_t
            o_t, r_tm1, done_tm1 = env.step(a_t)
            returns[:, e] += r_tm1
    repeated = (actions[:, 1:] == actions[:, :-1]).mean(2)  # (S, E-1) share of steps equal to the episode before
    paid = returns[:, :-1] > 0  # (S, E-1)
    print(f"{job['env']}, {S} streams on {args.split} tasks, bn {'recomputed' if args.recompute_bn else 'as saved'}")
    print("return per episode:", " ".join(f"{x:.2f}" for x in returns.mean(0)))
    if paid.any():
        print(
            f"after a paying episode ({paid.sum()}): {repeated[paid].mean():.2f} of steps repeated, "
            f"{(returns[:, 1:][paid] > 0).mean():.2f} of next episodes pay"
        )
    if (~paid).any():
        print(
            f"after a non-paying one ({(~paid).sum()}): {repeated[~paid].mean():.2f} of steps repeated "
            f"(1/A = {1 / family.spec.num_actions:.2f})"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
