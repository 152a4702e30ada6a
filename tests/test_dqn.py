"""DQN(Q-lambda) from pixels (`dqn`, the paper's Watermaze source, Table 5): Peng's Q(lambda) returns on
hand-worked sequences, the replay's sequences, an update that moves Q towards its targets, the target
network's period, batch invariance through generation, the registry and bad input."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch

from algodistill.configs import DataConfig, EvalConfig, MethodConfig, RunConfig, TrainConfig
from algodistill.encoders import EncoderConfig
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.generate import GenerateConfig, generate, source_threads
from algodistill.model import ModelConfig
from algodistill.pipeline import run
from algodistill.sources import SourceConfig, check_source, fitting_sources, make_source, rollout
from algodistill.sources import dqn as dqn_module
from algodistill.sources.dqn import DQN, DQNConfig, q_lambda_returns

ENV = "watermaze-small"
TINY = DQNConfig(channels=(4,), kernel=5, stride=4, hidden=(), batch=2, unroll=4, learn_start=20, train_every=2)


def _dqn(n: int, steps: int, cfg: DQNConfig = TINY, seed: int = 1) -> tuple[DQN, dict[str, np.ndarray]]:
    fam = get_family(ENV)
    env = fam.make(fam.split("train")[:n])
    src = make_source("dqn", env, seed, np.arange(n), 10 * steps, SourceConfig(dqn=cfg))
    assert isinstance(src, DQN)
    return src, rollout(env, src, steps)[0]


def test_q_lambda_returns_by_hand():
    # gamma 0.5, lambda 0.5, rewards (0, 1, 0), max_a Q_target after each step (2, 4, 8):
    # G2 = 0 + 0.5 * 8 = 4; G1 = 1 + 0.5 (0.5 * 4 + 0.5 * 4) = 3; G0 = 0 + 0.5 (0.5 * 2 + 0.5 * 3) = 1.25
    r, qmax = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([2.0, 4.0, 8.0])
    none = torch.zeros(3, dtype=torch.bool)
    assert q_lambda_returns(r, none, qmax, 0.5, 0.5).tolist() == [1.25, 3.0, 4.0]
    # step 1 ends its episode: G1 = 1, G0 = 0.5 (0.5 * 2 + 0.5 * 1) = 0.75; nothing of step 2 reaches back
    assert q_lambda_returns(r, torch.tensor([False, True, False]), qmax, 0.5, 0.5).tolist() == [0.75, 1.0, 4.0]
    # lambda 0 is one-step Q-learning; lambda 1 the discounted rewards plus the last bootstrap
    assert q_lambda_returns(r, none, qmax, 0.5, 0.0).tolist() == [1.0, 3.0, 4.0]
    assert q_lambda_returns(r, none, qmax, 0.5, 1.0).tolist() == [0.5 + 0.25 * 4, 1.0 + 0.5 * 4, 4.0]
    batched = q_lambda_returns(torch.stack([r, r]), torch.stack([none, none]), torch.stack([qmax, qmax]), 0.5, 0.5)
    assert batched.shape == (2, 3) and batched[1].tolist() == [1.25, 3.0, 4.0]


def test_replay_sequences_are_consecutive_steps_inside_the_replay():
    cfg = dataclasses.replace(TINY, replay=30, learn_start=10**6)  # no learning: only the replay is exercised
    src, data = _dqn(3, 75, cfg)
    L, C = cfg.unroll, cfg.replay
    for _ in range(20):
        stored, a, r, done = src._sample()  # (N, B, L + 1, 3), (N, B, L) x 3
        src.updates += 1  # the next draw
        for i in range(3):
            for b in range(cfg.batch):
                starts = [s for s in range(75 - C, 75 - L) if (data["actions"][i, s : s + L] == a[i, b]).all()]
                s = next(s for s in starts if (data["obs"][i, s : s + L + 1] == stored[i, b]).all())
                assert 75 - C <= s <= 75 - L - 1  # within the last C steps; the successor of the last is known
                np.testing.assert_array_equal(r[i, b], data["rewards"][i, s : s + L])
                np.testing.assert_array_equal(done[i, b], data["dones"][i, s : s + L])


def test_an_update_moves_q_towards_its_returns_and_the_target_follows_its_period():
    cfg = dataclasses.replace(TINY, lr=1e-3, learn_start=10**6, target_period=3)
    src, _ = _dqn(2, 60, cfg)
    batch = src._sample()
    stored, a, r, done = batch
    N, B, L = a.shape
    frames = src._frames(stored.reshape(N, B * (L + 1), -1))
    q_tgt = src.q_values(src.target, frames).view(N, B, L + 1, -1)
    G = q_lambda_returns(torch.from_numpy(r), torch.from_numpy(done), q_tgt[:, :, 1:].amax(3), cfg.gamma, cfg.lam)

    def error() -> torch.Tensor:
        q = src.q_values(src.params, frames).view(N, B, L + 1, -1)[:, :, :L]
        return (q.gather(3, torch.from_numpy(a)[..., None])[..., 0] - G).abs().mean(dim=(1, 2))  # (N,)

    before = error()
    src._sample = lambda: batch  # type: ignore[method-assign]  # the same batch for every update
    for _ in range(2):
        src._learn()  # towards G: the target network has not moved yet
    assert (error() < before).all()
    assert not any(src.target[k].equal(src.params[k]) for k in src.params)  # 2 updates: the target waits
    src._learn()
    assert all(src.target[k].equal(src.params[k]) for k in src.params)  # the 3rd: copied


def test_a_learner_does_not_depend_on_its_batch(tmp_path):
    """Through generation: learner 1 alone in a shard of one, and beside learner 0 in a shard of two."""
    outs = []
    for shard_size in (1, 2):
        out = tmp_path / f"s{shard_size}"
        generate(
            GenerateConfig(
                ENV,
                source="dqn",
                out=out,
                histories=2,
                steps=100,
                shard_size=shard_size,
                sources=SourceConfig(dqn=TINY),
            )
        )
        outs.append(out)
    with h5py.File(outs[0] / "shard-00001.h5") as one, h5py.File(outs[1] / "shard-00000.h5") as two:
        for k in ("obs", "actions", "rewards"):
            assert one[k][0].tobytes() == two[k][1].tobytes(), k
    assert h5py.File(outs[1] / "shard-00000.h5")["actions"][:].std() > 0  # they act, not a constant


def test_a_learners_weights_do_not_depend_on_its_batch_or_chunk(monkeypatch):
    """Learner 0 alone, three learners updated together, then in chunks of 2 + 1 (`UPDATE_CHUNK`): the same
    histories and the same weights, to the bit (a lone learner's convolution rounds differently unless padded)."""
    src, whole = _dqn(3, 80)
    alone_src, alone = _dqn(1, 80)
    monkeypatch.setattr(dqn_module, "UPDATE_CHUNK", 2)
    chunked_src, chunked = _dqn(3, 80)
    assert src.updates == chunked_src.updates > 20
    for k in ("obs", "actions", "rewards"):
        assert whole[k].tobytes() == chunked[k].tobytes() and whole[k][:1].tobytes() == alone[k].tobytes(), k
    for k, v in src.params.items():
        assert torch.equal(v, chunked_src.params[k]) and torch.equal(v[:1], alone_src.params[k]), k


def test_a_learner_does_not_depend_on_the_thread_count():
    """Generation gives dqn (and only it) the caller's threads, so its histories must not depend on them."""
    assert source_threads("dqn", 2) == 2 and source_threads("dqn", 0) == 1 and source_threads("privq", 2) == 1
    cfg = dataclasses.replace(TINY, channels=(8, 16), stride=2, hidden=(16,))  # convolutions big enough to split
    threads, runs = torch.get_num_threads(), []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(_dqn(2, 120, cfg))
    finally:
        torch.set_num_threads(threads)
    (one, one_data), (two, two_data) = runs
    for k in ("obs", "actions", "rewards"):
        assert one_data[k].tobytes() == two_data[k].tobytes(), k
    for k, v in one.params.items():
        assert torch.equal(v, two.params[k]), k


def test_a_tiny_run_distils_dqn_and_runs_it_as_the_source_baselines(tmp_path):
    """`algodistill run watermaze --data.source dqn` end to end at tiny sizes: the data, AD, and the source and
    its tuned schedule from scratch on the held-out streams."""
    cfg = RunConfig(
        ENV,
        data=DataConfig("dqn", 100, sources=SourceConfig(dqn=TINY)),
        methods={"ad": MethodConfig(2), "ed": MethodConfig(2)},
        model=ModelConfig(
            n_embd=16, n_layer=1, n_head=2, n_ff=16, context=100, encoder=EncoderConfig(kind="conv", channels=(8, 16))
        ),
        train=TrainConfig(iters=2, batch_size=2, warmup_iters=1, subsample=1),
        eval=EvalConfig(episodes=2, tasks=2, streams_per_task=1),
        baselines="source",
        runs=tmp_path,
        device="cpu",
        quiet=True,
    )
    report = json.loads((run(cfg) / "report.json").read_text())
    assert {"ad", "source", "source-tuned"} <= set(report["curves"]) and len(report["curves"]["source"]) == 2


def test_acting_is_epsilon_greedy_on_the_frames():
    cfg = dataclasses.replace(TINY, eps_start=0.0, eps_final=0.0, learn_start=10**6)
    src, data = _dqn(2, 10, cfg)
    frames = src._frames(data["obs"][:, :10])  # (N, 10, C, H, W): the frames the learners saw
    q = src.q_values(src.params, frames)  # (N, 10, A)
    np.testing.assert_array_equal(data["actions"], q.argmax(dim=2).numpy())


def test_registry_and_bad_input():
    assert "dqn" in fitting_sources("watermaze") and "dqn" in fitting_sources(ENV)
    for name in ("bandit", "darkroom", "keydoor"):
        assert "dqn" not in fitting_sources(name)
    with pytest.raises(UserError, match=r"^source='dqn' does not fit env='darkroom' \(it needs image observations"):
        check_source("dqn", "darkroom")
    for kw, message in [
        ({"unroll": 0}, r"^dqn.unroll=0 is out of range: choose an integer >= 1$"),
        ({"gamma": 1.5}, r"^dqn.gamma=1.5 is out of range: choose a value in \[0.0, 1.0\]$"),
        ({"learn_start": 5}, r"^dqn.learn_start=5 is out of range: choose at least dqn.unroll \+ 1 = 11$"),
        ({"device": "tpu"}, r"^dqn.device='tpu' is not available here"),
    ]:
        with pytest.raises(UserError, match=message):
            DQNConfig(**kw)
    fam = get_family(ENV)
    deep = DQNConfig(channels=(4, 4, 4, 4), stride=4)  # 36 x 48 -> 9 x 12 -> 3 x 3 -> 1 x 1 -> 1 x 1: fits
    make_source("dqn", fam.make(np.arange(1)), 0, np.arange(1), 100, SourceConfig(dqn=deep))
