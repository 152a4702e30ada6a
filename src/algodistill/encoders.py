"""Observation encoders: one observation -> one embedding of width n_embd (the model's `obs_encoder` slot).

Which encoder a model uses is named by its config (`EncoderConfig.kind`), so a checkpoint rebuilds it;
which encoders fit an env is read from the env's `EnvSpec` (the kind and shape of its observations):

| kind | observations | what |
|---|---|---|
| embedding | categorical vector (grid cells, the bandit's constant) | one learned table per component, summed |
| mlp | any array | the observation as numbers, flattened, through a 2-layer MLP |
| conv | images (H, W, C) uint8 | conv blocks (conv, BatchNorm, ReLU, max-pool, dropout), then linear (paper Table 3) |

Every encoder maps (B, T, *obs_shape) -> (B, T, n_embd), so the transformer and its KV cache never see
what an observation is.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError

EncoderKind = Literal["embedding", "mlp", "conv"]


@dataclass(frozen=True)
class EncoderConfig:
    """How an observation becomes one embedding."""

    kind: EncoderKind = "embedding"
    """embedding (categorical observations), mlp (any array, as numbers) or conv (images); see encoders.py"""
    hidden: int = 128
    """mlp: hidden width"""
    channels: tuple[int, ...] = (32, 64, 64)
    """conv: output channels of each conv block (paper Table 3: 128 128 128)"""
    kernel: int = 5
    """conv: kernel size of each conv (paper Table 3: 5)"""
    stride: int = 2
    """conv: stride of each conv (paper Table 3: 2); each block then max-pools by 2"""
    dropout: float = 0.0
    """conv: dropout after each block (paper Table 3: 0.2)"""
    norm: Literal["batch", "none"] = "batch"
    """conv: BatchNorm in each block (paper Table 3) or none (ours, for RL^2 trained online: its rollouts
    normalise one frame per task, its updates a minibatch of unrolls, so BatchNorm would change the policy
    between acting and learning)"""

    def __post_init__(self) -> None:
        if self.kind not in get_args(EncoderKind):
            raise UserError(f"model.encoder.kind={self.kind!r} is unknown: choose embedding, mlp or conv")
        for name in ("hidden", "kernel", "stride"):
            if getattr(self, name) < 1:
                raise UserError(f"model.encoder.{name}={getattr(self, name)} must be positive: choose 1 or more")
        if not self.channels or min(self.channels) < 1:
            raise UserError(f"model.encoder.channels={self.channels} is invalid: give one or more positive widths")
        if self.norm not in ("batch", "none"):
            raise UserError(f"model.encoder.norm={self.norm!r} is unknown: choose batch or none")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model.encoder.dropout={self.dropout} is not a probability in [0, 1): choose e.g. 0.2")


def _conv_out(size: int, cfg: EncoderConfig) -> int:
    """Spatial size after one conv block: conv (padding kernel // 2, stride), then max-pool 2."""
    return ((size + 2 * (cfg.kernel // 2) - cfg.kernel) // cfg.stride + 1) // 2


def unfit_reason(cfg: EncoderConfig, spec: EnvSpec) -> str | None:
    """Why encoder `cfg` cannot read the observations of `spec`, or None if it can."""
    if cfg.kind == "embedding" and spec.obs_high is None:
        return "an embedding table needs categorical observations"
    if cfg.kind == "conv":
        if len(spec.obs_shape) != 3:
            return "conv needs images shaped (H, W, C)"
        h, w = spec.obs_shape[:2]
        for _ in cfg.channels:
            h, w = _conv_out(h, cfg), _conv_out(w, cfg)
        if min(h, w) < 1:
            return f"a {spec.obs_shape[0]}x{spec.obs_shape[1]} image is too small for {len(cfg.channels)} conv blocks"
    return None


def check_fits(cfg: EncoderConfig, spec: EnvSpec, field: str = "model.encoder") -> None:
    """UserError naming the field (`field`.kind) and the fix unless encoder `cfg` can read the observations of
    `spec`."""
    if (reason := unfit_reason(cfg, spec)) is not None:
        # each kind with the other settings given (a preset's small conv, say)
        fits = [k for k in get_args(EncoderKind) if unfit_reason(dataclasses.replace(cfg, kind=k), spec) is None]
        raise UserError(
            f"{field}.kind={cfg.kind!r} does not fit the observations of env={spec.name!r} "
            f"({spec.describe_obs()}): {reason}; choose one of {', '.join(fits)}"
        )


class EmbeddingEncoder(nn.Module):
    """Categorical observation vector (B, T, D) -> (B, T, C): one embedding per component, summed.

    Summing per-component tables (x and y of a grid cell) loses nothing against concatenate-then-project:
    a linear map of concatenated lookups is itself a sum of lookups. The bandit (D = 1, obs_high = (1,))
    gets a single learned constant.
    """

    offsets: Tensor  # (D,) start of each component's rows in the shared table

    def __init__(self, obs_high: tuple[int, ...], n_embd: int) -> None:
        super().__init__()
        self.table = nn.Embedding(sum(obs_high), n_embd)
        offsets = torch.tensor([0, *np.cumsum(obs_high)[:-1]], dtype=torch.long)  # (D,)
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        return self.table(obs.long() + self.offsets).sum(dim=-2)  # (B, T, D, C) -> (B, T, C)


class MLPEncoder(nn.Module):
    """Any observation (B, T, *obs_shape) -> (B, T, C): flattened numbers through Linear-ReLU-Linear."""

    def __init__(self, obs_shape: tuple[int, ...], hidden: int, n_embd: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(math.prod(obs_shape), hidden), nn.ReLU(), nn.Linear(hidden, n_embd))
        self.obs_dims = len(obs_shape)

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.flatten(-self.obs_dims).float()  # (B, T, prod(obs_shape)); autocast may lower it
        return self.net(x)  # (B, T, C)


class ConvEncoder(nn.Module):
    """Images (B, T, H, W, C) uint8 -> (B, T, n_embd): paper Table 3's conv blocks, then a linear map.

    Each block: conv (kernel, stride, same padding) -> BatchNorm -> ReLU -> max-pool 2 -> dropout.
    Pixels are scaled to [0, 1]. The paper maps to 256 and then to the transformer; we map straight to
    n_embd (one linear layer fewer, the same function class). In training, BatchNorm normalises with the
    statistics of every frame in the batch, later steps of a window included: a small non-causal leak
    that the paper's encoder has too, and that evaluation does not: it normalises with running
    statistics, which the trainer recomputes from the final weights after the last iteration (train.py).
    """

    def __init__(self, obs_shape: tuple[int, ...], cfg: EncoderConfig, n_embd: int) -> None:
        super().__init__()
        h, w, c_in = obs_shape
        blocks: list[nn.Module] = []
        for c_out in cfg.channels:
            blocks += [
                nn.Conv2d(c_in, c_out, cfg.kernel, cfg.stride, padding=cfg.kernel // 2),
                # Table 3: decay 0.999
                nn.BatchNorm2d(c_out, momentum=0.001, eps=1e-5) if cfg.norm == "batch" else nn.Identity(),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Dropout(cfg.dropout),
            ]
            c_in, h, w = c_out, _conv_out(h, cfg), _conv_out(w, cfg)
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(c_in * h * w, n_embd)

    def forward(self, obs: Tensor) -> Tensor:
        B, T = obs.shape[:2]
        x = obs.flatten(0, 1).permute(0, 3, 1, 2).to(self.proj.weight.dtype) / 255.0  # (B T, C, H, W)
        x = self.blocks(x).flatten(1)  # (B T, c h w)
        return self.proj(x).view(B, T, -1)  # (B, T, n_embd)


def make_encoder(cfg: EncoderConfig, spec: EnvSpec, n_embd: int) -> nn.Module:
    """The encoder `cfg` names, for the observations of `spec` (UserError if it does not fit them)."""
    check_fits(cfg, spec)
    if cfg.kind == "embedding":
        assert spec.obs_high is not None
        return EmbeddingEncoder(spec.obs_high, n_embd)
    if cfg.kind == "mlp":
        return MLPEncoder(spec.obs_shape, cfg.hidden, n_embd)
    return ConvEncoder(spec.obs_shape, cfg, n_embd)
