"""`algodistill run <env>`: from nothing to a report, one resumable stage at a time.

A run is `train_seeds` independent replicas, one per training seed s, each in runs/<name>/seed-<s>/,
then the baselines and the report in runs/<name>/. For every method m trained on data (AD, and ED while
`--baselines` names it), and for RL^2 when `--baselines` names rl2:

    seed-<s>/data-<m>     the histories m trains on (AD: the source's, ED: the expert's)   data/<m>/
    seed-<s>/train-<m>    its model                                                      <m>/ckpt.pt
    seed-<s>/eval-<m>     in context on every test condition, and on training tasks       eval/<m>*.npz
    seed-<s>/train-rl2    RL^2 trained online on the training tasks (`algodistill.rl2`)   rl2/ckpt.pt
    seed-<s>/eval-rl2     RL^2 frozen on the same streams as AD                           eval/rl2*.npz
    eval-source           the data's source from scratch on the same held-out streams     eval/source*.npz
    eval-source-tuned     the source with its schedule fitted to the evaluation budget    eval/source-tuned*.npz
    report                curves.png, loss.png, report.md, report.json

Every replica is evaluated on the same held-out streams (the evaluation seed is the run's `seed`), so
seeds differ only in their data and training. Replicas run side by side with `--workers`, or on
separate machines with `--replicas i/n`; the run that finds them all finished writes the report.
`algodistill.stages` skips a stage whose record still holds. This module only wires the stages: what
each method does is its own module (`algodistill.methods`), and every setting comes from the run's
`RunConfig`. The resolved configuration is written last, as `config.json`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from algodistill.atomic import atomic_write_json
from algodistill.checkpoint import CKPT_NAME, safe_torch_load
from algodistill.configs import MethodConfig, RunConfig, TrainJob, parse_replicas, run_hash
from algodistill.device import cpu_share, pick_device
from algodistill.envs import TaskFamily, get_family
from algodistill.errors import check_output
from algodistill.evaluate import eval_streams, evaluate_checkpoint, evaluate_policy, rollout_source, save_returns
from algodistill.generate import GenerateConfig, generate
from algodistill.jsonio import jsonable, read_json
from algodistill.methods import get_method
from algodistill.methods.rl2 import RL2Policy
from algodistill.presets import rl2_preset
from algodistill.progress import print_stage_table
from algodistill.report import Condition, plot_losses, write_report
from algodistill.rl2 import RL2TrainConfig, env_steps, fit_rl2, load_rl2
from algodistill.sources import SourceConfig
from algodistill.stages import Stages, recorded_seconds
from algodistill.train import train
from algodistill.tuning import candidates, tune_source

BASELINE_STYLES = {"source": ("source", "C2"), "source-tuned": ("source (tuned to budget)", "C7")}
"""Label and colour of the baselines' curves."""


def resolved_config(cfg: RunConfig) -> dict[str, object]:
    """The run's configuration as `algodistill config` prints it (and `--config` reads it back)."""
    return {"run_hash": run_hash(cfg), **jsonable(cfg)}


def run(cfg: RunConfig, reuse: Sequence[Path] = ()) -> Path:
    """`algodistill run`: every stage, resumable; returns the run directory. `reuse`: other run directories
    whose finished stages are taken where their config and inputs agree (`Stages`; a study's runs)."""
    family = get_family(cfg.env)
    root = cfg.run_dir
    check_output(cfg.runs, "runs", directory=True)
    check_output(root, "name", directory=True)
    pick_device(cfg.device)  # a missing CUDA device is reported before any work
    if "rl2" in cfg.baseline_list:
        _rl2_config(cfg, cfg.seed)  # and an env or preset without an RL^2 preset
    root.mkdir(parents=True, exist_ok=True)

    # -- replicas: data, training and in-context evaluation of every method, one training seed each
    i, n = parse_replicas(cfg.replicas)
    mine = cfg.train_seed_list[i::n]
    timings: dict[str, float] = {}
    ran: dict[str, bool] = {}  # whether each stage ran (or was skipped), for the closing table
    if cfg.workers > 1 and len(mine) > 1:
        ctx = multiprocessing.get_context("spawn")  # no forked torch/h5py state in the workers
        with ctx.Pool(min(cfg.workers, len(mine)), initializer=_share_cores, initargs=(cfg.workers,)) as pool:
            results = pool.map(partial(_replica, cfg, reuse=reuse), mine)
    else:
        results = [_replica(cfg, seed, reuse) for seed in mine]
    for t, r in results:
        timings |= t
        ran |= r
    missing = [s for s in cfg.train_seed_list if not all(p.is_file() for p in _replica_files(cfg, s))]
    if missing:
        if not cfg.quiet:
            print(f"replicas of training seeds {missing} are not finished: run again once they are, for the report")
        print_stage_table(timings, ran, quiet=cfg.quiet)
        return root

    # -- baselines on every test condition's held-out streams: the data's source and the source tuned
    stages = Stages(root, cfg.quiet, reuse=reuse)
    streams = {c: eval_streams(family, split, cfg.eval.tasks, cfg.eval.streams_per_task) for c, split in _conds(family)}
    baselines = {
        name: {c: root / "eval" / f"{name}{_suffix(split)}.npz" for c, split in _conds(family)}
        for name in BASELINE_STYLES
        if "source" in cfg.baseline_list
    }
    record = {
        **jsonable(cfg.eval),
        "seed": cfg.seed,
        "source": cfg.data.source,
        "history_steps": cfg.data.steps,
        "source_config": jsonable(cfg.data.sources),
    }
    tuned_json = root / "eval" / "source-tuned.json"
    if baselines:
        stages.run(
            "eval-source",
            record,
            [],
            list(baselines["source"].values()),
            partial(_source, cfg, streams, baselines["source"], cfg.data.steps, cfg.data.sources),
        )
        outputs = [*baselines["source-tuned"].values(), tuned_json]
        grid = [setting for setting, _ in candidates(cfg.data.source, cfg.data.sources)]
        stages.run(
            "eval-source-tuned",
            {**record, "grid": grid},  # a widened grid re-tunes a finished run
            [],
            outputs,
            partial(_source_tuned, cfg, streams, baselines["source-tuned"], tuned_json),
        )
    timings |= stages.timings

    # -- report
    evaluated = _evaluated(cfg)
    styles = {name: (get_method(name).label, get_method(name).color) for name in evaluated} | BASELINE_STYLES

    main_name = next(c for c, split in _conds(family) if split == "test")

    def report() -> None:
        metrics = {
            m: [_replica_dir(cfg, s) / m / "metrics.jsonl" for s in cfg.train_seed_list] for m in cfg.trained_methods
        }
        plot_losses(root / "loss.png", metrics, styles)
        conditions = {}
        for c, split in _conds(family):
            conditions[c] = Condition(
                trained={s: {m: _returns(_result(cfg, s, m, split)) for m in evaluated} for s in cfg.train_seed_list},
                baselines={name: _returns(files[c]) for name, files in baselines.items()},
                tasks=streams[c],
                optimal=float(family.optimal_return(streams[c]).mean()),
                random=float(family.random_return(streams[c]).mean()),
            )
        on_train = {
            m: np.mean([_returns(_result(cfg, s, m, "train")).mean(0) for s in cfg.train_seed_list], axis=0)
            .round(4)
            .tolist()
            for m in evaluated
        }
        extra: dict[str, object] = {"on_training_tasks": on_train, "cost": _cost(cfg)}
        if baselines:
            extra["source_tuned"] = read_json(tuned_json, "re-run to redo the eval-source-tuned stage")
        write_report(
            root,
            env=cfg.env,
            preset=cfg.preset,
            conditions=conditions,
            main_name=main_name,
            styles=styles,
            task_optimal=family.optimal_return,
            describe_task=family.describe_task,
            timings=timings,
            extra={**extra, "run_config": resolved_config(cfg)},
            frames=family.frame_strip(int(streams[main_name][0])),
        )

    inputs = [p for s in cfg.train_seed_list for p in _replica_files(cfg, s)]
    inputs += [p for files in baselines.values() for p in files.values()] + ([tuned_json] if baselines else [])
    report_files = [root / f for f in ("report.json", "report.md", "curves.png", "loss.png", "frames.png")]
    report_record: dict[str, object] = {
        "env": cfg.env,
        "preset": cfg.preset,
        "methods": evaluated,
        "seeds": cfg.train_seed_list,
    }
    if "rl2" in cfg.baseline_list:  # the report says how RL^2 was evaluated
        report_record["rl2_carry"] = cfg.rl2_carry
    stages.run("report", report_record, inputs, lambda: [p for p in report_files if p.is_file()], report)
    # the resolved config of the finished run (written last: a refused re-run leaves the old one)
    atomic_write_json(root / "config.json", resolved_config(cfg))
    if not cfg.quiet:
        print((root / "report.md").read_text())
    print_stage_table(timings | stages.timings, ran | stages.ran, quiet=cfg.quiet)  # the report's included
    return root


def _replica(cfg: RunConfig, seed: int, reuse: Sequence[Path] = ()) -> tuple[dict[str, float], dict[str, bool]]:
    """Data, training and evaluation of every method with training seed `seed`; returns its stages'
    timings and whether each ran (`Stages.timings`, `Stages.ran`), keyed seed-<s>/<stage>."""
    root = _replica_dir(cfg, seed)
    stages = Stages(root, cfg.quiet, label=f"seed-{seed}/", reuse=[d / root.name for d in reuse])
    family = get_family(cfg.env)
    device = pick_device(cfg.device)
    parallel = cfg.workers > 1 and cfg.train_seeds > 1  # the workers already run replicas side by side
    for name, m in cfg.trained_methods.items():
        # data: the method's histories (paper Sec. 4.2); the same length for all, seeded by the replica
        gen = _generate_config(cfg, name, m, seed, workers=1 if parallel else cfg.workers)
        stages.run(f"data-{name}", gen.data_config(), [], partial(_dataset_files, gen.out_dir), partial(generate, gen))
        # training: every method with the same model and optimisation settings
        ckpt = root / name / CKPT_NAME
        job = TrainJob(
            env=cfg.env,
            method=name,
            data=gen.out_dir,
            out=ckpt.parent,
            preset=cfg.preset,
            seed=seed,
            model=cfg.model,
            train=cfg.train,
            device=cfg.device,
            quiet=cfg.quiet,
        )
        outputs = [ckpt, ckpt.parent / "metrics.jsonl"]  # the report reads the loss curve
        stages.run(f"train-{name}", job.record(), [gen.out_dir / "manifest.json"], outputs, partial(train, job))
        # in context on every test condition, and on training tasks for comparison; the run's eval seed
        out = {split: _result(cfg, seed, name, split) for split in _eval_splits(family)}
        work = partial(_evaluate, ckpt, cfg, out, device)
        stages.run(f"eval-{name}", {**jsonable(cfg.eval), "seed": cfg.seed}, [ckpt], list(out.values()), work)
    if "rl2" in cfg.baseline_list:
        # RL^2 trained online on the training tasks for its env-step budget (paper Sec. 4.2, Table 6), then
        # evaluated frozen on the same streams as AD
        rl2 = _rl2_config(cfg, seed)
        ckpt = rl2.out_dir / CKPT_NAME
        stages.run("train-rl2", {**rl2.record(), "steps": rl2.steps}, [], [ckpt], partial(fit_rl2, rl2, device))
        out = {split: _result(cfg, seed, "rl2", split) for split in _eval_splits(family)}
        work = partial(_evaluate_rl2, ckpt, cfg, out, device)
        eval_key = {**jsonable(cfg.eval), "seed": cfg.seed, "carry": cfg.rl2_carry}
        stages.run("eval-rl2", eval_key, [ckpt], list(out.values()), work)
    prefix = f"seed-{seed}/"
    return {prefix + k: v for k, v in stages.timings.items()}, {prefix + k: v for k, v in stages.ran.items()}


def _share_cores(workers: int) -> None:
    """Replica workers split the machine's cores between them instead of each taking all."""
    torch.set_num_threads(cpu_share(workers))


def _conds(family: TaskFamily) -> list[tuple[str, str]]:
    """(condition, split) of every test condition of the env."""
    return list(family.conditions.items())


def _eval_splits(family: TaskFamily) -> list[str]:
    return [split for _, split in _conds(family)] + ["train"]


def _suffix(split: str) -> str:
    """Results file suffix of an evaluation split: none for "test", "-<split>" otherwise."""
    return "" if split == "test" else f"-{split}"


def _replica_dir(cfg: RunConfig, seed: int) -> Path:
    return cfg.run_dir / f"seed-{seed}"


def _result(cfg: RunConfig, seed: int, method: str, split: str) -> Path:
    return _replica_dir(cfg, seed) / "eval" / f"{method}{_suffix(split)}.npz"


def _evaluated(cfg: RunConfig) -> list[str]:
    """The curves with a training seed: the methods trained on data, then RL^2 when it is a baseline."""
    return list(cfg.trained_methods) + (["rl2"] if "rl2" in cfg.baseline_list else [])


def _replica_files(cfg: RunConfig, seed: int) -> list[Path]:
    """What the report reads from a replica: every method's results and training metrics (RL^2: its checkpoint,
    for the env steps it consumed)."""
    splits = _eval_splits(get_family(cfg.env))
    metrics = [_replica_dir(cfg, seed) / m / "metrics.jsonl" for m in cfg.trained_methods]
    if "rl2" in cfg.baseline_list:
        metrics.append(_rl2_config(cfg, seed).out_dir / CKPT_NAME)
    return metrics + [_result(cfg, seed, m, split) for m in _evaluated(cfg) for split in splits]


def _generate_config(cfg: RunConfig, name: str, m: MethodConfig, seed: int, workers: int) -> GenerateConfig:
    """The `algodistill generate` config of method `name`'s dataset in the replica of training seed `seed`."""
    return GenerateConfig(
        cfg.env,
        source=get_method(name).data_source(cfg.data.source),
        out=_replica_dir(cfg, seed) / "data" / name,
        histories=m.histories,
        steps=cfg.data.steps,
        tasks=cfg.data.tasks,
        seed=seed,
        shard_size=min(cfg.data.shard_size, m.histories),
        workers=workers,
        sources=cfg.data.sources,
        quiet=cfg.quiet,
    )


def _evaluate(ckpt: Path, cfg: RunConfig, out: dict[str, Path], device: torch.device) -> None:
    results = evaluate_checkpoint(ckpt, cfg.eval, list(out), seed=cfg.seed, device=device, quiet=cfg.quiet)
    for split, (returns, streams) in results.items():
        save_returns(out[split], returns, streams)


def _source(
    cfg: RunConfig, streams: dict[str, np.ndarray], out: dict[str, Path], history_steps: int, sources: SourceConfig
) -> None:
    """The source learning from scratch on each condition's held-out streams, its schedules spanning
    `history_steps` (the data's: the same env steps as the data; or the budget's, when tuned)."""
    family = get_family(cfg.env)
    for c, stream_tasks in streams.items():
        returns = rollout_source(
            family,
            cfg.data.source,
            stream_tasks,
            cfg.eval.episodes,
            history_steps=history_steps,
            cfg=sources,
            seed=cfg.seed,
        )
        save_returns(out[c], returns, stream_tasks)


def _source_tuned(cfg: RunConfig, streams: dict[str, np.ndarray], out: dict[str, Path], chosen: Path) -> None:
    """The source tuned to the evaluation budget on training tasks (`algodistill.tuning`), then from scratch
    on the held-out streams; the chosen setting and every candidate's score go to `chosen`."""
    tuned = tune_source(get_family(cfg.env), cfg.data.source, cfg.data.sources, cfg.eval.episodes, seed=cfg.seed)
    _source(cfg, streams, out, tuned.history_steps, tuned.cfg)
    atomic_write_json(chosen, {"setting": tuned.setting, "history_steps": tuned.history_steps, "scores": tuned.scores})


def _rl2_config(cfg: RunConfig, seed: int) -> RL2TrainConfig:
    """RL^2 of the replica of training seed `seed`: the rl2 preset of the run's env and preset."""
    preset = rl2_preset(cfg.env, cfg.preset)
    return dataclasses.replace(
        preset,
        out=_replica_dir(cfg, seed) / "rl2",
        seed=seed,
        steps=cfg.rl2_steps or preset.steps,
        device=cfg.device,
        quiet=cfg.quiet,
    )


def _evaluate_rl2(ckpt: Path, cfg: RunConfig, out: dict[str, Path], device: torch.device) -> None:
    """RL^2 frozen on each split's streams, its recurrent state carried across the whole evaluation (or reset
    every trial with --no-rl2-carry; `RL2Policy` says why)."""
    net, _ = load_rl2(ckpt, device)
    family = get_family(cfg.env)
    for split, path in out.items():
        label = None if cfg.quiet else f"evaluate rl2 on {split}"
        returns, streams = evaluate_policy(
            RL2Policy(net, carry=cfg.rl2_carry), family, split, cfg.eval, seed=cfg.seed, device=device, label=label
        )
        save_returns(path, returns, streams)


def _cost(cfg: RunConfig) -> dict[str, dict[str, float]]:
    """What each curve consumed before its evaluation, mean per training seed: env steps (AD and ED: their
    dataset's; RL^2: its online training; the source: none, it learns during the evaluation) and wall
    seconds (data + training; RL^2 training; the source's evaluation), read from the stages' records so
    that replicas run on other machines count too."""
    seeds = cfg.train_seed_list

    def seconds(stages: list[str]) -> float:
        return float(np.mean([sum(recorded_seconds(_replica_dir(cfg, s), st) for st in stages) for s in seeds]))

    cost = {
        m: {"env_steps": float(mc.histories * cfg.data.steps), "seconds": seconds([f"data-{m}", f"train-{m}"])}
        for m, mc in cfg.trained_methods.items()
    }
    if "rl2" in cfg.baseline_list:
        steps = [env_steps(safe_torch_load(_rl2_config(cfg, s).out_dir / CKPT_NAME)) for s in seeds]
        cost["rl2"] = {"env_steps": float(np.mean(steps)), "seconds": seconds(["train-rl2"])}
    if "source" in cfg.baseline_list:  # (the tuned source's search on training tasks is not counted: left out)
        cost["source"] = {"env_steps": 0.0, "seconds": recorded_seconds(cfg.run_dir, "eval-source")}
    return cost


def _returns(path: Path) -> np.ndarray:
    return np.load(path)["returns"]


def _dataset_files(d: Path) -> list[Path]:
    return sorted([d / "manifest.json", *d.glob("shard-*.h5")])
