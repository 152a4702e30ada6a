"""DQN(Q-lambda) from pixels, batched over learners: the paper's Watermaze source (AD Table 5), GPU-sized.

Per learner (Mnih et al. 2015; Peng's Q(lambda), Peng & Williams 1996):
- a convolutional Q-network on the frames the agent sees (`q_network`: conv blocks, then linear layers
  to one value per action);
- its own replay of every step it has taken, kept in the env's stored form (Watermaze: x, y, heading,
  12 bytes a step) and redrawn into frames when a batch is sampled (`TaskFamily.decode_obs`, where
  `device.frames_device` says: with numpy on the CPU, with torch on the learners' device), so 1e5 steps
  of replay cost 1.6 MB, not 2 GB;
- every `train_every` env steps one update on `batch` sequences of `unroll` steps from the replay:
  Peng's Q(lambda) returns (`q_lambda_returns`) bootstrapped from a target network copied every
  `target_period` updates, Huber loss, the gradient clipped per learner, Adam;
- epsilon-greedy acting, epsilon annealed linearly from `eps_start` (ours) to Table 5's `eps_final`.

Batching. The N learners' weights are stacked on a leading axis and run through one template network
with `torch.func.vmap` (a grouped convolution per layer), the loss is summed over learners (so each
learner's gradient is its own; updates run UPDATE_CHUNK learners at a time, to bound the frames' memory),
and clipping and Adam are per learner and elementwise with single-rounding ops (as `a2c.py`). Acting draws
frames from the env's stored form too, so generation skips the env's own drawing (`reads_obs = False`).

Determinism. Initial weights come from a torch generator seeded by the learner's key; the epsilon coin,
random actions and replay draws from `rng.uniform(keys, counter, stream)`. On the CPU a learner's history
and weights do not depend on how many learners share its batch or update chunk, nor on the thread count
(tests/test_dqn.py); on a GPU the convolution algorithm may change with the batch, so bytes can differ with
the shard size there.

Table 5 against ours (docs/fidelity.md): Table 5's actors (16 per learner), overlap of rollouts (31) and
offline data fraction (0.7) belong to a distributed learner and are not modelled: one actor per learner,
sequences drawn uniformly from its replay. Its torso (a ResNet: channels 32, 64, 64, kernels 3, strides 1,
max-pool 3 / 2) is, without the residual blocks, `--data.dqn.channels 32 64 64 --data.dqn.kernel 3
--data.dqn.stride 1 --data.dqn.pool`; the defaults are a smaller CPU-sized net. Its epsilon, 0.01, is our
final value: histories for AD must start near random, so ours anneals from 1. Table 5 states no memory for
this network; ours is feedforward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from algodistill import rng
from algodistill.device import frames_device
from algodistill.envs import BatchedEnv, get_family
from algodistill.envs.base import StoresObs
from algodistill.errors import UserError
from algodistill.rng import Stream
from algodistill.sources.common import linear_epsilon

UPDATE_CHUNK = 16
"""learners whose update runs at once. An update draws B (L + 1) frames per learner (CPU defaults: 44, 0.9 MB
as float32 at 36 x 48) and keeps their activations for the backward pass, so a shard of 500 learners at once
would hold tens of GB; 16 at a time bound it, and run faster than 64 at once (RESULTS.md). A learner's update
does not depend on its chunk (tests/test_dqn.py)."""


@dataclass(frozen=True)
class DQNConfig:
    """DQN(Q-lambda) from pixels (paper Table 5 where it gives a value; the module docstring says where not)."""

    channels: tuple[int, ...] = (16, 32)
    """output channels of each conv block (ours, CPU-sized; Table 5: 32 64 64)"""
    kernel: int = 5
    """conv kernel size (ours; Table 5: 3)"""
    stride: int = 2
    """conv stride (ours; Table 5: 1)"""
    pool: bool = False
    """a 3 x 3 max-pool of stride 2 after each conv block (Table 5: yes)"""
    hidden: tuple[int, ...] = (64,)
    """widths of the linear layers between the conv torso and the Q head (ours; Table 5 does not say)"""
    lr: float = 5e-4
    """Adam learning rate (ours, for histories of hundreds of episodes; Table 5: 1e-4)"""
    gamma: float = 0.9
    """discount (Table 5: 0.9)"""
    lam: float = 0.75
    """Q(lambda)'s lambda (Table 5: 0.75)"""
    batch: int = 4
    """sequences per update and learner (ours, CPU-sized; Table 5: 8)"""
    unroll: int = 10
    """steps per sequence (ours, CPU-sized; Table 5: rollout length 40)"""
    replay: int = 100_000
    """replay capacity in steps per learner, kept as the stored form (Table 5: 1e5)"""
    target_period: int = 50
    """updates between copies of the online network into the target network (Table 5: 50)"""
    train_every: int = 4
    """env steps between updates (ours; Table 5's distributed learner does not say)"""
    learn_start: int = 500
    """env steps in the replay before the first update (ours)"""
    grad_clip: float = 10.0
    """per-learner gradient norm clip (Table 5: 10)"""
    adam_eps: float = 1e-6
    """Adam epsilon (Table 5: 1e-6; betas 0.9, 0.999)"""
    eps_start: float = 1.0
    """epsilon at the first step (ours: histories start near the random return)"""
    eps_final: float = 0.01
    """epsilon after the annealing (Table 5: 0.01)"""
    anneal_fraction: float = 0.5
    """fraction of the history over which epsilon falls linearly to eps_final (ours)"""
    device: str = "cpu"
    """where the learners' networks run and their replay batches are drawn: cpu or cuda"""

    def __post_init__(self) -> None:
        ints = ("kernel", "stride", "batch", "unroll", "replay", "target_period", "train_every")
        for name in ints:
            if getattr(self, name) < 1:
                raise UserError(f"dqn.{name}={getattr(self, name)} is out of range: choose an integer >= 1")
        if not self.channels or min(self.channels) < 1 or (self.hidden and min(self.hidden) < 1):
            raise UserError(
                f"dqn.channels={self.channels}, dqn.hidden={self.hidden}: choose at least one conv block, "
                "and widths >= 1"
            )
        if self.learn_start < self.unroll + 1:
            v, least = self.learn_start, self.unroll + 1
            raise UserError(f"dqn.learn_start={v} is out of range: choose at least dqn.unroll + 1 = {least}")
        if self.replay < self.unroll + 1:
            raise UserError(f"dqn.replay={self.replay} is out of range: choose at least dqn.unroll + 1")
        for name, lo, hi in (("gamma", 0.0, 1.0), ("lam", 0.0, 1.0), ("eps_start", 0.0, 1.0), ("eps_final", 0.0, 1.0)):
            if not lo <= getattr(self, name) <= hi:
                raise UserError(f"dqn.{name}={getattr(self, name)} is out of range: choose a value in [{lo}, {hi}]")
        if not (self.lr > 0 and self.grad_clip > 0 and self.adam_eps > 0 and 0 < self.anneal_fraction <= 1):
            raise UserError(
                f"dqn.lr={self.lr}, grad_clip={self.grad_clip}, adam_eps={self.adam_eps}, "
                f"anneal_fraction={self.anneal_fraction}: choose positive values, anneal_fraction in (0, 1]"
            )
        if self.device not in ("cpu", "cuda") or (self.device == "cuda" and not torch.cuda.is_available()):
            raise UserError(
                f"dqn.device={self.device!r} is not available here: choose cpu, or cuda on a machine with a GPU"
            )


def q_network(obs_shape: tuple[int, ...], num_actions: int, cfg: DQNConfig) -> nn.Sequential:
    """One learner's Q-network: (M, C, H, W) frames in [0, 1] -> (M, A) values. Built on the meta device:
    the learners' weights live stacked in `DQN.params`, this is only the shape they run through."""
    H, W, C = obs_shape
    layers: list[nn.Module] = []
    for c_in, c_out in zip((C, *cfg.channels), cfg.channels, strict=False):
        layers += [nn.Conv2d(c_in, c_out, cfg.kernel, cfg.stride, padding=cfg.kernel // 2), nn.ReLU()]
        if cfg.pool:
            layers.append(nn.MaxPool2d(3, 2, padding=1))
    torso = nn.Sequential(*layers, nn.Flatten()).to("meta")
    width = torso(torch.empty(1, C, H, W, device="meta")).shape[1]  # padded blocks leave at least 1 x 1
    head: list[nn.Module] = []
    for d_in, d_out in zip((width, *cfg.hidden), cfg.hidden, strict=False):
        head += [nn.Linear(d_in, d_out), nn.ReLU()]
    head.append(nn.Linear(cfg.hidden[-1] if cfg.hidden else width, num_actions))
    return nn.Sequential(*torso, *head).to("meta")


def q_lambda_returns(
    r_t: torch.Tensor, done_t: torch.Tensor, qmax_tp1: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Peng's Q(lambda) returns along sequences, the last step bootstrapped from qmax_tp1 (paper Table 5).

    G_t = r_t + gamma (1 - done_t) ((1 - lam) qmax_tp1[t] + lam G_{t+1}), and G_{L-1} = r + gamma (1 - done)
    qmax_tp1[L-1]: a done step ends its episode, so nothing after it is counted.
    r_t, done_t, qmax_tp1: (..., L) -> (..., L)
    """
    G = torch.empty_like(r_t)
    next_G = qmax_tp1[..., -1]
    for t in range(r_t.shape[-1] - 1, -1, -1):
        mix = (1.0 - lam) * qmax_tp1[..., t] + lam * next_G
        G[..., t] = r_t[..., t] + gamma * (~done_t[..., t]) * mix
        next_G = G[..., t]
    return G


class DQN:
    """N independent DQN(Q-lambda) learners from pixels, one task each (see the module docstring)."""

    reads_obs = False  # it draws its frames from the env's stored form itself

    def __init__(self, env: BatchedEnv, keys: np.ndarray, total_steps: int, cfg: DQNConfig):
        assert isinstance(env, StoresObs)  # the registry: image observations with a stored form
        self.env, self.cfg, self.keys, self.total_steps = env, cfg, keys, total_steps
        self.family = get_family(env.spec.name)
        self.n, self.A = env.num_envs, env.spec.num_actions
        self.device = torch.device(cfg.device)
        self.net = q_network(env.spec.obs_shape, self.A, cfg)
        self.params = {k: v.to(self.device) for k, v in self._init_params().items()}  # name -> (N, *shape)
        self.target = {k: v.clone() for k, v in self.params.items()}
        self.adam_m = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.adam_v = {k: torch.zeros_like(v) for k, v in self.params.items()}
        C = min(cfg.replay, max(total_steps, cfg.unroll + 1))
        stored = env.spec.stored_shape
        assert stored is not None
        self.replay_obs = np.zeros((self.n, C, *stored), dtype=np.float32)  # (N, C, 3) stored form of o_t
        self.replay_a = np.zeros((self.n, C), dtype=np.uint8)  # (N, C)
        self.replay_r = np.zeros((self.n, C), dtype=np.float32)  # (N, C)
        self.replay_done = np.zeros((self.n, C), dtype=bool)  # (N, C)
        self.s_t = np.zeros((self.n, *stored), dtype=np.float32)  # (N, 3) the stored form `act` saw
        self.t = 0  # env steps taken (transitions in the replay, the newest last)
        self.updates = 0

    def _init_params(self) -> dict[str, torch.Tensor]:
        """Each learner's weights from its own generator (He-uniform for ReLU layers, zero biases, a 0.1
        scaled output layer): a learner's initial network does not depend on N. One loop over learners,
        at construction only."""
        shapes = {k: v.shape for k, v in self.net.named_parameters()}
        out = {k: torch.zeros(self.n, *s) for k, s in shapes.items()}
        last = list(shapes)[-2]  # the Q head's weight
        for i, key in enumerate(self.keys.tolist()):
            g = torch.Generator().manual_seed(key & (2**63 - 1))
            for k, s in shapes.items():
                if k.endswith("weight"):
                    bound = math.sqrt(6.0 / math.prod(s[1:])) * (0.1 if k == last else 1.0)
                    out[k][i] = (2.0 * torch.rand(s, generator=g) - 1.0) * bound
        return out

    def _frames(self, stored: np.ndarray) -> torch.Tensor:
        """Frames from the stored form, on the learners' device, as the network reads them.
        (N, M, *stored_shape) -> (N, M, C, H, W) float32 in [0, 1]"""
        on = frames_device(self.device)
        if on is None:
            x = torch.from_numpy(self.family.decode_obs(stored))  # (N, M, H, W, C) uint8
        else:
            x = self.family.decode_obs(torch.from_numpy(stored).to(on))
        return x.permute(0, 1, 4, 2, 3).float().div_(255.0)

    def q_values(self, params: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
        """Every learner's network on its own frames. (N, M, C, H, W) -> (N, M, A)"""
        if frames.shape[0] == 1:
            # vmap over one learner runs a plain convolution, over several a grouped one, and the two round
            # differently: a lone learner runs beside a copy of itself, so that its weights are the same bits
            # in a shard or an update chunk of one (the copy's output is dropped, so it adds no gradient).
            two = {k: v.expand(2, *v.shape[1:]) for k, v in params.items()}
            return self.q_values(two, frames.expand(2, *frames.shape[1:]))[:1]
        return vmap(lambda p, x: functional_call(self.net, p, (x,)))(params, frames)

    def epsilon(self, t: int) -> float:
        c = self.cfg
        return linear_epsilon(t, self.total_steps, c.eps_start, c.eps_final, c.anneal_fraction)

    def act(self, o_t: np.ndarray) -> np.ndarray:
        # o_t may be the stored form (generation skips drawing for this source): draw the frames here.
        self.s_t = self.env.stored_obs()  # (N, 3) kept for `update`: the step changes the env's state
        with torch.no_grad():
            q = self.q_values(self.params, self._frames(self.s_t[:, None]))[:, 0]  # (N, A)
        greedy = q.argmax(dim=1).cpu().numpy()  # (N,)
        explore = rng.uniform(self.keys, self.t, Stream.EXPLORE) < self.epsilon(self.t)  # (N,)
        a_rand = rng.integers(self.keys, self.t, self.A, stream=Stream.ACTION)  # (N,)
        return np.where(explore, a_rand, greedy)

    def update(self, o_t: np.ndarray, a_t: np.ndarray, r_t: np.ndarray, o_tp1: np.ndarray, done_t: np.ndarray) -> None:
        i = self.t % self.replay_a.shape[1]  # a ring: the oldest step is overwritten once it is full
        self.replay_obs[:, i] = self.s_t
        self.replay_a[:, i] = a_t
        self.replay_r[:, i] = r_t
        self.replay_done[:, i] = done_t
        self.t += 1
        if self.t >= self.cfg.learn_start and self.t % self.cfg.train_every == 0:
            self._learn()

    def _sample(self) -> tuple[np.ndarray, ...]:
        """`batch` sequences from each learner's replay: the stored observations of steps s .. s + L (N, B, L + 1,
        3), and the actions, rewards and dones of transitions s .. s + L - 1 (N, B, L) each. Starts s are
        uniform over the sequences whose L + 1 steps are all in the replay (the newest step's successor is not
        yet)."""
        cfg, C = self.cfg, self.replay_a.shape[1]
        L, oldest = cfg.unroll, max(0, self.t - C)
        count = self.t - L - oldest  # starts s in [oldest, t - L - 1]
        u = rng.uniform_block(self.keys, self.updates * cfg.batch, cfg.batch, Stream.REPLAY)  # (N, B)
        s = oldest + np.minimum((u * count).astype(np.int64), count - 1)  # (N, B)
        idx = (s[:, :, None] + np.arange(L + 1)) % C  # (N, B, L + 1)
        rows = np.arange(self.n)[:, None, None]
        return (
            self.replay_obs[rows, idx],
            self.replay_a[rows, idx[..., :L]].astype(np.int64),
            self.replay_r[rows, idx[..., :L]],
            self.replay_done[rows, idx[..., :L]],
        )

    def _learn(self) -> None:
        """One Q(lambda) update of every learner on its own batch from its own replay, UPDATE_CHUNK learners at
        a time: each learner's gradient is its own, so the chunks only bound the memory of the frames."""
        stored, a, r, done = self._sample()  # (N, B, L + 1, 3), (N, B, L) x 3
        parts = [self._grads(slice(lo, lo + UPDATE_CHUNK), stored, a, r, done) for lo in range(0, self.n, UPDATE_CHUNK)]
        self._adam(tuple(torch.cat(g) for g in zip(*parts, strict=True)))
        self.updates += 1
        if self.updates % self.cfg.target_period == 0:
            self.target = {k: v.clone() for k, v in self.params.items()}

    def _grads(
        self, rows: slice, stored: np.ndarray, a: np.ndarray, r: np.ndarray, done: np.ndarray
    ) -> tuple[torch.Tensor, ...]:
        """The Q(lambda) loss's gradient for learners `rows` (M of them), one tensor (M, *shape) per parameter."""
        cfg, dev = self.cfg, self.device
        stored, a, r, done = stored[rows], a[rows], r[rows], done[rows]
        M, B, L = a.shape
        frames = self._frames(stored.reshape(M, B * (L + 1), -1))  # (M, B (L + 1), C, H, W)
        with torch.no_grad():
            target = {k: v[rows] for k, v in self.target.items()}
            q_tgt = self.q_values(target, frames).view(M, B, L + 1, -1)  # (M, B, L + 1, A)
            G = q_lambda_returns(
                torch.from_numpy(r).to(dev),
                torch.from_numpy(done).to(dev),
                q_tgt[:, :, 1:].amax(dim=3),
                cfg.gamma,
                cfg.lam,
            )  # (M, B, L)
        params = {k: v[rows].detach().requires_grad_(True) for k, v in self.params.items()}
        q = self.q_values(params, frames.unflatten(1, (B, L + 1))[:, :, :L].flatten(1, 2))  # (M, B L, A)
        q_sa = q.view(M, B, L, -1).gather(3, torch.from_numpy(a).to(dev)[..., None])[..., 0]  # (M, B, L)
        loss = F.huber_loss(q_sa, G, reduction="none").mean(dim=(1, 2)).sum()  # learners add: own gradients
        return torch.autograd.grad(loss, list(params.values()))

    @torch.no_grad()
    def _adam(self, grads: tuple[torch.Tensor, ...]) -> None:
        """Per-learner gradient clipping, then Adam (betas 0.9, 0.999), elementwise with single-rounding ops."""
        cfg, b1, b2 = self.cfg, 0.9, 0.999
        sq = torch.stack([g.square().flatten(1).sum(dim=1) for g in grads]).sum(dim=0)  # (N,) squared norms
        clip = torch.clamp(cfg.grad_clip / (torch.sqrt(sq) + 1e-6), max=1.0)  # (N,)
        k = self.updates + 1
        step, c2 = cfg.lr / (1.0 - b1**k), math.sqrt(1.0 - b2**k)
        for (name, p), g in zip(self.params.items(), grads, strict=True):
            g = g * clip.view(-1, *([1] * (g.dim() - 1)))  # (N, *shape)
            m, v = self.adam_m[name], self.adam_v[name]
            m.mul_(b1).add_(g * (1.0 - b1))
            v.mul_(b2).add_(g.square().mul_(1.0 - b2))
            p.sub_(m / (torch.sqrt(v).div_(c2).add_(cfg.adam_eps)) * step)
