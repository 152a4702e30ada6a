"""Source RL algorithms that write AD's learning histories (paper Sec. 2 / 4.2, Alg. 1 line 3).

Every source is a batch of N independent single-stream learners, one task each, with its own
parameters and its own random stream, stepped together on a leading learner axis. All randomness
comes from `rng.uniform(learner_keys(seed, ids), counter, stream)`, so a learner's history depends only
on (seed, its global id, its task): the dataset is the same bytes whatever the shard count.

    src = make_source("qlearning", env, seed, ids, total_steps, SourceConfig())
    arrays, o_t = rollout(env, src, num_steps)          # or in chunks, passing o_t back in

The registry below says which envs each source fits, read from the env's `EnvSpec` (never its name;
`privq` and `replay` also ask the spec's family what its envs offer):

| name | envs | what |
|---|---|---|
| ucb | one state (bandit) | UCB1, the paper's bandit source |
| thompson | one state (bandit) | Beta-Bernoulli Thompson sampling |
| a2c | categorical observations (grid worlds) | synchronous single-stream A3C (paper Table 4) |
| qlearning | categorical observations (grid worlds) | tabular epsilon-greedy Q-learning |
| ucbq | categorical observations (grid worlds) | tabular UCB Q-learning (count bonus) over (cell, hidden state) |
| privq | a privileged state (Watermaze) | tabular epsilon-greedy Q-learning over the env's privileged state |
| dqn | images with a stored form (Watermaze) | DQN(Q-lambda) from pixels, the paper's Watermaze source (Table 5) |
| replay | deterministic, fixed start (Watermaze, Dark Room) | random search until rewarded, then replay that episode |
| noise | all | AD^eps noise curriculum: epsilon-greedy expert, epsilon annealed 1 -> eps_final |
| expert | all | the optimal policy (ED baseline data) |
| random | all | uniform actions |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from algodistill import rng
from algodistill.envs import BatchedEnv, EnvSpec, get_family
from algodistill.envs.base import StoresObs
from algodistill.errors import UserError
from algodistill.jsonio import jsonable
from algodistill.sources.a2c import A2C, A2CConfig, gae
from algodistill.sources.bandits import UCB, Thompson, ThompsonConfig, UCBConfig, ucb_scores
from algodistill.sources.dqn import DQN, DQNConfig
from algodistill.sources.noise import EpsilonExpert, NoiseConfig
from algodistill.sources.privq import PrivQ, PrivQConfig
from algodistill.sources.qlearning import QLearning, QLearningConfig
from algodistill.sources.replay import Replay
from algodistill.sources.ucbq import UCBQ, UCBQConfig


class Source(Protocol):
    """N learners stepped together. `act` then `update`, once per env step, in that order. A source whose
    class sets `reads_obs = False` never looks at the observations (it reads the env's state or expert
    action), so generation may skip drawing them (`envs.base.StoresObs.draw`)."""

    def act(self, o_t: np.ndarray) -> np.ndarray:
        """Actions for the current observations. (N, *obs_shape) -> (N,) int64"""
        ...

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        """Learn from the transition (o_t, a_t, r_t, o_tp1, done_t) that `act`'s action produced."""
        ...


@dataclass(frozen=True)
class SourceConfig:
    """Hyperparameters of every source algorithm; only the chosen source's sub-config is used."""

    ucb: UCBConfig = field(default_factory=UCBConfig)
    """UCB1 (bandit)"""
    thompson: ThompsonConfig = field(default_factory=ThompsonConfig)
    """Thompson sampling (bandit)"""
    a2c: A2CConfig = field(default_factory=A2CConfig)
    """A2C (grid worlds)"""
    qlearning: QLearningConfig = field(default_factory=QLearningConfig)
    """tabular Q-learning (grid worlds)"""
    ucbq: UCBQConfig = field(default_factory=UCBQConfig)
    """tabular Q-learning with a UCB count bonus, over (cell, hidden learner state) (grid worlds)"""
    privq: PrivQConfig = field(default_factory=PrivQConfig)
    """tabular Q-learning over the env's privileged state (Watermaze: position cell, heading, reached)"""
    dqn: DQNConfig = field(default_factory=DQNConfig)
    """DQN(Q-lambda) from pixels (Watermaze; paper Table 5)"""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """AD^eps noise curriculum (all envs)"""


def _one_state(spec: EnvSpec) -> bool:
    """A bandit: a single observation, so a learner's state is its per-arm statistics."""
    return spec.num_states == 1


def _tabular(spec: EnvSpec) -> bool:
    """Categorical observations with more than one state: a table (or a one-hot MLP input) indexes them."""
    return spec.num_states is not None and spec.num_states > 1


def _privileged(spec: EnvSpec) -> bool:
    """Envs with a privileged state (`envs.base.PrivilegedState`) for a table to index. The spec cannot say
    so (it describes what is observed and recorded, and this state is neither), so ask the spec's family."""
    return get_family(spec.name).num_privileged_states > 0


def _stored_images(spec: EnvSpec) -> bool:
    """Image observations kept in a stored form (Watermaze): a replay holds the form, frames are redrawn."""
    return spec.stored_shape is not None and len(spec.obs_shape) == 3


def _replayable(spec: EnvSpec) -> bool:
    """Deterministic envs whose episodes all start in the same state and have a stay action (the family
    says so through `TaskFamily.stay_action`): replaying a rewarded episode is rewarded again."""
    return get_family(spec.name).stay_action is not None


@dataclass(frozen=True)
class _Entry:
    """A source in the registry: what envs it fits (by their spec), and how to build N learners."""

    fits: Callable[[EnvSpec], bool]
    needs: str  # what `fits` asks of an env, for error messages
    make: Callable[[BatchedEnv, np.ndarray, int, SourceConfig], Source]  # (env, keys, total_steps, cfg)
    config: str | None  # the field of SourceConfig holding its hyperparameters
    compute_bound: bool = False  # large torch ops (convolutions): generation gives it its share of the cores


_SOURCES: dict[str, _Entry] = {
    "ucb": _Entry(_one_state, "a bandit", lambda env, keys, T, cfg: UCB(env, keys, cfg.ucb), "ucb"),
    "thompson": _Entry(_one_state, "a bandit", lambda env, keys, T, cfg: Thompson(env, keys, cfg.thompson), "thompson"),
    "a2c": _Entry(_tabular, "categorical observations", lambda env, keys, T, cfg: A2C(env, keys, cfg.a2c), "a2c"),
    "qlearning": _Entry(
        _tabular,
        "categorical observations",
        lambda env, keys, T, cfg: QLearning(env, keys, T, cfg.qlearning),
        "qlearning",
    ),
    "ucbq": _Entry(_tabular, "categorical observations", lambda env, keys, T, cfg: UCBQ(env, keys, cfg.ucbq), "ucbq"),
    "privq": _Entry(
        _privileged, "a privileged state", lambda env, keys, T, cfg: PrivQ(env, keys, T, cfg.privq), "privq"
    ),
    "dqn": _Entry(
        _stored_images,
        "image observations with a stored form",
        lambda env, keys, T, cfg: DQN(env, keys, T, cfg.dqn),
        "dqn",
        compute_bound=True,
    ),
    "replay": _Entry(
        _replayable, "deterministic dynamics and a fixed start", lambda env, keys, T, cfg: Replay(env, keys), None
    ),
    "noise": _Entry(
        lambda spec: True,
        "",
        lambda env, keys, T, cfg: EpsilonExpert(env, keys, T, 1.0, cfg.noise.eps_final, cfg.noise.anneal_fraction),
        "noise",
    ),
    "expert": _Entry(lambda spec: True, "", lambda env, keys, T, cfg: EpsilonExpert(env, keys, T, 0.0, 0.0, 1.0), None),
    "random": _Entry(lambda spec: True, "", lambda env, keys, T, cfg: EpsilonExpert(env, keys, T, 1.0, 1.0, 1.0), None),
}
SOURCE_NAMES = tuple(_SOURCES)


def fitting_sources(env_name: str) -> tuple[str, ...]:
    """The source names that can run on env `env_name`."""
    spec = get_family(env_name).spec  # UserError for an unknown env
    return tuple(name for name, entry in _SOURCES.items() if entry.fits(spec))


def check_source(name: str, env_name: str) -> None:
    """UserError unless source `name` exists and fits env `env_name`."""
    if name not in _SOURCES:
        raise UserError(f"source={name!r} is unknown: choose one of {', '.join(SOURCE_NAMES)}")
    fits = fitting_sources(env_name)
    if name not in fits:
        raise UserError(
            f"source={name!r} does not fit env={env_name!r} (it needs {_SOURCES[name].needs}): "
            f"choose one of {', '.join(fits)}"
        )


def compute_bound(name: str) -> bool:
    """Whether source `name`'s torch ops are large enough to use more than one thread: dqn's convolutions
    (1.5x its env steps/s on 2 threads against 1, RESULTS.md); every other source's batched ops are small."""
    return _SOURCES[name].compute_bound


def source_config(name: str, cfg: SourceConfig) -> dict[str, Any]:
    """The hyperparameters source `name` runs with, as JSON data ({} for a source without any)."""
    field_name = _SOURCES[name].config
    return {} if field_name is None else jsonable(getattr(cfg, field_name))


def make_source(name: str, env: BatchedEnv, seed: int, ids: np.ndarray, total_steps: int, cfg: SourceConfig) -> Source:
    """N = env.num_envs fresh learners of source `name`.

    Args:
        env: the batched env the learners act in (the expert sources read its `expert_action`).
        seed: run seed; with `ids` it fixes every random number (see module docstring).
        ids: (N,) the learners' global indices (e.g. their row in the whole dataset).
        total_steps: length of each history in steps; sets the epsilon schedules of noise, qlearning, privq.
        cfg: hyperparameters; only `cfg.<name>` is used.
    """
    check_source(name, env.spec.name)
    ids = np.asarray(ids)
    if ids.shape != (env.num_envs,):
        raise UserError(f"ids has shape {ids.shape} but the env has {env.num_envs} tasks: pass one id per learner")
    if total_steps < 1:
        raise UserError(f"total_steps={total_steps} is out of range: choose a history length >= 1")
    return _SOURCES[name].make(env, rng.learner_keys(seed, ids), total_steps, cfg)


def rollout(
    env: BatchedEnv, source: Source, num_steps: int, o_t: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run `source` in `env` for num_steps steps, recording every transition (the generation loop).

    Resumable: pass the returned observation back as `o_t` to continue the same histories in the next
    chunk; with o_t=None the env is reset first. After a done step the env is reset explicitly (no
    hidden reset step is ever recorded, design.md).

    Returns ({"obs": (N, T, *obs_shape) obs_dtype, "actions": (N, T) uint8, "rewards": (N, T) float32,
    "dones": (N, T) bool}, the observation to act on next (N, *obs_shape)). Where the env has a stored form
    (`EnvSpec.stored_shape`, Watermaze's pixels), "obs" holds it instead: (N, T, *stored_shape) stored_dtype.
    """
    n, spec = env.num_envs, env.spec
    if o_t is None:
        o_t = env.reset()
    stores = env if isinstance(env, StoresObs) and spec.stored_shape is not None else None
    obs_shape, obs_dtype = spec.obs_shape, spec.obs_dtype
    if stores is not None and spec.stored_shape is not None:
        obs_shape, obs_dtype = spec.stored_shape, spec.stored_dtype
    out: dict[str, np.ndarray] = {
        "obs": np.empty((n, num_steps, *obs_shape), dtype=obs_dtype),
        "actions": np.empty((n, num_steps), dtype=np.uint8),
        "rewards": np.empty((n, num_steps), dtype=np.float32),
        "dones": np.empty((n, num_steps), dtype=bool),
    }
    for t in range(num_steps):
        a_t = source.act(o_t)  # (N,)
        o_rec = o_t if stores is None else stores.stored_obs()  # (N, *obs_shape): read before the step changes it
        o_tp1, r_t, done_t = env.step(a_t)
        out["obs"][:, t], out["actions"][:, t], out["rewards"][:, t], out["dones"][:, t] = o_rec, a_t, r_t, done_t
        source.update(o_t, a_t, r_t, o_tp1, done_t)
        if done_t.all():
            o_tp1 = env.reset()
        elif done_t.any():
            raise RuntimeError("episodes must end together in a batched env (fixed episode length)")
        o_t = o_tp1
    return out, o_t


__all__ = [
    "SOURCE_NAMES",
    "A2CConfig",
    "DQNConfig",
    "NoiseConfig",
    "PrivQConfig",
    "QLearningConfig",
    "Source",
    "SourceConfig",
    "ThompsonConfig",
    "UCBConfig",
    "UCBQConfig",
    "check_source",
    "fitting_sources",
    "gae",
    "make_source",
    "rollout",
    "source_config",
    "ucb_scores",
]
