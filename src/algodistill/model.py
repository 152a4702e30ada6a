"""The AD transformer and its KV cache (Laskin et al. 2022, Sec. 3, Table 1, App. J).

A GPT-style causal transformer over a learning history: at every step t it reads (o_t, a_{t-1},
r_{t-1}) (`algodistill.tokens`) and outputs logits for a_t. Defaults follow paper Table 1: width 64,
4 layers x 4 heads, feed-forward 2048, post-norm, dropout 0.1, attention dropout 0.5, learned absolute
positions, and random input-token masking with probability 0.3 (App. J).

Tokens per step k (`ModelConfig.layout`): "step" = 1 token, the sum of the o_t, a_{t-1} and r_{t-1}
embeddings (Fig. 15 implies one token per step); "sar" = 3 tokens (a_{t-1}, r_{t-1}, o_t), logits read
at the o_t token (`tokens.interleave`).

Step-by-step inference (`ADTransformer.new_cache`, `ADTransformer.step`): all B streams step together;
the cache holds at most W = `ModelConfig.context` steps (kW tokens), the window the model was trained
on. What the logits at step t (t = 0, 1, ... since the last `reset`) are a function of:

- t < W, both modes: steps 0..t, exactly as `model(obs[:, :t+1], ...)[:, -1]`.
- positions="learned" (periodic re-prefill): absolute positions cannot slide, so when the cache is full
  (W steps) the next step restarts it: the newest K = W // 2 steps are re-encoded at positions 0..K-1
  together with the new step, in one causal forward. The model then sees exactly the last L(t) steps,
  `model(obs[:, t-L+1:t+1], ...)[:, -1]`, with L(t) = K + 1 + (t - W) mod (W - K) for t >= W, i.e. a
  context that shrinks to K + 1 steps and grows back to W every W - K steps.
- positions="rope" (rolling window): keys are rotated once at their absolute position (angles in
  float64, so they stay accurate far into a long rollout) and stored in a ring buffer of W steps; a new
  step overwrites the oldest. Attention scores depend only on relative positions, so nothing is
  recomputed. Every layer attends to the last min(t+1, W) steps, but the keys and values of older
  tokens were computed when those tokens were newest, so information from up to n_layer * (W - 1)
  steps back can reach the logits: this is sliding-window attention (as in Longformer or Mistral). It
  equals the full forward with a banded mask, `model(obs[:, :t+1], ..., window=W)[:, -1]`.

`reference_context_lengths` gives L(t) (learned) or min(t+1, W) (rope), and `reference_logits`
recomputes the cached logits without a cache; the tests check that they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.tokens import SAR_TOKENS, deinterleave, interleave


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
    """Training only: probability of replacing an input token by a learned mask (App. J: 0.3; Hard: 0.5)."""
    layout: Literal["step", "sar"] = "step"
    """Tokens per step: "step" = one token for (a_{t-1}, r_{t-1}, o_t) (Fig. 15); "sar" = three tokens (ad-eps)."""
    positions: Literal["learned", "rope"] = "learned"
    """Position encoding: "learned" absolute (Table 1) or "rope" (rotary; the inference cache rolls)."""
    norm: Literal["post", "pre"] = "post"
    """LayerNorm placement: "post" (Table 1) or "pre" (GPT-2)."""
    context: int = 80
    """Steps in the attention window c, in training and in the inference cache (paper Sec. 5: 2-4 episodes)."""

    def __post_init__(self) -> None:
        for name in ("n_embd", "n_layer", "n_head", "n_ff", "context"):
            if getattr(self, name) < 1:
                raise UserError(f"{name}={getattr(self, name)} must be positive: choose {name} >= 1")
        for name in ("dropout", "attn_dropout", "token_mask"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise UserError(f"{name}={p} is not a probability in [0, 1): choose e.g. {name}=0.1")
        choices = {"layout": ("step", "sar"), "positions": ("learned", "rope"), "norm": ("post", "pre")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"{name}={getattr(self, name)!r} is unknown: choose one of {allowed}")
        if self.n_embd % self.n_head:
            raise UserError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: choose n_embd as a multiple of n_head"
            )
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise UserError(
                f"head size n_embd/n_head={self.n_embd // self.n_head} is odd, but rope rotates pairs of "
                "channels: choose n_embd/n_head even, or positions='learned'"
            )

    @property
    def tokens_per_step(self) -> int:
        """k: 1 for the "step" layout, 3 for "sar"."""
        return 1 if self.layout == "step" else SAR_TOKENS


def reference_context_lengths(num_steps: int, cfg: ModelConfig) -> np.ndarray:
    """Steps attended at each of `num_steps` cached inference steps (module docstring). (num_steps,) int64

    learned: the logits at step t equal a full forward over the last L(t) steps.
    rope: each layer attends to the last min(t+1, W) steps (sliding-window attention).
    """
    t = np.arange(num_steps, dtype=np.int64)
    w = cfg.context
    if cfg.positions == "rope":
        return np.minimum(t + 1, w)
    keep = w // 2
    return np.where(t < w, t + 1, keep + 1 + (t - w) % (w - keep))


class ObsEncoder(nn.Module):
    """Integer observation vector (B, T, obs_dim) long -> (B, T, C): one embedding per component, summed.

    Summing per-component tables (x and y of a grid cell) loses nothing against concatenate-then-project:
    a linear map of concatenated lookups is itself a sum of lookups. The bandit (obs_dim=1,
    obs_high=(1,)) gets a single learned constant. This is the interface an image encoder (Watermaze,
    paper Table 3) keeps when it replaces `ADTransformer.obs_encoder`.
    """

    offsets: Tensor  # (obs_dim,) start of each component's rows in the shared table

    def __init__(self, obs_high: tuple[int, ...], n_embd: int) -> None:
        super().__init__()
        self.table = nn.Embedding(sum(obs_high), n_embd)
        offsets = torch.tensor([0, *np.cumsum(obs_high)[:-1]], dtype=torch.long)  # (obs_dim,)
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        return self.table(obs + self.offsets).sum(dim=-2)  # (B, T, obs_dim, C) -> (B, T, C)


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


class KVCache:
    """Keys and values of the last `context` steps of B streams, per layer, for `ADTransformer.step`.

    Buffers are (B, nh, context * k, hs), allocated at the first write in the dtype and device of the
    keys. Only the prefix of `n` steps is valid. With rope the buffer is a ring indexed by t mod
    context (key order is irrelevant to attention once positions are baked into the keys); with learned
    positions it is filled from slot 0 and restarted by a re-prefill, so it also keeps the raw inputs.
    """

    def __init__(self, batch_size: int, context: int, tokens_per_step: int) -> None:
        self.batch_size = batch_size
        self.context = context
        self.tokens_per_step = tokens_per_step
        self.reset()

    def reset(self) -> None:
        """Forget every stream's history: the next step is t = 0 with an empty context."""
        self.t = 0  # steps taken since reset
        self.n = 0  # valid steps in the buffers
        self.keys: list[Tensor] = []  # per layer (B, nh, context * k, hs)
        self.values: list[Tensor] = []
        self.inputs: tuple[Tensor, Tensor, Tensor] | None = None  # learned only: obs, a_tm1, r_tm1 by slot
        self._write = slice(0, 0)  # token slots being written by the current forward

    def begin(self, slot: int, num_steps: int, valid_steps: int, device: torch.device) -> Tensor | None:
        """Start writing `num_steps` steps at step slot `slot`; return the attention mask for their tokens.

        Queries are the new tokens, keys the first `valid_steps` steps of the buffer. New tokens may
        sit in the middle of a ring buffer, so causal_lower_right does not apply; the explicit bool mask
        lets a new token see every older token and the new ones up to itself (engineering.md A.3: never
        is_causal=True when Lq < Lk). A single new token may see everything: no mask.
        """
        k = self.tokens_per_step
        self.n = valid_steps
        self._write = slice(slot * k, (slot + num_steps) * k)
        if num_steps * k == 1:
            return None
        q = torch.arange(self._write.start, self._write.stop, device=device)[:, None]  # (Lq, 1)
        key = torch.arange(valid_steps * k, device=device)[None, :]  # (1, Lk)
        return (key <= q) | (key >= self._write.stop)  # (Lq, Lk)

    def store_inputs(self, slot: int, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> None:
        """Learned positions: keep the raw inputs (B, steps, ...) of the cached steps for the next re-prefill."""
        if self.inputs is None:
            B = obs.shape[0]
            self.inputs = (
                obs.new_zeros((B, self.context, *obs.shape[2:])),  # (B, W, obs_dim)
                a_tm1.new_zeros((B, self.context)),  # (B, W)
                r_tm1.new_zeros((B, self.context)),  # (B, W)
            )
        for buf, new in zip(self.inputs, (obs, a_tm1, r_tm1), strict=True):
            buf[:, slot : slot + new.shape[1]] = new

    def newest_inputs(self, keep: int, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The stored inputs of the newest `keep` cached steps followed by the new step's."""
        assert self.inputs is not None
        old_obs, old_a, old_r = (buf[:, self.n - keep : self.n] for buf in self.inputs)
        return (
            torch.cat((old_obs, obs), dim=1),  # (B, keep + 1, obs_dim)
            torch.cat((old_a, a_tm1), dim=1),  # (B, keep + 1)
            torch.cat((old_r, r_tm1), dim=1),  # (B, keep + 1)
        )

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write this layer's new keys/values (B, nh, Lq, hs); return the valid ones (B, nh, Lk, hs)."""
        if layer == len(self.keys):
            shape = (k.shape[0], k.shape[1], self.context * self.tokens_per_step, k.shape[3])
            self.keys.append(k.new_zeros(shape))
            self.values.append(v.new_zeros(shape))
        self.keys[layer][:, :, self._write] = k
        self.values[layer][:, :, self._write] = v
        valid = self.n * self.tokens_per_step
        return self.keys[layer][:, :, :valid], self.values[layer][:, :, :valid]


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

    `obs_encoder` maps obs (B, T, *obs_shape) -> (B, T, n_embd); the default is `ObsEncoder` for integer
    observations, and another module (an image encoder) may be assigned after construction.
    `generator` seeds the initialisation (rng.torch_rng); None uses torch's global generator.
    """

    def __init__(self, cfg: ModelConfig, spec: EnvSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        C, k = cfg.n_embd, cfg.tokens_per_step
        self.obs_encoder: nn.Module = ObsEncoder(spec.obs_high, C)
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

    def _tokens(self, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> Tensor:
        """Input token embeddings (B, kT, C) of T steps, before positions."""
        e_o = self.obs_encoder(obs)  # (B, T, C)
        e_a = self.act_emb(a_tm1)  # (B, T, C)
        e_r = self.rew_emb(r_tm1.unsqueeze(-1).to(self.rew_emb.weight.dtype))  # (B, T, C)
        # "step": summed, not concatenated and projected, which would be the same function (see ObsEncoder)
        x = e_o + e_a + e_r if self.cfg.layout == "step" else interleave(e_o, e_a, e_r)  # (B, kT, C)
        if self.training and self.mask_emb is not None:
            masked = torch.rand(x.shape[:2], device=x.device) < self.cfg.token_mask  # (B, kT)
            x = torch.where(masked.unsqueeze(-1), self.mask_emb.to(x.dtype), x)  # (B, kT, C)
        return x

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

    def forward(self, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor, window: int | None = None) -> Tensor:
        """Logits (B, T, A) for a_t from obs (B, T, obs_dim) long, a_tm1 (B, T) long, r_tm1 (B, T) float.

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
        x = self._tokens(obs, a_tm1, r_tm1)  # (B, kT, C)
        mask = None if window is None else _band_mask(T, window, self.cfg.tokens_per_step, x.device)
        return self._backbone(x, 0, mask, None)

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty KV cache for `batch_size` streams that step together."""
        return KVCache(batch_size, self.cfg.context, self.cfg.tokens_per_step)

    @torch.no_grad()
    def step(self, cache: KVCache, obs_t: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> Tensor:
        """Append one step of every stream to `cache`; return its logits for a_t (B, A).

        obs_t (B, obs_dim) long, a_tm1 (B,) long, r_tm1 (B,) float. Call `eval()` first: in training
        mode dropout and token masking apply here as in `forward`.
        """
        if obs_t.shape[0] != cache.batch_size:
            raise ValueError(f"batch of {obs_t.shape[0]} streams, but the cache holds {cache.batch_size}")
        w, k = self.cfg.context, self.cfg.tokens_per_step
        obs, a, r = obs_t[:, None], a_tm1[:, None], r_tm1[:, None]  # (B, 1, ...) the new step
        if self.pos_emb is None:  # rope: ring slot t mod W, keys rotated at their absolute position
            slot, pos0, valid = cache.t % w, cache.t * k, min(cache.t + 1, w)
        else:  # learned: fill slots 0..W-1 at positions 0..; when full, re-prefill the newest W // 2 steps
            if cache.n == w:
                obs, a, r = cache.newest_inputs(w // 2, obs, a, r)  # (B, W // 2 + 1, ...)
                cache.n = 0
            slot, pos0, valid = cache.n, cache.n * k, cache.n + obs.shape[1]
            cache.store_inputs(slot, obs, a, r)
        x = self._tokens(obs, a, r)  # (B, k * steps, C)
        mask = cache.begin(slot, obs.shape[1], valid, x.device)
        logits = self._backbone(x, pos0, mask, cache)  # (B, steps, A)
        cache.t += 1
        return logits[:, -1]  # (B, A)


@torch.no_grad()
def reference_logits(model: ADTransformer, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> Tensor:
    """Without a cache, the logits (B, T, A) that `step` returns over a stream of T steps from a reset.

    rope: one banded forward (sliding-window attention). learned: one forward per step over the
    last `reference_context_lengths` steps. Slow (T forwards); meant for tests and audits.
    """
    cfg = model.cfg
    if cfg.positions == "rope":
        return model(obs, a_tm1, r_tm1, window=cfg.context)
    logits = []
    for t, n in enumerate(reference_context_lengths(a_tm1.shape[1], cfg).tolist()):
        s = slice(t + 1 - n, t + 1)  # the last n steps up to t
        logits.append(model(obs[:, s], a_tm1[:, s], r_tm1[:, s])[:, -1])  # (B, A)
    return torch.stack(logits, dim=1)  # (B, T, A)
