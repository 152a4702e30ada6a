"""Tabular epsilon-greedy Q-learning over the env's privileged state, batched over learners.

For envs whose observation is not a table index (Watermaze's pixels), this learner indexes its table
Q[N, S, A] by a discrete state the env gives its sources (`envs.base.PrivilegedState`; Watermaze: the
position's cell in a grid of 11 x 11 cells of side 0.19, its heading (12) and whether the platform
paid this episode: 2904 states, `envs/watermaze.py`).
What `rollout` records is still the env's observation, so AD must read the state from what the agent
sees. Otherwise it is `qlearning`: one-step targets, epsilon annealed linearly, hashed uniforms for the
epsilon coin and tie-breaks, and the last step of an episode bootstraps (episodes end by a time limit).

The paper's Watermaze source is distributed DQN(Q-lambda) from pixels (Table 5): thousands of such
histories are out of reach on a CPU, so this is our replacement (docs/fidelity.md, Watermaze).

Hyperparameters (`PrivQConfig`), our choice, tuned on Watermaze for 1000-episode histories:
- lr 0.5: lr 1 rises more slowly and ends at 0.99 (a grid cell holds positions whose moves lead to
  different cells, so a transition is not deterministic in the table's terms);
- gamma 0.9, as the paper's DQN (Table 5);
- epsilon 1 -> 0 over the first 70% of the history: over 50% the rise is steeper but 1% of the learners
  end below 0.5 (mean 0.99);
- Q starts at 0, ties broken at random: optimism (init_q 1) explores the table for longer, ends at 0.96.

Measured with the defaults (benchmarks/watermaze_source.py; 900 training tasks, 1000 episodes of 50
steps, seed 0), mean return per tenth of the history: 0.18 0.35 0.62 0.84 0.95 0.99 1.00 1.00 1.00
1.00 (random 0.15, optimal 1); every learner above 0.5 over its last 100 episodes. The epsilon schedule
is relative to the history length, but the table needs visits: 500-episode histories end at 0.96 (5% of
the learners below 0.5), 200-episode ones at 0.79 (22%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from algodistill import rng
from algodistill.envs import BatchedEnv
from algodistill.envs.base import PrivilegedState
from algodistill.errors import UserError
from algodistill.rng import Stream
from algodistill.sources.common import argmax_tiebreak, linear_epsilon
from algodistill.sources.qlearning import q_target


@dataclass(frozen=True)
class PrivQConfig:
    """Tabular epsilon-greedy Q-learning over the env's privileged state. Defaults are our choice, tuned so
    that Watermaze learners go from near the random return to near 1 within 1000 episodes (50k steps; the
    module docstring has the measured curve)."""

    lr: float = 0.5
    """TD step size alpha (below 1: a coarse state's transitions vary with the position inside its cell)"""
    gamma: float = 0.9
    """discount (the paper's DQN on Watermaze: 0.9, Table 5)"""
    eps_start: float = 1.0
    """epsilon at the first step (uniform-random behaviour, so histories start at the random return)"""
    eps_final: float = 0.0
    """epsilon after the annealing, held to the end of the history"""
    anneal_fraction: float = 0.7
    """fraction of the history (total_steps) over which epsilon falls linearly to eps_final"""
    init_q: float = 0.0
    """initial value of every Q entry (0: no optimism; ties are broken at random)"""
    tiebreak: Literal["step", "state"] = "step"
    """how ties between equal values are broken: "step" draws afresh at every step (as qlearning); "state"
    draws once per (learner, state), so a learner acts alike in a state until its values there differ (on
    Watermaze, once the platform has paid every value ties: a converged learner then repeats its last
    episode instead of acting at random, and AD can read that from its context)"""

    def __post_init__(self) -> None:
        if not self.lr > 0.0 or self.lr > 1.0:
            raise UserError(f"privq.lr={self.lr} is out of range: choose a step size in (0, 1]")
        if not 0.0 <= self.gamma < 1.0:
            raise UserError(f"privq.gamma={self.gamma} is out of range: choose a discount in [0, 1)")
        for name in ("eps_start", "eps_final"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UserError(f"privq.{name}={v} is out of range: choose a probability in [0, 1]")
        if not 0.0 < self.anneal_fraction <= 1.0:
            v = self.anneal_fraction
            raise UserError(f"privq.anneal_fraction={v} is out of range: choose a value in (0, 1]")
        if self.tiebreak not in ("step", "state"):
            raise UserError(f"privq.tiebreak={self.tiebreak!r} is unknown: choose step or state")
        if not 0.0 <= self.init_q < math.inf:  # NaN fails too
            raise UserError(f"privq.init_q={self.init_q} is out of range: choose a finite initial value >= 0")


class PrivQ:
    """N independent tabular Q-learners, one task each, over the env's privileged state."""

    reads_obs = False  # the state is the env's: generation need not draw the frames

    def __init__(self, env: BatchedEnv, keys: np.ndarray, total_steps: int, cfg: PrivQConfig):
        assert isinstance(env, PrivilegedState)  # the registry: only envs with a privileged state
        self.env = env  # asked for the state after every reset and step
        self.cfg = cfg
        self.keys = keys  # (N,) uint64
        self.total_steps = total_steps
        self.num_actions = env.spec.num_actions
        n, S = env.num_envs, env.num_privileged_states
        self.q = np.full((n, S, self.num_actions), cfg.init_q, dtype=np.float64)  # (N, S, A)
        self.rows = np.arange(n)
        self.s_t = np.zeros(n, dtype=np.int64)  # (N,) the state `act` saw, for `update`
        self.t = 0

    def epsilon(self, t: int) -> float:
        c = self.cfg
        return linear_epsilon(t, self.total_steps, c.eps_start, c.eps_final, c.anneal_fraction)

    def act(self, o_t: np.ndarray) -> np.ndarray:
        # o_t is not read: the state is the env's, and it changes with the step, so keep it for `update`.
        self.s_t = self.env.privileged_state()  # (N,)
        if self.cfg.tiebreak == "state":
            u = rng.uniform_each(self.keys, self.s_t, Stream.TIEBREAK)  # (N,) the same in a state at every step
        else:
            u = rng.uniform(self.keys, self.t, Stream.TIEBREAK)  # (N,)
        greedy = argmax_tiebreak(self.q[self.rows, self.s_t], u)  # (N,)
        explore = rng.uniform(self.keys, self.t, Stream.EXPLORE) < self.epsilon(self.t)  # (N,)
        a_rand = rng.integers(self.keys, self.t, self.num_actions, stream=Stream.ACTION)  # (N,)
        return np.where(explore, a_rand, greedy)

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        """Learn from the step `act` chose; reads the env's state, so call it right after env.step."""
        s_t, s_tp1 = self.s_t, self.env.privileged_state()  # (N,), (N,)
        target = q_target(r_t.astype(np.float64), self.q[self.rows, s_tp1], self.cfg.gamma)  # (N,)
        q_sa = self.q[self.rows, s_t, a_t]  # (N,)
        self.q[self.rows, s_t, a_t] = q_sa + self.cfg.lr * (target - q_sa)
        self.t += 1
