"""AD's tokenisation: shift/unshift, its training batches, and the "sar" interleave, by hand and as round trips."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from algodistill.envs.spec import EnvSpec
from algodistill.methods.ad import AD, shift_inputs, unshift_inputs
from algodistill.model import ModelConfig, deinterleave, interleave
from algodistill.rng import torch_rng
from algodistill.sampler import Windows

torch.set_num_threads(1)

GRID = EnvSpec("darkroom", "test/Grid-v0", (2,), "uint8", (9, 9), 5, 20, 81, "9x9 grid")


def test_shift_inputs_by_hand() -> None:
    obs = torch.tensor([[[0], [1], [2]]], dtype=torch.uint8)  # (1, 3, 1)
    a = torch.tensor([[3, 0, 2]], dtype=torch.uint8)  # (1, 3)
    r = torch.tensor([[0.0, 1.0, 0.5]])  # (1, 3)
    obs_t, a_tm1, r_tm1 = shift_inputs(obs, a, r, num_actions=4)
    assert obs_t is obs
    assert a_tm1.tolist() == [[4, 3, 0]]  # 4 = start index: no previous action
    assert r_tm1.tolist() == [[0.0, 0.0, 1.0]]
    assert a_tm1.dtype == torch.int64 and r_tm1.dtype == torch.float32


def test_start_index_does_not_overflow_uint8_actions() -> None:
    a = torch.full((1, 2), 255, dtype=torch.uint8)  # (1, 2)
    _, a_tm1, _ = shift_inputs(torch.zeros(1, 2, 1), a, torch.zeros(1, 2), num_actions=256)
    assert a_tm1.tolist() == [[256, 255]]


def test_window_inside_a_history_uses_the_previous_transition() -> None:
    g = torch_rng(0)
    obs = torch.randint(0, 9, (2, 10, 2), generator=g)  # (2, 10, 2)
    a, r = torch.randint(0, 5, (2, 10), generator=g), torch.rand(2, 10, generator=g)  # (2, 10) each
    _, a_full, r_full = shift_inputs(obs, a, r, num_actions=5)
    _, a_win, r_win = shift_inputs(obs[:, 4:8], a[:, 4:8], r[:, 4:8], 5, a_prev=a[:, 3], r_prev=r[:, 3])
    assert torch.equal(a_win, a_full[:, 4:8])
    assert torch.equal(r_win, r_full[:, 4:8])


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shapes do not match"):
        shift_inputs(torch.zeros(2, 3, 1), torch.zeros(2, 4), torch.zeros(2, 4), num_actions=4)


streams = st.tuples(
    hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),  # leading dims
    st.integers(0, 6),  # T
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),  # obs_shape: a vector, or an image
    st.integers(1, 255),  # num_actions
    st.integers(0, 2**32 - 1),  # seed
)


@settings(max_examples=50, deadline=None)
@given(streams)
def test_shift_unshift_round_trip(stream: tuple) -> None:
    lead, T, obs_shape, num_actions, seed = stream
    g = torch_rng(seed)
    obs = torch.randint(0, 10, (*lead, T, *obs_shape), generator=g, dtype=torch.uint8)
    a = torch.randint(0, num_actions, (*lead, T), generator=g, dtype=torch.uint8)  # (*lead, T)
    r = torch.randn(*lead, T, generator=g)  # (*lead, T)
    a_last = a[..., -1] if T else torch.zeros(lead, dtype=torch.uint8)  # (*lead,)
    r_last = r[..., -1] if T else torch.zeros(lead)  # (*lead,)
    obs_t, a_tm1, r_tm1 = shift_inputs(obs, a, r, num_actions)
    assert a_tm1.shape == a.shape == r_tm1.shape
    assert a_tm1.dtype == torch.int64 and r_tm1.dtype == r.dtype
    if T:
        assert (a_tm1[..., 0] == num_actions).all() and (r_tm1[..., 0] == 0).all()
    obs_back, a_back, r_back = unshift_inputs(obs_t, a_tm1, r_tm1, a_last, r_last)
    assert obs_back is obs
    assert a_back.dtype == torch.int64 and torch.equal(a_back, a.long())
    assert torch.equal(r_back, r)


def test_ad_window_is_the_context_and_the_step_before_it() -> None:
    for context in (1, 8, 80):
        cfg = ModelConfig(context=context)
        assert AD().window(cfg) == (cfg.context + 1, 1)


def test_ad_make_batch_by_hand() -> None:
    # window 0 starts its history (its lead step is padding, zeroed as the sampler does); window 1 is cut
    # from inside a history, so its lead step is a real transition
    B, L = 2, 5  # L = context 4 + the lead step
    g = torch_rng(1)
    obs = torch.randint(0, 9, (B, L, 2), generator=g, dtype=torch.uint8)  # (B, L, 2)
    actions = torch.randint(0, GRID.num_actions, (B, L), generator=g)  # (B, L) int64
    rewards = torch.rand(B, L, generator=g) + 0.5  # (B, L) float32, never 0 outside the padding
    pad = torch.zeros(B, L, dtype=torch.bool)  # (B, L)
    pad[0, 0] = True
    obs[0, 0], actions[0, 0], rewards[0, 0] = 0, 0, 0.0
    windows = Windows(obs, actions, rewards, torch.zeros(B, L, dtype=torch.bool), pad, torch.zeros(B, dtype=torch.long))

    batch = AD().make_batch(windows, GRID)
    obs_t, a_tm1, r_tm1 = batch.inputs
    assert torch.equal(obs_t, obs[:, 1:])
    # a history's start reads the start index, not the padding's action 0
    assert a_tm1[:, 0].tolist() == [GRID.num_actions, actions[1, 0].item()]
    assert torch.equal(a_tm1[:, 1:], actions[:, 1:-1])
    assert r_tm1[:, 0].tolist() == [0.0, rewards[1, 0].item()]
    assert torch.equal(r_tm1[:, 1:], rewards[:, 1:-1])
    assert a_tm1.dtype == torch.int64 and r_tm1.dtype == torch.float32
    assert torch.equal(batch.targets, actions[:, 1:])  # (B, 4) every position predicts the source's a_t
    assert batch.mask.dtype == torch.bool and batch.mask.shape == (B, L - 1) and bool(batch.mask.all())


def test_interleave_order_by_hand() -> None:
    e_o, e_a, e_r = (torch.tensor([[[10.0 * t + c] for t in range(2)]]) for c in (3, 1, 2))  # (1, 2, 1) each
    x = interleave(e_o, e_a, e_r)  # (1, 6, 1)
    # per step t: (a_{t-1}, r_{t-1}, o_t); the o_t token comes last and predicts a_t
    assert x.flatten().tolist() == [1.0, 2.0, 3.0, 11.0, 12.0, 13.0]


@settings(max_examples=50, deadline=None)
@given(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), st.integers(0, 5), st.integers(1, 4))
def test_interleave_round_trip(lead: tuple[int, ...], T: int, C: int) -> None:
    e_o, e_a, e_r = torch.randn(3, *lead, T, C).unbind(0)  # (*lead, T, C) each
    x = interleave(e_o, e_a, e_r)  # (*lead, 3T, C)
    assert x.shape == (*lead, 3 * T, C)
    for got, want in zip(deinterleave(x), (e_o, e_a, e_r), strict=True):
        assert torch.equal(got, want)
