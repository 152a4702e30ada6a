"""Stage records: the wall time of a stage that was interrupted and resumed counts every attempt."""

from __future__ import annotations

import json

import pytest

from algodistill import stages as S
from algodistill.stages import Stages, recorded_seconds


@pytest.fixture
def clock(monkeypatch):
    """A wall clock the test advances by hand."""
    now = [0.0]
    monkeypatch.setattr(S.time, "perf_counter", lambda: now[0])
    return now


def test_an_interrupted_stage_adds_its_seconds_to_the_attempt_that_finishes_it(tmp_path, clock):
    out = tmp_path / "out.txt"

    def interrupted_after(seconds: float):
        def work():
            clock[0] += seconds
            raise KeyboardInterrupt  # as TrainingInterrupted after the trainer saved

        return work

    def finish_after(seconds: float):
        def work():
            clock[0] += seconds
            out.write_text("done")

        return work

    for seconds in (100.0, 30.0):  # two interrupted attempts with the same config and inputs
        with pytest.raises(KeyboardInterrupt):
            Stages(tmp_path, quiet=True).run("train", {"lr": 1}, [], [out], interrupted_after(seconds))
    assert json.loads((tmp_path / "stages" / "train.interrupted.json").read_text())["seconds"] == 130.0
    st = Stages(tmp_path, quiet=True)
    st.run("train", {"lr": 1}, [], [out], finish_after(5.0))
    assert recorded_seconds(tmp_path, "train") == st.timings["train"] == 135.0
    assert not (tmp_path / "stages" / "train.interrupted.json").exists()
    # A stage whose config changed starts its count again: the earlier attempts trained something else.
    with pytest.raises(KeyboardInterrupt):
        Stages(tmp_path, quiet=True).run("eval", {"lr": 1}, [], [out], interrupted_after(50.0))
    Stages(tmp_path, quiet=True).run("eval", {"lr": 2}, [], [out], finish_after(7.0))
    assert recorded_seconds(tmp_path, "eval") == 7.0
