"""A Watermaze source (`privq`, Q-learning over the env's privileged state, `replay`, search then replay,
or `dqn`, DQN(Q-lambda) from pixels): its learning curve and speed.

Runs `--learners` learners, one training task each (spread over the 900 training tasks), for a history of
`--episodes` episodes of 50 steps, and prints the mean return per tenth of the history (over learners and
the tenth's episodes), the first and last tenths next to the random and optimal returns, and env steps/s.

privq and replay read only the env's privileged state, not its frames, so their curve is measured on an
env that skips drawing them (`Blind` below: the same dynamics, rewards and state, an empty observation),
and the speed of the real generation loop (`sources.rollout`, a frame drawn every step) is timed
separately for a few steps at `--env`'s resolution. dqn draws the frames it reads itself, at `--env`'s
resolution, so its curve's steps/s is the generation loop's.

    .venv/bin/python benchmarks/watermaze_source.py
    .venv/bin/python benchmarks/watermaze_source.py --learners 900 --episodes 500
    .venv/bin/python benchmarks/watermaze_source.py --source replay --learners 900 --episodes 200
    .venv/bin/python benchmarks/watermaze_source.py --source dqn --learners 8 --episodes 300
    .venv/bin/python benchmarks/watermaze_source.py --source dqn --learners 16 --episodes 40 --threads 1
    .venv/bin/python benchmarks/watermaze_source.py --source dqn --learners 64 --episodes 10 --dqn.learn-start 100 \
        --update-chunk 64
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import tyro

from algodistill import rng
from algodistill.envs import get_family
from algodistill.envs.watermaze import WatermazeEnv, WatermazeFamily
from algodistill.sources import SourceConfig, make_source, rollout
from algodistill.sources import dqn as dqn_module
from algodistill.sources.dqn import DQN, DQNConfig
from algodistill.sources.privq import PrivQ
from algodistill.sources.replay import Replay


@dataclass(frozen=True)
class Args:
    learners: int = 64
    """learners stepped together, one training task each"""
    episodes: int = 1000
    """history length in episodes of 50 steps"""
    env: str = "watermaze-small"
    """the family whose rendering `rollout` is timed with (the curve does not depend on the resolution)"""
    render_steps: int = 200
    """steps of the rendered generation loop to time"""
    seed: int = 0
    """run seed"""
    tiebreak: Literal["step", "state"] = "step"
    """privq's tie-break (`PrivQConfig.tiebreak`)"""
    source: Literal["privq", "replay", "dqn"] = "privq"
    """the source: privq, replay (search, then replay the rewarded episode; the Watermaze presets') or dqn"""
    dqn: DQNConfig = dataclasses.field(default_factory=DQNConfig)
    """dqn's hyperparameters"""
    update_chunk: int = dqn_module.UPDATE_CHUNK
    """dqn's learners per update pass (`sources.dqn.UPDATE_CHUNK`; the learning does not depend on it)"""
    threads: int = 0
    """torch threads (0: torch's default, every core; generation gives dqn the same, and one thread to the
    other sources, `generate.source_threads`)"""


class Blind(WatermazeEnv):
    """A Watermaze env that draws nothing: its observation is an empty (N, 0) array."""

    def render(self) -> np.ndarray:
        return np.zeros((self.num_envs, 0), dtype=np.uint8)


def learning_curve(args: Args, family: WatermazeFamily, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Returns of every episode (learners, episodes) of the source on a blind env, its actions (learners,
    episodes, steps) and its env steps/s."""
    H = family.spec.episode_length
    T = args.episodes * H
    cfg = dataclasses.replace(SourceConfig().privq, tiebreak=args.tiebreak)
    keys = rng.learner_keys(args.seed, np.arange(len(tasks)))
    src: PrivQ | Replay | DQN
    if args.source == "dqn":
        env = get_family(args.env).make(tasks)
        env.draw = False  # dqn draws its own frames from the stored form, as in generation
        src = DQN(env, keys, T, args.dqn)
    else:
        env = Blind(family, family.centres[tasks], tasks)
        src = PrivQ(env, keys, T, cfg) if args.source == "privq" else Replay(env, keys)
    returns = np.zeros((len(tasks), args.episodes))  # (N, E)
    actions = np.zeros((len(tasks), T), dtype=np.int64)  # (N, T)
    o_t = env.reset()
    t0 = time.perf_counter()
    for t in range(T):  # `rollout` without recording
        a_t = src.act(o_t)
        o_tp1, r_t, done_t = env.step(a_t)
        src.update(o_t, a_t, r_t, o_tp1, done_t)
        returns[:, t // H] += r_t
        actions[:, t] = a_t
        o_t = env.reset() if done_t.all() else o_tp1
    return returns, actions.reshape(len(tasks), args.episodes, H), len(tasks) * T / (time.perf_counter() - t0)


def rendered_steps_per_second(args: Args, tasks: np.ndarray) -> float:
    """Env steps/s of `rollout` (a frame drawn and recorded every step) over `args.render_steps` steps."""
    family = get_family(args.env)
    env = family.make(tasks)
    src = make_source(args.source, env, args.seed, np.arange(len(tasks)), args.episodes * 50, SourceConfig())
    t0 = time.perf_counter()
    rollout(env, src, args.render_steps)
    return len(tasks) * args.render_steps / (time.perf_counter() - t0)


def main(args: Args) -> None:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dqn_module.UPDATE_CHUNK = args.update_chunk
    family = get_family("watermaze")
    assert isinstance(family, WatermazeFamily)
    train = family.split("train")
    tasks = train[np.linspace(0, len(train) - 1, args.learners).astype(np.int64)]  # spread over the split
    steps = args.episodes * 50
    print(
        f"{args.source} on watermaze: {args.learners} training tasks x {args.episodes} episodes ({steps} steps), "
        f"{torch.get_num_threads()} torch threads"
    )
    if args.source == "privq":
        print(f"config: {dataclasses.replace(SourceConfig().privq, tiebreak=args.tiebreak)}")
    returns, actions, blind_sps = learning_curve(args, family, tasks)
    tenth = args.episodes // 10
    blocks = returns[:, : 10 * tenth].reshape(len(tasks), 10, tenth).mean(axis=(0, 2))  # (10,)
    print("mean return per tenth of the history:")
    for k, b in enumerate(blocks):
        print(f"  episodes {k * tenth + 1:>5}-{(k + 1) * tenth:<5} {b:.3f}")
    random, optimal = family.random_return(tasks).mean(), family.optimal_return(tasks).mean()
    print(f"first 10%: {blocks[0]:.3f}  last 10%: {blocks[-1]:.3f}  (random {random:.3f}, optimal {optimal:.3f})")
    print(f"first 10 episodes: {returns[:, :10].mean():.3f}")
    last = returns[:, -tenth:].mean(axis=1)  # (N,)
    print(f"learners with a last-10% return under 0.5: {(last < 0.5).sum()} of {len(tasks)}")
    # what AD can read from its context: how often an episode repeats the actions of one 20 episodes before
    for e in (args.episodes // 2, args.episodes * 4 // 5, args.episodes - 1):
        if e < 20:  # a history too short to compare with 20 episodes before
            continue
        same = (actions[:, e] == actions[:, e - 20]).mean()
        print(f"actions of episode {e + 1} equal to those of episode {e - 19}: {same:.0%}")
    if args.source == "dqn":
        print(f"config: {args.dqn}")
        print(f"env steps/s, frames drawn at {args.env} (the learning included): {blind_sps:,.0f}")
        return
    print(f"env steps/s, no frames drawn: {blind_sps:,.0f}")
    print(f"env steps/s, rollout at {args.env} (frames drawn): {rendered_steps_per_second(args, tasks):,.0f}")


if __name__ == "__main__":
    main(tyro.cli(Args))
