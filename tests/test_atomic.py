"""Atomic writes: the final path holds the old or the new bytes, never a partial file."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from algodistill.atomic import atomic_path, atomic_write_bytes, atomic_write_json, sha256_file, tmp_path_for


def test_write_bytes_and_json_round_trip(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01abc")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01abc"
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2], "y": "z"})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2], "y": "z"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.json"]  # no temporaries left


def test_overwrite_replaces_whole_file(tmp_path):
    atomic_write_bytes(tmp_path / "f", b"old contents that are long")
    atomic_write_bytes(tmp_path / "f", b"new")
    assert (tmp_path / "f").read_bytes() == b"new"


def test_exception_keeps_previous_file_and_removes_tmp(tmp_path):
    final = tmp_path / "ckpt"
    atomic_write_bytes(final, b"previous")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert final.read_bytes() == b"previous"
    assert not tmp_path_for(final).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_json_rejects_nan_without_touching_file(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"ok": 1})
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"bad": float("nan")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"ok": 1}


def test_killed_writer_leaves_nothing_at_final_path(tmp_path):
    final = tmp_path / "out.bin"
    code = (
        "import os, sys\n"
        "from algodistill.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    open(tmp, 'wb').write(b'partial')\n"
        "    os._exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(final)], timeout=60)
    assert proc.returncode == 3
    assert not final.exists()
    assert [p.name.split(".tmp-")[0] for p in tmp_path.iterdir()] == ["out.bin"]  # only the stale temporary


def test_sha256_file_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000  # > one 1 MiB read block
    (tmp_path / "d").write_bytes(data)
    assert sha256_file(tmp_path / "d") == hashlib.sha256(data).hexdigest()
    assert sha256_file(tmp_path / "d", chunk_bytes=7) == hashlib.sha256(data).hexdigest()
