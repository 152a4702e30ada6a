"""The `algodistill` command line: one subcommand per stage of the AD pipeline, and `config`.

Every subcommand takes one frozen config dataclass whose documented fields are its flags (tyro). `run`
and `config` start from the preset of ENV (`algodistill.presets`), or from a `--config` file, and
`train` from the preset of `--env`; the flags override single fields. Bad input raises `UserError`,
printed here as one line (`error: ...`) with exit code 2; tyro's own parse errors are folded to one
line too. SIGTERM (a scheduler's stop, `kill`) stops a command as Ctrl-C does, exit 130: every write is
atomic, so the last good state stays, and a run's stage records count the time it had spent.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from algodistill.agent import PlayConfig, play
from algodistill.configs import RunConfig, TrainJob
from algodistill.convert import ConvertConfig, convert
from algodistill.datasummary import InspectConfig, inspect
from algodistill.envs import ENV_NAMES, get_family
from algodistill.errors import UserError
from algodistill.evaluate import EvaluateConfig, evaluate
from algodistill.export import PRETRAINED_DIR, ExportConfig, export, pretrained_names, read_export
from algodistill.generate import GenerateConfig, generate
from algodistill.pipeline import resolved_config, run
from algodistill.presets import check_same_base, rl2_defaults, run_defaults, train_defaults
from algodistill.rl2 import RL2TrainConfig, train_rl2
from algodistill.studies import AblateConfig, ablate
from algodistill.train import TrainingDiverged, train


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
            s.describe_obs(),
            str(s.num_actions),
            str(s.episode_length),
            str(s.num_tasks),
            splits,
            f"{f.optimal_return(everything).mean():.3f}",
            f"{f.random_return(everything).mean():.3f}",
        )
    Console(width=200).print(table)


@dataclass(frozen=True)
class PretrainedConfig:
    """List the models shipped inside the package (load one with `Agent.load(NAME)` or `algodistill play NAME`)."""


def pretrained(cfg: PretrainedConfig) -> None:
    """Print each shipped model: env, method, size, and the held-out return its card records."""
    table = Table(title=f"shipped models ({PRETRAINED_DIR})")
    for col in ("name", "env", "method", "params", "trained", "held-out return, last 10% (95% CI)", "opt / rand"):
        table.add_column(col)
    for name in pretrained_names():
        _, card = read_export(PRETRAINED_DIR / name)  # also verifies the weights against the card
        t, h = card["training"], card.get("held_out")
        held = reference = "-"
        if h is not None:
            (lo, hi), mean = h["last10pct"]["ci95"], h["last10pct"]["mean"]
            held = f"{mean:.2f} ({lo:.2f}-{hi:.2f}), {h['split']} split, {h['tasks']} tasks"
            reference = f"{h['optimal']:.2f} / {h['random']:.2f}"
        trained = f"seed {t['seed']}, {t['iters']} iters, {t['data'].get('source', '?')} data"
        params = f"{card['weights']['num_params']:,}"
        table.add_row(name, card["env"], card["method"], params, trained, held, reference)
    Console(width=200).print(table)


def show_config(cfg: RunConfig) -> None:
    """`algodistill config`: the resolved configuration of a run, as JSON that `run --config` reads."""
    print(json.dumps(resolved_config(cfg), indent=2))


@dataclass(frozen=True)
class _Command:
    config: type
    action: Callable[[Any], object]
    defaults: Callable[[Sequence[str]], Any] | None = None  # the instance the flags override
    summary: str = ""


COMMANDS: dict[str, _Command] = {
    "envs": _Command(EnvsConfig, envs, summary="the task families: spec, splits, optimal and random returns"),
    "generate": _Command(GenerateConfig, generate, summary="learning histories of a source algorithm -> a dataset"),
    "inspect": _Command(InspectConfig, inspect, summary="what a dataset holds, and its source's learning curve"),
    "convert": _Command(ConvertConfig, convert, summary="a peer's dataset (ad-eps, XLand-100B layout) into ours"),
    "train": _Command(TrainJob, train, train_defaults, "train a method's model on a dataset (preset of --env)"),
    "evaluate": _Command(EvaluateConfig, evaluate, summary="a checkpoint in context on held-out tasks"),
    "run": _Command(RunConfig, run, run_defaults, "every stage from nothing to a report, resumable (preset of ENV)"),
    "rl2": _Command(RL2TrainConfig, train_rl2, rl2_defaults, "RL^2 trained online on ENV's training tasks, resumable"),
    "export": _Command(ExportConfig, export, summary="a checkpoint as safetensors weights + a JSON model card"),
    "pretrained": _Command(PretrainedConfig, pretrained, summary="the models shipped in the package"),
    "play": _Command(PlayConfig, play, summary="a trained model in context on one task of its Gymnasium env"),
    "config": _Command(RunConfig, show_config, run_defaults, "print the resolved configuration of a run, as JSON"),
    "ablate": _Command(AblateConfig, ablate, summary="one of the paper's ablations as a set of runs (STUDY ENV)"),
}


def _usage() -> str:
    lines = ["usage: algodistill COMMAND [--help] [flags]", "", "commands:"]
    lines += [f"  {name:<10} {c.summary}" for name, c in COMMANDS.items()]
    return "\n".join(lines)


def _one_line(box: str, prog: str) -> str:
    """tyro's boxed parse error folded to one line: its first paragraph, and the flag it concerns.

    The box is drawn in Unicode or, on a plain stream, in ASCII; both are read the same way.
    """
    paragraphs: list[list[str]] = [[]]
    for line in box.splitlines():
        core = line.strip(" │╭╮╰╯|+")
        if not core or (set(core) <= set("─-") or (core[0] in "─-" and core[1:2] == " ")):  # a rule or the title
            paragraphs.append([])
        else:
            paragraphs[-1].append(core)
    paragraphs = [p for p in paragraphs if p]
    if "╭" not in box and len(paragraphs) > 1:  # ASCII: the title is a paragraph of its own
        paragraphs = paragraphs[1:]
    text = " ".join(" ".join(paragraphs[0]).split()) if paragraphs else "the command line could not be parsed"
    flags = [m[0] for p in paragraphs[1:] for ln in p if (m := re.match(r"--[\w.-]+(?: [A-Z{][^ ]*)?", ln))]
    if flags and "Perhaps you meant" in box:
        text += f"; did you mean {flags[0]}?"
    elif flags and flags[0].split()[0] in text:
        text += f"; expected {flags[0]}"
    return f"{text} (see {prog} --help)"


def _parse(command: str, args: Sequence[str]) -> Any:
    c, prog = COMMANDS[command], f"algodistill {command}"
    default = c.defaults(args) if c.defaults is not None else None
    preset_env = isinstance(default, RL2TrainConfig) or (isinstance(default, RunConfig) and default.config is None)
    if preset_env and default is not None and args[0] != default.env:
        args = [default.env, *args[1:]]  # ENV's preset runs another env (presets.ALIASES): name that one
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            cfg = tyro.cli(c.config, args=list(args), default=default, prog=prog)
    except SystemExit as e:
        if e.code not in (0, None):
            raise UserError(_one_line(captured.getvalue(), prog)) from None
        sys.stderr.write(captured.getvalue())
        raise
    if isinstance(cfg, RunConfig):
        check_same_base(cfg, default)
    return cfg


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `algodistill` console script."""
    if threading.current_thread() is not threading.main_thread():  # Python installs handlers only there
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        if not args or args[0] in ("-h", "--help"):
            print(_usage())
            if not args:  # a command is required
                raise SystemExit(2)
            return
        if args[0] not in COMMANDS:
            raise UserError(f"command {args[0]!r} is unknown: choose one of {', '.join(COMMANDS)}")
        COMMANDS[args[0]].action(_parse(args[0], args[1:]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as e:  # TrainingInterrupted too: the last finished iteration was saved
        print(f"interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
