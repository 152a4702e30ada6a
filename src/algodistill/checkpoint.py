"""Training checkpoints: what they hold, atomic writes, safe and strict loads (engineering.md C.1).

A checkpoint is one `torch.save`d dict of tensors and plain data (`CKPT_KEYS`):

    format, version   "algodistill-train", 1
    step              optimizer steps finished; the next batch is rng.np_rng(seed, step)
    config            the resolved TrainConfig as a JSON-able dict (`train.config_to_dict`)
    data_hash         config hash of the dataset's manifest: resuming on other data is refused
    spec              the env spec the model was built for (asdict(EnvSpec), tuples as lists)
    model             state_dict of the ADTransformer (not of its DDP wrapper)
    optimizer         AdamW state_dict
    rng               torch CPU (and CUDA) generator states (the trainer also reseeds per step)
    log_accum         [loss sum, accuracy sum, steps] since the last metrics line
    package_version   algodistill version that wrote it

No scheduler state: the learning rate is a function of the step. No numpy state: batches come from
`np_rng(seed, step)`. Files are written with `atomic.atomic_path` (temp + fsync + rename), so the path
holds the previous or the new checkpoint, never a partial one, and loaded with
`torch.load(weights_only=True)`, which refuses pickled code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from algodistill import __version__
from algodistill.atomic import TMP_MARKER, atomic_path
from algodistill.envs import EnvSpec, get_family
from algodistill.errors import UserError
from algodistill.model import ADTransformer, ModelConfig

FORMAT, VERSION = "algodistill-train", 1
CKPT_NAME = "ckpt.pt"
"""File name of the (latest) checkpoint inside a run directory."""
CKPT_KEYS = frozenset(
    {
        "format",
        "version",
        "step",
        "config",
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


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a training checkpoint on the CPU; UserError if unreadable, unsafe or malformed.

    `weights_only=True` unpickles only tensors and plain containers, so a file crafted to run code
    (a class with `__reduce__`) is refused before anything runs.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint {p} not found: pass the ckpt.pt written by `algodistill train`")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (unsafe content), RuntimeError/EOFError (truncated, not a zip)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint {p} was refused: it is not a safe torch checkpoint of tensors and plain "
            f"data ({type(e).__name__}: {first[:200]}); delete it or pass another file"
        ) from None
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
        "step": int,
        "config": dict,
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


def _flatten(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def config_mismatch(saved: dict[str, Any], requested: dict[str, Any], ignore: Iterable[str] = ()) -> str | None:
    """The first dotted field (e.g. "model.n_embd") whose value differs, with both values; None if all match.

    Top-level fields named in `ignore` (and their sub-fields) are not compared.
    """
    skip = set(ignore)
    a, b = dict(_flatten(saved)), dict(_flatten(requested))
    for key in sorted(set(a) | set(b)):
        if key.split(".")[0] in skip:
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            return f"{key} (checkpoint {va!r}, requested {vb!r})"
    return None


def spec_dict(spec: EnvSpec) -> dict[str, Any]:
    """An env spec as JSON-able data (tuples as lists), as a dataset manifest and a checkpoint store it."""
    return dict(json.loads(json.dumps(dataclasses.asdict(spec))))


def resume_checkpoint(
    ckpt_path: Path, resume: bool, config: dict[str, Any], data_hash: str, run_control: Iterable[str]
) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None for a fresh run; UserError if the run directory must not be touched.

    Refused: `ckpt_path` exists but `resume` is False; its config differs from `config` on a field not
    in `run_control` (the message names the field); it was trained on a dataset of another config hash.
    """
    out = ckpt_path.parent
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} exists and is not a directory: choose another --out")
    if not ckpt_path.is_file():
        return None
    if not resume:
        raise UserError(
            f"out={out} already holds a run ({ckpt_path.name}); pass --resume to continue it or choose another --out"
        )
    saved = load_checkpoint(ckpt_path)
    if diff := config_mismatch(saved["config"], config, ignore=run_control):
        raise UserError(
            f"out={out} holds a run with another config: {diff}; pass the same value to resume or choose another --out"
        )
    if saved["data_hash"] != data_hash:
        raise UserError(
            f"out={out} was trained on another dataset (config hash {saved['data_hash'][:12]}, "
            f"requested {data_hash[:12]}): pass its --data or choose another --out"
        )
    return saved


def load_model(
    ckpt_path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[ADTransformer, dict[str, Any]]:
    """The trained model (eval mode, on `device`) and its train config dict (e.g. cfg["env"]) from a checkpoint.

    Loads with weights_only=True; a malicious, damaged or mismatching file raises UserError.
    """
    ckpt = load_checkpoint(ckpt_path)
    cfg = ckpt["config"]
    try:
        mcfg = ModelConfig(**cfg["model"])
        family = get_family(cfg["env"])
    except (TypeError, KeyError) as e:
        raise UserError(
            f"checkpoint {ckpt_path} has a malformed config ({e}); it was written by another version"
        ) from None
    if ckpt["spec"] != spec_dict(family.spec):
        raise UserError(f"checkpoint {ckpt_path} was trained for another definition of env {cfg['env']!r}: retrain")
    model = ADTransformer(mcfg, family.spec)
    load_state(model, ckpt["model"], ckpt_path)
    return model.to(device).eval(), cfg
