"""In-context evaluation: frozen weights, episode accounting, cache vs recompute, sampling, bad input."""

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.evaluate import EvaluateConfig, eval_streams, rollout_policy, rollout_source, sample_actions
from algodistill.methods import NO_ACTION, get_method
from algodistill.model import ADTransformer, ModelConfig
from algodistill.rng import learner_keys
from algodistill.sources import SourceConfig

torch.set_num_threads(1)
FAMILY = get_family("darkroom")
CPU = torch.device("cpu")


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


class RecomputePolicy:
    """AD without a KV cache: its state is the list of past inputs, and every step is one full forward."""

    def __init__(self, model: ADTransformer) -> None:
        self.model = model.eval()
        self.start = model.spec.num_actions

    def init_state(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return []

    def act(self, state, o_t, a_tm1, r_tm1, done_tm1):
        a_tm1 = torch.where(a_tm1 == NO_ACTION, self.start, a_tm1)  # (S,) the start index, as AD encodes it
        state = [*state, (o_t, a_tm1, r_tm1)]
        obs, a, r = (torch.stack(x, dim=1) for x in zip(*state, strict=True))  # (S, t + 1, ...) each
        return self.model(obs, a, r)[:, -1], state  # (S, A) the logits at the newest step


class Recorded:
    """A policy that delegates to `policy` and records what each step receives and returns."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (a_tm1, done_tm1, logits)

    def init_state(self, batch: int):
        return self.policy.init_state(batch)

    def act(self, state, o_t, a_tm1, r_tm1, done_tm1):
        logits, state = self.policy.act(state, o_t, a_tm1, r_tm1, done_tm1)
        self.seen.append((a_tm1.clone(), done_tm1.clone(), logits.clone()))  # before AD encodes a_tm1
        return logits, state


def test_evaluation_never_changes_the_weights():
    model = tiny_model().train()
    before = param_hash(model)
    rollout_policy(get_method("ad").policy(model), FAMILY, np.array([3, 5]), episodes=3, device=CPU)
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
    policy = Recorded(get_method("ad").policy(model))
    returns = rollout_policy(policy, FAMILY, np.array([0, 40, 80]), episodes=4, device=CPU)
    seen = policy.seen
    assert returns.shape == (3, 4)
    assert len(calls) == len(seen) == 4 * 20  # one model step per env step, none for resets
    assert (returns >= 0).all() and (returns <= 20).all()
    centre = np.array([4, 4])
    for e in range(4):  # every episode starts at the centre (fixed start, paper App. C)
        assert calls[20 * e][0].dtype == torch.uint8  # the observation as the env gives it
        np.testing.assert_array_equal(calls[20 * e][0].numpy(), np.tile(centre, (3, 1)))
    assert (seen[0][0] == NO_ACTION).all()  # the rollout marks the empty context ...
    assert (calls[0][1] == FAMILY.spec.num_actions).all()  # ... and AD maps it to the start index
    assert (calls[1][1] < FAMILY.spec.num_actions).all() and (seen[1][0] >= 0).all()
    starts = [t for t, (_, done, _) in enumerate(seen) if done.all()]
    assert starts == [0, 20, 40, 60]  # done_tm1: True at each episode's first step, in every stream ...
    assert all(not done.any() for t, (_, done, _) in enumerate(seen) if t not in starts)  # ... and nowhere else


def test_cached_and_recomputed_rollouts_agree_while_the_window_is_unfilled():
    model = tiny_model(context=80)  # 4 episodes x 20 steps = 80 steps: the cache never restarts
    tasks = np.array([1, 2, 3, 4])
    cached_policy, recomputed_policy = Recorded(get_method("ad").policy(model)), Recorded(RecomputePolicy(model))
    cached = rollout_policy(cached_policy, FAMILY, tasks, episodes=4, device=CPU, seed=3)
    recomputed = rollout_policy(recomputed_policy, FAMILY, tasks, episodes=4, device=CPU, seed=3)
    np.testing.assert_array_equal(cached, recomputed)
    # the logits too, so that the check does not rest on returns that a random model may leave at 0
    for t, (c, r) in enumerate(zip(cached_policy.seen, recomputed_policy.seen, strict=True)):
        torch.testing.assert_close(c[2], r[2], rtol=0, atol=1e-5, msg=f"step {t}")


def test_same_seed_same_returns_and_streams_are_independent_of_the_batch():
    model = tiny_model()
    policy = get_method("ad").policy(model)
    a = rollout_policy(policy, FAMILY, np.array([7, 9, 11]), episodes=3, device=CPU, seed=1)
    b = rollout_policy(policy, FAMILY, np.array([7, 9, 11]), episodes=3, device=CPU, seed=1)
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
    else:  # the config refuses a missing file before anything loads
        with pytest.raises(UserError, match=f"^ckpt={re.escape(str(path))} does not exist"):
            EvaluateConfig(ckpt=path)
    r = subprocess.run(
        [sys.executable, "-m", "algodistill.cli", "evaluate", "--ckpt", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0
