"""`algodistill generate`: learning histories of a source RL algorithm, written as a checked dataset.

N learners run on the training tasks (learner j gets task split[j mod len(split)], so histories
outnumber tasks by running several seeds per task, paper Sec. 5: 2000 histories over 81 goals) for T
steps each. Learners are grouped into shards of `shard_size`; a shard is one batched rollout and one
HDF5 file (`algodistill.dataset`). Because every random number is a function of (seed, learner id),
a learner's history is the same bytes whatever the shard size, the number of worker processes, or
the `--shard i/n` split across machines.

Re-running the same command resumes: shards that verify against their sha256 are kept, the others
(missing, corrupt, or cut short by a kill) are regenerated, and the manifest is written when the
last shard is in. A different config for an existing dataset is refused before any work.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import tyro

from algodistill import __version__, dataset, rng
from algodistill.dataset import Histories
from algodistill.device import cpu_share
from algodistill.envs import get_family
from algodistill.envs.base import StoresObs
from algodistill.errors import UserError, check_output, parse_part
from algodistill.jsonio import jsonable
from algodistill.progress import Bar
from algodistill.sources import SourceConfig, check_source, compute_bound, make_source, rollout, source_config

_CHUNK_STEPS = 2000  # steps per rollout call: the progress bar's granularity, and a bound on peak memory


@dataclass(frozen=True)
class GenerateConfig:
    """Generate learning histories of a source RL algorithm on the training tasks of an env."""

    env: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV")]
    """task family: bandit, darkroom, darkroom-hard, keydoor, watermaze or watermaze-small"""
    source: str = "qlearning"
    """source algorithm: ucb, thompson (bandit); a2c, qlearning, ucbq (grid worlds); privq, dqn, replay
    (watermaze); noise, expert, random (all)"""
    out: Path | None = None
    """dataset directory (default: data/<env>-<source>)"""
    histories: int = 2000
    """number of learning histories N (paper Sec. 5: 2000 for the Dark environments)"""
    steps: int = 20_000
    """steps per history T; a multiple of the episode length"""
    split: str = "train"
    """task split the learners run on"""
    tasks: int | None = None
    """learners run on this many tasks of the split, a fixed-seed subset (default: all of them)"""
    seed: int = 0
    """seed of every random number in the data"""
    shard_size: int = 500
    """histories per shard file (one batched rollout each)"""
    workers: int = 1
    """worker processes generating shards in parallel (the data does not depend on it)"""
    shard: str | None = None
    """this machine's part as "i/n": shards i, i+n, ... (default: all, or torchrun's RANK/WORLD_SIZE)"""
    sources: Annotated[SourceConfig, tyro.conf.arg(name="")] = field(default_factory=SourceConfig)
    """hyperparameters of the source algorithms (only the chosen source's are used)"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        family = get_family(self.env)
        check_source(self.source, self.env)
        n_split = len(family.split(self.split))
        if self.tasks is not None and not 1 <= self.tasks <= n_split:
            raise UserError(
                f"tasks={self.tasks} is outside the {n_split} tasks of split {self.split!r}: choose 1 to {n_split}"
            )
        H = family.spec.episode_length
        for name in ("histories", "shard_size", "workers"):
            if getattr(self, name) < 1:
                raise UserError(
                    f"{name}={getattr(self, name)} must be positive: pass --{name.replace('_', '-')} 1 or more"
                )
        if self.steps < H or self.steps % H:
            raise UserError(
                f"steps={self.steps} is not a whole number of {self.env} episodes of {H} steps: "
                f"choose a positive multiple of {H}, e.g. --steps {max(H, self.steps // H * H)}"
            )
        self.shard_part()
        check_output(self.out_dir, "out", directory=True)

    def shard_part(self) -> tuple[int, int]:
        """(i, n): this process generates shards s with s mod n == i."""
        spec = self.shard
        if spec is None:
            return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        return parse_part(spec, "shard")

    @property
    def out_dir(self) -> Path:
        return self.out or Path("data") / f"{self.env}-{self.source}"

    def data_config(self) -> dict[str, Any]:
        """The fields that determine the data (not where or how fast it is made)."""
        d: dict[str, Any] = {
            k: getattr(self, k) for k in ("env", "source", "histories", "steps", "split", "seed", "shard_size")
        }
        if self.tasks is not None:  # absent when all tasks run, as before the field existed: old records still hold
            d["tasks"] = self.tasks
        d["source_config"] = source_config(self.source, self.sources)
        return dict(jsonable(d))  # as the manifest stores it (tuples become lists)


def learner_tasks(cfg: GenerateConfig) -> np.ndarray:
    """Task of every learner: the split's tasks (or `cfg.tasks` of them, the same subset whatever the seed)
    in turn, several seeds each. (N,) int64"""
    tasks = get_family(cfg.env).split(cfg.split)
    if cfg.tasks is not None:
        tasks = np.sort(rng.np_rng(0, len(tasks), cfg.tasks).choice(tasks, cfg.tasks, replace=False))
    return tasks[np.arange(cfg.histories) % len(tasks)]


def generate_shard(cfg: GenerateConfig, shard: int, on_chunk: Any = None) -> dataset.ShardRecord:
    """Run learners [shard * shard_size, ...) of the dataset from scratch and write their shard."""
    family = get_family(cfg.env)
    start = shard * cfg.shard_size
    ids = np.arange(start, min(start + cfg.shard_size, cfg.histories))
    tasks = learner_tasks(cfg)[ids]
    env = family.make(tasks, seed=cfg.seed, ids=ids)
    src = make_source(cfg.source, env, cfg.seed, ids, cfg.steps, cfg.sources)
    if isinstance(env, StoresObs) and not getattr(src, "reads_obs", True):
        env.draw = False  # the data keeps the stored form and the source never looks: skip drawing (~10x faster)
    parts: list[dict[str, np.ndarray]] = []
    o_t = None
    for t0 in range(0, cfg.steps, _CHUNK_STEPS):
        n = min(_CHUNK_STEPS, cfg.steps - t0)
        arrays, o_t = rollout(env, src, n, o_t)
        if not np.isfinite(arrays["rewards"]).all():
            raise UserError(f"{cfg.env} produced a non-finite reward in shard {shard}: the env or source is broken")
        parts.append(arrays)
        if on_chunk is not None:
            on_chunk(len(ids) * n)
    h = Histories(
        **{k: np.concatenate([p[k] for p in parts], axis=1) for k in ("obs", "actions", "rewards", "dones")},
        task_ids=tasks.astype(np.int64),
    )
    meta = {
        "spec": family.spec.record(),
        "episode_length": family.spec.episode_length,
        "source": cfg.source,
        "seed": cfg.seed,
        "split": cfg.split,
        "package_version": __version__,
        "resolved_config": {**cfg.data_config(), "out": str(cfg.out_dir)},
    }
    return dataset.write_shard(
        cfg.out_dir, shard, h, learner_start=start, num_histories=cfg.histories, meta=meta, config=cfg.data_config()
    )


def source_threads(source: str, share: int) -> int:
    """Torch threads for generating with `source` in a process whose share of the cores is `share`: one for
    most sources (A2C's batched matmuls are small: a second thread costs more than it gives), the whole share
    for a compute-bound one (dqn's convolutions). A learner's history does not depend on it (tests/test_dqn.py)."""
    return max(1, share) if compute_bound(source) else 1


def _worker(args: tuple[GenerateConfig, int, int]) -> int:
    cfg, shard, processes = args
    torch.set_num_threads(source_threads(cfg.source, cpu_share(processes)))
    generate_shard(cfg, shard)
    return shard


def generate(cfg: GenerateConfig) -> Path:
    """`algodistill generate`: write (or finish) the dataset; return its directory."""
    out = cfg.out_dir
    config = cfg.data_config()
    dataset.check_config(out, config)  # refuses another config's dataset before anything is written
    num_shards = -(-cfg.histories // cfg.shard_size)
    part, parts = cfg.shard_part()
    done = dataset.completed_shards(out, config)
    todo = [s for s in range(num_shards) if s % parts == part and s not in done]
    out.mkdir(parents=True, exist_ok=True)
    total = sum(min(cfg.shard_size, cfg.histories - s * cfg.shard_size) for s in todo) * cfg.steps
    # the bar advances every _CHUNK_STEPS steps of a shard in this process, and once per shard from the pool
    with Bar(f"generate {cfg.env}/{cfg.source}", total=max(total, 1), unit="steps", quiet=cfg.quiet) as bar:
        if cfg.workers > 1 and len(todo) > 1:
            ctx = multiprocessing.get_context("spawn")  # no forked torch/h5py state in the workers
            processes = min(cfg.workers, len(todo))
            with ctx.Pool(processes) as pool:
                for shard in pool.imap_unordered(_worker, [(cfg, s, processes) for s in todo]):
                    bar.advance(min(cfg.shard_size, cfg.histories - shard * cfg.shard_size) * cfg.steps)
        else:
            # In this process: the source's thread count must not leak into what runs next (training).
            threads = torch.get_num_threads()
            torch.set_num_threads(source_threads(cfg.source, threads))  # the caller's share (pipeline: per replica)
            try:
                for s in todo:
                    generate_shard(cfg, s, on_chunk=bar.advance)
            finally:
                torch.set_num_threads(threads)
    if len(dataset.completed_shards(out, config)) == num_shards:
        dataset.finalize(out)
        if not cfg.quiet:
            print(f"dataset {out}: {cfg.histories} histories x {cfg.steps} steps, {num_shards} shards")
    elif not cfg.quiet:
        print(f"wrote shards {todo} of {num_shards} to {out}; the manifest is written once every shard is in")
    return out
