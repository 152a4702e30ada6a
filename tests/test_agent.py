"""`algodistill.Agent`: the evaluator's step in a Gymnasium loop, batched, the README example, bad input."""

import re
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import algodistill
from algodistill import Agent
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.evaluate import rollout_policy

torch.set_num_threads(1)
FAMILY = get_family("darkroom")
CPU = torch.device("cpu")
README = Path(__file__).parents[1] / "README.md"


class Recording:
    """A task family whose batched envs record every action they are stepped with."""

    def __init__(self, family) -> None:
        self.spec, self.family, self.actions = family.spec, family, []

    def make(self, task_ids, seed=0, ids=None):
        env, actions = self.family.make(task_ids, seed=seed, ids=ids), self.actions

        class Env:
            def reset(self):
                return env.reset()

            def step(self, a_t):
                actions.append(np.array(a_t))
                return env.step(a_t)

        return Env()


def gym_actions(agent: Agent, task: int, episodes: int, seed: int) -> tuple[list[int], list[float]]:
    """The agent on `gymnasium.make(..., task=task)`, one step per call: its actions and episode returns."""
    env = gymnasium.make(FAMILY.spec.gym_id, task=task)
    obs, _ = env.reset(seed=seed)
    agent.reset(env, seed=seed)
    reward, terminated, truncated = None, False, False
    actions, returns = [], []
    for _ in range(episodes):
        total = 0.0
        while True:
            action = agent.act(obs, reward, terminated, truncated)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                break
        obs, _ = env.reset()
        returns.append(total)
    return actions, returns


@pytest.mark.parametrize(("task", "seed"), [(11, 0), (62, 3)])
def test_gym_loop_takes_the_evaluators_actions(task, seed):
    agent = Agent.load("darkroom-quick")
    actions, returns = gym_actions(agent, task, episodes=12, seed=seed)
    family = Recording(FAMILY)
    expected = rollout_policy(agent.policy, family, np.array([task]), 12, device=CPU, seed=seed)  # (1, E)
    assert actions == [int(a[0]) for a in family.actions]  # sampled actions, step for step
    np.testing.assert_array_equal(returns, expected[0])


def test_batched_obs_steps_every_stream_as_the_evaluator():
    agent = Agent.load("darkroom-quick")
    tasks = np.array([2, 30, 74])
    env = FAMILY.make(tasks, seed=1)
    agent.reset(seed=1)
    reward = done = None
    returns = np.zeros((3, 4))
    for e in range(4):
        obs = env.reset()
        for _ in range(FAMILY.spec.episode_length):
            a = agent.act(obs, reward, done)
            assert isinstance(a, np.ndarray) and a.shape == (3,)
            obs, reward, done = env.step(a)
            returns[:, e] += reward
    np.testing.assert_array_equal(returns, rollout_policy(agent.policy, FAMILY, tasks, 4, device=CPU, seed=1))


def test_a_generator_draws_the_actions_reproducibly():
    agent = Agent.load("darkroom-quick")
    obs = np.array([4, 4], dtype=np.int64)
    draws = []
    for _ in range(2):
        agent.reset()
        g = np.random.default_rng(7)
        draws.append([agent.act(obs, 0.0, generator=g) for _ in range(30)])
    assert draws[0] == draws[1] and len(set(draws[0])) > 1
    agent.reset()
    assert (
        agent.act(obs, greedy=True)
        == agent.policy.model.step(
            agent.policy.model.new_cache(1),
            torch.tensor([[4, 4]], dtype=torch.uint8),
            torch.tensor([5]),
            torch.zeros(1),
        )
        .argmax()
        .item()
    )


def test_the_readme_example_runs_as_written_and_the_return_rises(tmp_path):
    text = README.read_text()
    block = re.search(r"<!-- agent-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert block is not None, "the README lost its agent example"
    p = subprocess.run([sys.executable, "-c", block[1]], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    returns = [float(x) for x in re.findall(r"[\d.]+", p.stdout.split(":", 1)[1])]
    assert len(returns) == 50
    assert np.mean(returns[:3]) < 8 < np.mean(returns[-10:])  # rising from exploring to the goal (optimal 16.4)


def test_observations_of_another_space_are_refused_in_one_line():
    agent = Agent.load("darkroom-quick")
    cases = [
        (np.zeros(3, dtype=np.int64), r"obs of shape \(3,\) is not an observation of darkroom"),
        (np.array([9, 0]), r"obs=\[9, 0\] is out of range"),  # a 17x17 Dark Room (Hard) cell
        (np.array([0.5, 1.0]), "obs of dtype float64 is not an observation of darkroom"),
        (np.zeros((2, 72, 96, 3), dtype=np.uint8), r"obs of shape \(2, 72, 96, 3\)"),
    ]
    for obs, message in cases:
        agent.reset()
        with pytest.raises(UserError, match=message) as e:
            agent.act(obs)
        assert "\n" not in str(e.value) and "trained on darkroom" in str(e.value)


def test_another_env_and_bad_step_inputs_are_refused():
    agent = Agent.load("darkroom-quick")
    with pytest.raises(UserError, match=r"trained on darkroom \(algodistill/DarkRoom-v0\), not algodistill/KeyToDoor"):
        agent.reset(gymnasium.make("algodistill/KeyToDoor-v0", task=0))
    with pytest.raises(UserError, match="not bandit"):
        agent.reset("bandit")
    agent.reset("darkroom")
    agent.act(np.array([4, 4]))
    with pytest.raises(UserError, match="reward=None after the first step"):
        agent.act(np.array([4, 5]))
    with pytest.raises(UserError, match="obs holds 2 streams, but this context holds 1"):
        agent.act(np.array([[4, 5], [4, 4]]), 0.0)
    with pytest.raises(UserError, match="one value per stream"):
        agent.act(np.array([4, 5]), np.zeros(3))


def test_play_refuses_another_env_with_one_line_and_exit_2():
    p = subprocess.run(
        [sys.executable, "-m", "algodistill.cli", "play", "darkroom-quick", "--env", "keydoor"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "trained on darkroom" in p.stderr and "KeyToDoor" in p.stderr


def test_agent_is_importable_from_the_package_lazily():
    assert algodistill.Agent is Agent
    code = "import sys, algodistill; print('algodistill.agent' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.strip() == "False"
