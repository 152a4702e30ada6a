"""`algodistill ablate`: prompts of a given optimality, prompted rollouts, stage reuse across variants, resume,
and bad input."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from algodistill.envs import get_family
from algodistill.evaluate import InContextActor, Prompt, rollout_policy
from algodistill.presets import get_preset
from algodistill.studies import choose_episodes, make_prompts

# fmt: off
TINY = ["--methods.ad.histories", "8", "--data.steps", "2000", "--methods.ed.histories", "4", "--train.iters", "4",
        "--train.subsample", "1", "--eval.episodes", "3", "--eval.tasks", "2", "--eval.streams-per-task", "1",
        "--device", "cpu"]
# fmt: on
CPU = torch.device("cpu")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algodistill.cli", *args],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "", "COLUMNS": "200"},
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("base") / "tiny.json"
    r = cli("config", "darkroom", *TINY)
    assert r.returncode == 0, r.stderr
    path.write_text(r.stdout)
    return path


def test_choose_episodes_takes_the_nearest_returns_in_history_order():
    returns = np.array([[0.0, 5.0, 10.0, 3.0], [2.0, 2.0, 9.0, 0.0]])
    # row 0: distances to 4 are 4, 1, 6, 1 -> episodes 1 and 3; row 1: to 2 are 0, 0, 7, 2 -> the earliest two
    np.testing.assert_array_equal(choose_episodes(returns, np.array([4.0, 2.0]), 2), [[1, 3], [0, 1]])
    np.testing.assert_array_equal(choose_episodes(returns, np.array([10.0, 0.0]), 1), [[2], [3]])


def test_a_prompt_of_a_given_optimality_really_has_that_return():
    family = get_family("darkroom")
    run = get_preset("darkroom", "quick")  # Q-learning histories of 10,000 steps, context 4 episodes
    streams = np.repeat(family.split("test")[:8], 2)
    prompts = make_prompts(family, run, streams, (0.05, 0.5, 0.95))
    H, optimal = family.spec.episode_length, family.optimal_return(streams)
    for level, (prompt, achieved) in prompts.items():
        assert prompt.actions.shape == (16, 4 * H) and prompt.obs.shape == (16, 4 * H, 2)
        # replayed in fresh envs of the same tasks, the prompt's actions earn the prompt's rewards
        env = family.make(streams, seed=5, ids=np.arange(16))
        earned = np.zeros((16, 4))
        for e in range(4):
            o = env.reset()
            for t in range(H):
                np.testing.assert_array_equal(o, prompt.obs[:, e * H + t])
                o, r, _ = env.step(prompt.actions[:, e * H + t])
                earned[:, e] += r
        np.testing.assert_allclose(earned.sum(1), prompt.rewards.sum(1))
        np.testing.assert_allclose(achieved, earned.mean(1) / optimal, rtol=1e-6)
        assert abs(achieved.mean() - level) < 0.1, (level, achieved)


class Recorder:
    """A policy that logs what it reads and always prefers action 0."""

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def init_state(self, batch):
        return None

    def act(self, state, o_t, a_tm1, r_tm1, done_tm1):
        self.seen.append((a_tm1.numpy().copy(), r_tm1.numpy().copy(), done_tm1.numpy().copy()))
        logits = torch.full((len(a_tm1), 9), -1e9)
        logits[:, 0] = 0.0
        return logits, state


def test_a_prompt_is_read_as_the_policys_own_steps_and_not_counted():
    family = get_family("darkroom")
    H = family.spec.episode_length
    streams = np.array([family.split("test")[0]] * 2)
    actions = np.arange(2 * H).reshape(1, -1).repeat(2, 0) % 5  # (2, 2H)
    rewards = np.zeros((2, 2 * H), dtype=np.float32)
    rewards[:, H - 1] = 1.0
    prompt = Prompt(obs=np.zeros((2, 2 * H, 2), dtype=np.int64), actions=actions, rewards=rewards)
    policy = Recorder()
    returns = rollout_policy(policy, family, streams, 1, device=CPU, prompt=prompt)
    assert returns.shape == (2, 1) and len(policy.seen) == 3 * H  # the prompt's 2 episodes, then one of its own
    a, r, d = (np.stack(x)[:, 0] for x in zip(*policy.seen, strict=True))
    assert a[0] == -1 and (a[1 : 2 * H + 1] == actions[0]).all() and (a[2 * H + 1 :] == 0).all()
    assert r[H] == 1.0 and r.sum() == 1.0  # r_{t-1} of the prompt's steps, then the policy's own (none here)
    assert d[[0, H, 2 * H]].all() and d.sum() == 3  # each episode starts with done_{t-1}


def test_observe_leaves_a_sampled_action_out():
    actor = InContextActor(Recorder(), 2, device=CPU)
    actor.observe(np.zeros((2, 2)), np.array([3, 4]), None, None)
    assert actor.a_tm1.tolist() == [3, 4] and actor.t == 1


def test_a_decoding_study_reuses_the_model_and_resumes(tmp_path, tiny_base):
    args = ["ablate", "decoding", "darkroom", "--base", str(tiny_base), "--runs", str(tmp_path), "--values", "2"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    study = tmp_path / "decoding-darkroom-quick"
    assert "[run] seed-0/train-ad" in r.stdout and r.stdout.count("[run] seed-0/train-ad") == 1
    assert r.stdout.count("[reuse] seed-0/train-ad") == 1 and r.stdout.count("[reuse] seed-0/data-ad") == 1
    a, b = (study / v / "seed-0" / "data" / "ad" for v in ("greedy", "t-2"))
    shards = sorted(p.name for p in a.glob("shard-*.h5"))
    assert shards and all((a / s).stat().st_ino == (b / s).stat().st_ino for s in shards)  # linked, not copied
    result = json.loads((study / "ablation.json").read_text())
    assert [v["label"] for v in result["variants"]] == ["greedy", "t-2"]
    assert all(set(v["seeds"]) == {"0"} for v in result["variants"])
    assert (study / "ablation.png").read_bytes()[:4] == b"\x89PNG" and "| greedy |" in (study / "report.md").read_text()
    before = {p: p.read_bytes() for p in study.rglob("*.npz")}
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "[run]" not in again.stdout and "[reuse]" not in again.stdout  # every stage verified and skipped
    assert {p: p.read_bytes() for p in study.rglob("*.npz")} == before


def test_a_prompt_study_prompts_ad_and_ed_at_each_level(tmp_path, tiny_base):
    r = cli("ablate", "prompt", "darkroom", "--base", str(tiny_base), "--runs", str(tmp_path), "--values", "0.5", "1")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "prompt-darkroom-quick" / "ablation.json").read_text())
    assert set(result["curves"]) == {"ad", "ed"} and set(result["curves"]["ad"]) == {"0.5", "1"}
    assert len(result["curves"]["ad"]["1"]) == result["episodes"] == 50
    assert result["prompt_level"]["1"] > result["prompt_level"]["0.5"] > 0.3


def test_context_steps_over_the_histories_are_refused_before_any_work(tmp_path, tiny_base):
    # the tiny histories keep 2000 steps: a context of 4000 cannot be filled
    r = cli(
        "ablate", "context", "darkroom", "--base", str(tiny_base), "--runs", str(tmp_path), "--values", "20", "4000"
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "context value 4000: model.context=4000 is longer than the histories" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "darkroom"], "study='nope' is unknown: choose one of prompt, context"),
        (["prompt", "darkroom", "--values", "1.5"], "prompt level 1.5 is outside (0, 1]"),
        (["prompt", "darkroom", "--values", "0"], "prompt level 0.0 is outside (0, 1]"),
        (["context", "darkroom", "--values", "2.5"], "values: 2.5 is not a positive integer"),
        (["decoding", "darkroom", "--values", "-1"], "temperature -1.0 must be positive"),
        (["data", "darkroom", "--sources", "sac"], "sources: 'sac' is unknown"),
        (["data", "darkroom", "--sources", "dqn"], "source='dqn' does not fit env='darkroom' (it needs image"),
        (["prompt", "nowhere"], "env='nowhere' has no preset"),
        (["tasks", "darkroom", "--values", "100"], "tasks value 100: data.tasks=100 is more than the 65 training"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = cli("ablate", *args, "--runs", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())


def test_a_base_of_another_env_is_refused(tmp_path, tiny_base):
    r = cli("ablate", "prompt", "keydoor", "--base", str(tiny_base), "--runs", str(tmp_path))
    assert r.returncode == 2 and "is a run of env='darkroom', not 'keydoor'" in r.stderr


def test_the_single_stream_study_runs_one_learner_per_training_task():
    from algodistill.studies import AblateConfig, variants

    vs = variants(AblateConfig("single-stream", "darkroom", values=(1, 10)))
    tasks = len(get_family("darkroom").split("train"))
    assert [v.run.methods["ad"].histories for v in vs] == [tasks, tasks]
    assert [v.run.train.subsample for v in vs] == [1, 10] and all("source" in v.run.baseline_list for v in vs)
    data = variants(AblateConfig("data", "darkroom", values=(1, 10), sources=("qlearning", "noise")))
    assert [(v.run.data.source, v.run.train.subsample) for v in data] == [
        ("qlearning", 1),
        ("qlearning", 10),
        ("noise", 1),
        ("noise", 10),
    ]
    few = variants(AblateConfig("tasks", "darkroom"))
    assert [v.run.data.tasks for v in few] == [tasks // 16, tasks // 4, tasks]
    ctx = variants(AblateConfig("context", "keydoor"))
    assert [v.run.model.context for v in ctx] == [20, 30, 40, 50, 100, 200]  # Fig. 7
    assert dataclasses.replace(ctx[0].run).data == ctx[-1].run.data  # one dataset for every context
