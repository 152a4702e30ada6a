"""Tabular Q-learning with epsilon-greedy exploration, batched over learners (Watkins & Dayan 1992).

One table Q[N, S, A] over the flat state index (the grid cell), one row of learners stepped by fancy
indexing, ~10M env-steps/s on 2 cores (benchmarks/generate.py measures it). Histories of this kind are the
Dark Room source of Headless-AD (`corl-team/headless-ad:src/gridworld/common/generate.py`: tabular
Q-learning, epsilon from 1 down linearly over 90% of the history).

Episodes end by a time limit, not in a terminal state, and the observation carries no time, so the
last step of an episode still bootstraps from max_a Q(o_tp1, a) (Pardo et al. 2018, "Time limits in
reinforcement learning"): the target of a state does not depend on when in the episode it was seen.

Hyperparameters (`QLearningConfig`): lr 0.5 and anneal_fraction 0.5 are our choice (Dark Room learners
reach the optimal return within ~10k of 20k steps); gamma 0.9 as in Headless-AD and AD^eps; epsilon
1 -> 0 over the first half of the history (Headless-AD: over 90%); Q starts at 0, argmax ties are
broken with hashed uniforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algodistill import rng
from algodistill.envs import BatchedEnv
from algodistill.errors import UserError
from algodistill.rng import Stream
from algodistill.sources.common import argmax_tiebreak, linear_epsilon, state_index, state_strides


@dataclass(frozen=True)
class QLearningConfig:
    """Tabular epsilon-greedy Q-learning. Defaults are our choice, tuned so that Dark Room learners reach
    the optimal return within ~1000 episodes (20k steps) while the early episodes stay near random."""

    lr: float = 0.5
    """TD step size alpha (deterministic envs, so a large step is safe; Headless-AD: 0.01 over longer runs)"""
    gamma: float = 0.9
    """discount (Headless-AD and AD^eps Q-learning: 0.9)"""
    eps_start: float = 1.0
    """epsilon at the first step (uniform-random behaviour, so histories start at the random return)"""
    eps_final: float = 0.0
    """epsilon after the annealing, held to the end of the history"""
    anneal_fraction: float = 0.5
    """fraction of the history (total_steps) over which epsilon falls linearly to eps_final"""
    init_q: float = 0.0
    """initial value of every Q entry (0: no optimism; ties are broken at random)"""

    def __post_init__(self) -> None:
        if not self.lr > 0.0 or self.lr > 1.0:
            raise UserError(f"qlearning.lr={self.lr} is out of range: choose a step size in (0, 1]")
        if not 0.0 <= self.gamma < 1.0:
            raise UserError(f"qlearning.gamma={self.gamma} is out of range: choose a discount in [0, 1)")
        for name in ("eps_start", "eps_final"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UserError(f"qlearning.{name}={v} is out of range: choose a probability in [0, 1]")
        if not 0.0 < self.anneal_fraction <= 1.0:
            v = self.anneal_fraction
            raise UserError(f"qlearning.anneal_fraction={v} is out of range: choose a value in (0, 1]")


def q_target(r_t: np.ndarray, q_tp1: np.ndarray, gamma: float) -> np.ndarray:
    """One-step Q-learning target r_t + gamma * max_a q_tp1[a] (no terminal states: see module docstring).

    Args: r_t (N,), q_tp1 (N, A). Returns (N,).
    """
    return r_t + gamma * q_tp1.max(axis=-1)


class QLearning:
    """N independent tabular Q-learners, one task each."""

    def __init__(self, env: BatchedEnv, keys: np.ndarray, total_steps: int, cfg: QLearningConfig):
        spec = env.spec
        self.cfg = cfg
        self.keys = keys  # (N,) uint64
        self.total_steps = total_steps
        self.num_actions = spec.num_actions
        assert spec.obs_high is not None and spec.num_states is not None  # the registry: categorical observations
        self.strides = state_strides(spec.obs_high)
        n, S = env.num_envs, spec.num_states
        self.q = np.full((n, S, spec.num_actions), cfg.init_q, dtype=np.float64)  # (N, S, A)
        self.rows = np.arange(n)
        self.t = 0

    def epsilon(self, t: int) -> float:
        c = self.cfg
        return linear_epsilon(t, self.total_steps, c.eps_start, c.eps_final, c.anneal_fraction)

    def act(self, o_t: np.ndarray) -> np.ndarray:
        s_t = state_index(o_t, self.strides)  # (N,)
        greedy = argmax_tiebreak(self.q[self.rows, s_t], rng.uniform(self.keys, self.t, Stream.TIEBREAK))  # (N,)
        explore = rng.uniform(self.keys, self.t, Stream.EXPLORE) < self.epsilon(self.t)  # (N,)
        a_rand = rng.integers(self.keys, self.t, self.num_actions, stream=Stream.ACTION)  # (N,)
        return np.where(explore, a_rand, greedy)

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        s_t = state_index(o_t, self.strides)  # (N,)
        s_tp1 = state_index(o_tp1, self.strides)  # (N,)
        target = q_target(r_t.astype(np.float64), self.q[self.rows, s_tp1], self.cfg.gamma)  # (N,)
        q_sa = self.q[self.rows, s_t, a_t]  # (N,)
        self.q[self.rows, s_t, a_t] = q_sa + self.cfg.lr * (target - q_sa)
        self.t += 1
