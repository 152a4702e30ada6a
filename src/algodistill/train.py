"""`algodistill train`: fit a method's model to learning histories (paper Sec. 3, Eq. 6, Alg. 1 l. 7-9).

One visible loop, nanoGPT-style: lr schedule -> batch -> forward and loss (the method's) -> backward ->
clip -> step -> log -> checkpoint. The loop knows nothing of AD: the method (`algodistill.methods`)
builds the model, turns raw windows into a batch and computes the loss. What makes it reliable:

- Batch i is drawn from `rng.np_rng(seed, i)` and dropout is reseeded from (seed, i, rank), and the lr
  is a function of i, so a resume needs only the iteration counter: it is bit-exact on CPU and never
  replays earlier batches. There are no epochs.
- `out/ckpt.pt` (`algodistill.checkpoint`) is written atomically, holds only finite weights, and is
  loaded with weights_only=True. Resuming with another job record or dataset is refused.
- Ctrl-C (SIGINT) or SIGTERM: finish the iteration, save, raise `TrainingInterrupted` (the CLI exits
  130); a second signal raises KeyboardInterrupt at once and the previous checkpoint stays intact.
- A non-finite loss, gradient or weight raises `TrainingDiverged` (the CLI exits 1) naming the
  iteration and the tensor; the last good checkpoint is not touched.
- BatchNorm (the conv encoder's): after the last iteration its running statistics are recomputed as
  the plain average over `BN_CALIBRATION_BATCHES` training batches of the final weights ("precise
  BN", Wu & Johnson 2021), because Table 3's decay 0.999 averages over the last ~1000 iterations:
  on a CPU-sized run that is half of training, and evaluation then normalises with the statistics
  of weights long gone (on Watermaze the frozen model stopped copying the episode that paid).
- Under torchrun every rank draws the *global* batch of the iteration and trains on its slice, so 2
  ranks equal 1 process on the same batch (up to float reduction order); rank 0 logs and checkpoints.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from algodistill import __version__
from algodistill.atomic import atomic_write_json
from algodistill.checkpoint import (
    CKPT_NAME,
    FORMAT,
    VERSION,
    load_state,
    resume_from,
    save_checkpoint,
    sweep_temporaries,
)
from algodistill.configs import RESUMABLE_TRAIN_FIELDS, TrainConfig, TrainJob
from algodistill.device import autocast, frames_device, pick_device
from algodistill.envs import EnvSpec, get_family
from algodistill.errors import UserError, check_output
from algodistill.jsonio import jsonable
from algodistill.methods import Method, get_method
from algodistill.rng import Tag, np_rng, torch_rng
from algodistill.runlog import RunLog, StopSignals
from algodistill.sampler import Dataset

BN_CALIBRATION_BATCHES = 20
"""Training batches the final BatchNorm statistics are averaged over (`precise_batchnorm`)."""


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient or weight stopped training (the CLI prints it on one line, exit 1)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped training after the checkpoint of the last finished iteration was saved (exit 130)."""


def lr_at(it: int, cfg: TrainConfig) -> float:
    """lr of (0-based) iteration `it`: linear warm-up init_lr -> lr, then cosine decay to min_lr (paper Table 2)."""
    if it < cfg.warmup_iters:
        return cfg.init_lr + (cfg.lr - cfg.init_lr) * it / cfg.warmup_iters
    progress = min(1.0, (it - cfg.warmup_iters) / max(1, cfg.iters - cfg.warmup_iters))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


def train(job: TrainJob) -> Path:
    """Train `job.method` on `job.data`; return the checkpoint path `job.out / "ckpt.pt"`.

    Raises UserError for bad input (before any file is written), TrainingDiverged for a non-finite
    loss/gradient/weight and TrainingInterrupted on SIGINT/SIGTERM (after saving). Under torchrun every
    rank calls it (WORLD_SIZE/RANK/LOCAL_RANK); rank 0 writes the files.
    """
    world, rank, local_rank = (
        int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0"))
    )
    device = pick_device(job.device, local_rank if world > 1 else None)
    method, spec = get_method(job.method), get_family(job.env).spec
    ckpt_path = job.out / CKPT_NAME
    # -- checks before any work: each raises a one-line UserError and nothing is written yet
    if not job.data.is_dir():
        raise UserError(f"data={job.data} is not a dataset directory: pass the --out of `algodistill generate`")
    check_output(job.out, "out", directory=True)
    with Dataset.open(job.data) as ds:
        _check_data(job, ds, method, spec, world)
        saved = resume_from(ckpt_path, job.resume, job.record(), ds.manifest.config_hash, RESUMABLE_TRAIN_FIELDS)
        if saved is not None and saved["iter"] >= job.train.iters:
            return ckpt_path  # finished already (a re-run of the pipeline stage)
        own_group = world > 1 and not dist.is_initialized()
        if own_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            _loop(job, ds, method, spec, ckpt_path, saved, device, world, rank)
        finally:
            if own_group:
                dist.destroy_process_group()
    return ckpt_path


def _loop(
    job: TrainJob,
    ds: Dataset,
    method: Method,
    spec: EnvSpec,
    ckpt_path: Path,
    saved: dict[str, Any] | None,
    device: torch.device,
    world: int,
    rank: int,
) -> None:
    tc = job.train
    # -- model, optimizer, and the loop's state: iterations finished, metrics since the last log line
    model = method.build_model(job.model, spec, torch_rng(job.seed, 0, Tag.MODEL_INIT)).to(device)
    optimizer = _adamw(model, tc, fused=device.type == "cuda")
    it, log_accum, last_saved = 0, [0.0, 0.0, 0], None  # log_accum: loss sum, accuracy sum, iterations
    if saved is not None:
        load_state(model, saved["model"], ckpt_path)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"]["torch_cpu"])
        if device.type == "cuda" and saved["rng"]["torch_cuda"]:
            torch.cuda.set_rng_state_all(saved["rng"]["torch_cuda"])
        it = last_saved = saved["iter"]
        log_accum = list(saved["log_accum"])
    net = (
        torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    B = tc.batch_size // world  # this rank's windows
    draw_on = frames_device(device)
    length, lead = method.window(job.model)  # raw steps per window, of which `lead` precede it
    out = ckpt_path.parent
    if rank == 0:  # the first writes of the run, after every check
        out.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(out)
        atomic_write_json(out / "config.json", jsonable(job))
    with RunLog(out, it=it, total=tc.iters, active=rank == 0, quiet=job.quiet) as log, StopSignals() as stop:
        log.print(
            f"train {job.method} on {job.env}: {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k params on "
            f"{device} x{world}, batch {tc.batch_size} x {length - lead} steps, iter {it} -> {tc.iters}, out {out}"
        )
        t0, timed = time.perf_counter(), 0
        while it < tc.iters:
            # lr schedule: a function of the iteration, so a checkpoint needs no scheduler state
            lr = lr_at(it, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # batch: the global batch of this iteration, the same on every rank; this rank trains on its slice
            share = slice(rank * B, (rank + 1) * B)
            windows = ds.sample(np_rng(job.seed, it), tc.batch_size, length, tc.subsample, lead, share, draw_on)
            batch = method.make_batch(windows, spec).to(device)
            torch.manual_seed(int(np_rng(job.seed, it, Tag.DROPOUT, rank).integers(2**63 - 1)))  # dropout, masks
            # forward and loss: the method's (AD: the source's action at every position, paper Eq. 6)
            with autocast(device):
                loss, accuracy = method.loss(net, batch, tc.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP this also averages the gradients over the ranks
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
            # one host sync per iteration: loss and accuracy averaged over the ranks, a stop request from any
            stats = torch.stack(
                [loss.detach(), accuracy, grad_norm, torch.tensor(float(stop.requested), device=device)]
            )
            if world > 1:
                dist.all_reduce(stats)
            loss_v, acc_v, gn, stop_v = (stats / torch.tensor([world, world, world, 1.0], device=device)).tolist()
            if not math.isfinite(loss_v) or not math.isfinite(gn):
                what = "the loss" if not math.isfinite(loss_v) else f"the gradient of {_first_nonfinite_grad(model)}"
                raise TrainingDiverged(
                    f"iter {it + 1}: {what} is non-finite (loss {loss_v:.4g}, grad norm {gn:.4g}); "
                    f"{_kept(ckpt_path, last_saved)}"
                )
            optimizer.step()
            it += 1
            # log and checkpoint at the iteration boundary
            log_accum = [log_accum[0] + loss_v, log_accum[1] + acc_v, log_accum[2] + 1]
            timed += 1
            if it % tc.log_every == 0 or it == tc.iters or stop_v > 0:
                dt, n = time.perf_counter() - t0, log_accum[2]
                log.write(
                    {
                        "iter": it,
                        "loss": log_accum[0] / n,
                        "accuracy": log_accum[1] / n,
                        "lr": lr,
                        "grad_norm": gn,
                        "iters_per_s": timed / dt,
                        "history_steps_per_s": tc.batch_size * (length - lead) * timed / dt,
                        "elapsed_s": log.elapsed(),
                    }
                )
                log_accum, t0, timed = [0.0, 0.0, 0], time.perf_counter(), 0
            if it == tc.iters:
                precise_batchnorm(model, ds, method, spec, (length, lead), seed=job.seed, train=tc, device=device)
            if it % tc.ckpt_every == 0 or it == tc.iters or stop_v > 0:
                # every rank checks (the weights are the same on all), so a non-finite model is never saved
                if bad := next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None):
                    raise TrainingDiverged(
                        f"iter {it}: parameter {bad} is non-finite after the update; {_kept(ckpt_path, last_saved)}"
                    )
                if rank == 0:
                    save_checkpoint(ckpt_path, _checkpoint(job, it, ds, spec, model, optimizer, log_accum, device))
                last_saved = it
                if world > 1:
                    dist.barrier()  # nobody reads ckpt.pt or exits before rank 0 has written it
            if stop_v > 0 and it < tc.iters:
                raise TrainingInterrupted(f"saved iteration {it} to {ckpt_path}; run the same command to resume")


@torch.no_grad()
def precise_batchnorm(
    model: torch.nn.Module,
    ds: Dataset,
    method: Method,
    spec: EnvSpec,
    window: tuple[int, int],
    *,
    seed: int,
    train: TrainConfig,
    device: torch.device,
) -> None:
    """Replace every BatchNorm's running statistics by their average over `BN_CALIBRATION_BATCHES`
    global training batches of (length, lead) = `window`, the rest of the model as in evaluation (no
    dropout). Every rank does the same work, so the buffers agree without a broadcast. A model without
    BatchNorm is left untouched."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training, momenta = model.training, [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over the batches seen since the reset
        m.train()
    for j in range(BN_CALIBRATION_BATCHES):
        rng = np_rng(seed, j, Tag.BN_CALIBRATION)
        windows = ds.sample(rng, train.batch_size, window[0], train.subsample, window[1], device=frames_device(device))
        with autocast(device):
            model(*method.make_batch(windows, spec).to(device).inputs)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


def _checkpoint(
    job: TrainJob,
    it: int,
    ds: Dataset,
    spec: EnvSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    log_accum: list[float],
    device: torch.device,
) -> dict[str, Any]:
    """The checkpoint of iteration `it` (`algodistill.checkpoint` lists its fields)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "iter": it,
        "job": job.record(),
        "data_hash": ds.manifest.config_hash,
        "spec": spec.record(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "log_accum": log_accum,
        "package_version": __version__,
        "rng": {
            "torch_cpu": torch.get_rng_state(),
            "torch_cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        },
    }


def _kept(ckpt_path: Path, last_saved: int | None) -> str:
    where = f"{ckpt_path} (iter {last_saved}) is kept" if last_saved is not None else "no checkpoint was written"
    return f"{where}; lower --train.lr, raise --train.warmup-iters or check the data"


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


def _check_data(job: TrainJob, ds: Dataset, method: Method, spec: EnvSpec, world: int) -> None:
    """UserError if the dataset, the windows or the batch do not fit the job."""
    if (name := ds.spec.get("name")) != job.env:
        raise UserError(
            f"data={job.data} holds {name!r} histories, not env={job.env!r}: pass --env {name} or another --data"
        )
    if (split := ds.meta.get("split")) != "train":  # held-out tasks must stay unseen (paper Sec. 4.3)
        raise UserError(
            f"data={job.data} holds histories of the {split!r} split, not 'train': training on held-out tasks "
            "would leak them into the evaluation; pass a dataset made with `algodistill generate --split train`"
        )
    want = spec.record()
    for key in ("obs_dim", "obs_high", "obs_shape", "obs_dtype", "stored_shape", "num_actions", "episode_length"):
        if ds.spec.get(key) != want.get(key):
            raise UserError(
                f"data={job.data} was made with {key}={ds.spec.get(key)} but env {job.env} now has "
                f"{want.get(key)}: regenerate the dataset"
            )
    if job.train.batch_size % world:
        raise UserError(
            f"train.batch_size={job.train.batch_size} is not divisible by the {world} DDP ranks: choose a multiple"
        )
    length, lead = method.window(job.model)
    if length - lead > (kept := ds.kept_steps(job.train.subsample)):
        raise UserError(
            f"model.context={job.model.context} is longer than the histories of {job.data}: {job.method} needs "
            f"windows of {length - lead} steps, the histories have {kept} (T={ds.T}, "
            f"train.subsample={job.train.subsample}); use a shorter model.context or a smaller train.subsample"
        )
