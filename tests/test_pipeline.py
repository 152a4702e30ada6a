"""`algodistill run`: a tiny end-to-end run through the CLI, stage skipping, redoing a corrupt stage."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

# fmt: off
TINY = ["--methods.ad.histories", "8", "--data.steps", "2000", "--methods.ed.histories", "4", "--train.iters", "4",
        "--eval.episodes", "3", "--eval.tasks", "2", "--eval.streams-per-task", "2", "--device", "cpu"]
# fmt: on
STAGES = ("data-ad", "data-ed", "train-ad", "train-ed", "eval-ad", "eval-ed", "eval-source", "report")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "algodistill.cli", *args],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "", "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    r = cli("run", "darkroom", "--runs", str(runs), "--name", "tiny", *TINY)
    assert r.returncode == 0, r.stderr
    for stage in STAGES:
        assert f"[run] {stage}" in r.stdout
    return runs / "tiny"


def test_tiny_run_writes_the_whole_report(tiny_run):
    report = json.loads((tiny_run / "report.json").read_text())
    assert report["env"] == "darkroom" and report["preset"] == "quick"
    assert set(report["curves"]) == {"ad", "ed", "source"}
    assert all(len(c) == 3 for c in report["curves"].values())
    assert report["reference"]["optimal"] > report["reference"]["random"] > 0
    assert set(report["timings"]) == set(STAGES) - {"report"}
    assert set(report["on_training_tasks"]) == {"ad", "ed"}
    assert (tiny_run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| AD |" in (tiny_run / "report.md").read_text()
    for f in ("config.json", "data/ad/manifest.json", "ad/ckpt.pt", "ed/ckpt.pt", "eval/ad.npz", "eval/source.npz"):
        assert (tiny_run / f).is_file(), f
    # the run's config.json is what `algodistill config` prints for the same flags
    printed = cli("config", "darkroom", "--runs", str(tiny_run.parent), "--name", "tiny", *TINY)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == json.loads((tiny_run / "config.json").read_text())


def test_rerun_skips_every_stage_whose_outputs_verify(tiny_run):
    mtimes = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*") if p.is_file() and "stages" not in p.parts}
    r = cli("run", "darkroom", "--runs", str(tiny_run.parent), "--name", "tiny", *TINY)
    assert r.returncode == 0, r.stderr
    assert "[run]" not in r.stdout and r.stdout.count("[skip]") == len(STAGES)
    changed = [p for p, t in mtimes.items() if p.stat().st_mtime_ns != t and p.name != "config.json"]
    assert changed == []


def test_a_corrupt_stage_output_is_redone(tiny_run):
    ckpt = tiny_run / "ad" / "ckpt.pt"
    good = ckpt.read_bytes()
    data = bytearray(good)
    data[-100] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    (tiny_run / "report.md").write_text("damaged")
    r = cli("run", "darkroom", "--runs", str(tiny_run.parent), "--name", "tiny", *TINY)
    assert r.returncode == 0, r.stderr
    assert "[redo] train-ad" in r.stdout and "[run] train-ad" in r.stdout
    assert "[skip] train-ed" in r.stdout and "[skip] data-ad" in r.stdout
    assert (tiny_run / "ad" / "ckpt.pt.corrupt").read_bytes() == bytes(data)  # moved aside, not deleted
    # training is deterministic, so the redone checkpoint is the same bytes and evaluation still verifies
    assert ckpt.read_bytes() == good and "[skip] eval-ad" in r.stdout
    assert "[redo] report" in r.stdout and "| AD |" in (tiny_run / "report.md").read_text()


def test_checkpoint_of_another_env_is_refused(tiny_run, tmp_path):
    r = cli(
        "evaluate", "--ckpt", str(tiny_run / "ed" / "ckpt.pt"), "--env", "keydoor", "--out", str(tmp_path / "x.npz")
    )
    assert r.returncode == 2
    assert "trained on env='darkroom', not 'keydoor'" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "x.npz").exists()


def test_evaluate_command_saves_returns(tiny_run, tmp_path):
    out = tmp_path / "eval.npz"
    r = cli(
        "evaluate",
        "--ckpt",
        str(tiny_run / "ed" / "ckpt.pt"),
        "--episodes",
        "2",
        "--tasks",
        "1",
        "--streams-per-task",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    import numpy as np

    assert np.load(out)["returns"].shape == (1, 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "darkroomz"], "env='darkroomz' has no preset"),
        (["run", "darkroom", "--eval.episodes", "0"], "eval.episodes=0 must be positive"),
        (["run", "darkroom", "--data.source", "ucb"], "source='ucb' does not fit env='darkroom'"),
        (["run", "darkroom", "--preset", "huge"], "preset='huge' is unknown for env='darkroom': choose one of quick"),
        (["run", "darkroom", "--methods.ad.histories", "many"], "--methods.ad.histories"),
        (["run", "darkroom", "--model.context", "1200"], "model.context=1200 is longer than the histories"),
    ],
)
def test_bad_run_input_is_one_line_exit_2(tmp_path, args, message):
    r = cli(*args, "--runs", str(tmp_path / "runs"))
    assert r.returncode == 2 and message in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists()


def test_a_rerun_with_another_config_is_refused_and_keeps_the_run(tiny_run):
    before = {p: p.read_bytes() for p in (tiny_run / "report.json", tiny_run / "config.json")}
    other = [*TINY]
    other[other.index("--methods.ad.histories") + 1] = "9"
    r = cli("run", "darkroom", "--runs", str(tiny_run.parent), "--name", "tiny", *other)
    assert r.returncode == 2 and "different config" in r.stderr and r.stderr.strip().count("\n") == 0
    assert {p: p.read_bytes() for p in before} == before
