"""Tokenisation: shift/unshift and the "sar" interleave, against hand-computed arrays and as round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from algodistill.tokens import deinterleave, interleave, shift_inputs, unshift_inputs

torch.set_num_threads(1)


def test_shift_inputs_by_hand() -> None:
    obs = np.array([[[0], [1], [2]]], dtype=np.uint8)  # (1, 3, 1)
    a = np.array([[3, 0, 2]], dtype=np.uint8)
    r = np.array([[0.0, 1.0, 0.5]], dtype=np.float32)
    obs_t, a_tm1, r_tm1 = shift_inputs(obs, a, r, num_actions=4)
    assert obs_t is obs
    np.testing.assert_array_equal(a_tm1, [[4, 3, 0]])  # 4 = start index: no previous action
    np.testing.assert_array_equal(r_tm1, [[0.0, 0.0, 1.0]])
    assert a_tm1.dtype == np.int64 and r_tm1.dtype == np.float32


def test_start_index_does_not_overflow_uint8_actions() -> None:
    a = np.full((1, 2), 255, dtype=np.uint8)
    _, a_tm1, _ = shift_inputs(np.zeros((1, 2, 1)), a, np.zeros((1, 2), np.float32), num_actions=256)
    np.testing.assert_array_equal(a_tm1, [[256, 255]])


def test_window_inside_a_history_uses_the_previous_transition() -> None:
    rng = np.random.default_rng(0)
    obs, a, r = rng.integers(0, 9, (2, 10, 2)), rng.integers(0, 5, (2, 10)), rng.random((2, 10))
    _, a_full, r_full = shift_inputs(obs, a, r, num_actions=5)
    _, a_win, r_win = shift_inputs(obs[:, 4:8], a[:, 4:8], r[:, 4:8], 5, a_prev=a[:, 3], r_prev=r[:, 3])
    np.testing.assert_array_equal(a_win, a_full[:, 4:8])
    np.testing.assert_array_equal(r_win, r_full[:, 4:8])


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shapes do not match"):
        shift_inputs(np.zeros((2, 3, 1)), np.zeros((2, 4)), np.zeros((2, 4)), num_actions=4)


streams = st.tuples(
    hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),  # leading dims
    st.integers(0, 6),  # T
    st.integers(1, 3),  # obs_dim
    st.integers(1, 255),  # num_actions
    st.integers(0, 2**32 - 1),  # seed
)


@settings(max_examples=50, deadline=None)
@given(streams, st.booleans())
def test_shift_unshift_round_trip(stream: tuple, use_torch: bool) -> None:
    lead, T, obs_dim, num_actions, seed = stream
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 10, (*lead, T, obs_dim)).astype(np.uint8)
    a = rng.integers(0, num_actions, (*lead, T)).astype(np.uint8)
    r = rng.standard_normal((*lead, T)).astype(np.float32)
    a_last = a[..., -1] if T else np.zeros(lead, np.uint8)
    r_last = r[..., -1] if T else np.zeros(lead, np.float32)
    if use_torch:
        obs, a, r, a_last, r_last = (torch.as_tensor(x) for x in (obs, a, r, a_last, r_last))
    obs_t, a_tm1, r_tm1 = shift_inputs(obs, a, r, num_actions)
    assert type(a_tm1) is type(a) and tuple(a_tm1.shape) == tuple(a.shape) == tuple(r_tm1.shape)
    if T:
        assert (a_tm1[..., 0] == num_actions).all() and (r_tm1[..., 0] == 0).all()
    obs_back, a_back, r_back = unshift_inputs(obs_t, a_tm1, r_tm1, a_last, r_last)
    assert obs_back is obs
    np.testing.assert_array_equal(np.asarray(a_back), np.asarray(a).astype(np.int64))
    np.testing.assert_array_equal(np.asarray(r_back), np.asarray(r))


def test_interleave_order_by_hand() -> None:
    e_o, e_a, e_r = (torch.tensor([[[10.0 * t + c] for t in range(2)]]) for c in (3, 1, 2))  # (1, 2, 1) each
    x = interleave(e_o, e_a, e_r)  # (1, 6, 1)
    # per step t: (a_{t-1}, r_{t-1}, o_t); the o_t token comes last and predicts a_t
    assert x.flatten().tolist() == [1.0, 2.0, 3.0, 11.0, 12.0, 13.0]


@settings(max_examples=50, deadline=None)
@given(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), st.integers(0, 5), st.integers(1, 4))
def test_interleave_round_trip(lead: tuple[int, ...], T: int, C: int) -> None:
    e_o, e_a, e_r = torch.randn(3, *lead, T, C).unbind(0)
    x = interleave(e_o, e_a, e_r)
    assert x.shape == (*lead, 3 * T, C)
    for got, want in zip(deinterleave(x), (e_o, e_a, e_r), strict=True):
        assert torch.equal(got, want)
