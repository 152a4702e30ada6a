"""DPT: AD's model trained on the optimal action at each observation (`methods/dpt.py`)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.methods import get_method
from algodistill.sampler import Windows

DARK = get_family("darkroom")
GOAL = 2 * 9 + 7  # the task whose goal is the cell (x, y) = (2, 7)
LEFT, RIGHT, UP, DOWN, STAY = range(5)  # envs/grid.py: x - 1, x + 1, y + 1, y - 1, no-op


def test_the_target_is_the_optimal_action_on_hand_worked_cells():
    # from (4, 4) the goal is 2 to the left in x: close x first; from (2, 4) 3 up in y; on it, stay
    cells = np.array([[[4, 4], [0, 8], [2, 4], [2, 8], [2, 7]]], dtype=np.uint8)  # (1, 5, 2)
    assert DARK.optimal_action(np.array([GOAL]), cells).tolist() == [[LEFT, RIGHT, UP, DOWN, STAY]]


def test_dpt_keeps_ads_inputs_and_swaps_the_targets():
    obs = torch.tensor([[[4, 4], [4, 4], [3, 4], [2, 4], [2, 5]]], dtype=torch.uint8)  # (1, L, 2)
    actions = torch.tensor([[1, LEFT, LEFT, DOWN, UP]])  # the source's: one of them not optimal
    rewards = torch.zeros(1, 5)
    pad = torch.zeros(1, 5, dtype=torch.bool)
    w = Windows(obs, actions, rewards, torch.zeros(1, 5, dtype=torch.bool), pad, torch.tensor([GOAL]))
    ad, dpt = get_method("ad").make_batch(w, DARK.spec), get_method("dpt").make_batch(w, DARK.spec)
    assert all(torch.equal(a, b) for a, b in zip(ad.inputs, dpt.inputs, strict=True))
    assert ad.targets.tolist() == [[LEFT, LEFT, DOWN, UP]]  # the source's a_t at steps 1..4
    assert dpt.targets.tolist() == [[LEFT, LEFT, UP, UP]]  # a* at (4, 4), (3, 4), (2, 4), (2, 5)


def test_envs_without_optimal_actions_refuse_dpt():
    with pytest.raises(UserError, match="keydoor gives no optimal action"):
        get_family("keydoor").optimal_action(np.array([0]), np.zeros((1, 1, 4), dtype=np.uint8))
    r = subprocess.run(
        [sys.executable, "-m", "algodistill.cli", "run", "keydoor", "--baselines", "ed,dpt", "--runs", "/nonexistent"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "gives no optimal action" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_tiny_run_reports_dpt_beside_ad(tmp_path):
    tiny = ["--methods.ad.histories", "8", "--data.steps", "2000", "--train.iters", "4", "--train.subsample", "10"]
    tiny += ["--eval.episodes", "3", "--eval.tasks", "2", "--eval.streams-per-task", "2", "--device", "cpu"]
    tiny += ["--baselines", "dpt", "--runs", str(tmp_path), "--name", "d"]
    r = subprocess.run(
        [sys.executable, "-m", "algodistill.cli", "run", "darkroom", *tiny],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    assert set(report["curves"]) == {"ad", "dpt"} and report["cost"]["dpt"] == {
        "env_steps": 8 * 2000,
        "seconds": report["cost"]["dpt"]["seconds"],
    }
    assert "| DPT |" in (tmp_path / "d" / "report.md").read_text()
