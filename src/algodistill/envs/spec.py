"""EnvSpec: what the rest of the library needs to know about a task family, observations included."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a task family (paper Sec. 4.1).

    Observations come in two kinds, and every consumer (sources, dataset, encoders) reads which from
    here rather than from the family's name: a vector of categories (`obs_high` given: a grid cell's
    (x, y), the bandit's constant), or an array without a vocabulary (`obs_high` None: an RGB image).
    """

    name: str
    """CLI name, e.g. "darkroom"."""
    gym_id: str
    """Gymnasium id of the single-task env, e.g. "algodistill/DarkRoom-v0"."""
    obs_shape: tuple[int, ...]
    """Shape of one observation: (2,) for (x, y), (1,) for the bandit's constant, (H, W, 3) for an image."""
    obs_dtype: str
    """numpy dtype of observations, e.g. "uint8"."""
    obs_high: tuple[int, ...] | None
    """Categorical observations: the exclusive upper bound of each component (its vocabulary size);
    None for observations that are not a vector of categories (images)."""
    num_actions: int
    """Number of discrete actions."""
    episode_length: int
    """Fixed number of steps per episode (H); no early termination."""
    num_tasks: int
    """Size of the family's task list (the bandit's is a fixed bank of sampled tasks)."""
    description: str
    """One line for `algodistill envs`."""
    stored_shape: tuple[int, ...] | None = None
    """Datasets store each observation in this much smaller form (Watermaze: the agent's x, y and heading),
    from which the family redraws the observation exactly (`TaskFamily.decode_obs`); None: stored as seen."""
    stored_dtype: str = "float32"
    """numpy dtype of the stored form."""

    def __post_init__(self) -> None:
        if self.obs_high is not None and len(self.obs_high) != math.prod(self.obs_shape):
            raise ValueError(f"{self.name}: obs_high {self.obs_high} needs one bound per component of {self.obs_shape}")

    @property
    def num_states(self) -> int | None:
        """Number of distinct observations of a categorical observation (a tabular state space), else None."""
        return math.prod(self.obs_high) if self.obs_high is not None else None

    def describe_obs(self) -> str:
        """The observation in a few words, e.g. "2 ints < (9, 9)" or "uint8 (72, 96, 3)"."""
        if self.obs_high is not None:
            return f"{len(self.obs_high)} ints < {self.obs_high}"
        return f"{self.obs_dtype} {self.obs_shape}"

    def record(self) -> dict[str, Any]:
        """The spec as JSON data, as dataset manifests and checkpoints store it.

        A flat vector of uint8 categories is written with the keys of dataset schema 1 (`obs_dim`,
        `obs_high`, in this order), so the data of the first release keeps its bytes; any other
        observation adds `obs_shape` and `obs_dtype`.
        """
        d: dict[str, Any] = {
            "name": self.name,
            "gym_id": self.gym_id,
            "obs_dim": math.prod(self.obs_shape),
            "obs_high": None if self.obs_high is None else list(self.obs_high),
            "num_actions": self.num_actions,
            "episode_length": self.episode_length,
            "num_tasks": self.num_tasks,
            "description": self.description,
        }
        if self.obs_high is None or len(self.obs_shape) != 1 or self.obs_dtype != "uint8":
            d |= {"obs_shape": list(self.obs_shape), "obs_dtype": self.obs_dtype}
        if self.stored_shape is not None:
            d |= {"stored_shape": list(self.stored_shape), "stored_dtype": self.stored_dtype}
        return d
