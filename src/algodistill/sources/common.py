"""Pieces every source shares: observation -> state index, tie-broken argmax, and the linear epsilon
schedule.

Randomness. Every random number a source uses is `rng.uniform(keys, counter, stream)` (or a block of
them) with `keys = rng.learner_keys(seed, ids)` and `counter` = the learner's own step count, so a
learner's whole history is a function of (seed, its global id) only: the dataset is byte-identical
whatever the batch or shard a learner ran in. The stream numbers are `rng.Stream`'s, shared with the
envs (which draw with the same keys), so no two uses collide.
"""

from __future__ import annotations

import numpy as np


def state_strides(obs_high: tuple[int, ...]) -> np.ndarray:
    """Row-major strides that map an observation vector to a flat state index. (obs_dim,) int64

    For the grid families obs = (x, y) with obs_high = (size, size), so the index is x * size + y, the
    env's own cell index.
    """
    return np.cumprod((1, *obs_high[::-1]))[:-1][::-1].astype(np.int64)


def state_index(o_t: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Flat state index of each observation. (N, obs_dim) uint8 -> (N,) int64"""
    return o_t.astype(np.int64) @ strides


def argmax_tiebreak(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Argmax over the last axis, choosing uniformly among exact ties with the uniforms u. (N, A), (N,) -> (N,)

    Plain argmax always picks the lowest index, which would make a zero-initialised learner walk
    left forever; a random tie-break keeps early behaviour exploratory.
    """
    is_max = x == x.max(axis=-1, keepdims=True)  # (N, A)
    num_max = is_max.sum(axis=-1)  # (N,)
    k = np.minimum((u * num_max).astype(np.int64), num_max - 1)  # (N,) which of the maxima
    return (np.cumsum(is_max, axis=-1) > k[:, None]).argmax(axis=-1)  # first index with k+1 maxima at or before it


def linear_epsilon(t: int, total_steps: int, eps_start: float, eps_final: float, fraction: float) -> float:
    """Epsilon at step t: linear from eps_start at t = 0 to eps_final at t = fraction * total_steps, then flat."""
    horizon = max(fraction * total_steps, 1.0)
    return eps_final + (eps_start - eps_final) * max(0.0, 1.0 - t / horizon)
