"""The run report: curves.png, report.md and report.json, next to the paper's numbers.

Curves are per-episode returns on held-out tasks, shaped (streams, episodes), one per method (AD, ED,
source, ...); the list of methods is open, so later baselines (RL^2, DPT) only add entries. `styles`
maps each curve's name to its label and colour (a method's own, `algodistill.methods`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from algodistill.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from algodistill.stats import mean_ci, summarize

PAPER: dict[str, dict[str, str]] = {
    # Readings of AD Fig. 3 and 4 (about +-3-5% of the axis): the paper has no tables of results.
    "darkroom": {
        "ad": "≈14.1 after 1000 episodes (≈10 after 200)",
        "ed": "≈0.7",
        "source": "≈0.8 (A3C, same env steps)",
        "optimal": "≈16.5",
    },
    "darkroom-hard": {"ad": "≈0.68 after 1000 episodes", "ed": "≈0.07", "source": "≈0.09", "optimal": "1"},
    "keydoor": {
        "ad": "≈1.82 after 1000 episodes (≈1.7 after 200)",
        "ed": "≈0.58",
        "source": "≈0.70",
        "optimal": "2",
    },
    "bandit": {
        "ad": "UCB-normalised ≈0.83 on even arms (Fig. 3)",
        "ed": "≈-0.48 normalised (even)",
        "source": "1 normalised (UCB, by definition)",
        "optimal": "-",
    },
}
Styles = dict[str, tuple[str, str]]
"""curve name -> (label, matplotlib colour)"""


def plot_curves(
    path: Path, env: str, curves: dict[str, np.ndarray], styles: Styles, optimal: float, random: float
) -> None:
    """Return against episode with 95% confidence bands, and the optimal and random reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, returns in curves.items():
        label, color = styles[name]
        mean, lo, hi = mean_ci(returns)
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, label=label, color=color)
        ax.fill_between(x, lo, hi, alpha=0.2, color=color)
    ax.axhline(optimal, ls="--", color="k", lw=1, label="optimal")
    ax.axhline(random, ls=":", color="gray", lw=1, label="random")
    ax.set_xlabel("episode on a held-out task (weights frozen)")
    ax.set_ylabel("return per episode")
    ax.set_title(f"{env}: in-context evaluation, mean and 95% CI over tasks x seeds")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot_losses(path: Path, metrics: dict[str, Path], styles: Styles) -> None:
    """Training loss and action accuracy against iteration, from each run's metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, file in metrics.items():
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        label, color = styles[name]
        iters = [r["iter"] for r in rows]
        ax_loss.plot(iters, [r["loss"] for r in rows], label=label, color=color)
        ax_acc.plot(iters, [r["accuracy"] for r in rows], label=label, color=color)
    ax_loss.set_xlabel("optimizer iteration")
    ax_loss.set_ylabel("training loss (NLL of the target action)")
    ax_acc.set_xlabel("optimizer iteration")
    ax_acc.set_ylabel("action accuracy")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def write_report(
    run_dir: Path,
    *,
    env: str,
    preset: str,
    curves: dict[str, np.ndarray],
    styles: Styles,
    optimal: float,
    random: float,
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write curves.png, report.md and report.json into run_dir; return the report dict."""
    run_dir.mkdir(parents=True, exist_ok=True)
    summaries = {name: summarize(r, optimal) for name, r in curves.items()}
    report: dict[str, Any] = {
        "env": env,
        "preset": preset,
        "curves": {name: mean_ci(r)[0].round(4).tolist() for name, r in curves.items()},
        "reference": {"optimal": optimal, "random": random},
        "summary": summaries,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "paper": PAPER.get(env, {}),
        **(extra or {}),
    }
    plot_curves(run_dir / "curves.png", env, curves, styles, optimal, random)
    atomic_write_json(run_dir / "report.json", report)

    paper = PAPER.get(env, {})
    cols = [
        "return_ep1",
        "return_ep10",
        "return_ep100",
        "return_last",
        "return_last10pct",
        "auc",
        "episodes_to_90pct_optimal",
    ]
    lines = [
        f"# algodistill report: {env} ({preset} preset)",
        "",
        "In-context evaluation on held-out tasks: frozen weights, empty context at the start, "
        f"mean over {next(iter(summaries.values()))['runs']} streams (tasks x seeds).",
        "",
        "![curves](curves.png)",
        "",
        "Training: ![loss](loss.png)" if (run_dir / "loss.png").exists() else "",
        "",
        "| method | " + " | ".join(c.replace("_", " ") for c in cols) + " | paper |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for name, s in summaries.items():
        lines.append(f"| {styles[name][0]} | " + " | ".join(_fmt(s[c]) for c in cols) + f" | {paper.get(name, '-')} |")
    lines.append(f"| optimal | {optimal:.2f} |" + " |" * (len(cols) - 1) + f" {paper.get('optimal', '-')} |")
    lines.append(f"| random | {random:.2f} |" + " |" * len(cols))
    lines += ["", "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), ""]
    atomic_write_bytes(run_dir / "report.md", "\n".join(lines).encode())
    return report
