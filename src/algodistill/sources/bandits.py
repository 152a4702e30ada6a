"""Bandit sources, batched over learners: UCB1 (the paper's, Sec. 4.1 / Table 2) and Thompson sampling.

Each env step is one trial (an episode of length 1); a learner's state is its per-arm pull counts and
reward sums, arrays of shape (N, A).

- UCB1 (Auer, Cesa-Bianchi & Fischer 2002): pull every arm once (in a random order: an untried arm
  scores +inf and ties are broken with hashed uniforms), then the arm maximising
  mean_i + c * sqrt(2 ln t / n_i), t = pulls so far. c = 1 is Auer et al.'s UCB1.
- Thompson sampling (Thompson 1933; Chapelle & Li 2011) on Bernoulli arms with Beta(1, 1) priors, the
  source of Headless-AD's bandit histories. A Beta(a, b) draw is G_a / (G_a + G_b) with Gamma draws by
  Marsaglia & Tsang (2000) from hashed normals and uniforms, with a fixed number of vectorised
  rejection rounds (no data-dependent loop; see `gamma_marsaglia_tsang`).

Hyperparameters: UCB c = 1 (Auer et al.'s UCB1; the AD paper gives none); Thompson Beta(1, 1) priors
(uniform, standard) and 8 rejection rounds (our choice: a fallback to the Gamma mean has probability
< 1e-10 per draw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algodistill import rng
from algodistill.envs import BatchedEnv
from algodistill.errors import UserError
from algodistill.rng import Stream
from algodistill.sources.common import argmax_tiebreak


@dataclass(frozen=True)
class UCBConfig:
    """UCB1 (Auer et al. 2002), the paper's bandit source."""

    c: float = 1.0
    """exploration coefficient: the bonus is c * sqrt(2 ln t / n_i) (Auer et al.'s UCB1: c = 1)"""

    def __post_init__(self) -> None:
        if not self.c >= 0.0:
            raise UserError(f"ucb.c={self.c} is out of range: choose an exploration coefficient >= 0")


@dataclass(frozen=True)
class ThompsonConfig:
    """Thompson sampling with Beta priors on Bernoulli arms."""

    prior_alpha: float = 1.0
    """Beta prior's alpha (pseudo-successes); Beta(1, 1) is uniform"""
    prior_beta: float = 1.0
    """Beta prior's beta (pseudo-failures)"""
    gamma_rounds: int = 8
    """Marsaglia-Tsang rejection rounds per Gamma draw (each accepts with prob. > 0.95; 8 fail with < 1e-10)"""

    def __post_init__(self) -> None:
        for name in ("prior_alpha", "prior_beta"):
            v = getattr(self, name)
            if not v >= 1.0:
                raise UserError(f"thompson.{name}={v} is out of range: choose a prior parameter >= 1")
        if self.gamma_rounds < 1:
            raise UserError(f"thompson.gamma_rounds={self.gamma_rounds} is out of range: choose an integer >= 1")


def ucb_scores(sum_r: np.ndarray, n: np.ndarray, t: int, c: float) -> np.ndarray:
    """UCB1 index mean_i + c * sqrt(2 ln t / n_i); +inf for an arm never pulled. (N, A), (N, A) -> (N, A)"""
    pulled = n > 0
    n_safe = np.where(pulled, n, 1)
    bonus = c * np.sqrt(2.0 * np.log(max(t, 1)) / n_safe)
    return np.where(pulled, sum_r / n_safe + bonus, np.inf)


def gamma_marsaglia_tsang(shape: np.ndarray, z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Gamma(shape, 1) draws for shape >= 1 by Marsaglia & Tsang (2000), all rounds at once.

    Round k proposes d * v_k with d = shape - 1/3, v_k = (1 + z_k / sqrt(9 d))^3 and accepts it when
    v_k > 0 and log(u_k) < z_k^2 / 2 + d - d v_k + d log v_k; the first accepted round wins. If all K
    rounds reject (probability < 0.05^K), the draw falls back to the mean, `shape`.

    Args: shape (...,) >= 1; z (..., K) standard normals; u (..., K) uniforms in (0, 1]. Returns (...,).
    """
    d = (shape - 1.0 / 3.0)[..., None]  # (..., 1)
    v = (1.0 + z / np.sqrt(9.0 * d)) ** 3  # (..., K)
    v_pos = np.where(v > 0, v, 1.0)
    accept = (v > 0) & (np.log(u) < 0.5 * z**2 + d - d * v_pos + d * np.log(v_pos))  # (..., K)
    first = accept.argmax(axis=-1)  # (...,) first accepted round (0 if none)
    draw = np.take_along_axis(d * v_pos, first[..., None], axis=-1)[..., 0]
    return np.where(accept.any(axis=-1), draw, shape)


class UCB:
    """N independent UCB1 learners."""

    def __init__(self, env: BatchedEnv, keys: np.ndarray, cfg: UCBConfig):
        n, A = env.num_envs, env.spec.num_actions
        self.cfg = cfg
        self.keys = keys  # (N,) uint64
        self.rows = np.arange(n)
        self.pulls = np.zeros((n, A), dtype=np.int64)  # (N, A) n_i
        self.sum_r = np.zeros((n, A), dtype=np.float64)  # (N, A)
        self.t = 0  # pulls so far, the same for every learner

    def act(self, o_t: np.ndarray) -> np.ndarray:
        scores = ucb_scores(self.sum_r, self.pulls, self.t, self.cfg.c)  # (N, A)
        return argmax_tiebreak(scores, rng.uniform(self.keys, self.t, Stream.TIEBREAK))

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        self.pulls[self.rows, a_t] += 1
        self.sum_r[self.rows, a_t] += r_t
        self.t += 1


class Thompson:
    """N independent Beta-Bernoulli Thompson samplers."""

    def __init__(self, env: BatchedEnv, keys: np.ndarray, cfg: ThompsonConfig):
        n, A = env.num_envs, env.spec.num_actions
        self.cfg = cfg
        self.keys = keys  # (N,) uint64
        self.rows = np.arange(n)
        self.alpha = np.full((n, A), cfg.prior_alpha)  # (N, A) posterior Beta parameters
        self.beta = np.full((n, A), cfg.prior_beta)  # (N, A)
        self.t = 0

    def sample_means(self) -> np.ndarray:
        """One posterior draw of every arm's payout probability for every learner. (N, A)"""
        n, A = self.alpha.shape
        K = self.cfg.gamma_rounds
        m = 2 * A * K  # Gamma draws for alpha and beta of every arm, K rounds each
        u_norm = rng.uniform_block(self.keys, self.t * 2 * m, 2 * m, Stream.GAMMA_NORMAL).reshape(n, 2, 2 * A, K)
        z = rng.box_muller(u_norm[:, 0], u_norm[:, 1])  # (N, 2A, K)
        u_acc = 1.0 - rng.uniform_block(self.keys, self.t * m, m, Stream.GAMMA_ACCEPT).reshape(n, 2 * A, K)  # (0, 1]
        g = gamma_marsaglia_tsang(np.concatenate([self.alpha, self.beta], axis=1), z, u_acc)  # (N, 2A)
        return g[:, :A] / (g[:, :A] + g[:, A:])

    def act(self, o_t: np.ndarray) -> np.ndarray:
        return argmax_tiebreak(self.sample_means(), rng.uniform(self.keys, self.t, Stream.TIEBREAK))

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        # Bernoulli rewards; a reward in [0, 1] counts as a fractional success (Agrawal & Goyal 2012 use a coin flip).
        self.alpha[self.rows, a_t] += r_t
        self.beta[self.rows, a_t] += 1.0 - r_t
        self.t += 1
