"""The AD transformer (Laskin et al. 2022, Sec. 3, Table 1, App. J).

A GPT-style causal transformer over a learning history: at every step t it reads (o_t, a_{t-1},
r_{t-1}) (AD's tokenisation, `algodistill.methods.ad`) and outputs logits for a_t. Defaults follow paper
Table 1: width 64, 4 layers x 4 heads, feed-forward 2048, post-norm, dropout 0.1, attention dropout
0.5, learned absolute positions, and random input-token masking with probability 0.3 (App. J).

Tokens per step k (`ModelConfig.layout`): "step" = 1 token, the sum of the o_t, a_{t-1} and r_{t-1}
embeddings (the paper does not state its layout, but its Fig. 15 attention maps are 200x200 over a
200-step context: one token per step); "sar" = 3 tokens (a_{t-1}, r_{t-1}, o_t), logits read at the
o_t token (`interleave`), as in corl-team/ad-eps. The observation embedding comes from the encoder the
config names (`algodistill.encoders`). Step-by-step inference goes through a `KVCache`
(`algodistill.kvcache`), which documents what the cached logits are a function of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algodistill.encoders import EncoderConfig, make_encoder
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.kvcache import KVCache

# "sar" layout: per step t the three tokens are, in this order,
#     (a_{t-1}, r_{t-1}, o_t)
# and a_t is read from the o_t token, so the prediction of a_t has seen everything up to and including
# o_t and nothing after it. Up to the two leading start tokens this is the (s_0, a_0, r_0, s_1, ...)
# sequence of corl-team/ad-eps, which also predicts a_t from the state token.
SAR_TOKENS = 3
"""Tokens per step in the "sar" layout."""


def interleave(e_o: Tensor, e_a: Tensor, e_r: Tensor) -> Tensor:
    """Three (..., T, C) embeddings of o_t, a_{t-1}, r_{t-1} -> (..., 3T, C) in the order a, r, o per step."""
    assert e_o.shape == e_a.shape == e_r.shape, (e_o.shape, e_a.shape, e_r.shape)
    x = torch.stack((e_a, e_r, e_o), dim=-2)  # (..., T, 3, C)
    return x.flatten(-3, -2)  # (..., 3T, C)


def deinterleave(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of `interleave`: (..., 3T, C) -> (e_o, e_a, e_r), each (..., T, C)."""
    assert x.shape[-2] % SAR_TOKENS == 0, x.shape
    e_a, e_r, e_o = x.unflatten(-2, (-1, SAR_TOKENS)).unbind(dim=-2)  # 3 x (..., T, C)
    return e_o, e_a, e_r


@dataclass(frozen=True)
class ModelConfig:
    """AD transformer hyper-parameters; the defaults are paper Table 1 (Dark Room)."""

    n_embd: int = 64
    """Embedding width (Table 1: 64)."""
    n_layer: int = 4
    """Number of transformer blocks (Table 1: 4)."""
    n_head: int = 4
    """Attention heads per block (Table 1: 4); must divide n_embd."""
    n_ff: int = 2048
    """Hidden width of each block's feed-forward MLP (Table 1: 2048)."""
    dropout: float = 0.1
    """Dropout on the input embeddings and on every residual branch (Table 1: 0.1)."""
    attn_dropout: float = 0.5
    """Dropout on the attention weights (Table 1: 0.5; 0 for Dark Room Hard)."""
    token_mask: float = 0.3
    """Training only: probability of replacing an input token by a learned mask (App. J: 0.3; Hard: 0.5);
    a position whose observation token is masked is left out of the loss (ours, docs/fidelity.md)."""
    layout: Literal["step", "sar"] = "step"
    """Tokens per step: "step" = one token for (a_{t-1}, r_{t-1}, o_t) (Fig. 15); "sar" = three tokens (ad-eps)."""
    positions: Literal["learned", "rope"] = "learned"
    """Position encoding: "learned" absolute (Table 1) or "rope" (rotary; the inference cache rolls)."""
    norm: Literal["post", "pre"] = "post"
    """LayerNorm placement: "post" (Table 1) or "pre" (GPT-2)."""
    context: int = 80
    """Steps in the attention window c, in training and in the inference cache (paper Sec. 5: 2-4 episodes)."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """How an observation becomes one embedding (algodistill.encoders): embedding, mlp or conv."""

    def __post_init__(self) -> None:
        for name in ("n_embd", "n_layer", "n_head", "n_ff", "context"):
            if getattr(self, name) < 1:
                raise UserError(f"model.{name}={getattr(self, name)} must be positive: choose {name} >= 1")
        for name in ("dropout", "attn_dropout", "token_mask"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise UserError(f"model.{name}={p} is not a probability in [0, 1): choose e.g. {name}=0.1")
        choices = {"layout": ("step", "sar"), "positions": ("learned", "rope"), "norm": ("post", "pre")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"model.{name}={getattr(self, name)!r} is unknown: choose one of {allowed}")
        if self.n_embd % self.n_head:
            raise UserError(
                f"model.n_embd={self.n_embd} is not divisible by n_head={self.n_head}: choose a multiple of n_head"
            )
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise UserError(
                f"model head size n_embd/n_head={self.n_embd // self.n_head} is odd, but rope rotates pairs of "
                "channels: choose n_embd/n_head even, or positions='learned'"
            )

    @property
    def tokens_per_step(self) -> int:
        """k: 1 for the "step" layout, 3 for "sar"."""
        return 1 if self.layout == "step" else SAR_TOKENS


def _rope_angles(pos0: int, length: int, head_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos, sin (length, head_size/2) for positions pos0.. in float64: rolling positions grow unbounded."""
    inv_freq = 10000.0 ** (-torch.arange(0, head_size, 2, dtype=torch.float64, device=device) / head_size)
    pos = torch.arange(pos0, pos0 + length, dtype=torch.float64, device=device)  # (L,)
    angles = torch.outer(pos, inv_freq)  # (L, hs/2)
    return angles.cos(), angles.sin()


def _apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs (i, i + hs/2) of x (B, nh, L, hs) by the position angles (rotate-half form)."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, nh, L, hs/2) each, rotated in float32 even under autocast
    cos, sin = cos.float(), sin.float()
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)  # (B, nh, L, hs)


def _band_mask(num_steps: int, window: int, k: int, device: torch.device) -> Tensor:
    """(kT, kT) bool, True = may attend: causal, and only to tokens of the last `window` steps."""
    i = torch.arange(num_steps * k, device=device)  # token index
    causal = i[None, :] <= i[:, None]  # (L, L)
    recent = (i[None, :] // k) > (i[:, None] // k) - window  # (L, L) key step within the window
    return causal & recent


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.attn_dropout = cfg.attn_dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None, mask: Tensor | None, cache: KVCache | None, layer: int
    ) -> Tensor:
        """Self-attention over x (B, L, C); with a cache, over the cached tokens and x."""
        B, L, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, L, C)
        q = q.view(B, L, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, L, hs)
        k = k.view(B, L, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, L, hs)
        v = v.view(B, L, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, L, hs)
        if rope is not None:
            q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, Lk, hs)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=mask is None and cache is None,  # a cached forward passes its own mask (KVCache.begin)
        )  # (B, nh, L, hs)
        y = y.transpose(1, 2).contiguous().view(B, L, C)  # (B, L, C)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.n_ff)
        self.c_proj = nn.Linear(cfg.n_ff, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x))))  # (B, L, C)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.post_norm = cfg.norm == "post"
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None, mask: Tensor | None, cache: KVCache | None, layer: int
    ) -> Tensor:
        if self.post_norm:  # Table 1: LayerNorm after each residual sum, as in the original Transformer
            x = self.ln_1(x + self.attn(x, rope, mask, cache, layer))
            return self.ln_2(x + self.mlp(x))
        x = x + self.attn(self.ln_1(x), rope, mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


class ADTransformer(nn.Module):
    """Causal transformer from (o_t, a_{t-1}, r_{t-1}) to logits over a_t (paper Sec. 3).

    `obs_encoder` maps obs (B, T, *obs_shape) -> (B, T, n_embd), built from `cfg.encoder` for the
    observations of `spec` (UserError if it cannot read them). `generator` seeds the initialisation
    (rng.torch_rng); None uses torch's global generator.
    """

    def __init__(self, cfg: ModelConfig, spec: EnvSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        C, k = cfg.n_embd, cfg.tokens_per_step
        self.obs_encoder = make_encoder(cfg.encoder, spec, C)
        self.act_emb = nn.Embedding(spec.num_actions + 1, C)  # + 1: the start index a_{-1} = num_actions
        self.rew_emb = nn.Linear(1, C)  # rewards are real numbers, so a linear map, not a table
        # App. J: "input tokens were randomly masked". We replace a masked token's content embedding
        # (before positions are added) by a learned vector, BERT-style; ad-eps instead applies element
        # dropout 0.3 to the embeddings. No parameter when masking is off: DDP rejects unused ones.
        self.mask_emb = nn.Parameter(torch.empty(C)) if cfg.token_mask > 0 else None
        self.pos_emb = nn.Embedding(k * cfg.context, C) if cfg.positions == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(C) if cfg.norm == "pre" else nn.Identity()  # post-norm blocks end normed
        self.head = nn.Linear(C, spec.num_actions)
        self._init_weights(generator)

    def _init_weights(self, generator: torch.Generator | None) -> None:
        """nanoGPT: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 n_layer)."""
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.cfg.n_layer), generator=generator)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2 or name == "mask_emb":  # Linear and Embedding weights
                nn.init.normal_(p, 0.0, 0.02, generator=generator)
            # the remaining vectors are LayerNorm weights, which stay 1

    def num_params(self) -> int:
        """Number of parameters, position embeddings included."""
        return sum(p.numel() for p in self.parameters())

    def _tokens(self, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor, masked: Tensor | None = None) -> Tensor:
        """Input token embeddings (B, kT, C) of T steps, before positions; `masked` (B, kT) tokens replaced."""
        e_o = self.obs_encoder(obs)  # (B, T, C)
        e_a = self.act_emb(a_tm1)  # (B, T, C)
        e_r = self.rew_emb(r_tm1.unsqueeze(-1).to(self.rew_emb.weight.dtype))  # (B, T, C)
        # "step": summed, not concatenated and projected, which is the same function class (as in EmbeddingEncoder)
        x = e_o + e_a + e_r if self.cfg.layout == "step" else interleave(e_o, e_a, e_r)  # (B, kT, C)
        if masked is not None:
            if self.mask_emb is None:
                raise ValueError("masked tokens were passed, but the model was built with token_mask=0")
            x = torch.where(masked.unsqueeze(-1), self.mask_emb.to(x.dtype), x)  # (B, kT, C)
        return x

    def draw_token_mask(self, batch: int, steps: int, device: torch.device) -> Tensor | None:
        """Training: which input tokens to mask, each with probability token_mask (App. J), from torch's
        global generator (the trainer seeds it per iteration). (B, kT) bool, or None when masking is off."""
        if not self.training or self.mask_emb is None:
            return None
        return torch.rand((batch, steps * self.cfg.tokens_per_step), device=device) < self.cfg.token_mask

    def _backbone(self, x: Tensor, pos0: int, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        """Blocks over tokens x (B, L, C) at positions pos0..pos0+L-1 -> logits (B, L/k, A) at o_t tokens."""
        L = x.shape[1]
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(pos0, pos0 + L, device=x.device))  # (B, L, C)
        else:
            rope = _rope_angles(pos0, L, self.cfg.n_embd // self.cfg.n_head, x.device)
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, rope, mask, cache, layer)  # (B, L, C)
        x = self.ln_f(x)
        if self.cfg.layout == "sar":
            x = deinterleave(x)[0]  # (B, T, C) the o_t tokens, which predict a_t
        return self.head(x)  # (B, T, A)

    def forward(
        self, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor, window: int | None = None, masked: Tensor | None = None
    ) -> Tensor:
        """Logits (B, T, A) for a_t from obs (B, T, *obs_shape), a_tm1 (B, T) long, r_tm1 (B, T) float.

        `masked` (B, kT) bool replaces those input tokens by the learned mask token (`draw_token_mask`).
        `window` (steps) bands the causal mask to sliding-window attention, which is what a rope
        model's rolling cache computes over a long stream (module docstring); None = plain causal.
        """
        T = a_tm1.shape[1]
        if self.pos_emb is not None and T > self.cfg.context:
            raise ValueError(
                f"{T} steps exceed context={self.cfg.context} of the learned position table: "
                "pass at most `context` steps, or use step() with a KVCache for longer streams"
            )
        if window is not None and window < 1:
            raise ValueError(f"window={window} must be a positive number of steps")
        x = self._tokens(obs, a_tm1, r_tm1, masked)  # (B, kT, C)
        mask = None if window is None else _band_mask(T, window, self.cfg.tokens_per_step, x.device)
        return self._backbone(x, 0, mask, None)

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty KV cache for `batch_size` streams that step together (rolling for rope positions)."""
        return KVCache(batch_size, self.cfg.context, self.cfg.tokens_per_step, rolling=self.pos_emb is None)

    @torch.no_grad()
    def step(self, cache: KVCache, obs_t: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> Tensor:
        """Append one step of every stream to `cache`; return its logits for a_t (B, A).

        obs_t (B, *obs_shape), a_tm1 (B,) long, r_tm1 (B,) float. Call `eval()` first: in training
        mode dropout applies here as in `forward`.
        """
        obs, a, r, pos0, mask = cache.advance(obs_t, a_tm1, r_tm1)
        x = self._tokens(obs, a, r)  # (B, k * steps, C)
        return self._backbone(x, pos0, mask, cache)[:, -1]  # (B, A)
