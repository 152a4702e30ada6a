"""Progress display: rate/ETA formatting on hand-worked numbers, the plain-line Bar, the stage table."""

import io

import pytest

from algodistill.progress import (
    Bar,
    eta,
    final_line,
    format_count,
    format_duration,
    format_rate,
    human,
    print_stage_table,
    rate,
    status_line,
)
from algodistill.runlog import RunLog


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_human_numbers_keep_three_significant_digits_and_scale_by_thousands():
    assert [human(x) for x in (0, 3.2, 812, 999.4, 24_700, 160e6, 1.5e9)] == [
        "0",
        "3.2",
        "812",
        "999",
        "24.7k",
        "160M",
        "1.5G",
    ]
    assert human(999.6) == "1k" and human(999_600) == "1M"  # rounding up moves to the next suffix
    assert format_count(1234) == "1234" and format_count(99_999) == "99999"  # whole counts exact below 100k
    assert format_count(160_000_000) == "160M" and format_count(12.5) == "12.5"


def test_rate_and_eta_on_hand_worked_numbers():
    assert rate(100, 4) == 25 and rate(5, 0) == 0
    assert format_rate(812, "steps") == "812 steps/s" and format_rate(24_680, "steps") == "24.7k steps/s"
    # 5000 - 1234 = 3766 left at 13.5/s: 278.96 s, shown to the nearest second
    assert eta(1234, 5000, 13.5) == pytest.approx(278.96, abs=0.01)
    assert format_duration(eta(1234, 5000, 13.5)) == "0:04:39"
    assert eta(10, 10, 3) == 0 and eta(12, 10, 3) == 0  # never negative
    assert eta(0, 10, 0) is None and format_duration(None) == "-:--:--"
    assert format_duration(26 * 3600 + 3 * 60 + 4) == "26:03:04" and format_duration(59.5) == "0:01:00"


def test_plain_lines_on_hand_worked_numbers():
    assert status_line("train", 1234, 5000, "it", 13.5, "loss 0.520") == (
        "train: 1234/5000 it (24.7%), 13.5 it/s, ETA 0:04:39, loss 0.520"
    )
    assert status_line("gen", 0, 100, "steps", 0) == "gen: 0/100 steps (0.0%), 0 steps/s, ETA -:--:--"
    assert final_line("generate darkroom/qlearning", 160e6, 160e6, "steps", 370, 160e6 / 370) == (
        "generate darkroom/qlearning: 160M/160M steps in 0:06:10, 432k steps/s"
    )


def test_a_bar_off_a_terminal_writes_a_line_every_few_seconds_and_a_closing_line():
    clock, out = Clock(), io.StringIO()
    with Bar("gen", 100, every_s=10, stream=out, clock=clock, terminal=False) as bar:
        for t in (5, 10, 15, 20):
            clock.t = t
            if t == 20:
                bar.note("shard 3")
            bar.advance(10)
        clock.t = 50
        bar.update(100)  # 30 s after the last line: a line, then the closing one
    assert out.getvalue().splitlines() == [
        "gen: 20/100 steps (20.0%), 2 steps/s, ETA 0:00:40",
        "gen: 40/100 steps (40.0%), 2 steps/s, ETA 0:00:30, shard 3",
        "gen: 100/100 steps (100.0%), 2 steps/s, ETA 0:00:00, shard 3",
        "gen: 100/100 steps in 0:00:50, 2 steps/s, shard 3",
    ]


def test_a_resumed_bar_rates_only_what_this_process_did():
    clock, out = Clock(), io.StringIO()
    with Bar("train", 100, unit="it", start=50, every_s=10, stream=out, clock=clock, terminal=False) as bar:
        clock.t = 10
        bar.update(70)  # 20 it in 10 s, not 70
    assert out.getvalue().splitlines() == [
        "train: 70/100 it (70.0%), 2 it/s, ETA 0:00:15",
        "train: 70/100 it in 0:00:10, 2 it/s",
    ]


def test_quiet_writes_nothing_and_an_exception_leaves_no_closing_line():
    out = io.StringIO()
    with Bar("gen", 10, quiet=True, every_s=0, stream=out) as bar:
        bar.advance(5)
        bar.print("hello")
    assert out.getvalue() == ""
    with pytest.raises(KeyboardInterrupt), Bar("gen", 10, every_s=1e9, stream=out, terminal=False) as bar:
        bar.advance(5)
        raise KeyboardInterrupt
    assert out.getvalue() == ""  # the error is the last thing the user reads


def test_a_terminal_bar_shows_rate_and_eta_and_stops_on_an_exception():
    out = io.StringIO()
    with pytest.raises(RuntimeError), Bar("train", 10, unit="it", stream=out, terminal=True) as bar:
        bar.note("loss 0.520")
        bar.advance(4)
        bar.print("a line above the bar")
        raise RuntimeError("boom")
    assert bar.progress is not None and not bar.progress.live.is_started  # the live display is stopped
    text = out.getvalue()
    for part in ("train", "4/10", "it/s", "ETA", "loss 0.520", "a line above the bar"):
        assert part in text, part


def test_runlog_off_a_terminal_ends_training_with_a_line_of_loss_and_rate(tmp_path, capsys):
    with RunLog(tmp_path, it=0, total=4) as log:
        log.print("train ad on darkroom")
        for it in (2, 4):
            log.write({"iter": it, "loss": 0.5, "accuracy": 0.75, "lr": 1e-3, "iters_per_s": 9.0})
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "train ad on darkroom"
    assert err[-1].startswith("train: 4/4 it in 0:00:0") and err[-1].endswith("loss 0.500 acc 0.750 lr 1.0e-03")
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_the_stage_table_lists_every_stage_with_its_seconds_and_status():
    out = io.StringIO()
    timings = {"seed-0/data-ad": 1.23, "seed-0/train-ad": 45.6, "eval-source": 7.0, "report": 0.5}
    ran = {"seed-0/data-ad": False, "seed-0/train-ad": True, "eval-source": True, "report": True}
    print_stage_table(timings, ran, stream=out)
    rows = [ln for ln in out.getvalue().splitlines() if any(s in ln for s in timings)]
    assert len(rows) == len(timings)
    for row, (stage, seconds) in zip(rows, timings.items(), strict=True):  # in the run's order
        assert stage in row and f"{seconds:.1f}" in row
        assert ("skipped" if stage == "seed-0/data-ad" else "ran") in row
    quiet = io.StringIO()
    print_stage_table(timings, ran, quiet=True, stream=quiet)
    assert quiet.getvalue() == ""
