"""The RESULTS.md table of a finished run, one row per training seed, read from its report.json.

Columns: AD's return in episode 1 and over episodes 21-30; AD, ED, the data's source and the source
tuned to the budget over the last 10% of episodes; AD's mean over all episodes; AD's worst held-out
task (its last-10% return against its optimal); the optimal and random returns; and the seed's wall
time (its replica's stages plus the shared baselines and report). The baselines have no training seed,
so their cells repeat. A run with several test conditions (the bandit, paper Fig. 3) also gets a
table of AD's and ED's scores normalised by the source, (r - r_random) / (r_UCB - r_random), per seed.

    .venv/bin/python benchmarks/seeds_table.py runs/darkroom-quick [more run directories]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def rows(run_dir: Path) -> list[str]:
    report = json.loads((run_dir / "report.json").read_text())
    summary, ref = report["summary"], report["reference"]
    out = []
    for seed, curves in report["seeds"].items():
        ad = np.asarray(curves["ad"])  # (E,)
        E = len(ad)
        mine = {m: summary[m]["seeds"][seed] for m in curves}
        worst = mine["ad"]["worst_task"]
        seconds = sum(v for k, v in report["timings"].items() if k.startswith(f"seed-{seed}/") or "/" not in k)
        cells = [
            report["env"],
            seed,
            f"{ad[0]:.2f}",
            f"{ad[20:30].mean():.2f}" if E >= 30 else "-",
            f"**{mine['ad']['return_last10pct']:.2f}**",
            f"{mine['ed']['return_last10pct']:.2f}" if "ed" in mine else "-",
            f"{summary['source']['return_last10pct']:.2f}",
            f"{summary['source-tuned']['return_last10pct']:.2f}",
            f"{mine['ad']['auc']:.2f}",
            f"{summary['source-tuned']['auc']:.2f}",
            f"task {worst['task']}: {worst['return']:.2f} of {worst['optimal']:.2f}",
            f"{ref['optimal']:.2f}",
            f"{ref['random']:.2f}",
            f"{seconds / 60:.1f} min",
        ]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return out


def normalized_rows(run_dir: Path) -> list[str]:
    """With several test conditions (the bandit): AD's and ED's source-normalised score per seed."""
    report = json.loads((run_dir / "report.json").read_text())
    conds = report.get("conditions", {})
    if not conds:
        return []
    out = ["", "| env | seed | " + " | ".join(f"AD {c} | ED {c}" for c in conds) + " |"]
    out.append("|---" * (2 + 2 * len(conds)) + "|")
    for seed in report["seeds"]:
        cells = [f"{conds[c]['normalized_seeds'][seed][m]:.2f}" for c in conds for m in ("ad", "ed")]
        out.append(f"| {report['env']} | {seed} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories holding report.json")
    args = parser.parse_args()
    head = [
        "env",
        "seed",
        "AD ep. 1",
        "AD ep. 21-30",
        "AD last 10%",
        "ED last 10%",
        "source last 10%",
        "source-tuned last 10%",
        "AD mean, all episodes",
        "source-tuned mean",
        "AD's worst held-out task",
        "optimal",
        "random",
        "wall time",
    ]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for run_dir in args.runs:
        print("\n".join(rows(run_dir)))
    for run_dir in args.runs:
        if extra := normalized_rows(run_dir):
            print("\n".join(extra))


if __name__ == "__main__":
    main()
