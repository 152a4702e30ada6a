"""What every task family provides, and the input checks they share."""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import numpy as np

from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.rng import np_rng

if TYPE_CHECKING:  # for types only: the envs run without importing torch
    import torch

Frames = TypeVar("Frames", np.ndarray, "torch.Tensor")
"""A stored form and the observations drawn from it: numpy arrays, or torch tensors on any device."""

SPLIT_SEED = 2210_14215
"""Seed of the fixed permutations that define the train/test splits (the paper's arXiv number)."""


class BatchedEnv(Protocol):
    """N tasks stepped together. Episodes have a fixed length, so `done_t` is all-True or all-False;
    after a done step the caller resets explicitly: there is no hidden reset step."""

    spec: EnvSpec
    num_envs: int
    task_ids: np.ndarray

    def reset(self) -> np.ndarray: ...

    def step(self, a_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def expert_action(self) -> np.ndarray: ...


@runtime_checkable
class StoresObs(Protocol):
    """A batched env whose spec has a stored form (`EnvSpec.stored_shape`): what a dataset records of the
    current observation, from which `TaskFamily.decode_obs` redraws it exactly."""

    draw: bool
    """False: reset and step return the stored form instead of drawing the observation, for a caller
    that never looks at it (generation with a source that reads the env's state, not its frames)."""

    def stored_obs(self) -> np.ndarray:
        """The stored form of every task's current observation. (N, *stored_shape)"""
        ...


@runtime_checkable
class HidesState(Protocol):
    """A batched env whose observation hides part of the state that optimal behaviour depends on (the
    Key-to-Door phase, the Hard room's "goal already reached"). `learner_state` tells a source's own
    learner what the observation hides; it is never recorded, so the data keeps the paper's observation."""

    num_learner_states: int

    def learner_state(self) -> np.ndarray:
        """The hidden part of every task's state, in [0, num_learner_states). (N,) int64"""
        ...


@runtime_checkable
class PrivilegedState(Protocol):
    """A batched env that can tell a source's own learner a discrete state of every task (e.g. Watermaze's
    position cell, heading and "platform reached"), for a tabular learner where the observation is not a
    table index (pixels). It is never recorded: the data keeps the env's observation, so AD must still
    infer the state from what the agent sees."""

    num_privileged_states: int

    def privileged_state(self) -> np.ndarray:
        """A discrete state of every task, in [0, num_privileged_states); read it right after a reset or step.
        (N,) int64"""
        ...


def _one_line(value: object, limit: int = 60) -> str:
    """repr(value) on one line, shortened: error messages must stay one line even for big arrays."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TaskFamily(ABC):
    """A task family: its spec, its task list and split, reference returns, and batched envs."""

    spec: EnvSpec
    num_learner_states: int = 1
    """How many values the hidden learner state of its envs takes (`HidesState`); 1: the observation
    hides nothing a learner needs (the bandit, plain Dark Room)."""
    num_privileged_states: int = 0
    """How many values the privileged state of its envs takes (`PrivilegedState`); 0: its envs have none.
    The source registry reads it to decide which sources fit the family."""
    stay_action: int | None = None
    """An action that leaves the agent where it is, in a family whose dynamics are deterministic and whose
    episodes all start in the same state (Dark Room's no-op, Watermaze's rotation in place); None where
    either fails. The `replay` source needs it: repeating a rewarded episode is then rewarded again."""

    @abstractmethod
    def make(self, task_ids: np.ndarray, seed: int = 0, ids: np.ndarray | None = None) -> BatchedEnv:
        """A batched env over `task_ids`; `ids` are the streams' global indices for randomness."""

    @abstractmethod
    def split(self, name: str) -> np.ndarray:
        """Task ids of a split ("train", "test", ...): sorted, disjoint, deterministic."""

    @abstractmethod
    def optimal_return(self, task_ids: np.ndarray) -> np.ndarray:
        """Expected episode return of the optimal policy on each task. (n,) float64"""

    @abstractmethod
    def random_return(self, task_ids: np.ndarray) -> np.ndarray:
        """Expected episode return of the uniform-random policy on each task. (n,) float64"""

    @property
    def split_names(self) -> tuple[str, ...]:
        return ("train", "test")

    def describe_task(self, task: int) -> str:
        """A task in words, for reports (e.g. "goal (2, 7)")."""
        return f"task {task}"

    def optimal_action(self, task_ids: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """An optimal action of each task at each observation, for methods that learn from it (DPT):
        task_ids (B,), obs (B, T, *obs_shape) -> (B, T) int64. Only where the observation determines it."""
        raise UserError(
            f"{self.spec.name} gives no optimal action for an observation (what is optimal depends on state "
            "the observation hides, or is not computed): DPT runs on darkroom and darkroom-hard"
        )

    def frame_strip(self, task: int) -> list[tuple[str, np.ndarray]]:
        """A few captioned observations of an image family's task for reports (the expert from the start),
        so that a reader sees the task; [] for families whose observations are not images."""
        return []

    def decode_obs(self, stored: Frames) -> Frames:
        """Observations redrawn from their stored form (`EnvSpec.stored_shape`), exactly as the env showed
        them: (..., *stored_shape) -> (..., *obs_shape). Only for families that declare a stored form. A
        torch tensor gives a tensor on its device."""
        raise NotImplementedError(f"{self.spec.name} stores its observations as they are: there is nothing to decode")

    @property
    def conditions(self) -> dict[str, str]:
        """The test conditions a run reports, name -> split; the report's main curves are the "test" split's."""
        return {"test": "test"}

    def check_task_ids(self, task_ids: np.ndarray) -> np.ndarray:
        """Task ids as int64, or a UserError naming the bad value and the allowed range."""
        t = np.asarray(task_ids)
        n = self.spec.num_tasks
        if t.ndim != 1 or (t.size and not np.issubdtype(t.dtype, np.integer)):
            raise UserError(f"task ids for {self.spec.name} must be a 1-D integer array, got {_one_line(task_ids)}")
        bad = t[(t < 0) | (t >= n)]
        if bad.size:
            raise UserError(f"task={int(bad[0])} is out of range for {self.spec.name}: choose an integer in [0, {n})")
        return t.astype(np.int64)

    def check_actions(self, a_t: np.ndarray, n: int) -> np.ndarray:
        """Actions as an int array of shape (n,), or a UserError naming the value and the allowed range."""
        a = np.asarray(a_t)
        A = self.spec.num_actions
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            shown = _one_line(a_t)
            raise UserError(f"action={shown} is malformed for {self.spec.name}: pass {n} integer(s) in [0, {A})")
        if n and (a.min() < 0 or a.max() >= A):
            bad = a[(a < 0) | (a >= A)][0]
            raise UserError(f"action={int(bad)} is out of range for {self.spec.name}: choose an integer in [0, {A})")
        return a

    def _checked_split(self, splits: dict[str, np.ndarray], name: str) -> np.ndarray:
        if name not in splits:
            raise UserError(f"split={name!r} is unknown for {self.spec.name}: choose one of {sorted(splits)}")
        return splits[name]


def split_by_permutation(
    family: str, num_tasks: int, num_test: int, train_only: tuple[int, ...] = ()
) -> dict[str, np.ndarray]:
    """Hold out `num_test` tasks chosen by a permutation fixed by (SPLIT_SEED, family name); the tasks
    in `train_only` are never held out (they move to the end of the permutation, the rest keep their order)."""
    perm = np_rng(SPLIT_SEED, zlib.crc32(family.encode())).permutation(num_tasks)
    last = np.isin(perm, train_only)
    perm = np.concatenate([perm[~last], perm[last]])
    return {"train": np.sort(perm[num_test:]), "test": np.sort(perm[:num_test])}
