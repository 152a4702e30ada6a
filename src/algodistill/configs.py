"""The typed configuration of a run and of its stages, apart from the loops that use them.

A run (`algodistill run`) is one `RunConfig`: the env, the source data, each method's data size, the
model, the training and the evaluation, plus how it runs (where, on which device, how loudly). The
preset registry (`algodistill.presets`) holds complete RunConfigs; the CLI overrides their fields, and
`run_hash` names what a run computes. A single training job (`algodistill train`) is a `TrainJob`.

Every field is documented (it becomes `--help`) and every invariant is checked in `__post_init__`,
with a one-line UserError that names the field and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from algodistill.device import DeviceName
from algodistill.encoders import check_fits
from algodistill.envs import get_family
from algodistill.errors import UserError, parse_part
from algodistill.jsonio import canonical_hash, jsonable
from algodistill.methods import get_method
from algodistill.model import ModelConfig
from algodistill.sampler import kept_steps
from algodistill.sources import SourceConfig, check_source


def _positive(owner: object, prefix: str, *names: str) -> None:
    for name in names:
        if (v := getattr(owner, name)) < 1:
            raise UserError(f"{prefix}{name}={v} must be positive: pass --{prefix}{name.replace('_', '-')} 1 or more")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of a method's model (paper Table 2)."""

    iters: int = 3000
    """optimizer iterations in total (not in the paper); may be raised when resuming a finished run"""
    batch_size: int = 32
    """windows per iteration, over all DDP ranks together (paper Table 2: 128)"""
    lr: float = 1e-3
    """peak learning rate, reached at the end of the warm-up (paper Table 2: 3e-4)"""
    init_lr: float = 2e-6
    """learning rate of iteration 0, where the linear warm-up starts (paper Table 2: 2e-6)"""
    warmup_iters: int = 150
    """iterations of linear warm-up from init_lr to lr (not in the paper; ours: 5-10%, as AD^eps)"""
    min_lr: float = 1e-4
    """learning rate at the end of the cosine decay (not in the paper)"""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas (paper Table 2: 0.9, 0.99)"""
    weight_decay: float = 0.0
    """AdamW weight decay on weight matrices and embeddings only (not in the paper, which names Adam: 0)"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this; 0 turns clipping off (paper Table 2: 1)"""
    label_smoothing: float = 0.0
    """label smoothing of the action targets (paper App. F: 0.2 for Dark Room Hard, else 0)"""
    subsample: int = 1
    """keep every k-th episode of each history (paper Sec. 5, App. I: 10 in the single-stream ablation)"""
    ckpt_every: int = 500
    """save out/ckpt.pt every this many iterations (and at the end, and on Ctrl-C)"""
    log_every: int = 50
    """append a line to out/metrics.jsonl (means since the previous line) every this many iterations"""

    def __post_init__(self) -> None:
        _positive(self, "train.", "iters", "batch_size", "subsample", "ckpt_every", "log_every")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise UserError(f"train.lr={self.lr} must be a positive finite number: e.g. --train.lr 3e-4")
        for name in ("init_lr", "min_lr", "weight_decay", "grad_clip", "warmup_iters"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise UserError(f"train.{name}={v} must be a finite number >= 0")
        if self.min_lr > self.lr:
            raise UserError(f"train.min_lr={self.min_lr} exceeds the peak lr={self.lr}: choose min_lr <= lr")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise UserError(f"train.betas={self.betas} must be two numbers in [0, 1), e.g. --train.betas 0.9 0.99")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"train.label_smoothing={self.label_smoothing} must be in [0, 1), e.g. 0.2")


RESUMABLE_TRAIN_FIELDS = ("iters", "ckpt_every", "log_every")
"""TrainConfig fields that may change when a run resumes: they do not change what is learned (raising
iters extends a run, and also stretches the cosine decay from that iteration on)."""


@dataclass(frozen=True)
class TrainJob:
    """Train one method's model on one dataset of learning histories (paper Sec. 3, Tables 1-2)."""

    env: str = "darkroom"
    """task family; must be the dataset's env"""
    method: str = "ad"
    """method to train (see algodistill.methods): ad, ed, ..."""
    data: Path = Path("runs/darkroom/data")
    """dataset directory written by `algodistill generate` (manifest.json and shards)"""
    out: Path = Path("runs/darkroom/ad")
    """run directory: ckpt.pt, config.json, metrics.jsonl (and tb/ when tensorboard is installed)"""
    preset: str = "quick"
    """preset whose model and train settings are the defaults of this command (see `algodistill config`)"""
    seed: int = 0
    """seed of the initialisation, the batches (batch i from rng.np_rng(seed, i)) and dropout"""
    model: ModelConfig = field(default_factory=ModelConfig)
    """transformer shape and regularisation (paper Table 1); model.context is the window c in steps"""
    train: TrainConfig = TrainConfig()
    """optimisation (paper Table 2)"""
    device: DeviceName = "auto"
    """"auto": CUDA with bf16 autocast when present, else CPU in float32"""
    resume: bool = True
    """continue from out/ckpt.pt when it exists (its config must match); --no-resume refuses an existing run"""
    quiet: bool = False
    """no summary lines and no progress bar (the bar is also off when stderr is not a terminal)"""

    def __post_init__(self) -> None:
        check_fits(self.model.encoder, get_family(self.env).spec)  # UserError for an unknown env too
        get_method(self.method)
        if self.seed < 0:
            raise UserError(f"seed={self.seed} must be >= 0")

    def record(self) -> dict[str, Any]:
        """What determines the trained weights, as JSON data (what a checkpoint stores and a resume compares)."""
        return jsonable({k: getattr(self, k) for k in ("env", "method", "seed", "model", "train")})


@dataclass(frozen=True)
class DataConfig:
    """The learning histories of a run: which source algorithm makes them, and how long each is."""

    source: str = "qlearning"
    """source algorithm of the learning histories (AD's data): ucb, thompson, a2c, qlearning, ucbq, privq, dqn, ..."""
    steps: int = 10_000
    """env steps per history T, a whole number of episodes (every method's data has this length)"""
    shard_size: int = 500
    """histories per shard file (the data does not depend on it)"""
    tasks: int | None = None
    """training tasks the histories run on, a fixed-seed subset of the train split (default: all; paper Fig. 12)"""
    sources: Annotated[SourceConfig, tyro.conf.arg(name="")] = field(default_factory=SourceConfig)
    """hyperparameters of the source algorithms (only the chosen ones are used)"""

    def __post_init__(self) -> None:
        _positive(self, "data.", "steps", "shard_size")
        if self.tasks is not None and self.tasks < 1:
            raise UserError(f"data.tasks={self.tasks} must be positive: choose 1 or more, or leave it out for all")


@dataclass(frozen=True)
class MethodConfig:
    """A method of a run: how much data it trains on (its source is the method's own: AD the run's, ED the
    expert's)."""

    histories: int = 2000
    """learning histories in its dataset (paper Sec. 5: 2000 for the Dark environments)"""

    def __post_init__(self) -> None:
        _positive(self, "methods.<name>.", "histories")


@dataclass(frozen=True)
class EvalConfig:
    """In-context evaluation: frozen weights, an empty context, held-out tasks (paper Sec. 4.3)."""

    episodes: int = 100
    """episodes per stream (paper: 1000 for the Dark environments)"""
    tasks: int = 20
    """tasks drawn from the split (all of them when the split is smaller; paper: 20)"""
    streams_per_task: int = 5
    """evaluation streams per task, each with its own env and action randomness"""
    greedy: bool = False
    """take the argmax action instead of sampling (paper App. B samples)"""
    temperature: float = 1.0
    """sample from softmax(logits / temperature) (1: the model's distribution, as in the paper)"""

    def __post_init__(self) -> None:
        _positive(self, "eval.", "episodes", "tasks", "streams_per_task")
        if not self.temperature > 0:
            raise UserError(f"eval.temperature={self.temperature} must be positive: choose e.g. 1.0")


MAX_TRAIN_SEEDS = {"quick": 10, "paper": 5}
"""Most replicas a preset allows: each paper replica is hours of GPU time, and the paper reports 5 seeds."""


def parse_replicas(replicas: str | None) -> tuple[int, int]:
    """(i, n) of a replica shard "i/n"; None is (0, 1), every replica. UserError when malformed."""
    return (0, 1) if replicas is None else parse_part(replicas, "replicas")


BASELINES = ("ed", "source", "rl2", "dpt")
"""What `RunConfig.baselines` may name: ED and DPT are methods trained on data (`methods.ed`; DPT on AD's
source with `methods.dpt`'s or else AD's number of histories), the source runs from scratch on the
held-out streams, RL^2 is trained online (`algodistill.rl2`)."""


def parse_baselines(text: str) -> list[str]:
    """The names in a comma-separated list of baselines; UserError naming one not in BASELINES."""
    names = [b.strip() for b in text.split(",") if b.strip()]
    for b in names:
        if b not in BASELINES:
            raise UserError(
                f"baselines: {b!r} is unknown: choose among {', '.join(BASELINES)}, comma-separated, "
                "e.g. --baselines ed,source,rl2"
            )
    return names


RUN_CONTROL_FIELDS = ("name", "runs", "device", "workers", "replicas", "quiet", "config")
"""RunConfig fields that say how a run runs, not what it computes: not part of the run hash."""


@dataclass(frozen=True)
class RunConfig:
    """Generate data, train every method, evaluate in context on held-out tasks, and write a report."""

    env: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV")]
    """task family: bandit, darkroom, darkroom-hard, keydoor, watermaze or watermaze-small (36 x 48 frames, where
    watermaze's quick preset runs)"""
    preset: str = "quick"
    """preset the other fields start from: quick (minutes on a laptop CPU) or paper (the paper's sizes)"""
    seed: int = 0
    """seed of the evaluation streams, and the first training seed (of the data and the training)"""
    train_seeds: int = 1
    """independent replicas, each with its own data and training, from training seeds seed, seed+1, ...,
    evaluated on the same held-out streams; the report gives the mean and 95% CI over them and the worst
    seed (paper Sec. 4.3: 5 seeds)"""
    data: DataConfig = DataConfig()
    """the source algorithm's learning histories"""
    methods: dict[str, MethodConfig] = field(default_factory=lambda: {"ad": MethodConfig(), "ed": MethodConfig(200)})
    """the methods trained and evaluated (ad, ed, ...), each on its own dataset"""
    model: ModelConfig = field(default_factory=ModelConfig)
    """the model of every method (paper Table 1)"""
    train: TrainConfig = TrainConfig()
    """optimisation of every method's model (paper Table 2)"""
    eval: EvalConfig = EvalConfig()
    """in-context evaluation on held-out tasks"""
    baselines: str = "ed,source"
    """comma-separated baselines beside AD: ed (trains the ED method of `methods`, when it has one), source
    (the data's source and the source tuned to the budget, from scratch on the held-out streams), rl2
    (RL^2 trained online on the training tasks by `algodistill rl2`'s preset, one per training seed), dpt
    (DPT: AD's model trained on the optimal action at each observation of AD's source's histories)"""
    rl2_steps: int | None = None
    """env-step budget of each RL^2 training when rl2 is a baseline (default: the rl2 preset's)"""
    rl2_carry: bool = True
    """RL^2's evaluation carries its recurrent state across the whole evaluation, as AD's context is;
    --no-rl2-carry resets it every trial, as in its training"""
    name: str | None = None
    """run name (default: <env>-<preset>); the run lives in <runs>/<name>/"""
    runs: Path = Path("runs")
    """directory holding the runs"""
    device: DeviceName = "auto"
    """training and evaluation device ("auto": CUDA with bf16 when present)"""
    workers: int = 1
    """processes: replicas run side by side when train_seeds > 1, else data shards do (results do not depend on it)"""
    replicas: str | None = None
    """this machine's replicas as "i/n" (replicas i, i+n, ... of train_seeds), for a cluster; the report is
    written by a run that finds every replica finished (default: all)"""
    quiet: bool = False
    """no progress bars"""
    config: Path | None = None
    """start from this resolved configuration (JSON written by `algodistill config`) instead of the preset"""

    def __post_init__(self) -> None:
        spec = get_family(self.env).spec  # UserError naming an unknown env
        check_source(self.data.source, self.env)
        if not self.methods:
            raise UserError("methods is empty: a run trains at least one method, e.g. ad")
        if "source" in self.methods:  # the name of the source baseline's results
            raise UserError(
                "methods.source is reserved for the source baseline: register the method under another name"
            )
        for name in self.methods:
            check_source(get_method(name).data_source(self.data.source), self.env)
        if "dpt" in parse_baselines(self.baselines):  # DPT's targets: UserError for an env that gives none
            family = get_family(self.env)
            family.optimal_action(family.split("train")[:1], np.zeros((1, 1, *spec.obs_shape), spec.obs_dtype))
        if self.rl2_steps is not None and self.rl2_steps < 1:
            raise UserError(f"rl2_steps={self.rl2_steps} must be positive: pass --rl2-steps 1 or more")
        check_fits(self.model.encoder, spec)
        _positive(self, "", "workers", "train_seeds")
        if self.seed < 0:
            raise UserError(f"seed={self.seed} must be >= 0")
        most = MAX_TRAIN_SEEDS.get(self.preset, MAX_TRAIN_SEEDS["paper"])
        if self.train_seeds > most:
            raise UserError(
                f"train_seeds={self.train_seeds} is more than the {self.preset!r} preset allows ({most}): "
                f"pass --train-seeds {most} or fewer, or split the replicas over runs with --seed"
            )
        parse_replicas(self.replicas)
        H = spec.episode_length
        if self.data.steps % H:
            raise UserError(
                f"data.steps={self.data.steps} is not a whole number of {self.env} episodes of {H} steps: "
                f"choose a multiple of {H}, e.g. --data.steps {max(H, self.data.steps // H * H)}"
            )
        n_train = len(get_family(self.env).split("train"))
        if self.data.tasks is not None and self.data.tasks > n_train:
            raise UserError(
                f"data.tasks={self.data.tasks} is more than the {n_train} training tasks of {self.env}: "
                f"choose 1 to {n_train}"
            )
        kept = kept_steps(self.data.steps, H, self.train.subsample)
        if self.model.context > kept:
            raise UserError(
                f"model.context={self.model.context} is longer than the histories ({kept} steps with "
                f"train.subsample={self.train.subsample}, data.steps={self.data.steps}): use a context <= {kept}"
            )

    @property
    def run_dir(self) -> Path:
        return self.runs / (self.name or f"{self.env}-{self.preset}")

    @property
    def baseline_list(self) -> list[str]:
        return parse_baselines(self.baselines)

    @property
    def trained_methods(self) -> dict[str, MethodConfig]:
        """The methods that this run trains on data: those of `methods` but the BASELINES left out, and DPT
        when listed (with AD's number of histories unless `methods` has a dpt)."""
        listed = self.baseline_list
        kept = {n: m for n, m in self.methods.items() if n not in BASELINES or n in listed}
        if "dpt" in listed and "dpt" not in kept:
            kept["dpt"] = self.methods.get("ad", MethodConfig())
        return kept

    @property
    def train_seed_list(self) -> list[int]:
        """The replicas' training seeds: seed, seed + 1, ..., seed + train_seeds - 1."""
        return list(range(self.seed, self.seed + self.train_seeds))

    def record(self) -> dict[str, Any]:
        """What the run computes, as JSON data: every field but the run-control ones."""
        return {k: v for k, v in jsonable(self).items() if k not in RUN_CONTROL_FIELDS}


def run_hash(cfg: RunConfig) -> str:
    """sha256 of what a run computes (`RunConfig.record`): equal hashes, equal results."""
    return canonical_hash(cfg.record())
