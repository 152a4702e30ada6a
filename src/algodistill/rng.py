"""Explicit, counter-based randomness, and the registry of every random stream the library draws.

Every random number in algodistill is a pure function of (seed, ids, counter), so the same seed gives
the same bytes whatever the number of shards, workers or learners stepped together:

- `uniform(keys, counter, stream)` is a vectorised hash (SplitMix64's finaliser) over a leading
  learner/task axis: each learner owns a key, and draw number `counter` of `stream` is
  `hash(key, counter, stream)`. No per-learner generator objects, no Python loop over learners.
- `np_rng(seed, *ids)` and `torch_rng(seed, *ids)` build ordinary generators for code that is not on
  a per-learner hot path (model init, batch sampling), seeded from a `SeedSequence` of the ids.

`Stream` and `Tag` below list every stream number and generator tag in use: a new use takes a new
number here, so two uses never draw the same numbers.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only when a torch generator is asked for: the envs need numpy only
    import torch


class Stream(IntEnum):
    """Stream numbers of `uniform` (16 bits). The envs, the sources and the evaluator share the learner
    keys of a stream id, so their numbers must differ."""

    KEYDOOR_START = 1
    """Key-to-Door: the start cell of each episode"""
    BANDIT_PAYOUT = 2
    """bandit: whether the pulled arm pays"""
    EVAL_ACTION = 7
    """in-context evaluation: the uniform that samples a_t from the model's policy"""
    EXPLORE = 100
    """sources: the epsilon-greedy coin (explore or exploit)"""
    ACTION = 101
    """sources: a uniform random action, or the uniform for inverse-CDF sampling of a policy"""
    TIEBREAK = 102
    """sources: which of several equal maxima an argmax picks"""
    REPLAY = 103
    """DQN: where each sequence of an update's batch starts in the learner's replay"""
    INIT = 110
    """A2C: network initialisation, stream INIT + layer index (layers 0..19)"""
    GAMMA_NORMAL = 130
    """Thompson sampling: the normals of Marsaglia-Tsang (two uniforms each)"""
    GAMMA_ACCEPT = 131
    """Thompson sampling: the acceptance uniforms of Marsaglia-Tsang"""


class Tag(IntEnum):
    """Generator tags: the id after (seed, counter) in `np_rng` / `torch_rng`. Training's batch of
    iteration i is `np_rng(seed, i)` (no tag)."""

    MODEL_INIT = 1
    """the model's initial weights, `torch_rng(seed, 0, MODEL_INIT)`"""
    DROPOUT = 2
    """dropout and token masks of iteration i on a rank, `np_rng(seed, i, DROPOUT, rank)`"""
    RL2_TASKS = 3
    """RL^2 training: the tasks and env seed of trial i, `np_rng(seed, i, RL2_TASKS)`"""
    RL2_ACTION = 4
    """RL^2 training: the actions of update u, `torch_rng(seed, u, RL2_ACTION)`"""
    RL2_MINIBATCH = 5
    """RL^2 training: the minibatch order of update u, `np_rng(seed, u, RL2_MINIBATCH)`"""
    BN_CALIBRATION = 6
    """training: batch j of the final BatchNorm statistics, `np_rng(seed, j, BN_CALIBRATION)`"""


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
    return _unit(_mix(keys ^ _mix(np.array([c], dtype=np.uint64))))


def uniform_each(keys: np.ndarray, counters: np.ndarray, stream: int = 0) -> np.ndarray:
    """Draw number counters[i] of `stream` for keys[i]: `uniform` with a counter per key. (N,) float64"""
    return _unit(_mix(keys ^ _mix(_packed(counters, stream))))


def uniform_block(keys: np.ndarray, start: int, count: int, stream: int = 0) -> np.ndarray:
    """Draws number start .. start+count-1 of `stream` for every key, in one call. (N, count) float64

    Equal to stacking `uniform(keys, c, stream)` for c in that range, so a learner's numbers do not
    depend on how many are drawn at once (e.g. per-learner network initialisation).
    """
    c = _packed(np.arange(start, start + count, dtype=np.uint64), stream)  # (count,)
    return _unit(_mix(keys[:, None] ^ _mix(c)[None, :]))  # (N, count)


def _packed(counters: np.ndarray, stream: int) -> np.ndarray:
    """Counters and stream as `uniform` packs them: the counter's low 48 bits, then the stream's 16. uint64"""
    return ((counters.astype(np.uint64) & np.uint64(0xFFFFFFFFFFFF)) << np.uint64(16)) | np.uint64(stream & 0xFFFF)


def _unit(z: np.ndarray) -> np.ndarray:
    """Mixed 64-bit words -> float64 in [0, 1) from their top 53 bits."""
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def integers(keys: np.ndarray, counter: int, high: int | np.ndarray, stream: int = 0) -> np.ndarray:
    """Uniform integers in [0, high) for every key. (N,) int64"""
    return np.minimum((uniform(keys, counter, stream) * high).astype(np.int64), np.asarray(high) - 1)


def box_muller(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Standard normals from two arrays of uniforms in [0, 1) (Box-Muller; log1p keeps u1 = 0 finite)."""
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def normal(keys: np.ndarray, counter: int, stream: int = 0) -> np.ndarray:
    """Standard normal draws for every key, from streams 2 * stream and 2 * stream + 1. (N,) float64"""
    return box_muller(uniform(keys, counter, 2 * stream), uniform(keys, counter, 2 * stream + 1))


def categorical(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sample of a categorical distribution from uniforms. (N, A) probabilities, (N,) -> (N,) int64

    `p` need not sum to exactly 1: u is scaled by the total, so rounding never overshoots, and an action
    of probability 0 is never drawn (the comparison is `<=` the CDF, so u = 0 skips leading zeros).
    """
    cdf = np.cumsum(p, axis=-1)  # (N, A)
    a = (u[:, None] * cdf[:, -1:] >= cdf).sum(axis=-1)  # (N,)
    return np.minimum(a, p.shape[-1] - 1)


def np_rng(seed: int, *ids: int) -> np.random.Generator:
    """A numpy Generator for (seed, *ids), e.g. (seed, shard) or (seed, step)."""
    return np.random.default_rng(np.random.SeedSequence([seed & _MASK64, *(i & _MASK64 for i in ids)]))


def torch_rng(seed: int, *ids: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch Generator for (seed, *ids)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(np_rng(seed, *ids).integers(0, 2**63 - 1)))
    return g
