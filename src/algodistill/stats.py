"""Statistics for in-context learning curves: confidence intervals and summary figures (pure functions).

A curve is an array of returns shaped (runs, episodes), one row per (task, seed) evaluation stream.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution (no scipy): exact for df 1 and 2, otherwise the
    Cornish-Fisher expansion around the normal quantile (for p <= 0.975 the error is below 0.004 at
    df = 3 and below 0.001 from df = 4 on)."""
    if df < 1:
        raise ValueError(f"df={df} must be >= 1")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    n = float(df)
    return (
        z
        + (z**3 + z) / (4 * n)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * n**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * n**4)
    )


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and a t-based confidence interval over the first axis. x (R, E) -> mean, lo, hi, each (E,).

    With a single run the interval collapses to the mean (nothing to estimate a spread from).
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)  # (E,)
    n = x.shape[0]
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = t_quantile(0.5 + level / 2, n - 1) * x.std(axis=0, ddof=1) / math.sqrt(n)  # (E,)
    return mean, mean - half, mean + half


def episodes_to_reach(curve: np.ndarray, target: float) -> int | None:
    """First episode (1-based) at which the mean curve reaches `target`, or None if it never does."""
    hit = np.flatnonzero(np.asarray(curve) >= target)
    return int(hit[0]) + 1 if hit.size else None


def summarize(returns: np.ndarray, optimal: float) -> dict[str, float | int | None]:
    """Summary figures of one method's curve: return at episodes 1, 10, 100 and the last, the mean over
    episodes 21-30 and over the last 10% of episodes, the area under the curve (mean return over all
    episodes), and the episodes until the mean curve first reaches 90% of the optimal return."""
    mean, _, hi = mean_ci(returns)
    E = len(mean)
    last10 = mean[-max(1, E // 10) :]
    out: dict[str, float | int | None] = {"episodes": E, "runs": int(np.asarray(returns).shape[0])}
    for ep in (1, 10, 100):
        out[f"return_ep{ep}"] = float(mean[ep - 1]) if ep <= E else None
    out["return_ep21_30"] = float(mean[20:30].mean()) if E >= 30 else None
    out["return_last"] = float(mean[-1])
    out["return_last_ci"] = float(hi[-1] - mean[-1])
    out["return_last10pct"] = float(last10.mean())
    out["auc"] = float(mean.mean())
    out["episodes_to_90pct_optimal"] = episodes_to_reach(mean, 0.9 * optimal)
    return out


def last10pct(returns: np.ndarray) -> np.ndarray:
    """Mean return over the last 10% of episodes of each run. (R, E) -> (R,)"""
    E = returns.shape[1]
    return np.asarray(returns, dtype=np.float64)[:, -max(1, E // 10) :].mean(axis=1)


def per_task(returns: np.ndarray, tasks: np.ndarray) -> dict[int, float]:
    """Mean over the last 10% of episodes of each task's streams. returns (S, E), tasks (S,) -> {task: mean}"""
    final = last10pct(returns)  # (S,)
    return {int(t): float(final[tasks == t].mean()) for t in np.unique(tasks)}


def normalized_score(r: float, r_random: float, r_reference: float) -> float:
    """(r - r_random) / (r_reference - r_random): 0 is random, 1 the reference (paper Sec. 5: UCB on the bandit)."""
    return (r - r_random) / (r_reference - r_random)
