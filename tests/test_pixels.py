"""Pixels through the pipeline. Watermaze histories store (x, y, heading) per step, and the sampler redraws
each window's frames, the same bytes the env showed the source; AD with a conv encoder trains on them and
the KV-cached evaluator runs it on the env's frames."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from algodistill.checkpoint import load_model
from algodistill.configs import DataConfig, EvalConfig, MethodConfig, RunConfig, TrainConfig, TrainJob
from algodistill.device import frames_device
from algodistill.encoders import EncoderConfig
from algodistill.envs import get_family
from algodistill.generate import GenerateConfig, generate
from algodistill.methods import get_method
from algodistill.model import ModelConfig
from algodistill.pipeline import run
from algodistill.rng import Tag, np_rng
from algodistill.sampler import Dataset
from algodistill.train import BN_CALIBRATION_BATCHES, train

ENV = "watermaze-small"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("wm") / "data"
    generate(GenerateConfig(ENV, source="random", out=out, histories=4, steps=150, shard_size=2, quiet=True))
    return out


def test_shards_hold_the_stored_form_not_the_frames(data):
    family = get_family(ENV)
    with h5py.File(data / "shard-00000.h5") as f:
        assert f["obs"].shape == (2, 150, 3) and f["obs"].dtype == np.float32  # x, y, heading per step
    frame_bytes = 4 * 150 * int(np.prod(family.spec.obs_shape))
    stored = sum(p.stat().st_size for p in data.glob("shard-*.h5"))
    assert stored * 20 < frame_bytes  # what the frames would take before compression


def test_sampled_windows_show_the_frames_the_env_showed(data):
    family = get_family(ENV)
    ds = Dataset.open(data)
    hist = ds.histories(range(ds.num_histories))
    # replay every history's actions in a fresh env (the dynamics are deterministic): the frames it showed
    env = family.make(hist.task_ids)
    frames = np.empty((ds.num_histories, ds.T, *family.spec.obs_shape), np.uint8)  # (N, T, H, W, 3)
    o_t = env.reset()
    for t in range(ds.T):
        frames[:, t] = o_t
        o_t, _, done_t = env.step(hist.actions[:, t].astype(np.int64))
        if done_t.all():
            o_t = env.reset()
    w = ds.sample(np.random.default_rng(0), batch_size=8, length=60, lead=1)
    assert w.obs.shape == (8, 60, *family.spec.obs_shape) and w.obs.dtype.is_floating_point is False
    # locate each window by its actions, then compare every unpadded frame byte for byte
    a = hist.actions.astype(np.int64)
    checked = 0
    for b in range(8):
        inside = ~w.pad[b].numpy()
        acts = w.actions[b].numpy()[inside]
        for n in range(ds.num_histories):
            for s in range(ds.T - len(acts) + 1):
                if (a[n, s : s + len(acts)] == acts).all():
                    np.testing.assert_array_equal(w.obs[b].numpy()[inside], frames[n, s : s + len(acts)])
                    checked += 1
                    break
            else:
                continue
            break
        assert (w.obs[b].numpy()[~inside] == 0).all()  # padding is zeros, not a drawn frame
    assert checked == 8


def test_windows_drawn_by_torch_on_a_device_are_the_numpy_windows(data):
    """The trainer on an accelerator has the sampler draw frames there (torch): the same windows, padding
    zeroed, and one rank's share of the batch is those rows of the whole batch."""
    ds = Dataset.open(data)
    cpu = torch.device("cpu")
    for part in (slice(None), slice(3, 7)):  # windows of 150 steps in histories of 150: half start padded
        ref = ds.sample(np.random.default_rng(4), 8, 150, lead=1, part=part)
        got = ds.sample(np.random.default_rng(4), 8, 150, lead=1, part=part, device=cpu)
        assert got.obs.dtype == ref.obs.dtype == torch.uint8 and got.obs.equal(ref.obs)
        assert (got.obs[got.pad] == 0).all() and (got.obs[~got.pad] != 0).any()
    whole, share = (ds.sample(np.random.default_rng(4), 8, 150, lead=1, part=p) for p in (slice(None), slice(3, 7)))
    assert whole.pad.any()
    for name in ("obs", "actions", "rewards", "dones", "pad", "task_ids"):
        assert getattr(share, name).equal(getattr(whole, name)[3:7]), name


def test_frames_are_drawn_with_numpy_on_the_cpu_and_beside_the_model_elsewhere():
    """The one rule the trainer's sampler and the dqn source's replay both follow (`frames_device`)."""
    assert frames_device(torch.device("cpu")) is None
    for name in ("cuda", "cuda:1", "meta"):
        assert frames_device(torch.device(name)) == torch.device(name)


def test_a_tiny_run_trains_ad_with_a_conv_encoder_on_frames(tmp_path):
    conv = EncoderConfig(kind="conv", channels=(8, 16))  # 2 blocks: 36 x 48 -> 3 x 3 (3 blocks need 43 px)
    cfg = RunConfig(
        ENV,
        data=DataConfig("privq", 500),
        methods={"ad": MethodConfig(4), "ed": MethodConfig(2)},
        model=ModelConfig(n_embd=16, n_layer=1, n_head=2, n_ff=16, context=100, encoder=conv),
        train=TrainConfig(iters=2, batch_size=4, warmup_iters=1, subsample=1),
        eval=EvalConfig(episodes=3, tasks=2, streams_per_task=1),
        baselines="ed",
        runs=tmp_path,
        device="cpu",
        quiet=True,
    )
    root = run(cfg)
    report = json.loads((root / "report.json").read_text())
    assert set(report["curves"]) == {"ad", "ed"} and len(report["curves"]["ad"]) == 3
    assert (root / "frames.png").is_file() and "![frames](frames.png)" in (root / "report.md").read_text()
    with h5py.File(root / "seed-0" / "data" / "ad" / "shard-00000.h5") as f:
        assert f["obs"].shape == (4, 500, 3)  # the stored form


@pytest.mark.parametrize("source", ["privq", "replay"])
def test_generation_that_skips_drawing_writes_the_same_bytes(tmp_path, monkeypatch, source):
    """privq and replay never read frames, so generation runs the env without drawing; the shards hold what a
    drawing env gives."""
    from algodistill import generate as G
    from algodistill.envs import watermaze

    with monkeypatch.context() as m:
        m.setattr(watermaze, "render", lambda *a, **k: pytest.fail("a frame was drawn"))
        generate(GenerateConfig(ENV, source=source, out=tmp_path / "blind", histories=3, steps=100, quiet=True))
    monkeypatch.setattr(G, "StoresObs", type("Never", (), {}))  # isinstance(env, Never) is False: frames drawn
    generate(GenerateConfig(ENV, source=source, out=tmp_path / "drawn", histories=3, steps=100, quiet=True))
    with h5py.File(tmp_path / "blind" / "shard-00000.h5") as a, h5py.File(tmp_path / "drawn" / "shard-00000.h5") as b:
        for field in ("obs", "actions", "rewards", "dones", "task_ids"):  # (the attrs name each one's path)
            np.testing.assert_array_equal(a[field][:], b[field][:], err_msg=field)


def test_training_ends_with_batchnorm_statistics_of_the_final_weights(data, tmp_path):
    """The saved running statistics are the plain mean over the calibration batches of what reaches each
    BatchNorm under the final weights, not Table 3's slow average over the whole run (train.py)."""
    conv = EncoderConfig(kind="conv", channels=(8, 16), dropout=0.2)
    job = TrainJob(
        ENV,
        data=data,
        out=tmp_path / "ad",
        model=ModelConfig(n_embd=16, n_layer=1, n_head=2, n_ff=16, context=50, encoder=conv),
        train=TrainConfig(iters=3, batch_size=4, warmup_iters=1, subsample=1, lr=1e-2),
        device="cpu",
        quiet=True,
    )
    model, _ = load_model(train(job))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 2 and all(m.momentum == 0.001 for m in norms)  # Table 3's decay is kept for training
    saved = [(m.running_mean.clone(), m.num_batches_tracked.item()) for m in norms]
    seen: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    for i, m in enumerate(norms):
        m.register_forward_hook(lambda mod, inp, out, i=i: seen[i].append(inp[0].mean((0, 2, 3))))
        m.train()  # normalise with each batch's statistics, as the calibration did...
        m.momentum = 0.0  # ...without moving the running ones
    method, spec = get_method("ad"), get_family(ENV).spec
    length, lead = method.window(job.model)
    ds = Dataset.open(data)
    with torch.no_grad():  # the rest in eval mode (dropout off), as during the calibration
        for j in range(BN_CALIBRATION_BATCHES):
            windows = ds.sample(np_rng(job.seed, j, Tag.BN_CALIBRATION), 4, length, 1, lead)
            model(*method.make_batch(windows, spec).inputs)
    for i, (running_mean, batches) in enumerate(saved):
        expected = torch.stack(seen[i]).mean(0)  # (C,) every batch has as many frames
        assert torch.allclose(running_mean, expected, atol=1e-4), (i, running_mean, expected)  # float sums
        assert batches == BN_CALIBRATION_BATCHES
