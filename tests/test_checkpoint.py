"""Checkpoints: atomic writes, safe loading, strict checks, and the model they rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from algodistill.atomic import sha256_file
from algodistill.checkpoint import load_checkpoint, load_model, load_state
from algodistill.cli import main
from algodistill.errors import UserError
from algodistill.train import train
from test_train import make_dataset, tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 2-step run: its checkpoint path."""
    base = tmp_path_factory.mktemp("ckpt")
    return train(tiny(make_dataset(base / "data"), base / "run", train={"iters": 2}))


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data")
    real_save, calls = torch.save, []

    def failing_save(obj, f):  # the second save dies half-way, as a full disk would
        calls.append(obj["iter"])
        if len(calls) == 2:
            real_save(obj, f)
            with open(f, "r+b") as fh:
                fh.truncate(100)
            raise OSError(28, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        train(tiny(data, tmp_path / "run", train={"iters": 8, "ckpt_every": 2}))
    assert calls == [2, 4]
    ckpt = load_checkpoint(tmp_path / "run" / "ckpt.pt")  # the iteration-2 checkpoint, whole
    assert ckpt["iter"] == 2
    assert not [p.name for p in (tmp_path / "run").iterdir() if ".tmp" in p.name]
    # ... and the run resumes from it.
    monkeypatch.undo()
    train(tiny(data, tmp_path / "run", train={"iters": 8, "ckpt_every": 2}))
    assert load_checkpoint(tmp_path / "run" / "ckpt.pt")["iter"] == 8


class Evil:
    """Unpickling this calls `open(marker, "w")`: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, run):
    marker = tmp_path / "pwned"
    bad = tmp_path / "ckpt.pt"
    torch.save({"format": "algodistill-train", "model": Evil(marker)}, bad)
    with pytest.raises(UserError, match="refused: it is not a safe torch checkpoint") as info:
        load_model(bad)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # The same file in a run directory blocks a resume before any training.
    data = make_dataset(tmp_path / "data")
    with pytest.raises(UserError, match="refused"):
        train(tiny(data, tmp_path, train={"iters": 2}))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip", "refused"),
        (None, "not found"),
    ],
)
def test_unreadable_files_are_user_errors(tmp_path, content, message):
    path = tmp_path / "ckpt.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_model(path)


def test_truncated_checkpoint_is_refused(tmp_path, run):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(run.read_bytes()[:1000])
    with pytest.raises(UserError, match="refused"):
        load_model(path)


def edited(run: Path, tmp_path: Path, edit) -> Path:
    ckpt = load_checkpoint(run)
    edit(ckpt)
    path = tmp_path / "ckpt.pt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("optimizer"), "missing the field 'optimizer'"),
        (lambda c: c.update(extra=1), "unknown field 'extra'"),
        (lambda c: c.update(format="other"), "not an algodistill training checkpoint"),
        (lambda c: c.update(version=99), "format version 99"),
        (lambda c: c.update(job=[]), "field 'job' is a list, expected dict"),
        (lambda c: c["model"].pop("head.weight"), "lacks the tensor 'head.weight'"),
        (lambda c: c["model"].update(bogus=torch.zeros(1)), "has a tensor 'bogus'"),
        (lambda c: c["job"]["model"].update(n_embd=32), r"tensor '.*' is \(.*\), the model expects"),
        (lambda c: c["job"]["model"].update(n_embd=15), "not divisible"),
        (lambda c: c["job"]["model"].update(n_embd="wide"), "config field model.n_embd='wide' is not of type int"),
        (lambda c: c["job"]["model"].update(width=3), "config field model.width is unknown"),
        (lambda c: c["job"].update(method="nope"), "method='nope' is unknown"),
        (lambda c: c["job"].pop("env"), "names no env and method"),
        (lambda c: c["spec"].update(num_actions=4), "another definition of env"),
        (lambda c: c["job"]["model"].update(encoder={"kind": "conv"}), "model.encoder.kind='conv' does not fit"),
    ],
)
def test_malformed_or_mismatching_checkpoints_are_refused(run, tmp_path, edit, message):
    with pytest.raises(UserError, match=message):
        load_model(edited(run, tmp_path, edit))


def test_load_model_is_on_the_device_and_in_eval_mode(run):
    before = sha256_file(run)
    model, job = load_model(run, device="cpu")
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert job["train"]["iters"] == 2 and (job["env"], job["method"]) == ("darkroom", "ad")
    assert sha256_file(run) == before  # loading never writes


def test_load_state_names_the_bad_tensor():
    m = torch.nn.Linear(2, 3)
    with pytest.raises(UserError, match=r"tensor 'weight' is \(3, 3\), the model expects \(3, 2\)"):
        load_state(m, {"weight": torch.zeros(3, 3), "bias": torch.zeros(3)}, "x.pt")


def test_a_checkpoint_whose_encoder_does_not_fit_is_one_line_exit_2(run, tmp_path, capsys):
    path = edited(run, tmp_path, lambda c: c["job"]["model"].update(encoder={"kind": "conv"}))
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--ckpt", str(path), "--out", str(tmp_path / "eval.npz")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: model.encoder.kind='conv' does not fit the observations of env='darkroom'")
    assert "choose one of embedding, mlp" in err and not (tmp_path / "eval.npz").exists()
