"""User-facing errors: one line that names the field and the fix, exit code 2; and the checks of path options.

`UserError` deliberately does not derive from ValueError: tyro turns ValueErrors raised while it
builds a config into a multi-line box, whereas a UserError raised from a config's `__post_init__`
reaches `algodistill.cli.main`, which prints it on one line and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input from the user (config value, path, file). The CLI prints it on one line and exits 2."""


def check_input_file(path: Path, field: str, fix: str) -> None:
    """UserError unless `path` is an existing file (the option `field` names it; `fix` says what to pass)."""
    if path.is_dir():
        raise UserError(f"{field}={path} is a directory, not a file: {fix}")
    if not path.is_file():
        raise UserError(f"{field}={path} does not exist: {fix}")


def check_output(path: Path, field: str, *, directory: bool) -> None:
    """UserError unless `path` can be created or written as a directory (or a file): nothing of the other
    kind is in the way, at the path or at any parent."""
    flag = f"--{field.replace('_', '-')}"
    if directory and path.exists() and not path.is_dir():
        raise UserError(f"{field}={path} is a file, not a directory: choose another {flag}")
    if not directory and path.is_dir():
        raise UserError(f"{field}={path} is a directory, not a file: choose a file name for {flag}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"{field}={path} lies under {parent}, which is a file: choose another {flag}")


def parse_part(value: str, name: str) -> tuple[int, int]:
    """(i, n) of a work split "i/n" given as `--name` (this machine's part i of n), 0 <= i < n; UserError otherwise."""
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise UserError(f"{name}={value!r} is malformed: pass --{name} i/n with 0 <= i < n, e.g. --{name} 0/2")
    return i, n
