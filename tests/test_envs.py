"""Batched task families (paper Sec. 4.1): hand-worked dynamics, reference returns against an independent
brute-force DP and Monte-Carlo rollouts, splits, stream independence and one-line input errors.

Every random number here is seeded, so each test is deterministic; Monte-Carlo tolerances are a few
standard errors so that the fixed seeds are not hand-picked.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from algodistill import envs, rng
from algodistill.envs import ENV_NAMES, EnvSpec, get_family, register_family
from algodistill.envs.bandit import BanditFamily
from algodistill.envs.darkroom import DarkRoomFamily
from algodistill.envs.keydoor import KeyToDoorFamily
from algodistill.envs.watermaze import WatermazeFamily
from algodistill.errors import UserError

LEFT, RIGHT, UP, DOWN, NOOP = range(5)


def cell(x: int, y: int, size: int = 9) -> int:
    return x * size + y


def run_episode(env, actions, reset: bool = True) -> tuple[list[list[int]], list[float], list[bool]]:
    """Reset a batch of one and play `actions`; observations after each step, rewards, dones."""
    if reset:
        env.reset()
    obs, rewards, dones = [], [], []
    for a in actions:
        o, r, d = env.step(np.array([a]))
        obs.append(o[0].tolist())
        rewards.append(float(r[0]))
        dones.append(bool(d[0]))
    return obs, rewards, dones


# --------------------------------------------------------------------------------------------------
# An independent model of the grid families: moves re-derived from the paper's action list, values by
# backward induction over (time, cell, phase) with max (optimal) or mean (uniform-random policy).


def moves(size: int) -> np.ndarray:
    """next[c, a] for the actions left, right, up, down, no-op; a move off the grid stays. (S, A)"""
    nxt = np.empty((size * size, 5), dtype=np.int64)
    for x in range(size):
        for y in range(size):
            for a, (dx, dy) in enumerate([(-1, 0), (1, 0), (0, 1), (0, -1), (0, 0)]):
                nx, ny = x + dx, y + dy
                if not (0 <= nx < size and 0 <= ny < size):
                    nx, ny = x, y
                nxt[cell(x, y, size), a] = cell(nx, ny, size)
    return nxt


def dp_values(size: int, H: int, targets: np.ndarray, repeat: bool, agg) -> np.ndarray:
    """Expected return from each start cell of an H-step episode. (n, S)

    targets (n, P): the target cell of each phase; ending a step on the current phase's target gives +1
    and moves to the next phase (or stays in it when `repeat`: Dark Room's reward on every goal step).
    """
    nxt = moves(size)
    n, P = targets.shape
    V = np.zeros((n, P + 1, size * size))  # (n, phase, S); phase P: nothing more to earn
    for _ in range(H):
        new = np.zeros_like(V)
        for p in range(P):
            hit = nxt[None] == targets[:, p, None, None]  # (n, S, A)
            then = p if repeat else p + 1
            q = np.where(hit, 1.0 + V[:, then][:, nxt], V[:, p][:, nxt])  # (n, S, A)
            new[:, p] = agg(q, axis=2)
        V = new
    return V[:, 0]


def darkroom_dp(size: int, H: int, hard: bool, goals: np.ndarray, agg) -> np.ndarray:
    """Value from the centre for each goal. (n,)"""
    centre = cell(size // 2, size // 2, size)
    return dp_values(size, H, goals[:, None], repeat=not hard, agg=agg)[:, centre]


def keydoor_dp(size: int, H: int, tasks: np.ndarray, agg) -> np.ndarray:
    """Value from every start cell for each task. (n, S)"""
    S = size * size
    return dp_values(size, H, np.stack([tasks // S, tasks % S], axis=1), repeat=False, agg=agg)


def small_darkroom(size: int, H: int, hard: bool) -> DarkRoomFamily:
    return DarkRoomFamily("darkroom", "algodistill/DarkRoom-v0", size=size, hard=hard, num_test=2, episode_length=H)


# --------------------------------------------------------------------------------------------------
# Specs and shapes


@pytest.mark.parametrize(
    ("name", "obs_shape", "states", "actions", "H", "tasks"),
    [
        ("bandit", (1,), 1, 10, 1, 13_000),
        ("darkroom", (2,), 81, 5, 20, 81),
        ("darkroom-hard", (2,), 289, 5, 20, 289),
        ("keydoor", (2,), 81, 5, 50, 6561),
    ],
)
def test_spec_matches_paper(name, obs_shape, states, actions, H, tasks):
    s = get_family(name).spec
    assert (s.name, s.obs_shape, s.num_actions, s.episode_length, s.num_tasks) == (name, obs_shape, actions, H, tasks)
    assert s.obs_dtype == "uint8" and s.obs_high is not None and len(s.obs_high) == obs_shape[0]
    assert s.num_states == states  # the bandit's single state is what makes it a bandit to the sources


def test_spec_record_keeps_the_schema_1_keys_in_order():
    """Manifests store `record()`: its keys and their order are part of the dataset bytes of the first release."""
    s = get_family("darkroom").spec
    assert list(s.record().items()) == [
        ("name", "darkroom"),
        ("gym_id", "algodistill/DarkRoom-v0"),
        ("obs_dim", 2),
        ("obs_high", [9, 9]),
        ("num_actions", 5),
        ("episode_length", 20),
        ("num_tasks", 81),
        ("description", s.description),
    ]
    assert get_family("bandit").spec.record()["obs_high"] == [1] and get_family("bandit").spec.record()["obs_dim"] == 1
    assert s.describe_obs() == "2 ints < (9, 9)"


def test_spec_record_of_other_observations_adds_shape_and_dtype():
    base = get_family("darkroom").spec
    image = dataclasses.replace(base, name="img", obs_shape=(72, 96, 3), obs_high=None)
    assert image.num_states is None and image.describe_obs() == "uint8 (72, 96, 3)"
    r = image.record()
    assert list(r)[-2:] == ["obs_shape", "obs_dtype"]
    assert (r["obs_dim"], r["obs_high"], r["obs_shape"], r["obs_dtype"]) == (72 * 96 * 3, None, [72, 96, 3], "uint8")
    wide = dataclasses.replace(base, obs_dtype="int16").record()  # categorical but not uint8: also spelled out
    assert (wide["obs_shape"], wide["obs_dtype"], wide["obs_high"]) == ([2], "int16", [9, 9])
    grid = dataclasses.replace(base, obs_shape=(1, 2)).record()  # categorical but not a flat vector
    assert (grid["obs_dim"], grid["obs_shape"]) == (2, [1, 2])
    with pytest.raises(ValueError, match="one bound per component"):
        EnvSpec("bad", "x", (3,), "uint8", (9, 9), 5, 20, 81, "obs_high too short")


def test_register_family_adds_a_family_and_refuses_a_duplicate_name(monkeypatch):
    # A private copy of the registry, so the toy family does not outlive this test.
    monkeypatch.setattr(envs, "_FAMILIES", dict(envs._FAMILIES))
    built = []

    def make():
        built.append(1)
        return small_darkroom(3, 2, hard=False)

    register_family("toy-room", make)
    assert built == []  # built on first use, not at registration
    f = get_family("toy-room")
    assert f is get_family("toy-room") and built == [1]  # and built once
    assert f.spec.obs_shape == (2,) and f.spec.num_states == 9
    for name in ("toy-room", "darkroom"):
        with pytest.raises(ValueError, match=f"'{name}' is registered already"):
            register_family(name, make)
    assert get_family("darkroom").spec.name == "darkroom"  # the built-in family is untouched


@pytest.mark.parametrize("name", ENV_NAMES)
def test_shapes_dtypes_and_fixed_episode_length(name):
    f = get_family(name)
    N, H = 7, f.spec.episode_length
    env = f.make(f.split("train")[:N], seed=3)
    g = np.random.default_rng(0)
    for _ in range(3):  # several episodes: done exactly at the last step of each
        o = env.reset()
        assert o.shape == (N, *f.spec.obs_shape) and o.dtype == np.dtype(f.spec.obs_dtype) == np.uint8
        for t in range(H):
            o, r, d = env.step(g.integers(0, f.spec.num_actions, N))
            assert o.shape == (N, *f.spec.obs_shape) and o.dtype == np.dtype(f.spec.obs_dtype) == np.uint8
            assert f.spec.obs_high is None or (o < np.array(f.spec.obs_high)).all()  # images: any uint8
            assert r.shape == (N,) and r.dtype == np.float32
            assert d.shape == (N,) and d.dtype == bool
            assert (d == (t == H - 1)).all()
        with pytest.raises(RuntimeError, match="reset"):  # no hidden autoreset step after done
            env.step(np.zeros(N, dtype=np.int64))


@pytest.mark.parametrize("name", ENV_NAMES)
def test_step_before_reset_raises(name):
    env = get_family(name).make(np.array([0]))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0]))


# --------------------------------------------------------------------------------------------------
# Dark Room


def test_darkroom_hand_worked_trajectory():
    env = get_family("darkroom").make(np.array([cell(4, 6)]))
    assert env.reset().tolist() == [[4, 4]]  # centre start
    actions = [UP, UP, NOOP, RIGHT, LEFT, DOWN, *[LEFT] * 5, *[DOWN] * 6, RIGHT, RIGHT, UP]
    obs, rewards, dones = run_episode(env, actions)
    assert obs == [
        [4, 5], [4, 6], [4, 6], [5, 6], [4, 6], [4, 5],
        [3, 5], [2, 5], [1, 5], [0, 5], [0, 5],  # the left wall: the 5th left stays
        [0, 4], [0, 3], [0, 2], [0, 1], [0, 0], [0, 0],  # the bottom wall
        [1, 0], [2, 0], [2, 1],
    ]  # fmt: skip
    assert rewards == [0, 1, 1, 0, 1, 0] + [0] * 14  # reward on every step that ends on the goal
    assert dones == [False] * 19 + [True]


@pytest.mark.parametrize("name", ["darkroom", "darkroom-hard"])
def test_darkroom_walls_on_every_side(name):
    f = get_family(name)
    m, c = f.size - 1, f.size // 2
    env = f.make(np.array([0]))
    for a, end in [(LEFT, [0, c]), (RIGHT, [m, c]), (UP, [c, m]), (DOWN, [c, 0])]:
        obs, _, _ = run_episode(env, [a] * (c + 3))
        assert obs[c - 1] == end and obs[c:] == [end] * 3  # reached the wall, then stays against it


def test_darkroom_goal_at_centre_pays_every_noop():
    f = get_family("darkroom")
    _, rewards, _ = run_episode(f.make(np.array([cell(4, 4)])), [NOOP] * 20)
    assert rewards == [1.0] * 20 and f.optimal_return(np.array([cell(4, 4)])).tolist() == [20.0]


def test_darkroom_hard_rewards_once_per_episode():
    f = get_family("darkroom-hard")
    goal = cell(8, 10, 17)
    env = f.make(np.array([goal]))
    for _ in range(2):  # and again in the next episode
        assert env.reset().tolist() == [[8, 8]]
        obs, rewards, dones = run_episode(env, [UP, UP, NOOP, DOWN, UP, *[NOOP] * 15], reset=False)
        assert obs[1] == [8, 10] and obs[4] == [8, 10]
        assert rewards == [0, 1] + [0] * 18
        assert dones == [False] * 19 + [True]
    _, rewards, _ = run_episode(f.make(np.array([cell(8, 8, 17)])), [NOOP] * 20)  # goal at the centre
    assert rewards == [1] + [0] * 19


def test_darkroom_optimal_return_is_21_minus_distance():
    f = get_family("darkroom")
    goals = np.arange(81)
    d = np.abs(goals // 9 - 4) + np.abs(goals % 9 - 4)
    expected = np.where(d == 0, 20, 21 - d)  # paper Sec. 4.1: 21 - d
    np.testing.assert_array_equal(f.optimal_return(goals), expected)
    assert f.optimal_return(goals).mean() == pytest.approx(16.54, abs=0.01)  # "~16.5"
    assert (f.optimal_return(goals).min(), f.optimal_return(goals).max()) == (13, 20)
    np.testing.assert_array_equal(get_family("darkroom-hard").optimal_return(np.arange(289)), 1.0)
    # Every goal step carries reward for some goal: the uniform policy's returns sum to H over goals.
    assert f.random_return(goals).sum() == pytest.approx(20.0)


@pytest.mark.parametrize("name", ["darkroom", "darkroom-hard"])
def test_darkroom_reference_returns_equal_brute_force(name):
    f = get_family(name)
    goals = np.arange(f.spec.num_tasks)
    H = f.spec.episode_length
    np.testing.assert_allclose(f.optimal_return(goals), darkroom_dp(f.size, H, f.hard, goals, np.max), atol=1e-12)
    np.testing.assert_allclose(f.random_return(goals), darkroom_dp(f.size, H, f.hard, goals, np.mean), atol=1e-12)


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize(("size", "H"), [(3, 1), (3, 2), (3, 4), (4, 1), (4, 3), (4, 6), (5, 2), (5, 9)])
def test_small_darkroom_reference_returns_equal_brute_force(size, H, hard):
    """Short episodes on small grids reach the edge cases: goals farther than H, H == distance."""
    f = small_darkroom(size, H, hard)
    goals = np.arange(size * size)
    np.testing.assert_allclose(f.optimal_return(goals), darkroom_dp(size, H, hard, goals, np.max), atol=1e-12)
    np.testing.assert_allclose(f.random_return(goals), darkroom_dp(size, H, hard, goals, np.mean), atol=1e-12)
    env = f.make(goals)  # and the expert attains the optimum on every goal
    env.reset()
    total = np.zeros(len(goals))
    for _ in range(H):
        total += env.step(env.expert_action())[1]
    np.testing.assert_array_equal(total, f.optimal_return(goals))


@pytest.mark.parametrize("name", ["darkroom", "darkroom-hard"])
def test_darkroom_expert_attains_optimal_return_on_every_goal(name):
    f = get_family(name)
    goals = np.arange(f.spec.num_tasks)
    env = f.make(goals)
    for _ in range(2):
        env.reset()
        total = np.zeros(len(goals))
        for _ in range(f.spec.episode_length):
            _, r, _ = env.step(env.expert_action())
            total += r
        np.testing.assert_array_equal(total, f.optimal_return(goals))


def monte_carlo_returns(f, tasks: np.ndarray, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the uniform policy's episode return per task, from reps rollouts each."""
    env = f.make(np.repeat(tasks, reps), seed=seed)
    g = np.random.default_rng(seed)
    env.reset()
    total = np.zeros(len(tasks) * reps)
    for _ in range(f.spec.episode_length):
        total += env.step(g.integers(0, f.spec.num_actions, env.num_envs))[1]
    total = total.reshape(len(tasks), reps)
    return total.mean(axis=1), total.std(axis=1, ddof=1) / np.sqrt(reps)


@pytest.mark.parametrize(("name", "reps"), [("darkroom", 400), ("darkroom-hard", 100), ("keydoor", 500)])
def test_random_return_matches_monte_carlo(name, reps):
    f = get_family(name)
    n = f.spec.num_tasks
    tasks = np.arange(n) if n < 1000 else np.random.default_rng(1).choice(n, 40, replace=False)
    mean, se = monte_carlo_returns(f, tasks, reps)
    exact = f.random_return(tasks)
    # Per task: 5 standard errors, plus 5/reps for rare-event tasks whose sample has no hit at all.
    assert (np.abs(mean - exact) <= 5 * se + 5 / reps).all(), np.c_[tasks, mean, exact, se]
    # Pooled over tasks the Monte-Carlo mean is much tighter.
    pooled_se = np.sqrt((se**2).sum()) / len(tasks)
    assert abs(mean.mean() - exact.mean()) <= 5 * pooled_se


# --------------------------------------------------------------------------------------------------
# Key-to-Door


def keydoor_task(key: int, door: int, size: int = 9) -> int:
    return key * size * size + door


@pytest.fixture(scope="module")
def centre_stream() -> int:
    """A stream id (seed 0) whose first Key-to-Door episode starts at the centre (4, 4)."""
    env = get_family("keydoor").make(np.zeros(500, dtype=np.int64), seed=0)
    starts = env.reset()
    return int(np.flatnonzero((starts == [4, 4]).all(axis=1))[0])


def test_keydoor_door_before_key_gives_nothing_then_key_then_door_gives_two(centre_stream):
    f = get_family("keydoor")
    task = keydoor_task(key=cell(5, 6), door=cell(5, 4))
    env = f.make(np.array([task]), seed=0, ids=np.array([centre_stream]))
    assert env.reset().tolist() == [[4, 4]]
    actions = [RIGHT, UP, UP, DOWN, DOWN, NOOP, UP, DOWN, *[NOOP] * 42]
    obs, rewards, dones = run_episode(env, actions, reset=False)
    assert obs[:8] == [[5, 4], [5, 5], [5, 6], [5, 5], [5, 4], [5, 4], [5, 5], [5, 4]]
    assert rewards[:8] == [0, 0, 1, 0, 1, 0, 0, 0]  # the door is closed without the key; each pays once
    assert sum(rewards) == 2 and dones == [False] * 49 + [True]  # the episode does not end at the door


def test_keydoor_key_on_door_needs_an_extra_step(centre_stream):
    f = get_family("keydoor")
    env = f.make(np.array([keydoor_task(cell(5, 4), cell(5, 4))]), seed=0, ids=np.array([centre_stream]))
    _, rewards, _ = run_episode(env, [RIGHT, NOOP, NOOP, LEFT, RIGHT] + [NOOP] * 45)
    assert rewards[:5] == [1, 1, 0, 0, 0] and sum(rewards) == 2


def test_keydoor_key_at_start_pays_after_one_step(centre_stream):
    f = get_family("keydoor")
    env = f.make(np.array([keydoor_task(cell(4, 4), cell(3, 4))]), seed=0, ids=np.array([centre_stream]))
    _, rewards, _ = run_episode(env, [NOOP, LEFT] + [NOOP] * 48)
    assert rewards[:2] == [1, 1] and sum(rewards) == 2


def test_keydoor_random_start_is_uniform_varies_and_is_deterministic():
    f = get_family("keydoor")
    env = f.make(np.zeros(1, dtype=np.int64), seed=7)
    starts = [tuple(env.reset()[0]) for _ in range(30)]
    assert len(set(starts)) > 10  # varies across episodes
    again = f.make(np.array([1234]), seed=7)  # the start does not depend on the task
    assert [tuple(again.reset()[0]) for _ in range(30)] == starts
    other = f.make(np.zeros(1, dtype=np.int64), seed=8)
    assert [tuple(other.reset()[0]) for _ in range(30)] != starts
    # Uniform over the 81 cells: chi-square over 8100 streams (df = 80; 99.99th percentile ~ 142).
    big = f.make(np.zeros(8100, dtype=np.int64), seed=1)
    start = big.reset().astype(np.int64)
    counts = np.bincount(start[:, 0] * 9 + start[:, 1], minlength=81)
    assert ((counts - 100) ** 2 / 100).sum() < 142


@pytest.mark.parametrize(("size", "H"), [(3, 1), (3, 2), (3, 3), (3, 5), (4, 2), (4, 4), (4, 7)])
def test_small_keydoor_reference_returns_equal_brute_force(size, H):
    S = size * size
    f = KeyToDoorFamily(size=size, episode_length=H, num_train=S * S // 2)
    tasks = np.arange(S * S)
    best = keydoor_dp(size, H, tasks, np.max)  # (n, S)
    np.testing.assert_allclose(f.optimal_return(tasks), best.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(f.random_return(tasks), keydoor_dp(size, H, tasks, np.mean).mean(axis=1), atol=1e-12)
    # The expert earns the optimum of its own start cell in every episode.
    env = f.make(tasks, seed=0)
    for _ in range(3):
        start = env.reset().astype(np.int64)
        total = np.zeros(len(tasks))
        for _ in range(H):
            total += env.step(env.expert_action())[1]
        np.testing.assert_array_equal(total, best[tasks, start[:, 0] * size + start[:, 1]])


def test_keydoor_reference_returns_equal_brute_force():
    f = get_family("keydoor")
    g = np.random.default_rng(0)
    diagonal = keydoor_task(np.arange(81), np.arange(81))  # key == door
    tasks = np.concatenate([diagonal, g.choice(6561, 200, replace=False)])
    np.testing.assert_allclose(f.optimal_return(tasks), keydoor_dp(9, 50, tasks, np.max).mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(f.random_return(tasks), keydoor_dp(9, 50, tasks, np.mean).mean(axis=1), atol=1e-12)
    np.testing.assert_array_equal(f.optimal_return(np.arange(6561)), 2.0)  # 50 steps always suffice on 9x9


def test_keydoor_expert_earns_two_on_every_task():
    f = get_family("keydoor")
    env = f.make(np.arange(6561), seed=5)
    for _ in range(2):
        env.reset()
        total = np.zeros(6561)
        for _ in range(50):
            total += env.step(env.expert_action())[1]
        np.testing.assert_array_equal(total, 2.0)


# --------------------------------------------------------------------------------------------------
# Bandit


def test_bandit_trials():
    f = get_family("bandit")
    env = f.make(np.array([0, 10_500]), seed=0)
    for _ in range(3):
        assert env.reset().tolist() == [[0], [0]]  # a constant observation
        o, r, d = env.step(np.array([1, 2]))
        assert o.tolist() == [[0], [0]] and set(r.tolist()) <= {0.0, 1.0} and d.tolist() == [True, True]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.array([1, 2]))
    np.testing.assert_array_equal(env.expert_action(), f.probs[[0, 10_500]].argmax(axis=1))


def test_bandit_payouts_match_arm_probabilities():
    f = get_family("bandit")
    tasks = np.array([0, 1, 10_000, 11_000])
    task_of_env = np.repeat(tasks, 10)  # one stream per (task, arm)
    arm = np.tile(np.arange(10), len(tasks))
    env = f.make(task_of_env, seed=0)
    trials = 3000
    wins = np.zeros(len(arm))
    for _ in range(trials):
        env.reset()
        wins += env.step(arm)[1]
    p = f.probs[task_of_env, arm]
    assert (np.abs(wins / trials - p) <= 5 * np.sqrt(p * (1 - p) / trials) + 1e-3).all()


def test_bandit_bank_favours_odd_arms_in_training_and_even_arms_in_test():
    f = get_family("bandit")
    odd_high = (f.probs[:, 1::2] >= 0.5).all(axis=1) & (f.probs[:, 0::2] < 0.5).all(axis=1)
    even_high = (f.probs[:, 0::2] >= 0.5).all(axis=1) & (f.probs[:, 1::2] < 0.5).all(axis=1)
    assert (odd_high | even_high)[f.split("train")].all() and (odd_high | even_high)[f.split("test")].all()
    assert (odd_high | even_high)[f.split("test_odd")].all()
    for split, favoured, n in [("train", odd_high, 10_000), ("test", even_high, 1000), ("test_odd", odd_high, 1000)]:
        frac = favoured[f.split(split)].mean()
        assert abs(frac - 0.95) <= 5 * np.sqrt(0.95 * 0.05 / n), (split, frac)
    uniform = f.probs[f.split("test_uniform")]
    assert abs(uniform.mean() - 0.5) < 0.01 and uniform.min() < 0.01 and uniform.max() > 0.99
    assert (f.probs >= 0).all() and (f.probs < 1).all()


def test_bandit_reference_returns():
    f = get_family("bandit")
    tasks = np.array([0, 5, 10_000, 11_999])
    np.testing.assert_array_equal(f.optimal_return(tasks), f.probs[tasks].max(axis=1))
    np.testing.assert_array_equal(f.random_return(tasks), f.probs[tasks].mean(axis=1))
    # Monte Carlo: uniform pulls and expert pulls, 8 streams x 250 trials per task.
    env = f.make(np.repeat(tasks, 8), seed=1)
    g = np.random.default_rng(0)
    rand, best = np.zeros(env.num_envs), np.zeros(env.num_envs)
    for _ in range(250):
        env.reset()
        rand += env.step(g.integers(0, 10, env.num_envs))[1]
        env.reset()
        best += env.step(env.expert_action())[1]
    n = 8 * 250
    for got, exact in [(rand, f.random_return(tasks)), (best, f.optimal_return(tasks))]:
        got = got.reshape(len(tasks), 8).sum(axis=1) / n
        assert (np.abs(got - exact) <= 5 * np.sqrt(exact * (1 - exact) / n) + 1e-3).all()


# --------------------------------------------------------------------------------------------------
# Splits


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("bandit", {"train": 10_000, "test": 1000, "test_uniform": 1000, "test_odd": 1000}),
        ("darkroom", {"train": 65, "test": 16}),
        ("darkroom-hard", {"train": 231, "test": 58}),
        ("keydoor", {"train": 2000, "test": 4561}),
    ],
)
def test_splits_disjoint_covering_sorted(name, sizes):
    f = get_family(name)
    assert f.split_names == tuple(sizes)
    parts = [f.split(k) for k in f.split_names]
    assert {k: len(p) for k, p in zip(f.split_names, parts, strict=True)} == sizes
    everything = np.concatenate(parts)
    assert len(np.unique(everything)) == len(everything) == f.spec.num_tasks  # disjoint and covering
    assert all((np.diff(p) > 0).all() for p in parts)


FRESH = {
    "bandit": BanditFamily,
    "darkroom": lambda: DarkRoomFamily("darkroom", "algodistill/DarkRoom-v0", size=9, hard=False, num_test=16),
    "darkroom-hard": lambda: DarkRoomFamily("darkroom-hard", "algodistill/DarkRoomHard-v0", 17, True, 58),
    "keydoor": KeyToDoorFamily,
    "watermaze": WatermazeFamily,
    "watermaze-small": lambda: WatermazeFamily("watermaze-small", "algodistill/WatermazeSmall-v0", (36, 48)),
}

# Fingerprints of the splits: a change to them (or to numpy's permutation) would silently change which
# tasks are held out, so it must be deliberate.
SPLIT_CRC = {
    ("bandit", "train"): 0x96BCF51,
    ("darkroom", "test"): 0x1E156196,
    ("darkroom-hard", "test"): 0x7BA4453E,
    ("keydoor", "test"): 0xFC5CDB7F,
}


@pytest.mark.parametrize("name", ENV_NAMES)
def test_splits_are_deterministic(name):
    a, b = get_family(name), FRESH[name]()
    assert a is not b
    for k in a.split_names:
        np.testing.assert_array_equal(a.split(k), b.split(k))
    for (fam, k), crc in SPLIT_CRC.items():
        if fam == name:
            assert zlib.crc32(b.split(k).astype("<i8").tobytes()) == crc
    if name == "darkroom":
        # goal 40, the start cell (4, 4), stays a training task; goal 20 comes next in the permutation
        assert b.split("test").tolist() == [2, 5, 11, 14, 15, 18, 20, 23, 30, 49, 55, 62, 65, 69, 70, 74]
        assert b.centre == 40 and b.centre in b.split("train")


def test_bandit_bank_is_deterministic():
    np.testing.assert_array_equal(BanditFamily().probs, get_family("bandit").probs)
    probs = get_family("bandit").probs
    assert zlib.crc32(probs[:12_000].astype("<f8").tobytes()) == 0xF81573F0  # the bank before test_odd was added
    assert zlib.crc32(probs.astype("<f8").tobytes()) == 0x672953EF


# --------------------------------------------------------------------------------------------------
# Streams: a learner's randomness depends on (seed, its global id), not on its batch


@pytest.mark.parametrize("name", ["bandit", "keydoor"])
def test_stream_j_of_a_batch_equals_a_batch_of_one(name):
    f = get_family(name)
    g = np.random.default_rng(0)
    N, episodes = 6, 4
    tasks = g.choice(f.spec.num_tasks, N)
    ids = np.array([3, 17, 0, 99, 12345, 8])
    H = f.spec.episode_length
    actions = g.integers(0, f.spec.num_actions, (episodes, H, N))

    def play(env, cols):
        out = []
        for e in range(episodes):
            out.append(env.reset())
            for t in range(H):
                o, r, d = env.step(actions[e, t, cols])
                out += [o, r[:, None], d[:, None]]
        return np.concatenate(out, axis=1)  # (n, ...)

    batch = play(f.make(tasks, seed=11, ids=ids), np.arange(N))
    for j in range(N):
        single = play(f.make(tasks[j : j + 1], seed=11, ids=ids[j : j + 1]), np.array([j]))
        np.testing.assert_array_equal(batch[j], single[0])
    # Default ids are arange(N): stream j of a default batch is the batch of one with ids=[j].
    default = play(f.make(tasks, seed=11), np.arange(N))
    np.testing.assert_array_equal(default[4], play(f.make(tasks[4:5], seed=11, ids=np.array([4])), np.array([4]))[0])
    assert not np.array_equal(default, batch)  # and other ids give other data


def test_seed_changes_bandit_payouts():
    f = get_family("bandit")
    draws = []
    for seed in (0, 0, 1):
        env = f.make(np.zeros(64, dtype=np.int64), seed=seed)
        env.reset()
        draws.append(env.step(np.ones(64, dtype=np.int64))[1])
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])


def test_keydoor_start_uses_the_rng_start_stream():
    """The documented draw: episode e's start is rng.integers(keys, e, S, stream=Stream.KEYDOOR_START)."""
    f = get_family("keydoor")
    ids = np.array([5, 6, 7])
    env = f.make(np.zeros(3, dtype=np.int64), seed=42, ids=ids)
    keys = rng.learner_keys(42, ids)
    for e in range(3):
        start = env.reset().astype(np.int64)
        np.testing.assert_array_equal(
            start[:, 0] * 9 + start[:, 1], rng.integers(keys, e, 81, stream=rng.Stream.KEYDOOR_START)
        )


# --------------------------------------------------------------------------------------------------
# Bad input: one line naming the value and the allowed range


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and len(msg) < 200, msg
    return msg


def test_unknown_env_name():
    with pytest.raises(UserError) as e:
        get_family("darkroomm")
    msg = one_line(e)
    assert "'darkroomm'" in msg and all(n in msg for n in ENV_NAMES)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_task_index_out_of_range(name):
    f = get_family(name)
    n = f.spec.num_tasks
    for bad in (n, -1, 10**9):
        with pytest.raises(UserError) as e:
            f.make(np.array([0, bad]))
        assert f"task={bad}" in one_line(e) and f"[0, {n})" in str(e.value)
        with pytest.raises(UserError, match=rf"\[0, {n}\)"):
            f.optimal_return(np.array([bad]))


@pytest.mark.parametrize("bad", [np.zeros((2, 2), dtype=np.int64), np.array([0.5, 1.0]), np.zeros((64, 64), dtype=int)])
def test_malformed_task_ids(bad):
    with pytest.raises(UserError) as e:
        get_family("darkroom").make(bad)
    assert "darkroom" in one_line(e) and "integer" in str(e.value)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_malformed_actions(name):
    f = get_family(name)
    A = f.spec.num_actions
    env = f.make(np.arange(4), seed=0)
    env.reset()
    for bad, shown in [
        (np.array([0, 1, 2, A]), f"action={A}"),
        (np.array([0, -1, 2, 1]), "action=-1"),
        (np.array([0, 1, 2]), "action=array([0, 1, 2])"),
        (np.array([0.0, 1.0, 2.0, 1.5]), "action=array([0. , 1. , 2. , 1.5])"),
        (np.array([True, False, True, False]), "action=array([ True, False,"),
        (np.zeros(4096), "action=array([0., 0., 0.,"),  # a big array still gives one line
        (["a", "b", "c", "d"], "action=['a', 'b', 'c', 'd']"),
        (2, "action=2"),
    ]:
        with pytest.raises(UserError) as e:
            env.step(bad)
        msg = one_line(e)
        assert msg.startswith(shown) and f"[0, {A})" in msg, msg
    env.step(np.zeros(4, dtype=np.int8))  # any integer dtype in range is fine, and the env still steps
