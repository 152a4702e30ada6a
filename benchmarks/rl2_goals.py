"""Why does an RL^2 fail on held-out Dark Room goals: does it never step on the goal, or does it step on
it and then not come back? A diagnostic for `algodistill rl2` checkpoints on Dark Room.

Rolls the frozen RL^2 out from a zero state for one trial (its `trial_episodes` episodes, sampled
actions) on every goal of a split, `--streams` streams each, and prints per split: the return per
episode of the trial; the share of trials that reach the goal in their first episode and at all; and,
after the episode that first reached it, the share of the trial's later episodes that reach it again
(an RL^2 that remembers where the reward was: near 1). An RL^2 that searches only where its training
goals are fails the first two on held-out goals; one whose memory of the goal is a lookup of training
goals fails the third.

    .venv/bin/python benchmarks/rl2_goals.py runs/darkroom-rl2-quick/seed-0 [--streams 8] [--seed 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from algodistill.envs import get_family
from algodistill.evaluate import InContextActor
from algodistill.methods.rl2 import RL2Policy
from algodistill.rl2 import load_rl2


@dataclass(frozen=True)
class Args:
    run: tyro.conf.Positional[Path]
    """directory of an `algodistill rl2` run on darkroom (holds ckpt.pt)"""
    streams: int = 8
    """trials per goal"""
    seed: int = 1
    """seed of the envs and the sampled actions"""
    threads: int = 2
    """CPU threads"""


def main(args: Args) -> None:
    torch.set_num_threads(args.threads)
    net, ckpt = load_rl2(args.run / "ckpt.pt")
    env_name = ckpt["job"]["env"]
    if env_name != "darkroom":
        raise SystemExit(f"{args.run} is an RL^2 of {env_name}: this diagnostic reads Dark Room goal cells")
    family = get_family(env_name)
    E, H = net.cfg.trial_episodes, family.spec.episode_length
    encoder = ckpt["job"]["net"].get("encoder", {}).get("kind", "embedding")
    print(f"{args.run}: RL^2 ({encoder} encoder) after {ckpt['log'][-1][1]:,} env steps, one trial of {E} episodes")
    for split in ("test", "train"):
        tasks = np.repeat(family.split(split), args.streams)  # (S,) goal cells
        S = len(tasks)
        env = family.make(tasks, seed=args.seed, ids=np.arange(S))
        actor = InContextActor(RL2Policy(net), S, device=torch.device("cpu"), seed=args.seed)
        r_tm1: np.ndarray | None = None
        done_tm1: np.ndarray | None = None
        reached = np.zeros((S, E), dtype=bool)  # (S, E) the goal paid at least once in the episode
        returns = np.zeros((S, E))
        for e in range(E):
            o_t = env.reset()
            for _ in range(H):
                a_t = actor.act(o_t, r_tm1, done_tm1)
                o_t, r_tm1, done_tm1 = env.step(a_t)
                reached[:, e] |= r_tm1 > 0
                returns[:, e] += r_tm1
        first = np.where(reached.any(axis=1), reached.argmax(axis=1), E)  # (S,) episode of the first reach
        later = [reached[s, first[s] + 1 :].mean() for s in range(S) if first[s] < E - 1]
        print(
            f"  {split:<5} ({len(family.split(split))} goals x {args.streams}): return per episode "
            f"{returns.mean():.2f} ({' '.join(f'{x:.1f}' for x in returns.mean(axis=0))}); goal reached in "
            f"episode 1 {reached[:, 0].mean():.2f}, in the trial {reached.any(axis=1).mean():.2f}; "
            f"after the first reach, later episodes reaching it {np.mean(later):.2f}"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
