"""Atomic file writes: a reader never sees a half-written file at the final path.

The usual pattern (e.g. CellBender PR #253, openmm PR #1683): write `name.tmp-<pid>` in the same directory,
fsync it, `os.replace` it onto the final name (atomic on POSIX and Windows), fsync the directory so
the rename itself survives a power loss, and remove the temporary file if anything fails. A writer
killed with SIGKILL can still leave a stale `*.tmp-<pid>` file behind, but never a partial file at
the final path; callers that own a directory may sweep stale temporaries (see `dataset.finalize`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_MARKER = ".tmp-"
"""Temporary files are named `<final name>.tmp-<pid>`; this marker finds stale ones."""


def tmp_path_for(final_path: str | os.PathLike[str]) -> Path:
    """The temporary path used while writing `final_path` from this process (same directory)."""
    final = Path(final_path)
    # Same directory, so os.replace is a rename within one filesystem (atomic, never a copy).
    return final.with_name(f"{final.name}{TMP_MARKER}{os.getpid()}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable. Not possible (nor needed) on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success move it onto `final_path` atomically.

    The body must create and close the file at the yielded path (e.g. `h5py.File(tmp, "w")` in a
    `with` block). On normal exit the file is fsynced and renamed into place; if the body raises
    (including KeyboardInterrupt) the temporary file is removed and the exception propagates, and
    whatever was at `final_path` before is left untouched. One writer per final path per process.

    Example:
        with atomic_path(out / "shard-00000.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                ...
    """
    final = Path(final_path)
    tmp = tmp_path_for(final)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


@contextmanager
def atomic_dir(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty temporary directory next to `final_path`; when the body succeeds, rename it to
    `final_path`, which must not exist (FileExistsError otherwise: an existing directory is never
    replaced); if anything fails, remove it. So `final_path` holds a whole directory or nothing."""
    final = Path(final_path)
    tmp = tmp_path_for(final)
    shutil.rmtree(tmp, ignore_errors=True)  # a stale one of a killed writer with this pid
    try:
        tmp.mkdir(parents=True)
        yield tmp
        if final.exists():  # os.rename would replace an empty directory
            raise FileExistsError(f"{final} appeared while it was being written; nothing was replaced")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (temp file + fsync + os.replace)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON (UTF-8, trailing newline) to `path` atomically."""
    # allow_nan=False: NaN/inf are not JSON; failing here beats writing a file other tools reject.
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()
