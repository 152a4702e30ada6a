"""Q-learning over the env's privileged state (`privq`) and Watermaze's privileged state: the index on
hand-worked positions, the update on a hand-worked episode, determinism, batch invariance, the recorded
observation, the registry, and learning progress.

The privileged grid has cells of side 0.19 centred on the pool's centre, 11 a side (cell (i, j) holds
the positions nearest to ((i - 5) 0.19, (j - 5) 0.19)), so the state of (cell (i, j), heading k, reached
f) is ((i * 11 + j) * 12 + k) * 2 + f, out of 11 * 11 * 12 * 2 = 2904.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from algodistill.envs import get_family
from algodistill.envs import watermaze as wm
from algodistill.envs.base import HidesState, PrivilegedState
from algodistill.errors import UserError
from algodistill.rng import learner_keys
from algodistill.sources import PrivQConfig, SourceConfig, check_source, fitting_sources, make_source, rollout
from algodistill.sources.privq import PrivQ

FORWARD, BACKWARD, STRAFE_LEFT, STRAFE_RIGHT, TURN_LEFT, TURN_RIGHT, TURN_LEFT_FORWARD, TURN_RIGHT_FORWARD = range(8)


def state(i: int, j: int, turn: int, reached: int) -> int:
    return ((i * 11 + j) * 12 + turn) * 2 + reached


class Blind(wm.WatermazeEnv):
    """Watermaze without drawing frames (an empty observation): the learner reads only the privileged state."""

    def render(self) -> np.ndarray:
        return np.zeros((self.num_envs, 0), dtype=np.uint8)


def _run(ids: np.ndarray, steps: int, seed: int = 3, env_name: str = "watermaze-small"):
    fam = get_family(env_name)
    train = fam.split("train")
    env = fam.make(train[(ids * 37) % len(train)])  # a different task per learner
    src: Any = make_source("privq", env, seed, ids, steps, SourceConfig())
    return rollout(env, src, steps)[0], src


# ---------------------------------------------------------------------------------------------------------------
# The privileged state on hand-worked positions


def test_num_privileged_states_per_family() -> None:
    assert wm.privileged_cells() == 11 and wm.PRIVILEGED_CELL == 0.19
    assert get_family("watermaze").num_privileged_states == get_family("watermaze-small").num_privileged_states == 2904
    for name in ("bandit", "darkroom", "darkroom-hard", "keydoor"):
        assert get_family(name).num_privileged_states == 0
        assert not isinstance(get_family(name).make(np.arange(2)), PrivilegedState)
    env = get_family("watermaze").make(np.arange(2))
    assert isinstance(env, PrivilegedState) and env.num_privileged_states == 2904
    assert not isinstance(env, HidesState)  # no hidden learner state for `ucbq`: it would need a table index


def test_index_on_hand_worked_positions() -> None:
    pos = np.array(
        [
            [0.0, 0.0],  # the start: cell (5, 5)
            [0.1, 0.0],  # 0.1 / 0.19 + 0.5 = 1.03 -> i = 6
            [0.2, 0.0],  # 1.55 -> still i = 6
            [0.95, 0.0],  # east wall: 5.5 -> i = 10, the last cell
            [-0.95, 0.0],  # west wall: -4.5 -> i = 0
            [0.0, 0.95],  # north wall: j = 10
            [0.095, -0.095],  # on the boundaries: 0.5 + 0.5 = 1 -> i = 6 (ties up); -0.5 + 0.5 = 0 -> j = 5
            [-0.3, 0.5],  # -1.08 -> -2 -> i = 3; 3.13 -> 3 -> j = 8
        ]
    )
    turn = np.array([0, 0, 0, 3, 6, 11, 1, 4])
    reached = np.array([0, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    expected = [
        state(5, 5, 0, 0),  # 1440
        state(6, 5, 0, 0),
        state(6, 5, 0, 1),
        state(10, 5, 3, 1),  # (115 * 12 + 3) * 2 + 1 = 2767
        state(0, 5, 6, 0),
        state(5, 10, 11, 0),
        state(6, 5, 1, 1),
        state(3, 8, 4, 0),
    ]
    assert expected[0] == 1440 and expected[3] == 2767
    idx = wm.privileged_index(pos, turn, reached)
    assert idx.dtype == np.int64 and idx.tolist() == expected
    env: Any = get_family("watermaze").make(np.arange(3))
    env.reset()
    assert env.privileged_state().tolist() == [1440] * 3  # the start: centre cell, facing +x, not reached


def test_index_is_in_range_and_decodes_to_the_nearest_cell() -> None:
    # Positions on the wall circle and a ring inside it, every heading, both flags: every index is in
    # [0, 2904) and decodes back to the position's nearest cell centre, its heading and its flag.
    b = np.linspace(0, 2 * math.pi, 721)[:, None]
    r = np.array([wm.RULES.reach, 0.5, 0.0])[None, :]
    pos = np.stack([(r * np.cos(b)).ravel(), (r * np.sin(b)).ravel()], axis=1)  # (M, 2)
    M = len(pos)
    for k in range(12):
        for f in (False, True):
            idx = wm.privileged_index(pos, np.full(M, k), np.full(M, f))
            assert idx.min() >= 0 and idx.max() < 2904
            cell, rest = np.divmod(idx, 24)
            np.testing.assert_array_equal(rest, 2 * k + f)
            centre = (np.stack(np.divmod(cell, 11), axis=1) - 5) * 0.19  # (M, 2)
            assert (np.abs(pos - centre) <= 0.095 + 1e-12).all()  # the nearest cell centre
    wall = wm.privileged_index(pos[::3], np.zeros(len(pos[::3]), dtype=np.int64), np.zeros(len(pos[::3]), bool))
    cells = np.unique(wall // 24)
    assert {0 * 11 + 5, 10 * 11 + 5, 5 * 11 + 0, 5 * 11 + 10} <= set(cells.tolist())  # the four extreme cells


def test_env_state_follows_the_dynamics_and_the_reward() -> None:
    # Along a random walk the env's index is its (pos, turn, reached) indexed, and the flag flips on the
    # step that pays and back at reset.
    fam: Any = get_family("watermaze")
    env = Blind(fam, fam.centres[fam.split("train")[:64]], fam.split("train")[:64])
    g = np.random.default_rng(0)
    env.reset()
    paid = np.zeros(64, dtype=bool)
    rewards = 0.0
    for _ in range(120):
        _, r_t, done_t = env.step(g.integers(0, 8, 64))
        paid |= r_t > 0
        rewards += r_t.sum()
        s = env.privileged_state()
        np.testing.assert_array_equal(s, wm.privileged_index(env.pos, env.turn, env.reached))
        np.testing.assert_array_equal(s % 2, paid)
        if done_t.all():
            env.reset()
            paid[:] = False
            assert (env.privileged_state() % 2 == 0).all()
    assert rewards >= 5  # the walk did reach platforms (27 times), so the flag was 1 somewhere


# ---------------------------------------------------------------------------------------------------------------
# The update against a hand-worked episode


def test_update_hand_worked() -> None:
    # Platform at (0.25, 0); lr 0.5, gamma 0.9, Q starts at 0.4. The learner's states: the start (0, 0) is
    # cell (5, 5); (0.1, 0) and (0.2, 0) are cell (6, 5); (0.2, 0) is on the platform (0.05 from its centre).
    fam: Any = get_family("watermaze-small")
    env = fam.make_at(np.array([[0.25, 0.0]]))
    src = PrivQ(env, learner_keys(0, np.array([0])), 1000, PrivQConfig(lr=0.5, gamma=0.9, init_q=0.4))
    s_start, s_near, s_on, s_turned = state(5, 5, 0, 0), state(6, 5, 0, 0), state(6, 5, 0, 1), state(6, 5, 1, 1)
    o_t = env.reset()
    rewards = []
    for a in (FORWARD, FORWARD, TURN_LEFT, "reset", FORWARD):
        if a == "reset":  # a new episode (mid-way: the env allows it, the learner does not care)
            o_t = env.reset()
            continue
        src.act(o_t)  # reads the state; we choose the action ourselves
        o_tp1, r_t, done_t = env.step(np.array([a]))
        src.update(o_t, np.array([a]), r_t, o_tp1, done_t)
        rewards.append(float(r_t[0]))
        o_t = o_tp1
    assert rewards == [0.0, 1.0, 0.0, 0.0]
    q = src.q[0]
    # t0: start -> near, r 0: target 0 + 0.9 * 0.4 = 0.36; Q = 0.4 + 0.5 (0.36 - 0.4) = 0.38.
    # t1: near -> on (reached), r 1: target 1 + 0.9 * 0.4 = 1.36; Q = 0.4 + 0.5 (1.36 - 0.4) = 0.88.
    # t2: on, rotate left -> turned (reached, no second reward): target 0.36; Q = 0.38.
    # t3 (new episode): start -> near, r 0: target 0.9 * max Q(near) = 0.9 * 0.88 = 0.792;
    #     Q = 0.38 + 0.5 (0.792 - 0.38) = 0.586.
    assert q[s_start, FORWARD] == pytest.approx(0.586)
    assert q[s_near, FORWARD] == pytest.approx(0.88)
    assert q[s_on, TURN_LEFT] == pytest.approx(0.38)
    changed = np.argwhere(q != 0.4)
    assert sorted(map(tuple, changed.tolist())) == sorted([(s_start, FORWARD), (s_near, FORWARD), (s_on, TURN_LEFT)])
    assert (q[s_turned] == 0.4).all() and src.t == 4


def test_epsilon_schedule_and_greedy_ties() -> None:
    env = get_family("watermaze-small").make(np.arange(200) % 900)
    src = PrivQ(env, learner_keys(0, np.arange(200)), 1000, PrivQConfig())  # eps 1 -> 0 over 700 steps
    assert src.epsilon(0) == 1.0 and src.epsilon(350) == pytest.approx(0.5) and src.epsilon(700) == 0.0
    src.t = 900  # greedy, and every Q is 0: the tie-break spreads the first actions over all eight
    a = src.act(env.reset())
    assert a.dtype == np.int64 and a.shape == (200,) and set(np.unique(a)) == set(range(8))


def test_state_tiebreak_acts_alike_in_a_state_until_its_values_differ() -> None:
    env = get_family("watermaze-small").make(np.arange(200) % 900)
    src = PrivQ(env, learner_keys(0, np.arange(200)), 1000, PrivQConfig(tiebreak="state"))
    src.t = 900  # greedy; every Q is 0
    o = env.reset()
    first = src.act(o)
    assert set(np.unique(first)) == set(range(8))  # spread over learners, as with "step"
    for t in (901, 950):  # the same state later: the same action (with "step" the draws change with t)
        src.t = t
        np.testing.assert_array_equal(src.act(o), first)
    src.q[0, src.s_t[0], (first[0] + 1) % 8] = 1.0  # once a value differs, the greedy action follows it
    assert src.act(o)[0] == (first[0] + 1) % 8
    step = PrivQ(env, learner_keys(0, np.arange(200)), 1000, PrivQConfig())
    step.t = 900
    a900 = step.act(o)
    step.t = 901
    assert (step.act(o) != a900).any()


# ---------------------------------------------------------------------------------------------------------------
# Contracts: the registry, determinism, batch invariance, the recorded observation


def test_registry_fits_envs_with_a_privileged_state() -> None:
    for name in ("watermaze", "watermaze-small"):
        check_source("privq", name)
        assert fitting_sources(name) == ("privq", "dqn", "replay", "noise", "expert", "random")
    with pytest.raises(
        UserError,
        match=r"^source='privq' does not fit env='darkroom' \(it needs a privileged state\): "
        r"choose one of a2c, qlearning, ucbq, replay, noise, expert, random$",
    ):
        check_source("privq", "darkroom")
    with pytest.raises(UserError, match=r"^source='qlearning' does not fit env='watermaze' .*: choose one of privq"):
        check_source("qlearning", "watermaze")


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    a, src_a = _run(np.arange(4), 150)
    b, src_b = _run(np.arange(4), 150)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    assert src_a.q.tobytes() == src_b.q.tobytes()
    c, _ = _run(np.arange(4), 150, seed=4)
    assert not np.array_equal(a["actions"], c["actions"])


def test_batch_of_n_equals_n_batches_of_one() -> None:
    ids = np.array([0, 5, 17, 40])
    whole, src = _run(ids, 150)
    assert set(np.unique(whole["actions"])) == set(range(8))
    for j, i in enumerate(ids):
        one, src_one = _run(np.array([i]), 150)
        for k in whole:
            np.testing.assert_array_equal(whole[k][j : j + 1], one[k], err_msg=f"{k} of learner {i}")
        np.testing.assert_array_equal(src.q[j], src_one.q[0])


def test_recorded_obs_is_the_frame() -> None:
    # The data holds the env's pixels (in their stored form, decoded here), not the privileged state;
    # replaying its actions reproduces them.
    fam = get_family("watermaze-small")
    arrays, _ = _run(np.arange(3), 60)
    assert arrays["obs"].shape == (3, 60, 3) and arrays["obs"].dtype == np.float32  # x, y, heading
    frames = fam.decode_obs(arrays["obs"])  # (3, 60, 36, 48, 3)
    train = fam.split("train")
    env = fam.make(train[(np.arange(3) * 37) % len(train)])
    o_t = env.reset()
    for t in range(60):
        np.testing.assert_array_equal(frames[:, t], o_t)
        o_t, r_t, done_t = env.step(arrays["actions"][:, t].astype(np.int64))
        np.testing.assert_array_equal(arrays["rewards"][:, t], r_t)
        if done_t.all():
            o_t = env.reset()


# ---------------------------------------------------------------------------------------------------------------
# Configuration and learning progress


@pytest.mark.parametrize(
    "make",
    [
        lambda: PrivQConfig(lr=0.0),
        lambda: PrivQConfig(lr=1.5),
        lambda: PrivQConfig(gamma=1.0),
        lambda: PrivQConfig(eps_start=1.5),
        lambda: PrivQConfig(eps_final=-0.1),
        lambda: PrivQConfig(anneal_fraction=0.0),
        lambda: PrivQConfig(init_q=-1.0),
        lambda: PrivQConfig(init_q=float("nan")),
    ],
)
def test_config_invariants_raise_one_line_user_errors(make) -> None:
    with pytest.raises(UserError, match=r"^privq\.\w+=.* is out of range: choose [^\n]*$"):
        make()


def test_config_is_a_cli() -> None:
    tyro = pytest.importorskip("tyro")
    cfg = tyro.cli(SourceConfig, args=["--privq.lr", "0.3", "--privq.anneal-fraction", "0.5"])
    assert cfg.privq.lr == 0.3 and cfg.privq.anneal_fraction == 0.5
    assert tyro.cli(SourceConfig, args=[]).privq == PrivQConfig()


def test_learns_watermaze() -> None:
    # 32 training tasks, 600-episode histories, frames not drawn. Mean return of the first 10% near random
    # (0.16 on average over these tasks), of the last 10% near the optimum 1 (measured 0.21 -> 0.97).
    fam: Any = get_family("watermaze")
    tasks = fam.split("train")[np.linspace(0, 899, 32).astype(np.int64)]
    env = Blind(fam, fam.centres[tasks], tasks)
    H, E = 50, 600
    src = PrivQ(env, learner_keys(0, np.arange(32)), E * H, PrivQConfig())
    returns = np.zeros((32, E))
    o_t = env.reset()
    for t in range(E * H):
        a_t = src.act(o_t)
        o_tp1, r_t, done_t = env.step(a_t)
        src.update(o_t, a_t, r_t, o_tp1, done_t)
        returns[:, t // H] += r_t
        o_t = env.reset() if done_t.all() else o_tp1
    first, last = returns[:, : E // 10].mean(), returns[:, -E // 10 :].mean()
    random = fam.random_return(tasks).mean()
    assert first < random + 0.1, (first, random)
    assert last >= 0.9, last
