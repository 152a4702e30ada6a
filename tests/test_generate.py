"""`algodistill generate` and `inspect`: determinism across shards/workers, resume, bad input."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from algodistill.datasummary import InspectConfig, block_curve, inspect
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.generate import GenerateConfig, generate
from algodistill.jsonio import canonical_hash
from algodistill.sampler import Dataset
from algodistill.sources import NoiseConfig, SourceConfig, source_config

FIELDS = ("obs", "actions", "rewards", "dones", "task_ids")


def content_sha(path: Path) -> str:
    """sha256 of the dataset's contents (not of its files, whose layout depends on the shard size)."""
    with Dataset.open(path) as ds:
        h = ds.histories(np.arange(ds.num_histories))
    digest = hashlib.sha256()
    for f in FIELDS:
        digest.update(np.ascontiguousarray(getattr(h, f)).tobytes())
    return digest.hexdigest()


def cfg(tmp_path: Path, name: str, **kw) -> GenerateConfig:
    base = dict(source="qlearning", histories=10, steps=200, shard_size=4, quiet=True)
    return GenerateConfig("darkroom", out=tmp_path / name, **(base | kw))


def test_same_bytes_whatever_the_shard_size(tmp_path):
    a = generate(cfg(tmp_path, "a", shard_size=10))
    b = generate(cfg(tmp_path, "b", shard_size=3))
    assert content_sha(a) == content_sha(b)
    assert content_sha(generate(cfg(tmp_path, "c", seed=1))) != content_sha(a)


@pytest.mark.slow
def test_same_bytes_whatever_the_worker_count(tmp_path):
    one = generate(cfg(tmp_path, "one", source="a2c", histories=6, shard_size=2, steps=100))
    two = generate(cfg(tmp_path, "two", source="a2c", histories=6, shard_size=2, steps=100, workers=2))
    assert content_sha(one) == content_sha(two)


def test_shards_split_across_machines_merge_into_the_same_dataset(tmp_path):
    whole = generate(cfg(tmp_path, "whole"))
    split = cfg(tmp_path, "split")
    generate(GenerateConfig(**{**split.__dict__, "shard": "0/2"}))
    assert not (split.out_dir / "manifest.json").exists()  # shard 1 is missing: no manifest yet
    generate(GenerateConfig(**{**split.__dict__, "shard": "1/2"}))
    assert content_sha(split.out_dir) == content_sha(whole)


def test_resume_regenerates_only_missing_or_corrupt_shards(tmp_path):
    c = cfg(tmp_path, "d")
    out = generate(c)
    reference = content_sha(out)
    kept = out / "shard-00000.h5"
    mtime = kept.stat().st_mtime_ns
    (out / "shard-00001.h5").unlink()
    corrupt = out / "shard-00002.h5"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(UserError, match="shard-0000"):
        Dataset.open(out)
    generate(c)
    assert kept.stat().st_mtime_ns == mtime  # a good shard is not rewritten
    assert content_sha(out) == reference


def test_another_config_at_the_output_is_refused_and_kept(tmp_path):
    out = generate(cfg(tmp_path, "e"))
    before = content_sha(out)
    with pytest.raises(UserError, match="different config"):
        generate(cfg(tmp_path, "e", seed=7))
    assert content_sha(out) == before


def test_histories_spread_over_the_training_tasks(tmp_path):
    out = generate(cfg(tmp_path, "f", histories=70, steps=20, shard_size=70))
    with Dataset.open(out) as ds:
        tasks = ds.task_ids
    train = get_family("darkroom").split("train")
    assert set(tasks) == set(train)  # 70 histories cover all 65 goals, 5 of them twice
    assert np.bincount(tasks).max() == 2


def test_manifest_records_the_spec_and_the_sources_hyperparameters(tmp_path):
    c = cfg(
        tmp_path, "h", source="noise", histories=2, steps=20, sources=SourceConfig(noise=NoiseConfig(eps_final=0.3))
    )
    assert c.data_config() == {
        "env": "darkroom",
        "source": "noise",
        "histories": 2,
        "steps": 20,
        "split": "train",
        "seed": 0,
        "shard_size": 4,
        "source_config": source_config("noise", c.sources),
    }
    assert c.data_config()["source_config"]["eps_final"] == 0.3
    # Only the chosen source's settings count: another source's do not change the data config.
    q = cfg(tmp_path, "h", histories=2, steps=20)
    assert GenerateConfig(**{**q.__dict__, "sources": c.sources}).data_config() == q.data_config()
    assert cfg(tmp_path, "h", source="expert", histories=2, steps=20).data_config()["source_config"] == {}
    with Dataset.open(generate(c)) as ds:
        assert ds.spec == get_family("darkroom").spec.record()
        assert ds.config == c.data_config() and ds.manifest.config_hash == canonical_hash(c.data_config())


def test_inspect_prints_the_learning_curve(tmp_path, capsys):
    out = generate(cfg(tmp_path, "g", histories=8, steps=2000, shard_size=8))
    inspect(InspectConfig(out, blocks=5, png=tmp_path / "curve.png"))
    text = capsys.readouterr().out
    assert "8 histories x 2000 steps (100 episodes)" in text and "qlearning" in text
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    starts, means = block_curve(np.arange(12.0).reshape(2, 6), 3)
    np.testing.assert_array_equal(starts, [0, 2, 4])
    np.testing.assert_allclose(means, [(0 + 1 + 6 + 7) / 4, (2 + 3 + 8 + 9) / 4, (4 + 5 + 10 + 11) / 4])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["darkroom", "--source", "ucb"], "source='ucb' does not fit env='darkroom'"),
        (["darkroom", "--steps", "10"], "steps=10 is not a whole number of darkroom episodes"),
        (["bandits"], "env='bandits' is unknown"),
        (["darkroom", "--shard", "2/2"], "shard='2/2' is malformed"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "never"
    r = subprocess.run(
        [sys.executable, "-m", "algodistill.cli", "generate", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert not out.exists()


def test_tasks_runs_the_learners_on_a_fixed_subset_of_the_split(tmp_path):
    from algodistill.generate import learner_tasks

    c = cfg(tmp_path, "t", histories=10, steps=20, tasks=3)
    tasks = learner_tasks(c)
    assert len(set(tasks)) == 3 and set(tasks) <= set(get_family("darkroom").split("train"))
    assert (learner_tasks(cfg(tmp_path, "u", histories=10, steps=20, tasks=3, seed=7)) == tasks).all()
    assert c.data_config()["tasks"] == 3 and "tasks" not in cfg(tmp_path, "v", histories=2, steps=20).data_config()
    with pytest.raises(UserError, match="tasks=66 is outside the 65 tasks of split 'train': choose 1 to 65"):
        cfg(tmp_path, "w", tasks=66)
