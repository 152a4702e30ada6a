"""The adversarial bandit, batched over tasks (paper Sec. 4.1, Fig. 3).

10 arms; each trial is one pull, i.e. an episode of length 1, and a task is played for 100 trials.
There is no observation: the agent sees a constant 0 (paper: "none, or a constant").

The paper says only that in training "reward is more likely distributed under odd arms 95% of the
time", and tests on even arms (out of distribution) and on a uniform condition; it leaves the payout
distribution open (docs/fidelity.md). Our documented choice, Bernoulli arms:

- a task first draws its favoured parity: odd with probability 0.95 for training tasks and for the
  `test_odd` split (fresh draws of the training distribution, the paper's "odd" condition), even for
  the `test` split (the paper's "even" condition);
- arms of the favoured parity pay with probability p ~ U(0.5, 1), the other arms with p ~ U(0, 0.5);
- the `test_uniform` split draws every arm's p ~ U(0, 1).

The family's task list is a fixed bank drawn from these samplers with a fixed seed: 10,000 training
tasks, then 1,000 `test` (even) tasks, 1,000 `test_uniform` tasks and 1,000 `test_odd` tasks (drawn
last, so the earlier tasks keep their ids and payouts). A run reports all three conditions (Fig. 3).
"""

from __future__ import annotations

import numpy as np

from algodistill import rng
from algodistill.envs.base import SPLIT_SEED, TaskFamily
from algodistill.envs.spec import EnvSpec
from algodistill.rng import Stream


def sample_arm_probs(g: np.random.Generator, n: int, num_arms: int, condition: str) -> np.ndarray:
    """n tasks' arm payout probabilities under a condition: "odd", "even" or "uniform". (n, num_arms)"""
    if condition == "uniform":
        return g.uniform(0.0, 1.0, (n, num_arms))
    favoured = 1 if condition == "odd" else 0
    parity = np.where(g.uniform(size=(n, 1)) < 0.95, favoured, 1 - favoured)  # (n, 1)
    high = (np.arange(num_arms)[None, :] % 2) == parity  # (n, A)
    return np.where(high, g.uniform(0.5, 1.0, (n, num_arms)), g.uniform(0.0, 0.5, (n, num_arms)))


class BanditEnv:
    """N bandit tasks pulled together; every step is a whole (one-trial) episode."""

    def __init__(self, family: BanditFamily, task_ids: np.ndarray, seed: int = 0, ids: np.ndarray | None = None):
        self.family = family
        self.spec = family.spec
        self.task_ids = family.check_task_ids(task_ids)
        self.num_envs = n = len(self.task_ids)
        self.probs = family.probs[self.task_ids]  # (N, A)
        self._keys = rng.learner_keys(seed, np.arange(n) if ids is None else np.asarray(ids))
        self._obs = np.zeros((n, 1), dtype=np.uint8)
        self.trial = 0
        self.t = -1

    def reset(self) -> np.ndarray:
        """Start the next trial. (N, 1) uint8, always 0"""
        self.t = 0
        return self._obs.copy()

    def step(self, a_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pull arm a_t (N,); return o_tp1 (N, 1), r_t (N,) float32 in {0, 1}, done_t (N,) all True."""
        if self.t != 0:
            raise RuntimeError("episode is over (or never started): call reset() before step()")
        a_t = self.family.check_actions(a_t, self.num_envs)
        u = rng.uniform(self._keys, self.trial, stream=Stream.BANDIT_PAYOUT)  # (N,)
        r_t = (u < self.probs[np.arange(self.num_envs), a_t]).astype(np.float32)
        self.trial += 1
        self.t = 1
        return self._obs.copy(), r_t, np.ones(self.num_envs, dtype=bool)

    def expert_action(self) -> np.ndarray:
        """The best arm. (N,)"""
        return self.probs.argmax(axis=1)


class BanditFamily(TaskFamily):
    """The task family: spec, the fixed task bank, splits and reference returns."""

    def __init__(self, num_arms: int = 10, num_train: int = 10_000, num_test: int = 1_000):
        g = np.random.default_rng(SPLIT_SEED)
        self.probs = np.concatenate(
            [
                sample_arm_probs(g, num_train, num_arms, "odd"),
                sample_arm_probs(g, num_test, num_arms, "even"),
                sample_arm_probs(g, num_test, num_arms, "uniform"),
                sample_arm_probs(g, num_test, num_arms, "odd"),
            ]
        )  # (num_tasks, A)
        ids = np.arange(len(self.probs))
        self._splits = {
            "train": ids[:num_train],
            "test": ids[num_train : num_train + num_test],
            "test_uniform": ids[num_train + num_test : num_train + 2 * num_test],
            "test_odd": ids[num_train + 2 * num_test :],
        }
        self.spec = EnvSpec(
            name="bandit",
            gym_id="algodistill/Bandit-v0",
            obs_shape=(1,),
            obs_dtype="uint8",
            obs_high=(1,),
            num_actions=num_arms,
            episode_length=1,
            num_tasks=len(self.probs),
            description=f"{num_arms}-armed Bernoulli bandit, 100 trials; train favours odd arms, test even arms",
        )
        self.trials_per_task = 100

    @property
    def split_names(self) -> tuple[str, ...]:
        return ("train", "test", "test_uniform", "test_odd")

    @property
    def conditions(self) -> dict[str, str]:
        return {"odd": "test_odd", "even": "test", "uniform": "test_uniform"}  # paper Fig. 3

    def make(self, task_ids: np.ndarray, seed: int = 0, ids: np.ndarray | None = None) -> BanditEnv:
        return BanditEnv(self, np.asarray(task_ids), seed, ids)

    def split(self, name: str) -> np.ndarray:
        return self._checked_split(self._splits, name)

    def optimal_return(self, task_ids: np.ndarray) -> np.ndarray:
        return self.probs[self.check_task_ids(task_ids)].max(axis=1)

    def random_return(self, task_ids: np.ndarray) -> np.ndarray:
        return self.probs[self.check_task_ids(task_ids)].mean(axis=1)
