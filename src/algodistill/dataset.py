"""Learning-history datasets on disk: HDF5 shards, a manifest with every shard's sha256, resume and merge.

A dataset is a directory (format in docs/dataset.md):

    manifest.json       what the dataset is (config + hash, meta, N, T) and every shard's sha256
    shard-00000.h5      histories [start, end): obs, actions, rewards, dones, task_ids
    shard-00000.json    the shard's manifest fragment, written when the shard is complete

Writers (`algodistill generate`): `check_config` -> `completed_shards` (resume) -> `write_shard` for the
rest -> `finalize` (fragments -> manifest.json). Shards made on several machines are combined by `merge`.
Readers open a dataset through `algodistill.sampler.Dataset`, which checks it with `Manifest.load` and
`shard_problem` before reading a byte.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from algodistill import __version__
from algodistill.atomic import TMP_MARKER, atomic_path, atomic_write_json, sha256_file
from algodistill.errors import UserError
from algodistill.jsonio import canonical_hash, first_difference, read_json

SCHEMA_VERSION = 1
"""Bump when the on-disk layout changes; readers refuse other versions."""
MANIFEST = "manifest.json"
CHUNK_T = 4096  # steps per chunk: one 80..4k-step window touches 1-2 chunks per field (XLand-100B uses 4096)
COMPRESSION, COMPRESSION_LEVEL = "gzip", 4  # see docs/dataset.md for the size/speed measurements
FIELDS = ("obs", "actions", "rewards", "dones")
"""The per-step arrays of a shard, each (n, T, ...)."""
REGENERATE = "re-run the same `algodistill generate` command to regenerate it"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.json$")


# ----------------------------------------------------------------------------- histories in memory


@dataclass(frozen=True)
class Histories:
    """N learning histories of T steps each (docs/design.md, "Time indexing and histories")."""

    obs: np.ndarray  # (N, T, *obs_shape) in the env's obs_dtype (uint8), o_t; or its stored form (EnvSpec.stored_shape)
    actions: np.ndarray  # (N, T) uint8, a_t
    rewards: np.ndarray  # (N, T) float32, r_t
    dones: np.ndarray  # (N, T) bool, True on the last step of each episode
    task_ids: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        if self.actions.ndim != 2 or self.obs.ndim < 3:
            raise ValueError(
                f"Histories: actions must be (N, T), obs (N, T, *obs_shape); got {self.actions.shape}, {self.obs.shape}"
            )
        n, t = self.actions.shape
        want: dict[str, tuple[tuple[int, ...], np.dtype]] = {
            "obs": ((n, t, *self.obs.shape[2:]), self.obs.dtype),  # any dtype: the env's obs_dtype
            "actions": ((n, t), np.dtype(np.uint8)),
            "rewards": ((n, t), np.dtype(np.float32)),
            "dones": ((n, t), np.dtype(np.bool_)),
            "task_ids": ((n,), np.dtype(np.int64)),
        }
        for name, (shape, dtype) in want.items():
            a = getattr(self, name)
            if a.shape != shape or a.dtype != dtype:
                raise ValueError(f"Histories.{name}: expected {shape} {dtype}, got {a.shape} {a.dtype}")

    @property
    def num_histories(self) -> int:
        return int(self.actions.shape[0])

    @property
    def T(self) -> int:
        return int(self.actions.shape[1])

    @classmethod
    def concat(cls, parts: Sequence[Histories]) -> Histories:
        """Stack histories along N (all parts must share T and the observation shape)."""
        fields = ("obs", "actions", "rewards", "dones", "task_ids")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


# ----------------------------------------------------------------------------- manifest and config


@dataclass(frozen=True)
class ShardRecord:
    """One shard file: learners [start, end) and the sha256 of its bytes."""

    file: str
    start: int
    end: int
    sha256: str


@dataclass
class Manifest:
    """Contents of manifest.json: the dataset's identity and every shard with its sha256."""

    config: dict[str, Any]  # the resolved generate config that determines the bytes
    meta: dict[str, Any]  # env spec (`EnvSpec.record`), source, seed, split, ... (JSON-able)
    num_histories: int
    T: int
    shards: list[ShardRecord]
    schema_version: int = SCHEMA_VERSION
    package_version: str = __version__

    @property
    def config_hash(self) -> str:
        return canonical_hash(self.config)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write `directory/manifest.json` atomically."""
        d = {**asdict(self), "config_hash": self.config_hash}
        atomic_write_json(Path(directory) / MANIFEST, d)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Manifest:
        """Read `directory/manifest.json`; UserError if missing, unreadable or of another schema version."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            if _fragments(directory):  # shards but no manifest: generation did not finish
                raise UserError(
                    f"{directory} holds an unfinished dataset (no {MANIFEST}); re-run the same "
                    "`algodistill generate` command to finish it"
                )
            raise UserError(
                f"{directory} holds no dataset ({MANIFEST} not found); generate one with "
                f"`algodistill generate --out {directory}`"
            )
        d = read_json(path, REGENERATE)
        _check_schema(d, path, f"{REGENERATE} with this version")
        try:
            m = cls(
                d["config"],
                d["meta"],
                d["num_histories"],
                d["T"],
                [ShardRecord(**r) for r in d["shards"]],
                d["schema_version"],
                d["package_version"],
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"{path} is malformed (no field {e}); {REGENERATE}") from None
        if d.get("config_hash") != m.config_hash:
            raise UserError(f"{path}: config_hash does not match its config (edited by hand?); {REGENERATE}")
        return m


def _check_schema(record: dict[str, Any], path: Path, fix: str) -> None:
    """UserError unless a manifest or fragment was written with this schema version."""
    if record.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{path} has dataset schema version {record.get('schema_version')} but algodistill "
            f"{__version__} reads version {SCHEMA_VERSION}; {fix}"
        )


def _fragments(directory: str | os.PathLike[str]) -> dict[int, Path]:
    """Shard index -> path of every `shard-XXXXX.json` fragment in a directory."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    return {int(m[1]): d / m[0] for p in d.iterdir() if (m := _SHARD_RE.match(p.name))}


def shard_problem(directory: Path, rec: ShardRecord) -> str | None:
    """What is wrong with a shard file ("is missing", "does not match its sha256"), or None if it is intact."""
    path = directory / rec.file
    if not path.is_file():
        return "is missing"
    if sha256_file(path) != rec.sha256:
        return f"does not match its sha256 in {MANIFEST} (corrupt)"
    return None


def _intact(directory: Path, rec: ShardRecord) -> bool:
    return shard_problem(directory, rec) is None


def shard_file(shard_index: int) -> str:
    """File name of shard `shard_index`, e.g. shard-00003.h5."""
    return f"shard-{shard_index:05d}.h5"


def check_config(out: str | os.PathLike[str], config: dict[str, Any]) -> None:
    """UserError if `out` holds a dataset (manifest or shard fragments) written with a different config.

    Called before writing anything, so an existing dataset is never overwritten by another config.
    Reads the manifest, or else one fragment: every fragment was written after this same check
    (and `finalize` compares them all).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out")
    fragments = sorted(_fragments(out).items())
    found = [out / MANIFEST] if (out / MANIFEST).is_file() else [p for _, p in fragments[:1]]
    for path in found:
        d = read_json(path, REGENERATE)
        _check_schema(d, path, "choose another --out or delete it")
        if (diff := first_difference(d.get("config"), config)) is not None:
            name, old, new = diff
            raise UserError(
                f"{out} holds a dataset with a different config (field {name}: {old!r} there, {new!r} "
                "requested); choose another --out or delete it"
            )


# ----------------------------------------------------------------------------- writing shards


def _compact_rewards(r: np.ndarray) -> np.ndarray:
    """Integer-valued rewards in the smallest integer dtype that holds them exactly, else unchanged."""
    if r.size and np.isfinite(r).all() and (r == np.round(r)).all():
        for dt in (np.uint8, np.int8, np.int16, np.int32):
            if np.iinfo(dt).min <= r.min() and r.max() <= np.iinfo(dt).max:
                return r.astype(dt)
    return r


def write_shard(
    out: str | os.PathLike[str],
    shard_index: int,
    histories: Histories,
    *,
    learner_start: int,
    num_histories: int,
    meta: dict[str, Any],
    config: dict[str, Any],
) -> ShardRecord:
    """Write learners [learner_start, learner_start + n) as shard `shard_index`, then its fragment.

    The HDF5 file is written under a temporary name and renamed into place only after it is closed,
    and the fragment `shard-XXXXX.json` (config, meta, record with sha256) only after that: a killed
    writer leaves no file at the final path, and a shard without a fragment counts as missing.
    `meta["spec"]` must be the env spec as a dict (`EnvSpec.record`: obs_dim, num_actions, episode_length);
    where it has a `stored_shape`, the histories' obs are in that stored form.
    """
    out = Path(out)
    check_config(out, config)
    spec, h = meta["spec"], histories
    start, end = learner_start, learner_start + h.num_histories
    if not 0 <= start < end <= num_histories:
        raise ValueError(f"learners [{start}, {end}) are outside [0, {num_histories})")
    obs_dim = spec["obs_dim"] if spec.get("stored_shape") is None else int(np.prod(spec["stored_shape"]))
    if (
        int(np.prod(h.obs.shape[2:])) != obs_dim
        or h.T == 0
        or h.T % spec["episode_length"]
        or h.actions.max() >= spec["num_actions"]
    ):
        raise ValueError(
            f"histories do not fit the spec: obs {h.obs.shape[2:]}, T {h.T}, max action {h.actions.max()} vs {spec}"
        )
    if not (h.dones == ((np.arange(h.T) + 1) % spec["episode_length"] == 0)).all():
        raise ValueError(f"dones must mark the end of every episode of {spec['episode_length']} steps, and only that")
    meta_json, config_json = json.dumps(meta), json.dumps(config)  # fail before writing if not JSON-able
    out.mkdir(parents=True, exist_ok=True)
    name = shard_file(shard_index)
    ct = min(CHUNK_T, h.T)
    with atomic_path(out / name) as tmp, h5py.File(tmp, "w") as f:
        # fletcher32: a flipped byte fails the read of its chunk instead of returning wrong data.
        kw = dict(compression=COMPRESSION, compression_opts=COMPRESSION_LEVEL, fletcher32=True)
        f.create_dataset("obs", data=h.obs, chunks=(1, ct, *h.obs.shape[2:]), **kw)  # (n, T, *obs_shape)
        f.create_dataset("actions", data=h.actions, chunks=(1, ct), **kw)  # (n, T) uint8
        rewards = f.create_dataset("rewards", data=_compact_rewards(h.rewards), chunks=(1, ct), **kw)
        rewards.attrs["logical_dtype"] = "float32"  # integer storage is exact; readers cast back
        f.create_dataset("dones", data=h.dones, chunks=(1, ct), **kw)  # (n, T) bool
        f.create_dataset("task_ids", data=h.task_ids, chunks=(h.num_histories,), fletcher32=True)  # (n,) int64
        f.attrs.update(
            schema_version=SCHEMA_VERSION,
            package_version=__version__,
            shard_index=shard_index,
            learner_start=start,
            learner_end=end,
            num_histories=num_histories,
            meta=meta_json,
            config=config_json,
        )
    record = ShardRecord(name, start, end, sha256_file(out / name))
    atomic_write_json(
        out / name.replace(".h5", ".json"),
        {
            "schema_version": SCHEMA_VERSION,
            "package_version": __version__,
            "config_hash": canonical_hash(config),
            "config": config,
            "meta": meta,
            "num_histories": num_histories,
            "T": h.T,
            "shard": asdict(record),
        },
    )
    return record


def completed_shards(out: str | os.PathLike[str], config: dict[str, Any]) -> dict[int, ShardRecord]:
    """Shards of `out` that are complete and intact (fragment present, sha256 matches): skip these on resume."""
    check_config(out, config)
    records = {i: ShardRecord(**read_json(path, REGENERATE)["shard"]) for i, path in _fragments(out).items()}
    return {i: rec for i, rec in records.items() if _intact(Path(out), rec)}


def finalize(out: str | os.PathLike[str]) -> Manifest:
    """Combine the shard fragments of `out` into manifest.json; UserError if shards are missing or corrupt."""
    out = Path(out)
    frags = [read_json(p, REGENERATE) for _, p in sorted(_fragments(out).items())]
    if not frags:
        raise UserError(f"{out} has no finished shards; run `algodistill generate --out {out}` first")
    first = frags[0]
    identity = ("config", "meta", "num_histories", "T")
    for f in frags[1:]:
        if (diff := first_difference({k: first[k] for k in identity}, {k: f[k] for k in identity})) is not None:
            raise UserError(
                f"{out}: shard {f['shard']['file']} was written with different settings ({diff[0]}: "
                f"{diff[1]!r} vs {diff[2]!r}); delete it and re-run generate"
            )
    records = sorted((ShardRecord(**f["shard"]) for f in frags), key=lambda r: r.start)
    covered, n = 0, first["num_histories"]
    for r in records:
        if r.start < covered:
            raise UserError(
                f"{out}: shard {r.file} overlaps learners before {covered} (shards of two different "
                "--shard layouts?); delete the stray shard and its .json and finalize again"
            )
        if r.start > covered:
            break
        covered = r.end
    if covered != n:
        raise UserError(
            f"{out} is incomplete: learners [{covered}, ...) of {n} have no shard; run the missing "
            "--shard parts (or the same `algodistill generate` command) and finalize again"
        )
    if bad := [r.file for r in records if not _intact(out, r)]:
        raise UserError(f"{out}: shards {bad} are missing or corrupt; {REGENERATE}")
    manifest = Manifest(first["config"], first["meta"], n, first["T"], records)
    manifest.save(out)
    for p in out.glob(f"shard-*{TMP_MARKER}*"):  # leftovers of killed writers; the dataset is complete now
        p.unlink(missing_ok=True)
    return manifest


def merge(srcs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Manifest:
    """Copy the finished shards of several directories (e.g. `--shard i/n` runs) into `out` and finalize it."""
    out = Path(out)
    for src in map(Path, srcs):
        for path in _fragments(src).values():
            frag = read_json(path, REGENERATE)
            check_config(out, frag["config"])
            rec = ShardRecord(**frag["shard"])
            out.mkdir(parents=True, exist_ok=True)
            if not _intact(out, rec):
                with atomic_path(out / rec.file) as tmp:  # the shard first, then its fragment (as write_shard)
                    shutil.copyfile(src / rec.file, tmp)
            atomic_write_json(out / path.name, frag)
    return finalize(out)


def verify(path: str | os.PathLike[str]) -> list[str]:
    """File names of the manifest's shards that are missing or whose sha256 differs (empty: all good)."""
    return [r.file for r in Manifest.load(path).shards if not _intact(Path(path), r)]
