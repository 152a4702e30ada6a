"""Single-task Gymnasium envs built on the batched simulators (one task, N = 1).

`gymnasium.make("algodistill/DarkRoom-v0", task=i)` fixes the task to index i of the family's task
list; without `task`, every reset draws a random training task (or `reset(options={"task": i})`).
Episodes end with `truncated=True` after the family's fixed length (a time limit, not a terminal
state). The env never autoresets: after an episode ends, call `reset()`.

The bandit is the one exception to "a gym episode is a family episode": its AD episode is a single
trial, but a gymnasium episode of one step is degenerate (and fails `check_env`), so a gym episode
plays the task's 100 trials; the trials are the batched env's one-step episodes, back to back.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from algodistill.envs.base import BatchedEnv, TaskFamily
from algodistill.errors import UserError


class AlgoDistillEnv(gym.Env[np.ndarray, np.int64]):
    """One task of a family as a plain `gymnasium.Env`."""

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(self, family: str, task: int | None = None, render_mode: str | None = None):
        from algodistill.envs import get_family

        self.family: TaskFamily = get_family(family)
        spec = self.family.spec
        self.fixed_task = None if task is None else int(self.family.check_task_ids(np.array([task]))[0])
        self.observation_space: spaces.Space[np.ndarray]
        if spec.obs_high is not None:  # categories: MultiDiscrete, whose gymnasium dtype is int64
            self.observation_space = spaces.MultiDiscrete(np.array(spec.obs_high), dtype=np.int64)
        else:  # pixels
            self.observation_space = spaces.Box(0, 255, spec.obs_shape, dtype=np.uint8)
        self.action_space = spaces.Discrete(spec.num_actions)
        # rgb_array only where there is an image (the class lists both, for gymnasium.make's check)
        self.metadata = {**self.metadata, "render_modes": ["ansi"] + ([] if spec.obs_high else ["rgb_array"])}
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = " or ".join(self.metadata["render_modes"])
            raise UserError(f"render_mode={render_mode!r} does not fit {spec.name}: choose {modes}")
        self.render_mode = render_mode
        self.task: int | None = None
        self._inner: BatchedEnv | None = None
        self._obs = np.zeros(spec.obs_shape, dtype=self.observation_space.dtype)
        self.steps_per_episode = getattr(self.family, "trials_per_task", spec.episode_length)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        task = (options or {}).get("task", self.fixed_task)
        if task is None:
            train = self.family.split("train")
            task = int(train[self.np_random.integers(len(train))])
        task = int(self.family.check_task_ids(np.array([task]))[0])
        # A new seed or a new task starts a new inner env; otherwise the next episode of the same
        # stream follows, exactly as in the batched env.
        if seed is not None or self._inner is None or task != self.task:
            inner_seed = seed if seed is not None else int(self.np_random.integers(2**62))
            self._inner = self.family.make(np.array([task]), seed=inner_seed)
            self.task = task
        self._obs = self._inner.reset()[0].astype(self._obs.dtype)
        self._t = 0
        return self._obs, {"task": task}

    def step(self, action):
        if self._inner is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action)
        if a.shape != () or not np.issubdtype(a.dtype, np.integer) or not self.action_space.contains(a):
            self.family.check_actions(a.reshape(-1), 1)  # raises the one-line UserError
        o, r, done = self._inner.step(a.reshape(1).astype(np.int64))
        self._t += 1
        truncated = self._t == self.steps_per_episode
        if done[0] and not truncated:  # bandit: the next trial starts; it records no transition
            o = self._inner.reset()
        self._obs = o[0].astype(self._obs.dtype)
        return self._obs, float(r[0]), False, truncated, {"task": self.task}

    def render(self) -> str | np.ndarray | None:
        """ansi: the task and the observation as text (an image's shape only); rgb_array: an image env's
        current frame (what the agent sees; the families draw no top-down view)."""
        if self.render_mode == "ansi":
            shown = self._obs.tolist() if self.family.spec.obs_high is not None else f"image {self._obs.shape}"
            return f"task={self.task} obs={shown}"
        if self.render_mode == "rgb_array":
            return self._obs.copy()
        return None
