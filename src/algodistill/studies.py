"""`algodistill ablate <study> <env>`: the paper's ablations as resumable sets of runs (paper Sec. 5, App. E-I).

A study is a preset of the registry plus the fields it sweeps. Each variant is a `RunConfig` that
`pipeline.run` runs in runs/<name>/<label>/, taking every stage an earlier variant finished with the same
config and inputs (`Stages` reuse: one dataset for a context sweep, one model for a decoding sweep), so a
stopped study resumes and nothing agreeing is computed twice. The study then writes ablation.json,
ablation.png and report.md (our numbers beside the paper's) in runs/<name>/.

| study | sweeps | paper |
|---|---|---|
| prompt | AD and ED with a context pre-filled by a held-out source history at levels of optimality | Fig. 5 |
| context | the model's context, in steps | Fig. 7 |
| tasks | the number of training tasks the histories run on | Fig. 12 |
| single-stream | one source learner per training task, every k-th episode kept | Fig. 6, App. I |
| data | the source algorithm and the subsampling rate k | App. E-I |
| decoding | sampled (at temperatures) against greedy actions | App. B |

The "final return" of a variant is AD's mean over the last 10% of its evaluation episodes, per training
seed; the mean over all episodes is kept beside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tyro

from algodistill import pipeline
from algodistill.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from algodistill.checkpoint import CKPT_NAME, load_model
from algodistill.configs import RunConfig, TrainConfig
from algodistill.device import DeviceName, pick_device
from algodistill.envs import TaskFamily, get_family
from algodistill.errors import UserError, check_output
from algodistill.evaluate import Prompt, eval_streams, rollout_policy, save_returns, source_history
from algodistill.jsonio import jsonable, read_json
from algodistill.methods import get_method
from algodistill.presets import get_preset, load_run_config
from algodistill.sources import SOURCE_NAMES
from algodistill.stages import Stages
from algodistill.stats import last10pct

STUDY_NAMES = ("prompt", "context", "tasks", "single-stream", "data", "decoding")

PROMPT_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Fig. 5's levels of optimality."""
PROMPT_EPISODES = {"quick": 50, "paper": 1250}
"""Episodes run after a prompt: the paper's 25k Dark Room steps; quick stops once AD has converged."""
PAPER_VALUES: dict[str, dict[str, str]] = {
    "prompt": {
        "0.05": "AD ≈0.7 -> 13.6, ED ≈1.6",
        "0.25": "AD ≈4 -> 15.9, ED ≈6.5",
        "0.5": "AD ≈7.3 -> 16.3, ED ≈11.4",
        "0.75": "AD ≈12.4 -> 16.3, ED ≈13.9",
        "0.95": "AD ≈15.5 -> 16.4, ED ≈16.8",
    },
    "context": {"20": "≈0.55", "30": "≈0.63", "40": "≈0.88", "50": "≈1.12", "100": "≈1.75", "200": "≈1.83"},
    "single-stream": {"paper": "Key-to-Door at 50k steps: AD ≈1.82, single-actor A3C ≈1.35 (k = 10)"},
    "tasks": {"paper": "Key-to-Door after 300 episodes: ≈0.45 with 1 task, ≈0.84 with 75, ≈1.87 with 1212"},
}
"""The paper's numbers (Fig. 5 at 25k steps; Fig. 7, Key-to-Door final return by context; Figs. 6 and 12)."""


@dataclass(frozen=True)
class AblateConfig:
    """Run one of the paper's ablations: a preset and the values one of its fields takes."""

    study: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="STUDY")]
    """prompt, context, tasks, single-stream, data or decoding (see `algodistill.studies`)"""
    env: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV")]
    """task family, e.g. darkroom (prompt), keydoor (context)"""
    scale: Literal["quick", "paper"] = "quick"
    """the preset the variants start from: quick (this machine) or paper (the paper's sizes; GPU)"""
    values: tuple[float, ...] = ()
    """the swept values (default: the study's): prompt levels in (0, 1], context sizes in steps, subsampling
    rates k (single-stream, data), numbers of training tasks, or sampling temperatures (decoding; greedy is
    always added)"""
    sources: tuple[str, ...] = ()
    """data: the source algorithms compared (default: qlearning and noise; paper scale adds a2c)"""
    base: Path | None = None
    """a run configuration to start from instead of the preset (`algodistill config ENV [--flags] > FILE`)"""
    seed: int = 0
    """seed of the evaluation streams and the first training seed"""
    train_seeds: int = 1
    """training seeds of every variant (the figure shows each and the worst)"""
    name: str | None = None
    """study name (default: <study>-<env>-<scale>); it lives in <runs>/<name>/"""
    runs: Path = Path("runs")
    """directory holding the runs"""
    workers: int = 1
    """processes of each variant's run (replicas side by side, or data shards)"""
    device: DeviceName = "auto"
    """training and evaluation device"""
    quiet: bool = False
    """print nothing but errors"""

    def __post_init__(self) -> None:
        if self.study not in STUDY_NAMES:
            raise UserError(f"study={self.study!r} is unknown: choose one of {', '.join(STUDY_NAMES)}")
        if self.base is not None and (env := load_run_config(self.base).env) != self.env:
            raise UserError(f"base={self.base} is a run of env={env!r}, not {self.env!r}: pass a config of {self.env}")
        get_preset(self.env, self.scale)  # an env without a preset, named with the choices
        if self.study == "prompt":
            for v in self.values:
                if not 0.0 < v <= 1.0:
                    raise UserError(f"values: prompt level {v} is outside (0, 1]: give fractions of optimal, e.g. 0.5")
        elif self.study == "decoding":
            for v in self.values:
                if not v > 0:
                    raise UserError(f"values: temperature {v} must be positive: choose e.g. 0.5 2")
        else:
            for v in self.values:
                if v != int(v) or v < 1:
                    raise UserError(f"values: {v} is not a positive integer: give steps (context) or rates k")
        for s in self.sources:
            if s not in SOURCE_NAMES:
                raise UserError(f"sources: {s!r} is unknown: choose among {', '.join(SOURCE_NAMES)}")
        check_output(self.study_dir, "name", directory=True)

    @property
    def study_dir(self) -> Path:
        return self.runs / (self.name or f"{self.study}-{self.env}-{self.scale}")


@dataclass(frozen=True)
class Variant:
    """One run of a study: its label, the group it is plotted in, its x value and its configuration."""

    label: str
    group: str
    x: float
    run: RunConfig


def _context_values(env: str) -> tuple[float, ...]:
    """Fig. 7's 20-200 steps on Key-to-Door (50-step episodes); elsewhere the same fractions of an episode."""
    H = get_family(env).spec.episode_length
    return tuple(float(max(1, round(f * H))) for f in (0.4, 0.6, 0.8, 1, 2, 4))


def variants(cfg: AblateConfig) -> list[Variant]:
    """Every run of the study, configured and checked (a bad value fails here, before any work)."""
    base = dataclasses.replace(
        load_run_config(cfg.base) if cfg.base is not None else get_preset(cfg.env, cfg.scale),
        seed=cfg.seed,
        train_seeds=cfg.train_seeds,
        runs=cfg.study_dir,
        workers=cfg.workers,
        device=cfg.device,
        quiet=cfg.quiet,
    )

    def make(label: str, group: str, x: float, **changes: Any) -> Variant:
        try:
            return Variant(label, group, x, dataclasses.replace(base, name=label, **changes))
        except UserError as e:
            raise UserError(f"{cfg.study} value {x:g}: {e}") from None

    if cfg.study == "prompt":  # one model per seed, evaluated from every prompt afterwards (`run_prompts`)
        return [make("model", "AD", 0.0, baselines="ed")]
    if cfg.study == "context":
        return [
            make(f"context-{int(c)}", "AD", c, baselines="", model=dataclasses.replace(base.model, context=int(c)))
            for c in cfg.values or _context_values(cfg.env)
        ]
    if cfg.study == "tasks":  # the same histories per run, over fewer distinct tasks (Fig. 12)
        n_train = len(get_family(cfg.env).split("train"))
        counts = cfg.values or tuple(float(max(1, n_train // d)) for d in (16, 4, 1))
        return [
            make(f"tasks-{int(n)}", "AD", n, baselines="", data=dataclasses.replace(base.data, tasks=int(n)))
            for n in counts
        ]
    if cfg.study == "single-stream":  # one learner per training task (Fig. 6), against the source itself
        tasks = len(get_family(cfg.env).split("train"))
        methods = {**base.methods, "ad": dataclasses.replace(base.methods["ad"], histories=tasks)}
        return [
            make(f"k-{int(k)}", "AD", k, baselines="source", methods=methods, train=_subsample(base, k))
            for k in cfg.values or sorted({1, 10, base.train.subsample})
        ]
    if cfg.study == "data":
        default_sources = ("qlearning", "noise") if cfg.scale == "quick" else ("qlearning", "a2c", "noise")
        out = []
        for source in cfg.sources or default_sources:
            data = dataclasses.replace(base.data, source=source)
            for k in cfg.values or ((1, 10, 40) if cfg.scale == "quick" else (1, 5, 10, 20)):
                out.append(make(f"{source}-k{int(k)}", source, k, baselines="", data=data, train=_subsample(base, k)))
        return out
    # decoding: the same model sampled at each temperature, and greedy (plotted at x = 0)
    evals = [("greedy", 0.0, dataclasses.replace(base.eval, greedy=True))]
    evals += [(f"t-{t:g}", t, dataclasses.replace(base.eval, temperature=t)) for t in cfg.values or (0.5, 1.0, 2.0)]
    return [make(label, "AD", x, baselines="", eval=ev) for label, x, ev in evals]


def _subsample(base: RunConfig, k: float) -> TrainConfig:
    return dataclasses.replace(base.train, subsample=int(k))


def ablate(cfg: AblateConfig) -> Path:
    """`algodistill ablate`: every variant's run (stages reused across variants), then the study's files."""
    runs = variants(cfg)
    pick_device(cfg.device)
    cfg.study_dir.mkdir(parents=True, exist_ok=True)
    done: list[Path] = []
    for v in runs:
        if not cfg.quiet:
            print(f"== {cfg.study}: {v.label}", flush=True)
        done.append(pipeline.run(v.run, reuse=done))
    control = ("name", "runs", "workers", "device", "quiet")  # how the study ran, not what it computed
    result: dict[str, Any] = {k: v for k, v in jsonable(cfg).items() if k not in control}
    if cfg.study == "prompt":
        result |= run_prompts(cfg, runs[0].run)
        _plot_prompts(cfg.study_dir / "ablation.png", result, cfg.env)
    else:
        result |= {"variants": [_variant_result(v) for v in runs]}
        _plot_sweep(cfg.study_dir / "ablation.png", cfg, result)
    result["paper"] = PAPER_VALUES.get(cfg.study, {})
    atomic_write_json(cfg.study_dir / "ablation.json", result)
    atomic_write_bytes(cfg.study_dir / "report.md", _markdown(cfg, result).encode())
    if not cfg.quiet:
        print((cfg.study_dir / "report.md").read_text())
    return cfg.study_dir


def _variant_result(v: Variant) -> dict[str, Any]:
    """AD's final return (last 10% of episodes) and mean over all episodes per seed, from the run's report;
    the source's beside it when the run has one."""
    report = read_json(v.run.run_dir / "report.json", "re-run the study to redo its report")
    ad = report["summary"]["ad"]["seeds"]
    seeds = {s: {"last10": round(r["return_last10pct"], 4), "mean": round(r["auc"], 4)} for s, r in ad.items()}
    out: dict[str, Any] = {"label": v.label, "group": v.group, "x": v.x, "seeds": seeds}
    out["last10"] = round(float(np.mean([r["last10"] for r in seeds.values()])), 4)
    out["mean"] = round(float(np.mean([r["mean"] for r in seeds.values()])), 4)
    worst = min(seeds, key=lambda s: seeds[s]["last10"])
    out["worst_seed"] = {"seed": int(worst), **seeds[worst]}
    if "source" in report["summary"]:
        out["source"] = {"last10": report["summary"]["source"]["return_last10pct"]}
    return out


# -- prompting (paper Fig. 5)


def choose_episodes(returns: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """Per stream, the n episodes whose return is nearest its target (the earliest among ties), in history
    order. returns (S, E), target (S,) -> indices (S, n)"""
    order = np.argsort(np.abs(returns - target[:, None]), axis=1, kind="stable")  # (S, E)
    return np.sort(order[:, :n], axis=1)


def make_prompts(
    family: TaskFamily, run: RunConfig, stream_tasks: np.ndarray, levels: tuple[float, ...]
) -> dict[float, tuple[Prompt, np.ndarray]]:
    """{level: (prompt, its return per stream as a fraction of optimal)}: the data's source learning from
    scratch on each held-out stream for one history (its own schedule), and from that history the
    context's worth of episodes whose return is nearest level x optimal. The paper prompts with "a policy
    taken from a held-out source history at X% optimality" (Fig. 5); whole episodes of that history at the
    level are our reading of it."""
    S, H = len(stream_tasks), family.spec.episode_length
    steps = run.data.steps
    data = source_history(
        family, run.data.source, stream_tasks, steps, history_steps=steps, cfg=run.data.sources, seed=run.seed
    )
    E = steps // H
    obs = data["obs"][:, : E * H]
    if family.spec.stored_shape is not None:
        obs = family.decode_obs(obs)
    obs = obs.reshape(S, E, H, *family.spec.obs_shape)
    actions = data["actions"][:, : E * H].reshape(S, E, H).astype(np.int64)
    rewards = data["rewards"][:, : E * H].reshape(S, E, H)
    optimal = family.optimal_return(stream_tasks)  # (S,)
    n = max(1, run.model.context // H)  # the context's worth of whole episodes
    rows = np.arange(S)[:, None]
    out = {}
    for level in levels:
        idx = choose_episodes(rewards.sum(-1), level * optimal, n)  # (S, n)
        prompt = Prompt(
            obs=obs[rows, idx].reshape(S, n * H, *family.spec.obs_shape),
            actions=actions[rows, idx].reshape(S, n * H),
            rewards=rewards[rows, idx].reshape(S, n * H),
        )
        out[level] = (prompt, rewards[rows, idx].sum(-1).mean(-1) / optimal)
    return out


def run_prompts(cfg: AblateConfig, run: RunConfig) -> dict[str, Any]:
    """AD and ED of every training seed from every prompt level on the run's held-out streams (a resumable
    stage per seed, `prompt/<method>-<level>.npz` and `prompt/levels.json`); returns the curves, the last-10%
    return per seed and each prompt's own return as a fraction of optimal."""
    family = get_family(run.env)
    levels = cfg.values or PROMPT_LEVELS
    episodes = PROMPT_EPISODES[cfg.scale]
    streams = eval_streams(family, "test", run.eval.tasks, run.eval.streams_per_task)
    methods = [m for m in ("ad", "ed") if m in run.trained_methods]
    prompts: dict[float, tuple[Prompt, np.ndarray]] = {}  # built once, for the first seed that needs them

    def files(seed: int) -> dict[tuple[str, float], Path]:
        d = run.run_dir / f"seed-{seed}" / "prompt"
        return {(m, lv): d / f"{m}-{lv:g}.npz" for m in methods for lv in levels}

    def work(seed: int) -> None:
        if not prompts:
            prompts.update(make_prompts(family, run, streams, levels))
        device = pick_device(run.device)
        for m in methods:
            model, _ = load_model(run.run_dir / f"seed-{seed}" / m / CKPT_NAME, device=device)
            policy = get_method(m).policy(model)
            for lv in levels:
                returns = rollout_policy(
                    policy, family, streams, episodes, device=device, seed=run.seed, prompt=prompts[lv][0]
                )
                save_returns(files(seed)[m, lv], returns, streams)
        achieved = {f"{lv:g}": round(float(prompts[lv][1].mean()), 4) for lv in levels}
        atomic_write_json(run.run_dir / f"seed-{seed}" / "prompt" / "levels.json", achieved)

    record = {"levels": list(levels), "episodes": episodes, "seed": run.seed, "methods": methods}
    for seed in run.train_seed_list:
        stages = Stages(run.run_dir / f"seed-{seed}", cfg.quiet, label=f"seed-{seed}/")
        ckpts = [run.run_dir / f"seed-{seed}" / m / CKPT_NAME for m in methods]
        outputs = [*files(seed).values(), run.run_dir / f"seed-{seed}" / "prompt" / "levels.json"]
        stages.run("prompt", record, ckpts, outputs, partial(work, seed))
    curves: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    last10: dict[str, dict[str, dict[str, float]]] = {m: {} for m in methods}
    for m in methods:
        for lv in levels:
            by_seed = {s: np.load(files(s)[m, lv])["returns"].mean(0) for s in run.train_seed_list}  # (E,) each
            curves[m][f"{lv:g}"] = np.mean(list(by_seed.values()), axis=0).round(4).tolist()
            last10[m][f"{lv:g}"] = {str(s): round(float(last10pct(r[None])[0]), 4) for s, r in by_seed.items()}
    return {
        "episodes": episodes,
        "prompt_level": read_json(run.run_dir / f"seed-{run.seed}" / "prompt" / "levels.json", "re-run the study"),
        "curves": curves,
        "last10_seeds": last10,
        "optimal": float(family.optimal_return(streams).mean()),
    }


# -- outputs


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_prompts(path: Path, result: dict[str, Any], env: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = plt.get_cmap("viridis")
    levels = list(result["prompt_level"])
    for i, lv in enumerate(levels):
        c = colors(i / max(1, len(levels) - 1))
        for m, style in (("ad", "-"), ("ed", "--")):
            if lv in result["curves"].get(m, {}):
                curve = result["curves"][m][lv]
                label = f"{m.upper()}, prompt {float(lv):.0%}" if m == "ad" else None
                ax.plot(np.arange(1, len(curve) + 1), curve, style, color=c, label=label)
    ax.axhline(result["optimal"], color="k", lw=0.8, ls=":", label="optimal")
    ax.set(xlabel="episode after the prompt", ylabel="return", title=f"{env}: prompted AD (solid) and ED (dashed)")
    ax.legend(fontsize=7)
    _save(fig, path)


def _plot_sweep(path: Path, cfg: AblateConfig, result: dict[str, Any]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    groups: dict[str, list[dict[str, Any]]] = {}
    for v in result["variants"]:
        groups.setdefault(v["group"], []).append(v)
    for i, (group, vs) in enumerate(groups.items()):
        xs = [v["x"] for v in vs]
        ax.plot(xs, [v["last10"] for v in vs], "o-", color=f"C{i}", label=f"{group} (mean over seeds)")
        for v in vs:
            seeds = [r["last10"] for r in v["seeds"].values()]
            ax.scatter([v["x"]] * len(seeds), seeds, color=f"C{i}", alpha=0.35, s=12)
    xlabel = {"context": "context (steps)", "decoding": "temperature (0: greedy)", "tasks": "training tasks"}.get(
        cfg.study, "subsampling rate k"
    )
    ax.set(xlabel=xlabel, ylabel="final return (last 10% of episodes)", title=f"{cfg.env}: {cfg.study}")
    paper = {float(x): float(v.lstrip("≈")) for x, v in PAPER_VALUES.get(cfg.study, {}).items() if x[0].isdigit()}
    if paper:  # Fig. 7's values, where the paper gives them at our x
        xs = sorted(paper)
        ax.plot(xs, [paper[x] for x in xs], "k--", lw=1, label="paper")
    if cfg.study in ("context", "tasks", "data", "single-stream"):
        ax.set_xscale("log")
        ticks = sorted({v["x"] for v in result["variants"]})
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.minorticks_off()
    ax.legend(fontsize=8)
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    _pyplot().close(fig)


def _markdown(cfg: AblateConfig, result: dict[str, Any]) -> str:
    lines = [f"# Ablation `{cfg.study}` on {cfg.env} ({cfg.scale})", ""]
    paper = result["paper"]
    if cfg.study == "prompt":
        lines += [
            f"AD and ED prompted with a context of the source's held-out history at each level of optimality, "
            f"then run {result['episodes']} episodes (return per episode; optimal {result['optimal']:.2f}). "
            "Last 10%: the mean over the last tenth of those episodes, worst training seed in brackets.",
            "",
            "| level | prompt's return / optimal | AD first episode | AD last 10% (worst seed) | ED first episode | "
            "ED last 10% (worst seed) | paper (25k steps) |",
            "|---|---|---|---|---|---|---|",
        ]
        for lv, achieved in result["prompt_level"].items():
            row = [f"{float(lv):.0%}", f"{achieved:.2f}"]
            for m in ("ad", "ed"):
                if lv in result["curves"].get(m, {}):
                    curve, seeds = result["curves"][m][lv], result["last10_seeds"][m][lv]
                    last = float(np.mean(list(seeds.values())))
                    row += [f"{curve[0]:.2f}", f"{last:.2f} ({min(seeds.values()):.2f})"]
                else:
                    row += ["-", "-"]
            lines.append("| " + " | ".join([*row, paper.get(lv, "")]) + " |")
    else:
        lines += [
            "Final return: AD's mean over the last 10% of evaluation episodes, mean over training seeds (worst "
            "seed in brackets); mean: over all episodes.",
            "",
            "| variant | x | final return (worst seed) | mean over all episodes | source, last 10% | paper |",
            "|---|---|---|---|---|---|",
        ]
        for v in result["variants"]:
            source = f"{v['source']['last10']:.2f}" if "source" in v else "-"
            key = f"{v['x']:g}"
            lines.append(
                f"| {v['label']} | {key} | {v['last10']:.2f} ({v['worst_seed']['last10']:.2f}) | {v['mean']:.2f} | "
                f"{source} | {paper.get(key, '')} |"
            )
    if "paper" in paper:
        lines += ["", f"Paper: {paper['paper']}."]
    lines += ["", "![ablation](ablation.png)", ""]
    return "\n".join(lines)
