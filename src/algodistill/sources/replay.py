"""Search, then replay: an episodic-memory learner for deterministic envs with a fixed start, batched.

Each learner acts uniformly at random until an episode pays; from the next episode on it repeats that
episode's actions up to the rewarded step and then takes the family's stay action (`TaskFamily.stay_action`)
for the rest of the episode. Where the dynamics are deterministic and every episode starts in the same
state (Watermaze, Dark Room), the replay reaches the reward again in every later episode, so a learner's
history jumps from the random return to that of its rewarded episode as soon as it finds the reward: on
Watermaze, where the platform pays once, that is the optimum; on Dark Room it is the steps left after the
walk that found the goal.

Not one of the paper's sources (Watermaze's is a pixel DQN, Table 5; docs/fidelity.md). Ours: its histories
show in the very next episode what a reward changed, where privq's converged learners act at random once
the platform has paid (most of their steps carry nothing to predict) and the `noise` curriculum improves on
a schedule, not in response to rewards. In development runs on seed 0 with the agent's pose given to AD in
place of pixels, AD learned in context from replay's histories and from neither of the others; from
Watermaze's pixels it has not yet (RESULTS.md, Watermaze).
The learner reads only its rewards, never the env's state; it knows the step within the episode from its
own step count, since a history starts with an episode and the family's episodes have a fixed length.
"""

from __future__ import annotations

import numpy as np

from algodistill import rng
from algodistill.envs import BatchedEnv, get_family
from algodistill.rng import Stream


class Replay:
    """N learners: uniform actions until rewarded, then the rewarded episode's prefix, then stay."""

    reads_obs = False  # acts on its memory and its own coins: generation need not draw the frames

    def __init__(self, env: BatchedEnv, keys: np.ndarray):
        stay = get_family(env.spec.name).stay_action
        assert stay is not None  # the registry: only families with a stay action
        self.keys = keys  # (N,) uint64
        self.stay = stay
        self.num_actions = env.spec.num_actions
        n, self.H = env.num_envs, env.spec.episode_length
        self.found = np.zeros(n, dtype=bool)  # (N,) an episode has paid: replay it
        self.plan = np.zeros((n, self.H), dtype=np.int64)  # (N, H) that episode's actions
        self.plan_len = np.zeros(n, dtype=np.int64)  # (N,) steps up to and including its first reward
        self.episode = np.zeros((n, self.H), dtype=np.int64)  # (N, H) actions of the episode under way
        self.paid = np.zeros(n, dtype=bool)  # (N,) the episode under way has paid
        self.t = 0  # steps since the start of the history: the counter of the random draws

    def act(self, o_t: np.ndarray) -> np.ndarray:
        k = self.t % self.H  # step within the episode: histories start with one, and episodes have length H
        a_rand = rng.integers(self.keys, self.t, self.num_actions, stream=Stream.ACTION)  # (N,)
        a_plan = np.where(self.found & (k < self.plan_len), self.plan[:, k], a_rand)  # (N,)
        return np.where(self.paid, self.stay, a_plan).astype(np.int64)

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        k = self.t % self.H
        self.episode[:, k] = a_t
        first = (r_t > 0) & ~self.paid  # (N,) the episode's first reward
        new = first & ~self.found  # (N,) and the learner's first rewarded episode: remember it
        self.plan[new] = self.episode[new]
        self.plan_len[new] = k + 1
        self.found |= new
        self.paid |= first
        self.t += 1
        if k == self.H - 1:  # the episode ends (done_t, at the family's fixed length, for every learner)
            self.paid[:] = False
