"""The method seam: a method is a file. A toy method defined here, registered from this test file, runs
through the trainer, the evaluator and the whole pipeline with no change to library code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algodistill.checkpoint import load_model
from algodistill.configs import DataConfig, EvalConfig, MethodConfig, RunConfig, TrainConfig, TrainJob
from algodistill.dataset import Histories, finalize, write_shard
from algodistill.envs import get_family
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.evaluate import evaluate_checkpoint
from algodistill.methods import NO_ACTION, Batch, get_method, masked_nll, method_names, register_method
from algodistill.model import ModelConfig
from algodistill.pipeline import run
from algodistill.sampler import Windows
from algodistill.train import train

torch.set_num_threads(1)


class RepeatModel(nn.Module):
    """Logits w * onehot(a_{t-1}) + b: once trained on sticky actions, it repeats the previous action."""

    def __init__(self, num_actions: int) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.w = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(num_actions))

    def forward(self, a_tm1: Tensor) -> Tensor:
        onehot = F.one_hot(a_tm1.clamp_min(0), self.num_actions).float() * (a_tm1 >= 0).unsqueeze(-1)  # (B, T, A)
        return self.w * onehot + self.b  # (B, T, A)


class RepeatPolicy:
    """Stateless: the action depends on the previous one only."""

    def __init__(self, model: RepeatModel) -> None:
        self.model = model.eval()

    def init_state(self, batch: int) -> None:
        return None

    def act(self, state: None, o_t: Tensor, a_tm1: Tensor, r_tm1: Tensor, done_tm1: Tensor) -> tuple[Tensor, None]:
        return self.model(a_tm1[:, None])[:, 0], state  # (B, A)


class Repeat:
    """Always the previous action: its own tokenisation (a_{t-1} only), loss mask and policy."""

    name = "test-repeat"
    label = "repeat"
    color = "C7"

    def data_source(self, run_source: str) -> str:
        return run_source

    def build_model(self, cfg: ModelConfig, spec: EnvSpec, generator: torch.Generator | None) -> nn.Module:
        return RepeatModel(spec.num_actions)

    def window(self, cfg: ModelConfig) -> tuple[int, int]:
        return cfg.context + 1, 1

    def make_batch(self, windows: Windows, spec: EnvSpec) -> Batch:
        w = windows
        a_tm1 = torch.where(w.pad[:, :-1], NO_ACTION, w.actions[:, :-1])  # (B, c)
        # a position whose previous step does not exist carries nothing to repeat: out of the loss
        return Batch((a_tm1,), w.actions[:, 1:], ~w.pad[:, :-1])

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> tuple[Tensor, Tensor]:
        return masked_nll(model(*batch.inputs), batch.targets, batch.mask, label_smoothing)

    def policy(self, model: nn.Module) -> RepeatPolicy:
        assert isinstance(model, RepeatModel)
        return RepeatPolicy(model)


if Repeat.name not in method_names():
    register_method(Repeat())


def sticky_dataset(out: Path, n: int = 6, episodes: int = 10) -> Path:
    """Dark Room histories whose action repeats the previous one 90% of the time."""
    spec = get_family("darkroom").spec
    T = episodes * spec.episode_length
    g = np.random.default_rng(1)
    a = g.integers(0, spec.num_actions, (n, T))
    for t in range(1, T):
        a[:, t] = np.where(g.random(n) < 0.9, a[:, t - 1], a[:, t])
    hist = Histories(
        g.integers(0, 9, (n, T, 2)).astype(np.uint8),
        a.astype(np.uint8),
        np.zeros((n, T), np.float32),
        np.broadcast_to((np.arange(T) + 1) % spec.episode_length == 0, (n, T)).copy(),
        np.zeros(n, np.int64),
    )
    meta = {"spec": spec.record(), "split": "train"}
    write_shard(out, 0, hist, learner_start=0, num_histories=n, meta=meta, config={"env": "darkroom", "sticky": 0.9})
    finalize(out)
    return out


def test_a_method_from_a_test_file_trains_and_evaluates(tmp_path):
    job = TrainJob(
        env="darkroom",
        method=Repeat.name,
        data=sticky_dataset(tmp_path / "data"),
        out=tmp_path / "run",
        model=ModelConfig(n_embd=16, n_layer=1, n_head=2, n_ff=16, context=10),
        train=TrainConfig(iters=60, batch_size=16, lr=0.1, warmup_iters=0, min_lr=0.01, ckpt_every=60, log_every=10),
        device="cpu",
        quiet=True,
    )
    ckpt = train(job)
    model, saved = load_model(ckpt)  # rebuilt through the registry: the toy model, not the transformer
    assert isinstance(model, RepeatModel) and saved["method"] == Repeat.name
    assert model.w.item() > 1.0  # it learned that the previous action predicts the next one
    policy = get_method(Repeat.name).policy(model)
    logits, _ = policy.act(
        None, torch.zeros(2, 2), torch.tensor([3, NO_ACTION]), torch.zeros(2), torch.ones(2, dtype=torch.bool)
    )
    assert logits[0].argmax().item() == 3
    returns, streams = evaluate_checkpoint(
        ckpt,
        EvalConfig(episodes=2, tasks=2, streams_per_task=1, greedy=True),
        ["test"],
        seed=0,
        device=torch.device("cpu"),
    )["test"]
    assert returns.shape == (2, 2) and len(streams) == 2


def test_the_pipeline_runs_a_registered_method_beside_ad(tmp_path):
    cfg = RunConfig(
        "darkroom",
        data=DataConfig("qlearning", 200),
        methods={"ad": MethodConfig(4), Repeat.name: MethodConfig(4)},
        model=ModelConfig(n_embd=16, n_layer=1, n_head=2, n_ff=16, context=20),
        train=TrainConfig(iters=2, batch_size=4, warmup_iters=1, subsample=1),
        eval=EvalConfig(episodes=2, tasks=1, streams_per_task=2),
        runs=tmp_path,
        device="cpu",
        quiet=True,
    )
    root = run(cfg)
    report = json.loads((root / "report.json").read_text())
    assert set(report["curves"]) == {"ad", Repeat.name, "source", "source-tuned"}
    replica = root / "seed-0"
    assert (replica / "data" / Repeat.name / "manifest.json").is_file()
    assert (replica / Repeat.name / "ckpt.pt").is_file()
    assert "| repeat |" in (root / "report.md").read_text()


def test_masked_nll_counts_only_the_masked_positions():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))  # (1, 3, 2)
    targets = torch.tensor([[0, 0, 0]])
    loss, accuracy = masked_nll(logits, targets, torch.tensor([[False, True, True]]), 0.0)
    assert loss.item() == pytest.approx(-(np.log(0.9) + np.log(0.2)) / 2)
    assert accuracy.item() == pytest.approx(0.5)  # position 1 right, position 2 wrong; position 0 not counted


def test_registry_errors():
    with pytest.raises(UserError, match=r"method='nope' is unknown: choose one of ad, ed, rl2"):
        get_method("nope")
    with pytest.raises(ValueError, match="registered already"):
        register_method(Repeat())
    assert {"ad", "ed"} <= set(method_names())
    assert get_method("ed").data_source("qlearning") == "expert" and get_method("ad").data_source("ucb") == "ucb"


@pytest.mark.parametrize("layout", ["step", "sar"])
def test_ad_loss_leaves_out_positions_whose_observation_was_masked(layout: str):
    spec = get_family("darkroom").spec
    cfg = ModelConfig(n_embd=16, n_layer=1, n_head=2, n_ff=32, context=6, token_mask=0.5, dropout=0.0, layout=layout)
    ad = get_method("ad")
    model = ad.build_model(cfg, spec, torch.Generator().manual_seed(0)).train()
    g = torch.Generator().manual_seed(1)
    B, c, k = 3, 6, cfg.tokens_per_step
    obs = torch.randint(0, 9, (B, c, 2), generator=g)
    a_tm1, a_t = torch.randint(0, 5, (B, c), generator=g), torch.randint(0, 5, (B, c), generator=g)
    batch = Batch((obs, a_tm1, torch.zeros(B, c)), a_t, torch.ones(B, c, dtype=torch.bool))
    torch.manual_seed(7)
    loss, _ = ad.loss(model, batch, 0.0)
    torch.manual_seed(7)  # the same draw of the mask, by hand
    masked = model.draw_token_mask(B, c, torch.device("cpu"))
    assert masked is not None
    keep = ~masked.view(B, c, k)[:, :, -1]  # the o_t token is each step's last
    assert 0 < keep.sum() < B * c
    expected, _ = masked_nll(model(*batch.inputs, masked=masked), a_t, keep, 0.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    everything, _ = masked_nll(model(*batch.inputs, masked=masked), a_t, batch.mask, 0.0)
    assert loss.item() != pytest.approx(everything.item(), rel=1e-6)


def test_masked_nll_of_no_position_is_zero_not_nan():
    loss, accuracy = masked_nll(
        torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.bool), 0.1
    )
    assert loss.item() == 0.0 and accuracy.item() == 0.0
