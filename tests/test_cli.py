"""The `algodistill` command line, run as a user would (a subprocess): output and exit codes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from algodistill.cli import COMMANDS, main
from algodistill.envs import ENV_NAMES, get_family


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algodistill.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_envs_lists_every_family_with_its_numbers():
    p = cli("envs")
    assert p.returncode == 0, p.stderr
    out = " ".join(p.stdout.split())  # rich may wrap cells across lines
    for name in ENV_NAMES:
        f = get_family(name)
        s = f.spec
        everything = np.arange(s.num_tasks)
        for text in (
            name,
            s.gym_id,
            str(s.num_tasks),
            f"{f.optimal_return(everything).mean():.3f}",
            f"{f.random_return(everything).mean():.3f}",
        ):
            assert text in out, (name, text)
    # The numbers themselves, from the paper (Sec. 4.1) and our documented splits.
    for text in ("16.543", "0.247", "test 16", "test 58", "test 4561", "train 2000", "test 1000", "6561", "13000"):
        assert text in out, text


def test_unknown_env_is_one_line_and_exit_code_2():
    p = cli("envs", "--env", "darkroom", "gridworld")
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ") and "'gridworld'" in lines[0]
    assert all(name in lines[0] for name in ENV_NAMES)


def test_main_in_process(capsys):
    main(["envs", "-e", "darkroom"])
    out = capsys.readouterr().out
    assert "algodistill/DarkRoom-v0" in out and "keydoor" not in out
    with pytest.raises(SystemExit) as e:
        main(["envs", "-e", "nope"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: env='nope' is unknown: choose one of bandit, darkroom, darkroom-hard, keydoor, watermaze, "
        "watermaze-small"
    )


def test_usage_and_unknown_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command} " in out
    with pytest.raises(SystemExit) as e:
        main(["trian"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: command 'trian' is unknown: choose one of {', '.join(COMMANDS)}"
    with pytest.raises(SystemExit) as e:  # no command: the usage, and a failing exit code
        main([])
    assert e.value.code == 2 and "usage: algodistill COMMAND" in capsys.readouterr().out


def test_every_command_has_help_for_every_flag():
    for command in COMMANDS:
        p = cli(command, "darkroom", "--help") if command in ("run", "config") else cli(command, "--help")
        assert p.returncode == 0 and "usage: algodistill " + command in p.stdout, (command, p.stderr)
        assert "(default: " in p.stdout or command in ("envs", "pretrained")
