"""The trainer: bit-exact resume, Ctrl-C, divergence, validation, presets (engineering.md C.2 tests 1, 2, 7, 8)."""

from __future__ import annotations

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
from algodistill.checkpoint import load_checkpoint, spec_dict
from algodistill.dataset import Dataset, Histories, finalize, write_shard
from algodistill.envs import ENV_NAMES, get_family
from algodistill.errors import UserError
from algodistill.train import (
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    config_from_dict,
    config_to_dict,
    load_model,
    lr_at,
    parse_config,
    preset_config,
    train,
)

torch.set_num_threads(1)

TINY_MODEL = dict(n_embd=16, n_layer=1, n_head=2, n_ff=32, context=40)


def make_dataset(out: Path, env: str = "darkroom", n: int = 8, episodes: int = 10, source: str = "random") -> Path:
    """A tiny finalized dataset of random transitions for `env` (n histories of `episodes` episodes)."""
    spec = get_family(env).spec
    H = spec.episode_length
    T = episodes * H
    rng = np.random.default_rng(0)
    obs = np.stack([rng.integers(0, h, (n, T)) for h in spec.obs_high], -1).astype(np.uint8)  # (n, T, D)
    hist = Histories(
        obs,
        rng.integers(0, spec.num_actions, (n, T)).astype(np.uint8),
        (rng.random((n, T)) < 0.2).astype(np.float32),
        np.broadcast_to((np.arange(T) + 1) % H == 0, (n, T)).copy(),
        np.arange(n, dtype=np.int64),
    )
    meta = {"spec": spec_dict(spec), "source": {"name": source}}
    write_shard(out, 0, hist, learner_start=0, num_histories=n, meta=meta, config={"env": env, "source": source})
    finalize(out)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def tiny(data: Path, out: Path, **overrides) -> TrainConfig:
    """A config that trains in well under a second per 10 steps on one CPU thread."""
    kw = dict(
        data=data,
        out=out,
        model=TINY_MODEL,
        steps=8,
        batch_size=8,
        warmup_steps=2,
        ckpt_every=4,
        log_every=1,
        device="cpu",
        quiet=True,
    )
    env = overrides.pop("env", "darkroom")
    return preset_config("quick", env, **(kw | overrides))


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


_SAMPLE = Dataset.sample


class BatchSpy:
    """Wraps Dataset.sample: records every training batch's targets, and can hurt the run at call k."""

    def __init__(self, monkeypatch, sigint_at: int | None = None, nan_at: int | None = None) -> None:
        self.batches: list[torch.Tensor] = []
        orig = _SAMPLE  # the unpatched method, so that spies do not stack

        def sample(ds, rng, batch_size, context, subsample=1):
            b = orig(ds, rng, batch_size, context, subsample)
            if batch_size == 1:  # the trainer's validation probe, not a training batch
                return b
            self.batches.append(b["a_t"].clone())
            if len(self.batches) == nan_at:
                b["r_tm1"][0, 0] = float("nan")
            if len(self.batches) == sigint_at:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C during this step
            return b

        monkeypatch.setattr(Dataset, "sample", sample)


# ----------------------------------------------------------------------------- resume


def test_resume_is_bit_exact_and_does_not_replay(data, tmp_path, monkeypatch):
    N, j = 8, 3
    spy_a = BatchSpy(monkeypatch)
    ckpt_a = train(tiny(data, tmp_path / "a", steps=N))
    # Run B: Ctrl-C during step j saves step j and stops; a fresh call resumes from it to N.
    BatchSpy(monkeypatch, sigint_at=j)
    with pytest.raises(TrainingInterrupted, match=f"^saved step {j} "):
        train(tiny(data, tmp_path / "b", steps=N))
    assert load_checkpoint(tmp_path / "b" / "ckpt.pt")["step"] == j
    # What a SIGKILL after the checkpoint could leave: metrics logged past it, a writer's temporary file.
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": j + 1, "loss": 99.0}) + '\n{"step": 5, "lo')  # the last one killed mid-line
    (tmp_path / "b" / "ckpt.pt.tmp-99999").write_bytes(b"half a checkpoint")
    spy_b = BatchSpy(monkeypatch)
    ckpt_b = train(tiny(data, tmp_path / "b", steps=N))

    a, b = load_checkpoint(ckpt_a), load_checkpoint(ckpt_b)
    assert a["step"] == b["step"] == N
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # every per-step loss, bit for bit
    assert not [p.name for p in (tmp_path / "b").iterdir() if ".tmp" in p.name]
    # The resumed run drew batches j..N-1 (not 0..): its first batch is A's batch j, not A's batch 0.
    assert len(spy_b.batches) == N - j
    assert all(torch.equal(x, y) for x, y in zip(spy_b.batches, spy_a.batches[j:], strict=True))
    assert not torch.equal(spy_b.batches[0], spy_a.batches[0])


def test_finished_run_is_not_retrained_and_steps_can_be_extended(data, tmp_path):
    ckpt = train(tiny(data, tmp_path, steps=4))
    before = ckpt.read_bytes()
    assert train(tiny(data, tmp_path, steps=4)) == ckpt and ckpt.read_bytes() == before
    train(tiny(data, tmp_path, steps=6))  # steps is a run-control field: raising it continues the run
    assert load_checkpoint(ckpt)["step"] == 6
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))


def test_resume_refuses_another_config_naming_the_field(data, tmp_path):
    train(tiny(data, tmp_path, steps=2))
    with pytest.raises(UserError, match=r"model\.n_embd \(checkpoint 16, requested 32\)"):
        train(tiny(data, tmp_path, steps=4, model=TINY_MODEL | {"n_embd": 32}))
    with pytest.raises(UserError, match="lr"):
        train(tiny(data, tmp_path, steps=4, lr=3e-4))
    with pytest.raises(UserError, match="already holds a run"):
        train(tiny(data, tmp_path, steps=4, resume=False))
    other = make_dataset(tmp_path / "other", source="expert")  # another generate config
    with pytest.raises(UserError, match="another dataset"):
        train(tiny(other, tmp_path, steps=4))
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 2  # nothing was touched


# ----------------------------------------------------------------------------- interruption


def cli_args(data: Path, out: Path, *extra: str) -> list[str]:
    """`algodistill train` flags for the tiny config."""
    m = TINY_MODEL
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--warmup-steps",
        "2",
        "--log-every",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--model.n-embd",
        str(m["n_embd"]),
        "--model.n-layer",
        str(m["n_layer"]),
        "--model.n-head",
        str(m["n_head"]),
        "--model.n-ff",
        str(m["n_ff"]),
        "--model.context",
        str(m["context"]),
        *extra,
    ]


def test_sigint_in_a_subprocess_saves_and_exits_130(data, tmp_path):
    args = cli_args(data, tmp_path, "--steps", "100000", "--ckpt-every", "1000")
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
    last = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert 3 <= ckpt["step"] == last < 100_000  # the last finished step, which was also logged
    assert (
        err.strip().splitlines()[-1] == f"interrupted: saved step {last} to {tmp_path / 'ckpt.pt'}; run the same "
        "command to resume"
    )
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    load_model(tmp_path / "ckpt.pt")


def test_cli_exit_codes(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # divergence: exit 1, one line naming the step
        cli.main(
            cli_args(
                data,
                tmp_path / "a",
                "--steps",
                "20",
                "--lr",
                "1e30",
                "--min-lr",
                "0",
                "--grad-clip",
                "0",
                "--warmup-steps",
                "0",
            )
        )
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: step ") and "non-finite" in err[0]
    with pytest.raises(SystemExit) as info:  # bad input: exit 2 before anything is written
        cli.main(cli_args(data, tmp_path / "b", "--env", "keydoor"))
    assert info.value.code == 2 and not (tmp_path / "b").exists()


def test_second_sigint_during_the_save_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    real_save = torch.save

    def save(obj, f):  # Ctrl-C again while the interrupt's checkpoint is being written
        if obj["step"] == 3:
            with open(f, "wb") as fh:
                fh.write(b"partial")
            os.kill(os.getpid(), signal.SIGINT)
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save)
    BatchSpy(monkeypatch, sigint_at=3)
    with pytest.raises(KeyboardInterrupt) as info:
        train(tiny(data, tmp_path, steps=8, ckpt_every=2))
    assert not isinstance(info.value, TrainingInterrupted)  # quit at once, without the graceful save
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 2
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


# ----------------------------------------------------------------------------- divergence


def test_nan_in_the_batch_stops_naming_the_step_and_keeps_the_checkpoint(data, tmp_path, monkeypatch):
    BatchSpy(monkeypatch, nan_at=6)
    with pytest.raises(TrainingDiverged, match=r"^step 6: the loss is non-finite .*ckpt\.pt \(step 5\) is kept"):
        train(tiny(data, tmp_path, steps=8, ckpt_every=1))
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["step"] == 5 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_absurd_lr_stops_and_never_saves_nonfinite_weights(data, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"^step \d+: .*non-finite") as info:
        train(tiny(data, tmp_path, steps=50, lr=1e30, min_lr=0.0, warmup_steps=0, grad_clip=0.0, ckpt_every=1))
    assert "\n" not in str(info.value)
    if (tmp_path / "ckpt.pt").exists():
        ckpt = load_checkpoint(tmp_path / "ckpt.pt")
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


# ----------------------------------------------------------------------------- validation before any work


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(env="keydoor"), "holds 'darkroom' histories, not env='keydoor'"),
        (dict(model=TINY_MODEL | {"context": 400}), "context=400 is longer than the histories"),
        (dict(subsample=4, model=TINY_MODEL | {"context": 80}), r"context=80 is longer .* \(60 steps with subsample=4"),
        (dict(device="cuda"), "no CUDA device")
        if not torch.cuda.is_available()
        else (dict(batch_size=-1), "batch_size"),
    ],
)
def test_bad_config_fails_before_creating_the_run_dir(data, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train(tiny(data, tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(lr=-1e-3), "lr=-0.001 must be a positive"),
        (dict(model=TINY_MODEL | {"n_embd": 15}), "n_embd=15 is not divisible by n_head=2"),
        (dict(env="nope"), "env='nope' is unknown"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(min_lr=1.0), "min_lr=1.0 exceeds"),
        (dict(steps=0), "steps=0 must be positive"),
    ],
)
def test_bad_config_values_are_user_errors(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        tiny(tmp_path / "data", tmp_path / "run", **overrides)


def test_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no dataset"):
        train(tiny(tmp_path / "nothing", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- config, presets, schedule, outputs


@pytest.mark.parametrize("env", ENV_NAMES)
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_config_round_trips_through_json(preset, env):
    cfg = preset_config(preset, env)
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg


def test_paper_preset_follows_tables_1_and_2():
    cfg = preset_config("paper", "darkroom")
    m = cfg.model
    assert (m.n_embd, m.n_layer, m.n_head, m.n_ff, m.dropout, m.attn_dropout, m.token_mask) == (
        64,
        4,
        4,
        2048,
        0.1,
        0.5,
        0.3,
    )
    assert (m.norm, m.positions, m.context) == ("post", "learned", 80)
    assert (cfg.batch_size, cfg.betas, cfg.lr, cfg.init_lr, cfg.grad_clip, cfg.label_smoothing) == (
        128,
        (0.9, 0.99),
        3e-4,
        2e-6,
        1.0,
        0.0,
    )
    hard = preset_config("paper", "darkroom-hard")
    assert (hard.model.attn_dropout, hard.model.token_mask, hard.label_smoothing) == (0.0, 0.5, 0.2)
    assert preset_config("paper", "keydoor").model.context == 200  # Fig. 7: 200 steps = 4 episodes
    assert preset_config("quick", "darkroom", steps=7, model={"n_layer": 1}).model.n_layer == 1


def test_parse_config_uses_the_preset_of_the_env():
    cfg = parse_config(["--preset", "paper", "--env", "keydoor", "--steps", "5", "--model.n-layer", "2"])
    assert (cfg.preset, cfg.env, cfg.steps, cfg.batch_size, cfg.model.context, cfg.model.n_layer) == (
        "paper",
        "keydoor",
        5,
        128,
        200,
        2,
    )
    assert parse_config([]) == preset_config("quick", "darkroom")


def test_lr_schedule_warmup_then_cosine():
    cfg = preset_config("paper", "darkroom", steps=1000, warmup_steps=100, min_lr=1e-5)
    assert lr_at(0, cfg) == 2e-6 and lr_at(100, cfg) == pytest.approx(3e-4) and lr_at(1000, cfg) == 1e-5
    assert lr_at(50, cfg) == pytest.approx((2e-6 + 3e-4) / 2)
    decay = [lr_at(s, cfg) for s in range(100, 1001)]
    assert all(x >= y for x, y in itertools.pairwise(decay))


def test_outputs_and_load_model_for_an_expert_dataset(tmp_path):
    # ED (expert distillation) is the same trainer on expert histories: nothing assumes AD data.
    data = make_dataset(tmp_path / "expert", source="expert")
    ckpt = train(tiny(data, tmp_path / "run", steps=3, log_every=2))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3]
    assert set(rows[0]) >= {"step", "loss", "accuracy", "lr", "steps_per_s", "history_steps_per_s"}
    assert rows[0]["history_steps_per_s"] == pytest.approx(rows[0]["steps_per_s"] * 8 * 40)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["env"] == "darkroom"
    model, cfg = load_model(ckpt)
    assert not model.training and cfg["env"] == "darkroom" and cfg["model"]["n_embd"] == 16
    saved = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(p, saved[k]) for k, p in model.state_dict().items())
    with Dataset.open(data) as ds:
        b = ds.sample(np.random.default_rng(0), 2, 40)
    assert model(b["obs"], b["a_tm1"], b["r_tm1"]).shape == (2, 40, 5)
