"""The preset registry, the run configuration and its hash, and `algodistill config` (printed, fed back)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from algodistill.cli import main
from algodistill.configs import RunConfig, run_hash
from algodistill.errors import UserError
from algodistill.presets import PRESETS, get_preset, load_run_config


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algodistill.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def printed(capsys, *args: str) -> dict:
    main(["config", *args])
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("env", "scale"), sorted(PRESETS))
def test_every_preset_is_a_complete_valid_run(env, scale):
    cfg = get_preset(env, scale)
    assert isinstance(cfg, RunConfig) and (cfg.env, cfg.preset) == (env, scale)
    assert set(cfg.methods) == {"ad", "ed"}
    assert run_hash(cfg) == run_hash(get_preset(env, scale))  # a preset is a value: the same every time


def test_watermazes_quick_preset_runs_at_36_by_48(capsys):
    # `algodistill run watermaze` on a CPU renders at the quick size (presets.ALIASES); paper stays at 72 x 96
    assert get_preset("watermaze", "quick") == get_preset("watermaze-small", "quick")
    assert printed(capsys, "watermaze")["env"] == "watermaze-small"
    assert printed(capsys, "watermaze", "--preset", "paper")["env"] == "watermaze"
    quick = get_preset("watermaze-small", "quick")
    assert (quick.model.encoder.kind, quick.eval.episodes) == ("conv", 160)  # Fig. 4's 160 episodes


def test_presets_hold_the_env_specific_values():
    # paper Table 1 and App. F (Dark Room Hard), Fig. 7 (Key-to-Door context), Table 4 (the A2C source)
    hard = get_preset("darkroom-hard", "paper")
    assert (hard.model.attn_dropout, hard.model.token_mask, hard.train.label_smoothing) == (0.0, 0.5, 0.2)
    assert get_preset("keydoor", "paper").model.context == 200 and get_preset("bandit", "quick").model.context == 100
    wm = get_preset("watermaze", "paper")  # Table 3's encoder, 4000 histories, 160 evaluation episodes (Fig. 4)
    enc = wm.model.encoder
    assert (enc.kind, enc.channels, enc.kernel, enc.stride, enc.dropout) == ("conv", (128, 128, 128), 5, 2, 0.2)
    assert (wm.methods["ad"].histories, wm.eval.episodes, wm.data.source) == (4000, 160, "replay")
    paper = get_preset("darkroom", "paper")
    m, t = paper.model, paper.train
    assert (m.n_embd, m.n_layer, m.n_head, m.n_ff, m.dropout, m.attn_dropout, m.token_mask) == (
        64,
        4,
        4,
        2048,
        0.1,
        0.5,
        0.3,
    )
    assert (m.norm, m.positions, m.context) == ("post", "learned", 80)
    assert (t.batch_size, t.betas, t.lr, t.init_lr, t.grad_clip, t.label_smoothing) == (
        128,
        (0.9, 0.99),
        3e-4,
        2e-6,
        1.0,
        0.0,
    )
    assert (paper.data.source, paper.data.sources.a2c.hidden, paper.data.sources.a2c.lr) == (
        "a2c",
        (128, 128, 128),
        1e-4,
    )
    assert paper.eval.episodes == 1000
    quick = get_preset("darkroom", "quick")  # the numbers behind RESULTS.md's Dark Room run
    assert (quick.data.source, quick.data.steps, quick.methods["ad"].histories, quick.methods["ed"].histories) == (
        "qlearning",
        10_000,
        2000,
        200,
    )
    assert (quick.train.iters, quick.train.subsample, quick.model.n_layer, quick.model.n_ff) == (3000, 40, 3, 256)
    assert (quick.model.positions, quick.model.token_mask) == ("rope", 0.0)
    # the sources that read the hidden state on the tasks that hide it; the paper presets keep Table 4's A2C
    assert {get_preset(env).data.source for env in ("keydoor", "darkroom-hard")} == {"ucbq"}


def test_config_output_fed_back_gives_the_same_run_hash(tmp_path):
    first = cli("config", "darkroom", "--model.context", "40", "--name", "mine")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    path = tmp_path / "run.json"
    path.write_text(first.stdout)
    again = cli("config", "--config", str(path))
    assert again.returncode == 0, again.stderr
    back = json.loads(again.stdout)
    assert back["run_hash"] == data["run_hash"] and back | {"config": None} == data
    cfg = load_run_config(path)
    assert run_hash(cfg) == data["run_hash"] and cfg.model.context == 40 and cfg.name == "mine"
    # flags still override a config file's fields
    assert (
        json.loads(cli("config", "--config", str(path), "--model.context", "20").stdout)["run_hash"] != data["run_hash"]
    )


def test_run_hash_covers_what_a_run_computes_and_nothing_else(capsys, tmp_path):
    base = printed(capsys, "darkroom")
    assert base["run_hash"] == run_hash(get_preset("darkroom", "quick"))
    control = printed(capsys, "darkroom", "--name", "x", "--runs", str(tmp_path), "--quiet", "--workers", "2")
    assert control["run_hash"] == base["run_hash"]  # where and how loudly a run runs is not what it computes
    for flag, value in (
        ("--seed", "1"),
        ("--train.lr", "3e-4"),
        ("--eval.episodes", "10"),
        ("--data.qlearning.lr", "0.4"),
    ):
        assert printed(capsys, "darkroom", flag, value)["run_hash"] != base["run_hash"], flag
    assert printed(capsys, "darkroom", "--preset", "paper")["model"]["n_ff"] == 2048


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["darkroom", "--preset", "huge"], "preset='huge' is unknown for env='darkroom': choose one of quick, paper"),
        (["gridworld"], "env='gridworld' has no preset: choose one of bandit, darkroom, darkroom-hard, keydoor"),
        (["darkroom", "--train.iters", "abc"], "--train.iters: invalid literal for int()"),
        (["darkroom", "--train.iterz", "3"], "did you mean --train.iters"),
        (["darkroom", "--model.encoder.kind", "conv"], "model.encoder.kind='conv' does not fit the observations"),
        (["--preset", "paper", "darkroom"], "env='darkroom' must come first"),
        (["darkroom", "--data.steps", "1010"], "data.steps=1010 is not a whole number of darkroom episodes"),
    ],
)
def test_bad_config_input_is_one_line_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["config", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["methods"].update(nope={"histories": 3}), "method='nope' is unknown: choose one of ad, ed, rl2"),
        (lambda d: d["methods"].update(rl2={"histories": 3}), "rl2 is trained online, not on a dataset"),
        (lambda d: d["train"].update(iters="many"), "config field train.iters='many' is not of type int"),
        (lambda d: d["model"].update(widht=3), "config field model.widht is unknown"),
        (lambda d: d.update(env="darkroom-hard"), "differs from the config file"),
    ],
)
def test_a_bad_config_file_is_one_line_exit_2(capsys, tmp_path, edit, message):
    data = printed(capsys, "darkroom")
    edit(data)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    args = ["--config", str(path)] if data["env"] == "darkroom" else ["darkroom", "--config", str(path)]
    with pytest.raises(SystemExit) as info:
        main(["config", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_run_config_checks_fields_across_sections():
    cfg = get_preset("darkroom", "quick")
    with pytest.raises(UserError, match="methods is empty"):
        dataclasses.replace(cfg, methods={})
    with pytest.raises(UserError, match=r"model.context=81 is longer than the histories \(80 steps"):
        dataclasses.replace(
            cfg,
            data=dataclasses.replace(cfg.data, steps=800),
            model=dataclasses.replace(cfg.model, context=81),
            train=dataclasses.replace(cfg.train, subsample=10),
        )
