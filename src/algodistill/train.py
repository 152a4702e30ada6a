"""`algodistill train`: fit the AD transformer to learning histories (paper Sec. 3, Eq. 6, Alg. 1 l. 7-9).

One visible loop, nanoGPT-style: lr schedule -> batch -> forward -> loss -> backward -> clip -> step ->
log -> checkpoint. What makes it reliable (engineering.md C.1, C.2):

- Batch `step` is drawn from `rng.np_rng(seed, step)` and dropout is reseeded from (seed, step, rank),
  and the lr is a function of the step, so a resume needs only the step counter: it is bit-exact on
  CPU and never replays earlier batches. There are no epochs.
- `out/ckpt.pt` (see `algodistill.checkpoint`) is written atomically, holds only finite weights, and
  is loaded with weights_only=True. Resuming with another architecture/data config is refused.
- Ctrl-C (SIGINT) or SIGTERM: finish the step, save, raise `TrainingInterrupted` (the CLI exits 130);
  a second signal raises KeyboardInterrupt at once and the previous checkpoint stays intact.
- A non-finite loss, gradient or weight raises `TrainingDiverged` (the CLI exits 1) naming the step
  and the tensor; the last good checkpoint is not touched.
- Under torchrun every rank draws the *global* batch of the step and trains on its slice, so 2 ranks
  equal 1 process on the same batch (up to float reduction order); rank 0 logs and checkpoints.

Nothing here assumes the data is AD data: expert distillation (ED) is this trainer on expert histories.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F

from algodistill import __version__
from algodistill.atomic import atomic_write_json
from algodistill.checkpoint import (
    CKPT_NAME,
    FORMAT,
    VERSION,
    load_model,
    load_state,
    resume_checkpoint,
    save_checkpoint,
    spec_dict,
    sweep_temporaries,
)
from algodistill.dataset import Dataset
from algodistill.envs import EnvSpec, get_family
from algodistill.errors import UserError
from algodistill.model import ADTransformer, ModelConfig
from algodistill.rng import np_rng, torch_rng
from algodistill.runlog import RunLog, StopSignals

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "config_from_dict",
    "config_to_dict",
    "load_model",
    "lr_at",
    "parse_config",
    "pick_device",
    "preset_config",
    "train",
]


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient or weight stopped training (the CLI prints it on one line, exit 1)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped training after the checkpoint of the last finished step was saved (exit 130)."""


# ----------------------------------------------------------------------------- config and presets

QUICK_MODEL = ModelConfig(
    n_embd=64, n_layer=3, n_head=4, n_ff=256, dropout=0.1, attn_dropout=0.0, token_mask=0.3, context=80
)
"""Small enough for a Dark Room AD in minutes on 2 CPU cores; everything else as in Table 1."""


@dataclass(frozen=True)
class TrainConfig:
    """Train an AD (or ED) transformer on a dataset of learning histories (paper Sec. 3, Tables 1-2)."""

    env: str = "darkroom"
    """task family; must be the dataset's env (bandit, darkroom, darkroom-hard, keydoor)"""
    data: Path = Path("runs/darkroom/data")
    """dataset directory written by `algodistill generate` (manifest.json and shards)"""
    out: Path = Path("runs/darkroom/ad")
    """run directory: ckpt.pt, config.json, metrics.jsonl (and tb/ when tensorboard is installed)"""
    preset: Literal["quick", "paper"] = "quick"
    """defaults of the fields below: "quick" (Dark Room AD in minutes on 2 CPU cores) or "paper" (Tables 1-2)"""
    model: ModelConfig = QUICK_MODEL
    """transformer shape and regularisation (paper Table 1); model.context is the window c in steps"""
    steps: int = 3000
    """optimizer steps in total (not in the paper); may be raised when resuming a finished run"""
    batch_size: int = 32
    """windows per step, over all DDP ranks together (paper Table 2: 128)"""
    lr: float = 1e-3
    """peak learning rate, reached at the end of the warm-up (paper Table 2: 3e-4)"""
    init_lr: float = 2e-6
    """learning rate of step 0, where the linear warm-up starts (paper Table 2: 2e-6)"""
    warmup_steps: int = 150
    """steps of linear warm-up from init_lr to lr (not in the paper; ours: 5-10% of the steps, as AD^eps)"""
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
    seed: int = 0
    """seed of the initialisation, the batches (batch s from rng.np_rng(seed, s)) and dropout"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto": CUDA with bf16 autocast when present, else CPU in float32"""
    ckpt_every: int = 500
    """save out/ckpt.pt every this many steps (and at the end, and on Ctrl-C)"""
    log_every: int = 50
    """append a line to out/metrics.jsonl (means since the previous line) every this many steps"""
    resume: bool = True
    """continue from out/ckpt.pt when it exists (its config must match); --no-resume refuses an existing run"""
    quiet: bool = False
    """no summary lines and no progress bar (the bar is also off when stderr is not a terminal)"""

    def __post_init__(self) -> None:
        get_family(self.env)  # UserError naming an unknown env
        if self.preset not in ("quick", "paper"):
            raise UserError(f"preset={self.preset!r} is unknown: choose quick or paper")
        for name in ("steps", "batch_size", "subsample", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(
                    f"{name}={getattr(self, name)} must be positive: pass --{name.replace('_', '-')} 1 or more"
                )
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise UserError(f"lr={self.lr} must be a positive finite number: e.g. --lr 3e-4")
        for name in ("init_lr", "min_lr", "weight_decay", "grad_clip", "warmup_steps", "seed"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise UserError(f"{name}={v} must be a finite number >= 0")
        if self.min_lr > self.lr:
            raise UserError(f"min_lr={self.min_lr} exceeds the peak lr={self.lr}: choose min_lr <= lr")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise UserError(f"betas={self.betas} must be two numbers in [0, 1), e.g. --betas 0.9 0.99")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing={self.label_smoothing} must be in [0, 1), e.g. 0.2")


# Fields that may change when resuming: they do not change what is learned (steps extends a run; note
# that it also stretches the cosine decay from that step on). Every other field must match.
RUN_CONTROL_FIELDS = ("steps", "device", "ckpt_every", "log_every", "resume", "quiet", "data", "out", "preset")


def preset_config(preset: str = "quick", env: str = "darkroom", **overrides: Any) -> TrainConfig:
    """The config of `preset` ("quick" or "paper") for `env`, then `overrides` (model= may be a dict of fields).

    paper: Tables 1-2 (width 64, 4x4 layers/heads, ff 2048, dropout 0.1, attention dropout 0.5, token mask
    0.3, batch 128, Adam betas (0.9, 0.99), lr 2e-6 -> 3e-4 -> cosine, clip 1, post-norm, learned positions).
    Not in the paper, ours: 100k steps, 10k warm-up (AD^eps's ratio 0.1), cosine down to 2e-6, no weight
    decay. Both presets: context = 4 episodes (Dark Room 80, Key-to-Door 200; Sec. 5, Fig. 7), and Dark
    Room Hard's attention dropout 0, token mask 0.5 and label smoothing 0.2 (Table 1, App. F).
    """
    family = get_family(env)  # UserError for an unknown env
    H = family.spec.episode_length
    context = 4 * H if H > 1 else 100  # bandit: one pull per episode, so 100 pulls of the history
    model = QUICK_MODEL if preset == "quick" else ModelConfig(n_embd=64, n_layer=4, n_head=4, n_ff=2048)
    model = dataclasses.replace(model, context=context)
    fields: dict[str, Any] = {
        "env": env,
        "data": Path(f"runs/{env}/data"),
        "out": Path(f"runs/{env}/ad"),
        "preset": preset,
    }
    if preset == "paper":
        fields |= dict(
            steps=100_000,
            batch_size=128,
            lr=3e-4,
            init_lr=2e-6,
            warmup_steps=10_000,
            min_lr=2e-6,
            weight_decay=0.0,
            ckpt_every=5000,
            log_every=100,
        )
    elif preset != "quick":
        raise UserError(f"preset={preset!r} is unknown: choose quick or paper")
    if env == "darkroom-hard":
        model = dataclasses.replace(model, attn_dropout=0.0, token_mask=0.5)
        fields["label_smoothing"] = 0.2
    m = overrides.pop("model", None)
    fields["model"] = m if isinstance(m, ModelConfig) else dataclasses.replace(model, **(m or {}))
    return TrainConfig(**(fields | overrides))


def parse_config(argv: Sequence[str] | None = None, **tyro_kwargs: Any) -> TrainConfig:
    """TrainConfig from command-line flags, with the defaults of `--preset` for `--env` (two-pass parse)."""
    import tyro

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="quick")
    pre.add_argument("--env", default="darkroom")
    known, _ = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    default = preset_config(known.preset, known.env)
    return tyro.cli(TrainConfig, args=argv, default=default, **tyro_kwargs)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as JSON-able data (paths as strings, tuples as lists)."""
    return dict(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)))


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """Inverse of `config_to_dict` (UserError for unknown fields)."""
    try:
        return TrainConfig(
            **(
                d
                | {
                    "model": ModelConfig(**d["model"]),
                    "betas": tuple(d["betas"]),
                    "data": Path(d["data"]),
                    "out": Path(d["out"]),
                }
            )
        )
    except (TypeError, KeyError) as e:
        raise UserError(f"saved train config is malformed ({e}); it was written by another version") from None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """lr of (0-based) `step`: linear warm-up init_lr -> lr, then cosine decay to min_lr (paper Table 2)."""
    if step < cfg.warmup_steps:
        return cfg.init_lr + (cfg.lr - cfg.init_lr) * step / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- the trainer

_INIT_TAG, _DROPOUT_TAG = 1, 2  # rng stream tags: (seed, step) alone is the batch stream of step `step`


def train(cfg: TrainConfig) -> Path:
    """Train on `cfg.data`; return the checkpoint path `cfg.out / "ckpt.pt"`.

    Raises UserError for bad input (before any file is written), TrainingDiverged for a non-finite
    loss/gradient/weight and TrainingInterrupted on SIGINT/SIGTERM (after saving). Under torchrun every
    rank calls it (WORLD_SIZE/RANK/LOCAL_RANK); rank 0 writes the files.
    """
    world, rank, local_rank = (
        int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0"))
    )
    device = pick_device(cfg.device, local_rank if world > 1 else None)
    # -- checks before any work: each raises a one-line UserError and nothing is written yet
    ds = Dataset.open(cfg.data)
    spec = _check_data(cfg, ds, world)
    ckpt_path = cfg.out / CKPT_NAME
    saved = resume_checkpoint(ckpt_path, cfg.resume, config_to_dict(cfg), ds.manifest.config_hash, RUN_CONTROL_FIELDS)
    if saved is not None and saved["step"] >= cfg.steps:
        ds.close()
        return ckpt_path  # finished already (a re-run of the pipeline stage)
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        _loop(cfg, ds, spec, ckpt_path, saved, device, world, rank)
    finally:
        ds.close()
        if own_group:
            dist.destroy_process_group()
    return ckpt_path


def _loop(
    cfg: TrainConfig,
    ds: Dataset,
    spec: EnvSpec,
    ckpt_path: Path,
    saved: dict[str, Any] | None,
    device: torch.device,
    world: int,
    rank: int,
) -> None:
    # -- model, optimizer, state
    model = ADTransformer(cfg.model, spec, generator=torch_rng(cfg.seed, 0, _INIT_TAG)).to(device)
    optimizer = _adamw(model, cfg, fused=device.type == "cuda")
    step, log_accum = 0, [0.0, 0.0, 0]  # finished steps; loss sum, accuracy sum, steps since the last log line
    if saved is not None:
        load_state(model, saved["model"], ckpt_path)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"]["torch_cpu"])
        if device.type == "cuda" and saved["rng"]["torch_cuda"]:
            torch.cuda.set_rng_state_all(saved["rng"]["torch_cuda"])
        step, log_accum = saved["step"], list(saved["log_accum"])
    net = (
        torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    B, c = cfg.batch_size // world, cfg.model.context  # this rank's windows, steps per window
    last_saved = step if saved is not None else None

    def checkpoint() -> None:  # rank 0, after every rank has checked that the weights are finite
        nonlocal last_saved
        save_checkpoint(
            ckpt_path,
            {
                "format": FORMAT,
                "version": VERSION,
                "step": step,
                "config": config_to_dict(cfg),
                "data_hash": ds.manifest.config_hash,
                "spec": spec_dict(spec),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "log_accum": log_accum,
                "package_version": __version__,
                "rng": {
                    "torch_cpu": torch.get_rng_state(),
                    "torch_cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                },
            },
        )
        last_saved = step

    out = ckpt_path.parent
    if rank == 0:  # the first writes of the run, after every check
        out.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(out)
        atomic_write_json(out / "config.json", config_to_dict(cfg))
    with RunLog(out, step=step, total=cfg.steps, active=rank == 0, quiet=cfg.quiet) as log, StopSignals() as stop:
        log.print(
            f"train {cfg.env} ({cfg.preset}): {model.num_params() / 1e3:.0f}k params on {device} x{world}, "
            f"batch {cfg.batch_size} x {c} steps, step {step} -> {cfg.steps}, out {out}"
        )
        t0, timed = time.perf_counter(), 0
        while step < cfg.steps:
            # lr schedule: a function of the step, so a checkpoint needs no scheduler state
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # batch: the global batch of this step, the same on every rank; this rank trains on its slice
            batch = ds.sample(np_rng(cfg.seed, step), cfg.batch_size, c, cfg.subsample)
            obs, a_tm1, r_tm1, a_t = (
                batch[k][rank * B : (rank + 1) * B].to(device, non_blocking=True)
                for k in ("obs", "a_tm1", "r_tm1", "a_t")
            )  # (B, c, D), (B, c) x 3
            torch.manual_seed(int(np_rng(cfg.seed, step, _DROPOUT_TAG, rank).integers(2**63 - 1)))  # dropout, mask
            # forward + loss: NLL of the source's action at every position (paper Eq. 6), label smoothing (App. F)
            with amp:
                logits = net(obs, a_tm1, r_tm1)  # (B, c, A)
            loss = F.cross_entropy(logits.float().flatten(0, 1), a_t.flatten(), label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP this also averages the gradients over the ranks
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
            # one host sync per step: loss and accuracy averaged over the ranks, and a stop request from any rank
            acc = (logits.detach().argmax(-1) == a_t).float().mean()
            stats = torch.stack([loss.detach(), acc, grad_norm, torch.tensor(float(stop.requested), device=device)])
            if world > 1:
                dist.all_reduce(stats)
            loss_v, acc_v, gn, stop_v = (stats / torch.tensor([world, world, world, 1.0], device=device)).tolist()
            if not math.isfinite(loss_v) or not math.isfinite(gn):
                what = "the loss" if not math.isfinite(loss_v) else f"the gradient of {_first_nonfinite_grad(model)}"
                raise TrainingDiverged(
                    f"step {step + 1}: {what} is non-finite (loss {loss_v:.4g}, grad norm "
                    f"{gn:.4g}); {_kept(ckpt_path, last_saved)}"
                )
            optimizer.step()
            step += 1
            # log and checkpoint at the step boundary
            log_accum = [log_accum[0] + loss_v, log_accum[1] + acc_v, log_accum[2] + 1]
            timed += 1
            if step % cfg.log_every == 0 or step == cfg.steps or stop_v > 0:
                dt = time.perf_counter() - t0
                n = log_accum[2]
                log.write(
                    {
                        "step": step,
                        "loss": log_accum[0] / n,
                        "accuracy": log_accum[1] / n,
                        "lr": lr,
                        "grad_norm": gn,
                        "steps_per_s": timed / dt,
                        "history_steps_per_s": cfg.batch_size * c * timed / dt,
                        "elapsed_s": log.elapsed(),
                    }
                )
                log_accum, t0, timed = [0.0, 0.0, 0], time.perf_counter(), 0
            if step % cfg.ckpt_every == 0 or step == cfg.steps or stop_v > 0:
                # every rank checks (the weights are the same on all), so a non-finite model is never saved
                if bad := next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None):
                    raise TrainingDiverged(
                        f"step {step}: parameter {bad} is non-finite after the update; {_kept(ckpt_path, last_saved)}"
                    )
                if rank == 0:
                    checkpoint()
                if world > 1:
                    dist.barrier()  # nobody reads ckpt.pt or exits before rank 0 has written it
            if stop_v > 0 and step < cfg.steps:
                raise TrainingInterrupted(f"saved step {step} to {ckpt_path}; run the same command to resume")


def _kept(ckpt_path: Path, last_saved: int | None) -> str:
    where = f"{ckpt_path} (step {last_saved}) is kept" if last_saved is not None else "no checkpoint was written"
    return f"{where}; lower --lr, raise --warmup-steps or check the data"


def _first_nonfinite_grad(model: torch.nn.Module) -> str:
    bad = (n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all())
    return next(bad, "<unknown>")


def _adamw(model: torch.nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW; decay only on matrices and embedding tables, not on biases, LayerNorms or the mask vector."""
    params = list(model.named_parameters())
    groups = [
        {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.init_lr, betas=cfg.betas, fused=fused or None)


def pick_device(device: str, local_rank: int | None = None) -> torch.device:
    """The torch device for "auto" (CUDA when present, else CPU), "cpu" or "cuda"; under DDP the local rank's GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device='cuda' but no CUDA device is available: use --device cpu or auto")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank is None:
        return torch.device("cuda")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _check_data(cfg: TrainConfig, ds: Dataset, world: int) -> EnvSpec:
    """The env spec to build the model for; UserError if the dataset or the batch does not fit the config."""
    spec, name = get_family(cfg.env).spec, ds.spec.get("name")
    if name != cfg.env:
        raise UserError(
            f"data={cfg.data} holds {name!r} histories, not env={cfg.env!r}: pass --env {name} or another --data"
        )
    want = spec_dict(spec)
    for key in ("obs_dim", "obs_high", "num_actions", "episode_length"):
        if key in ds.spec and json.loads(json.dumps(ds.spec[key])) != want[key]:
            raise UserError(
                f"data={cfg.data} was made with {key}={ds.spec[key]} but env {cfg.env} now has "
                f"{want[key]}: regenerate the dataset"
            )
    if cfg.batch_size % world:
        raise UserError(f"batch_size={cfg.batch_size} is not divisible by the {world} DDP ranks: choose a multiple")
    ds.sample(np_rng(0), 1, cfg.model.context, cfg.subsample)  # UserError if context > histories (subsampled)
    return spec
