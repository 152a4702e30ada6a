"""EnvSpec: what the rest of the library needs to know about a task family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a task family (paper Sec. 4.1)."""

    name: str
    """CLI name, e.g. "darkroom"."""
    gym_id: str
    """Gymnasium id of the single-task env, e.g. "algodistill/DarkRoom-v0"."""
    obs_dim: int
    """Length of the integer observation vector (2 for (x, y); 1 for the bandit's constant)."""
    obs_high: tuple[int, ...]
    """Exclusive upper bound of each observation component (its vocabulary size)."""
    num_actions: int
    """Number of discrete actions."""
    episode_length: int
    """Fixed number of steps per episode (H); no early termination."""
    num_tasks: int
    """Size of the family's task list (the bandit's is a fixed bank of sampled tasks)."""
    description: str
    """One line for `algodistill envs`."""
