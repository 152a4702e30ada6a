"""Dataset format, integrity checks, resume/merge, and the window sampler."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algodistill import dataset as D
from algodistill.atomic import sha256_file
from algodistill.errors import UserError

H, NUM_ACTIONS = 4, 5
SPEC = {"name": "toy", "obs_dim": 3, "num_actions": NUM_ACTIONS, "episode_length": H}
META = {"spec": SPEC, "source": {"name": "random"}, "seed": 0, "split": "train"}
CONFIG = {"env": "toy", "seed": 0, "num_histories": 6, "source": {"lr": 0.1}}


def make_histories(n: int, T: int, start: int = 0, float_rewards: bool = False) -> D.Histories:
    """Histories whose obs encode (t % 256, t // 256, learner index), so every window can be located."""
    rng = np.random.default_rng(start)
    t = np.arange(T)
    obs = np.stack(np.broadcast_arrays(t % 256, t // 256, np.arange(start, start + n)[:, None]), -1)  # (n, T, 3)
    rewards = rng.integers(0, 3, (n, T)).astype(np.float32)
    if float_rewards:
        rewards = rewards * np.float32(0.25)
    return D.Histories(
        obs.astype(np.uint8),
        rng.integers(0, NUM_ACTIONS, (n, T)).astype(np.uint8),
        rewards,
        np.broadcast_to((t + 1) % H == 0, (n, T)).copy(),
        np.arange(start, start + n) * 10,
    )


def write_dataset(
    out: Path,
    N: int = 6,
    T: int = 44,
    shard_size: int = 4,
    config: dict | None = None,
    float_rewards: bool = False,
    shards: list[int] | None = None,
) -> D.Histories:
    """Write the shards (all, or those listed) of an N-learner dataset, finalize when all are written."""
    starts = list(range(0, N, shard_size))
    for i, s in enumerate(starts):
        if shards is None or i in shards:
            h = make_histories(min(shard_size, N - s), T, s, float_rewards)
            D.write_shard(out, i, h, learner_start=s, num_histories=N, meta=META, config=config or CONFIG)
    if shards is None:
        D.finalize(out)
    return D.Histories.concat([make_histories(min(shard_size, N - s), T, s, float_rewards) for s in starts])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    hist = write_dataset(out)
    return D.Dataset.open(out), D.Dataset.open(out, max_ram_bytes=0), hist


# ----------------------------------------------------------------------------- format and round trip


@pytest.mark.parametrize("float_rewards", [False, True])
def test_round_trip_in_ram_and_lazy(tmp_path, float_rewards):
    hist = write_dataset(tmp_path, float_rewards=float_rewards)
    for ds in (D.Dataset.open(tmp_path), D.Dataset.open(tmp_path, max_ram_bytes=0)):
        assert (ds.num_histories, ds.T, ds.spec, ds.meta, ds.config) == (6, 44, SPEC, META, CONFIG)
        got = ds.histories(range(6))
        for f in ("obs", "actions", "rewards", "dones", "task_ids"):
            np.testing.assert_array_equal(getattr(got, f), getattr(hist, f), err_msg=f)
            assert getattr(got, f).dtype == getattr(hist, f).dtype
        np.testing.assert_array_equal(ds.task_ids, hist.task_ids)
        np.testing.assert_array_equal(ds.histories([5, 0]).actions, hist.actions[[5, 0]])
        np.testing.assert_allclose(ds.episode_returns(), hist.rewards.reshape(6, -1, H).sum(-1))
        ds.close()


def test_shard_file_layout(tmp_path):
    write_dataset(tmp_path)
    with h5py.File(tmp_path / "shard-00001.h5", "r") as f:
        assert f.attrs["learner_start"] == 4 and f.attrs["learner_end"] == 6
        assert f.attrs["schema_version"] == D.SCHEMA_VERSION
        assert json.loads(f.attrs["meta"]) == META and json.loads(f.attrs["config"]) == CONFIG
        for k in ("obs", "actions", "rewards", "dones", "task_ids"):
            assert f[k].fletcher32, k
        assert f["obs"].compression == "gzip" and f["obs"].chunks == (1, 44, 3)
        assert f["rewards"].dtype == np.uint8 and f["rewards"].attrs["logical_dtype"] == "float32"
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["config_hash"] == D.config_hash(CONFIG) and m["num_histories"] == 6 and m["T"] == 44
    assert [(s["file"], s["start"], s["end"]) for s in m["shards"]] == [
        ("shard-00000.h5", 0, 4),
        ("shard-00001.h5", 4, 6),
    ]


def test_same_histories_give_same_bytes(tmp_path):
    a = D.write_shard(
        tmp_path / "a", 0, make_histories(3, 8), learner_start=0, num_histories=3, meta=META, config=CONFIG
    )
    b = D.write_shard(
        tmp_path / "b", 0, make_histories(3, 8), learner_start=0, num_histories=3, meta=META, config=CONFIG
    )
    assert a == b  # sha256 included: HDF5 writes no timestamps


def test_histories_validation():
    h = make_histories(2, 8)
    with pytest.raises(ValueError, match="rewards"):
        D.Histories(h.obs, h.actions, h.rewards.astype(np.float64), h.dones, h.task_ids)
    with pytest.raises(ValueError, match="task_ids"):
        D.Histories(h.obs, h.actions, h.rewards, h.dones, h.task_ids[:1])
    assert D.Histories.concat([h, h]).num_histories == 4


# ----------------------------------------------------------------------------- integrity


def _flip_chunk_byte(path: Path) -> None:
    with h5py.File(path, "r") as f:
        offset = f["actions"].id.get_chunk_info(0).byte_offset + 3
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_flipped_byte_is_caught(tmp_path):
    write_dataset(tmp_path)
    _flip_chunk_byte(tmp_path / "shard-00001.h5")
    assert D.verify(tmp_path) == ["shard-00001.h5"]
    with pytest.raises(UserError, match=r"shard-00001\.h5.*sha256.*re-run the same `algodistill generate`"):
        D.Dataset.open(tmp_path)
    # Without the sha256 pass, fletcher32 still refuses the chunk rather than returning wrong data.
    with pytest.raises(UserError, match=r"shard-00001\.h5 cannot be read"):
        D.Dataset.open(tmp_path, verify=False)
    lazy = D.Dataset.open(tmp_path, verify=False, max_ram_bytes=0)
    with pytest.raises(UserError, match=r"shard-00001\.h5 cannot be read"):
        lazy.histories([4])  # chunk 0 of shard 1 = its first learner


def test_truncated_shard_is_caught(tmp_path):
    write_dataset(tmp_path)
    data = (tmp_path / "shard-00000.h5").read_bytes()
    (tmp_path / "shard-00000.h5").write_bytes(data[: len(data) // 2])
    assert D.verify(tmp_path) == ["shard-00000.h5"]
    with pytest.raises(UserError, match=r"shard-00000\.h5 does not match its sha256"):
        D.Dataset.open(tmp_path)
    with pytest.raises(UserError, match=r"shard-00000\.h5 cannot be read"):
        D.Dataset.open(tmp_path, verify=False)


def test_edited_manifest_sha_is_caught(tmp_path):
    write_dataset(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["shards"][0]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"shard-00000\.h5 does not match its sha256"):
        D.Dataset.open(tmp_path)


def test_missing_shard_is_reported(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "shard-00000.h5").unlink()
    assert D.verify(tmp_path) == ["shard-00000.h5"]
    with pytest.raises(UserError, match=r"shard-00000\.h5 is missing; re-run the same"):
        D.Dataset.open(tmp_path)
    assert set(D.completed_shards(tmp_path, CONFIG)) == {1}  # resume regenerates only shard 0


def test_schema_version_mismatch(tmp_path):
    write_dataset(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["schema_version"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="schema version 999"):
        D.Dataset.open(tmp_path)


def test_open_without_dataset(tmp_path):
    with pytest.raises(UserError, match="holds no dataset"):
        D.Dataset.open(tmp_path)
    write_dataset(tmp_path, shards=[0])
    with pytest.raises(UserError, match="unfinished dataset"):
        D.Dataset.open(tmp_path)


def test_different_config_is_refused_and_nothing_changes(tmp_path):
    write_dataset(tmp_path)
    before = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    other = {**CONFIG, "seed": 1}
    with pytest.raises(UserError, match=r"different config \(field seed: 0 vs 1 requested\); choose another --out"):
        write_dataset(tmp_path, config=other)
    with pytest.raises(UserError, match=r"field source\.lr: 0\.1 vs 0\.2"):
        D.check_config(tmp_path, {**CONFIG, "source": {"lr": 0.2}})
    assert {p.name: sha256_file(p) for p in tmp_path.iterdir()} == before
    D.check_config(tmp_path, dict(CONFIG))  # same config: fine (resume)


def test_different_config_refused_before_manifest_exists(tmp_path):
    write_dataset(tmp_path, shards=[0])  # unfinished: only fragments
    with pytest.raises(UserError, match="field seed"):
        D.completed_shards(tmp_path, {**CONFIG, "seed": 5})


# ----------------------------------------------------------------------------- kill, resume, merge


def test_writer_killed_mid_shard_leaves_no_file(tmp_path):
    code = f"""
import os, sys, h5py
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_dataset import write_dataset
real = h5py.Group.create_dataset
def dying(self, name, *a, **k):
    if name == "rewards" and "shard-00001" in self.file.filename:
        os._exit(7)  # SIGKILL-like: no cleanup, no close
    return real(self, name, *a, **k)
h5py.Group.create_dataset = dying
write_dataset(__import__("pathlib").Path(sys.argv[1]))
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert proc.returncode == 7
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "shard-00001.h5" not in names and "shard-00001.json" not in names and "manifest.json" not in names
    assert any(n.startswith("shard-00001.h5.tmp-") for n in names)  # the stale temporary, never readable
    assert set(D.completed_shards(tmp_path, CONFIG)) == {0}
    with pytest.raises(UserError, match=r"incomplete: learners \[4, \.\.\.\) of 6"):
        D.finalize(tmp_path)
    # Resume: write only the missing shard, finalize; stale temporaries are swept.
    write_dataset(tmp_path, shards=[1])
    D.finalize(tmp_path)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert D.verify(tmp_path) == []


def test_exception_in_writer_leaves_no_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_dataset(tmp_path, shards=[0])
    assert list(tmp_path.iterdir()) == []


def test_resume_and_merge_give_identical_dataset(tmp_path):
    write_dataset(tmp_path / "whole")
    write_dataset(tmp_path / "m0", shards=[0])  # as `--shard 0/2` on one machine
    write_dataset(tmp_path / "m1", shards=[1])  # as `--shard 1/2` on another
    merged = D.merge([tmp_path / "m0", tmp_path / "m1"], tmp_path / "merged")
    assert merged == D.Manifest.load(tmp_path / "whole")
    a, b = D.Dataset.open(tmp_path / "whole"), D.Dataset.open(tmp_path / "merged")
    for k, v in a.sample(np.random.default_rng(0), 16, 12, 2).items():
        assert v.equal(b.sample(np.random.default_rng(0), 16, 12, 2)[k])
    write_dataset(tmp_path / "m2", shards=[0], config={**CONFIG, "seed": 3})
    with pytest.raises(UserError, match="different config"):
        D.merge([tmp_path / "m2"], tmp_path / "merged")


# ----------------------------------------------------------------------------- window sampler


def _check_windows(batch, hist: D.Histories, k: int, c: int) -> None:
    B = batch["a_t"].shape[0]
    assert batch["obs"].shape == (B, c, 3) and batch["a_tm1"].shape == batch["r_tm1"].shape == (B, c)
    assert [batch[n].dtype for n in ("obs", "a_tm1", "r_tm1", "a_t")] == [torch.long] * 2 + [torch.float32, torch.long]
    obs, a_tm1, r_tm1, a_t = (batch[n].numpy() for n in ("obs", "a_tm1", "r_tm1", "a_t"))
    kept = np.array([t for t in range(hist.T) if (t // H) % k == 0])  # raw steps of the subsampled history
    for b in range(B):
        t, h = obs[b, :, 0] + 256 * obs[b, :, 1], obs[b, 0, 2]  # (c,), learner index
        assert (obs[b, :, 2] == h).all()
        pos = int(np.searchsorted(kept, t[0]))
        np.testing.assert_array_equal(t, kept[pos : pos + c])  # a contiguous run of the kept steps
        np.testing.assert_array_equal(a_t[b], hist.actions[h, t])
        np.testing.assert_array_equal(a_tm1[b, 1:], hist.actions[h, t[:-1]])
        np.testing.assert_array_equal(r_tm1[b, 1:], hist.rewards[h, t[:-1]])
        prev_a, prev_r = (
            (NUM_ACTIONS, 0.0) if pos == 0 else (hist.actions[h, kept[pos - 1]], hist.rewards[h, kept[pos - 1]])
        )
        assert (a_tm1[b, 0], r_tm1[b, 0]) == (prev_a, prev_r)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 12), c=st.integers(1, 44), B=st.integers(1, 9))
def test_sampler_windows(toy, seed, k, c, B):
    ram, lazy, hist = toy
    T_k = -(-11 // k) * H  # 11 episodes of 4 steps
    if c > T_k:
        with pytest.raises(UserError, match=rf"context={c} is longer .* \({T_k} steps with subsample={k}"):
            ram.sample(np.random.default_rng(seed), B, c, k)
        return
    batch = ram.sample(np.random.default_rng(seed), B, c, k)
    _check_windows(batch, hist, k, c)
    again, from_disk = (ds.sample(np.random.default_rng(seed), B, c, k) for ds in (ram, lazy))
    for name, v in batch.items():
        assert v.equal(again[name]) and v.equal(from_disk[name]), name  # deterministic; lazy == in RAM


def test_subsample_keeps_every_kth_episode(toy):
    ram, _, _ = toy
    for k in (1, 2, 3, 5, 11):
        T_k = -(-11 // k) * H
        obs = ram.sample(np.random.default_rng(k), 4, T_k, k)["obs"].numpy()  # windows = whole kept histories
        episodes = (obs[..., 0] + 256 * obs[..., 1]) // H  # (B, T_k)
        assert (episodes == np.repeat(np.arange(0, 11, k), H)).all()


def test_sampler_covers_history_starts_and_all_histories(toy):
    ram, _, _ = toy
    batch = ram.sample(np.random.default_rng(1), 2000, 40, 1)  # 5 possible starts
    starts = batch["obs"][:, 0, 0].numpy()
    assert set(starts) == {0, 1, 2, 3, 4} and set(batch["obs"][:, 0, 2].numpy()) == set(range(6))
    assert (batch["a_tm1"][starts == 0, 0] == NUM_ACTIONS).all()
    assert not batch["a_t"].equal(ram.sample(np.random.default_rng(2), 2000, 40, 1)["a_t"])


def test_sampler_bad_arguments(toy):
    ram, _, _ = toy
    with pytest.raises(UserError, match="context=45 is longer"):
        ram.sample(np.random.default_rng(0), 2, 45)
    with pytest.raises(UserError, match="must be >= 1"):
        ram.sample(np.random.default_rng(0), 2, 4, subsample=0)


def _child_sample(ds: D.Dataset, q) -> None:
    q.put({k: v.numpy() for k, v in ds.sample(np.random.default_rng(3), 8, 20, 2).items()})


def test_lazy_dataset_survives_fork(toy):
    ram, lazy, _ = toy
    lazy.sample(np.random.default_rng(0), 4, 8)  # parent opens its HDF5 handles before forking
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_sample, args=(lazy, q))
    p.start()
    got = q.get(timeout=60)
    p.join(timeout=60)
    want = ram.sample(np.random.default_rng(3), 8, 20, 2)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v.numpy())
    lazy.sample(np.random.default_rng(0), 4, 8)  # parent handles still work after the child exits
