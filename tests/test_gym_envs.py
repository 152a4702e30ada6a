"""Single-task Gymnasium envs (`algodistill/<Name>-v0`): registration, check_env, step-for-step agreement
with the batched simulators, no autoreset, training tasks only by default, one-line input errors."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from algodistill.envs import ENV_NAMES, get_family
from algodistill.envs.gym_env import AlgoDistillEnv
from algodistill.errors import UserError

GYM_IDS = {name: get_family(name).spec.gym_id for name in ENV_NAMES}


def steps_per_gym_episode(name: str) -> int:
    """A gym episode is a family episode, except the bandit's: its 100 one-pull trials."""
    return 100 if name == "bandit" else get_family(name).spec.episode_length


@pytest.mark.parametrize("name", ENV_NAMES)
def test_registered_and_spaces(name):
    env = gymnasium.make(GYM_IDS[name], task=0)
    s = get_family(name).spec
    assert env.action_space == gymnasium.spaces.Discrete(s.num_actions)
    if s.obs_high is not None:
        assert env.observation_space == gymnasium.spaces.MultiDiscrete(np.array(s.obs_high))
    else:  # images
        assert env.observation_space == gymnasium.spaces.Box(0, 255, s.obs_shape, dtype=np.uint8)
    o, info = env.reset(seed=0)
    assert o in env.observation_space and info == {"task": 0}


@pytest.mark.parametrize("name", ENV_NAMES)
@pytest.mark.parametrize("task", [0, None])
def test_check_env_passes_without_warnings(name, task):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning fails the test
        check_env(gymnasium.make(GYM_IDS[name], task=task).unwrapped)
        check_env(gymnasium.make(GYM_IDS[name], task=task, render_mode="ansi").unwrapped)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_truncates_at_the_fixed_length_and_never_autoresets(name):
    env = gymnasium.make(GYM_IDS[name], task=1)
    L = steps_per_gym_episode(name)
    for _ in range(2):
        env.reset(seed=3)
        for t in range(L):
            _, r, terminated, truncated, info = env.step(0)
            assert terminated is False and truncated == (t == L - 1)
            assert isinstance(r, float) and info == {"task": 1}
        with pytest.raises(RuntimeError, match="reset"):  # no NEXT_STEP autoreset transition
            env.step(0)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_without_task_draws_training_tasks_only(name):
    f = get_family(name)
    env = gymnasium.make(GYM_IDS[name])
    seen = {env.reset(seed=i)[1]["task"] for i in range(200)}
    train = set(f.split("train").tolist())
    assert seen <= train and len(seen) > min(20, len(train) // 2)
    # reset(options={"task": i}) picks a task, held-out ones included
    test_task = int(f.split("test")[0])
    assert env.reset(options={"task": test_task})[1]["task"] == test_task
    assert env.unwrapped.task == test_task


def test_fixed_task_and_render():
    env = gymnasium.make("algodistill/DarkRoom-v0", task=42, render_mode="ansi")
    for i in range(5):
        assert env.reset(seed=i)[1]["task"] == 42
    assert env.render() == "task=42 obs=[4, 4]"


def test_an_image_env_renders_its_frame():
    env = gymnasium.make("algodistill/WatermazeSmall-v0", task=3, render_mode="rgb_array")
    o, _ = env.reset()
    frame = env.render()
    assert frame.shape == (36, 48, 3) and frame.dtype == np.uint8 and (frame == o).all()
    text = gymnasium.make("algodistill/WatermazeSmall-v0", task=3, render_mode="ansi")
    text.reset()
    assert text.render() == "task=3 obs=image (36, 48, 3)"
    with pytest.raises(UserError, match="render_mode='rgb_array' does not fit darkroom: choose ansi"):
        gymnasium.make("algodistill/DarkRoom-v0", render_mode="rgb_array")


def test_reset_seed_is_deterministic_and_unseeded_reset_continues_the_stream():
    env = gymnasium.make("algodistill/KeyToDoor-v0", task=7)
    first = [env.reset(seed=5)[0].tolist()] + [env.reset()[0].tolist() for _ in range(9)]
    again = [env.reset(seed=5)[0].tolist()] + [env.reset()[0].tolist() for _ in range(9)]
    assert first == again and len({tuple(o) for o in first}) > 3
    batched = get_family("keydoor").make(np.array([7]), seed=5)
    assert [batched.reset()[0].tolist() for _ in range(10)] == first


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_gym_env_agrees_with_the_batched_env_step_for_step(data):
    """Same seed, N = 1: identical observations, rewards and episode ends across several episodes."""
    name = data.draw(st.sampled_from(ENV_NAMES), label="env")
    f = get_family(name)
    task = data.draw(st.integers(0, f.spec.num_tasks - 1), label="task")
    seed = data.draw(st.integers(0, 2**62), label="seed")
    L = steps_per_gym_episode(name)
    n = data.draw(st.integers(1, 3 * L), label="steps")  # up to three gym episodes
    actions = data.draw(st.lists(st.integers(0, f.spec.num_actions - 1), min_size=n, max_size=n), label="actions")

    gym_env = gymnasium.make(f.spec.gym_id, task=task)
    batched = f.make(np.array([task]), seed=seed)
    o, info = gym_env.reset(seed=seed)
    assert info == {"task": task}
    np.testing.assert_array_equal(o, batched.reset()[0])
    t = episodes = 0
    for a in actions:
        o, r, terminated, truncated, _ = gym_env.step(a)
        o_b, r_b, done_b = batched.step(np.array([a]))
        t += 1
        episodes += truncated
        assert not terminated and truncated == (t == L) and r == r_b[0]
        assert done_b[0] == (t % f.spec.episode_length == 0)
        if truncated:
            np.testing.assert_array_equal(o, o_b[0])  # the final observation, not a reset one
            o, t = gym_env.reset()[0], 0
            o_b = batched.reset()
        elif done_b[0]:  # bandit: the next trial of the same gym episode
            o_b = batched.reset()
        np.testing.assert_array_equal(o, o_b[0])
    assert episodes == len(actions) // L


@pytest.mark.parametrize("name", ENV_NAMES)
def test_bad_task_index(name):
    n = get_family(name).spec.num_tasks
    for bad in (n, -1):
        with pytest.raises(UserError) as e:
            gymnasium.make(GYM_IDS[name], task=bad)
        msg = str(e.value)
        assert f"task={bad}" in msg and f"[0, {n})" in msg and "\n" not in msg
    env = gymnasium.make(GYM_IDS[name])
    with pytest.raises(UserError, match=rf"task={n} .*\[0, {n}\)"):
        env.reset(options={"task": n})
    with pytest.raises(UserError, match="integer"):
        gymnasium.make(GYM_IDS[name], task=1.5)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_malformed_action(name):
    A = get_family(name).spec.num_actions
    env = AlgoDistillEnv(name, task=0)
    env.reset(seed=0)
    for bad in (A, -1, 1.5, np.float32(1.0), True, "a", [0, 1], np.zeros((2, 2), dtype=np.int64), None):
        with pytest.raises(UserError) as e:
            env.step(bad)
        msg = str(e.value)
        assert msg.startswith("action=") and f"[0, {A})" in msg and "\n" not in msg, (bad, msg)
    for good in (0, np.int64(A - 1), np.uint8(1), np.array(1)):  # integer scalars of any dtype
        env.step(good)


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        AlgoDistillEnv("darkroom", task=0).step(0)
