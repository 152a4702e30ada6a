"""Tokenisation: the one place that turns transitions into model inputs, and back (design.md, Tokens).

AD predicts a_t from the history before step t and the current observation (paper Eq. 6); it never
conditions on returns (Fig. 1). So the model reads, at step t, the triple (o_t, a_{t-1}, r_{t-1}):

    step t:    0          1        2       ...
    o_t        o_0        o_1      o_2
    a_tm1      START      a_0      a_1          START = num_actions, "no previous action"
    r_tm1      0          r_0      r_1

`shift_inputs` builds these inputs from a transition stream and `unshift_inputs` inverts it.

How the three inputs of a step become tokens is the model's layout (`ModelConfig.layout`):

- "step" (our default): one token per step that combines o_t, a_{t-1} and r_{t-1}. The paper does not
  state its layout, but its Fig. 15 attention maps are 200x200 over a 200-step context, which implies
  one token per time step.
- "sar": three tokens per step, laid out by `interleave` below, as in several re-implementations
  (corl-team/ad-eps, corl-team/headless-ad).

Everything here is a pure function of its arguments: numpy arrays or torch tensors in, the same kind out.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _prepend(first: Array | int | float | None, rest: Array, fill: int | float) -> Array:
    """Concatenate `first` (shape rest.shape[:-1], or None = `fill`) in front of the last axis of `rest`."""
    if isinstance(rest, torch.Tensor):
        head = (
            torch.full(rest.shape[:-1], fill, dtype=rest.dtype, device=rest.device)
            if first is None
            else torch.as_tensor(first, dtype=rest.dtype, device=rest.device).expand(rest.shape[:-1])
        )
        return torch.cat([head.unsqueeze(-1), rest], dim=-1)  # (..., T + 1)
    head_np = np.full(rest.shape[:-1], fill if first is None else first, dtype=rest.dtype)
    return np.concatenate([head_np[..., None], rest], axis=-1)  # (..., T + 1)


def _append(rest: Array, last: Array | int | float) -> Array:
    """Concatenate `last` (shape rest.shape[:-1]) after the last axis of `rest`."""
    if isinstance(rest, torch.Tensor):
        tail = torch.as_tensor(last, dtype=rest.dtype, device=rest.device).expand(rest.shape[:-1])
        return torch.cat([rest, tail.unsqueeze(-1)], dim=-1)  # (..., T + 1)
    tail_np = np.broadcast_to(np.asarray(last, dtype=rest.dtype), rest.shape[:-1])
    return np.concatenate([rest, tail_np[..., None]], axis=-1)  # (..., T + 1)


def _as_long(a: Array) -> Array:
    """Actions as int64 (embedding indices); a uint8 stream could not hold a start index of 256."""
    return a.long() if isinstance(a, torch.Tensor) else a.astype(np.int64)


def _check_stream(obs_t: Array, a: Array, r: Array, names: tuple[str, str]) -> None:
    if a.shape != r.shape or tuple(obs_t.shape[:-1]) != tuple(a.shape):
        raise ValueError(
            f"shapes do not match: obs {tuple(obs_t.shape)}, {names[0]} {tuple(a.shape)}, "
            f"{names[1]} {tuple(r.shape)}: expected obs (..., T, obs_dim) and (..., T) for the others"
        )


def shift_inputs(
    obs_t: Array,
    a_t: Array,
    r_t: Array,
    num_actions: int,
    *,
    a_prev: Array | int | None = None,
    r_prev: Array | float | None = None,
) -> tuple[Array, Array, Array]:
    """Model inputs (o_t, a_{t-1}, r_{t-1}) from a transition stream (o_t, a_t, r_t).

    Args:
        obs_t: observations (..., T, obs_dim), returned unchanged.
        a_t: actions (..., T).
        r_t: rewards (..., T).
        num_actions: the env's action count; `num_actions` is the start index "no previous action".
        a_prev, r_prev: the transition just before the stream, shape (...), when the stream is a
            window cut from inside a history. None (default) means the stream starts a history:
            a_{-1} = num_actions and r_{-1} = 0.

    Returns:
        (obs_t, a_tm1 int64 (..., T), r_tm1 (..., T) in r_t's dtype).
    """
    _check_stream(obs_t, a_t, r_t, ("a_t", "r_t"))
    a_tm1 = _prepend(a_prev, _as_long(a_t), num_actions)[..., :-1]  # (..., T)
    r_tm1 = _prepend(r_prev, r_t, 0)[..., :-1]  # (..., T)
    return obs_t, a_tm1, r_tm1


def unshift_inputs(
    obs_t: Array, a_tm1: Array, r_tm1: Array, a_last: Array | int, r_last: Array | float
) -> tuple[Array, Array, Array]:
    """Inverse of `shift_inputs`: the transition stream (o_t, a_t, r_t) back from model inputs.

    The inputs hold a_{-1}..a_{T-2}, so the stream's last action and reward (shape (...)) are passed
    in: `unshift_inputs(*shift_inputs(o, a, r, A), a[..., -1], r[..., -1]) == (o, a, r)`.
    Returns (obs_t, a_t int64 (..., T), r_t (..., T) in r_tm1's dtype).
    """
    _check_stream(obs_t, a_tm1, r_tm1, ("a_tm1", "r_tm1"))
    a_t = _append(_as_long(a_tm1), a_last)[..., 1:]  # (..., T)
    r_t = _append(r_tm1, r_last)[..., 1:]  # (..., T)
    return obs_t, a_t, r_t


# "sar" layout: per step t the three tokens are, in this order,
#     (a_{t-1}, r_{t-1}, o_t)
# and a_t is read from the o_t token, so the prediction of a_t has seen everything up to and including
# o_t and nothing after it. Up to the two leading start tokens this is the (s_0, a_0, r_0, s_1, ...)
# sequence of corl-team/ad-eps, which also predicts a_t from the state token.
SAR_TOKENS = 3
"""Tokens per step in the "sar" layout."""


def interleave(e_o: torch.Tensor, e_a: torch.Tensor, e_r: torch.Tensor) -> torch.Tensor:
    """Three (..., T, C) embeddings of o_t, a_{t-1}, r_{t-1} -> (..., 3T, C) in the order a, r, o per step."""
    assert e_o.shape == e_a.shape == e_r.shape, (e_o.shape, e_a.shape, e_r.shape)
    x = torch.stack((e_a, e_r, e_o), dim=-2)  # (..., T, 3, C)
    return x.flatten(-3, -2)  # (..., 3T, C)


def deinterleave(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of `interleave`: (..., 3T, C) -> (e_o, e_a, e_r), each (..., T, C)."""
    assert x.shape[-2] % SAR_TOKENS == 0, x.shape
    e_a, e_r, e_o = x.unflatten(-2, (-1, SAR_TOKENS)).unbind(dim=-2)  # 3 x (..., T, C)
    return e_o, e_a, e_r
