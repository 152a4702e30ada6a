"""A training run's outputs besides the checkpoint: metrics.jsonl, TensorBoard, a progress bar, signals.

`RunLog` is rank 0's logger: one JSON object per line in `out/metrics.jsonl` (always; plain text that
any tool reads), TensorBoard scalars under `out/tb` when `torch.utils.tensorboard` imports (optional
extra), and the training's `progress.Bar` (a rich bar on a terminal, a plain line every few seconds
elsewhere). `StopSignals` turns the first SIGINT/SIGTERM into a request to stop at the next iteration
boundary.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from algodistill.atomic import atomic_write_bytes
from algodistill.progress import Bar

METRICS = "metrics.jsonl"


class RunLog:
    """metrics.jsonl + TensorBoard + progress bar of a run in `out`, resumed at iteration `it` (rank 0 only: active)."""

    def __init__(self, out: Path, *, it: int, total: int, active: bool = True, quiet: bool = False) -> None:
        self.out, self.it, self.active = out, it, active
        self.metrics, self.t_start = out / METRICS, time.perf_counter()
        self.tb: Any = None  # a SummaryWriter when tensorboard is installed
        # iterations from the resumed one on: the rate and ETA count only what this process trains
        self.bar = Bar("train", total=total, unit="it", quiet=quiet or not active, start=it)

    def __enter__(self) -> RunLog:
        if not self.active:
            return self
        self.out.mkdir(parents=True, exist_ok=True)
        # Keep the lines up to the checkpoint we resume from: a killed run may have logged further, or
        # have been killed in the middle of a line.
        lines = self.metrics.read_text().splitlines() if self.metrics.is_file() else []
        kept = [ln for ln in lines if (row := _parse(ln)) is not None and row.get("iter", math.inf) <= self.it]
        atomic_write_bytes(self.metrics, "".join(ln + "\n" for ln in kept).encode())
        self.file = open(self.metrics, "a")  # closed in __exit__
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"), purge_step=self.it or None)
        self.bar.__enter__()
        return self

    def print(self, text: str) -> None:
        """A summary line on stderr (not when quiet), above the bar on a terminal."""
        self.bar.print(text)

    def elapsed(self) -> float:
        """Seconds since this process started the run."""
        return time.perf_counter() - self.t_start

    def write(self, row: dict[str, Any]) -> None:
        """Log one metrics row (needs iter, loss, accuracy, lr, iters_per_s)."""
        if not self.active:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "iter":
                    self.tb.add_scalar(f"train/{k}", v, row["iter"])
        # the note first: a plain line that update prints carries this row's loss
        self.bar.note(f"loss {row['loss']:.3f} acc {row['accuracy']:.3f} lr {row['lr']:.1e}")
        self.bar.update(row["iter"])

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.bar.__exit__(*exc)  # a closing line only when training ended without an exception
            self.file.close()
            if self.tb is not None:
                self.tb.close()


def _parse(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


class StopSignals:
    """First SIGINT/SIGTERM: set `requested` (the trainer saves and stops at the iteration boundary).

    A second signal raises KeyboardInterrupt at once: during a save, `atomic.atomic_path` then removes
    its temporary file and the previous checkpoint stays. Handlers are installed only in the main
    thread (Python allows no other) and restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            f"\n{signal.Signals(signum).name}: saving at the end of this iteration (again to quit without saving)",
            file=sys.stderr,
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
