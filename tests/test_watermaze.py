"""Watermaze (paper Sec. 4.1): hand-worked camera geometry, walls, the once-per-episode platform, the expert,
batched vs single-task envs, determinism, the stored form (pos, heading) back to pixels, bad input.

The hand-worked numbers use the default scene at 72 x 96: horizontal field of view 90 degrees, so the
focal length is f = 48 pixels and the horizon lies at row 35.5; wall height 0.6, eye height 0.2, pool
radius 1; column j looks along forward + x_j * left with x_j = 1 - (j + 0.5) / 48.
"""

from __future__ import annotations

import math
import warnings
import zlib

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from algodistill.encoders import EncoderConfig, unfit_reason
from algodistill.envs import get_family
from algodistill.envs import watermaze as wm
from algodistill.envs.spec import EnvSpec
from algodistill.envs.watermaze_render import CUE_BANDS, CUE_COLOURS, WALL_COLOUR, cast, render
from algodistill.envs.watermaze_render_torch import render_torch
from algodistill.errors import UserError

FORWARD, BACKWARD, STRAFE_LEFT, STRAFE_RIGHT, TURN_LEFT, TURN_RIGHT, TURN_LEFT_FORWARD, TURN_RIGHT_FORWARD = range(8)
RED, ORANGE = CUE_COLOURS[0], CUE_COLOURS[1]


@pytest.fixture(scope="module")
def family() -> wm.WatermazeFamily:
    return get_family("watermaze")


def play(env, actions) -> tuple[list[np.ndarray], list[float], list[bool]]:
    """Reset a batch of one and play `actions`: frames after each step, rewards, dones."""
    env.reset()
    frames, rewards, dones = [], [], []
    for a in actions:
        o, r, d = env.step(np.array([a]))
        frames.append(o[0])
        rewards.append(float(r[0]))
        dones.append(bool(d[0]))
    return frames, rewards, dones


def view(x: float, y: float, heading_deg: float, resolution=(72, 96)) -> np.ndarray:
    return render(np.array([[x, y]]), np.array([math.radians(heading_deg)]), resolution)[0]  # (H, W, 3)


def wall_rows(frame: np.ndarray, column: int) -> list[int]:
    """Rows of a column that show the wall or a cue (neither sky nor floor)."""
    wall = {WALL_COLOUR, *CUE_COLOURS}
    return [i for i in range(frame.shape[0]) if tuple(frame[i, column]) in wall]


# --------------------------------------------------------------------------------------------------
# Spec, tasks, splits


def test_spec_tasks_and_split(family):
    s = family.spec
    assert (s.name, s.gym_id, s.obs_shape, s.obs_dtype, s.obs_high) == (
        "watermaze",
        "algodistill/Watermaze-v0",
        (72, 96, 3),
        "uint8",
        None,
    )
    assert (s.num_actions, s.episode_length, s.num_tasks, s.describe_obs()) == (8, 50, 1000, "uint8 (72, 96, 3)")
    assert family.num_learner_states == 1
    train, test = family.split("train"), family.split("test")
    assert (len(train), len(test)) == (900, 100) and not set(train) & set(test)
    assert zlib.crc32(test.astype("<i8").tobytes()) == 0xCB8A290E  # a deliberate change only
    small = get_family("watermaze-small")
    assert small.spec.obs_shape == (36, 48, 3) and small.spec.name == "watermaze-small"
    np.testing.assert_array_equal(small.split("test"), test)  # one task list and split at every resolution
    np.testing.assert_array_equal(small.centres, family.centres)
    # Platform centres: uniform over the disc of radius 0.9 (the platform of radius 0.1 stays inside the wall).
    r = np.hypot(*family.centres.T)
    assert r.max() <= 0.9 and r.max() > 0.89 and abs((r <= 0.45).mean() - 0.25) < 0.05  # a quarter of the area
    assert family.describe_task(0) == "platform at ({:.2f}, {:.2f})".format(*family.centres[0])
    np.testing.assert_array_equal(family.optimal_return(np.arange(1000)), 1.0)


def test_min_size_matches_the_conv_encoder():
    """The message's 43 is the smallest image the default conv encoder reads; MIN_SIZE is one a 2-block one reads."""

    def fits(size: int, blocks: int) -> bool:
        spec = EnvSpec("w", "w", (size, size, 3), "uint8", None, 8, 50, 10, "")
        return unfit_reason(EncoderConfig(kind="conv", channels=(32, 64, 64)[:blocks]), spec) is None

    assert fits(43, 3) and not fits(42, 3)
    assert fits(wm.MIN_SIZE, 2) and fits(36, 2) and not fits(36, 3)


# --------------------------------------------------------------------------------------------------
# Camera geometry, worked by hand


def test_facing_a_cue_it_fills_the_worked_out_columns():
    # At the centre facing bearing 0 (red, full height, +-15 degrees): the panel's edges are at
    # x = +-tan(15) = +-0.2679, i.e. j + 0.5 = 48 (1 -+ 0.2679) = 35.14 and 60.86: columns 35..60.
    frame = view(0, 0, 0)
    row = 30  # within the wall band of every column (below)
    red = [j for j in range(96) if tuple(frame[row, j]) == RED]
    assert red == list(range(35, 61))
    assert tuple(frame[row, 34]) == tuple(frame[row, 61]) == WALL_COLOUR
    # Each cue k, faced from the centre, shows in the centre columns 47 and 48 at mid-band height.
    for k, colour in enumerate(CUE_COLOURS):
        frame = view(0, 0, 45 * k)
        lo, hi = CUE_BANDS[k]
        z = (lo + hi) / 2 * 0.6
        i = round(35.5 - 48 * (z - 0.2))  # depth 1 (to 5e-5) at the centre columns
        assert tuple(frame[i, 47]) == tuple(frame[i, 48]) == colour, k


def test_rotated_cue_moves_to_the_worked_out_column():
    # One left turn (heading 30): red (bearing 0) now spans offsets -45..-15 (to the right): columns
    # from j + 0.5 = 60.86 to the right edge, 61..95. Orange (bearing 45, top half of the wall) spans
    # offsets 0..30: x from 0 to tan(30) = 0.577, j + 0.5 from 20.29 to 48, columns 20..47.
    env = get_family("watermaze").make_at(np.array([[0.5, 0.5]]))
    env.reset()
    frame = env.step(np.array([TURN_LEFT]))[0][0]
    assert env.state().heading[0] == pytest.approx(math.radians(30))
    assert [j for j in range(96) if tuple(frame[30, j]) == RED] == list(range(61, 96))
    # The top half of the wall (heights 0.3..0.6) at depth cos(0..30) = 0.87..1 includes row 25
    # (v = 10.5 pixels above the horizon: height 0.2 + 10.5 / 48 * depth = 0.39..0.42).
    orange = [j for j in range(96) if tuple(frame[25, j]) == ORANGE]
    assert orange == list(range(20, 48))
    assert tuple(frame[40, 30]) != ORANGE  # the bottom half of the wall there is bare
    np.testing.assert_array_equal(view(0, 0, 30), frame)


def test_wall_distance_is_closed_form():
    # At the centre every ray meets the wall at distance R = 1, whatever the heading.
    depth, t, qx, qy = cast(np.zeros((3, 2)), np.radians([0.0, 77.0, 200.0]), 96)
    np.testing.assert_allclose(t, 1.0, atol=1e-12)
    np.testing.assert_allclose(np.hypot(qx, qy), 1.0, atol=1e-12)
    offsets = np.arctan(1 - (np.arange(96) + 0.5) / 48)  # (W,) each column's angle to the view axis
    np.testing.assert_allclose(depth, np.cos(offsets)[None].repeat(3, 0), atol=1e-12)  # depth = t cos(offset)
    # So the wall band, f * 0.6 / (t cos(offset)) pixels high, is the same in every direction, lowest in
    # the middle: columns 47-48 show rows ceil(35.5 - 19.2 / 0.99995) = 17 .. floor(35.5 + 9.6 / 0.99995) = 45,
    # the edge column 0 (cos = 1 / 1.40687) rows ceil(35.5 - 27.01) = 9 .. floor(35.5 + 13.506) = 49.
    for heading in (0, 45, 100):
        frame = view(0, 0, heading)
        assert wall_rows(frame, 47) == wall_rows(frame, 48) == list(range(17, 46))
        assert wall_rows(frame, 0) == wall_rows(frame, 95) == list(range(9, 50))
        for j in range(96):  # every column from the formula
            top = math.ceil(35.5 - 48 * 0.4 / math.cos(offsets[j]))
            bottom = math.floor(35.5 + 48 * 0.2 / math.cos(offsets[j]))
            assert wall_rows(frame, j) == list(range(top, bottom + 1)), j
    # Halfway to the wall (depth 0.5) the band doubles: rows max(0, 35.5 - 38.4) = 0 .. floor(35.5 + 19.2) = 54;
    # from (-0.5, 0), depth 1.5: rows ceil(35.5 - 12.8) = 23 .. floor(35.5 + 6.4) = 41.
    assert wall_rows(view(0.5, 0, 0), 47) == list(range(0, 55))
    assert wall_rows(view(-0.5, 0, 0), 47) == list(range(23, 42))
    depth, t, _, _ = cast(np.array([[0.5, 0.0], [-0.5, 0.0]]), np.zeros(2), 96)
    np.testing.assert_allclose(t[:, [47, 48]], [[0.5, 0.5], [1.5, 1.5]], atol=1e-4)


def test_platform_is_invisible():
    env_a = get_family("watermaze").make_at(np.array([[0.3, 0.0], [-0.6, 0.2]]))
    env_b = get_family("watermaze").make(np.array([5, 17]))
    np.testing.assert_array_equal(env_a.reset(), env_b.reset())
    for a in [FORWARD, FORWARD, TURN_LEFT_FORWARD, FORWARD]:
        np.testing.assert_array_equal(env_a.step(np.full(2, a))[0], env_b.step(np.full(2, a))[0])


# --------------------------------------------------------------------------------------------------
# Dynamics


def test_actions_hand_worked():
    env = get_family("watermaze-small").make_at(np.array([[-0.8, 0.0]]))
    env.reset()
    c30, s30 = math.cos(math.radians(30)), 0.5
    expected = [  # (action, position after it, heading in degrees); rotate first, then move
        (TURN_LEFT, (0, 0), 30),
        (TURN_LEFT_FORWARD, (0.05, 0.1 * c30), 60),
        (STRAFE_RIGHT, (0.05 + 0.1 * c30, 0.1 * c30 - 0.05), 60),  # along heading - 90 = -30
        (BACKWARD, (0.1 * c30, 0.1 * c30 - 0.05 - 0.1 * c30), 60),  # along 240
        (TURN_RIGHT_FORWARD, (0.2 * c30, 0), 30),
        (STRAFE_LEFT, (0.2 * c30 - 0.1 * s30, 0.1 * c30), 30),  # along 120
        (TURN_RIGHT, (0.2 * c30 - 0.1 * s30, 0.1 * c30), 0),
        (FORWARD, (0.2 * c30 + 0.1 * s30, 0.1 * c30), 0),
    ]
    for a, xy, deg in expected:
        env.step(np.array([a]))
        s = env.state()
        np.testing.assert_allclose(s.pos[0], xy, atol=1e-12)
        assert math.degrees(s.heading[0]) == pytest.approx(deg)


def test_walls_stop_motion():
    env = get_family("watermaze").make_at(np.array([[-0.5, 0.0]]))
    env.reset()
    xs = []
    for _ in range(15):  # straight at the wall: stops at 0.95 (a body radius of 0.05 inside R = 1)
        env.step(np.array([FORWARD]))
        xs.append(env.state().pos[0, 0])
    np.testing.assert_allclose(xs[:9], 0.1 * np.arange(1, 10), atol=1e-12)
    assert xs[9:] == pytest.approx([0.95] * 6, abs=1e-12) and env.state().pos[0, 1] == 0.0
    env.step(np.array([STRAFE_LEFT]))  # along the wall: slides, projected back onto the circle of radius 0.95
    x, y = env.state().pos[0]
    assert math.hypot(x, y) == pytest.approx(0.95) and (x, y) == pytest.approx((0.95**2 / 0.955249, 0.095 / 0.955249))
    # Many random actions in many pools never leave the disc of radius 0.95.
    env = get_family("watermaze-small").make(np.arange(200))
    g = np.random.default_rng(0)
    for _ in range(2):
        env.reset()
        for _ in range(50):
            env.step(g.integers(0, 8, 200))
            assert (np.hypot(*env.state().pos.T) <= 0.95 + 1e-12).all()


def test_platform_pays_once_per_episode_and_episodes_last_50_steps():
    env = get_family("watermaze").make_at(np.array([[0.55, 0.0]]))
    actions = [FORWARD] * 7 + [BACKWARD] * 3 + [TURN_LEFT] * 40  # on at steps 5, 6 and again at 8, 9
    for _ in range(2):  # and again after a reset
        _, rewards, dones = play(env, actions)
        assert rewards == [0, 0, 0, 0, 1] + [0] * 45
        assert dones == [False] * 49 + [True]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.array([FORWARD]))
    # A platform under the start pays on the first step that ends on it, not at reset.
    _, rewards, _ = play(get_family("watermaze").make_at(np.array([[0.05, 0.0]])), [TURN_LEFT] * 50)
    assert rewards == [1] + [0] * 49
    with pytest.raises(RuntimeError, match="reset"):
        get_family("watermaze").make(np.array([0])).step(np.array([0]))


@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_reaches_every_platform(split):
    family = get_family("watermaze-small")  # the same dynamics and tasks, cheaper frames
    tasks = family.split(split)
    env = family.make(tasks)
    for _ in range(2):
        env.reset()
        total, first = np.zeros(len(tasks)), np.full(len(tasks), 99)
        for t in range(50):
            _, r, _ = env.step(env.expert_action())
            total += r
            first = np.where(r > 0, t + 1, first)
        np.testing.assert_array_equal(total, family.optimal_return(tasks))
        assert first.max() <= 15
        assert env.state().reached.all() and (np.hypot(*(env.state().pos - env.centres).T) <= 0.1).all()


def test_random_return_estimate_agrees_with_rollouts_of_the_env():
    """The family's estimate (trajectories shared by all tasks) against fresh rollouts through the env."""
    f = get_family("watermaze-small")
    tasks = np.random.default_rng(1).choice(1000, 20, replace=False)
    reps = 100
    env = f.make(np.repeat(tasks, reps))
    g = np.random.default_rng(7)
    env.reset()
    total = np.zeros(env.num_envs)
    for _ in range(50):
        total += env.step(g.integers(0, 8, env.num_envs))[1]
    mean = total.reshape(len(tasks), reps).mean(axis=1)
    est = f.random_return(tasks)
    se = np.sqrt(mean * (1 - mean) / reps + est * (1 - est) / 256)
    assert (np.abs(mean - est) <= 5 * se + 0.03).all(), np.c_[tasks, mean, est]
    assert abs(mean.mean() - est.mean()) <= 5 * np.sqrt((se**2).sum()) / len(tasks)
    all_tasks = f.random_return(np.arange(1000))
    assert 0.1 < all_tasks.mean() < 0.2 and (all_tasks <= 1).all() and (all_tasks > 0).all()


# --------------------------------------------------------------------------------------------------
# Batched, single-task and gymnasium envs; determinism; the stored form


def test_batched_single_and_gym_envs_agree_step_for_step():
    f = get_family("watermaze-small")
    tasks = np.array([3, 100, 555, 999])
    g = np.random.default_rng(0)
    actions = g.integers(0, 8, (2, 50, len(tasks)))  # two episodes
    batch = f.make(tasks, seed=1, ids=np.array([9, 8, 7, 6]))
    singles = [f.make(tasks[j : j + 1], seed=j) for j in range(len(tasks))]
    gyms = [gymnasium.make("algodistill/WatermazeSmall-v0", task=int(t)) for t in tasks]
    for e in range(2):
        o = batch.reset()
        for j in range(len(tasks)):
            np.testing.assert_array_equal(o[j], singles[j].reset()[0])
            np.testing.assert_array_equal(o[j], gyms[j].reset(seed=e)[0])
        for t in range(50):
            o, r, d = batch.step(actions[e, t])
            for j in range(len(tasks)):
                o1, r1, d1 = singles[j].step(actions[e, t, j : j + 1])
                og, rg, term, trunc, _ = gyms[j].step(int(actions[e, t, j]))
                np.testing.assert_array_equal(o[j], o1[0])
                np.testing.assert_array_equal(o[j], og)
                assert r[j] == r1[0] == rg and d[j] == d1[0] == trunc and not term


def test_rendering_is_deterministic():
    f = get_family("watermaze")
    a, b = f.make(f.split("test")[:8]), f.make(f.split("test")[:8])
    np.testing.assert_array_equal(a.reset(), b.reset())
    g = np.random.default_rng(3)
    for _ in range(50):
        act = g.integers(0, 8, 8)
        oa, ob = a.step(act)[0], b.step(act)[0]
        assert oa.tobytes() == ob.tobytes()
    s = a.state()
    assert render(s.pos, s.heading).tobytes() == render(s.pos.copy(), s.heading.copy()).tobytes() == oa.tobytes()
    out = np.zeros_like(oa)
    assert render(s.pos, s.heading, out=out) is out and (out == oa).all()


@pytest.mark.parametrize("name", ["watermaze", "watermaze-small"])
def test_stored_form_renders_the_same_bytes(name):
    """Record (pos, heading) as float32 along trajectories; the pure renderer gives back the env's frames."""
    f = get_family(name)
    env = f.make(f.split("train")[:16])
    g = np.random.default_rng(5)
    frames, pos, heading = [env.reset()], [], []
    s = env.state()
    pos.append(s.pos.astype(np.float32))
    heading.append(s.heading.astype(np.float32))
    for t in range(50):
        a = env.expert_action() if t % 3 == 0 else g.integers(0, 8, 16)  # wander and visit platforms
        frames.append(env.step(a)[0])
        s = env.state()
        pos.append(s.pos.astype(np.float32))
        heading.append(s.heading.astype(np.float32))
    stored_pos, stored_heading = np.stack(pos), np.stack(heading)  # (T + 1, N, 2), (T + 1, N)
    again = render(stored_pos.reshape(-1, 2), stored_heading.reshape(-1), f.resolution)  # (T + 1) N frames
    assert again.tobytes() == np.stack(frames).tobytes()


@pytest.mark.parametrize("resolution", [(72, 96), (36, 48), (16, 16), (43, 61)])
def test_the_torch_renderer_draws_the_numpy_bytes(resolution):
    """`render_torch` (the trainer's, on an accelerator) against `render`: positions all over the pool, the
    env's headings (multiples of 30 degrees) and arbitrary ones, 0.999 of the radius included."""
    g = np.random.default_rng(11)
    n = 3000
    radius = np.concatenate([0.999 * np.sqrt(g.random(n - 2)), [0.0, 0.999]])
    bearing = 2 * np.pi * g.random(n)
    pos = np.stack([radius * np.cos(bearing), radius * np.sin(bearing)], axis=1)  # (n, 2)
    for heading in (g.integers(0, 12, n) * math.pi / 6, 2 * np.pi * g.random(n)):
        want = render(pos, heading, resolution)  # (n, H, W, 3)
        got = render_torch(torch.from_numpy(pos), torch.from_numpy(heading), resolution)
        assert got.dtype == torch.uint8 and got.numpy().tobytes() == want.tobytes()
    f = get_family("watermaze-small")
    stored = np.concatenate([pos, heading[:, None]], axis=1).astype(np.float32).reshape(30, 100, 3)
    assert f.decode_obs(torch.from_numpy(stored)).numpy().tobytes() == f.decode_obs(stored).tobytes()
    with pytest.raises(UserError, match=r"^pos=\(1, 0\) is outside the pool: choose a point at distance less than 1"):
        render_torch(torch.tensor([[1.0, 0.0]]), torch.tensor([0.0]))


def test_check_env_passes_without_warnings():
    for gym_id in ("algodistill/Watermaze-v0", "algodistill/WatermazeSmall-v0"):
        for task in (0, None):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                check_env(gymnasium.make(gym_id, task=task).unwrapped)


# --------------------------------------------------------------------------------------------------
# Bad input: one line naming the value and the allowed range


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and len(msg) < 200, msg
    return msg


def test_bad_input_is_one_line(family):
    with pytest.raises(UserError) as e:
        family.make_at(np.array([[0.0, 0.0], [0.8, 0.5]]))
    msg = one_line(e)
    assert msg.startswith("platform=(0.8, 0.5) is outside the pool") and "at most 0.9 from (0, 0)" in msg
    for bad in (np.array([[np.nan, 0.0]]), np.array([[0.95, 0.0]])):
        with pytest.raises(UserError, match=r"at most 0\.9"):
            family.make_at(bad)
    for bad in (np.zeros(2), np.zeros((2, 3)), [["a", "b"]]):
        with pytest.raises(UserError, match=r"centres=.* is malformed .* \(N, 2\)"):
            family.make_at(bad)
    for res, shown in [((12, 96), "resolution=(12, 96) is too small"), ((72, 15), "resolution=(72, 15)")]:
        with pytest.raises(UserError) as e:
            wm.WatermazeFamily(resolution=res)
        assert one_line(e).startswith(shown) and f"at least {wm.MIN_SIZE}" in str(e.value)
    for res in ((72.0, 96), (72,), "72x96", (True, 96)):
        with pytest.raises(UserError) as e:
            wm.WatermazeFamily(resolution=res)
        assert one_line(e).startswith("resolution=") and "two integers" in str(e.value)
    env = family.make(np.array([0, 1]))
    env.reset()
    with pytest.raises(UserError) as e:
        env.step(np.array([1.5, 0.0]))
    assert one_line(e).startswith("action=array([1.5, 0. ])") and "[0, 8)" in str(e.value)
    with pytest.raises(UserError) as e:
        env.step(np.array([8, 0]))
    assert one_line(e).startswith("action=8 is out of range") and "[0, 8)" in str(e.value)
    with pytest.raises(UserError) as e:
        render(np.array([[1.0, 0.0]]), np.zeros(1))
    assert one_line(e).startswith("pos=(1, 0) is outside the pool")
    gym_env = gymnasium.make("algodistill/Watermaze-v0", task=0).unwrapped
    gym_env.reset(seed=0)
    with pytest.raises(UserError) as e:
        gym_env.step(1.5)
    assert one_line(e).startswith("action=array([1.5])") and "[0, 8)" in str(e.value)


def test_the_report_strip_shows_start_platform_ahead_and_reached():
    family = get_family("watermaze-small")
    for task in family.split("test")[:5]:
        frames = family.frame_strip(int(task))
        captions = [c for c, _ in frames]
        assert captions[0] == "start" and captions[-1].startswith("on the platform")
        assert len(frames) in (2, 3) and all(f.shape == (36, 48, 3) for _, f in frames)
        np.testing.assert_array_equal(frames[0][1], family.make(np.array([task])).reset()[0])
    assert get_family("darkroom").frame_strip(3) == []
