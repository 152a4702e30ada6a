"""Learning-history datasets: HDF5 shards, a manifest, verify-on-load, and the window sampler.

A dataset is a directory (format in docs/dataset.md):

    manifest.json       what the dataset is (config + hash, meta, N, T) and every shard's sha256
    shard-00000.h5      histories [start, end): obs, actions, rewards, dones, task_ids
    shard-00000.json    the shard's manifest fragment, written when the shard is complete

Writers (`algodistill generate`): `check_config` -> `completed_shards` (resume) -> `write_shard` for the
rest -> `finalize` (fragments -> manifest.json). Shards made on several machines are combined by `merge`.
Readers: `Dataset.open(path)` verifies every sha256 and then `ds.sample(rng, B, c, subsample)` draws
random across-episode windows (paper Alg. 1 lines 7-9; subsampling: paper Sec. 5, App. I).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from algodistill import __version__
from algodistill.atomic import TMP_MARKER, atomic_path, atomic_write_json, sha256_file
from algodistill.errors import UserError
from algodistill.tokens import shift_inputs

SCHEMA_VERSION = 1
"""Bump when the on-disk layout changes; readers refuse other versions."""
MANIFEST = "manifest.json"
CHUNK_T = 4096  # steps per chunk: one 80..4k-step window touches 1-2 chunks per field (XLand-100B uses 4096)
COMPRESSION, COMPRESSION_LEVEL = "gzip", 4  # see docs/dataset.md for the size/speed measurements
CHUNK_CACHE_BYTES = 16 << 20  # lazy mode: HDF5 cache of decompressed chunks, per field per open shard
REGENERATE = "re-run the same `algodistill generate` command to regenerate it"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.json$")


# ----------------------------------------------------------------------------- histories in memory


@dataclass(frozen=True)
class Histories:
    """N learning histories of T steps each (docs/design.md, "Time indexing and histories")."""

    obs: np.ndarray  # (N, T, obs_dim) uint8, o_t
    actions: np.ndarray  # (N, T) uint8, a_t
    rewards: np.ndarray  # (N, T) float32, r_t
    dones: np.ndarray  # (N, T) bool, True on the last step of each episode
    task_ids: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        if self.actions.ndim != 2 or self.obs.ndim != 3:
            raise ValueError(
                f"Histories: actions must be (N, T), obs (N, T, obs_dim); got {self.actions.shape}, {self.obs.shape}"
            )
        n, t = self.actions.shape
        want = {
            "obs": ((n, t, self.obs.shape[2]), np.uint8),
            "actions": ((n, t), np.uint8),
            "rewards": ((n, t), np.float32),
            "dones": ((n, t), np.bool_),
            "task_ids": ((n,), np.int64),
        }
        for name, (shape, dtype) in want.items():
            a = getattr(self, name)
            if a.shape != shape or a.dtype != dtype:
                raise ValueError(f"Histories.{name}: expected {shape} {np.dtype(dtype)}, got {a.shape} {a.dtype}")

    @property
    def num_histories(self) -> int:
        return int(self.actions.shape[0])

    @property
    def T(self) -> int:
        return int(self.actions.shape[1])

    @classmethod
    def concat(cls, parts: Sequence[Histories]) -> Histories:
        """Stack histories along N (all parts must share T and obs_dim)."""
        fields = ("obs", "actions", "rewards", "dones", "task_ids")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


# ----------------------------------------------------------------------------- manifest and config


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a config (sorted keys, no whitespace)."""
    return sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _first_diff(a: Any, b: Any, prefix: str = "") -> str | None:
    """Dotted name and values of the first field where two JSON values differ, else None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                va, vb = (repr(x[key]) if key in x else "<absent>" for x in (a, b))
                return f"{prefix}{key}: {va} vs {vb}"
            if (d := _first_diff(a[key], b[key], f"{prefix}{key}.")) is not None:
                return d
        return None
    return None if a == b else f"{prefix.rstrip('.') or '<root>'}: {a!r} vs {b!r}"


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
    meta: dict[str, Any]  # env spec (as a dict), source, seed, split, ... (JSON-able)
    num_histories: int
    T: int
    shards: list[ShardRecord]
    schema_version: int = SCHEMA_VERSION
    package_version: str = __version__

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

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
        d = _read_json(path)
        if d.get("schema_version") != SCHEMA_VERSION:
            raise UserError(
                f"{path} has dataset schema version {d.get('schema_version')} but algodistill "
                f"{__version__} reads version {SCHEMA_VERSION}; {REGENERATE} with this version"
            )
        m = cls(
            d["config"],
            d["meta"],
            d["num_histories"],
            d["T"],
            [ShardRecord(**r) for r in d["shards"]],
            d["schema_version"],
            d["package_version"],
        )
        if d.get("config_hash") != m.config_hash:
            raise UserError(f"{path}: config_hash does not match its config (edited by hand?); {REGENERATE}")
        return m


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is unreadable ({e}); {REGENERATE}") from None


def _fragments(directory: str | os.PathLike[str]) -> dict[int, Path]:
    """Shard index -> path of every `shard-XXXXX.json` fragment in a directory."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    return {int(m[1]): d / m[0] for p in d.iterdir() if (m := _SHARD_RE.match(p.name))}


def _intact(directory: Path, rec: ShardRecord) -> bool:
    """The shard file exists and its bytes have the recorded sha256."""
    return (directory / rec.file).is_file() and sha256_file(directory / rec.file) == rec.sha256


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
        d = _read_json(path)
        if d.get("schema_version") != SCHEMA_VERSION:
            raise UserError(
                f"{out} holds a dataset of schema version {d.get('schema_version')} (this version "
                f"writes {SCHEMA_VERSION}); choose another --out or delete it"
            )
        if (diff := _first_diff(d.get("config"), config)) is not None:
            raise UserError(
                f"{out} holds a dataset with a different config (field {diff} requested); "
                "choose another --out or delete it"
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
    `meta["spec"]` must be the env spec as a dict (needs obs_dim, num_actions, episode_length).
    """
    out = Path(out)
    check_config(out, config)
    spec, h = meta["spec"], histories
    start, end = learner_start, learner_start + h.num_histories
    if not 0 <= start < end <= num_histories:
        raise ValueError(f"learners [{start}, {end}) are outside [0, {num_histories})")
    if (
        h.obs.shape[2] != spec["obs_dim"]
        or h.T == 0
        or h.T % spec["episode_length"]
        or h.actions.max() >= spec["num_actions"]
    ):
        raise ValueError(
            f"histories do not fit the spec: obs_dim {h.obs.shape[2]}, T {h.T}, max action {h.actions.max()} vs {spec}"
        )
    meta_json, config_json = json.dumps(meta), json.dumps(config)  # fail before writing if not JSON-able
    out.mkdir(parents=True, exist_ok=True)
    name = shard_file(shard_index)
    ct = min(CHUNK_T, h.T)
    with atomic_path(out / name) as tmp, h5py.File(tmp, "w") as f:
        # fletcher32: a flipped byte fails the read of its chunk instead of returning wrong data.
        kw = dict(compression=COMPRESSION, compression_opts=COMPRESSION_LEVEL, fletcher32=True)
        f.create_dataset("obs", data=h.obs, chunks=(1, ct, h.obs.shape[2]), **kw)  # (n, T, obs_dim) uint8
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
            "config_hash": config_hash(config),
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
    records = {i: ShardRecord(**_read_json(path)["shard"]) for i, path in _fragments(out).items()}
    return {i: rec for i, rec in records.items() if _intact(Path(out), rec)}


def finalize(out: str | os.PathLike[str]) -> Manifest:
    """Combine the shard fragments of `out` into manifest.json; UserError if shards are missing or corrupt."""
    out = Path(out)
    frags = [_read_json(p) for _, p in sorted(_fragments(out).items())]
    if not frags:
        raise UserError(f"{out} has no finished shards; run `algodistill generate --out {out}` first")
    first = frags[0]
    for f in frags[1:]:
        if (
            diff := _first_diff(
                {k: first[k] for k in ("config", "meta", "num_histories", "T")},
                {k: f[k] for k in ("config", "meta", "num_histories", "T")},
            )
        ) is not None:
            raise UserError(
                f"{out}: shard {f['shard']['file']} was written with different settings ({diff}); "
                "delete it and re-run generate"
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
            frag = _read_json(path)
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


# ----------------------------------------------------------------------------- reading


def _available_ram() -> int:
    """MemAvailable from /proc/meminfo (Linux), else a conservative 8 GiB guess."""
    meminfo = Path("/proc/meminfo")
    lines = meminfo.read_text().splitlines() if meminfo.is_file() else []
    return next((int(x.split()[1]) * 1024 for x in lines if x.startswith("MemAvailable:")), 8 << 30)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn an HDF5 read failure (fletcher32 mismatch, truncated file) into a UserError naming the file."""
    try:
        yield
    except OSError as e:
        raise UserError(f"{path} cannot be read ({e}); {REGENERATE}") from e


class Dataset:
    """A verified dataset: in RAM when it fits under `max_ram_bytes`, else read lazily from the shards."""

    def __init__(self, path: Path, manifest: Manifest, in_ram: bool) -> None:
        self.path, self.manifest, self.in_ram = path, manifest, in_ram
        self.meta, self.config, self.spec = manifest.meta, manifest.config, dict(manifest.meta["spec"])
        self.num_histories, self.T = manifest.num_histories, manifest.T
        self._paths = [path / r.file for r in manifest.shards]
        self._starts = np.array([r.start for r in manifest.shards])  # (S,) first learner of each shard
        self._open: dict[int, dict[str, h5py.Dataset]] = {}  # lazy mode: shard -> fields, opened per process
        self._pid = os.getpid()
        self._arrays: dict[str, np.ndarray] = {}  # in-RAM mode: (N, T, ...) arrays, rewards as float32
        task_ids = []
        for r, shard_path in zip(manifest.shards, self._paths, strict=True):
            with _reading(shard_path), h5py.File(shard_path, "r") as f:  # closed again: nothing open at fork
                task_ids.append(f["task_ids"][:])
                for k in ("obs", "actions", "rewards", "dones") if in_ram else ():
                    if k not in self._arrays:
                        dtype = np.float32 if k == "rewards" else f[k].dtype
                        self._arrays[k] = np.empty((self.num_histories, *f[k].shape[1:]), dtype)
                    self._arrays[k][r.start : r.end] = f[k][:]
        self.task_ids: np.ndarray = np.concatenate(task_ids)  # (N,) int64

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, max_ram_bytes: int | None = None, verify: bool = True) -> Dataset:
        """Open a dataset directory, checking the schema version and (unless verify=False) every sha256.

        max_ram_bytes: load into RAM when the decoded arrays fit (default: min(4 GiB, half the available
        memory)); 0 forces lazy reads from the HDF5 files.
        """
        p = Path(path)
        manifest = Manifest.load(p)
        for r in manifest.shards if verify else []:
            if not (p / r.file).is_file():
                raise UserError(f"{p / r.file} is missing; {REGENERATE}")
            if sha256_file(p / r.file) != r.sha256:
                raise UserError(f"{p / r.file} does not match its sha256 in {MANIFEST} (corrupt); {REGENERATE}")
        limit = min(4 << 30, _available_ram() // 2) if max_ram_bytes is None else max_ram_bytes
        step_bytes = manifest.meta["spec"]["obs_dim"] + 1 + 4 + 1  # obs, action, reward (float32), done
        return cls(p, manifest, in_ram=manifest.num_histories * manifest.T * step_bytes <= limit)

    # -- lazy h5py access, fork-safe (pytorch/pytorch#11929): handles are opened per process on first use
    def _fields(self, shard: int) -> dict[str, h5py.Dataset]:
        if self._pid != os.getpid():  # forked (DataLoader worker): never use the parent's HDF5 handles
            self._open, self._pid = {}, os.getpid()
        if shard not in self._open:
            f = h5py.File(self._paths[shard], "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
            # Keep the dataset objects: looking a name up in the file costs ~30 us, a small slice ~5 us.
            self._open[shard] = {k: f[k] for k in ("obs", "actions", "rewards", "dones")}
        return self._open[shard]

    def __getstate__(self) -> dict[str, Any]:  # spawn-started workers get no handles either
        return {**self.__dict__, "_open": {}}

    def close(self) -> None:
        """Close the HDF5 files this process opened (lazy mode)."""
        if self._pid == os.getpid():
            for fields in self._open.values():
                fields["obs"].file.close()
        self._open = {}

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, fields: Sequence[str], h: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gather steps t[b] of history h[b] for each field: (B, L, ...) from h (B,), t (B, L) increasing."""
        if self.in_ram:
            return {k: self._arrays[k][h[:, None], t] for k in fields}  # (B, L, ...) fancy indexing
        shard = np.searchsorted(self._starts, h, side="right") - 1  # (B,)
        local = h - self._starts[shard]  # (B,) row in the shard
        lo, hi = t[:, 0].tolist(), (t[:, -1] + 1).tolist()  # each window's raw span [lo, hi)
        contiguous = bool((t[:, -1] - t[:, 0] + 1 == t.shape[1]).all())  # subsample=1: no gaps to drop
        rows: dict[str, list[np.ndarray]] = {k: [] for k in fields}
        i = 0
        try:  # h5py has no vectorised 2-D gather: one contiguous slice per window and field (~5 us each)
            for b, (i, row) in enumerate(zip(shard.tolist(), local.tolist(), strict=True)):
                data = self._fields(i)
                for k in fields:
                    x = data[k][row, lo[b] : hi[b]]  # (hi - lo, ...)
                    rows[k].append(x if contiguous else x[t[b] - lo[b]])  # (L, ...)
        except OSError as e:  # fletcher32 mismatch, truncated file
            raise UserError(f"{self._paths[i]} cannot be read ({e}); {REGENERATE}") from e
        return {k: np.stack(v).astype(np.float32) if k == "rewards" else np.stack(v) for k, v in rows.items()}

    # -- the window sampler
    def sample(
        self, rng: np.random.Generator, batch_size: int, context: int, subsample: int = 1
    ) -> dict[str, torch.Tensor]:
        """B random windows of `context` consecutive steps of the (subsampled) histories (paper Alg. 1, l. 7-9).

        Windows cross episode boundaries. With subsample=k only episodes 0, k, 2k, ... of each history are
        kept (paper Sec. 5, App. I) and windows are drawn from that shorter sequence. a_tm1/r_tm1 at window
        position 0 are the previous (kept) step, or the start index num_actions and 0 at a history's start.
        Returns obs (B, c, obs_dim) long, a_tm1 (B, c) long, r_tm1 (B, c) float32, a_t (B, c) long.
        """
        if batch_size < 1 or context < 1 or subsample < 1:
            raise UserError(
                f"batch_size, context and subsample must be >= 1 (got {batch_size}, {context}, {subsample})"
            )
        H, k, A = self.spec["episode_length"], subsample, self.spec["num_actions"]
        T_k = -(-(self.T // H) // k) * H  # steps kept: ceil(episodes / k) episodes of H steps
        if context > T_k:
            raise UserError(
                f"context={context} is longer than the histories of {self.path} ({T_k} steps with "
                f"subsample={k}, T={self.T}); use context <= {T_k} or a smaller subsample"
            )
        h = rng.integers(0, self.num_histories, size=batch_size)  # (B,) which history
        s = rng.integers(0, T_k - context + 1, size=batch_size)  # (B,) window start in the kept sequence
        j = s[:, None] + np.arange(-1, context)  # (B, c+1) kept-sequence steps; column 0 is the step before
        t = (j // H) * (k * H) + j % H  # (B, c+1) the same steps in the raw history
        t[:, 0] = np.maximum(t[:, 0], 0)  # a window at a history's start has no step before: masked below
        rows = self._rows(("obs", "actions", "rewards"), h, t)
        inner = s > 0  # (B,) windows that do not begin a history see their true previous transition
        a_prev = np.where(inner, rows["actions"][:, 0], A)  # (B,)
        r_prev = np.where(inner, rows["rewards"][:, 0], 0).astype(np.float32)  # (B,)
        obs_t, a_tm1, r_tm1 = shift_inputs(
            rows["obs"][:, 1:], rows["actions"][:, 1:], rows["rewards"][:, 1:], A, a_prev=a_prev, r_prev=r_prev
        )
        return {
            "obs": torch.from_numpy(obs_t.astype(np.int64)),  # (B, c, obs_dim)
            "a_tm1": torch.from_numpy(a_tm1.astype(np.int64, copy=False)),  # (B, c)
            "r_tm1": torch.from_numpy(r_tm1.astype(np.float32, copy=False)),  # (B, c)
            "a_t": torch.from_numpy(rows["actions"][:, 1:].astype(np.int64)),
        }  # (B, c)

    # -- whole histories (inspect, curves)
    def histories(self, indices: Sequence[int] | np.ndarray) -> Histories:
        """Whole histories `indices` (in that order), decoded to the in-memory dtypes."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (n,)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_histories):
            raise IndexError(f"history indices must be in [0, {self.num_histories})")
        t = np.broadcast_to(np.arange(self.T), (idx.size, self.T))  # (n, T)
        rows = self._rows(("obs", "actions", "rewards", "dones"), idx, t)
        return Histories(
            rows["obs"], rows["actions"], rows["rewards"].astype(np.float32), rows["dones"], self.task_ids[idx]
        )

    def episode_returns(self) -> np.ndarray:
        """Return of every episode of every history: (N, T // H) float64."""
        H = self.spec["episode_length"]
        if self.in_ram:
            return self._arrays["rewards"].reshape(self.num_histories, -1, H).sum(-1, dtype=np.float64)  # (N, E)
        out = []
        for i, rec in enumerate(self.manifest.shards):  # one shard at a time bounds memory
            with _reading(self._paths[i]):
                r = self._fields(i)["rewards"][:]  # (n, T)
            out.append(r.reshape(rec.end - rec.start, -1, H).sum(-1, dtype=np.float64))  # (n, E)
        return np.concatenate(out)
