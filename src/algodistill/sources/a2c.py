"""A2C, the synchronous single-stream form of the paper's A3C source (AD Sec. 4.2, Table 4), batched
over N learners that each own an MLP, an Adam state and a random stream.

Per learner (Mnih et al. 2016, "A3C"; GAE: Schulman et al. 2016):
- input: one-hot of each observation component (x and y for the grid families); a shared ReLU MLP
  trunk with a policy head (A logits) and a value head, as one output layer of A + 1 units;
- one update per episode (an n-step rollout of the whole fixed-length episode) on the loss
  mean_t[-A_t log pi(a_t|o_t) + vf_coef * (v_t - G_t)^2 / 2 - ent_coef * H(pi(.|o_t))] with
  GAE(lambda) advantages A_t and targets G_t = A_t + v_t, and Adam.

Batching. Weights are (N, in, out) tensors used with `torch.bmm`, so nothing reduces across the
learner axis; Adam is elementwise and written with single-rounding ops only (no fused lerp/addcdiv,
whose SIMD and scalar paths may round differently), so a learner's numbers do not depend on N.

Speed. The weights only change at episode ends and the grid has few states (81 or 289), so after each
update we evaluate the network on *every* state at once (one well-shaped bmm per layer) and keep the
hidden activations and the [logits, value] outputs as tables: acting is a lookup plus a softmax over A
numbers, and the update back-propagates by hand from the cached activations of the visited states (no
autograd, no per-step matvec, which is memory-bound). The policy head is done in numpy float64
(softmax, sampling, loss gradients). Buffers are preallocated (fresh large CPU tensors cost page faults).
Memory: about N * S * (sum(hidden) + 16) * 4 bytes of tables plus 4x the parameters.

Hyperparameters (`A2CConfig`): gamma 0.99, GAE lambda 0.95, entropy 0.01, Adam betas (0.9, 0.999) and
eps 1e-6 from the paper's Table 4; a 2 x 64 MLP and lr 1e-3 by default (our choice), which takes Dark Room
learners from the random return to ~95% of optimal within 10k steps; the paper presets (`presets.py`) use
Table 4's 3 x 128 MLP (read as three hidden layers) and lr 1e-4. vf_coef 0.5 (A3C / baselines),
no advantage normalisation and a terminal episode end are ours. Measured on Dark Room (130 learners,
20k steps, lr 3e-3), final return / optimal: 0.97 as chosen; 0.91 with normalisation (a reward-free
episode's advantages are value noise; scaled to unit size they collapse the policy before it finds
the goal); 0.85 with time-limit bootstrapping.

Deviations: the paper's A3C has 100 asynchronous actors per task; ours is one synchronous stream per
learner (the paper's single-stream setting, App. I). The episode end is treated as terminal (no
bootstrap; `bootstrap_at_done` switches to time-limit bootstrapping, Pardo et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from algodistill import rng
from algodistill.envs import BatchedEnv
from algodistill.errors import UserError
from algodistill.rng import Stream
from algodistill.sources.common import state_index, state_strides


@dataclass(frozen=True)
class A2CConfig:
    """A2C (synchronous single-stream A3C). gamma, lambda, entropy and Adam default to the paper's
    Table 4; `hidden` and `lr` to our faster setting (the paper presets set Table 4's, `presets.py`)."""

    hidden: tuple[int, ...] = (64, 64)
    """hidden layer widths of the shared trunk (ours: 2 x 64, learns Dark Room in ~10k steps; Table 4: 128 128 128)"""
    lr: float = 1e-3
    """Adam learning rate (ours: 1e-3; Table 4: 1e-4)"""
    gamma: float = 0.99
    """discount (Table 4)"""
    gae_lambda: float = 0.95
    """GAE lambda (Table 4)"""
    ent_coef: float = 0.01
    """entropy bonus coefficient (Table 4)"""
    vf_coef: float = 0.5
    """value loss coefficient (our choice; A3C / baselines default)"""
    adam_beta1: float = 0.9
    """Adam beta1 (Table 4)"""
    adam_beta2: float = 0.999
    """Adam beta2 (Table 4)"""
    adam_eps: float = 1e-6
    """Adam epsilon (Table 4)"""
    norm_adv: bool = False
    """normalise each learner's advantages over its episode (off: it blows up a reward-free episode's value noise)"""
    bootstrap_at_done: bool = False
    """bootstrap an episode's last step from v(o_tp1), a time limit (off: terminal; learned better on Dark Room)"""

    def __post_init__(self) -> None:
        if len(self.hidden) == 0 or min(self.hidden) < 1:
            raise UserError(f"a2c.hidden={self.hidden} is invalid: give one or more positive layer widths")
        if not self.lr > 0:
            raise UserError(f"a2c.lr={self.lr} is out of range: choose a learning rate > 0")
        for name, high in (("gamma", "1]"), ("gae_lambda", "1]"), ("adam_beta1", "1)"), ("adam_beta2", "1)")):
            v = getattr(self, name)
            if not (0.0 <= v < 1.0 or (v == 1.0 and high == "1]")):
                raise UserError(f"a2c.{name}={v} is out of range: choose a value in [0, {high}")
        for name in ("ent_coef", "vf_coef"):
            if not getattr(self, name) >= 0:
                raise UserError(f"a2c.{name}={getattr(self, name)} is out of range: choose a coefficient >= 0")
        if not self.adam_eps > 0:
            raise UserError(f"a2c.adam_eps={self.adam_eps} is out of range: choose a value > 0")


def padded(width: int) -> int:
    """Width rounded up to a multiple of 16. MKL's batched sgemm rounds some narrow outputs (e.g. 6 columns
    with 81 rows) differently depending on the batch, which would make a learner's weights depend on N;
    multiples of 16 measured batch-independent. Padded units have zero weights, so they output 0 and get
    zero gradients: they stay exactly zero and change nothing."""
    return -(-width // 16) * 16


def gae(
    r_t: np.ndarray, v_t: np.ndarray, v_tp1: np.ndarray, done_t: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    """Generalised advantage estimates (Schulman et al. 2016, eq. 16) over a rollout. All (N, T) -> (N, T)

    delta_t = r_t + gamma * (1 - done_t) * v_tp1 - v_t and A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1};
    done_t marks a terminal transition (no bootstrap, trace cut). The trace also ends with the rollout.
    """
    not_done = 1.0 - done_t.astype(np.float64)  # (N, T)
    delta = r_t + gamma * not_done * v_tp1 - v_t  # (N, T)
    adv = np.empty_like(delta)
    a_tp1 = np.zeros(delta.shape[0])  # (N,)
    for t in range(delta.shape[1] - 1, -1, -1):
        a_tp1 = delta[:, t] + gamma * lam * not_done[:, t] * a_tp1
        adv[:, t] = a_tp1
    return adv


def policy_head_grad(
    logp: np.ndarray, a_t: np.ndarray, adv_t: np.ndarray, v_t: np.ndarray, ret_t: np.ndarray, cfg: A2CConfig
) -> np.ndarray:
    """Gradient of the per-learner A2C loss (mean over the T steps) w.r.t. the output layer [logits, value].

    d/dlogits of -A log pi(a) is A (pi - onehot(a)); of -ent_coef H(pi) is ent_coef pi (log pi + H);
    d/dv of vf_coef (v - G)^2 / 2 is vf_coef (v - G).
    Args: logp (N, T, A) log-probabilities; a_t (N, T); adv_t, v_t, ret_t (N, T). Returns (N, T, A + 1).
    """
    T = logp.shape[1]
    p = np.exp(logp)  # (N, T, A)
    ent = -(p * logp).sum(axis=-1, keepdims=True)  # (N, T, 1)
    d_logits = p * (adv_t[..., None] + cfg.ent_coef * (logp + ent))  # (N, T, A)
    np.put_along_axis(d_logits, a_t[..., None], np.take_along_axis(d_logits, a_t[..., None], -1) - adv_t[..., None], -1)
    d_v = cfg.vf_coef * (v_t - ret_t)  # (N, T)
    return np.concatenate([d_logits, d_v[..., None]], axis=-1) / T


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, float64."""
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


class A2C:
    """N independent A2C learners, one task each, updated once per episode."""

    def __init__(self, env: BatchedEnv, keys: np.ndarray, cfg: A2CConfig):
        spec = env.spec
        self.cfg = cfg
        self.keys = keys  # (N,) uint64
        self.n = n = env.num_envs
        self.num_actions = A = spec.num_actions
        assert spec.obs_high is not None and spec.num_states is not None  # the registry: categorical observations
        self.strides = state_strides(spec.obs_high)
        S = spec.num_states
        # Every observation vector, and the input unit each of its components switches on.
        obs_all = (np.arange(S)[:, None] // self.strides[None, :]) % np.array(spec.obs_high)  # (S, obs_dim)
        offsets = np.concatenate([[0], np.cumsum(spec.obs_high)[:-1]])  # (obs_dim,)
        in_units = torch.from_numpy(obs_all + offsets[None, :])  # (S, obs_dim) long
        d_in = int(sum(spec.obs_high))
        self.onehot = torch.zeros(S, d_in).scatter_(1, in_units, 1.0)  # (S, d_in) float32
        # Per-learner weights from hashed uniforms: He-uniform for ReLU layers, a 0.01-scaled policy head
        # (near-uniform initial policy, as in cleanrl's PPO) and a 1/sqrt(fan_in) value head; zero biases.
        # Layer widths are padded with zero units to a multiple of 16 (see `padded`).
        sizes = [d_in, *cfg.hidden, A + 1]
        widths = [d_in, *(padded(w) for w in sizes[1:])]
        self.W: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
            u = rng.uniform_block(keys, 0, fan_in * fan_out, Stream.INIT + i).reshape(n, fan_in, fan_out)
            scale = np.full(fan_out, np.sqrt(6.0 / fan_in))
            if i == len(sizes) - 2:
                scale = np.r_[np.full(A, 0.01 * np.sqrt(3.0 / fan_in)), np.sqrt(3.0 / fan_in)]
            w = np.zeros((n, widths[i], widths[i + 1]), dtype=np.float32)  # (N, in, out)
            w[:, :fan_in, :fan_out] = (2.0 * u - 1.0) * scale
            self.W.append(torch.from_numpy(w))
            self.b.append(torch.zeros(n, 1, widths[i + 1]))  # (N, 1, out)
        self.params = [*self.W, *self.b]
        # Preallocated buffers: fresh large CPU tensors cost page faults, which measured slower than the maths.
        self.adam_m = [torch.zeros_like(p) for p in self.params]
        self.adam_v = [torch.zeros_like(p) for p in self.params]
        self.grads = [torch.zeros_like(p) for p in self.params]
        biggest = max(p.numel() for p in self.params)
        self.scratch = (torch.empty(biggest), torch.empty(biggest))
        self.x_all = self.onehot.expand(n, S, d_in)  # (N, S, d_in) a view: every learner sees every state
        self.h = [torch.empty(n, S, w) for w in widths[1:-1]]  # hidden activations on every state, (N, S, h_i)
        self.out = torch.empty(n, S, widths[-1])  # (N, S, A + 1 padded): [logits, value, zeros]
        self.out_np = self.out.numpy()  # a view, refreshed in place
        self.num_updates = 0
        # Rollout buffer: one episode.
        H = spec.episode_length
        self.s_buf = np.zeros((n, H), dtype=np.int64)  # (N, H)
        self.a_buf = np.zeros((n, H), dtype=np.int64)  # (N, H)
        self.r_buf = np.zeros((n, H), dtype=np.float64)  # (N, H)
        self.k = 0  # steps stored in the current episode
        self.t = 0  # steps taken so far (counter of the action draws)
        self.rows = np.arange(n)
        self._refresh()

    @torch.no_grad()
    def _refresh(self) -> None:
        """Evaluate every learner's network on every state, in place: hidden activations and [logits, value].

        The first layer is a bmm with the one-hot inputs: each output sums exactly two nonzero products,
        so it equals the gathered rows W[x] + W[size + y] exactly, whatever the kernel's order.
        """
        W, b, h = self.W, self.b, self.h
        x = self.x_all
        for i in range(len(h)):
            torch.bmm(x, W[i], out=h[i])  # (N, S, h_i)
            h[i].add_(b[i]).relu_()
            x = h[i]
        torch.bmm(x, W[-1], out=self.out)  # (N, S, A + 1 padded)
        self.out.add_(b[-1])

    def _logp(self, rows: np.ndarray, s: np.ndarray) -> np.ndarray:
        """log pi(.|s) in float64 for the given learners' states. (N, ...) -> (N, ..., A)"""
        return log_softmax(self.out_np[rows, s, : self.num_actions].astype(np.float64))

    def act(self, o_t: np.ndarray) -> np.ndarray:
        s_t = state_index(o_t, self.strides)  # (N,)
        p_t = np.exp(self._logp(self.rows, s_t))  # (N, A)
        return rng.categorical(p_t, rng.uniform(self.keys, self.t, Stream.ACTION))

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        self.s_buf[:, self.k] = state_index(o_t, self.strides)
        self.a_buf[:, self.k] = a_t
        self.r_buf[:, self.k] = r_t
        self.k += 1
        self.t += 1
        if done_t[0]:  # episodes are synchronised: all learners end together
            self._learn(state_index(o_tp1, self.strides), self.k)
            self.k = 0

    def _learn(self, s_last: np.ndarray, T: int) -> None:
        """One A2C step on the episode in the buffer: GAE, hand-written backward pass, Adam, new tables."""
        cfg, rows, A = self.cfg, self.rows[:, None], self.num_actions
        s_t, a_t, r_t = self.s_buf[:, :T], self.a_buf[:, :T], self.r_buf[:, :T]  # (N, T)
        v_t = self.out_np[rows, s_t, A].astype(np.float64)  # (N, T)
        v_last = self.out_np[self.rows, s_last, A].astype(np.float64)  # (N,)
        v_tp1 = np.concatenate([v_t[:, 1:], v_last[:, None]], axis=1)  # (N, T)
        done_t = np.zeros_like(r_t, dtype=bool)
        done_t[:, -1] = not cfg.bootstrap_at_done
        adv_t = gae(r_t, v_t, v_tp1, done_t, cfg.gamma, cfg.gae_lambda)  # (N, T)
        ret_t = adv_t + v_t  # (N, T) value targets
        if cfg.norm_adv:
            adv_t = (adv_t - adv_t.mean(axis=1, keepdims=True)) / (adv_t.std(axis=1, keepdims=True) + 1e-8)
        d_out = np.zeros((self.n, T, self.out.shape[2]), dtype=np.float32)  # (N, T, A + 1 padded)
        d_out[..., : A + 1] = policy_head_grad(self._logp(rows, s_t), a_t, adv_t, v_t, ret_t, cfg)
        self._backward(torch.from_numpy(s_t), torch.from_numpy(d_out))
        self._adam()
        self._refresh()

    @torch.no_grad()
    def _backward(self, s_t: torch.Tensor, dz: torch.Tensor) -> list[torch.Tensor]:
        """Back-propagate dL/d(output) through the MLP from the cached activations of the visited states.

        Args: s_t (N, T) visited states; dz (N, T, A + 1 padded). Fills and returns self.grads
        (the order of self.params: weights, then biases).
        """
        N, T = s_t.shape
        flat = (torch.arange(N)[:, None] * self.onehot.shape[0] + s_t).view(-1)  # (N T,) row in (N S)
        hs = [torch.index_select(h.view(-1, h.shape[2]), 0, flat).view(N, T, -1) for h in self.h]  # (N, T, h_i)
        inputs = [self.onehot[s_t], *hs]  # input of each layer, (N, T, in_i)
        L = len(self.W)
        gW, gb = self.grads[:L], self.grads[L:]
        for i in range(L - 1, -1, -1):
            torch.bmm(inputs[i].transpose(1, 2), dz, out=gW[i])  # (N, in, out)
            torch.sum(dz, dim=1, keepdim=True, out=gb[i])  # (N, 1, out)
            if i > 0:
                dz = torch.bmm(dz, self.W[i].transpose(1, 2)).mul_(inputs[i] > 0)  # (N, T, in): through ReLU
        return self.grads

    @torch.no_grad()
    def _adam(self) -> None:
        """Adam (Kingma & Ba 2015) on self.grads, elementwise per learner, with single-rounding ops only."""
        cfg = self.cfg
        self.num_updates += 1
        b1, b2 = cfg.adam_beta1, cfg.adam_beta2
        step = cfg.lr / (1.0 - b1**self.num_updates)
        c2 = float(np.sqrt(1.0 - b2**self.num_updates))
        for p, g, m, v in zip(self.params, self.grads, self.adam_m, self.adam_v, strict=True):
            s1, s2 = (x[: p.numel()].view(p.shape) for x in self.scratch)
            torch.mul(g, g, out=s1)
            v.mul_(b2).add_(s1.mul_(1.0 - b2))  # v = b2 v + (1 - b2) g^2
            m.mul_(b1).add_(g.mul_(1.0 - b1))  # m = b1 m + (1 - b1) g   (g is ours to scale)
            torch.sqrt(v, out=s2)
            s2.div_(c2).add_(cfg.adam_eps)  # sqrt(v_hat) + eps
            torch.div(m, s2, out=s1)
            p.sub_(s1.mul_(step))  # p -= lr * m_hat / (sqrt(v_hat) + eps)
