"""Counter-based randomness: pure functions of (seed, id, counter, stream), pinned, well distributed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algodistill import rng


def test_golden_values():
    """Changing the hash silently changes every generated dataset: it must be a deliberate change."""
    keys = rng.learner_keys(0, np.arange(3))
    assert keys.dtype == np.uint64 and keys.shape == (3,)
    assert [hex(k) for k in keys.tolist()] == ["0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4", "0x6c45d188009454f"]
    assert rng.uniform(keys, 0).tolist() == [0.28176129772258496, 0.80255116473696, 0.4815585823555033]
    assert rng.uniform(keys, 5, stream=1).tolist() == [0.1330564747966153, 0.8715729542655648, 0.1834159253095855]


def test_negative_seed_wraps_to_64_bits():
    np.testing.assert_array_equal(rng.learner_keys(-1, [0]), rng.learner_keys(2**64 - 1, [0]))


@given(
    seed=st.integers(0, 2**64 - 1),
    ids=st.lists(st.integers(0, 2**40), min_size=1, max_size=20, unique=True),
    counter=st.integers(0, 2**48 - 1),
    stream=st.integers(0, 0xFFFF),
)
@settings(max_examples=100, deadline=None)
def test_a_draw_depends_only_on_its_own_seed_id_counter_and_stream(seed, ids, counter, stream):
    ids = np.array(ids, dtype=np.uint64)
    keys = rng.learner_keys(seed, ids)
    u = rng.uniform(keys, counter, stream)
    assert u.dtype == np.float64 and ((u >= 0) & (u < 1)).all()
    for j in range(len(ids)):  # batch composition does not matter
        assert rng.uniform(rng.learner_keys(seed, ids[j : j + 1]), counter, stream)[0] == u[j]
    np.testing.assert_array_equal(rng.uniform(keys[::-1], counter, stream), u[::-1])
    assert len(np.unique(keys)) == len(keys)  # distinct learners, distinct keys


def test_uniform_each_is_uniform_with_a_counter_per_key():
    keys = rng.learner_keys(3, np.arange(5))
    counters = np.array([0, 7, 7, 2**40, 3])
    each = rng.uniform_each(keys, counters, stream=9)
    for i, c in enumerate(counters):
        assert each[i] == rng.uniform(keys[i : i + 1], int(c), 9)[0]


@given(start=st.integers(0, 2**40), count=st.integers(0, 40), stream=st.integers(0, 0xFFFF))
@settings(max_examples=50, deadline=None)
def test_uniform_block_equals_stacked_draws(start, count, stream):
    keys = rng.learner_keys(3, np.arange(5))
    block = rng.uniform_block(keys, start, count, stream)
    assert block.shape == (5, count)
    for c in range(count):
        np.testing.assert_array_equal(block[:, c], rng.uniform(keys, start + c, stream))


def test_counters_streams_seeds_and_ids_give_different_numbers():
    keys = rng.learner_keys(0, np.arange(1000))
    base = rng.uniform(keys, 0, 0)
    for other in (
        rng.uniform(keys, 1, 0),
        rng.uniform(keys, 0, 1),
        rng.uniform(rng.learner_keys(1, np.arange(1000)), 0, 0),
        rng.uniform(rng.learner_keys(0, np.arange(1000, 2000)), 0, 0),
    ):
        assert abs(np.corrcoef(base, other)[0, 1]) < 0.15 and (base != other).all()


def test_uniform_is_uniform_and_uncorrelated():
    keys = rng.learner_keys(123, np.arange(20_000))
    u = rng.uniform_block(keys, 0, 8)  # (N, 8)
    n = u.size
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    counts = np.bincount((u * 20).astype(int).ravel(), minlength=20)
    assert ((counts - n / 20) ** 2 / (n / 20)).sum() < 60  # chi-square, 19 df (99.99th pct ~ 50)
    # Neighbouring counters and neighbouring learners are uncorrelated.
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 5 / np.sqrt(len(u))
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 5 / np.sqrt(len(u))


@pytest.mark.parametrize("high", [1, 2, 5, 81, 6561])
def test_integers_in_range_and_roughly_uniform(high):
    keys = rng.learner_keys(0, np.arange(50_000))
    x = rng.integers(keys, 4, high, stream=1)
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() < high
    if 1 < high <= 81:
        counts = np.bincount(x, minlength=high)
        expected = len(x) / high
        assert ((counts - expected) ** 2 / expected).sum() < high - 1 + 6 * np.sqrt(2 * (high - 1))


def test_integers_with_per_learner_bounds():
    keys = rng.learner_keys(0, np.arange(1000))
    high = np.arange(1, 1001)
    x = rng.integers(keys, 0, high)
    assert (x >= 0).all() and (x < high).all()


def test_normal_moments():
    keys = rng.learner_keys(9, np.arange(100_000))
    z = rng.normal(keys, 0)
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 5 / np.sqrt(len(z)) and abs(z.var() - 1) < 5 * np.sqrt(2 / len(z))
    assert abs(np.mean(z**3)) < 5 * np.sqrt(15 / len(z))  # symmetric
    np.testing.assert_array_equal(z, rng.normal(keys, 0))
    assert not np.array_equal(z, rng.normal(keys, 1))


def test_np_rng_and_torch_rng_are_deterministic_per_ids():
    a = rng.np_rng(0, 1, 2).integers(0, 2**62, 4)
    np.testing.assert_array_equal(a, rng.np_rng(0, 1, 2).integers(0, 2**62, 4))
    assert not np.array_equal(a, rng.np_rng(0, 2, 1).integers(0, 2**62, 4))
    assert not np.array_equal(a, rng.np_rng(1, 1, 2).integers(0, 2**62, 4))
    torch = pytest.importorskip("torch")
    t1 = torch.rand(4, generator=rng.torch_rng(0, 5))
    assert torch.equal(t1, torch.rand(4, generator=rng.torch_rng(0, 5)))
    assert not torch.equal(t1, torch.rand(4, generator=rng.torch_rng(0, 6)))


def test_box_muller_hand_computed():
    # -2 log(1 - u1) = 1 for u1 = 1 - e^(-1/2), and = 4 for u1 = 1 - e^(-2): radii 1 and 2; the angle is 2 pi u2.
    u1 = np.array([1 - np.exp(-0.5), 1 - np.exp(-0.5), 1 - np.exp(-2.0), 0.0])
    u2 = np.array([0.0, 0.5, 0.125, 0.3])
    z = rng.box_muller(u1, u2)
    np.testing.assert_allclose(z, [1.0, -1.0, np.sqrt(2.0), 0.0], rtol=1e-14, atol=1e-15)
    assert z[3] == 0.0  # u1 = 0 gives radius 0 (log1p keeps it finite), whatever the angle


def test_normal_is_box_muller_of_two_streams():
    """rng.normal(stream s) uses uniform streams 2s and 2s + 1: pinned, since it fixes the bytes of the data."""
    keys = rng.learner_keys(4, np.arange(50))
    for counter, stream in [(0, 0), (3, 5)]:
        u1, u2 = rng.uniform(keys, counter, 2 * stream), rng.uniform(keys, counter, 2 * stream + 1)
        np.testing.assert_array_equal(rng.normal(keys, counter, stream), rng.box_muller(u1, u2))


def test_categorical_hand_worked():
    p = np.array([[0.0, 0.0, 0.5, 0.5]] * 4)
    # u = 0 skips the leading zero-probability actions; u just below 1 never overshoots to a later one.
    assert rng.categorical(p, np.array([0.0, 0.49, 0.5, 1.0 - 2**-53])).tolist() == [2, 2, 3, 3]
    # A zero-probability action in the middle is never drawn, not even at its CDF boundary.
    q = np.array([[0.25, 0.0, 0.75]] * 3)
    assert rng.categorical(q, np.array([0.2, 0.25, 0.9])).tolist() == [0, 2, 2]


def test_categorical_does_not_need_normalised_probabilities():
    # Weights summing to 8: u is scaled by the total, so the draw equals that of the normalised p = w / 8.
    w = np.array([[2.0, 0.0, 6.0]] * 4)
    u = np.array([0.0, 0.2, 0.25, 0.9])
    assert rng.categorical(w, u).tolist() == [0, 0, 2, 2]
    np.testing.assert_array_equal(rng.categorical(w / 8, u), rng.categorical(w, u))
    # Ten 0.1s sum to 1 - 1.1e-16 in floating point: the largest u still draws the last action, never past it.
    tenths = np.full((2, 10), 0.1)
    assert rng.categorical(tenths, np.array([1.0 - 2**-53, 0.95])).tolist() == [9, 9]
    assert rng.categorical(w[:1], np.array([0.0])).dtype == np.int64


def test_categorical_matches_probabilities():
    p = np.tile(np.array([[0.1, 0.0, 0.6, 0.3]]), (50_000, 1))
    a = rng.categorical(p, np.random.default_rng(1).random(50_000))
    np.testing.assert_allclose(np.bincount(a, minlength=4) / 50_000, p[0], atol=0.01)
    assert rng.categorical(p[:2], np.array([0.0, 1.0 - 1e-16])).tolist() == [0, 3]


def test_stream_numbers_are_pinned_distinct_and_16_bit():
    """A renumbered stream silently changes every dataset; two uses sharing a number would draw the same numbers."""
    assert {s.name: int(s) for s in rng.Stream} == {
        "KEYDOOR_START": 1,
        "BANDIT_PAYOUT": 2,
        "EVAL_ACTION": 7,
        "EXPLORE": 100,
        "ACTION": 101,
        "TIEBREAK": 102,
        "REPLAY": 103,
        "INIT": 110,
        "GAMMA_NORMAL": 130,
        "GAMMA_ACCEPT": 131,
    }
    # IntEnum turns a repeated value into an alias silently: every name must own its number.
    assert len({int(s) for s in rng.Stream.__members__.values()}) == len(rng.Stream.__members__)
    assert all(0 <= s < 2**16 for s in rng.Stream)
    init_layers = set(range(rng.Stream.INIT, rng.Stream.INIT + 20))  # A2C uses INIT + layer index, layers 0..19
    assert not init_layers & ({int(s) for s in rng.Stream} - {int(rng.Stream.INIT)})
    assert {t.name: int(t) for t in rng.Tag} == {
        "MODEL_INIT": 1,
        "DROPOUT": 2,
        "RL2_TASKS": 3,
        "RL2_ACTION": 4,
        "RL2_MINIBATCH": 5,
        "BN_CALIBRATION": 6,
    }
    assert len({int(t) for t in rng.Tag.__members__.values()}) == len(rng.Tag.__members__)
