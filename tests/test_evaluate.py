"""In-context evaluation: frozen weights, episode accounting, cache vs recompute, sampling, bad input."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from algodistill.envs import get_family
from algodistill.evaluate import eval_streams, rollout_model, rollout_source, sample_actions
from algodistill.model import ADTransformer, ModelConfig
from algodistill.rng import learner_keys
from algodistill.sources import SourceConfig

torch.set_num_threads(1)
FAMILY = get_family("darkroom")


def tiny_model(context: int = 40) -> ADTransformer:
    torch.manual_seed(0)
    cfg = ModelConfig(n_embd=16, n_layer=2, n_head=2, n_ff=32, context=context)
    return ADTransformer(cfg, FAMILY.spec)


def param_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_evaluation_never_changes_the_weights():
    model = tiny_model().train()
    before = param_hash(model)
    rollout_model(model, FAMILY, np.array([3, 5]), episodes=3)
    assert param_hash(model) == before
    assert not model.training  # evaluation runs in eval mode: no dropout, no token masking


def test_episode_accounting_is_fixed_length_with_no_phantom_steps(monkeypatch):
    model = tiny_model()
    calls = []
    real_step = model.step

    def counting_step(cache, obs_t, a_tm1, r_tm1):
        calls.append((obs_t.clone(), a_tm1.clone()))
        return real_step(cache, obs_t, a_tm1, r_tm1)

    monkeypatch.setattr(model, "step", counting_step)
    returns = rollout_model(model, FAMILY, np.array([0, 40, 80]), episodes=4)
    assert returns.shape == (3, 4)
    assert len(calls) == 4 * 20  # one model step per env step, none for resets
    assert (returns >= 0).all() and (returns <= 20).all()
    centre = np.array([4, 4])
    for e in range(4):  # every episode starts at the centre (fixed start, paper App. C)
        np.testing.assert_array_equal(calls[20 * e][0].numpy(), np.tile(centre, (3, 1)))
    assert (calls[0][1] == FAMILY.spec.num_actions).all()  # empty context: the start index, no a_{-1}
    assert (calls[1][1] < FAMILY.spec.num_actions).all()


def test_cached_and_recomputed_rollouts_agree_while_the_window_is_unfilled():
    model = tiny_model(context=80)
    tasks = np.array([1, 2, 3, 4])
    cached = rollout_model(model, FAMILY, tasks, episodes=4, seed=3)
    recomputed = rollout_model(model, FAMILY, tasks, episodes=4, seed=3, use_cache=False)
    np.testing.assert_array_equal(cached, recomputed)


def test_same_seed_same_returns_and_streams_are_independent_of_the_batch():
    model = tiny_model()
    a = rollout_model(model, FAMILY, np.array([7, 9, 11]), episodes=3, seed=1)
    b = rollout_model(model, FAMILY, np.array([7, 9, 11]), episodes=3, seed=1)
    np.testing.assert_array_equal(a, b)
    logits = torch.randn(6, 5)
    keys = learner_keys(0, np.arange(6))
    whole = sample_actions(logits, keys, 4, greedy=False)
    part = sample_actions(logits[2:4], keys[2:4], 4, greedy=False)
    np.testing.assert_array_equal(whole[2:4], part)
    np.testing.assert_array_equal(sample_actions(logits, keys, 0, greedy=True), logits.argmax(-1).numpy())


def test_sampling_follows_the_policy():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7, 0.0, 0.0]]).clamp_min(1e-12)).repeat(20000, 1)
    a = sample_actions(logits, learner_keys(5, np.arange(20000)), 0, greedy=False)
    freq = np.bincount(a, minlength=5) / len(a)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7, 0, 0], atol=0.015)


def test_eval_streams_and_source_baseline():
    streams = eval_streams(FAMILY, "test", 20, 5)
    assert len(streams) == 16 * 5 and set(streams) == set(FAMILY.split("test"))
    few = eval_streams(FAMILY, "test", 4, 2)
    assert len(few) == 8 and set(few) <= set(FAMILY.split("test"))
    returns = rollout_source(FAMILY, "qlearning", np.array([0, 1]), 3, history_steps=600, cfg=SourceConfig())
    assert returns.shape == (2, 3) and (returns >= 0).all()


@pytest.mark.parametrize("case", ["missing", "not-a-checkpoint"])
def test_bad_checkpoint_is_one_line_exit_2(tmp_path, case):
    path = tmp_path / "ckpt.pt"
    if case == "not-a-checkpoint":
        path.write_bytes(b"definitely not a checkpoint")
    r = subprocess.run(
        [sys.executable, "-m", "algodistill.cli", "evaluate", "--ckpt", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0
