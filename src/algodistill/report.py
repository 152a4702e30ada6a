"""The run report: curves.png, report.md and report.json, next to the paper's numbers.

A `Condition` holds what a run measured on one test condition (the held-out split; the bandit has
three, paper Fig. 3): every trained method's returns per training seed, shaped (streams, episodes), and
the baselines' (the data's source, the source tuned to the budget), which have no training seed. The
list of methods is open, so later baselines (RL^2, DPT) only add entries; `styles` maps each curve's
name to its label and colour.

Spread. With one training seed, intervals are over the evaluation streams (tasks x seeds). With K > 1,
a trained method's interval is over its K seeds' mean curves (paper Sec. 4.3: 5 training seeds), each
seed's curve is drawn as a faint line, and the worst seed is reported beside the mean; the baselines'
intervals stay over streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from algodistill.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from algodistill.stats import last10pct, mean_ci, normalized_score, per_task, summarize

PAPER: dict[str, dict[str, str]] = {
    # Readings of AD Fig. 3 and 4 (about +-3-5% of the axis): the paper has no tables of results.
    "darkroom": {
        "ad": "≈14.1 after 1000 episodes (≈10 after 200)",
        "ed": "≈0.7",
        "source": "≈0.8 (A3C, same env steps)",
        "rl2": "≈14.7 (LSTM, A3C, 1e9 env steps)",
        "optimal": "≈16.5",
    },
    "darkroom-hard": {
        "ad": "≈0.68 after 1000 episodes",
        "ed": "≈0.07",
        "source": "≈0.09",
        "rl2": "≈0.70 (1e9 env steps)",
        "optimal": "1",
    },
    "keydoor": {
        "ad": "≈1.82 after 1000 episodes (≈1.7 after 200)",
        "ed": "≈0.58",
        "source": "≈0.70",
        "rl2": "≈1.87 (1e9 env steps)",
        "optimal": "2",
    },
    "watermaze": {
        "ad": "≈0.84 after 160 episodes (≈0.55 after 40)",
        "ed": "≈0.18",
        "source": "≈0.56 (DQN, same env steps)",
        "rl2": "≈0.97 (DQN(Q-lambda) LSTM, 1e9 env steps)",
        "optimal": "1",
    },
    "bandit": {
        "ad": "UCB-normalised ≈0.99 odd / ≈0.83 even / ≈0.87 uniform (Fig. 3)",
        "ed": "≈0.48 / ≈-0.48 / ≈0.0 normalised",
        "source": "1 normalised (UCB, by definition)",
        "rl2": "≈1.05 / ≈-0.48 / ≈0.83 normalised",
        "optimal": "-",
    },
}
PAPER["watermaze-small"] = PAPER["watermaze"]  # the quick preset's Watermaze, drawn at 36 x 48
Styles = dict[str, tuple[str, str]]
"""curve name -> (label, matplotlib colour)"""


@dataclass(frozen=True)
class Condition:
    """Returns on one test condition: trained methods per training seed, and the baselines."""

    trained: dict[int, dict[str, np.ndarray]]  # training seed -> method -> returns (S, E)
    baselines: dict[str, np.ndarray]  # name -> returns (S, E)
    tasks: np.ndarray  # (S,) the task of every stream
    optimal: float  # mean optimal return per episode over the streams
    random: float  # the same for the uniform-random policy

    @property
    def methods(self) -> list[str]:
        return list(next(iter(self.trained.values())))

    def seed_curves(self, name: str) -> np.ndarray:
        """A trained method's mean curve per training seed. (K, E)"""
        return np.stack([by_method[name].mean(axis=0) for by_method in self.trained.values()])

    def spread(self, name: str) -> np.ndarray:
        """The rows a curve's mean and interval are over: seeds' curves (K, E) when K > 1, else streams (S, E)."""
        if name in self.baselines:
            return self.baselines[name]
        return self.seed_curves(name) if len(self.trained) > 1 else next(iter(self.trained.values()))[name]

    def streams(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Every stream of a curve over all seeds, and their tasks: ((K S, E), (K S,))."""
        if name in self.baselines:
            return self.baselines[name], self.tasks
        runs = [by_method[name] for by_method in self.trained.values()]
        return np.concatenate(runs), np.tile(self.tasks, len(runs))

    def curves(self) -> dict[str, list[float]]:
        """Mean curve of every method (over seeds and streams) and baseline."""
        names = self.methods + list(self.baselines)
        return {name: self.spread(name).mean(axis=0).round(4).tolist() for name in names}


def plot_curves(path: Path, title: str, cond: Condition, styles: Styles) -> None:
    """Return against episode with 95% confidence bands, faint per-seed lines, optimal and random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in cond.methods + list(cond.baselines):
        label, color = styles[name]
        mean, lo, hi = mean_ci(cond.spread(name))
        x = np.arange(1, len(mean) + 1)
        if name not in cond.baselines and len(cond.trained) > 1:
            for curve in cond.seed_curves(name):
                ax.plot(x, curve, color=color, lw=0.7, alpha=0.35)
        ax.plot(x, mean, label=label, color=color)
        ax.fill_between(x, lo, hi, alpha=0.2, color=color)
    ax.axhline(cond.optimal, ls="--", color="k", lw=1, label="optimal")
    ax.axhline(cond.random, ls=":", color="gray", lw=1, label="random")
    ax.set_xlabel("episode on a held-out task (weights frozen)")
    ax.set_ylabel("return per episode")
    spread = f"{len(cond.trained)} training seeds (faint: each seed)" if len(cond.trained) > 1 else "tasks x seeds"
    ax.set_title(f"{title}: in-context evaluation, mean and 95% CI over {spread}", fontsize=9)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot_losses(path: Path, metrics: dict[str, list[Path]], styles: Styles) -> None:
    """Training loss and action accuracy against iteration, from each run's metrics.jsonl (one per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, files in metrics.items():
        label, color = styles[name]
        for i, file in enumerate(files):
            rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
            iters = [r["iter"] for r in rows]
            kw = {"label": label if i == 0 else None, "color": color, "alpha": 1.0 if len(files) == 1 else 0.6}
            ax_loss.plot(iters, [r["loss"] for r in rows], **kw)
            ax_acc.plot(iters, [r["accuracy"] for r in rows], **kw)
    ax_loss.set_xlabel("optimizer iteration")
    ax_loss.set_ylabel("training loss (NLL of the target action)")
    ax_acc.set_xlabel("optimizer iteration")
    ax_acc.set_ylabel("action accuracy")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_frames(path: Path, frames: list[tuple[str, np.ndarray]]) -> None:
    """A strip of captioned observations (an image env's task, seen as the agent sees it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(2.6 * len(frames), 2.3), squeeze=False)
    for ax, (caption, frame) in zip(axes[0], frames, strict=True):
        ax.imshow(frame, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _worst_task(
    returns: np.ndarray, tasks: np.ndarray, task_optimal: Callable[[np.ndarray], np.ndarray]
) -> dict[str, Any]:
    """The task whose last-10% return is the smallest fraction of its optimal return. returns (S, E), tasks (S,)"""
    by_task = per_task(returns, tasks)
    optimal = {t: float(task_optimal(np.array([t]))[0]) for t in by_task}
    t = min(by_task, key=lambda t: by_task[t] / optimal[t])
    return {"task": t, "return": round(by_task[t], 4), "optimal": optimal[t]}


def _summaries(cond: Condition, task_optimal: Callable[[np.ndarray], np.ndarray]) -> dict[str, dict[str, Any]]:
    """summarize() of every curve; for trained methods also each seed's figures and the worst seed."""
    out: dict[str, dict[str, Any]] = {}
    for name in cond.methods:
        s: dict[str, Any] = summarize(cond.spread(name), cond.optimal)
        s["seeds"] = {}
        for seed, by_method in cond.trained.items():
            r = by_method[name]  # (S, E)
            s["seeds"][str(seed)] = {
                "return_last10pct": float(last10pct(r.mean(0, keepdims=True))[0]),
                "auc": float(r.mean()),
                "worst_task": _worst_task(r, cond.tasks, task_optimal),
            }
        worst = min(s["seeds"], key=lambda k: s["seeds"][k]["return_last10pct"])
        s["worst_seed"] = {"seed": int(worst), **s["seeds"][worst]}
        out[name] = s
    for name, returns in cond.baselines.items():
        out[name] = summarize(returns, cond.optimal)
    return out


def _per_task(cond: Condition) -> dict[str, dict[str, float]]:
    """{task: {curve: mean over the last 10% of episodes, over every stream and seed}}."""
    table: dict[str, dict[str, float]] = {}
    for name in cond.methods + list(cond.baselines):
        for task, value in per_task(*cond.streams(name)).items():
            table.setdefault(str(task), {})[name] = round(value, 4)
    return table


def write_report(
    run_dir: Path,
    *,
    env: str,
    preset: str,
    conditions: dict[str, Condition],
    main_name: str,
    styles: Styles,
    task_optimal: Callable[[np.ndarray], np.ndarray],
    describe_task: Callable[[int], str],
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
    frames: list[tuple[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Write curves.png, report.md and report.json into run_dir (and frames.png, a strip of what the agent
    sees, when `frames` are given: image envs); return the report dict.

    `conditions` maps each test condition to its results, and `main_name` names the one whose curves,
    summaries and per-task table lead the report (the env's "test" split); with more than one condition
    `conditions` in report.json also gives each one's curves and its scores normalised by the source
    (paper Sec. 5: UCB)."""
    main = conditions[main_name]
    run_dir.mkdir(parents=True, exist_ok=True)
    summaries = _summaries(main, task_optimal)
    worst_task = {}
    for name in main.methods:  # over every seed's streams
        worst = _worst_task(*main.streams(name), task_optimal)
        worst_task[name] = {**worst, "what": describe_task(worst["task"])}
    report: dict[str, Any] = {
        "env": env,
        "preset": preset,
        "train_seeds": list(main.trained),
        "curves": main.curves(),
        "seeds": {
            str(seed): {name: r.mean(axis=0).round(4).tolist() for name, r in by_method.items()}
            for seed, by_method in main.trained.items()
        },
        "reference": {"optimal": main.optimal, "random": main.random},
        "summary": summaries,
        "per_task": _per_task(main),
        "worst_task": worst_task,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "paper": PAPER.get(env, {}),
        **(extra or {}),
    }
    if len(conditions) > 1 and "source" in main.baselines:  # the normalised score needs the source
        report["conditions"] = {name: _condition_summary(c) for name, c in conditions.items()}
    plot_curves(run_dir / "curves.png", f"{env} ({main_name})", main, styles)
    if frames:
        plot_frames(run_dir / "frames.png", frames)
    atomic_write_json(run_dir / "report.json", report)
    atomic_write_bytes(run_dir / "report.md", _markdown(report, main, styles, run_dir, timings).encode())
    return report


def _condition_summary(cond: Condition) -> dict[str, Any]:
    """A condition's curves and every curve's mean return over all episodes normalised by the source's
    (paper Fig. 3), over all seeds and per training seed; and, with the source tuned to the budget among
    the baselines, normalised by that too (`normalized_tuned`): the paper leaves its UCB's coefficient
    unstated, and UCB1's c = 1 explores far more than 100 pulls need (tuning.UCB_CS), so a score of 1
    against it is a weaker bar than against the same algorithm fitted to the budget."""
    means = {name: float(cond.spread(name).mean()) for name in cond.methods + list(cond.baselines)}

    def normalized(reference: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        def score(m: float) -> float:
            return round(normalized_score(m, cond.random, means[reference]), 4)

        per_seed = {
            str(seed): {name: score(float(r.mean())) for name, r in by_method.items()}
            for seed, by_method in cond.trained.items()
        }
        return {name: score(m) for name, m in means.items()}, per_seed

    out: dict[str, Any] = {"curves": cond.curves()}
    out["normalized"], out["normalized_seeds"] = normalized("source")
    if "source-tuned" in means:
        out["normalized_tuned"], out["normalized_tuned_seeds"] = normalized("source-tuned")
    return out


def _markdown(report: dict[str, Any], main: Condition, styles: Styles, run_dir: Path, timings: dict[str, float]) -> str:
    paper = report["paper"]
    summaries = report["summary"]
    cols = {
        "return_ep1": "episode 1",
        "return_ep21_30": "episodes 21-30",
        "return_ep100": "episode 100",
        "return_last10pct": "last 10%",
        "auc": "mean, all episodes",
        "episodes_to_90pct_optimal": "episodes to 90% of optimal",
    }
    K = len(main.trained)
    spread = f"mean over {K} training seeds" if K > 1 else f"mean over {len(main.tasks)} streams (tasks x seeds)"
    about = [f"In-context evaluation on held-out tasks: frozen weights, empty context at the start, {spread}."]
    if "source" in main.baselines:
        about.append(
            "`source` is the algorithm that made the data, at the same env steps; `source-tuned` is that algorithm "
            "with its exploration schedule fitted to this evaluation's budget on training tasks."
        )
    if "rl2" in main.methods:
        carry = report.get("run_config", {}).get("rl2_carry", True)
        about.append(
            "RL^2 is trained online on the training tasks, then frozen; its recurrent state is "
            + (
                "carried across the whole evaluation, as AD's context is (each stream keeps one task)."
                if carry
                else "reset every trial, as in its training (--no-rl2-carry)."
            )
        )
    lines = [
        f"# algodistill report: {report['env']} ({report['preset']} preset)",
        "",
        *about,
        "",
        "![curves](curves.png)",
        "",
        "The task as the agent sees it (the expert on a held-out task): ![frames](frames.png)"
        if (run_dir / "frames.png").exists()
        else "",
        "",
        "Training: ![loss](loss.png)" if (run_dir / "loss.png").exists() else "",
        "",
        "| method | " + " | ".join(cols.values()) + " | paper |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for name, s in summaries.items():
        lines.append(f"| {styles[name][0]} | " + " | ".join(_fmt(s[c]) for c in cols) + f" | {paper.get(name, '-')} |")
    lines.append(f"| optimal | {main.optimal:.2f} |" + " |" * (len(cols) - 1) + f" {paper.get('optimal', '-')} |")
    lines.append(f"| random | {main.random:.2f} |" + " |" * len(cols))
    if K > 1:
        lines += ["", "Per training seed, return over the last 10% of episodes (mean over all episodes):", ""]
        lines += [
            "| seed | " + " | ".join(styles[m][0] for m in main.methods) + " |",
            "|---" * (len(main.methods) + 1) + "|",
        ]
        for seed in main.trained:
            cells = [summaries[m]["seeds"][str(seed)] for m in main.methods]
            lines.append(
                f"| {seed} | " + " | ".join(f"{c['return_last10pct']:.2f} ({c['auc']:.2f})" for c in cells) + " |"
            )
        for m in main.methods:
            w = summaries[m]["worst_seed"]
            lines.append(
                f"\nWorst seed of {styles[m][0]}: {w['seed']} ({w['return_last10pct']:.2f} over the last 10%)."
            )
    lines.append("")
    for m, w in report["worst_task"].items():
        where = w["what"] if w["what"] == f"task {w['task']}" else f"{w['what']} (task {w['task']})"
        lines.append(
            f"Worst held-out task of {styles[m][0]}: {where}, {w['return']:.2f} over the last 10% against an "
            f"optimal {w['optimal']:.2f}."
        )
    if "conditions" in report:
        names = list(report["conditions"])
        curves = list(report["conditions"][names[0]]["normalized"])
        lines += [
            "",
            "Score normalised by the source, (r - r_random) / (r_source - r_random), mean over all episodes:",
            "",
        ]
        tuned = "normalized_tuned" in report["conditions"][names[0]]
        keys = ["normalized", "normalized_tuned"] if tuned else ["normalized"]
        head = [*names, *(f"{n} (tuned)" for n in names if tuned)]
        lines += ["| method | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        for c in curves:
            vals = " | ".join(f"{report['conditions'][n][k][c]:.2f}" for k in keys for n in names)
            lines.append(f"| {styles[c][0]} | {vals} |")
        if tuned:
            lines.append(
                '\n"(tuned)": the same score with the source tuned to the budget as the reference '
                "(`source-tuned`: 1), a stronger bar than the data's source."
            )
    if "cost" in report:
        lines += [
            "",
            "What each curve consumed before its evaluation (mean per training seed; the source learns during it):",
            "",
            "| method | env steps | wall seconds |",
            "|---|---|---|",
        ]
        for name, c in report["cost"].items():
            lines.append(f"| {styles[name][0]} | {c['env_steps']:,.0f} | {c['seconds']:.0f} |")
    lines += ["", "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    return "\n".join(lines)
