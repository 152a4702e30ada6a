"""The preset registry: one complete, typed run configuration per (env, scale), and nothing else holds defaults.

    cfg = get_preset("darkroom", "quick")                 # a RunConfig
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, context=40))   # a study's variant

`algodistill config <env> [--preset P] [--field value ...]` prints the resolved configuration of a run
as JSON; `algodistill run --config FILE` runs exactly that. Env-specific choices (the bandit's context,
Hard's masking and label smoothing) are written here, per preset, and nowhere else.

quick: sized for 2 CPU cores, and checked against the targets in RESULTS.md for training seeds 0-2
(Watermaze's on seed 0 only).
Sources whose histories show learning within their length: tabular Q-learning with epsilon annealed
over the first half of the history on Dark Room, optimistic UCB Q-learning that reads the hidden
has-key / goal-reached state (`ucbq`) on Key-to-Door and Hard, UCB on the bandit; histories subsampled
(every 40th Dark Room episode, 10th on Hard, 5th on Key-to-Door; paper Sec. 5, App. I) so that the
transformer sees in a few episodes the progress the source makes in many; a 3-layer model with a
256-wide feed-forward, no attention dropout, rotary positions (the inference cache then slides, a
steady window of the trained length), token masking 0.3 with masked positions out of the loss (none
on Dark Room); 3000 iterations. Dark Room's choices were measured: without masking AD ends as high or
higher on each of 3 training seeds than with it (RESULTS.md); every 40th episode reached episodes 21-30
faster than every 20th on seed 0 (issue 9's closing note: a development run on the previous split).

paper: the paper's sizes where it gives them (paper Sec. 4-5, Tables 1, 2 and 4): the A2C source with
Table 4's 3 x 128 MLP and lr 1e-4 (single-stream, our deviation from 100-actor A3C), 2000 histories,
the Table 1 transformer (learned absolute positions: the inference cache re-encodes the last c steps
at every step once full), batch 128, lr 2e-6 -> 3e-4 with cosine decay, 1000 evaluation episodes. Not
in the paper, ours: history lengths (100k steps; Key-to-Door 250k), 100k iterations with a 10k warm-up
(AD^eps's ratio) down to 2e-6, and the number of ED histories.

Both: the context is 4 episodes (Dark Room 80, Key-to-Door 200; paper Sec. 5 and Fig. 7), the bandit's
100 pulls; Dark Room Hard has attention dropout 0, token masking 0.5 and label smoothing 0.2 (Table 1,
App. F).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from algodistill.configs import DataConfig, EvalConfig, MethodConfig, RunConfig, TrainConfig, TrainJob
from algodistill.encoders import EncoderConfig
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.jsonio import from_jsonable, read_json
from algodistill.methods.rl2 import RL2Config
from algodistill.model import ModelConfig
from algodistill.rl2 import PPOConfig, RL2TrainConfig
from algodistill.sources import A2CConfig, SourceConfig

SCALES = ("quick", "paper")

QUICK_MODEL = ModelConfig(
    n_embd=64, n_layer=3, n_head=4, n_ff=256, dropout=0.1, attn_dropout=0.0, token_mask=0.3, positions="rope"
)
"""Small enough for a Dark Room AD in minutes on 2 CPU cores; rotary positions for a sliding inference
window (ours); otherwise Table 1."""
PAPER_MODEL = ModelConfig(n_embd=64, n_layer=4, n_head=4, n_ff=2048, dropout=0.1, attn_dropout=0.5, token_mask=0.3)
"""Table 1."""
QUICK_TRAIN = TrainConfig(iters=3000, batch_size=32, lr=1e-3, warmup_iters=150, min_lr=1e-4, subsample=10)
"""Every 10th episode kept (paper Sec. 5, App. I; each env's preset may change it); Table 2's optimiser with
a smaller batch and a larger lr (ours)."""
PAPER_TRAIN = TrainConfig(
    iters=100_000,
    batch_size=128,
    lr=3e-4,
    init_lr=2e-6,
    warmup_iters=10_000,
    min_lr=2e-6,
    ckpt_every=5000,
    log_every=100,
)
"""Table 2 (batch, betas, lr 2e-6 -> 3e-4, cosine, clip 1); iterations and warm-up are ours."""
TABLE_4_A2C = SourceConfig(a2c=A2CConfig(hidden=(128, 128, 128), lr=1e-4))
"""The paper's A3C settings for the Dark environments (Table 4), for the single-stream A2C source."""
HARD_MODEL = {"attn_dropout": 0.0, "token_mask": 0.5}  # Table 1, Dark Room (Hard) column
TABLE_3_ENCODER = EncoderConfig("conv", channels=(128, 128, 128), kernel=5, stride=2, dropout=0.2)
"""The Watermaze image encoder (Table 3; its final linear maps to the model's width, not to 256)."""
HARD_TRAIN = {"label_smoothing": 0.2}  # App. F
QUICK_ENCODER = EncoderConfig("conv", channels=(16, 32), kernel=4, stride=4)
"""Watermaze's CPU encoder (ours): Table 3's blocks with 16 and 32 channels, kernel 4 and stride 4, no dropout;
a 36 x 48 frame ends as 32 numbers. One AD optimizer step on a batch of 32 windows of 101 frames takes 246 ms
on 2 cores, against 488 ms with kernel 5, stride 2 and 8 and 16 channels (`python benchmarks/pixels.py
--channels 16 32 --kernel 4 --stride 4`, then `--channels 8 16`; 2026-12-02)."""


_BASES = {"quick": (QUICK_MODEL, QUICK_TRAIN, 200), "paper": (PAPER_MODEL, PAPER_TRAIN, 2000)}
"""scale -> (model, train, ED histories) that its presets start from"""


def _preset(
    env: str,
    scale: str,
    data: DataConfig,
    context: int,
    *,
    histories: int = 2000,
    expert_histories: int | None = None,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    eval: EvalConfig | None = None,
) -> RunConfig:
    """A preset: the scale's model and train settings with the env's context and `model`/`train` changes."""
    base_model, base_train, base_expert = _BASES[scale]
    return RunConfig(
        env,
        preset=scale,
        data=data,
        methods={"ad": MethodConfig(histories), "ed": MethodConfig(expert_histories or base_expert)},
        model=dataclasses.replace(base_model, context=context, **(model or {})),
        train=dataclasses.replace(base_train, **(train or {})),
        eval=eval or EvalConfig(),
    )


def _a2c(steps: int) -> DataConfig:
    return DataConfig("a2c", steps, sources=TABLE_4_A2C)


_PAPER_EVAL = EvalConfig(episodes=1000)


PRESETS: dict[tuple[str, str], Callable[[], RunConfig]] = {
    ("darkroom", "quick"): lambda: _preset(
        "darkroom",
        "quick",
        DataConfig("qlearning", 10_000),
        80,
        model={"token_mask": 0.0},
        train={"subsample": 40},
        eval=EvalConfig(tasks=16),
    ),
    ("darkroom-hard", "quick"): lambda: _preset(
        "darkroom-hard", "quick", DataConfig("ucbq", 20_000), 80, model=HARD_MODEL, train=HARD_TRAIN
    ),
    ("keydoor", "quick"): lambda: _preset("keydoor", "quick", DataConfig("ucbq", 25_000), 200, train={"subsample": 5}),
    ("bandit", "quick"): lambda: _preset(
        "bandit",
        "quick",
        DataConfig("ucb", 100),
        100,
        histories=4000,
        expert_histories=400,
        train={"iters": 2000, "subsample": 1},
    ),
    # Watermaze on 2 CPU cores runs at 36 x 48 (`watermaze-small`; `run watermaze` leads here, see ALIASES):
    # 1000 `replay` histories of 200 episodes, every episode kept, a 2-episode context (Sec. 5: 2-4 episodes) and
    # QUICK_ENCODER; ours, sized to train in about 7 minutes (a seed's whole run: 18). replay, not privq: the only
    # source of ours whose histories AD has learned in context from on Watermaze (RESULTS.md, docs/fidelity.md).
    ("watermaze-small", "quick"): lambda: _preset(
        "watermaze-small",
        "quick",
        DataConfig("replay", 10_000),
        100,
        histories=1000,
        model={"encoder": QUICK_ENCODER, "token_mask": 0.0},
        train={"iters": 2000, "subsample": 1},
        eval=EvalConfig(episodes=160, tasks=16),
    ),
    ("darkroom", "paper"): lambda: _preset("darkroom", "paper", _a2c(100_000), 80, eval=_PAPER_EVAL),
    ("darkroom-hard", "paper"): lambda: _preset(
        "darkroom-hard", "paper", _a2c(100_000), 80, model=HARD_MODEL, train=HARD_TRAIN, eval=_PAPER_EVAL
    ),
    ("keydoor", "paper"): lambda: _preset("keydoor", "paper", _a2c(250_000), 200, eval=_PAPER_EVAL),
    # Watermaze (Sec. 4.1, Tables 1 and 3, Fig. 4): 4000 histories, 4-episode context (Sec. 5: 2-4 episodes),
    # 160 evaluation episodes. The source is replay, as in the quick preset, with 200-episode histories; the
    # paper's pixel DQN is `--data.source dqn` (Table 5's flags in docs/fidelity.md), not the default while AD
    # on its histories is unmeasured; not run yet, like the other paper presets.
    ("watermaze", "paper"): lambda: _preset(
        "watermaze",
        "paper",
        DataConfig("replay", 10_000),
        200,
        histories=4000,
        model={"encoder": TABLE_3_ENCODER},
        eval=EvalConfig(episodes=160),
    ),
    ("bandit", "paper"): lambda: _preset(
        "bandit", "paper", DataConfig("ucb", 100), 100, histories=10_000, expert_histories=1000
    ),
}


ALIASES: dict[tuple[str, str], str] = {("watermaze", "quick"): "watermaze-small"}
"""(env, scale) -> the env whose preset runs instead: Watermaze's quick preset renders at 36 x 48, since a frame
at the paper's 72 x 96 has 4 times the pixels to encode and takes 3.6 times as long to draw (benchmarks/envs.py),
and every training batch redraws its frames."""


def get_preset(env: str, scale: str = "quick") -> RunConfig:
    """The run configuration registered for (env, scale), or for the env it is an alias of (its `env` then
    names that env); UserError naming the choices otherwise."""
    if (env, scale) in ALIASES:
        return get_preset(ALIASES[env, scale], scale)
    if (env, scale) not in PRESETS:
        envs = sorted({e for e, _ in [*PRESETS, *ALIASES]})
        if env not in envs:
            raise UserError(f"env={env!r} has no preset: choose one of {', '.join(envs)}")
        scales = [s for e, s in [*PRESETS, *ALIASES] if e == env]
        raise UserError(f"preset={scale!r} is unknown for env={env!r}: choose one of {', '.join(scales)}")
    return PRESETS[env, scale]()


_RL2_BASES = {
    "quick": (
        RL2Config(cell="gru", hidden=128, layers=1, embed=32),
        PPOConfig(lr=1e-3, reward_scale=0.05),
        256,
        20_000_000,
    ),
    "paper": (RL2Config(), PPOConfig(reward_scale=0.05), 256, 1_000_000_000),
}
"""scale -> RL^2 (network, PPO, parallel tasks, env-step budget). paper: Table 6 (LSTM 256 x 2, lr 3e-4,
batch 256, unroll 20, 10 episodes per trial; PPO instead of A3C is ours) and the paper's 1e9 steps.
quick: a 1 x 128 GRU and lr 1e-3 for 2 CPU cores, 20M steps (about 23 minutes on Dark Room with
RL2_QUICK_GRID), measured in RESULTS.md. Both scale rewards by 0.05 in the loss (ours; RL2_REWARD_SCALES
names the exceptions): on Dark Room, seed 0, 12M steps, the training return per episode reached 8.4 with it
and 2.4 without (the value loss of unscaled returns swamps the policy gradient under the shared clip)."""
RL2_REWARD_SCALES = {"darkroom-hard": 1.0}
"""env -> the reward scale in RL^2's loss where it is not the 0.05 of _RL2_BASES (ours). Dark Room (Hard) pays
at most 1 per episode, so 0.05 left its value targets near 0.003 and, on seed 0 at the quick preset's 20M
steps, the training return never left random (0.06 per episode); unscaled it reached 0.19 / 0.11 / 0.18 on
seeds 0-2, though held-out goals stay near random (RESULTS.md). Key-to-Door keeps 0.05: 0.5 ended no better
there (held out 0.72 against 0.80, seed 0)."""
RL2_TRIALS = {"bandit": 100}
"""episodes per trial where it is not Table 6's 10: the bandit's trial is its 100 pulls (Fig. 3)."""
RL2_QUICK_GRID = ("darkroom", "darkroom-hard", "keydoor")
"""envs whose quick RL^2 reads the cell's coordinates as numbers (an MLP encoder) and back-propagates through
the whole trial (unroll = its 10 episodes, 8 minibatches of tasks), both ours. On Dark Room, seed 0, 12M
steps (RESULTS.md, benchmarks/rl2_goals.py): with Table 6's unroll of one episode (20 steps) no gradient
links the step that finds the goal to a later episode's return to it, and the held-out return per episode
was 4.1 (a table per coordinate: 2.8); with 100 steps 7.9, with the whole trial 8.8 (14.5 in a trial's
tenth episode), and 99% of the episodes after the goal was first found went back to it (40% with the table
and 20 steps): the table remembers the training goals, the numbers generalise to held-out ones. Tuned on
Dark Room only: at 20M steps it learns in context on Hard's training goals but not on held-out ones (seeds
0-2), and not on Key-to-Door (seed 0) (RESULTS.md)."""
RL2_PIXELS = {
    "quick": (dataclasses.replace(QUICK_ENCODER, norm="none"), 10, 8_000_000),
    "paper": (dataclasses.replace(TABLE_3_ENCODER, norm="none"), 30, 1_000_000_000),
}
"""scale -> RL^2's frame encoder, episodes per trial and env-step budget on Watermaze. paper: Table 7's 30
episodes per trial and the paper's 1e9 steps; the encoder is AD's Table 3 encoder without BatchNorm (ours:
Table 7's RL^2 is a DQN(Q-lambda) agent with a ResNet torso, ours the same recurrent PPO as on the Dark
tasks; `EncoderConfig.norm` says why no BatchNorm). quick: the AD quick preset's encoder without BatchNorm,
Table 6's 10 episodes per trial and unroll 20, and 8M steps: about 25 minutes on 2 cores at 5,400 steps/s
(`python benchmarks/rl2.py --env watermaze --scales quick --tasks 256`)."""


def rl2_preset(env: str, scale: str = "quick") -> RL2TrainConfig:
    """The RL^2 training config of (env, scale), from the registry like every run's."""
    env = get_preset(env, scale).env  # the same envs and scales as the runs (and aliases), and the same errors
    net, ppo, tasks, steps = _RL2_BASES[scale]
    net = dataclasses.replace(net, trial_episodes=RL2_TRIALS.get(env, 10))
    ppo = dataclasses.replace(ppo, reward_scale=RL2_REWARD_SCALES.get(env, ppo.reward_scale))
    unroll = 20  # Table 6
    spec = get_family(env).spec
    if spec.obs_high is None:  # frames: a conv encoder (Watermaze)
        encoder, trial_episodes, steps = RL2_PIXELS[scale]
        net = dataclasses.replace(net, encoder=encoder, trial_episodes=trial_episodes)
    if scale == "quick" and env in RL2_QUICK_GRID:
        net = dataclasses.replace(net, encoder=EncoderConfig("mlp"))
        unroll = net.trial_episodes * spec.episode_length  # the whole trial
        ppo = dataclasses.replace(ppo, minibatches=8)
    normalize_by = "ucb" if env == "bandit" else None  # paper Fig. 3's normalised score
    return RL2TrainConfig(
        env, preset=scale, net=net, ppo=ppo, tasks=tasks, unroll=unroll, steps=steps, normalize_by=normalize_by
    )


def rl2_defaults(args: Sequence[str]) -> RL2TrainConfig | None:
    """The RL2TrainConfig that `algodistill rl2 ENV` flags override: the preset of ENV and --preset."""
    env = _env_argument(args)
    return None if env is None else rl2_preset(env, _option(args, "--preset") or "quick")


def load_run_config(path: Path) -> RunConfig:
    """A run configuration from a JSON file written by `algodistill config` (its run_hash is not trusted,
    so a hand-edited file is fine: the hash is recomputed)."""
    data = read_json(path, "pass a file written by `algodistill config <env> > FILE`")
    data.pop("run_hash", None)
    return from_jsonable(RunConfig, data)


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of the last `--name V` or `--name=V` in args (the one the parser keeps), else None."""
    value = None
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    return value


def _env_argument(args: Sequence[str]) -> str | None:
    """The positional ENV, which the command line puts first: `algodistill run ENV [--flags]`."""
    return args[0] if args and not args[0].startswith("-") else None


def run_defaults(args: Sequence[str]) -> RunConfig | None:
    """The RunConfig that the flags in `args` override: the file of `--config`, or the preset of ENV and
    `--preset` (quick by default); None when ENV is missing (the parser then says so, or prints --help)."""
    if (path := _option(args, "--config")) is not None:
        return dataclasses.replace(load_run_config(Path(path)), config=Path(path))
    env = _env_argument(args)
    return None if env is None else get_preset(env, _option(args, "--preset") or "quick")


def check_same_base(parsed: RunConfig, base: RunConfig | None) -> None:
    """UserError if the parsed env or preset is not the one whose defaults were used (an ENV given after
    the flags, or an env or preset that differs from the --config file's)."""
    if base is None:  # ENV was not first, so no preset was read: the fields hold placeholders
        raise UserError(f"env={parsed.env!r} must come first: `algodistill run ENV [--preset P] [--flags]`")
    if (parsed.env, parsed.preset) != (base.env, base.preset):
        where = f"the config file {base.config}" if base.config is not None else "the defaults"
        raise UserError(
            f"env={parsed.env!r} with preset={parsed.preset!r} differs from {where} ({base.env!r}, "
            f"{base.preset!r}): put ENV first, `algodistill run ENV [--preset P] [--flags]`, and do not change "
            "env or preset of a --config file"
        )


def train_defaults(args: Sequence[str]) -> TrainJob:
    """The TrainJob that `algodistill train` flags override: the model and train settings of the preset of
    `--env` and `--preset` (defaults darkroom, quick), so a job trains as `algodistill run` would."""
    env, scale = _option(args, "--env") or "darkroom", _option(args, "--preset") or "quick"
    method = _option(args, "--method") or "ad"
    run = get_preset(env, scale)
    return TrainJob(
        env=env,
        method=method,
        data=Path("runs") / env / "data",
        out=Path("runs") / env / method,
        preset=scale,
        model=run.model,
        train=run.train,
    )
