"""The KV cache of step-by-step inference: one object owns the keys, values and positions of B streams.

All B streams step together; the cache holds at most W = context steps (k W tokens, k tokens per
step), the window the model was trained on. Two algorithms, chosen by the model's position encoding,
and what the logits at step t (t = 0, 1, ... since `reset`) are then a function of:

- t < W, both: steps 0..t, exactly as the model's full forward over them.
- learned positions (re-prefill): absolute positions cannot slide, so once the cache is full (W steps)
  every step restarts it: the newest W - 1 steps are re-encoded at positions 0..W-2 together with the
  new step, in one causal forward. The model then sees exactly the last min(t + 1, W) steps, a steady
  FIFO context of the trained length at every step, at the price of a full forward over W steps per
  step once the window is full (the cache saves the work of the first W steps only). Keeping fewer
  steps would be cheaper, but the context would then swing between that and W steps, a context the
  model was not trained on (with W // 2: about 3 Dark Room episodes on average instead of 4).
- rotary positions (rolling window): keys are rotated once at their absolute position and stored in a
  ring buffer of W steps; a new step overwrites the oldest. Attention scores depend only on relative
  positions, so nothing is recomputed. Every layer attends to the last min(t + 1, W) steps, but the keys
  and values of older tokens were computed when those were newest, so information from up to
  n_layer * (W - 1) steps back can reach the logits: sliding-window attention (as in Longformer or
  Mistral), equal to the full forward with a banded mask (`ADTransformer.forward(..., window=W)`).

Writes happen in two methods only: `advance` (once per step: which steps to encode, at which positions,
under which mask) and `update` (once per layer: the new keys and values).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Advance(NamedTuple):
    """What one inference step encodes: inputs of `steps` steps at token positions pos0.., and the mask."""

    obs: Tensor  # (B, steps, *obs_shape)
    a_tm1: Tensor  # (B, steps)
    r_tm1: Tensor  # (B, steps)
    pos0: int  # absolute token position of the first new token
    mask: Tensor | None  # (Lq, Lk) bool, True = may attend; None: the one new token sees every cached token


class KVCache:
    """Keys and values of the last `context` steps of B streams, per layer (module docstring).

    Buffers are (B, nh, context * k, hs), allocated at the first write in the dtype and device of the
    keys. Only the prefix of `n` steps is valid. Rolling: a ring indexed by t mod context (key order is
    irrelevant to attention once positions are baked into the keys). Re-prefill: filled from slot 0 and
    restarted when full, so it also keeps the raw inputs of the cached steps.
    """

    def __init__(self, batch_size: int, context: int, tokens_per_step: int, rolling: bool) -> None:
        self.batch_size = batch_size
        self.context = context
        self.tokens_per_step = tokens_per_step
        self.rolling = rolling
        self.reset()

    def reset(self) -> None:
        """Forget every stream's history: the next step is t = 0 with an empty context."""
        self.t = 0  # steps taken since reset
        self.n = 0  # valid steps in the buffers
        self.keys: list[Tensor] = []  # per layer (B, nh, context * k, hs)
        self.values: list[Tensor] = []
        self.inputs: tuple[Tensor, Tensor, Tensor] | None = None  # re-prefill only: obs, a_tm1, r_tm1 by slot
        self._write = slice(0, 0)  # token slots being written by the current forward

    def advance(self, obs_t: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> Advance:
        """Take one step for every stream: obs_t (B, *obs_shape), a_tm1 (B,), r_tm1 (B,).

        Returns the inputs to encode now (the new step, or after a full window the newest W - 1 steps
        and the new one), their first token position and the attention mask of their tokens.
        """
        if obs_t.shape[0] != self.batch_size:
            raise ValueError(f"batch of {obs_t.shape[0]} streams, but the cache holds {self.batch_size}")
        w, k = self.context, self.tokens_per_step
        obs, a, r = obs_t[:, None], a_tm1[:, None], r_tm1[:, None]  # (B, 1, ...) the new step
        if self.rolling:  # ring slot t mod W, keys rotated at their absolute position
            slot, pos0, valid = self.t % w, self.t * k, min(self.t + 1, w)
        else:  # fill slots 0..W-1 at positions 0..; when full, re-prefill the newest W - 1 steps
            if self.n == w:
                obs, a, r = self._newest_inputs(w - 1, obs, a, r)  # (B, W, ...)
                self.n = 0
            slot, pos0, valid = self.n, self.n * k, self.n + obs.shape[1]
            self._store_inputs(slot, obs, a, r)
        self.t += 1
        return Advance(obs, a, r, pos0, self._begin(slot, obs.shape[1], valid, obs.device))

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

    def _begin(self, slot: int, num_steps: int, valid_steps: int, device: torch.device) -> Tensor | None:
        """Start writing `num_steps` steps at step slot `slot`; return the attention mask for their tokens.

        Queries are the new tokens, keys the first `valid_steps` steps of the buffer. New tokens may sit
        in the middle of a ring buffer, so causal_lower_right does not apply (and is_causal=True would be
        wrong whenever Lq < Lk: SDPA aligns that mask top-left); the explicit bool mask lets a new token
        see every older token and the new ones up to itself. A single new token may see everything.
        """
        k = self.tokens_per_step
        self.n = valid_steps
        self._write = slice(slot * k, (slot + num_steps) * k)
        if num_steps * k == 1:
            return None
        q = torch.arange(self._write.start, self._write.stop, device=device)[:, None]  # (Lq, 1)
        key = torch.arange(valid_steps * k, device=device)[None, :]  # (1, Lk)
        return (key <= q) | (key >= self._write.stop)  # (Lq, Lk)

    def _store_inputs(self, slot: int, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> None:
        """Re-prefill: keep the raw inputs (B, steps, ...) of the cached steps for the next restart."""
        if self.inputs is None:
            B = obs.shape[0]
            self.inputs = (
                obs.new_zeros((B, self.context, *obs.shape[2:])),  # (B, W, *obs_shape)
                a_tm1.new_zeros((B, self.context)),  # (B, W)
                r_tm1.new_zeros((B, self.context)),  # (B, W)
            )
        for buf, new in zip(self.inputs, (obs, a_tm1, r_tm1), strict=True):
            buf[:, slot : slot + new.shape[1]] = new

    def _newest_inputs(self, keep: int, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The stored inputs of the newest `keep` cached steps followed by the new step's."""
        assert self.inputs is not None
        old_obs, old_a, old_r = (buf[:, self.n - keep : self.n] for buf in self.inputs)
        return (
            torch.cat((old_obs, obs), dim=1),  # (B, keep + 1, *obs_shape)
            torch.cat((old_a, a_tm1), dim=1),  # (B, keep + 1)
            torch.cat((old_r, r_tm1), dim=1),  # (B, keep + 1)
        )
