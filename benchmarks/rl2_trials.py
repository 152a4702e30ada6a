"""Does a frozen RL^2 improve within a trial? The mean return of each episode of a trial, per split.

Reads an `algodistill rl2 ENV --out RUN` directory's evaluations (`eval-test.npz`, `eval-train.npz`: the
return of every episode of every stream) and prints, for k = 1 .. trial, the mean over streams and over the
evaluation's trials of their k-th episode. Meant for runs evaluated with `--no-eval-carry` (the state reset
every trial, as in training), where episode k of every trial sees the same amount of context.

    .venv/bin/python benchmarks/rl2_trials.py RUN [--trial 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def trial_curve(returns: np.ndarray, trial: int) -> np.ndarray:
    """(S, E) returns of E episodes per stream -> (trial,) mean of each trial's k-th episode (whole trials only)."""
    S, E = returns.shape
    whole = E // trial * trial
    return returns[:, :whole].reshape(S, -1, trial).mean(axis=(0, 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an `algodistill rl2 --out` directory")
    p.add_argument("--trial", type=int, default=10, help="episodes per trial (the preset's: 10)")
    args = p.parse_args()
    for split in ("test", "train"):
        path = args.run / f"eval-{split}.npz"
        if not path.is_file():
            continue
        returns = np.load(path)["returns"]  # (S, E)
        curve = trial_curve(returns, args.trial)
        print(f"{split:<5} mean {returns.mean():.3f}; episode k of a trial: " + " ".join(f"{v:.2f}" for v in curve))


if __name__ == "__main__":
    main()
