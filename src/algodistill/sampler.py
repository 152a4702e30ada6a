"""Reading a dataset: `Dataset.open` verifies it, `sample` draws random windows of raw transitions.

Windows are what the histories hold, (o_t, a_t, r_t, done_t) per step, with no tokens: each method
turns them into its own model inputs (`algodistill.methods`). A window crosses episode boundaries
(paper Alg. 1 lines 7-9), and with `subsample=k` it is cut from the sequence of every k-th episode
(paper Sec. 5, App. I). A method that reads the step before each window (AD reads a_{t-1} and
r_{t-1}) asks for `lead` steps in front of it; at a history's start those steps do not exist and are
padding (`Windows.pad`).

Where the env has a stored form (`EnvSpec.stored_shape`: Watermaze keeps the agent's position and
heading, not its 72 x 96 x 3 view), the shards hold that form and `sample` redraws the observations of
each window with the family's pure `decode_obs`: the same bytes the env showed the source.

A dataset is loaded into RAM when it fits (the usual case: 10^8 transitions are about 600 MB), else
read lazily from the HDF5 shards, whose handles are opened per process so that forked DataLoader
workers never share them (pytorch/pytorch#11929).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from algodistill.dataset import FIELDS, REGENERATE, Histories, Manifest, shard_problem
from algodistill.envs import get_family
from algodistill.errors import UserError

CHUNK_CACHE_BYTES = 16 << 20  # lazy mode: HDF5 cache of decompressed chunks, per field per open shard


@dataclass(frozen=True)
class Windows:
    """B windows of L consecutive steps of learning histories: the transitions as stored, the observations
    as the env showed them (redrawn from a stored form)."""

    obs: torch.Tensor  # (B, L, *obs_shape) in the env's obs dtype, o_t (drawn from the stored form, if any)
    actions: torch.Tensor  # (B, L) int64, a_t
    rewards: torch.Tensor  # (B, L) float32, r_t
    dones: torch.Tensor  # (B, L) bool, done_t: step t ends its episode
    pad: torch.Tensor  # (B, L) bool: the step lies before its history's start (every field is 0 there)
    task_ids: torch.Tensor  # (B,) int64: the task of each window's history (DPT's labels need it)

    def to(self, device: torch.device) -> Windows:
        return Windows(
            **{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in dataclasses.fields(self)}
        )


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


def kept_steps(T: int, episode_length: int, subsample: int) -> int:
    """Steps of a history of T steps that windows are cut from: ceil(episodes / subsample) whole episodes."""
    return -(-(T // episode_length) // subsample) * episode_length


class Dataset:
    """A verified dataset: in RAM when it fits under `max_ram_bytes`, else read lazily from the shards."""

    def __init__(self, path: Path, manifest: Manifest, in_ram: bool) -> None:
        self.path, self.manifest, self.in_ram = path, manifest, in_ram
        self.meta, self.config, self.spec = manifest.meta, manifest.config, dict(manifest.meta["spec"])
        self.num_histories, self.T = manifest.num_histories, manifest.T
        self.episode_length: int = self.spec["episode_length"]
        self._paths = [path / r.file for r in manifest.shards]
        self._starts = np.array([r.start for r in manifest.shards])  # (S,) first learner of each shard
        self._open: dict[int, dict[str, h5py.Dataset]] = {}  # lazy mode: shard -> fields, opened per process
        self._pid = os.getpid()
        self._arrays: dict[str, np.ndarray] = {}  # in-RAM mode: (N, T, ...) arrays, rewards as float32
        task_ids = []
        for r, shard_path in zip(manifest.shards, self._paths, strict=True):
            with _reading(shard_path), h5py.File(shard_path, "r") as f:  # closed again: nothing open at fork
                task_ids.append(f["task_ids"][:])
                for k in FIELDS if in_ram else ():
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
            if (problem := shard_problem(p, r)) is not None:
                raise UserError(f"{p / r.file} {problem}; {REGENERATE}")
        limit = min(4 << 30, _available_ram() // 2) if max_ram_bytes is None else max_ram_bytes
        spec = manifest.meta["spec"]
        if spec.get("stored_shape") is not None:
            obs_bytes = int(np.prod(spec["stored_shape"])) * np.dtype(spec["stored_dtype"]).itemsize
        else:
            obs_bytes = spec["obs_dim"] * np.dtype(spec.get("obs_dtype", "uint8")).itemsize
        step_bytes = obs_bytes + 1 + 4 + 1  # obs, action, reward (float32), done
        return cls(p, manifest, in_ram=manifest.num_histories * manifest.T * step_bytes <= limit)

    # -- lazy h5py access, fork-safe: handles are opened per process on first use
    def _fields(self, shard: int) -> dict[str, h5py.Dataset]:
        if self._pid != os.getpid():  # forked (DataLoader worker): never use the parent's HDF5 handles
            self._open, self._pid = {}, os.getpid()
        if shard not in self._open:
            f = h5py.File(self._paths[shard], "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
            # Keep the dataset objects: looking a name up in the file costs ~30 us, a small slice ~5 us.
            self._open[shard] = {k: f[k] for k in FIELDS}
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
        """Gather steps t[b] of history h[b] for each field: (B, L, ...) from h (B,), t (B, L) non-decreasing."""
        if self.in_ram:
            return {k: self._arrays[k][h[:, None], t] for k in fields}  # (B, L, ...) fancy indexing
        shard = np.searchsorted(self._starts, h, side="right") - 1  # (B,)
        local = h - self._starts[shard]  # (B,) row in the shard
        lo, hi = t[:, 0].tolist(), (t[:, -1] + 1).tolist()  # each window's raw span [lo, hi)
        contiguous = bool((np.diff(t, axis=1) == 1).all())  # no steps to drop (subsample), none repeated (padding)
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
    def kept_steps(self, subsample: int) -> int:
        """Steps of each history that windows are cut from (`kept_steps`)."""
        return kept_steps(self.T, self.episode_length, subsample)

    def sample(
        self,
        rng: np.random.Generator,
        batch_size: int,
        length: int,
        subsample: int = 1,
        lead: int = 0,
        part: slice = slice(None),
        device: torch.device | None = None,
    ) -> Windows:
        """B random windows of `length` consecutive steps of the (subsampled) histories (paper Alg. 1, l. 7-9).

        The last length - lead steps of a window lie inside its history, starting anywhere from the
        history's first (kept) step; the first `lead` steps may fall before it and are then padding.
        With subsample=k only episodes 0, k, 2k, ... of each history are kept (paper Sec. 5, App. I).
        Draws: the histories, then the start steps, from `rng`, so a batch is a function of its rng.
        Only windows `part` of the batch are read (a DDP rank's share: every rank makes the same draws).
        With `device`, a stored form's observations are drawn there (torch; the same bytes), and `obs`
        is returned on it: the trainer passes its accelerator, where drawing beats copying frames.
        """
        span = length - lead  # steps inside the history
        T_k = self.kept_steps(subsample) if subsample >= 1 else 0
        if batch_size < 1 or not 0 <= lead < length or subsample < 1 or span > T_k:
            raise ValueError(
                f"no windows of {length} steps (lead {lead}) in histories of {T_k} kept steps "
                f"(subsample={subsample}); batch_size={batch_size}"
            )
        H, k = self.episode_length, subsample
        h = rng.integers(0, self.num_histories, size=batch_size)  # (B,) which history
        s = rng.integers(0, T_k - span + 1, size=batch_size)  # (B,) first in-history step, in the kept sequence
        j = s[:, None] + np.arange(-lead, span)  # (B, L) kept-sequence steps; negative ones precede the history
        pad = j < 0  # (B, L)
        j = np.maximum(j, 0)  # padding reads step 0, then is zeroed below
        t = (j // H) * (k * H) + j % H  # (B, L) the same steps in the raw history
        h, t, pad = h[part], t[part], pad[part]  # (B', ...) the windows asked for
        # dones are not read back: episodes have a fixed length (paper Sec. 4.1), so done_t is a function
        # of t, and h5py reads a bool dataset ~7x slower than a uint8 one (measured: it tripled lazy reads)
        rows = self._rows(("obs", "actions", "rewards"), h, t)
        stored = rows.pop("obs")  # (B, L, *stored_shape), or the observations themselves
        if self.spec.get("stored_shape") is None:
            obs = torch.from_numpy(stored)  # (B, L, *obs_shape)
        elif device is None:
            obs = torch.from_numpy(get_family(self.spec["name"]).decode_obs(stored))  # (B, L, *obs_shape)
        else:
            obs = get_family(self.spec["name"]).decode_obs(torch.from_numpy(stored).to(device))
        obs[torch.from_numpy(pad).to(obs.device)] = 0
        for x in rows.values():
            x[pad] = 0
        return Windows(
            obs=obs,  # (B, L, *obs_shape)
            actions=torch.from_numpy(rows["actions"].astype(np.int64)),  # (B, L)
            rewards=torch.from_numpy(rows["rewards"]),  # (B, L) float32
            dones=torch.from_numpy(((t + 1) % H == 0) & ~pad),  # (B, L) bool
            pad=torch.from_numpy(pad),  # (B, L)
            task_ids=torch.from_numpy(self.task_ids[h]),  # (B,)
        )

    # -- whole histories (inspect, curves)
    def histories(self, indices: Sequence[int] | np.ndarray) -> Histories:
        """Whole histories `indices` (in that order), decoded to the in-memory dtypes; obs as stored (the
        stored form where the env has one: whole histories of frames would not fit in memory)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (n,)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_histories):
            raise IndexError(f"history indices must be in [0, {self.num_histories})")
        t = np.broadcast_to(np.arange(self.T), (idx.size, self.T))  # (n, T)
        rows = self._rows(FIELDS, idx, t)
        return Histories(
            rows["obs"], rows["actions"], rows["rewards"].astype(np.float32), rows["dones"], self.task_ids[idx]
        )

    def episode_returns(self) -> np.ndarray:
        """Return of every episode of every history: (N, T // H) float64."""
        H = self.episode_length
        if self.in_ram:
            return self._arrays["rewards"].reshape(self.num_histories, -1, H).sum(-1, dtype=np.float64)  # (N, E)
        out = []
        for i, rec in enumerate(self.manifest.shards):  # one shard at a time bounds memory
            with _reading(self._paths[i]):
                r = self._fields(i)["rewards"][:]  # (n, T)
            out.append(r.reshape(rec.end - rec.start, -1, H).sum(-1, dtype=np.float64))  # (n, E)
        return np.concatenate(out)
