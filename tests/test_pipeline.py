"""`algodistill run`: a tiny end-to-end run through the CLI, stage skipping, redoing a corrupt stage."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# fmt: off
TINY = ["--methods.ad.histories", "8", "--data.steps", "2000", "--methods.ed.histories", "4", "--train.iters", "4",
        "--train.subsample", "10", "--eval.episodes", "3", "--eval.tasks", "2", "--eval.streams-per-task", "2",
        "--device", "cpu"]
# fmt: on
REPLICA_STAGES = tuple(f"seed-0/{s}" for s in ("data-ad", "data-ed", "train-ad", "train-ed", "eval-ad", "eval-ed"))
STAGES = (*REPLICA_STAGES, "eval-source", "eval-source-tuned", "report")


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
    assert set(report["curves"]) == {"ad", "ed", "source", "source-tuned"}
    assert report["train_seeds"] == [0] and set(report["seeds"]["0"]) == {"ad", "ed"}
    assert report["seeds"]["0"]["ad"] == report["curves"]["ad"]  # one seed: its curve is the mean
    tasks = np.load(tiny_run / "seed-0" / "eval" / "ad.npz")["task_ids"]
    assert set(report["per_task"]) == {str(t) for t in tasks} and str(
        report["worst_task"]["ad"]["task"]
    ) in tasks.astype(str)
    assert report["worst_task"]["ad"]["what"].startswith("goal (") and "source_tuned" in report
    assert all(len(c) == 3 for c in report["curves"].values())
    assert report["reference"]["optimal"] > report["reference"]["random"] > 0
    assert set(report["timings"]) == set(STAGES) - {"report"}
    assert set(report["on_training_tasks"]) == {"ad", "ed"}
    assert (tiny_run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| AD |" in (tiny_run / "report.md").read_text()
    assert "Worst held-out task of AD: goal (" in (tiny_run / "report.md").read_text()
    for f in (
        "config.json",
        "seed-0/data/ad/manifest.json",
        "seed-0/ad/ckpt.pt",
        "seed-0/ed/ckpt.pt",
        "seed-0/eval/ad.npz",
        "eval/source.npz",
        "eval/source-tuned.npz",
    ):
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
    ckpt = tiny_run / "seed-0" / "ad" / "ckpt.pt"
    good = ckpt.read_bytes()
    data = bytearray(good)
    data[-100] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    (tiny_run / "report.md").write_text("damaged")
    r = cli("run", "darkroom", "--runs", str(tiny_run.parent), "--name", "tiny", *TINY)
    assert r.returncode == 0, r.stderr
    assert "[redo] seed-0/train-ad" in r.stdout and "[run] seed-0/train-ad" in r.stdout
    assert "[skip] seed-0/train-ed" in r.stdout and "[skip] seed-0/data-ad" in r.stdout
    assert (ckpt.parent / "ckpt.pt.corrupt").read_bytes() == bytes(data)  # moved aside, not deleted
    # training is deterministic, so the redone checkpoint is the same bytes and evaluation still verifies
    assert ckpt.read_bytes() == good and "[skip] seed-0/eval-ad" in r.stdout
    assert "[run] report" in r.stdout and "| AD |" in (tiny_run / "report.md").read_text()


def test_checkpoint_of_another_env_is_refused(tiny_run, tmp_path):
    r = cli(
        "evaluate",
        "--ckpt",
        str(tiny_run / "seed-0" / "ed" / "ckpt.pt"),
        "--env",
        "keydoor",
        "--out",
        str(tmp_path / "x.npz"),
    )
    assert r.returncode == 2
    assert "trained on env='darkroom', not 'keydoor'" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "x.npz").exists()


def test_evaluate_command_saves_returns(tiny_run, tmp_path):
    out = tmp_path / "eval.npz"
    r = cli(
        "evaluate",
        "--ckpt",
        str(tiny_run / "seed-0" / "ed" / "ckpt.pt"),
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
        (["run", "darkroom", "--train-seeds", "0"], "train_seeds=0 must be positive: pass --train-seeds 1 or more"),
        (["run", "darkroom", "--train-seeds", "11"], "train_seeds=11 is more than the 'quick' preset allows (10)"),
        (["run", "darkroom", "--preset", "paper", "--train-seeds", "6"], "the 'paper' preset allows (5)"),
        (["run", "darkroom", "--replicas", "2/2"], "replicas='2/2' is malformed: pass --replicas i/n"),
        (["run", "darkroom", "--baselines", "ed,dqn"], "baselines: 'dqn' is unknown: choose among ed, source, rl2"),
        (["run", "darkroom", "--rl2-steps", "0"], "rl2_steps=0 must be positive"),
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


def test_training_seeds_are_replicas_whose_results_do_not_depend_on_workers_or_machines(tmp_path):
    """--train-seeds 2 on two "machines" (--replicas 0/2 and 1/2), then the report; and with --workers 2."""
    args = ["run", "darkroom", "--runs", str(tmp_path), "--train-seeds", "2", "--seed", "3", *TINY]
    first = cli(*args, "--name", "ranks", "--replicas", "0/2")
    assert first.returncode == 0, first.stderr
    assert "[run] seed-3/train-ad" in first.stdout and "seed-4/" not in first.stdout
    assert "replicas of training seeds [4] are not finished" in first.stdout
    assert not (tmp_path / "ranks" / "report.json").exists()
    second = cli(*args, "--name", "ranks", "--replicas", "1/2")
    assert second.returncode == 0, second.stderr
    assert "[run] seed-4/train-ad" in second.stdout and "[skip] seed-3/train-ad" not in second.stdout
    report = json.loads((tmp_path / "ranks" / "report.json").read_text())
    assert report["train_seeds"] == [3, 4] and set(report["seeds"]) == {"3", "4"}
    seeds = np.array([report["seeds"][s]["ad"] for s in ("3", "4")])
    np.testing.assert_allclose(report["curves"]["ad"], seeds.mean(axis=0), atol=1e-3)
    assert report["summary"]["ad"]["worst_seed"]["seed"] in (3, 4) and report["summary"]["ad"]["runs"] == 2
    assert "Per training seed" in (tmp_path / "ranks" / "report.md").read_text()
    # the same replicas side by side in two worker processes: the same bytes
    together = cli(*args, "--name", "workers", "--workers", "2")
    assert together.returncode == 0, together.stderr
    for rel in ("seed-3/ad/ckpt.pt", "seed-4/ad/ckpt.pt", "seed-4/eval/ed.npz", "eval/source-tuned.npz"):
        assert (tmp_path / "ranks" / rel).read_bytes() == (tmp_path / "workers" / rel).read_bytes(), rel


def test_bandit_reports_the_three_conditions_of_fig_3_normalised_by_ucb_with_rl2(tmp_path):
    args = [
        "--methods.ad.histories",
        "8",
        "--methods.ed.histories",
        "4",
        "--data.steps",
        "100",
        "--model.context",
        "20",
    ]
    args += ["--train.iters", "4", "--eval.episodes", "10", "--eval.tasks", "2", "--eval.streams-per-task", "2"]
    args += ["--baselines", "ed,source,rl2", "--rl2-steps", "1"]  # one RL^2 trial: 256 tasks x 100 pulls
    r = cli("run", "bandit", "--runs", str(tmp_path), "--name", "b", "--device", "cpu", *args)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert list(report["conditions"]) == ["odd", "even", "uniform"]
    for cond in report["conditions"].values():
        assert set(cond["normalized"]) == {"ad", "ed", "rl2", "source", "source-tuned"}
        assert cond["normalized"]["source"] == 1.0  # UCB on the same draws is the reference
        assert cond["normalized_tuned"]["source-tuned"] == 1.0 and set(cond["normalized_tuned_seeds"]) == {"0"}
    even, r_random = report["conditions"]["even"], report["reference"]["random"]
    r_tuned, r_ad = (float(np.mean(even["curves"][m])) for m in ("source-tuned", "ad"))
    assert even["normalized_tuned"]["ad"] == pytest.approx((r_ad - r_random) / (r_tuned - r_random), abs=1e-3)
    assert report["curves"] == report["conditions"]["even"]["curves"]  # the main curves: the "test" split
    assert len(report["curves"]["rl2"]) == 10 and "rl2" in report["on_training_tasks"]
    assert report["cost"]["rl2"]["env_steps"] == 256 * 100 and report["cost"]["ad"]["env_steps"] == 8 * 100
    assert report["cost"]["source"]["env_steps"] == 0
    for name in ("rl2", "rl2-test_odd", "rl2-test_uniform", "rl2-train"):
        assert (tmp_path / "b" / "seed-0" / "eval" / f"{name}.npz").is_file()
    md = (tmp_path / "b" / "report.md").read_text()
    assert "| AD |" in md and "| RL^2 |" in md and "odd | even | uniform" in r.stdout
    assert "≈1.05 / ≈-0.48 / ≈0.83" in md and "| RL^2 | 25,600 |" in md
    assert "| method | odd | even | uniform | odd (tuned) | even (tuned) | uniform (tuned) |" in md


def test_baselines_choose_what_runs_beside_ad(tmp_path):
    """--baselines rl2: no ED and no source stages; RL^2 evaluated on AD's streams; a re-run skips it."""
    args = ["run", "darkroom", "--runs", str(tmp_path), "--name", "r", *TINY, "--baselines", "rl2", "--rl2-steps", "1"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "[run] seed-0/train-rl2" in r.stdout and "[run] seed-0/eval-rl2" in r.stdout
    assert "data-ed" not in r.stdout and "eval-source" not in r.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(report["curves"]) == {"ad", "rl2"} and "conditions" not in report and "source_tuned" not in report
    ad, rl2 = (np.load(tmp_path / "r" / "seed-0" / "eval" / f"{m}.npz") for m in ("ad", "rl2"))
    np.testing.assert_array_equal(ad["task_ids"], rl2["task_ids"])  # the same held-out streams
    assert "state is carried across the whole evaluation" in (tmp_path / "r" / "report.md").read_text()
    again = cli(*args)
    assert again.returncode == 0 and "[skip] seed-0/train-rl2" in again.stdout, again.stderr
    reset = cli(*args, "--no-rl2-carry")  # another evaluation of the same RL^2
    assert "[skip] seed-0/train-rl2" in reset.stdout and "[run] seed-0/eval-rl2" in reset.stdout, reset.stderr
    assert "reset every trial" in (tmp_path / "r" / "report.md").read_text()
