"""Dataset format, integrity checks, resume/merge (`algodistill.dataset`), and the reader and window sampler
(`algodistill.sampler`)."""

from __future__ import annotations

import dataclasses
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
from algodistill.jsonio import canonical_hash
from algodistill.sampler import Dataset, Windows, kept_steps

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
    return Dataset.open(out), Dataset.open(out, max_ram_bytes=0), hist


# ----------------------------------------------------------------------------- format and round trip


@pytest.mark.parametrize("float_rewards", [False, True])
def test_round_trip_in_ram_and_lazy(tmp_path, float_rewards):
    hist = write_dataset(tmp_path, float_rewards=float_rewards)
    for ds in (Dataset.open(tmp_path), Dataset.open(tmp_path, max_ram_bytes=0)):
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
    assert m["config_hash"] == canonical_hash(CONFIG) == D.Manifest.load(tmp_path).config_hash
    assert m["num_histories"] == 6 and m["T"] == 44
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
    with pytest.raises(ValueError, match=r"obs \(N, T, \*obs_shape\)"):
        D.Histories(h.obs[:, :, 0], h.actions, h.rewards, h.dones, h.task_ids)  # (N, T): no observation axis
    with pytest.raises(ValueError, match=r"Histories\.obs: expected \(2, 8, 3\) uint8, got \(2, 7, 3\)"):
        D.Histories(h.obs[:, :-1], h.actions, h.rewards, h.dones, h.task_ids)  # T differs from the actions'
    assert D.Histories.concat([h, h]).num_histories == 4
    # Any observation shape and dtype: images, or float vectors.
    image = np.zeros((2, 8, 4, 4, 3), dtype=np.uint8)
    assert D.Histories(image, h.actions, h.rewards, h.dones, h.task_ids).obs.shape == (2, 8, 4, 4, 3)
    assert D.Histories(h.obs.astype(np.float32), h.actions, h.rewards, h.dones, h.task_ids).obs.dtype == np.float32


@pytest.mark.parametrize(("obs_shape", "dtype"), [((2, 3, 3), np.uint8), ((3,), np.float32)])
def test_other_observations_round_trip(tmp_path, obs_shape, dtype):
    """Image-like or non-uint8 observations are stored and read back as they are."""
    n, T = 3, 8
    h = make_histories(n, T)
    obs = np.random.default_rng(0).integers(0, 256, (n, T, *obs_shape)).astype(dtype)
    h = D.Histories(obs, h.actions, h.rewards, h.dones, h.task_ids)
    spec = {**SPEC, "obs_dim": int(np.prod(obs_shape))}
    D.write_shard(tmp_path, 0, h, learner_start=0, num_histories=n, meta={**META, "spec": spec}, config=CONFIG)
    D.finalize(tmp_path)
    for ds in (Dataset.open(tmp_path), Dataset.open(tmp_path, max_ram_bytes=0)):
        got = ds.histories(range(n)).obs
        assert got.dtype == dtype and got.shape == (n, T, *obs_shape)
        np.testing.assert_array_equal(got, obs)
        w = ds.sample(np.random.default_rng(0), 5, 6)
        assert w.obs.shape == (5, 6, *obs_shape) and w.obs.dtype == torch.from_numpy(obs).dtype
        ds.close()
    # The spec's obs_dim must count every component of an observation.
    bad = {**META, "spec": {**spec, "obs_dim": spec["obs_dim"] + 1}}
    with pytest.raises(ValueError, match="do not fit the spec"):
        D.write_shard(tmp_path / "x", 0, h, learner_start=0, num_histories=n, meta=bad, config=CONFIG)


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
        Dataset.open(tmp_path)
    # Without the sha256 pass, fletcher32 still refuses the chunk rather than returning wrong data.
    with pytest.raises(UserError, match=r"shard-00001\.h5 cannot be read"):
        Dataset.open(tmp_path, verify=False)
    lazy = Dataset.open(tmp_path, verify=False, max_ram_bytes=0)
    with pytest.raises(UserError, match=r"shard-00001\.h5 cannot be read"):
        lazy.histories([4])  # chunk 0 of shard 1 = its first learner


def test_truncated_shard_is_caught(tmp_path):
    write_dataset(tmp_path)
    data = (tmp_path / "shard-00000.h5").read_bytes()
    (tmp_path / "shard-00000.h5").write_bytes(data[: len(data) // 2])
    assert D.verify(tmp_path) == ["shard-00000.h5"]
    with pytest.raises(UserError, match=r"shard-00000\.h5 does not match its sha256"):
        Dataset.open(tmp_path)
    with pytest.raises(UserError, match=r"shard-00000\.h5 cannot be read"):
        Dataset.open(tmp_path, verify=False)


def test_edited_manifest_sha_is_caught(tmp_path):
    write_dataset(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["shards"][0]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"shard-00000\.h5 does not match its sha256"):
        Dataset.open(tmp_path)


def test_missing_shard_is_reported(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "shard-00000.h5").unlink()
    assert D.verify(tmp_path) == ["shard-00000.h5"]
    with pytest.raises(UserError, match=r"shard-00000\.h5 is missing; re-run the same"):
        Dataset.open(tmp_path)
    assert set(D.completed_shards(tmp_path, CONFIG)) == {1}  # resume regenerates only shard 0


def test_schema_version_mismatch(tmp_path):
    write_dataset(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["schema_version"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="schema version 999"):
        Dataset.open(tmp_path)


def test_open_without_dataset(tmp_path):
    with pytest.raises(UserError, match="holds no dataset"):
        Dataset.open(tmp_path)
    write_dataset(tmp_path, shards=[0])
    with pytest.raises(UserError, match="unfinished dataset"):
        Dataset.open(tmp_path)


def test_different_config_is_refused_and_nothing_changes(tmp_path):
    write_dataset(tmp_path)
    before = {p.name: sha256_file(p) for p in tmp_path.iterdir()}
    other = {**CONFIG, "seed": 1}
    with pytest.raises(
        UserError,
        match=r"holds a dataset with a different config \(field seed: 0 there, 1 requested\); "
        r"choose another --out or delete it$",
    ):
        write_dataset(tmp_path, config=other)
    with pytest.raises(UserError, match=r"field source\.lr: 0\.1 there, 0\.2 requested"):
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
    a, b = Dataset.open(tmp_path / "whole"), Dataset.open(tmp_path / "merged")
    for lead in (0, 1):
        wa, wb = (ds.sample(np.random.default_rng(0), 16, 12, 2, lead=lead) for ds in (a, b))
        for k, v in _fields(wa).items():
            assert v.equal(_fields(wb)[k]), k
    write_dataset(tmp_path / "m2", shards=[0], config={**CONFIG, "seed": 3})
    with pytest.raises(UserError, match="different config"):
        D.merge([tmp_path / "m2"], tmp_path / "merged")


# ----------------------------------------------------------------------------- window sampler


def _fields(w: Windows) -> dict[str, torch.Tensor]:
    return {f.name: getattr(w, f.name) for f in dataclasses.fields(w)}


def _check_windows(w: Windows, hist: D.Histories, k: int, length: int, lead: int, seed: int) -> None:
    """Each window: the history and first in-history step that `default_rng(seed)` draws (in that order),
    then a contiguous run of that history's kept steps, padded (all zeros) only before the history's start."""
    B = w.actions.shape[0]
    assert w.obs.shape == (B, length, 3)
    assert w.actions.shape == w.rewards.shape == w.dones.shape == w.pad.shape == (B, length)
    dtypes = [x.dtype for x in (w.obs, w.actions, w.rewards, w.dones, w.pad)]
    assert dtypes == [torch.uint8, torch.int64, torch.float32, torch.bool, torch.bool]
    obs, actions, rewards, dones, pad = (x.numpy() for x in (w.obs, w.actions, w.rewards, w.dones, w.pad))
    kept = np.array([t for t in range(hist.T) if (t // H) % k == 0])  # raw steps of the subsampled history
    span = length - lead  # steps that must lie inside the history
    g = np.random.default_rng(seed)
    h_drawn = g.integers(0, hist.num_histories, B)
    s_drawn = g.integers(0, len(kept) - span + 1, B)
    for b in range(B):
        n_pad = int(pad[b].sum())
        assert n_pad <= lead and not pad[b, n_pad:].any()  # padding is a prefix inside the lead
        for x in (obs, actions, rewards, dones):
            assert not x[b, :n_pad].any()  # every field is 0 where the window precedes its history
        o = obs[b, n_pad:].astype(np.int64)  # uint8 as stored: widen before decoding t
        t, h = o[:, 0] + 256 * o[:, 1], o[0, 2]  # (L - n_pad,), learner index
        assert (o[:, 2] == h).all()
        pos = int(np.searchsorted(kept, t[0]))
        np.testing.assert_array_equal(t, kept[pos : pos + length - n_pad])  # a contiguous run of the kept steps
        np.testing.assert_array_equal(actions[b, n_pad:], hist.actions[h, t])
        np.testing.assert_array_equal(rewards[b, n_pad:], hist.rewards[h, t])
        np.testing.assert_array_equal(dones[b, n_pad:], hist.dones[h, t])
        # The window starts `lead` steps before its drawn start s: padding exactly where that precedes step 0.
        assert (h, pos, n_pad) == (h_drawn[b], max(s_drawn[b] - lead, 0), max(lead - s_drawn[b], 0))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 12),
    c=st.integers(1, 44),
    lead=st.integers(0, 3),  # less than an episode; longer leads: test_lazy_equals_in_ram_for_every_start_...
    B=st.integers(1, 9),
)
def test_sampler_windows(toy, seed, k, c, lead, B):
    ram, lazy, hist = toy
    T_k = -(-11 // k) * H  # 11 episodes of 4 steps
    length = c + lead  # c steps inside the history, `lead` steps before them
    if c > T_k:
        msg = rf"no windows of {length} steps \(lead {lead}\) in histories of {T_k} kept steps \(subsample={k}\)"
        for ds in (ram, lazy):
            with pytest.raises(ValueError, match=msg):
                ds.sample(np.random.default_rng(seed), B, length, k, lead)
        return
    w = ram.sample(np.random.default_rng(seed), B, length, k, lead)
    _check_windows(w, hist, k, length, lead, seed)
    again, from_disk = (ds.sample(np.random.default_rng(seed), B, length, k, lead) for ds in (ram, lazy))
    for name, v in _fields(w).items():
        assert v.equal(_fields(again)[name]) and v.equal(_fields(from_disk)[name]), name  # deterministic; lazy == RAM


def test_kept_steps_are_whole_kept_episodes(toy):
    ram, lazy, _ = toy
    # 11 episodes of 4 steps; subsample k keeps episodes 0, k, 2k, ...: ceil(11 / k) of them.
    want = {1: 44, 2: 24, 3: 16, 5: 12, 11: 4, 12: 4}
    assert {k: kept_steps(44, H, k) for k in want} == want
    assert {k: ram.kept_steps(k) for k in want} == {k: lazy.kept_steps(k) for k in want} == want


def test_subsample_keeps_every_kth_episode(toy):
    ram, _, _ = toy
    for k in (1, 2, 3, 5, 11):
        T_k = -(-11 // k) * H
        for lead in (0, 1):  # windows = whole kept histories (with lead 1, after one step of padding)
            w = ram.sample(np.random.default_rng(k), 4, T_k + lead, k, lead)
            assert w.pad[:, :lead].all() and not w.pad[:, lead:].any()
            obs = w.obs[:, lead:].numpy().astype(np.int64)
            episodes = (obs[..., 0] + 256 * obs[..., 1]) // H  # (B, T_k)
            assert (episodes == np.repeat(np.arange(0, 11, k), H)).all()


def test_sampler_covers_history_starts_and_all_histories(toy):
    ram, _, _ = toy
    for lead in (0, 1):
        w = ram.sample(np.random.default_rng(1), 2000, 40 + lead, 1, lead)  # 40 steps inside: 5 possible starts
        starts = w.obs[:, lead, 0].numpy()
        assert set(starts) == {0, 1, 2, 3, 4} and set(w.obs[:, lead, 2].numpy()) == set(range(6))
        # The lead step is padding exactly for the windows that begin their history.
        np.testing.assert_array_equal(w.pad[:, :lead].numpy().any(1), (starts == 0) & (lead == 1))
        assert not w.pad[:, lead:].any()
        assert not w.actions.equal(ram.sample(np.random.default_rng(2), 2000, 40 + lead, 1, lead).actions)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2, 45), r"no windows of 45 steps \(lead 0\) in histories of 44 kept steps \(subsample=1\); batch_size=2"),
        ((2, 46, 1, 1), r"no windows of 46 steps \(lead 1\) in histories of 44 kept steps"),
        ((2, 25, 2), r"no windows of 25 steps \(lead 0\) in histories of 24 kept steps \(subsample=2\)"),
        ((0, 4), r"batch_size=0"),
        ((2, 4, 0), r"subsample=0\)"),
        ((2, 4, 1, 4), r"no windows of 4 steps \(lead 4\)"),
        ((2, 4, 1, -1), r"no windows of 4 steps \(lead -1\)"),
        ((2, 0), r"no windows of 0 steps \(lead 0\)"),
    ],
)
def test_sampler_bad_arguments(toy, args, message):
    ram, lazy, _ = toy
    for ds in (ram, lazy):
        with pytest.raises(ValueError, match=message):  # a caller's bug: the trainer checks the user's context
            ds.sample(np.random.default_rng(0), *args)


def test_sampler_bound_is_on_the_steps_inside_the_history(toy):
    ram, _, _ = toy
    w = ram.sample(np.random.default_rng(0), 3, 45, lead=1)  # 44 steps inside, the lead step before them
    assert w.pad[:, 0].all() and not w.pad[:, 1:].any()
    np.testing.assert_array_equal(w.obs[:, 1:, 0].numpy(), np.tile(np.arange(44), (3, 1)))


def test_a_part_of_the_batch_and_to(toy):
    ram, lazy, _ = toy
    w = ram.sample(np.random.default_rng(5), 6, 9, 1, lead=1)
    for ds in (ram, lazy):  # one DDP rank's share: the same draws, only its rows read
        share = ds.sample(np.random.default_rng(5), 6, 9, 1, lead=1, part=slice(2, 5))
        for name, v in _fields(share).items():
            assert v.equal(_fields(w)[name][2:5]), name
    moved = w.to(torch.device("cpu"))
    for name, v in _fields(moved).items():
        assert v.device.type == "cpu" and v.dtype == _fields(w)[name].dtype and v.equal(_fields(w)[name]), name


def _child_sample(ds: Dataset, q) -> None:
    q.put({k: v.numpy() for k, v in _fields(ds.sample(np.random.default_rng(3), 8, 21, 2, lead=1)).items()})


def test_lazy_dataset_survives_fork(toy):
    ram, lazy, _ = toy
    lazy.sample(np.random.default_rng(0), 4, 8)  # parent opens its HDF5 handles before forking
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_sample, args=(lazy, q))
    p.start()
    got = q.get(timeout=60)
    p.join(timeout=60)
    want = _fields(ram.sample(np.random.default_rng(3), 8, 21, 2, lead=1))
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v.numpy())
    lazy.sample(np.random.default_rng(0), 4, 8)  # parent handles still work after the child exits


class _Draws:
    """Stands in for a numpy Generator: hands out the given draws (the histories, then the starts) in order."""

    def __init__(self, *draws: list[int]) -> None:
        self._draws = [np.array(d) for d in draws]

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        d = self._draws.pop(0)
        assert d.shape == (size,) and ((low <= d) & (d < high)).all()
        return d


def test_lazy_equals_in_ram_for_every_start_lead_and_subsample(toy):
    # Every start of one history, for leads up to two episodes: the random test draws few of these windows.
    # (A lazy read once took a window whose padding repeats exactly filled a subsample gap for contiguous.)
    ram, lazy, _ = toy
    for k in (1, 2, 3):
        for lead in range(9):
            for span in (1, 2, 5, 8):
                for s in range(ram.kept_steps(k) - span + 1):
                    a, b = (ds.sample(_Draws([2], [s]), 1, span + lead, k, lead) for ds in (ram, lazy))
                    for name, v in _fields(a).items():
                        assert v.equal(_fields(b)[name]), (k, lead, span, s, name)
