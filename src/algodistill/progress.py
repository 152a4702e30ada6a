"""Progress a person can read: one bar per long stage, and the table of what each stage of a run took.

`Bar` is the one progress display of every stage that takes more than a few seconds (generate, train,
evaluate). On a terminal it is a rich bar with the count, the rate and the ETA; anywhere else (CI logs,
pipes, files) it prints a plain line at most every `every_s` seconds and one at the end, because a
live bar there is either invisible or a screenful of carriage returns. The bar writes to stderr, so
stdout stays what the commands print on purpose. The formatting is pure functions on numbers, tested
on hand-worked values; `print_stage_table` prints the summary table `algodistill run` ends with.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task
from rich.table import Column, Table
from rich.text import Text

_SUFFIXES = ("", "k", "M", "G", "T")


def human(x: float) -> str:
    """`x` to 3 significant digits with a k/M/G/T suffix: 812 -> "812", 24_700 -> "24.7k", 1.6e8 -> "160M"."""
    for suffix in _SUFFIXES:
        # below 999.5 the 3 digits never round up to "1e+03"; the last suffix takes whatever is left
        if abs(x) < 999.5 or suffix == _SUFFIXES[-1]:
            return f"{x:.3g}{suffix}"
        x /= 1000
    raise AssertionError("unreachable")


def format_count(x: float) -> str:
    """A count: exact while it is a whole number below 100k (1234 stays 1234), else `human` (160M)."""
    if x == int(x) and abs(x) < 100_000:
        return str(int(x))
    return human(x)


def rate(done: float, seconds: float) -> float:
    """Units per second; 0 before any time has passed."""
    return done / seconds if seconds > 0 else 0.0


def format_rate(per_s: float, unit: str) -> str:
    """E.g. "812 steps/s", "24.7k steps/s", "3.2 it/s"."""
    return f"{human(per_s)} {unit}/s"


def eta(completed: float, total: float, per_s: float) -> float | None:
    """Seconds left at `per_s`; None while the rate is unknown (nothing done yet)."""
    if per_s <= 0:
        return None
    return max(total - completed, 0.0) / per_s


def format_duration(seconds: float | None) -> str:
    """H:MM:SS rounded to the second (hours unbounded: "26:03:04"); "-:--:--" when unknown."""
    if seconds is None:
        return "-:--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def status_line(label: str, completed: float, total: float, unit: str, per_s: float, note: str = "") -> str:
    """The periodic plain line: "train: 1234/5000 it (24.7%), 13.5 it/s, ETA 0:04:39, loss 0.52"."""
    pct = 100 * completed / total if total > 0 else 100.0
    line = (
        f"{label}: {format_count(completed)}/{format_count(total)} {unit} ({pct:.1f}%), "
        f"{format_rate(per_s, unit)}, ETA {format_duration(eta(completed, total, per_s))}"
    )
    return f"{line}, {note}" if note else line


def final_line(
    label: str, completed: float, total: float, unit: str, seconds: float, per_s: float, note: str = ""
) -> str:
    """The closing plain line: "train: 5000/5000 it in 0:06:10, 13.5 it/s, loss 0.41"."""
    line = (
        f"{label}: {format_count(completed)}/{format_count(total)} {unit} in {format_duration(seconds)}, "
        f"{format_rate(per_s, unit)}"
    )
    return f"{line}, {note}" if note else line


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class _Live(ProgressColumn):
    """A column of the bar's text, recomputed at every refresh (so the ETA counts down between updates).

    `shrink`: on a narrow terminal this column gives up width first and ends in "…" (rich narrows the
    wrappable columns before the others); the others keep their width."""

    def __init__(self, text: Callable[[], str], shrink: bool) -> None:
        super().__init__(table_column=Column(no_wrap=not shrink))
        self.text = text

    def render(self, task: Task) -> Text:
        return Text(self.text(), no_wrap=True, overflow="ellipsis")


class Bar:
    """One stage's progress on stderr: a rich bar on a terminal, plain periodic lines elsewhere, nothing if quiet.

        with Bar("train", total=5000, unit="it", start=it) as bar:
            bar.advance()  # or bar.update(completed)
            bar.note("loss 0.52 acc 0.81")

    `start` is where a resumed stage begins: the rate counts only what this process did. The plain
    lines come at most every `every_s` seconds, and one closing line (time taken, mean rate) when the
    block exits normally; an exception stops the display and leaves the error as the last line.
    `terminal` forces either display (default: whether `stream` is a TTY); `clock` is for tests.
    """

    def __init__(
        self,
        label: str,
        total: float,
        *,
        unit: str = "steps",
        quiet: bool = False,
        every_s: float = 10.0,
        stream: TextIO | None = None,
        start: float = 0,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.label, self.total, self.unit, self.quiet, self.every_s = label, total, unit, quiet, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.completed = start
        self.text = ""
        self.clock = clock
        self.t0 = self.last_line = clock()
        self.progress: Progress | None = None
        if not quiet and (terminal if terminal is not None else _isatty(self.stream)):
            console = Console(file=self.stream, force_terminal=True if terminal else None)
            # one line however narrow the terminal: the label and the note give way ("…") to the bar and numbers
            self.progress = Progress(
                _Live(lambda: label, shrink=True),
                BarColumn(bar_width=20),
                _Live(self._numbers, shrink=False),
                _Live(lambda: self.text, shrink=True),
                console=console,
            )
            self.task = self.progress.add_task(label, total=total)
            self.progress.update(self.task, completed=start)

    def __enter__(self) -> Bar:
        self.t0 = self.last_line = self.clock()
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()  # also on an exception: the terminal gets its cursor back
        elif not self.quiet and exc_type is None:
            seconds = self.clock() - self.t0
            per_s = rate(self.completed - self.start, seconds)
            self._write(final_line(self.label, self.completed, self.total, self.unit, seconds, per_s, self.text))

    def _numbers(self) -> str:
        """The terminal bar's "12.3M/160M 40.7M steps/s ETA 0:00:04" (the unit once, on the rate)."""
        per_s = self.rate()
        return (
            f"{format_count(self.completed)}/{format_count(self.total)} {format_rate(per_s, self.unit)} "
            f"ETA {format_duration(eta(self.completed, self.total, per_s))}"
        )

    def rate(self) -> float:
        """Mean units per second since the bar started (what this process did, not what it resumed from)."""
        return rate(self.completed - self.start, self.clock() - self.t0)

    def advance(self, n: float = 1) -> None:
        """`n` more units done."""
        self.update(self.completed + n)

    def update(self, completed: float) -> None:
        """`completed` units done in all (counting `start`)."""
        self.completed = completed
        if self.progress is not None:
            self.progress.update(self.task, completed=completed)
        elif not self.quiet and self.clock() - self.last_line >= self.every_s:
            self.last_line = self.clock()
            self._write(status_line(self.label, completed, self.total, self.unit, self.rate(), self.text))

    def note(self, text: str) -> None:
        """A short status shown after the rate, e.g. "loss 0.520 acc 0.810" (replaces the previous one)."""
        self.text = text

    def print(self, text: str) -> None:
        """A line of text on the bar's stream (above the bar on a terminal); nothing when quiet."""
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        elif not self.quiet:
            self._write(text)

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def print_stage_table(
    timings: dict[str, float], ran: dict[str, bool] | None = None, *, quiet: bool = False, stream: TextIO | None = None
) -> None:
    """The table "stage | seconds | status" of a run, in the order the stages came; status is "ran" or
    "skipped" (then the seconds are what the stage took when it ran), left out when `ran` is None.
    On stdout by default: it is the run's summary, like the report printed before it, not progress."""
    if quiet or not timings:
        return
    table = Table(title="stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    if ran is not None:
        table.add_column("status")
    for stage, seconds in timings.items():
        row = [stage, f"{seconds:.1f}"]
        if ran is not None:
            row.append(("ran" if ran[stage] else "skipped") if stage in ran else "")
        table.add_row(*row)
    Console(file=stream if stream is not None else sys.stdout).print(table)
