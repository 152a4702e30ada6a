"""Algorithm Distillation (Laskin et al. 2022): predict the source's next action from its learning history.

Tokenisation. AD predicts a_t from the history before step t and the current observation (paper
Eq. 6); it never conditions on returns (Fig. 1). So at step t the model reads (o_t, a_{t-1}, r_{t-1}):

    step t:    0          1        2       ...
    o_t        o_0        o_1      o_2
    a_tm1      START      a_0      a_1          START = num_actions, "no previous action"
    r_tm1      0          r_0      r_1

`shift_inputs` builds these inputs from a transition stream and `unshift_inputs` inverts it. A training
window of c steps is cut from a history with one step in front of it (`window`), whose action and
reward are the window's first a_{t-1}, r_{t-1}, or START and 0 at a history's start. How the three
inputs of a step become tokens (one per step, or three) is the model's layout (`algodistill.model`).

Loss: the NLL of the source's action at every position of the window (Eq. 6), with label smoothing
(App. F), except where token masking (App. J) erased the position's observation token: the paper does
not say what a masked position is trained on, and predicting a_t without o_t teaches the model to
guess the source's action from the history alone (ours: those positions leave the loss; docs/fidelity.md).

Policy: the model steps through a KV cache, which is the policy's state; an evaluation stream starts
with an empty context (Alg. 1, Sec. 4.3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from algodistill.envs.spec import EnvSpec
from algodistill.kvcache import KVCache
from algodistill.methods.base import NO_ACTION, Batch, masked_nll
from algodistill.model import ADTransformer, ModelConfig
from algodistill.sampler import Windows


def _check_stream(obs_t: Tensor, a: Tensor, r: Tensor, names: tuple[str, str]) -> None:
    if a.shape != r.shape or tuple(obs_t.shape[: a.dim()]) != tuple(a.shape):
        raise ValueError(
            f"shapes do not match: obs {tuple(obs_t.shape)}, {names[0]} {tuple(a.shape)}, "
            f"{names[1]} {tuple(r.shape)}: expected obs (..., T, *obs_shape) and (..., T) for the others"
        )


def shift_inputs(
    obs_t: Tensor,
    a_t: Tensor,
    r_t: Tensor,
    num_actions: int,
    *,
    a_prev: Tensor | None = None,
    r_prev: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Model inputs (o_t, a_{t-1}, r_{t-1}) from a transition stream (o_t, a_t, r_t).

    Args:
        obs_t: observations (..., T, *obs_shape), returned unchanged.
        a_t: actions (..., T).
        r_t: rewards (..., T).
        num_actions: the env's action count; `num_actions` is the start index "no previous action".
        a_prev, r_prev: the transition just before the stream, shape (...), when the stream is a window
            cut from inside a history. None (default) means the stream starts a history: a_{-1} =
            num_actions and r_{-1} = 0.

    Returns:
        (obs_t, a_tm1 int64 (..., T), r_tm1 (..., T) in r_t's dtype).
    """
    _check_stream(obs_t, a_t, r_t, ("a_t", "r_t"))
    lead = a_t.shape[:-1]
    a_0 = torch.full(lead, num_actions, dtype=torch.long) if a_prev is None else a_prev.long().expand(lead)
    r_0 = torch.zeros(lead, dtype=r_t.dtype) if r_prev is None else r_prev.to(r_t.dtype).expand(lead)
    a_tm1 = torch.cat([a_0.to(a_t.device).unsqueeze(-1), a_t.long()], dim=-1)[..., :-1]  # (..., T)
    r_tm1 = torch.cat([r_0.to(r_t.device).unsqueeze(-1), r_t], dim=-1)[..., :-1]  # (..., T)
    return obs_t, a_tm1, r_tm1


def unshift_inputs(
    obs_t: Tensor, a_tm1: Tensor, r_tm1: Tensor, a_last: Tensor, r_last: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of `shift_inputs`: the transition stream (o_t, a_t, r_t) back from model inputs.

    The inputs hold a_{-1}..a_{T-2}, so the stream's last action and reward (shape (...)) are passed
    in: `unshift_inputs(*shift_inputs(o, a, r, A), a[..., -1], r[..., -1]) == (o, a, r)`.
    Returns (obs_t, a_t int64 (..., T), r_t (..., T) in r_tm1's dtype).
    """
    _check_stream(obs_t, a_tm1, r_tm1, ("a_tm1", "r_tm1"))
    lead = a_tm1.shape[:-1]
    a_t = torch.cat([a_tm1.long(), a_last.long().expand(lead).unsqueeze(-1)], dim=-1)[..., 1:]  # (..., T)
    r_t = torch.cat([r_tm1, r_last.to(r_tm1.dtype).expand(lead).unsqueeze(-1)], dim=-1)[..., 1:]  # (..., T)
    return obs_t, a_t, r_t


class ADPolicy:
    """A frozen AD model acting in context: its state is the KV cache of the streams' histories."""

    def __init__(self, model: ADTransformer) -> None:
        self.model = model.eval()  # frozen: no dropout, no token masking
        self.start = model.spec.num_actions

    def init_state(self, batch: int) -> KVCache:
        return self.model.new_cache(batch)

    @torch.no_grad()
    def act(
        self, state: KVCache, o_t: Tensor, a_tm1: Tensor, r_tm1: Tensor, done_tm1: Tensor
    ) -> tuple[Tensor, KVCache]:
        # AD's context runs across episodes (paper Sec. 3), so an episode boundary (done_tm1) is not marked.
        a_tm1 = torch.where(a_tm1 == NO_ACTION, self.start, a_tm1)  # (B,) an empty context: the start index
        return self.model.step(state, o_t, a_tm1, r_tm1), state


class AD:
    """Algorithm Distillation: the transformer trained on the source's learning histories."""

    name = "ad"
    label = "AD"
    color = "C0"

    def data_source(self, run_source: str) -> str:
        return run_source

    def build_model(self, cfg: ModelConfig, spec: EnvSpec, generator: torch.Generator | None) -> nn.Module:
        return ADTransformer(cfg, spec, generator=generator)

    def window(self, cfg: ModelConfig) -> tuple[int, int]:
        return cfg.context + 1, 1  # the context, and the step before it (its a_{t-1}, r_{t-1})

    def make_batch(self, windows: Windows, spec: EnvSpec) -> Batch:
        w = windows
        a_prev = torch.where(w.pad[:, 0], spec.num_actions, w.actions[:, 0])  # (B,) START at a history's start
        obs_t, a_tm1, r_tm1 = shift_inputs(
            w.obs[:, 1:], w.actions[:, 1:], w.rewards[:, 1:], spec.num_actions, a_prev=a_prev, r_prev=w.rewards[:, 0]
        )  # (B, c, *obs_shape), (B, c), (B, c)
        a_t = w.actions[:, 1:]  # (B, c) the source's actions: every position is a target (Eq. 6)
        return Batch((obs_t, a_tm1, r_tm1), a_t, torch.ones_like(a_t, dtype=torch.bool))

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> tuple[Tensor, Tensor]:
        inner = getattr(model, "module", model)  # under DDP, the wrapped ADTransformer
        assert isinstance(inner, ADTransformer), type(inner)
        B, c = batch.targets.shape
        masked = inner.draw_token_mask(B, c, batch.targets.device)  # (B, k c) or None
        logits = model(*batch.inputs, masked=masked)  # (B, c, A)
        keep = batch.mask
        if masked is not None:  # a position whose o_t token was masked is not a target
            k = inner.cfg.tokens_per_step
            keep = keep & ~masked.view(B, c, k)[:, :, k - 1]  # (B, c) o_t is each step's last token
        return masked_nll(logits, batch.targets, keep, label_smoothing)

    def policy(self, model: nn.Module) -> ADPolicy:
        assert isinstance(model, ADTransformer), type(model)
        return ADPolicy(model)
