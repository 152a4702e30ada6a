"""Exported models: identical logits, no pickle on load, refused payloads and paths, and the shipped models."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from algodistill.atomic import sha256_file
from algodistill.checkpoint import load_model
from algodistill.cli import main
from algodistill.configs import EvalConfig
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.evaluate import evaluate_policy
from algodistill.export import CARD, PRETRAINED_DIR, WEIGHTS, ExportConfig, export, pretrained_names, read_export
from algodistill.methods import get_method
from algodistill.train import train
from test_train import make_dataset, tiny

torch.set_num_threads(1)
SMALL_EVAL = ["--episodes", "3", "--tasks", "2", "--streams-per-task", "1"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    train(tiny(make_dataset(root / "data"), root / "ad"))
    return root / "ad" / "ckpt.pt"


def test_export_reproduces_the_checkpoints_logits_and_card(ckpt, tmp_path):
    out = tmp_path / "model"
    main(["export", str(ckpt), str(out), "--quiet", *SMALL_EVAL])
    exported, card = read_export(out)
    original, job = load_model(ckpt)
    obs = torch.randint(0, 9, (3, 7, 2), dtype=torch.uint8)  # (B, T, 2)
    a_tm1, r_tm1 = torch.randint(0, 6, (3, 7)), torch.rand(3, 7)
    assert torch.equal(exported(obs, a_tm1, r_tm1), original(obs, a_tm1, r_tm1))
    assert card["env"] == job["env"] == "darkroom" and card["method"] == "ad" and card["training"]["seed"] == 0
    assert card["training"]["iters"] == 8 and len(card["training"]["data_hash"]) == 64
    assert card["training"]["data"] == {"source": {"name": "random"}, "histories": 8, "steps": 200}
    assert card["weights"]["sha256"] == sha256_file(out / WEIGHTS)
    held = card["held_out"]
    assert len(held["curve"]) == 3 and held["tasks"] == 2 and held["streams"] == 2
    lo, hi = held["last10pct"]["ci95"]
    assert lo <= held["last10pct"]["mean"] <= hi


def test_loading_an_export_never_unpickles(ckpt, tmp_path, monkeypatch):
    out = tmp_path / "model"
    main(["export", str(ckpt), str(out), "--quiet", "--no-evaluate"])

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was called")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model, card = read_export(out)
    assert card["held_out"] is None and sum(p.numel() for p in model.parameters()) == card["weights"]["num_params"]


class _Touch:
    """Unpickling this creates `path`: proof that a loader ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickle_payload_is_refused_unread(ckpt, tmp_path):
    out = tmp_path / "model"
    main(["export", str(ckpt), str(out), "--quiet", "--no-evaluate"])
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weights": _Touch(marker)})
    (out / WEIGHTS).write_bytes(payload)
    card = json.loads((out / CARD).read_text())
    card["weights"]["sha256"] = sha256_file(out / WEIGHTS)  # a consistent card: only the format stops it
    (out / CARD).write_text(json.dumps(card))
    with pytest.raises(UserError, match="is not a safetensors file"):
        read_export(out)
    assert not marker.exists()


def test_tampered_weights_and_cards_are_refused(ckpt, tmp_path):
    out = tmp_path / "model"
    main(["export", str(ckpt), str(out), "--quiet", "--no-evaluate"])
    data = bytearray((out / WEIGHTS).read_bytes())
    data[-1] ^= 1
    (out / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match the sha256"):
        read_export(out)
    card = json.loads((out / CARD).read_text())
    (out / CARD).write_text(json.dumps({**card, "version": 99}))
    with pytest.raises(UserError, match="not a version-1 algodistill model card"):
        read_export(out)


def test_an_existing_out_is_refused_and_left_as_it_was(ckpt, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        main(["export", str(ckpt), str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"out={out} exists" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match=r"ckpt=.* does not exist"):
        ExportConfig(ckpt=tmp_path / "nothing.pt", out=tmp_path / "other")


def test_a_failed_export_leaves_nothing(ckpt, tmp_path, monkeypatch):
    import algodistill.export as ex

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ex, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        export(ExportConfig(ckpt=ckpt, out=tmp_path / "model", evaluate=False, quiet=True))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", pretrained_names())
def test_each_shipped_model_reproduces_its_cards_held_out_return(name):
    model, card = read_export(PRETRAINED_DIR / name)
    held = card["held_out"]
    policy = get_method(card["method"]).policy(model)
    returns, _ = evaluate_policy(
        policy,
        get_family(card["env"]),
        held["split"],
        EvalConfig(**held["eval"]),
        seed=held["seed"],
        device=torch.device("cpu"),
    )
    last = returns[:, -held["last10pct"]["episodes"] :].mean()
    lo, hi = held["last10pct"]["ci95"]
    assert lo <= last <= hi, (name, last, lo, hi)
    # and it learned in context: the end of the curve is well above its first episode
    assert np.mean(held["curve"][-10:]) > held["curve"][0] + 0.1 * (held["optimal"] - held["random"])


def test_shipped_models_are_listed_and_small():
    assert {"darkroom-quick", "bandit-quick"} <= set(pretrained_names())
    for name in pretrained_names():
        assert (PRETRAINED_DIR / name / WEIGHTS).stat().st_size < 1_000_000
    p = subprocess.run([sys.executable, "-m", "algodistill.cli", "pretrained"], capture_output=True, text=True)
    assert p.returncode == 0 and "darkroom-quick" in p.stdout and "bandit-quick" in p.stdout, p.stderr
