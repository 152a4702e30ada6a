"""Data-only sources that need no learning: the AD^eps noise curriculum, the expert and the random policy.

- `noise`: AD^eps (Zisman et al., arXiv 2312.12275, `corl-team/ad-eps:dark_room/generate_trajectories.py`):
  the env's optimal action taken epsilon-greedily, with epsilon annealed linearly per step from 1 to
  `eps_final` over the first `anneal_fraction` of the history, then held. The histories look like
  learning progress (random walk -> optimal) at the cost of a table lookup, so they are the fast source.
  AD^eps anneals to 1 - max_perf = 0 over 90% of the history; those are our defaults.
- `expert`: the optimal policy, epsilon 0 throughout (the data of the paper's ED baseline, App. B).
- `random`: uniform actions throughout (epsilon 1).

An exploring step takes a uniform action over all A actions, which may be the expert's (as in AD^eps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algodistill import rng
from algodistill.envs import BatchedEnv
from algodistill.errors import UserError
from algodistill.rng import Stream
from algodistill.sources.common import linear_epsilon


@dataclass(frozen=True)
class NoiseConfig:
    """AD^eps noise curriculum (Zisman et al. 2023): expert actions, epsilon-greedy, epsilon annealed."""

    eps_final: float = 0.0
    """epsilon at the end of the annealing (AD^eps: 1 - max_perf = 0)"""
    anneal_fraction: float = 0.9
    """fraction of the history over which epsilon falls linearly from 1 to eps_final (AD^eps: 0.9)"""

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps_final <= 1.0:
            raise UserError(f"noise.eps_final={self.eps_final} is out of range: choose a probability in [0, 1]")
        if not 0.0 < self.anneal_fraction <= 1.0:
            raise UserError(f"noise.anneal_fraction={self.anneal_fraction} is out of range: choose a value in (0, 1]")


class EpsilonExpert:
    """N learners acting epsilon-greedily around the env's expert action; epsilon follows a linear schedule.

    With eps_start = eps_final = 0 this is the expert, with 1 and 1 the uniform-random policy.
    """

    reads_obs = False  # it acts on the env's expert action and its own coins

    def __init__(
        self, env: BatchedEnv, keys: np.ndarray, total_steps: int, eps_start: float, eps_final: float, fraction: float
    ):
        self.env = env
        self.keys = keys  # (N,) uint64
        self.num_actions = env.spec.num_actions
        self.total_steps = total_steps
        self.eps_start, self.eps_final, self.fraction = eps_start, eps_final, fraction
        self.t = 0  # steps taken by every learner so far (the counter of its random draws)

    def epsilon(self, t: int) -> float:
        """Probability of a uniform action at step t."""
        return linear_epsilon(t, self.total_steps, self.eps_start, self.eps_final, self.fraction)

    def act(self, o_t: np.ndarray) -> np.ndarray:
        eps = self.epsilon(self.t)
        if eps >= 1.0:
            return rng.integers(self.keys, self.t, self.num_actions, stream=Stream.ACTION)
        a_star = np.asarray(self.env.expert_action(), dtype=np.int64)  # (N,)
        if eps <= 0.0:
            return a_star
        explore = rng.uniform(self.keys, self.t, stream=Stream.EXPLORE) < eps  # (N,)
        a_rand = rng.integers(self.keys, self.t, self.num_actions, stream=Stream.ACTION)  # (N,)
        return np.where(explore, a_rand, a_star)

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        self.t += 1  # nothing to learn: the schedule is the "learning progress"
