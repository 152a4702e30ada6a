"""The `algodistill` command line: one tyro subcommand per stage of the AD pipeline.

Every subcommand takes one frozen config dataclass whose documented fields are its flags. Bad input
raises `UserError`, printed here as one line (`error: ...`) with exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from algodistill.datasummary import InspectConfig, inspect
from algodistill.envs import ENV_NAMES, get_family
from algodistill.errors import UserError
from algodistill.evaluate import EvaluateConfig, evaluate
from algodistill.generate import GenerateConfig, generate
from algodistill.pipeline import RunConfig, run
from algodistill.train import TrainConfig, TrainingDiverged, parse_config, train


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


COMMANDS: dict[str, tuple[type, Callable[[Any], object]]] = {
    "envs": (EnvsConfig, envs),
    "generate": (GenerateConfig, generate),
    "inspect": (InspectConfig, inspect),
    "train": (TrainConfig, train),
    "evaluate": (EvaluateConfig, evaluate),
    "run": (RunConfig, run),
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `algodistill` console script."""
    try:
        args = sys.argv[1:] if argv is None else argv
        if args[:1] == ["train"]:  # its defaults depend on --preset and --env: a two-pass parse
            cfg: Any = parse_config(args[1:], prog="algodistill train")
        else:
            cfg = tyro.extras.subcommand_cli_from_dict({name: c for name, (c, _) in COMMANDS.items()}, args=args)
        next(command for c, command in COMMANDS.values() if isinstance(cfg, c))(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as e:  # TrainingInterrupted too: the last finished step was saved
        print(f"interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
