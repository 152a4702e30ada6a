"""Explicit, counter-based randomness.

Every random number in algodistill is a pure function of (seed, ids, counter), so the same seed gives
the same bytes whatever the number of shards, workers or learners stepped together:

- `uniform(keys, counter, stream)` is a vectorised hash (SplitMix64's finaliser) over a leading
  learner/task axis: each learner owns a key, and draw number `counter` of `stream` is
  `hash(key, counter, stream)`. No per-learner generator objects, no Python loop over learners.
- `np_rng(seed, *ids)` and `torch_rng(seed, *ids)` build ordinary generators for code that is not on
  a per-learner hot path (model init, batch sampling), seeded from a `SeedSequence` of the ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only when a torch generator is asked for: the envs need numpy only
    import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def learner_keys(seed: int, ids: np.ndarray) -> np.ndarray:
    """One 64-bit key per learner, from the run seed and the learner's global index. (N,) uint64."""
    ids = np.asarray(ids, dtype=np.uint64)
    s = np.full(ids.shape, seed & _MASK64, dtype=np.uint64)
    return _mix(_mix(s) ^ (ids * _GOLDEN + _GOLDEN))


def uniform(keys: np.ndarray, counter: int, stream: int = 0) -> np.ndarray:
    """Draw number `counter` of `stream` for every key: float64 in [0, 1) with 53 random bits. (N,)"""
    c = np.uint64(((counter & 0xFFFFFFFFFFFF) << 16 | (stream & 0xFFFF)) & _MASK64)
    z = _mix(keys ^ _mix(np.array([c], dtype=np.uint64)))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform_block(keys: np.ndarray, start: int, count: int, stream: int = 0) -> np.ndarray:
    """Draws number start .. start+count-1 of `stream` for every key, in one call. (N, count) float64

    Equal to stacking `uniform(keys, c, stream)` for c in that range, so a learner's numbers do not
    depend on how many are drawn at once (e.g. per-learner network initialisation).
    """
    c = ((np.arange(start, start + count, dtype=np.uint64) & np.uint64(0xFFFFFFFFFFFF)) << np.uint64(16)) | np.uint64(
        stream & 0xFFFF
    )  # (count,)
    z = _mix(keys[:, None] ^ _mix(c)[None, :])  # (N, count)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def integers(keys: np.ndarray, counter: int, high: int | np.ndarray, stream: int = 0) -> np.ndarray:
    """Uniform integers in [0, high) for every key. (N,) int64"""
    return np.minimum((uniform(keys, counter, stream) * high).astype(np.int64), np.asarray(high) - 1)


def normal(keys: np.ndarray, counter: int, stream: int = 0) -> np.ndarray:
    """Standard normal draws for every key (Box-Muller on two hashed uniforms). (N,) float64"""
    u1 = uniform(keys, counter, 2 * stream)
    u2 = uniform(keys, counter, 2 * stream + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def np_rng(seed: int, *ids: int) -> np.random.Generator:
    """A numpy Generator for (seed, *ids), e.g. (seed, shard) or (seed, step)."""
    return np.random.default_rng(np.random.SeedSequence([seed & _MASK64, *(i & _MASK64 for i in ids)]))


def torch_rng(seed: int, *ids: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch Generator for (seed, *ids)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(np_rng(seed, *ids).integers(0, 2**63 - 1)))
    return g
