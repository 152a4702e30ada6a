"""UCB Q-learning (`ucbq`) and the hidden learner state it reads: hand-worked updates, what the envs hide,
determinism, batch invariance, the recorded observation, and learning progress."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from algodistill.envs import get_family
from algodistill.envs.base import HidesState
from algodistill.errors import UserError
from algodistill.rng import learner_keys
from algodistill.sources import SourceConfig, UCBQConfig, make_source, rollout
from algodistill.sources.ucbq import UCBQ, best_return, ucb_target

LEFT, RIGHT, UP, DOWN, NOOP = range(5)
GRIDS = ("keydoor", "darkroom-hard", "darkroom")


def cell(x: int, y: int) -> int:
    return x * 9 + y


@pytest.fixture(scope="module")
def centre_stream() -> int:
    """A stream id (seed 0) whose first Key-to-Door episode starts at the centre (4, 4)."""
    starts = get_family("keydoor").make(np.zeros(500, dtype=np.int64), seed=0).reset()
    return int(np.flatnonzero((starts == [4, 4]).all(axis=1))[0])


def _keydoor(key: int, door: int, stream: int) -> Any:
    return get_family("keydoor").make(np.array([key * 81 + door]), seed=0, ids=np.array([stream]))


def _run(env_name: str, ids: np.ndarray, steps: int, seed: int = 3, cfg: SourceConfig | None = None):
    fam = get_family(env_name)
    train = fam.split("train")
    env = fam.make(train[(ids * 37) % len(train)], seed=seed, ids=ids)  # a different task per learner
    src: Any = make_source("ucbq", env, seed, ids, steps, cfg or SourceConfig())
    return rollout(env, src, steps)[0], src


def _phase_at_act(rewards: np.ndarray, episode_length: int) -> np.ndarray:
    """The Key-to-Door phase / Hard "reached" flag when each step was taken: the reward collected
    earlier in the same episode. (N, T) rewards -> (N, T) int64"""
    r = rewards.reshape(len(rewards), -1, episode_length).astype(np.int64)  # (N, E, H)
    return (np.cumsum(r, axis=-1) - r).reshape(rewards.shape)


# ---------------------------------------------------------------------------------------------------------------
# The update against hand-worked numbers


def test_ucb_target_hand_computed() -> None:
    # learner 0: 1 + 0.2 / sqrt(1) + 0.9 * max(0.5, 2, 1) = 1 + 0.2 + 1.8 = 3.0
    # learner 1: 0 + 0.2 / sqrt(4) + 0.9 * 1 = 0.1 + 0.9 = 1.0
    t = ucb_target(np.array([1.0, 0.0]), np.array([1, 4]), np.array([[0.5, 2.0, 1.0], [1.0, 1.0, 1.0]]), 0.2, 0.9)
    np.testing.assert_allclose(t, [3.0, 1.0], rtol=1e-12)


def test_optimism_is_the_familys_best_return() -> None:
    assert best_return(get_family("keydoor").spec) == 2.0  # key and door
    assert best_return(get_family("darkroom-hard").spec) == 1.0  # the goal once
    assert best_return(get_family("darkroom").spec) == 20.0  # a goal at the centre: every one of 20 steps
    env = get_family("keydoor").make(np.array([0]))
    assert (UCBQ(env, learner_keys(0, np.array([0])), UCBQConfig()).q == 2.0).all()
    assert (UCBQ(env, learner_keys(0, np.array([0])), UCBQConfig(init_q=0.5)).q == 0.5).all()


def test_update_hand_worked_on_key_to_door(centre_stream: int) -> None:
    # Key one step right of the centre start, door far away. gamma 0.9, lr 0.5, bonus 0.2; Q starts at 2
    # (keydoor's best return). The learner's state is cell * 3 + phase: (4, 4) is cell 40, (5, 4) cell 49.
    env = _keydoor(key=cell(5, 4), door=cell(0, 0), stream=centre_stream)
    src = UCBQ(env, learner_keys(0, np.array([centre_stream])), UCBQConfig(gamma=0.9, lr=0.5, bonus=0.2))
    o_t = env.reset()
    for a in (RIGHT, LEFT, RIGHT, LEFT, RIGHT):
        src.act(o_t)  # reads the state; we choose the action ourselves
        o_tp1, r_t, done_t = env.step(np.array([a]))
        src.update(o_t, np.array([a]), r_t, o_tp1, done_t)
        o_t = o_tp1
    q = src.q[0]
    # t0: (4,4) phase 0 -> key, r = 1, phase 1. target 1 + 0.2 + 0.9 * 2 = 3.0; Q = 2 + 0.5 * (3 - 2) = 2.5.
    assert q[40 * 3 + 0, RIGHT] == pytest.approx(2.5)
    assert (np.delete(q[40 * 3 + 0], RIGHT) == 2.0).all()  # the other actions of that state are untouched
    # t1: (5,4) phase 1 -> (4,4) phase 1, r = 0. target 0.2 + 0.9 * 2 = 2.0; Q = 2.0.
    # t2: (4,4) phase 1 -> (5,4) phase 1 (the key pays once). target 0.2 + 0.9 * max Q(5,4 ph 1) = 2.0; Q = 2.0.
    # t3: LEFT again, n = 2: target 0.2 / sqrt(2) + 0.9 * max Q(4,4 ph 1) = 0.141421 + 1.8 = 1.941421;
    #     Q = 2 + 0.5 * (1.941421 - 2) = 1.970711.
    # t4: RIGHT again, n = 2: max Q(5,4 ph 1) is still 2 (untried actions): the same 1.970711.
    half_bonus = 0.2 / math.sqrt(2)
    assert q[49 * 3 + 1, LEFT] == pytest.approx(2.0 + 0.5 * (half_bonus + 1.8 - 2.0))
    assert q[40 * 3 + 1, RIGHT] == pytest.approx(1.970711, abs=1e-6)
    assert src.visits[0, 40 * 3 + 0, RIGHT] == 1 and src.visits[0, 40 * 3 + 1, RIGHT] == 2
    assert src.visits[0, 49 * 3 + 1, LEFT] == 2 and src.visits.sum() == 5
    assert (src.visits[0, 49 * 3 + 0] == 0).all()  # (5, 4) was never seen without the key


def test_untried_actions_keep_their_optimism_and_ties_break_at_random() -> None:
    # 200 learners in their first state, every action untried (Q = 2): the tie-break spreads them over all
    # five actions. After one step that paid nothing, the tried action drops to 0.03 + 0.9 * 2 = 1.83 and
    # the greedy choice there is among the four untried ones.
    env = get_family("keydoor").make(np.zeros(200, dtype=np.int64), seed=0)  # key and door in cell (0, 0)
    src = UCBQ(env, learner_keys(0, np.arange(200)), UCBQConfig())
    o_t = env.reset()
    a = src.act(o_t)
    assert set(np.unique(a)) == set(range(5))
    s0 = src.s_t.copy()
    o_tp1, r_t, done_t = env.step(a)
    src.update(o_t, a, r_t, o_tp1, done_t)
    paid_nothing = r_t == 0  # (200,) most learners: the key is in one corner
    rows = np.arange(200)[paid_nothing]
    np.testing.assert_allclose(src.q[rows, s0[paid_nothing], a[paid_nothing]], 1.83)
    assert ((src.q[rows, s0[paid_nothing]] == 2.0).sum(-1) == 4).all()


# ---------------------------------------------------------------------------------------------------------------
# The hidden learner state: what the observation hides, and nothing else


def test_num_learner_states_per_family() -> None:
    expected = {"keydoor": 3, "darkroom-hard": 2, "darkroom": 1, "bandit": 1}  # phase, goal reached, nothing
    assert {name: get_family(name).num_learner_states for name in expected} == expected
    for name in GRIDS:
        env = get_family(name).make(np.arange(2))
        assert isinstance(env, HidesState) and env.num_learner_states == get_family(name).num_learner_states
    assert not isinstance(get_family("bandit").make(np.arange(2)), HidesState)  # a bandit hides nothing


def test_keydoor_phase_changes_exactly_when_key_then_door_are_reached(centre_stream: int) -> None:
    env = _keydoor(key=cell(5, 6), door=cell(5, 4), stream=centre_stream)
    env.reset()
    phases, rewards = [], []
    for a in (RIGHT, UP, UP, DOWN, DOWN, UP, DOWN):  # (5,4) door without key, (5,6) key, (5,4) door, ...
        _, r, _ = env.step(np.array([a]))
        phases.append(int(env.learner_state()[0]))
        rewards.append(float(r[0]))
    assert rewards == [0, 0, 1, 0, 1, 0, 0]
    assert phases == [0, 0, 1, 1, 2, 2, 2]
    env.reset()
    assert env.learner_state().tolist() == [0] and env.learner_state().dtype == np.int64


@pytest.mark.parametrize("name", GRIDS)
def test_hidden_state_is_the_reward_collected_this_episode(name: str) -> None:
    # Key-to-Door's phase and Hard's flag are exactly the reward collected so far in the episode; plain Dark
    # Room pays on every goal step and hides nothing, so its state is always 0.
    fam = get_family(name)
    H = fam.spec.episode_length
    env = fam.make(fam.split("train")[:64], seed=1)
    assert isinstance(env, HidesState)
    g = np.random.default_rng(0)
    env.reset()
    collected = np.zeros(64)
    for _ in range(3 * H):
        _, r, done = env.step(g.integers(0, 5, 64))
        collected += r
        expected = np.zeros(64) if name == "darkroom" else collected
        np.testing.assert_array_equal(env.learner_state(), expected)
        if done.all():
            env.reset()
            collected[:] = 0
            assert (env.learner_state() == 0).all()


@pytest.mark.parametrize("name", ["keydoor", "darkroom-hard"])
def test_learner_indexes_q_by_the_hidden_state(name: str) -> None:
    # Every step counts in the table row of (cell, hidden state at the step), recovered here from the data.
    fam: Any = get_family(name)
    arrays, src = _run(name, np.arange(6), 20 * fam.spec.episode_length)
    L = fam.num_learner_states
    hidden = _phase_at_act(arrays["rewards"], fam.spec.episode_length)  # (N, T)
    cells = arrays["obs"][..., 0].astype(np.int64) * fam.size + arrays["obs"][..., 1]  # (N, T)
    expected = np.zeros_like(src.visits)
    for i in range(6):
        np.add.at(expected[i], (cells[i] * L + hidden[i], arrays["actions"][i].astype(np.int64)), 1)
    np.testing.assert_array_equal(src.visits, expected)
    assert (hidden > 0).any()  # the learners did reach the hidden phases


# ---------------------------------------------------------------------------------------------------------------
# Contracts: determinism, batch invariance, the recorded observation


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    a, src_a = _run("keydoor", np.arange(4), 500)
    b, src_b = _run("keydoor", np.arange(4), 500)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    assert src_a.q.tobytes() == src_b.q.tobytes()
    c, _ = _run("keydoor", np.arange(4), 500, seed=4)
    assert not np.array_equal(a["actions"], c["actions"])


@pytest.mark.parametrize("name", ["keydoor", "darkroom-hard"])
def test_batch_of_n_equals_n_batches_of_one(name: str) -> None:
    ids = np.array([0, 5, 17, 40])
    whole, src = _run(name, ids, 400)
    for j, i in enumerate(ids):
        one, src_one = _run(name, np.array([i]), 400)
        for k in whole:
            np.testing.assert_array_equal(whole[k][j : j + 1], one[k], err_msg=f"{k} of learner {i}")
        np.testing.assert_array_equal(src.q[j], src_one.q[0])


@pytest.mark.parametrize("name", ["keydoor", "darkroom-hard"])
def test_recorded_obs_is_only_x_y(name: str) -> None:
    # The data has the paper's (x, y) observation; replaying its actions in a fresh env reproduces it.
    fam: Any = get_family(name)
    arrays, _ = _run(name, np.arange(3), 3 * fam.spec.episode_length)
    assert arrays["obs"].shape == (3, 3 * fam.spec.episode_length, 2) and arrays["obs"].dtype == np.uint8
    assert arrays["obs"].max() < fam.size
    train = fam.split("train")
    env = fam.make(train[(np.arange(3) * 37) % len(train)], seed=3, ids=np.arange(3))
    o_t = env.reset()
    for t in range(arrays["actions"].shape[1]):
        np.testing.assert_array_equal(arrays["obs"][:, t], o_t)
        o_t, r_t, done_t = env.step(arrays["actions"][:, t].astype(np.int64))
        np.testing.assert_array_equal(arrays["rewards"][:, t], r_t)
        if done_t.all():
            o_t = env.reset()


# ---------------------------------------------------------------------------------------------------------------
# Configuration and learning progress


@pytest.mark.parametrize(
    "make",
    [
        lambda: UCBQConfig(gamma=1.0),
        lambda: UCBQConfig(lr=0.0),
        lambda: UCBQConfig(lr=1.5),
        lambda: UCBQConfig(bonus=-0.1),
        lambda: UCBQConfig(init_q=-1.0),
    ],
)
def test_config_invariants_raise_one_line_user_errors(make) -> None:
    with pytest.raises(UserError, match=r"^ucbq\.\w+=.* is out of range: choose [^\n]*$"):
        make()


def test_config_is_a_cli() -> None:
    tyro = pytest.importorskip("tyro")
    cfg = tyro.cli(SourceConfig, args=["--ucbq.bonus", "0.1", "--ucbq.init-q", "5"])
    assert cfg.ucbq.bonus == 0.1 and cfg.ucbq.init_q == 5.0
    assert tyro.cli(SourceConfig, args=[]).ucbq.init_q is None


@pytest.mark.parametrize(
    ("name", "n", "episodes", "first", "last"), [("keydoor", 20, 200, 0.6, 1.6), ("darkroom-hard", 40, 500, 0.15, 0.75)]
)
def test_learns_what_the_observation_hides(name: str, n: int, episodes: int, first: float, last: float) -> None:
    # Mean return of the first 5 episodes near random (keydoor 0.25, Hard 0.03), of the last 20 well above it
    # (measured 0.34 -> 1.84 and 0.06 -> 0.91; optimal 2 and 1).
    fam = get_family(name)
    H = fam.spec.episode_length
    arrays, _ = _run(name, np.arange(n), episodes * H, seed=0)
    r = arrays["rewards"].reshape(n, episodes, H).sum(-1)  # (n, episodes)
    assert r[:, :5].mean() < first, r[:, :5].mean()
    assert r[:, -20:].mean() >= last, r[:, -20:].mean()
