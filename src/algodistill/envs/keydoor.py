"""Dark Key-to-Door, batched over tasks (paper Sec. 4.1, App. C).

A 9x9 dark room with an invisible key and an invisible door. The agent starts in a random cell each
episode, gets +1 the first time it steps onto the key, then +1 the first time it steps onto the door
while holding the key (at most 2 per episode). Episodes last a fixed 50 steps and do not end at the
door (paper Fig. 15: "each episode has a length of 50 steps").

A task is a (key, door) pair of cells: task index i has key = i // 81 and door = i % 81 (6561 tasks).
Rewards come after a step: standing on the key at reset gives nothing until a step (a no-op will do)
ends there; when key and door share a cell, the door needs one more step after the key.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from algodistill import rng
from algodistill.envs import grid
from algodistill.envs.base import TaskFamily, split_by_permutation
from algodistill.envs.spec import EnvSpec
from algodistill.rng import Stream


class KeyToDoorEnv:
    """N Key-to-Door tasks stepped together; all arrays carry a leading task axis."""

    def __init__(self, family: KeyToDoorFamily, task_ids: np.ndarray, seed: int = 0, ids: np.ndarray | None = None):
        self.family = family
        self.spec = family.spec
        self.task_ids = family.check_task_ids(task_ids)
        self.num_envs = n = len(self.task_ids)
        S = family.size * family.size
        self.key = self.task_ids // S  # (N,)
        self.door = self.task_ids % S  # (N,)
        self._keys = rng.learner_keys(seed, np.arange(n) if ids is None else np.asarray(ids))
        self._next = family.next_cell
        self._xy = family.xy
        self.cell = np.zeros(n, dtype=np.int64)  # (N,)
        self.phase = np.zeros(n, dtype=np.int64)  # (N,) 0: looking for the key, 1: has it, 2: door opened
        self.num_learner_states = family.num_learner_states
        self.episode = 0
        self.t = -1

    def reset(self) -> np.ndarray:
        """Start a new episode in a random cell of every task (random reset, paper App. C). (N, 2) uint8"""
        self.cell = rng.integers(self._keys, self.episode, self.family.size**2, stream=Stream.KEYDOOR_START)
        self.phase[:] = 0
        self.episode += 1
        self.t = 0
        return self._xy[self.cell]

    def step(self, a_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply a_t (N,); return o_tp1 (N, 2) uint8, r_t (N,) float32, done_t (N,) bool."""
        if self.t < 0 or self.t >= self.spec.episode_length:
            raise RuntimeError("episode is over (or never started): call reset() before step()")
        a_t = self.family.check_actions(a_t, self.num_envs)
        self.cell = self._next[self.cell, a_t]  # (N,)
        # Key first: reaching the key and the door happen on different steps even when they share a cell.
        got_key = (self.phase == 0) & (self.cell == self.key)  # (N,)
        opened = (self.phase == 1) & (self.cell == self.door)  # (N,)
        self.phase += got_key | opened
        self.t += 1
        done_t = np.full(self.num_envs, self.t == self.spec.episode_length)
        return self._xy[self.cell], (got_key | opened).astype(np.float32), done_t

    def learner_state(self) -> np.ndarray:
        """The phase the (x, y) observation hides: 0 looking for the key, 1 holding it, 2 door opened. (N,) int64"""
        return self.phase.copy()

    def expert_action(self) -> np.ndarray:
        """The optimal policy's action: to the key, then to the door, then stay. (N,)"""
        target = np.where(self.phase == 0, self.key, np.where(self.phase == 1, self.door, self.cell))
        return grid.greedy_action(self.family.size, self.cell, target)


class KeyToDoorFamily(TaskFamily):
    """The task family: spec, task list, split and reference returns."""

    num_learner_states = 3  # the phase: looking for the key, holding it, door opened

    def __init__(self, size: int = 9, episode_length: int = 50, num_train: int = 2000):
        self.size = size
        self.next_cell = grid.next_cell_table(size)
        self.xy = grid.cell_xy(size)
        S = size * size
        self.spec = EnvSpec(
            name="keydoor",
            gym_id="algodistill/KeyToDoor-v0",
            obs_shape=(2,),
            obs_dtype="uint8",
            obs_high=(size, size),
            num_actions=grid.NUM_ACTIONS,
            episode_length=episode_length,
            num_tasks=S * S,
            description=f"{size}x{size} dark room, random start, +1 for an invisible key, then +1 for the door",
        )
        # Paper Sec. 4.1: "<2k of ~6.5k tasks seen in training"; we train on 2000 and test on the rest.
        self._splits = split_by_permutation("keydoor", S * S, S * S - num_train)

    def make(self, task_ids: np.ndarray, seed: int = 0, ids: np.ndarray | None = None) -> KeyToDoorEnv:
        return KeyToDoorEnv(self, np.asarray(task_ids), seed, ids)

    def describe_task(self, task: int) -> str:
        (kx, ky), (dx, dy) = self.xy[task // self.size**2], self.xy[task % self.size**2]
        return f"key ({kx}, {ky}), door ({dx}, {dy})"

    def split(self, name: str) -> np.ndarray:
        return self._checked_split(self._splits, name)

    def optimal_return(self, task_ids: np.ndarray) -> np.ndarray:
        """Expected over the uniform start cell: key after max(d(s, k), 1) steps, door max(d(k, d), 1) later."""
        t = self.check_task_ids(task_ids)
        S = self.size * self.size
        key, door = t // S, t % S
        starts = np.arange(S)[None, :]  # (1, S)
        t_key = np.maximum(grid.manhattan(self.size, starts, key[:, None]), 1)  # (n, S)
        t_door = t_key + np.maximum(grid.manhattan(self.size, key, door), 1)[:, None]  # (n, S)
        H = self.spec.episode_length
        return ((t_key <= H).astype(np.float64) + (t_door <= H)).mean(axis=1)

    def random_return(self, task_ids: np.ndarray) -> np.ndarray:
        return self._random_returns[self.check_task_ids(task_ids)]

    @cached_property
    def _random_returns(self) -> np.ndarray:
        """Exact expected return of the uniform-random policy for every task, by propagating the
        distribution over (cell, phase) for all tasks at once (no sampling). (num_tasks,)"""
        P = grid.random_walk_matrix(self.size)  # (S, S)
        S = self.size * self.size
        t = np.arange(self.spec.num_tasks)
        key, door = t // S, t % S
        p0 = np.full((len(t), S), 1.0 / S)  # mass still looking for the key
        p1 = np.zeros((len(t), S))  # mass holding the key
        total = np.zeros(len(t))
        for _ in range(self.spec.episode_length):
            p1 = p1 @ P
            p0 = p0 @ P
            opened = p1[t, door]
            p1[t, door] = 0.0  # the door is rewarded once; that mass earns nothing more
            got = p0[t, key]
            p0[t, key] = 0.0
            p1[t, key] += got
            total += opened + got
        return total
