"""Watermaze, batched over tasks: a first-person pixel version of DMLab's Morris water maze (paper Sec. 4.1).

The agent stands in a circular pool of radius 1 and sees an RGB image of the wall, its 8 coloured cue
panels, the floor and the sky (`watermaze_render.py`). Somewhere in the pool lies a hidden circular
platform of radius 0.1; its centre is the task. Reward 1 the first time in an episode that a step ends
on the platform (the agent's position within 0.1 of its centre); episodes last a fixed 50 steps and do
not end there (paper Sec. 4.1, Fig. 4: 160 episodes x 50 steps = 8k steps).

- Start: every episode at the pool's centre facing +x, the bearing of the red cue (paper App. C: a
  fixed start; DMLab's heading is not given).
- Actions (paper Sec. 4.1's eight, in its order): 0 forward, 1 backward, 2 strafe left, 3 strafe
  right, 4 rotate left, 5 rotate right, 6 rotate left and move forward, 7 rotate right and move forward.
  A move is 0.1; a rotation is 30 degrees (so headings are multiples of 30 degrees); the combined
  actions rotate first, then move along the new heading. Left is counter-clockwise seen from above.
  Crossing the pool takes 20 moves and any platform is at most 0.9 - 0.1 = 0.8 of travel away, well
  within 50 steps, while a platform covers only 1% of the pool (uniform-random policy: 0.15 on average,
  most of it on the platforms near the start).
- Walls: the agent's centre stays within 0.95 of the pool's centre (a body radius of 0.05): a move
  that would end farther out is projected back onto that circle (the nearest allowed point, so a move
  along the wall slides and a move into it stops).
- Tasks: 1000 platform centres drawn once, with a fixed seed, uniformly over the disc of radius 0.9
  (the platform lies wholly inside the pool), 100 of them held out by a fixed permutation; any other
  centre through `WatermazeFamily.make_at`. About 1% of the centres lie within 0.1 of the start: their
  platform is under the agent at reset, and the first step that ends on it (a rotation will do) pays.
- The dynamics are deterministic: no randomness at all, so `seed` and `ids` are accepted and unused.

The privileged state (`WatermazeEnv.state()`: position, heading, whether the platform was reached) is
for sources and tests; it is never recorded into datasets, whose observation stays the paper's pixels.
`privileged_state()` is the same as one discrete index (position cell x heading x reached) for a tabular
source (`sources/privq.py`, `envs.base.PrivilegedState`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from algodistill.envs.base import Frames, TaskFamily, _one_line, split_by_permutation
from algodistill.envs.spec import EnvSpec
from algodistill.envs.watermaze_render import SCENE, render
from algodistill.errors import UserError
from algodistill.rng import np_rng

FORWARD, BACKWARD, STRAFE_LEFT, STRAFE_RIGHT, TURN_LEFT, TURN_RIGHT, TURN_LEFT_FORWARD, TURN_RIGHT_FORWARD = range(8)
ACTION_NAMES = ("forward", "backward", "strafe left", "strafe right", "rotate left", "rotate right",
                "rotate left + forward", "rotate right + forward")  # fmt: skip

MIN_SIZE = 16
"""Smallest image height and width: below it a 30 degree cue panel is under 6 pixels wide. The default
conv encoder (3 blocks of kernel 5, stride 2, pool 2; paper Table 3) reads images of at least 43 pixels a
side, a 2-block one at least 11; the model's config checks that against the spec (encoders.check_fits)."""
CENTRES_SEED = 2210_14215_1
"""Seed of the fixed list of platform centres."""
PRIVILEGED_CELL = 0.19
"""Side of the square cells of the privileged state's position grid (`privileged_index`), in pool radii:
about a platform's diameter, so a platform covers about one cell (11 x 11 cells, the outer ones centred
on the walls' reach, 0.95). Coarser cells learn faster (`privq` on the 900 training tasks, mean return of
episodes 901-1000: cells of 0.1 0.93, 0.15 0.99, 0.19 1.00). 0.19 rather than 0.2, so that no cell
boundary (odd multiples of 0.095) is a position the agent can reach exactly (until it touches the wall,
a coordinate is 0.05 m + 0.05 sqrt(3) k for integers m, k): no state is left to last-bit rounding."""


@dataclass(frozen=True)
class Rules:
    """Dynamics, reward and task list (lengths in pool radii)."""

    step: float = 0.1
    turns: int = 12
    """headings per full turn: a rotation is 360 / 12 = 30 degrees"""
    body_radius: float = 0.05
    platform_radius: float = 0.1
    episode_length: int = 50
    num_tasks: int = 1000
    num_test: int = 100

    def __post_init__(self) -> None:
        if self.turns % 4:
            raise ValueError("turns must be a multiple of 4: strafing moves at a right angle to the heading")

    @property
    def reach(self) -> float:
        """How far from the pool's centre the agent's centre may go."""
        return SCENE.pool_radius - self.body_radius

    @property
    def max_centre(self) -> float:
        """How far from the pool's centre a platform's centre may be (the platform stays inside the wall)."""
        return SCENE.pool_radius - self.platform_radius


RULES = Rules()

# Per action: heading change (in turns), direction of the move relative to the new heading (in turns), moves.
_TURN = np.array([0, 0, 0, 0, 1, -1, 1, -1])
_MOVE_DIR = np.array([0, RULES.turns // 2, RULES.turns // 4, -RULES.turns // 4, 0, 0, 0, 0])
_MOVES = np.array([1, 1, 1, 1, 0, 0, 1, 1], dtype=np.float64)
_UNIT = np.stack([np.cos(2 * np.pi * np.arange(RULES.turns) / RULES.turns),
                  np.sin(2 * np.pi * np.arange(RULES.turns) / RULES.turns)], axis=1)  # (turns, 2)  # fmt: skip


def move(pos: np.ndarray, turn: np.ndarray, a_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of the dynamics: pos (N, 2) float64, turn (N,) heading in turns, a_t (N,) -> new (pos, turn)."""
    turn = (turn + _TURN[a_t]) % RULES.turns  # (N,) rotate first
    pos = pos + (RULES.step * _MOVES[a_t])[:, None] * _UNIT[(turn + _MOVE_DIR[a_t]) % RULES.turns]  # (N, 2)
    r = np.hypot(pos[:, 0], pos[:, 1])  # (N,)
    out = r > RULES.reach
    if out.any():  # walls: project back onto the circle of radius `reach`
        pos[out] *= (RULES.reach / r[out])[:, None]
    return pos, turn


def privileged_cells(cell: float = PRIVILEGED_CELL) -> int:
    """Cells per side of the privileged position grid: an odd number of cells of side `cell`, one centred
    on the pool's centre, covering every position the agent can reach (|x|, |y| <= RULES.reach)."""
    return 2 * math.floor(RULES.reach / cell + 0.5) + 1


def privileged_index(
    pos: np.ndarray, turn: np.ndarray, reached: np.ndarray, cell: float = PRIVILEGED_CELL
) -> np.ndarray:
    """The discrete state ((i * n + j) * turns + turn) * 2 + reached of N agents, (i, j) the grid cell of
    pos (the cell whose centre is nearest, ties rounded up), n = privileged_cells(cell). (N,) int64

    `reached` is part of the state because it changes what is optimal: before the platform pays, go to it;
    after, nothing is left to gain. Without it a table sees the step onto the platform pay 1 and then 0
    (a learner that returns to the platform unlearns the way there: `privq` ends at 0.81, not 1.00).

    Args: pos (N, 2) float64, turn (N,) heading in turns, reached (N,) bool.
    """
    n = privileged_cells(cell)
    ij = np.floor(pos / cell + 0.5).astype(np.int64) + n // 2  # (N, 2) in [0, n): |x| <= reach
    return ((ij[:, 0] * n + ij[:, 1]) * RULES.turns + turn) * 2 + reached


class WatermazeState(NamedTuple):
    """The privileged state of N agents; never recorded into datasets."""

    pos: np.ndarray  # (N, 2) float64
    heading: np.ndarray  # (N,) float64 radians in [0, 2 pi)
    reached: np.ndarray  # (N,) bool: the platform paid this episode


class WatermazeEnv:
    """N Watermaze tasks stepped together; all arrays carry a leading task axis."""

    def __init__(self, family: WatermazeFamily, centres: np.ndarray, task_ids: np.ndarray):
        self.family = family
        self.spec = family.spec
        self.task_ids = task_ids  # (N,) -1 where the centre is not from the task list (`make_at`)
        self.num_envs = len(task_ids)
        self.centres = centres  # (N, 2) float64 platform centres
        self.pos = np.zeros((self.num_envs, 2))  # (N, 2)
        self.turn = np.zeros(self.num_envs, dtype=np.int64)  # (N,) heading in turns of 360 / RULES.turns
        self.reached = np.zeros(self.num_envs, dtype=bool)  # (N,)
        self.num_privileged_states = family.num_privileged_states
        self.t = -1  # steps taken in the current episode; -1 until the first reset
        self.draw = True  # False: return the stored form, not the frame (`envs.base.StoresObs`)

    def reset(self) -> np.ndarray:
        """Start a new episode at the centre facing +x (fixed start, paper App. C). (N, H, W, 3) uint8"""
        self.pos[:] = 0.0
        self.turn[:] = 0
        self.reached[:] = False
        self.t = 0
        return self.render() if self.draw else self.stored_obs()

    def step(self, a_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply a_t (N,); return o_tp1 (N, H, W, 3) uint8, r_t (N,) float32, done_t (N,) bool."""
        if self.t < 0 or self.t >= self.spec.episode_length:
            raise RuntimeError("episode is over (or never started): call reset() before step()")
        a_t = self.family.check_actions(a_t, self.num_envs).astype(np.int64)
        self.pos, self.turn = move(self.pos, self.turn, a_t)
        on = _on_platform(self.pos, self.centres)  # (N,)
        r_t = on & ~self.reached  # once per episode
        self.reached |= on
        self.t += 1
        done_t = np.full(self.num_envs, self.t == self.spec.episode_length)
        return self.render() if self.draw else self.stored_obs(), r_t.astype(np.float32), done_t

    def state(self) -> WatermazeState:
        """Position, heading and whether the platform paid, copied; `render(state.pos, state.heading)`
        redraws the current observation exactly (the stored form of a frame)."""
        return WatermazeState(self.pos.copy(), self.heading(), self.reached.copy())

    def privileged_state(self) -> np.ndarray:
        """Position cell, heading and whether the platform paid, as one index for a source's tabular
        learner (`envs.base.PrivilegedState`, `privileged_index`); never recorded. (N,) int64"""
        return privileged_index(self.pos, self.turn, self.reached)

    def heading(self) -> np.ndarray:
        """Heading in radians, counter-clockwise from +x. (N,) float64"""
        return self.turn * (2 * math.pi / RULES.turns)

    def render(self) -> np.ndarray:
        """The current view of every agent. (N, H, W, 3) uint8"""
        return render(self.pos, self.heading(), self.family.resolution)

    def stored_obs(self) -> np.ndarray:
        """What a dataset stores of the current view (`envs.base.StoresObs`): x, y and heading at float32,
        the precision `render` reads, so `WatermazeFamily.decode_obs` redraws the same bytes. (N, 3) float32"""
        return np.concatenate([self.pos, self.heading()[:, None]], axis=1).astype(np.float32)

    def expert_action(self) -> np.ndarray:
        """Turn toward the platform, then go: forward when it is within 15 degrees of the heading, rotate
        and move forward when within 45, rotate in place beyond; once on it, rotate in place. (N,)

        A rotate-and-move leaves the platform within 15 degrees of the move, so every move shortens the
        distance (by at least 0.07 while off the platform; the wall's projection never lengthens it) and
        every platform is reached (those of the task list within 15 steps, tests/test_watermaze.py).
        """
        to = self.centres - self.pos  # (N, 2)
        u = _UNIT[self.turn]  # (N, 2) heading
        off = np.arctan2(u[:, 0] * to[:, 1] - u[:, 1] * to[:, 0], (u * to).sum(axis=1))  # (N,) + = to the left
        half = math.pi / RULES.turns  # half a rotation: 15 degrees
        left = off > 0
        a = np.where(np.abs(off) <= half, FORWARD, np.where(left, TURN_LEFT_FORWARD, TURN_RIGHT_FORWARD))
        a = np.where(np.abs(off) > 3 * half, np.where(left, TURN_LEFT, TURN_RIGHT), a)
        return np.where(_on_platform(self.pos, self.centres), TURN_LEFT, a).astype(np.int64)


def _on_platform(pos: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N,) bool: the agent's position is within the platform's radius of its centre."""
    d = pos - centres  # (N, 2)
    return (d * d).sum(axis=1) <= RULES.platform_radius**2


class WatermazeFamily(TaskFamily):
    """The task family: spec, task list (platform centres), split and reference returns. The task list
    and split are the same at every resolution; `name` tells registered resolutions apart."""

    num_privileged_states = privileged_cells() ** 2 * RULES.turns * 2  # cell x heading x reached
    stay_action = TURN_LEFT  # rotating in place: the dynamics are deterministic and every episode starts alike

    def __init__(
        self, name: str = "watermaze", gym_id: str = "algodistill/Watermaze-v0", resolution: tuple[int, int] = (72, 96)
    ):
        self.resolution = check_resolution(resolution)
        H, W = self.resolution
        self.spec = EnvSpec(
            name=name,
            gym_id=gym_id,
            obs_shape=(H, W, 3),
            obs_dtype="uint8",
            obs_high=None,
            num_actions=len(ACTION_NAMES),
            episode_length=RULES.episode_length,
            num_tasks=RULES.num_tasks,
            stored_shape=(3,),  # datasets keep (x, y, heading), not the frame (docs/dataset.md)
            stored_dtype="float32",
            description=f"circular pool seen first-person at {H}x{W}, 8 wall cues, start at the centre, "
            "hidden platform: reward 1 once, on first reaching it",
        )
        self.centres = task_centres()  # (num_tasks, 2)
        # The split is keyed on "watermaze" whatever the registered name: every resolution shares it.
        self._splits = split_by_permutation("watermaze", RULES.num_tasks, RULES.num_test)

    def make(self, task_ids: np.ndarray, seed: int = 0, ids: np.ndarray | None = None) -> WatermazeEnv:
        """Envs for tasks of the list; `seed` and `ids` are unused (the env is deterministic)."""
        t = self.check_task_ids(np.asarray(task_ids))
        return WatermazeEnv(self, self.centres[t], t)

    def make_at(self, centres: np.ndarray) -> WatermazeEnv:
        """Envs with the platform at any centres (N, 2) in the pool; their task_ids are -1."""
        c = np.asarray(centres)
        if c.ndim != 2 or c.shape[1] != 2 or not np.issubdtype(c.dtype, np.number) or np.iscomplexobj(c):
            raise UserError(f"centres={_one_line(centres)} is malformed for {self.spec.name}: pass an (N, 2) array")
        c = c.astype(np.float64)
        bad = ~(np.hypot(c[:, 0], c[:, 1]) <= RULES.max_centre)  # NaN is bad too
        if bad.any():
            x, y = c[bad][0]
            raise UserError(
                f"platform=({x:.3g}, {y:.3g}) is outside the pool for {self.spec.name}: choose a centre at "
                f"distance at most {RULES.max_centre:g} from (0, 0)"
            )
        return WatermazeEnv(self, c, np.full(len(c), -1, dtype=np.int64))

    def split(self, name: str) -> np.ndarray:
        return self._checked_split(self._splits, name)

    def describe_task(self, task: int) -> str:
        x, y = self.centres[task]
        return f"platform at ({x:.2f}, {y:.2f})"

    def frame_strip(self, task: int) -> list[tuple[str, np.ndarray]]:
        """The expert's view on `task`: at the start, on its first step with the hidden platform's centre in
        the field of view (unless it reaches the platform then), and on reaching it."""
        env = self.make(np.array([task]))
        frames = [("start", env.reset()[0])]
        seen = False
        for _ in range(self.spec.episode_length):
            o, r, _ = env.step(env.expert_action())
            to = env.centres[0] - env.pos[0]  # (2,)
            bearing = math.atan2(to[1], to[0]) - env.heading()[0]
            in_view = abs(math.remainder(bearing, 2 * math.pi)) < math.radians(SCENE.fov / 2)
            if in_view and not seen and r[0] == 0:
                frames.append(("platform ahead (hidden)", o[0]))
                seen = True
            if r[0] > 0:
                frames.append((f"on the platform, step {env.t}", o[0]))
                break
        return frames

    def decode_obs(self, stored: Frames) -> Frames:
        """Frames from their stored form (`WatermazeEnv.stored_obs`): (..., 3) -> (..., H, W, 3) uint8.

        A torch tensor is drawn on its own device by `render_torch` (the same bytes on the CPU), so a
        trainer on a GPU moves 12 bytes per step there instead of a frame."""
        lead = stored.shape[:-1]
        flat = stored.reshape(-1, 3)  # (n, 3)
        if isinstance(stored, np.ndarray):
            return render(flat[:, :2], flat[:, 2], self.resolution).reshape(*lead, *self.spec.obs_shape)
        # imported here, not above: the envs import no torch unless handed a tensor (Gymnasium users)
        from algodistill.envs.watermaze_render_torch import render_torch

        return render_torch(flat[:, :2], flat[:, 2], self.resolution).reshape(*lead, *self.spec.obs_shape)

    def optimal_return(self, task_ids: np.ndarray) -> np.ndarray:
        """1 for every task: every platform is reachable within the episode (the expert's test), and it pays once."""
        return np.ones(len(self.check_task_ids(task_ids)))

    def random_return(self, task_ids: np.ndarray) -> np.ndarray:
        """The uniform-random policy's return: a Monte-Carlo ESTIMATE (fixed seed, 256 episodes per task,
        standard error at most 0.5 / sqrt(256) = 1 / 32 per task; the episodes are shared by all tasks,
        so the errors of different tasks are correlated)."""
        return random_returns()[self.check_task_ids(task_ids)]


def check_resolution(resolution: tuple[int, int]) -> tuple[int, int]:
    """(H, W) as ints, or a one-line UserError naming the value and the allowed minimum."""
    ok = isinstance(resolution, tuple | list) and len(resolution) == 2
    ok = ok and all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in resolution)
    if not ok:
        raise UserError(f"resolution={_one_line(resolution)} is malformed: pass (H, W), two integers >= {MIN_SIZE}")
    H, W = int(resolution[0]), int(resolution[1])
    if min(H, W) < MIN_SIZE:
        raise UserError(
            f"resolution=({H}, {W}) is too small for watermaze: choose H and W of at least {MIN_SIZE} "
            "(at least 43 for the default 3-block conv encoder)"
        )
    return H, W


@cache
def task_centres() -> np.ndarray:
    """The fixed list of platform centres, uniform over the disc of radius RULES.max_centre. (num_tasks, 2)"""
    u = np_rng(CENTRES_SEED).random((RULES.num_tasks, 2))  # (n, 2)
    r = RULES.max_centre * np.sqrt(u[:, 0])  # sqrt: uniform over the area, not the radius
    theta = 2 * np.pi * u[:, 1]
    centres = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)  # (n, 2)
    centres.setflags(write=False)
    return centres


@cache
def random_returns(episodes: int = 256, seed: int = 0) -> np.ndarray:
    """Monte-Carlo estimate of the uniform-random policy's expected return on every task: `episodes`
    rollouts per task, the same action sequences for every task (common random numbers), no rendering.
    (num_tasks,) float64"""
    n = RULES.num_tasks
    actions = np_rng(CENTRES_SEED, seed).integers(0, 8, (RULES.episode_length, episodes))  # (T, E)
    pos, turn = np.zeros((episodes, 2)), np.zeros(episodes, dtype=np.int64)
    centres = task_centres()
    hit = np.zeros((n, episodes), dtype=bool)  # (n, E)
    for a_t in actions:  # the trajectories do not depend on the task: roll them once, test every platform
        pos, turn = move(pos, turn, a_t)
        d = pos[None, :, :] - centres[:, None, :]  # (n, E, 2)
        hit |= (d * d).sum(axis=2) <= RULES.platform_radius**2
    out = hit.mean(axis=1)
    out.setflags(write=False)
    return out
