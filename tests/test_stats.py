"""Confidence intervals and summary figures against numbers worked out by hand."""

import math

import numpy as np
import pytest

from algodistill.stats import episodes_to_reach, last10pct, mean_ci, normalized_score, per_task, summarize, t_quantile


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423), (1000, 1.9623)],
)
def test_t_quantile_matches_tables(df, expected):
    # two-sided 95% critical values from standard t tables
    tol = 4e-3 if df == 3 else 1e-3
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=tol)


def test_mean_ci_on_known_inputs():
    # x = 1..5: mean 3, sd sqrt(2.5), sem sqrt(0.5); t(0.975, 4) = 2.7764
    x = np.array([1.0, 2, 3, 4, 5])[:, None]
    mean, lo, hi = mean_ci(x)
    half = 2.7764 * math.sqrt(2.5) / math.sqrt(5)
    assert mean[0] == 3.0
    assert lo[0] == pytest.approx(3 - half, abs=2e-3)
    assert hi[0] == pytest.approx(3 + half, abs=2e-3)


def test_mean_ci_per_episode_and_degenerate_cases():
    x = np.array([[0.0, 2.0], [2.0, 2.0]])  # episode 2 has no spread
    mean, lo, hi = mean_ci(x)
    np.testing.assert_allclose(mean, [1.0, 2.0])
    assert lo[1] == hi[1] == 2.0
    # t(0.975, 1) = 12.706, sd = sqrt(2), sem = 1
    assert hi[0] - mean[0] == pytest.approx(12.7062, abs=1e-3)
    one = mean_ci(np.array([[4.0, 5.0]]))
    assert all(np.array_equal(a, [4.0, 5.0]) for a in one)


def test_episodes_to_reach_and_summary():
    assert episodes_to_reach(np.array([0.0, 5.0, 9.0, 10.0]), 9.0) == 3
    assert episodes_to_reach(np.array([0.0, 1.0]), 2.0) is None
    curve = np.tile(np.arange(1.0, 201.0), (3, 1))  # returns 1..200 in every run
    s = summarize(curve, optimal=200.0)
    assert s["return_ep1"] == 1.0 and s["return_ep10"] == 10.0 and s["return_ep100"] == 100.0
    assert s["return_last"] == 200.0
    assert s["return_last10pct"] == pytest.approx(np.arange(181, 201).mean())
    assert s["auc"] == pytest.approx(100.5)
    assert s["episodes_to_90pct_optimal"] == 180
    assert s["return_ep21_30"] == pytest.approx(25.5)
    assert summarize(curve[:, :5], optimal=1.0)["return_ep100"] is None
    assert summarize(curve[:, :29], optimal=1.0)["return_ep21_30"] is None


def test_per_task_and_normalized_score_by_hand():
    returns = np.array([[0.0] * 10 + [1.0] * 10, [0.0] * 19 + [3.0], [5.0] * 20])  # (3 streams, 20 episodes)
    np.testing.assert_allclose(last10pct(returns), [1.0, 1.5, 5.0])  # the last 2 episodes
    assert per_task(returns, np.array([7, 7, 2])) == {2: 5.0, 7: 1.25}
    assert normalized_score(0.6, r_random=0.5, r_reference=0.7) == pytest.approx(0.5)
    assert normalized_score(0.4, r_random=0.5, r_reference=0.7) == pytest.approx(-0.5)
