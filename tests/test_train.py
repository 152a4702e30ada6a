"""The trainer: bit-exact resume, Ctrl-C, divergence, validation before any work, presets."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from algodistill import cli
from algodistill.checkpoint import load_checkpoint, load_model
from algodistill.configs import TrainConfig, TrainJob
from algodistill.dataset import Histories, finalize, write_shard
from algodistill.encoders import EncoderConfig
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.jsonio import from_jsonable, jsonable
from algodistill.methods import get_method
from algodistill.presets import PRESETS, get_preset, train_defaults
from algodistill.sampler import Dataset
from algodistill.train import TrainingDiverged, TrainingInterrupted, lr_at, train

torch.set_num_threads(1)

TINY_MODEL = dict(n_embd=16, n_layer=1, n_head=2, n_ff=32, context=40)
TINY_TRAIN = dict(iters=8, batch_size=8, warmup_iters=2, ckpt_every=4, log_every=1, subsample=1)


def make_dataset(
    out: Path, env: str = "darkroom", n: int = 8, episodes: int = 10, source: str = "random", split: str = "train"
) -> Path:
    """A tiny finalized dataset of random transitions for `env` (n histories of `episodes` episodes)."""
    spec = get_family(env).spec
    H = spec.episode_length
    T = episodes * H
    rng = np.random.default_rng(0)
    assert spec.obs_high is not None
    obs = np.stack([rng.integers(0, h, (n, T)) for h in spec.obs_high], -1).astype(np.uint8)  # (n, T, D)
    hist = Histories(
        obs,
        rng.integers(0, spec.num_actions, (n, T)).astype(np.uint8),
        (rng.random((n, T)) < 0.2).astype(np.float32),
        np.broadcast_to((np.arange(T) + 1) % H == 0, (n, T)).copy(),
        np.arange(n, dtype=np.int64),
    )
    meta = {"spec": spec.record(), "source": {"name": source}, "split": split}
    write_shard(out, 0, hist, learner_start=0, num_histories=n, meta=meta, config={"env": env, "source": source})
    finalize(out)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def tiny(data: Path, out: Path, *, model: dict | None = None, train: dict | None = None, **job) -> TrainJob:
    """A job that trains in well under a second per 10 iterations on one CPU thread: the quick preset's
    settings of its env, shrunk by TINY_MODEL and TINY_TRAIN, then `model`, `train` and job overrides."""
    base = get_preset(job.get("env", "darkroom"), "quick")
    return TrainJob(
        **{"env": "darkroom", "device": "cpu", "quiet": True} | job,
        data=data,
        out=out,
        model=dataclasses.replace(base.model, **(TINY_MODEL | (model or {}))),
        train=dataclasses.replace(base.train, **(TINY_TRAIN | (train or {}))),
    )


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


_SAMPLE = Dataset.sample


class BatchSpy:
    """Wraps Dataset.sample: records every training batch's actions, and can hurt the run at call k."""

    def __init__(self, monkeypatch, sigint_at: int | None = None, nan_at: int | None = None) -> None:
        self.batches: list[torch.Tensor] = []
        orig = _SAMPLE  # the unpatched method, so that spies do not stack

        def sample(ds, rng, batch_size, length, subsample=1, lead=0, part=slice(None), device=None):
            w = orig(ds, rng, batch_size, length, subsample, lead, part, device)
            self.batches.append(w.actions.clone())
            if len(self.batches) == nan_at:
                w.rewards[0, 1] = float("nan")  # an r_{t-1} input of the model
            if len(self.batches) == sigint_at:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C during this iteration
            return w

        monkeypatch.setattr(Dataset, "sample", sample)


# ----------------------------------------------------------------------------- resume


def test_resume_is_bit_exact_and_does_not_replay(data, tmp_path, monkeypatch):
    N, j = 8, 3
    spy_a = BatchSpy(monkeypatch)
    ckpt_a = train(tiny(data, tmp_path / "a", train={"iters": N}))
    # Run B: Ctrl-C during iteration j saves iteration j and stops; a fresh call resumes from it to N.
    BatchSpy(monkeypatch, sigint_at=j)
    with pytest.raises(TrainingInterrupted, match=f"^saved iteration {j} "):
        train(tiny(data, tmp_path / "b", train={"iters": N}))
    assert load_checkpoint(tmp_path / "b" / "ckpt.pt")["iter"] == j
    # What a SIGKILL after the checkpoint could leave: metrics logged past it, a writer's temporary file.
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"iter": j + 1, "loss": 99.0}) + '\n{"iter": 5, "lo')  # the last one killed mid-line
    (tmp_path / "b" / "ckpt.pt.tmp-99999").write_bytes(b"half a checkpoint")
    spy_b = BatchSpy(monkeypatch)
    ckpt_b = train(tiny(data, tmp_path / "b", train={"iters": N}))

    a, b = load_checkpoint(ckpt_a), load_checkpoint(ckpt_b)
    assert a["iter"] == b["iter"] == N
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # every per-iteration loss, bit for bit
    assert not [p.name for p in (tmp_path / "b").iterdir() if ".tmp" in p.name]
    # The resumed run drew batches j..N-1 (not 0..): its first batch is A's batch j, not A's batch 0.
    assert len(spy_b.batches) == N - j
    assert all(torch.equal(x, y) for x, y in zip(spy_b.batches, spy_a.batches[j:], strict=True))
    assert not torch.equal(spy_b.batches[0], spy_a.batches[0])


def test_finished_run_is_not_retrained_and_iters_can_be_extended(data, tmp_path):
    ckpt = train(tiny(data, tmp_path, train={"iters": 4}))
    before = ckpt.read_bytes()
    assert train(tiny(data, tmp_path, train={"iters": 4})) == ckpt and ckpt.read_bytes() == before
    train(tiny(data, tmp_path, train={"iters": 6}))  # iters may change on resume: raising it continues the run
    assert load_checkpoint(ckpt)["iter"] == 6
    assert [json.loads(x)["iter"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))


def test_resume_refuses_another_config_naming_the_field(data, tmp_path):
    train(tiny(data, tmp_path, train={"iters": 2}))
    with pytest.raises(UserError, match=r"model\.n_embd \(checkpoint 16, requested 32\)"):
        train(tiny(data, tmp_path, model={"n_embd": 32}, train={"iters": 4}))
    with pytest.raises(UserError, match=r"train\.lr \(checkpoint 0\.001, requested 0\.0003\)"):
        train(tiny(data, tmp_path, train={"iters": 4, "lr": 3e-4}))
    with pytest.raises(UserError, match=r"method \(checkpoint 'ad', requested 'ed'\)"):
        train(tiny(data, tmp_path, method="ed", train={"iters": 4}))
    with pytest.raises(UserError, match="already holds a run"):
        train(tiny(data, tmp_path, resume=False, train={"iters": 4}))
    other = make_dataset(tmp_path / "other", source="expert")  # another generate config
    with pytest.raises(UserError, match="another dataset"):
        train(tiny(other, tmp_path, train={"iters": 4}))
    assert load_checkpoint(tmp_path / "ckpt.pt")["iter"] == 2  # nothing was touched


# ----------------------------------------------------------------------------- interruption


def cli_args(data: Path, out: Path, *extra: str) -> list[str]:
    """`algodistill train` flags for the tiny config."""
    m = TINY_MODEL
    # fmt: off
    return [
        "train", "--data", str(data), "--out", str(out), "--train.batch-size", "8", "--train.warmup-iters", "2",
        "--train.log-every", "1", "--train.subsample", "1", "--device", "cpu", "--quiet",
        "--model.n-embd", str(m["n_embd"]), "--model.n-layer", str(m["n_layer"]), "--model.n-head", str(m["n_head"]),
        "--model.n-ff", str(m["n_ff"]), "--model.context", str(m["context"]), *extra,
    ]
    # fmt: on


def test_sigint_in_a_subprocess_saves_and_exits_130(data, tmp_path):
    args = cli_args(data, tmp_path, "--train.iters", "100000", "--train.ckpt-every", "1000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "algodistill.cli", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    metrics, deadline = tmp_path / "metrics.jsonl", time.monotonic() + 60
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    last = json.loads(metrics.read_text().splitlines()[-1])["iter"]
    assert 3 <= ckpt["iter"] == last < 100_000  # the last finished iteration, which was also logged
    assert (
        err.strip().splitlines()[-1] == f"interrupted: saved iteration {last} to {tmp_path / 'ckpt.pt'}; run the "
        "same command to resume"
    )
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    load_model(tmp_path / "ckpt.pt")


def test_cli_exit_codes(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # divergence: exit 1, one line naming the iteration
        cli.main(
            cli_args(
                data,
                tmp_path / "a",
                *("--train.iters", "20", "--train.lr", "1e30", "--train.min-lr", "0"),
                *("--train.grad-clip", "0", "--train.warmup-iters", "0"),
            )
        )
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: iter ") and "non-finite" in err[0]
    with pytest.raises(SystemExit) as info:  # bad input: exit 2 before anything is written
        cli.main(cli_args(data, tmp_path / "b", "--env", "keydoor"))
    assert info.value.code == 2 and not (tmp_path / "b").exists()


def test_second_sigint_during_the_save_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    real_save = torch.save

    def save(obj, f):  # Ctrl-C again while the interrupt's checkpoint is being written
        if obj["iter"] == 3:
            with open(f, "wb") as fh:
                fh.write(b"partial")
            os.kill(os.getpid(), signal.SIGINT)
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save)
    BatchSpy(monkeypatch, sigint_at=3)
    with pytest.raises(KeyboardInterrupt) as info:
        train(tiny(data, tmp_path, train={"iters": 8, "ckpt_every": 2}))
    assert not isinstance(info.value, TrainingInterrupted)  # quit at once, without the graceful save
    assert load_checkpoint(tmp_path / "ckpt.pt")["iter"] == 2
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


# ----------------------------------------------------------------------------- divergence


def test_nan_in_the_batch_stops_naming_the_iteration_and_keeps_the_checkpoint(data, tmp_path, monkeypatch):
    BatchSpy(monkeypatch, nan_at=6)
    with pytest.raises(TrainingDiverged, match=r"^iter 6: the loss is non-finite .*ckpt\.pt \(iter 5\) is kept"):
        train(tiny(data, tmp_path, train={"iters": 8, "ckpt_every": 1}))
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["iter"] == 5 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_absurd_lr_stops_and_never_saves_nonfinite_weights(data, tmp_path):
    absurd = {"iters": 50, "lr": 1e30, "min_lr": 0.0, "warmup_iters": 0, "grad_clip": 0.0, "ckpt_every": 1}
    with pytest.raises(TrainingDiverged, match=r"^iter \d+: .*non-finite") as info:
        train(tiny(data, tmp_path, train=absurd))
    assert "\n" not in str(info.value)
    if (tmp_path / "ckpt.pt").exists():
        ckpt = load_checkpoint(tmp_path / "ckpt.pt")
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


# ----------------------------------------------------------------------------- validation before any work


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(env="keydoor", model={"context": 40}), "holds 'darkroom' histories, not env='keydoor'"),
        (dict(model={"context": 400}), "model.context=400 is longer than the histories"),
        (dict(train={"subsample": 4}, model={"context": 80}), r"model.context=80 .* the histories have 60 \(T=200"),
        (dict(device="cuda"), "no CUDA device")
        if not torch.cuda.is_available()
        else (dict(train={"batch_size": 7}), "batch_size"),
    ],
)
def test_bad_config_fails_before_creating_the_run_dir(data, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train(tiny(data, tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(train={"lr": -1e-3}), "train.lr=-0.001 must be a positive"),
        (dict(model={"n_embd": 15}), "model.n_embd=15 is not divisible by n_head=2"),
        (dict(env="nope"), "env='nope' has no preset"),
        (dict(train={"label_smoothing": 1.0}), "train.label_smoothing"),
        (dict(train={"min_lr": 1.0}), "train.min_lr=1.0 exceeds"),
        (dict(train={"iters": 0}), "train.iters=0 must be positive"),
        (dict(method="nope"), "method='nope' is unknown: choose one of ad, ed"),
        (dict(model={"encoder": EncoderConfig(kind="conv")}), "model.encoder.kind='conv' does not fit"),
    ],
)
def test_bad_config_values_are_user_errors(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        tiny(tmp_path / "data", tmp_path / "run", **overrides)


def test_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"data=.* is not a dataset directory"):
        train(tiny(tmp_path / "nothing", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- config, presets, schedule, outputs


@pytest.mark.parametrize(("env", "scale"), sorted(PRESETS))
def test_job_round_trips_through_json(scale, env):
    job = train_defaults(["--env", env, "--preset", scale])
    assert from_jsonable(TrainJob, json.loads(json.dumps(jsonable(job)))) == job


def test_train_command_takes_the_run_presets_settings():
    # `algodistill train --preset quick` trains as `algodistill run`'s quick preset does (subsampling included)
    job = cli._parse("train", ["--preset", "quick", "--env", "darkroom"])
    run = get_preset("darkroom", "quick")
    assert (job.model, job.train) == (run.model, run.train) and job.train.subsample == 40
    job = cli._parse("train", ["--preset", "paper", "--env", "keydoor", "--train.iters", "5", "--model.n-layer", "2"])
    assert (job.preset, job.env, job.train.iters, job.train.batch_size, job.model.context, job.model.n_layer) == (
        "paper",
        "keydoor",
        5,
        128,
        200,
        2,
    )


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(iters=1000, warmup_iters=100, lr=3e-4, init_lr=2e-6, min_lr=1e-5)
    assert lr_at(0, cfg) == 2e-6 and lr_at(100, cfg) == pytest.approx(3e-4) and lr_at(1000, cfg) == 1e-5
    assert lr_at(50, cfg) == pytest.approx((2e-6 + 3e-4) / 2)
    decay = [lr_at(s, cfg) for s in range(100, 1001)]
    assert all(x >= y for x, y in itertools.pairwise(decay))


def test_outputs_and_load_model_for_an_expert_dataset(tmp_path):
    # ED is the same trainer on expert histories: the method, not the trainer, knows what the data is
    data = make_dataset(tmp_path / "expert", source="expert")
    ckpt = train(tiny(data, tmp_path / "run", method="ed", train={"iters": 3, "log_every": 2}))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [2, 3]
    assert set(rows[0]) >= {"iter", "loss", "accuracy", "lr", "iters_per_s", "history_steps_per_s"}
    assert rows[0]["history_steps_per_s"] == pytest.approx(rows[0]["iters_per_s"] * 8 * 40)
    saved_job = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved_job["env"], saved_job["method"]) == ("darkroom", "ed")
    model, job = load_model(ckpt)
    assert not model.training and job["method"] == "ed" and job["model"]["n_embd"] == 16
    saved = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(p, saved[k]) for k, p in model.state_dict().items())
    method, spec = get_method("ed"), get_family("darkroom").spec
    with Dataset.open(data) as ds:
        batch = method.make_batch(ds.sample(np.random.default_rng(0), 2, 41, 1, 1), spec)
    assert model(*batch.inputs).shape == (2, 40, 5)


def test_a_dataset_of_held_out_tasks_is_refused(tmp_path):
    test_split = make_dataset(tmp_path / "test-data", split="test")
    with pytest.raises(UserError, match=r"holds histories of the 'test' split, not 'train'.*--split train"):
        train(tiny(test_split, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
