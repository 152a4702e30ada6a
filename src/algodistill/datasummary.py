"""`algodistill inspect`: what a dataset holds, and the learning curve its histories show."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from algodistill.atomic import atomic_path
from algodistill.errors import UserError, check_output
from algodistill.sampler import Dataset


def block_curve(returns: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean return per block of consecutive episodes, across histories.

    returns (N, E) -> (first episode of each block (b,), mean return of the block (b,)), b = min(blocks, E).
    """
    E = returns.shape[1]
    edges = np.linspace(0, E, min(blocks, E) + 1).astype(int)  # (b + 1,)
    means = np.array([returns[:, a:b].mean() for a, b in itertools.pairwise(edges)])
    return edges[:-1], means


@dataclass(frozen=True)
class InspectConfig:
    """Print a dataset's spec and the learning curve of its histories; optionally save the curve."""

    path: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DATASET")]
    """dataset directory (written by `algodistill generate`)"""
    blocks: int = 10
    """number of episode blocks in the learning-curve summary"""
    png: Path | None = None
    """save the learning curve (mean return per episode across histories) as this PNG"""

    def __post_init__(self) -> None:
        if self.blocks < 1:
            raise UserError(f"blocks={self.blocks} must be positive: pass --blocks 1 or more")
        if self.png is not None:
            check_output(self.png, "png", directory=False)


def inspect(cfg: InspectConfig) -> None:
    """`algodistill inspect`."""
    if not cfg.path.is_dir():
        raise UserError(f"path={cfg.path} is not a dataset directory: pass the --out of `algodistill generate`")
    with Dataset.open(cfg.path) as ds:
        returns = ds.episode_returns()  # (N, E)
        meta = ds.meta
        print(f"dataset {cfg.path}: {ds.num_histories} histories x {ds.T} steps ({returns.shape[1]} episodes)")
        print("spec:", json.dumps(ds.spec))
        print("source:", meta.get("source"), json.dumps(ds.config.get("source_config", {})))
        print(f"split: {meta.get('split')}, seed: {meta.get('seed')}, tasks: {len(np.unique(ds.task_ids))}")
    starts, means = block_curve(returns, cfg.blocks)
    print("mean episode return per block of episodes (learning curve across histories):")
    for s, m in zip(starts, means, strict=True):
        print(f"  episodes {s + 1:>6}+ : {m:8.3f}")
    if cfg.png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(np.arange(1, returns.shape[1] + 1), returns.mean(axis=0))
        ax.set_xlabel("episode of the learning history")
        ax.set_ylabel("mean return across histories")
        ax.set_title(f"{cfg.path.name}: source learning curve")
        fig.tight_layout()
        with atomic_path(cfg.png) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        print(f"saved {cfg.png}")
