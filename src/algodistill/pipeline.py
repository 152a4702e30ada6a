"""`algodistill run <env>`: from nothing to a report, one resumable stage at a time.

Stages, for every method of the run (AD and ED by default; each writes under runs/<name>/):

    data-<m>     the histories method m trains on (AD: the source's, ED: the expert's)   data/<m>/
    train-<m>    its model                                                              <m>/ckpt.pt
    eval-<m>     in context on held-out tasks, and on training tasks for comparison     eval/<m>*.npz
    eval-source  the source algorithm from scratch on the held-out streams              eval/source.npz
    report       curves.png, loss.png, report.md, report.json

`algodistill.stages` skips a stage whose record still holds. This module only wires the stages: what
each method does is its own module (`algodistill.methods`), and every setting comes from the run's
`RunConfig` (a preset from `algodistill.presets`, with overrides). The resolved configuration is
written last, as `config.json`, in the form `algodistill config` prints and `--config` reads.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from algodistill.atomic import atomic_write_json
from algodistill.checkpoint import CKPT_NAME
from algodistill.configs import MethodConfig, RunConfig, TrainJob, run_hash
from algodistill.device import pick_device
from algodistill.envs import get_family
from algodistill.errors import check_output
from algodistill.evaluate import eval_streams, evaluate_checkpoint, rollout_source, save_returns
from algodistill.generate import GenerateConfig, generate
from algodistill.jsonio import jsonable
from algodistill.methods import get_method
from algodistill.report import plot_losses, write_report
from algodistill.stages import Stages
from algodistill.train import train

SOURCE_STYLE = ("source", "C2")
"""Label and colour of the source baseline's curves."""


def resolved_config(cfg: RunConfig) -> dict[str, object]:
    """The run's configuration as `algodistill config` prints it (and `--config` reads it back)."""
    return {"run_hash": run_hash(cfg), **jsonable(cfg)}


def run(cfg: RunConfig) -> Path:
    """`algodistill run`: every stage, resumable; returns the run directory."""
    family = get_family(cfg.env)
    root = cfg.run_dir
    check_output(cfg.runs, "runs", directory=True)
    check_output(root, "name", directory=True)
    device = pick_device(cfg.device)  # a missing CUDA device is reported before any work
    root.mkdir(parents=True, exist_ok=True)
    stages = Stages(root, cfg.quiet)

    # -- data: each method's histories (paper Sec. 4.2); the same length and seed for all
    data = {name: _generate_config(cfg, name, m) for name, m in cfg.methods.items()}
    for name, gen in data.items():
        files = partial(_dataset_files, gen.out_dir)
        stages.run(f"data-{name}", gen.data_config(), [], files, partial(generate, gen))

    # -- train every method with the same model and optimisation settings
    ckpts = {name: root / name / CKPT_NAME for name in cfg.methods}
    for name, gen in data.items():
        job = TrainJob(
            env=cfg.env,
            method=name,
            data=gen.out_dir,
            out=ckpts[name].parent,
            preset=cfg.preset,
            seed=cfg.seed,
            model=cfg.model,
            train=cfg.train,
            device=cfg.device,
            quiet=cfg.quiet,
        )
        stages.run(f"train-{name}", job.record(), [gen.out_dir / "manifest.json"], [ckpts[name]], partial(train, job))

    # -- in-context evaluation on held-out tasks (and on training tasks), and the source from scratch
    eval_dir = root / "eval"
    results = {name: {split: eval_dir / f"{name}{suffix}.npz" for split, suffix in _SPLITS.items()} for name in ckpts}
    eval_record = {**jsonable(cfg.eval), "seed": cfg.seed}
    for name, ckpt in ckpts.items():
        work = partial(_evaluate, ckpt, cfg, results[name], device)
        stages.run(f"eval-{name}", eval_record, [ckpt], list(results[name].values()), work)
    test_streams = eval_streams(family, "test", cfg.eval.tasks, cfg.eval.streams_per_task)
    source_npz = eval_dir / "source.npz"
    source_record = eval_record | {
        "source": cfg.data.source,
        "history_steps": cfg.data.steps,
        "source_config": jsonable(cfg.data.sources),
    }
    stages.run("eval-source", source_record, [], [source_npz], partial(_evaluate_source, cfg, test_streams, source_npz))

    # -- report
    styles = {name: (get_method(name).label, get_method(name).color) for name in cfg.methods} | {"source": SOURCE_STYLE}

    def report() -> None:
        plot_losses(root / "loss.png", {name: root / name / "metrics.jsonl" for name in cfg.methods}, styles)
        curves = {name: np.load(r["test"])["returns"] for name, r in results.items()}
        curves["source"] = np.load(source_npz)["returns"]
        on_train = {name: np.load(r["train"])["returns"].mean(axis=0).round(4).tolist() for name, r in results.items()}
        write_report(
            root,
            env=cfg.env,
            preset=cfg.preset,
            curves=curves,
            styles=styles,
            optimal=float(family.optimal_return(test_streams).mean()),
            random=float(family.random_return(test_streams).mean()),
            timings=dict(stages.timings),
            extra={"on_training_tasks": on_train, "run_config": resolved_config(cfg)},
        )

    inputs = [p for r in results.values() for p in r.values()] + [source_npz]
    report_files = [root / f for f in ("report.json", "report.md", "curves.png", "loss.png")]
    stages.run(
        "report", {"env": cfg.env, "preset": cfg.preset, "methods": list(cfg.methods)}, inputs, report_files, report
    )
    # the resolved config of the finished run (written last: a refused re-run leaves the old one)
    atomic_write_json(root / "config.json", resolved_config(cfg))
    if not cfg.quiet:
        print((root / "report.md").read_text())
    return root


_SPLITS = {"test": "", "train": "-train"}  # evaluation split -> suffix of its results file


def _generate_config(cfg: RunConfig, name: str, m: MethodConfig) -> GenerateConfig:
    """The `algodistill generate` config of method `name`'s dataset."""
    return GenerateConfig(
        cfg.env,
        source=get_method(name).data_source(cfg.data.source),
        out=cfg.run_dir / "data" / name,
        histories=m.histories,
        steps=cfg.data.steps,
        seed=cfg.seed,
        shard_size=min(cfg.data.shard_size, m.histories),
        workers=cfg.workers,
        sources=cfg.data.sources,
        quiet=cfg.quiet,
    )


def _evaluate(ckpt: Path, cfg: RunConfig, out: dict[str, Path], device: torch.device) -> None:
    results = evaluate_checkpoint(ckpt, cfg.eval, list(out), seed=cfg.seed, device=device)
    for split, (returns, streams) in results.items():
        save_returns(out[split], returns, streams)


def _evaluate_source(cfg: RunConfig, streams: np.ndarray, out: Path) -> None:
    family = get_family(cfg.env)
    returns = rollout_source(
        family,
        cfg.data.source,
        streams,
        cfg.eval.episodes,
        history_steps=cfg.data.steps,
        cfg=cfg.data.sources,
        seed=cfg.seed,
    )
    save_returns(out, returns, streams)


def _dataset_files(d: Path) -> list[Path]:
    return sorted([d / "manifest.json", *d.glob("shard-*.h5")])
