"""Every path option of every command, given a missing path, a file where a directory belongs, a directory
where a file belongs, or a corrupt file: one line naming the option, exit 2, and what was there untouched."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from algodistill.cli import main
from algodistill.train import train
from test_train import make_dataset, tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A valid dataset, checkpoint and run configuration, for the options that are not under test."""
    base = tmp_path_factory.mktemp("good")
    data = make_dataset(base / "data")
    ckpt = train(tiny(data, base / "run", train={"iters": 1}))
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        main(["config", "darkroom"])
    (config := base / "run.json").write_text(printed.getvalue())
    return {"data": data, "ckpt": ckpt, "config": config}


def _file(p: Path) -> Path:
    p.write_text("not what you think")
    return p


def _dir(p: Path) -> Path:
    p.mkdir()
    (p / "keep.txt").write_text("an earlier result")
    return p


def _under_file(p: Path) -> Path:
    _file(p)
    return p / "inside"


def _corrupt_dataset(p: Path) -> Path:
    p.mkdir()
    (p / "manifest.json").write_text('{"schema_version": 1, "conf')
    return p


def _missing(p: Path) -> Path:
    return p


Args = Callable[[Path, dict[str, Path]], list[str]]
CASES: list[tuple[str, Callable[[Path], Path], Args, str]] = [
    # (case, what to put at the path, the command line, what the one line must say)
    ("generate --out: a file", _file, lambda p, g: ["generate", "darkroom", "--out", str(p)], "out="),
    ("generate --out: under a file", _under_file, lambda p, g: ["generate", "darkroom", "--out", str(p)], "lies under"),
    ("inspect DATASET: missing", _missing, lambda p, g: ["inspect", str(p)], "is not a dataset directory"),
    ("inspect DATASET: a file", _file, lambda p, g: ["inspect", str(p)], "is not a dataset directory"),
    ("inspect DATASET: corrupt", _corrupt_dataset, lambda p, g: ["inspect", str(p)], "manifest.json is unreadable"),
    ("inspect --png: a directory", _dir, lambda p, g: ["inspect", str(g["data"]), "--png", str(p)], "png="),
    ("inspect --png: under a file", _under_file, lambda p, g: ["inspect", str(g["data"]), "--png", str(p)], "png="),
    ("train --data: missing", _missing, lambda p, g: ["train", "--data", str(p), "--out", str(p) + "-o"], "data="),
    ("train --data: a file", _file, lambda p, g: ["train", "--data", str(p), "--out", str(p) + "-o"], "data="),
    (
        "train --data: corrupt",
        _corrupt_dataset,
        lambda p, g: ["train", "--data", str(p), "--out", str(p) + "-o"],
        "unreadable",
    ),
    ("train --out: a file", _file, lambda p, g: ["train", "--data", str(g["data"]), "--out", str(p)], "out="),
    (
        "train --out: under a file",
        _under_file,
        lambda p, g: ["train", "--data", str(g["data"]), "--out", str(p)],
        "out=",
    ),
    ("evaluate --ckpt: missing", _missing, lambda p, g: ["evaluate", "--ckpt", str(p)], "ckpt="),
    ("evaluate --ckpt: a directory", _dir, lambda p, g: ["evaluate", "--ckpt", str(p)], "ckpt="),
    ("evaluate --ckpt: corrupt", _file, lambda p, g: ["evaluate", "--ckpt", str(p)], "was refused"),
    ("evaluate --out: a directory", _dir, lambda p, g: ["evaluate", "--ckpt", str(g["ckpt"]), "--out", str(p)], "out="),
    (
        "evaluate --out: under a file",
        _under_file,
        lambda p, g: ["evaluate", "--ckpt", str(g["ckpt"]), "--out", str(p)],
        "out=",
    ),
    ("run --runs: a file", _file, lambda p, g: ["run", "darkroom", "--runs", str(p)], "runs="),
    ("run --runs: under a file", _under_file, lambda p, g: ["run", "darkroom", "--runs", str(p)], "runs="),
    ("run --name: a file", _file, lambda p, g: ["run", "darkroom", "--runs", str(p.parent), "--name", p.name], "name="),
    ("run --config: missing", _missing, lambda p, g: ["run", "--config", str(p)], "is unreadable"),
    ("run --config: a directory", _dir, lambda p, g: ["run", "--config", str(p)], "is unreadable"),
    ("run --config: corrupt", _file, lambda p, g: ["run", "--config", str(p)], "is unreadable"),
    ("config --config: missing", _missing, lambda p, g: ["config", "--config", str(p)], "is unreadable"),
    ("config --config: a directory", _dir, lambda p, g: ["config", "--config", str(p)], "is unreadable"),
    ("config --config: corrupt", _file, lambda p, g: ["config", "--config", str(p)], "is unreadable"),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("case", "make", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_path_is_one_line_exit_2(tmp_path, good, capsys, case, make, args, message):
    path = make(tmp_path / "target")
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(args(path, good))
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert _snapshot(tmp_path) == before  # nothing that was there was changed, and nothing was written
