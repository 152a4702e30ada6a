"""The `algodistill` command line: one tyro subcommand per stage of the AD pipeline.

Every subcommand takes one frozen config dataclass whose documented fields are its flags. Bad input
raises `UserError`, printed here as one line (`error: ...`) with exit code 2.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from algodistill.envs import ENV_NAMES, get_family
from algodistill.errors import UserError


@dataclass(frozen=True)
class EnvsConfig:
    """Print each task family's spec, split sizes and reference returns."""

    env: Annotated[tuple[str, ...], tyro.conf.arg(aliases=("-e",))] = ENV_NAMES
    """families to describe (default: all)"""

    def __post_init__(self) -> None:
        for name in self.env:
            get_family(name)  # raises a UserError naming the unknown env


def envs(cfg: EnvsConfig) -> None:
    """Print each task family's spec: grid, observation, actions, episode length, tasks, split, returns."""
    table = Table(title="algodistill task families (paper Sec. 4.1)")
    for col in ("env", "gym id", "description", "obs", "actions", "episode", "tasks", "splits", "optimal", "random"):
        table.add_column(col)
    for name in cfg.env:
        f = get_family(name)
        s = f.spec
        everything = np.arange(s.num_tasks)
        splits = ", ".join(f"{k} {len(f.split(k))}" for k in f.split_names)
        table.add_row(
            name,
            s.gym_id,
            s.description,
            f"{s.obs_dim} ints < {s.obs_high}",
            str(s.num_actions),
            str(s.episode_length),
            str(s.num_tasks),
            splits,
            f"{f.optimal_return(everything).mean():.3f}",
            f"{f.random_return(everything).mean():.3f}",
        )
    Console(width=200).print(table)


COMMANDS = {"envs": envs}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `algodistill` console script."""
    try:
        tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, config=(tyro.conf.OmitArgPrefixes,))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
