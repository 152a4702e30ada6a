"""Source algorithms: math against hand-worked numbers, shard invariance, learning progress, errors."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch

from algodistill import envs, rng
from algodistill.envs import get_family
from algodistill.envs.darkroom import DarkRoomFamily
from algodistill.errors import UserError
from algodistill.jsonio import jsonable
from algodistill.presets import TABLE_4_A2C
from algodistill.sources import (
    SOURCE_NAMES,
    A2CConfig,
    NoiseConfig,
    QLearningConfig,
    SourceConfig,
    ThompsonConfig,
    UCBConfig,
    check_source,
    fitting_sources,
    gae,
    make_source,
    rollout,
    source_config,
    ucb_scores,
)
from algodistill.sources.a2c import A2C, log_softmax, padded, policy_head_grad
from algodistill.sources.bandits import gamma_marsaglia_tsang
from algodistill.sources.common import argmax_tiebreak, linear_epsilon, state_index, state_strides


@pytest.fixture(autouse=True)
def one_torch_thread():
    """A2C's per-learner matrices are small: on a shared 2-core machine intra-op threads mostly spin-wait
    (~15x slower measured), so these tests use one thread; `test_a2c_thread_count_invariance` checks 2."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------------
# Pure math against hand-worked numbers


def test_gae_hand_computed() -> None:
    # gamma 0.9, lambda 0.5; the last step is terminal, so its v_tp1 = 3 is ignored.
    # delta = [1 + 0.9 * 1 - 0.5, 0 + 0.9 * 0 - 1, 2 - 0] = [1.4, -1.0, 2.0]
    # A_2 = 2; A_1 = -1 + 0.45 * 2 = -0.1; A_0 = 1.4 + 0.45 * -0.1 = 1.355
    adv = gae(
        np.array([[1.0, 0.0, 2.0]]),
        np.array([[0.5, 1.0, 0.0]]),
        np.array([[1.0, 0.0, 3.0]]),
        np.array([[False, False, True]]),
        gamma=0.9,
        lam=0.5,
    )
    np.testing.assert_allclose(adv, [[1.355, -0.1, 2.0]], rtol=1e-12)


def test_gae_done_cuts_the_trace_and_the_bootstrap() -> None:
    # gamma = lambda = 1: delta = [1 + 5, 1 + 0 (done), 1 + 5]; A_2 = 6, A_1 = 1 (cut), A_0 = 6 + 1 = 7.
    adv = gae(np.ones((2, 3)), np.zeros((2, 3)), np.full((2, 3), 5.0), np.array([[0, 1, 0]] * 2, bool), 1.0, 1.0)
    np.testing.assert_allclose(adv, [[7.0, 1.0, 6.0]] * 2)


def test_gae_lambda_one_is_the_discounted_return_minus_value() -> None:
    g = np.random.default_rng(0)
    r, v = g.normal(size=(4, 6)), g.normal(size=(4, 6))
    v_tp1 = np.concatenate([v[:, 1:], g.normal(size=(4, 1))], axis=1)
    adv = gae(r, v, v_tp1, np.zeros((4, 6), bool), 0.9, 1.0)
    ret = v_tp1[:, -1]
    for t in range(5, -1, -1):
        ret = r[:, t] + 0.9 * ret
        np.testing.assert_allclose(adv[:, t], ret - v[:, t], rtol=1e-10)


def test_ucb_scores_hand_computed() -> None:
    s = ucb_scores(np.array([[3.0, 1.0, 0.0]]), np.array([[4, 1, 0]]), t=5, c=1.0)
    # arm 0: 3/4 + sqrt(2 ln 5 / 4); arm 1: 1 + sqrt(2 ln 5); arm 2 never pulled: +inf
    np.testing.assert_allclose(s[0, :2], [0.75 + math.sqrt(2 * math.log(5) / 4), 1.0 + math.sqrt(2 * math.log(5))])
    assert s[0, 2] == np.inf
    half = ucb_scores(np.array([[3.0]]), np.array([[4]]), t=5, c=0.5)
    np.testing.assert_allclose(half, [[0.75 + 0.5 * math.sqrt(2 * math.log(5) / 4)]])


def test_linear_epsilon_endpoints() -> None:
    assert linear_epsilon(0, 1000, 1.0, 0.1, 0.5) == 1.0
    assert linear_epsilon(250, 1000, 1.0, 0.1, 0.5) == pytest.approx(0.55)
    assert linear_epsilon(500, 1000, 1.0, 0.1, 0.5) == pytest.approx(0.1)
    assert linear_epsilon(999, 1000, 1.0, 0.1, 0.5) == pytest.approx(0.1)
    env = get_family("darkroom").make(np.array([0]))
    src: Any = make_source("noise", env, 0, np.array([0]), 100, SourceConfig(noise=NoiseConfig(eps_final=0.2)))
    assert src.epsilon(0) == 1.0 and src.epsilon(90) == pytest.approx(0.2) and src.epsilon(99) == pytest.approx(0.2)
    assert src.epsilon(45) == pytest.approx(0.6)


def test_argmax_tiebreak_is_uniform_over_ties_only() -> None:
    x = np.tile(np.array([[1.0, 3.0, 0.0, 3.0, 3.0]]), (30_000, 1))
    a = argmax_tiebreak(x, np.random.default_rng(0).random(30_000))
    assert set(np.unique(a)) == {1, 3, 4}
    np.testing.assert_allclose(np.bincount(a, minlength=5)[[1, 3, 4]] / 30_000, [1 / 3] * 3, atol=0.02)
    assert argmax_tiebreak(np.array([[0.0, 2.0, 1.0]]), np.array([0.99]))[0] == 1


def test_state_index_is_the_grid_cell() -> None:
    fam: Any = get_family("darkroom")
    xy = fam.xy  # (S, 2): cell c = x * size + y
    np.testing.assert_array_equal(state_index(xy, state_strides((9, 9))), np.arange(81))


def test_marsaglia_tsang_beta_moments() -> None:
    g = np.random.default_rng(2)
    n, K = 200_000, 8
    a, b = np.full(n, 3.0), np.full(n, 5.0)
    ga = gamma_marsaglia_tsang(a, g.normal(size=(n, K)), 1.0 - g.random((n, K)))
    gb = gamma_marsaglia_tsang(b, g.normal(size=(n, K)), 1.0 - g.random((n, K)))
    x = ga / (ga + gb)  # Beta(3, 5): mean 3/8, variance ab / ((a+b)^2 (a+b+1)) = 15 / 576
    assert abs(x.mean() - 0.375) < 0.003 and abs(x.var() - 15 / 576) < 0.001
    assert abs(ga.mean() - 3.0) < 0.02 and abs(ga.var() - 3.0) < 0.05  # Gamma(3): mean = var = 3


def test_policy_head_grad_matches_autograd() -> None:
    g = np.random.default_rng(3)
    N, T, A = 3, 5, 4
    cfg = A2CConfig(ent_coef=0.05, vf_coef=0.7)
    logits = torch.tensor(g.normal(size=(N, T, A)), requires_grad=True)
    v = torch.tensor(g.normal(size=(N, T)), requires_grad=True)
    a_t, adv, ret = g.integers(0, A, (N, T)), g.normal(size=(N, T)), g.normal(size=(N, T))
    logp = torch.log_softmax(logits, -1)
    ent = -(logp.exp() * logp).sum(-1)
    pg = -torch.tensor(adv) * logp.gather(-1, torch.tensor(a_t)[..., None])[..., 0]
    loss = (pg - cfg.ent_coef * ent + cfg.vf_coef * 0.5 * (v - torch.tensor(ret)) ** 2).mean(1).sum()
    loss.backward()
    ours = policy_head_grad(log_softmax(logits.detach().numpy()), a_t, adv, v.detach().numpy(), ret, cfg)
    assert logits.grad is not None and v.grad is not None
    np.testing.assert_allclose(ours[..., :A], logits.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours[..., A], v.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_a2c_backward_matches_autograd() -> None:
    fam: Any = get_family("keydoor")
    env = fam.make(np.array([5, 100, 2000]))
    src = A2C(env, rng.learner_keys(0, np.arange(3)), A2CConfig(hidden=(20, 33)))  # odd widths: padding on
    assert [w.shape[2] for w in src.W] == [padded(20), padded(33), padded(6)]
    rollout(env, src, 100)  # two updates, so the weights are not at their initial values
    g = np.random.default_rng(4)
    s_t = torch.from_numpy(g.integers(0, 81, (3, 7)))
    dz = torch.zeros(3, 7, src.W[-1].shape[2])
    dz[..., :6] = torch.from_numpy(g.normal(size=(3, 7, 6)).astype(np.float32))
    ours = [g.clone() for g in src._backward(s_t, dz)]
    W = [w.clone().requires_grad_(True) for w in src.W]
    b = [x.clone().requires_grad_(True) for x in src.b]
    rows = torch.arange(3)[:, None]  # (N, 1)
    xy = torch.from_numpy(fam.xy.astype(np.int64))[s_t]  # (N, T, 2)
    h = torch.relu(b[0] + W[0][rows, xy[..., 0]] + W[0][rows, 9 + xy[..., 1]])  # one-hot input: gather rows
    for i in range(1, len(W) - 1):
        h = torch.relu(h @ W[i] + b[i])
    ((h @ W[-1] + b[-1]) * dz).sum().backward()
    for mine, p in zip(ours, [*W, *b], strict=True):
        assert p.grad is not None
        torch.testing.assert_close(mine, p.grad, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Contracts: errors, shapes, determinism, shard invariance


def test_check_source_errors() -> None:
    with pytest.raises(
        UserError,
        match=r"^source='ucb' does not fit env='darkroom' \(it needs a bandit\): "
        r"choose one of a2c, qlearning, ucbq, replay, noise, expert, random$",
    ):
        check_source("ucb", "darkroom")
    with pytest.raises(UserError, match=r"source='replay' does not fit env='keydoor' \(it needs deterministic dyn"):
        check_source("replay", "keydoor")  # its starts are random: a replayed episode need not pay again
    with pytest.raises(
        UserError,
        match=r"^source='a2c' does not fit env='bandit' \(it needs categorical observations\): "
        r"choose one of ucb, thompson, noise, expert, random$",
    ):
        check_source("a2c", "bandit")
    with pytest.raises(UserError, match="source='ppo' is unknown: choose one of ucb, thompson, a2c"):
        check_source("ppo", "darkroom")
    with pytest.raises(UserError, match="env='nope' is unknown"):
        check_source("a2c", "nope")
    for name in ("a2c", "qlearning", "ucbq", "noise", "expert", "random"):
        check_source(name, "keydoor")
    assert not issubclass(UserError, ValueError)


@pytest.mark.parametrize(
    "make",
    [
        lambda: UCBConfig(c=-1.0),
        lambda: ThompsonConfig(prior_alpha=0.5),
        lambda: ThompsonConfig(gamma_rounds=0),
        lambda: A2CConfig(lr=0.0),
        lambda: A2CConfig(gamma=1.5),
        lambda: A2CConfig(adam_beta2=1.0),
        lambda: A2CConfig(hidden=()),
        lambda: A2CConfig(hidden=(64, 0)),
        lambda: A2CConfig(adam_eps=0.0),
        lambda: QLearningConfig(lr=2.0),
        lambda: QLearningConfig(gamma=1.0),
        lambda: QLearningConfig(eps_final=-0.1),
        lambda: NoiseConfig(anneal_fraction=0.0),
        lambda: NoiseConfig(eps_final=1.5),
    ],
)
def test_config_invariants_raise_user_errors(make) -> None:
    with pytest.raises(UserError, match=r"=.* is (out of range|invalid|unknown): "):
        make()


def test_a2c_defaults_and_table_4() -> None:
    assert A2CConfig().hidden == (64, 64) and A2CConfig().lr == 1e-3  # our faster default
    paper = TABLE_4_A2C.a2c  # the paper presets' source settings
    table4 = ((128, 128, 128), 1e-4, 0.99, 0.95, 0.01)
    assert (paper.hidden, paper.lr, paper.gamma, paper.gae_lambda, paper.ent_coef) == table4
    assert (paper.adam_beta1, paper.adam_beta2, paper.adam_eps) == (0.9, 0.999, 1e-6)
    assert dataclasses.replace(paper, lr=3e-4).lr == 3e-4  # one field overridden, the rest kept
    assert dataclasses.replace(paper, lr=3e-4).hidden == (128, 128, 128)
    # Only the A2C settings differ from the defaults: the other sources keep theirs.
    assert dataclasses.replace(TABLE_4_A2C, a2c=A2CConfig()) == SourceConfig()


def test_source_config_is_the_chosen_sources_hyperparameters() -> None:
    cfg = SourceConfig(a2c=A2CConfig(hidden=(32,)), noise=NoiseConfig(eps_final=0.2))
    assert source_config("a2c", cfg) == jsonable(cfg.a2c)
    assert source_config("a2c", cfg)["hidden"] == [32]  # JSON data, as the manifest stores it
    assert source_config("noise", cfg) == {"eps_final": 0.2, "anneal_fraction": cfg.noise.anneal_fraction}
    for name in ("ucb", "thompson", "qlearning", "ucbq"):
        assert source_config(name, cfg) == jsonable(getattr(cfg, name))
    assert source_config("expert", cfg) == source_config("random", cfg) == source_config("replay", cfg) == {}
    assert {name: type(source_config(name, cfg)) for name in SOURCE_NAMES} == dict.fromkeys(SOURCE_NAMES, dict)


def test_source_config_is_a_cli() -> None:
    tyro = pytest.importorskip("tyro")
    cfg = tyro.cli(SourceConfig, args=["--a2c.lr", "0.002", "--qlearning.gamma", "0.8"])
    assert cfg.a2c.lr == 0.002 and cfg.qlearning.gamma == 0.8
    with pytest.raises(UserError, match=r"a2c\.lr=-1\.0"):
        tyro.cli(SourceConfig, args=["--a2c.lr", "-1"])


def test_fitting_sources_by_env() -> None:
    assert fitting_sources("bandit") == ("ucb", "thompson", "noise", "expert", "random")
    for name in ("darkroom", "darkroom-hard"):  # deterministic from a fixed start: replay fits
        assert fitting_sources(name) == ("a2c", "qlearning", "ucbq", "replay", "noise", "expert", "random")
    assert fitting_sources("keydoor") == ("a2c", "qlearning", "ucbq", "noise", "expert", "random")  # random starts
    assert fitting_sources("watermaze-small") == ("privq", "dqn", "replay", "noise", "expert", "random")


def _toy_room(name: str, **spec_changes: Any) -> DarkRoomFamily:
    """A small Dark Room under another name, its spec changed as given."""
    fam = DarkRoomFamily(name, "algodistill/DarkRoom-v0", size=3, hard=False, num_test=2, episode_length=4)
    fam.spec = dataclasses.replace(fam.spec, name=name, **spec_changes)
    return fam


def test_sources_fit_envs_by_their_spec_not_their_name(monkeypatch) -> None:
    # A private copy of the registry, so the toy families do not outlive this test.
    monkeypatch.setattr(envs, "_FAMILIES", dict(envs._FAMILIES))
    envs.register_family("toy-grid", lambda: _toy_room("toy-grid"))
    envs.register_family("toy-one-state", lambda: _toy_room("toy-one-state", obs_shape=(1,), obs_high=(1,)))
    envs.register_family("toy-image", lambda: _toy_room("toy-image", obs_shape=(4, 4, 3), obs_high=None))
    assert fitting_sources("toy-grid") == ("a2c", "qlearning", "ucbq", "replay", "noise", "expert", "random")
    assert fitting_sources("toy-one-state") == ("ucb", "thompson", "replay", "noise", "expert", "random")
    assert fitting_sources("toy-image") == ("replay", "noise", "expert", "random")  # no table, no stored form for dqn
    with pytest.raises(UserError, match=r"source='qlearning' does not fit env='toy-image' \(it needs categorical"):
        check_source("qlearning", "toy-image")
    env = get_family("toy-grid").make(np.arange(3))
    for name in ("qlearning", "ucbq"):  # and the sources run on it
        rollout(env, make_source(name, env, 0, np.arange(3), 8, SourceConfig()), 8)


def test_make_source_rejects_bad_ids_and_lengths() -> None:
    env = get_family("darkroom").make(np.arange(3))
    with pytest.raises(UserError, match="one id per learner"):
        make_source("qlearning", env, 0, np.arange(2), 100, SourceConfig())
    with pytest.raises(UserError, match="total_steps=0"):
        make_source("qlearning", env, 0, np.arange(3), 0, SourceConfig())


PAIRS = [
    ("ucb", "bandit"),
    ("thompson", "bandit"),
    ("noise", "bandit"),
    ("a2c", "darkroom"),
    ("a2c", "keydoor"),
    ("qlearning", "darkroom-hard"),
    ("ucbq", "keydoor"),
    ("ucbq", "darkroom-hard"),
    ("noise", "keydoor"),
    ("expert", "darkroom"),
    ("random", "darkroom"),
    ("replay", "darkroom"),
    ("replay", "watermaze-small"),
]


def _run(name: str, env_name: str, ids: np.ndarray, steps: int, seed: int = 7):
    fam = get_family(env_name)
    tasks = fam.split("train")[(ids * 37) % len(fam.split("train"))]  # a different task per learner
    env = fam.make(tasks, seed=seed, ids=ids)
    src = make_source(name, env, seed, ids, steps, SourceConfig())
    return rollout(env, src, steps)[0], src


@pytest.mark.parametrize(("name", "env_name"), PAIRS)
def test_shard_invariance(name: str, env_name: str) -> None:
    """A learner's history (and A2C's weights) is bit-identical whichever batch it ran in."""
    steps = 100 if env_name == "bandit" else 300
    whole, src = _run(name, env_name, np.arange(8), steps)
    assert set(np.unique(whole["actions"])) == set(range(get_family(env_name).spec.num_actions))
    for split in (4, 3):
        parts = [_run(name, env_name, ids, steps) for ids in (np.arange(split), np.arange(split, 8))]
        for k in whole:
            np.testing.assert_array_equal(whole[k], np.concatenate([p[0][k] for p in parts]), err_msg=k)
        if isinstance(src, A2C):
            for i, w in enumerate(src.params):
                assert torch.equal(w, torch.cat([p[1].params[i] for p in parts])), f"param {i} differs"


def test_a2c_thread_count_invariance() -> None:
    one, src1 = _run("a2c", "darkroom", np.arange(8), 200)
    torch.set_num_threads(2)
    two, src2 = _run("a2c", "darkroom", np.arange(8), 200)
    np.testing.assert_array_equal(one["actions"], two["actions"])
    assert all(torch.equal(p, q) for p, q in zip(src1.params, src2.params, strict=True))


def test_rollout_resumes_and_records_the_contract() -> None:
    fam: Any = get_family("darkroom")
    env = fam.make(np.array([3, 40, 77]), seed=1)
    src = make_source("a2c", env, 1, np.arange(3), 200, SourceConfig())
    whole, o_end = rollout(env, src, 70)
    env2 = fam.make(np.array([3, 40, 77]), seed=1)
    src2 = make_source("a2c", env2, 1, np.arange(3), 200, SourceConfig())
    first, o_t = rollout(env2, src2, 25)
    second, o_end2 = rollout(env2, src2, 45, o_t)
    for k in whole:
        np.testing.assert_array_equal(whole[k], np.concatenate([first[k], second[k]], axis=1))
    np.testing.assert_array_equal(o_end, o_end2)
    assert whole["obs"].dtype == np.uint8 and whole["obs"].shape == (3, 70, 2)
    assert whole["actions"].dtype == np.uint8 and whole["rewards"].dtype == np.float32 and whole["dones"].dtype == bool
    np.testing.assert_array_equal(whole["dones"], np.tile((np.arange(70) + 1) % 20 == 0, (3, 1)))
    assert (whole["obs"][:, 20] == fam.xy[fam.centre]).all()  # the recorded step after a done is a fresh start


@pytest.mark.parametrize("name", ["qlearning", "ucbq", "noise", "expert", "random"])
def test_act_returns_int64_actions(name: str) -> None:
    env = get_family("darkroom").make(np.arange(4))
    a = make_source(name, env, 0, np.arange(4), 10, SourceConfig()).act(env.reset())
    assert a.dtype == np.int64 and a.shape == (4,)


# ---------------------------------------------------------------------------------------------------------------
# Learning progress (the acceptance of the sources): Dark Room histories rise from the random-policy return to
# >= 80% of the optimal return; the bandit's regret per trial falls.


def _progress(name: str, n: int, steps: int) -> tuple[float, float, float, float]:
    """Mean return over the first 10 and the last 50 episodes; the random and optimal returns."""
    fam: Any = get_family("darkroom")
    tasks = np.resize(fam.split("train"), n)  # every one of the 65 training goals
    env = fam.make(tasks, seed=0)
    arrays, _ = rollout(env, make_source(name, env, 0, np.arange(n), steps, SourceConfig()), steps)
    r = arrays["rewards"].reshape(n, -1, fam.spec.episode_length).sum(-1)  # (n, episodes)
    return r[:, :10].mean(), r[:, -50:].mean(), fam.random_return(tasks).mean(), fam.optimal_return(tasks).mean()


@pytest.mark.parametrize("name", ["noise", "qlearning"])
def test_grid_sources_learn_dark_room(name: str) -> None:
    first, last, random, optimal = _progress(name, 130, 20_000)
    assert first < random + 0.1 * optimal, (first, random)
    assert last >= 0.8 * optimal, (last, optimal)


def test_a2c_learns_dark_room() -> None:
    first, last, random, optimal = _progress("a2c", 65, 12_000)
    assert first < random + 0.1 * optimal, (first, random)
    assert last >= 0.8 * optimal, (last, optimal)


def test_expert_is_optimal_and_random_is_random() -> None:
    _, expert, _, optimal = _progress("expert", 81, 200)
    assert expert == pytest.approx(optimal)
    first, last, random, _ = _progress("random", 130, 2000)
    assert abs(np.mean([first, last]) - random) < 0.2


@pytest.mark.parametrize("name", ["ucb", "thompson"])
def test_bandit_regret_falls(name: str) -> None:
    fam: Any = get_family("bandit")
    n, trials = 500, 100
    tasks = fam.split("train")[:n]
    env = fam.make(tasks, seed=0)
    arrays, _ = rollout(env, make_source(name, env, 0, np.arange(n), trials, SourceConfig()), trials)
    a = arrays["actions"].astype(np.int64)  # (n, trials)
    regret = fam.probs[tasks].max(1)[:, None] - np.take_along_axis(fam.probs[tasks], a, 1)  # (n, trials)
    early, late = regret[:, :10].mean(), regret[:, -20:].mean()  # UCB's first 10 pulls: every arm once
    assert late < 0.7 * early, (early, late)
    if name == "ucb":  # UCB1 pulls every arm once first, in a random order
        assert (np.sort(a[:, :10], axis=1) == np.arange(10)).all()


def test_replay_searches_until_rewarded_then_repeats_that_episode() -> None:
    """Dark Room 9 x 9, goal one step left of the centre (start (4, 4)): uniform actions until an episode
    steps onto (3, 4), then that episode's actions up to its first reward, then the no-op (stay) to the end."""
    fam = get_family("darkroom")
    goal = int(np.flatnonzero((fam.xy[:, 0] == 3) & (fam.xy[:, 1] == 4))[0])  # cells are task ids
    H, E = fam.spec.episode_length, 30
    env = fam.make(np.array([goal, goal]))
    arrays = rollout(env, make_source("replay", env, 3, np.arange(2), H * E, SourceConfig()), H * E)[0]
    a = arrays["actions"].reshape(2, E, H)  # (N, E, H)
    r = arrays["rewards"].reshape(2, E, H)  # (N, E, H)
    noop = fam.stay_action
    for n in range(2):
        paid = np.flatnonzero(r[n].sum(axis=1) > 0)
        first = int(paid[0])  # a random walk of 20 steps from next to the goal finds it within 30 episodes
        assert first < E - 5  # so that later episodes replay it
        k = int(np.flatnonzero(r[n, first])[0])  # the step of the first reward
        assert (a[n, first, k + 1 :] == noop).all()  # once paid, stay
        assert (r[n, first, k:] == 1).all()  # and the goal keeps paying (Dark Room pays every step on it)
        for e in range(first + 1, E):  # every later episode: the same prefix, then stay
            np.testing.assert_array_equal(a[n, e, : k + 1], a[n, first, : k + 1])
            assert (a[n, e, k + 1 :] == noop).all()
            assert r[n, e].sum() == r[n, first].sum() == H - k
        assert (r[n, :first] == 0).all()
    assert not np.array_equal(a[0, 0], a[1, 0])  # each learner draws its own search
