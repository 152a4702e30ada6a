"""Training checkpoints: what they hold, atomic writes, safe and strict loads, and the model they rebuild.

A checkpoint is one `torch.save`d dict of tensors and plain data (`CKPT_KEYS`):

    format, version   "algodistill-train", 2
    iter              optimizer iterations finished; the next batch is rng.np_rng(seed, iter)
    job               what determines the weights (`TrainJob.record`): env, method, seed, model, train
    data_hash         config hash of the dataset's manifest: resuming on other data is refused
    spec              the env spec the model was built for (`EnvSpec.record`)
    model             state_dict of the method's model (not of its DDP wrapper)
    optimizer         AdamW state_dict
    rng               torch CPU (and CUDA) generator states (the trainer also reseeds per iteration)
    log_accum         [loss sum, accuracy sum, iterations] since the last metrics line
    package_version   algodistill version that wrote it

`load_model` rebuilds whichever model the job names: the method's model with the observation encoder
of its model config, checked against the env's observations. No scheduler state: the learning rate is
a function of the iteration. No numpy state: batches come from `np_rng(seed, iter)`. Files are written
with `atomic.atomic_path` (temp + fsync + rename), so the path holds the previous or the new
checkpoint, never a partial one, and loaded with `torch.load(weights_only=True)`, which refuses
pickled code (a file crafted to run code on load is refused before anything runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from algodistill import __version__
from algodistill.atomic import TMP_MARKER, atomic_path
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.jsonio import first_difference, from_jsonable
from algodistill.methods import get_method
from algodistill.model import ModelConfig

FORMAT, VERSION = "algodistill-train", 2
CKPT_NAME = "ckpt.pt"
"""File name of the (latest) checkpoint inside a run directory."""
CKPT_KEYS = frozenset(
    {
        "format",
        "version",
        "iter",
        "job",
        "data_hash",
        "spec",
        "model",
        "optimizer",
        "rng",
        "log_accum",
        "package_version",
    }
)


def save_checkpoint(path: str | os.PathLike[str], ckpt: dict[str, Any]) -> None:
    """Write `ckpt` to `path` atomically: on any failure (or Ctrl-C) the previous file stays as it was."""
    missing, extra = CKPT_KEYS - ckpt.keys(), ckpt.keys() - CKPT_KEYS
    assert not missing and not extra, (missing, extra)  # the trainer builds it: an invariant, not user input
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def sweep_temporaries(directory: str | os.PathLike[str]) -> None:
    """Remove `ckpt.pt.tmp-<pid>` files left by writers killed with SIGKILL (never a final file)."""
    for p in Path(directory).glob(f"{CKPT_NAME}{TMP_MARKER}*"):
        p.unlink(missing_ok=True)


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; UserError if the file is missing, unreadable or
    unsafe (weights_only unpickles only tensors and plain containers: a file crafted to run code is refused)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint {p} not found: pass the ckpt.pt written by `algodistill train`")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (unsafe content), RuntimeError/EOFError (truncated, not a zip)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint {p} was refused: it is not a safe torch checkpoint of tensors and plain "
            f"data ({type(e).__name__}: {first[:200]}); delete it or pass another file"
        ) from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a training checkpoint on the CPU; UserError if unreadable, unsafe or malformed."""
    return check_checkpoint(safe_torch_load(path), path)


def check_checkpoint(ckpt: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """`ckpt` (as `safe_torch_load` read it from `path`) if it is a training checkpoint of this version;
    UserError naming the field at fault otherwise."""
    p = Path(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"checkpoint {p} is not an algodistill training checkpoint (no format={FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise UserError(
            f"checkpoint {p} has format version {ckpt.get('version')!r}; algodistill {__version__} "
            f"reads version {VERSION}: retrain, or load it with the version that wrote it"
        )
    if missing := sorted(CKPT_KEYS - ckpt.keys()):
        raise UserError(f"checkpoint {p} is missing the field {missing[0]!r}; it is damaged or not from algodistill")
    if extra := sorted(ckpt.keys() - CKPT_KEYS, key=str):
        raise UserError(f"checkpoint {p} has an unknown field {extra[0]!r}; it was not written by this version")
    types = {
        "iter": int,
        "job": dict,
        "data_hash": str,
        "spec": dict,
        "model": dict,
        "optimizer": dict,
        "rng": dict,
        "log_accum": list,
    }
    for key, typ in types.items():
        if not isinstance(ckpt[key], typ):
            raise UserError(f"checkpoint {p}: field {key!r} is a {type(ckpt[key]).__name__}, expected {typ.__name__}")
    return dict(ckpt)


def load_state(module: torch.nn.Module, state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """`module.load_state_dict(state)` strictly; UserError naming the first missing, extra or misshapen tensor."""
    own = module.state_dict()
    if missing := [k for k in own if k not in state]:
        raise UserError(
            f"checkpoint {path} lacks the tensor {missing[0]!r} that the model needs (another "
            "architecture?): train again, or pass the matching checkpoint"
        )
    if extra := [k for k in state if k not in own]:
        raise UserError(f"checkpoint {path} has a tensor {extra[0]!r} that the model lacks (another architecture?)")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or v.shape != own[k].shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise UserError(f"checkpoint {path}: tensor {k!r} is {got}, the model expects {tuple(own[k].shape)}")
    module.load_state_dict(state, strict=True)


def resume_from(
    ckpt_path: Path, resume: bool, job: dict[str, Any], data_hash: str, resumable: Iterable[str]
) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None for a fresh run; UserError if the run directory must not be touched.

    Refused: `ckpt_path` exists but `resume` is False; its job record differs from `job` on a field other
    than the train fields named in `resumable` (the message names the field); it was trained on a
    dataset of another config hash.
    """
    out = ckpt_path.parent
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} exists and is not a directory: choose another --out")
    if ckpt_path.exists() and not ckpt_path.is_file():
        raise UserError(f"out={out} holds a directory {ckpt_path.name}, not a checkpoint: choose another --out")
    if not ckpt_path.is_file():
        return None
    if not resume:
        raise UserError(
            f"out={out} already holds a run ({ckpt_path.name}); pass --resume to continue it or choose another --out"
        )
    saved = load_checkpoint(ckpt_path)
    skip = set(resumable)

    def fixed(record: dict[str, Any]) -> dict[str, Any]:  # the record without the fields a resume may change
        train = record.get("train")
        return (
            record | {"train": {k: v for k, v in train.items() if k not in skip}} if isinstance(train, dict) else record
        )

    if diff := first_difference(fixed(saved["job"]), fixed(job)):
        name, old, new = diff
        raise UserError(
            f"out={out} holds a run with another config: {name} (checkpoint {old!r}, requested {new!r}); "
            "pass the same value to resume or choose another --out"
        )
    if saved["data_hash"] != data_hash:
        raise UserError(
            f"out={out} was trained on another dataset (config hash {saved['data_hash'][:12]}, "
            f"requested {data_hash[:12]}): pass its --data or choose another --out"
        )
    return saved


def load_model(
    ckpt_path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, on `device`) and its job record (`TrainJob.record`: env, method, seed,
    model, train) from a checkpoint.

    Loads with weights_only=True; a malicious, damaged or mismatching file raises UserError, and so does
    a model config whose observation encoder cannot read the env's observations.
    """
    return model_from_checkpoint(load_checkpoint(ckpt_path), ckpt_path, device)


def model_from_checkpoint(
    ckpt: dict[str, Any], ckpt_path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """`load_model` for a checkpoint already loaded by `load_checkpoint` (`ckpt_path` names it in errors)."""
    job = ckpt["job"]
    if not isinstance(job.get("env"), str) or not isinstance(job.get("method"), str):
        raise UserError(f"checkpoint {ckpt_path} names no env and method; it was written by another version")
    family, method = get_family(job["env"]), get_method(job["method"])
    model_cfg = from_jsonable(ModelConfig, job.get("model"), "model.")
    if ckpt["spec"] != family.spec.record():
        raise UserError(f"checkpoint {ckpt_path} was trained for another definition of env {job['env']!r}: retrain")
    model = method.build_model(model_cfg, family.spec, None)
    load_state(model, ckpt["model"], ckpt_path)
    return model.to(device).eval(), job
