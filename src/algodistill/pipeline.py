"""`algodistill run <env>`: from nothing to a report, one resumable stage at a time.

Stages (each writes under runs/<name>/):

    data-ad    learning histories of the source algorithm   data/ad/ (manifest.json + shards)
    data-ed    expert histories for expert distillation      data/ed/
    train-ad   the AD transformer                            ad/ckpt.pt
    train-ed   the same trainer on the expert data (ED)      ed/ckpt.pt
    evaluate   AD, ED and the source on held-out tasks       eval/*.npz
    report     curves.png, loss.png, report.md, report.json

A finished stage leaves a record `stages/<stage>.json` with the sha256 of its inputs and outputs. A
re-run skips a stage whose record matches its config and inputs and whose outputs still verify;
otherwise the stage runs again (a corrupt output is first moved aside as `<name>.corrupt`, never
deleted), and so does every later stage whose inputs it changed. Every stage is deterministic, so a
redone stage usually writes the same bytes and what follows it still verifies.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tyro

from algodistill import __version__
from algodistill.atomic import atomic_write_json, sha256_file
from algodistill.checkpoint import load_model
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.evaluate import eval_streams, rollout_model, rollout_source, save_returns
from algodistill.generate import GenerateConfig, generate
from algodistill.report import plot_losses, write_report
from algodistill.sources import SourceConfig, check_source
from algodistill.train import config_to_dict, pick_device, preset_config, train


@dataclass(frozen=True)
class RunPreset:
    """What `algodistill run` does for one (env, preset): data sizes, training overrides, evaluation."""

    source: str
    """source algorithm of the AD data"""
    histories: int
    """AD learning histories"""
    steps: int
    """steps per AD history"""
    expert_histories: int
    """ED histories (expert policy, same across-episode layout)"""
    train: dict[str, Any] = field(default_factory=dict)
    """overrides of `train.preset_config(preset, env)` (shared by AD and ED: they differ only in data)"""
    episodes: int = 100
    """in-context evaluation episodes per stream"""
    tasks: int = 20
    """held-out tasks evaluated (all of them when the split is smaller)"""
    seeds: int = 5
    """streams per task"""


# The quick presets are sized for 2 CPU cores: tabular Q-learning histories whose epsilon anneals over
# the first half of the history, subsampled every 10th episode (paper Sec. 5, App. I) so that the
# transformer sees in a few episodes the progress the source makes in many, and learns in context
# faster than the source learns (paper Fig. 6). The paper presets follow paper.md Sec. 2-4 (A3C-like
# source, 2000 histories, 1000 evaluation episodes) where the paper is explicit, our choices elsewhere.
QUICK_TRAIN = {"steps": 3000, "subsample": 10}
PRESETS: dict[tuple[str, str], RunPreset] = {
    ("darkroom", "quick"): RunPreset("qlearning", 2000, 10_000, 200, QUICK_TRAIN, episodes=100, tasks=16),
    ("darkroom-hard", "quick"): RunPreset("qlearning", 2000, 20_000, 200, QUICK_TRAIN, episodes=100),
    ("keydoor", "quick"): RunPreset("qlearning", 2000, 50_000, 200, QUICK_TRAIN, episodes=100),
    ("bandit", "quick"): RunPreset("ucb", 4000, 100, 400, {"steps": 2000}, episodes=100),
    ("darkroom", "paper"): RunPreset("a2c", 2000, 100_000, 2000, episodes=1000),
    ("darkroom-hard", "paper"): RunPreset("a2c", 2000, 100_000, 2000, episodes=1000),
    ("keydoor", "paper"): RunPreset("a2c", 2000, 250_000, 2000, episodes=1000),
    ("bandit", "paper"): RunPreset("ucb", 10_000, 100, 1000, episodes=100),
}


_OVERRIDES = ("histories", "steps", "expert_histories", "train_steps", "episodes", "tasks", "seeds")


@dataclass(frozen=True)
class RunConfig:
    """Generate data, train AD and ED, evaluate in context on held-out tasks, and write a report."""

    env: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV")]
    """task family: bandit, darkroom, darkroom-hard or keydoor"""
    preset: Literal["quick", "paper"] = "quick"
    """quick: minutes on a laptop CPU; paper: the paper's sizes (a GPU and hours)"""
    name: str | None = None
    """run name (default: <env>-<preset>); the run lives in <runs>/<name>/"""
    runs: Path = Path("runs")
    """directory holding the runs"""
    seed: int = 0
    """seed of the data, the training and the evaluation"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """training and evaluation device ("auto": CUDA with bf16 when present)"""
    workers: int = 1
    """processes generating data (the data does not depend on it)"""
    quiet: bool = False
    """no progress bars"""
    source: str | None = None
    """override the preset's source algorithm of the AD data (see `algodistill generate --help`)"""
    histories: int | None = None
    """override the preset's number of AD histories"""
    steps: int | None = None
    """override the preset's steps per history (AD and ED)"""
    expert_histories: int | None = None
    """override the preset's number of ED histories"""
    train_steps: int | None = None
    """override the preset's optimizer steps (AD and ED)"""
    episodes: int | None = None
    """override the preset's evaluation episodes per stream"""
    tasks: int | None = None
    """override the preset's number of held-out tasks evaluated"""
    seeds: int | None = None
    """override the preset's streams per task"""

    def __post_init__(self) -> None:
        get_family(self.env)  # UserError naming an unknown env
        if self.preset not in ("quick", "paper"):
            raise UserError(f"preset={self.preset!r} is unknown: choose quick or paper")
        check_source(self.source or PRESETS[self.env, self.preset].source, self.env)
        for name in ("workers", *_OVERRIDES):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UserError(f"{name}={v} must be positive: pass --{name.replace('_', '-')} 1 or more")

    def resolved_preset(self) -> RunPreset:
        """The preset with this config's overrides applied."""
        p = PRESETS[self.env, self.preset]
        fields = {k: getattr(self, k) for k in _OVERRIDES if k != "train_steps" and getattr(self, k) is not None}
        train_overrides = p.train | ({"steps": self.train_steps} if self.train_steps is not None else {})
        return dataclasses.replace(p, source=self.source or p.source, **fields, train=train_overrides)

    @property
    def run_dir(self) -> Path:
        return self.runs / (self.name or f"{self.env}-{self.preset}")


class Stages:
    """Runs stages in order, skipping those whose record still matches (module docstring)."""

    def __init__(self, run_dir: Path, quiet: bool) -> None:
        self.run_dir = run_dir
        self.quiet = quiet
        (run_dir / "stages").mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def _record_path(self, stage: str) -> Path:
        return self.run_dir / "stages" / f"{stage}.json"

    def _hashes(self, paths: list[Path]) -> dict[str, str | None]:
        return {str(p.relative_to(self.run_dir)): sha256_file(p) if p.is_file() else None for p in paths}

    def run(
        self,
        stage: str,
        config: dict[str, Any],
        inputs: list[Path],
        outputs: list[Path] | Callable[[], list[Path]],
        work: Callable[[], object],
    ) -> None:
        """Run `work` unless the stage's record matches `config`, the inputs' hashes and its outputs
        (a list, or a function listing them once the work is done)."""
        path = self._record_path(stage)
        key = {"config": config, "inputs": self._hashes(inputs)}
        if path.is_file():
            record = json.loads(path.read_text())
            if {k: record.get(k) for k in key} == key:
                current = self._hashes([self.run_dir / p for p in record["outputs"]])
                if current == record["outputs"]:
                    self.timings[stage] = record["seconds"]
                    self._say(f"[skip] {stage}: outputs verified ({record['seconds']:.0f} s when it ran)")
                    return
                for rel, digest in record["outputs"].items():  # keep nothing corrupt where a stage reads it
                    p = self.run_dir / rel
                    if p.is_file() and current[rel] != digest:
                        p.replace(p.with_name(p.name + ".corrupt"))
                        self._say(f"[redo] {stage}: {rel} does not match its record; moved to {p.name}.corrupt")
        self._say(f"[run] {stage}")
        t0 = time.perf_counter()
        work()
        seconds = time.perf_counter() - t0
        self.timings[stage] = seconds
        atomic_write_json(
            path,
            {
                **key,
                "outputs": self._hashes(outputs() if callable(outputs) else outputs),
                "seconds": seconds,
                "package_version": __version__,
            },
        )

    def _say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)


def run(cfg: RunConfig) -> Path:
    """`algodistill run`: every stage, resumable; returns the run directory."""
    preset = cfg.resolved_preset()
    family = get_family(cfg.env)
    root = cfg.run_dir
    pick_device(cfg.device)  # a missing CUDA device is reported before any work
    root.mkdir(parents=True, exist_ok=True)
    stages = Stages(root, cfg.quiet)

    # -- data: the source's learning histories (AD) and the expert's (ED), paper Sec. 4.2
    datasets = {}
    for kind, source, n in (("ad", preset.source, preset.histories), ("ed", "expert", preset.expert_histories)):
        gen = GenerateConfig(
            cfg.env,
            source=source,
            out=root / "data" / kind,
            histories=n,
            steps=preset.steps,
            seed=cfg.seed,
            shard_size=max(1, min(500, n)),
            workers=cfg.workers,
            quiet=cfg.quiet,
        )
        datasets[kind] = gen.out_dir
        stages.run(
            f"data-{kind}",
            gen.data_config(),
            [],
            partial(_dataset_files, gen.out_dir),
            partial(generate, gen),
        )

    # -- train AD and ED with the same config: they differ only in their data
    ckpts = {}
    for kind in ("ad", "ed"):
        tcfg = preset_config(
            cfg.preset,
            cfg.env,
            data=datasets[kind],
            out=root / kind,
            seed=cfg.seed,
            device=cfg.device,
            quiet=cfg.quiet,
            **preset.train,
        )
        ckpts[kind] = root / kind / "ckpt.pt"
        stages.run(
            f"train-{kind}",
            config_to_dict(tcfg),
            [datasets[kind] / "manifest.json"],
            [ckpts[kind]],
            partial(train, tcfg),
        )

    # -- in-context evaluation on held-out tasks (and AD on training tasks, for comparison)
    eval_dir = root / "eval"
    test_streams = eval_streams(family, "test", preset.tasks, preset.seeds)
    train_streams = eval_streams(family, "train", preset.tasks, preset.seeds)
    results = {name: eval_dir / f"{name}.npz" for name in ("ad", "ed", "source", "ad-train")}

    def evaluate_all() -> None:
        device = pick_device(cfg.device)
        for kind in ("ad", "ed"):
            model, _ = load_model(ckpts[kind], device=device)
            returns = rollout_model(model, family, test_streams, preset.episodes, seed=cfg.seed)
            save_returns(results[kind], returns, test_streams)
            if kind == "ad":
                returns = rollout_model(model, family, train_streams, preset.episodes, seed=cfg.seed)
                save_returns(results["ad-train"], returns, train_streams)
        returns = rollout_source(
            family,
            preset.source,
            test_streams,
            preset.episodes,
            history_steps=preset.steps,
            cfg=SourceConfig(),
            seed=cfg.seed,
        )
        save_returns(results["source"], returns, test_streams)

    eval_config = {
        "episodes": preset.episodes,
        "tasks": preset.tasks,
        "seeds": preset.seeds,
        "seed": cfg.seed,
        "source": preset.source,
        "history_steps": preset.steps,
        "source_config": dataclasses.asdict(SourceConfig()),
    }
    stages.run("evaluate", eval_config, list(ckpts.values()), list(results.values()), evaluate_all)

    # -- report
    def report() -> None:
        plot_losses(root / "loss.png", {kind: root / kind / "metrics.jsonl" for kind in ("ad", "ed")})
        curves = {k: np.load(results[k])["returns"] for k in ("ad", "ed", "source")}
        write_report(
            root,
            env=cfg.env,
            preset=cfg.preset,
            curves=curves,
            optimal=float(family.optimal_return(test_streams).mean()),
            random=float(family.random_return(test_streams).mean()),
            timings=dict(stages.timings),
            extra={
                "ad_on_training_tasks": np.load(results["ad-train"])["returns"].mean(axis=0).round(4).tolist(),
                "run_config": _jsonable(cfg),
            },
        )

    report_files = [root / f for f in ("report.json", "report.md", "curves.png", "loss.png")]
    stages.run("report", {"env": cfg.env, "preset": cfg.preset}, list(results.values()), report_files, report)
    # the resolved config of the finished run (written last: a refused re-run leaves the old one)
    atomic_write_json(root / "config.json", {"run": _jsonable(cfg), "preset": _jsonable(preset)})
    if not cfg.quiet:
        print((root / "report.md").read_text())
    return root


def _dataset_files(d: Path) -> list[Path]:
    return sorted([d / "manifest.json", *d.glob("shard-*.h5")])


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
