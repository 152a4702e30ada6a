"""Why does an RL^2 fail on held-out goals of Dark Room or Dark Room (Hard): does it never step on the
goal, or does it step on it and then not come back? A diagnostic for `algodistill rl2` checkpoints.

Rolls the frozen RL^2 out from a zero state for one trial (its `trial_episodes` episodes, sampled
actions) on every goal of a split, `--streams` streams each, and prints per split: the return per
episode of the trial; the share of trials that reach the goal in their first episode and at all; and,
after the episode that first reached it, the share of the trial's later episodes that reach it again
(an RL^2 that remembers where the reward was: near 1). An RL^2 that searches only where its training
goals are fails the first two on held-out goals; one whose memory of the goal is a lookup of training
goals fails the third.

Where it searches: over the first episode of the trials on training goals (where held-out cells never
pay, so stepping on one is the search's own choice), the share of the training cells and of the held-out
cells that it steps on, beside the same for uniformly random actions. A search that covers held-out cells
less than training cells at the same distance from the start (random actions: about alike) has learned
that the goal is never there: the training split's prior, right for the training tasks and wrong for
held-out ones.

    .venv/bin/python benchmarks/rl2_goals.py runs/darkroom-rl2-quick/seed-0 [--streams 8] [--seed 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from algodistill.envs import get_family, grid
from algodistill.envs.darkroom import DarkRoomFamily
from algodistill.evaluate import InContextActor
from algodistill.methods.rl2 import RL2Net, RL2Policy
from algodistill.rl2 import load_rl2


@dataclass(frozen=True)
class Args:
    run: tyro.conf.Positional[Path]
    """directory of an `algodistill rl2` run on darkroom or darkroom-hard (holds ckpt.pt)"""
    streams: int = 8
    """trials per goal"""
    seed: int = 1
    """seed of the envs and the sampled actions"""
    threads: int = 2
    """CPU threads"""


def rollout(
    net: RL2Net | None, family: DarkRoomFamily, tasks: np.ndarray, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One trial of the frozen RL^2 (uniformly random actions when net is None) on every goal of `tasks` (S,).
    -> returns (S, E), reached (S, E): the goal paid in the episode, visited (S, C): cells stepped on in episode 1."""
    S, H, size = len(tasks), family.spec.episode_length, family.size
    env = family.make(tasks, seed=seed, ids=np.arange(S))
    actor = None if net is None else InContextActor(RL2Policy(net), S, device=torch.device("cpu"), seed=seed)
    g = np.random.default_rng(seed)
    r_tm1: np.ndarray | None = None
    done_tm1: np.ndarray | None = None
    reached = np.zeros((S, episodes), dtype=bool)
    returns = np.zeros((S, episodes))
    visited = np.zeros((S, size * size), dtype=bool)
    for e in range(episodes):
        o_t = env.reset()
        for _ in range(H):
            if e == 0:
                visited[np.arange(S), o_t[:, 0].astype(np.int64) * size + o_t[:, 1]] = True  # (x, y) uint8
            if actor is None:
                a_t = g.integers(family.spec.num_actions, size=S)
            else:
                a_t = actor.act(o_t, r_tm1, done_tm1)
            o_t, r_tm1, done_tm1 = env.step(a_t)
            reached[:, e] |= r_tm1 > 0
            returns[:, e] += r_tm1
    return returns, reached, visited


def main(args: Args) -> None:
    torch.set_num_threads(args.threads)
    net, ckpt = load_rl2(args.run / "ckpt.pt")
    env_name = ckpt["job"]["env"]
    if env_name not in ("darkroom", "darkroom-hard"):
        raise SystemExit(f"{args.run} is an RL^2 of {env_name}: this diagnostic reads Dark Room goal cells")
    family = get_family(env_name)
    assert isinstance(family, DarkRoomFamily)
    E = net.cfg.trial_episodes
    encoder = ckpt["job"]["net"].get("encoder", {}).get("kind", "embedding")
    print(f"{args.run}: RL^2 ({encoder} encoder) after {ckpt['log'][-1][1]:,} env steps, one trial of {E} episodes")
    visited = {}  # (S, C) cells stepped on in episode 1, per split
    for split in ("test", "train"):
        tasks = np.repeat(family.split(split), args.streams)  # (S,) goal cells
        returns, reached, visited[split] = rollout(net, family, tasks, E, args.seed)
        S = len(tasks)
        first = np.where(reached.any(axis=1), reached.argmax(axis=1), E)  # (S,) episode of the first reach
        later = [reached[s, first[s] + 1 :].mean() for s in range(S) if first[s] < E - 1]
        print(
            f"  {split:<5} ({len(family.split(split))} goals x {args.streams}): return per episode "
            f"{returns.mean():.2f} ({' '.join(f'{x:.1f}' for x in returns.mean(axis=0))}); goal reached in "
            f"episode 1 {reached[:, 0].mean():.2f}, in the trial {reached.any(axis=1).mean():.2f}; "
            f"after the first reach, later episodes reaching it {np.mean(later):.2f}"
        )
    tasks = np.repeat(family.split("train"), args.streams)
    _, _, random_visited = rollout(None, family, tasks, 1, args.seed)
    train_cells, test_cells = family.split("train"), family.split("test")
    dist = grid.manhattan(family.size, family.centre, np.arange(family.size**2))  # (C,) steps from the start
    print(
        "  episode 1 on training goals, share of cells stepped on: training cells / held-out cells / held-out "
        "against training cells at the same distance from the start (1: no preference)"
    )
    for name, stepped in (("rl2", visited["train"]), ("random actions", random_visited)):
        cover = stepped.mean(axis=0)  # (C,) share of trials that stepped on each cell
        same_d = np.array([cover[train_cells[dist[train_cells] == dist[c]]].mean() for c in test_cells])
        print(
            f"    {name:<14} {cover[train_cells].mean():.3f} / {cover[test_cells].mean():.3f} / "
            f"{cover[test_cells].sum() / same_d.sum():.2f}"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
