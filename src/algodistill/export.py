"""Exported models: weights as safetensors plus a JSON model card, loaded without any pickle.

    <out>/
      model.safetensors   the model's state_dict in float32: a JSON header and raw bytes, nothing to unpickle
      card.json           the model card: env and spec, method, model config, training (seed, iterations,
                          dataset hash, source), the held-out return it reached, package version, and the
                          sha256 of model.safetensors

`algodistill export CKPT OUT` writes one from a training checkpoint, after running the model frozen on
held-out tasks (`EvalConfig`) so that the card says what it does; `read_export` rebuilds the model
from the card through the method registry, so any method's model exports and loads the same way.
The directory is written next to OUT under a temporary name and renamed into place: OUT holds a
whole export or nothing, and an existing OUT is never overwritten.

Shipped models (`algodistill pretrained`) are exports inside the package, under `pretrained/<name>`;
`load_model_any` takes a pretrained name, an export directory, a training checkpoint or an RL^2
checkpoint (`algodistill rl2`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import tyro
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from algodistill import __version__
from algodistill.atomic import atomic_dir, atomic_write_json, sha256_file
from algodistill.checkpoint import (
    check_checkpoint,
    load_checkpoint,
    load_state,
    model_from_checkpoint,
    safe_torch_load,
)
from algodistill.configs import EvalConfig
from algodistill.device import DeviceName, pick_device
from algodistill.envs import get_family
from algodistill.errors import UserError, check_input_file
from algodistill.evaluate import evaluate_policy
from algodistill.jsonio import from_jsonable, jsonable, read_json
from algodistill.methods import get_method
from algodistill.model import ModelConfig
from algodistill.rl2 import is_rl2_checkpoint, rl2_from_checkpoint
from algodistill.stats import mean_ci

CARD_FORMAT, CARD_VERSION = "algodistill-model", 1
WEIGHTS, CARD = "model.safetensors", "card.json"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
"""The shipped exports, one directory per name (see docs/pretrained.md for the commands that made them)."""


def _held_out(
    model: nn.Module, method: str, env: str, cfg: EvalConfig, split: str, seed: int, device: torch.device, quiet: bool
) -> dict[str, Any]:
    """The model frozen on a split from an empty context: its mean curve and the mean over the last 10% of
    episodes with a 95% t-interval over streams (what tests/test_export.py re-measures for shipped models)."""
    family = get_family(env)
    label = None if quiet else f"evaluate {method} on {split}"
    returns, streams = evaluate_policy(
        get_method(method).policy(model), family, split, cfg, seed=seed, device=device, label=label
    )
    last = max(1, math.ceil(cfg.episodes / 10))
    mean, lo, hi = mean_ci(returns[:, -last:].mean(axis=1, keepdims=True))  # over streams
    return {
        "split": split,
        "seed": seed,
        "eval": jsonable(cfg),
        "tasks": len(np.unique(streams)),
        "streams": len(streams),
        "curve": [round(float(x), 4) for x in returns.mean(axis=0)],
        "last10pct": {"episodes": last, "mean": float(mean[0]), "ci95": [float(lo[0]), float(hi[0])]},
        "optimal": float(family.optimal_return(np.unique(streams)).mean()),
        "random": float(family.random_return(np.unique(streams)).mean()),
    }


def _data_record(ckpt: Path) -> dict[str, Any]:
    """The training data as the run's config.json and the dataset's manifest describe it, when still there."""
    try:
        data = Path(read_json(ckpt.parent / "config.json", "")["data"])
        meta = read_json(data / "manifest.json", "")
    except (UserError, KeyError, TypeError):
        return {}
    return {"source": meta["meta"].get("source"), "histories": meta.get("num_histories"), "steps": meta.get("T")}


def _card(name: str, env: str, method: str, model: Any, training: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "name": name,
        "package_version": __version__,
        "env": env,
        "spec": get_family(env).spec.record(),
        "method": method,
        "model": model,
        "training": training,
        "held_out": None,
    }


def card_from_checkpoint(
    ckpt: dict[str, Any], ckpt_path: Path, name: str, held_out: dict[str, Any] | None
) -> dict[str, Any]:
    """The model card of a loaded training checkpoint (`ckpt_path` locates its run's data record), without the
    weights' hash, which `write_export` adds."""
    job = ckpt["job"]
    training = {
        "seed": job["seed"],
        "iters": ckpt["iter"],
        "train": job["train"],
        "data_hash": ckpt["data_hash"],
        "data": _data_record(ckpt_path),
        "trained_with": ckpt["package_version"],
    }
    return _card(name, job["env"], job["method"], job["model"], training) | {"held_out": held_out}


def card_from_rl2(ckpt: dict[str, Any], name: str) -> dict[str, Any]:
    """The card of an RL^2 checkpoint (trained online: no dataset), without held-out result or weights."""
    job = ckpt["job"]
    training = {"seed": job["seed"], "trials": ckpt["trial"], "online": job, "trained_with": ckpt["package_version"]}
    return _card(name, job["env"], "rl2", job["net"], training)


def write_export(out: Path, model: nn.Module, card: dict[str, Any]) -> None:
    """Write model.safetensors and card.json into a new directory `out`, atomically (temp dir + rename)."""
    if out.exists():
        raise UserError(f"out={out} exists: choose a new path (nothing was overwritten)")
    with atomic_dir(out) as tmp:
        state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS, metadata={"format": CARD_FORMAT, "card": CARD})
        os.chmod(tmp / WEIGHTS, 0o644)  # safetensors creates it owner-only; an export is for sharing
        n = sum(v.numel() for v in state.values())
        weights = {"file": WEIGHTS, "sha256": sha256_file(tmp / WEIGHTS), "dtype": "float32", "num_params": n}
        atomic_write_json(tmp / CARD, {**card, "weights": weights})


def read_export(directory: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode, on `device`) and card of an export; UserError naming the field or file at fault.

    The weights are read by safetensors, which parses a JSON header and copies raw bytes: a file that
    holds a pickle (or anything else) is refused, never executed.
    """
    card = read_json(directory / CARD, f"pass a directory written by `algodistill export` (with {CARD})")
    if card.get("format") != CARD_FORMAT or card.get("version") != CARD_VERSION:
        raise UserError(
            f"{directory / CARD} is not a version-{CARD_VERSION} algodistill model card "
            f"(format {card.get('format')!r}, version {card.get('version')!r}): re-export it with this version"
        )
    for key in ("env", "spec", "method", "model", "weights"):
        if key not in card:
            raise UserError(f"{directory / CARD} lacks the field {key!r}: re-export the model")
    if not isinstance(card["weights"], dict):
        raise UserError(f"{directory / CARD}: field 'weights' is not an object: re-export the model")
    family, method = get_family(card["env"]), get_method(card["method"])
    if card["spec"] != family.spec.record():
        raise UserError(f"{directory} was trained for another definition of env {card['env']!r}: retrain and re-export")
    weights = directory / WEIGHTS
    check_input_file(weights, "weights", f"the export {directory} is incomplete: export it again")
    if sha256_file(weights) != card["weights"].get("sha256"):
        raise UserError(f"{weights} does not match the sha256 in its card (corrupt or replaced): export it again")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{weights} is not a safetensors file ({str(e)[:120]}); it was refused unread") from None
    model = method.build_model(from_jsonable(ModelConfig, card["model"], "model."), family.spec, None)
    load_state(model, state, weights)
    return model.to(device).eval(), card


def pretrained_names() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name for p in PRETRAINED_DIR.glob("*") if (p / CARD).is_file())


def load_model_any(
    model: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """(model, card) from an export directory (or its model.safetensors), a training or RL^2 checkpoint
    (whose card is built from it, with no held-out result), or else a pretrained name."""
    p = Path(model)
    if p.is_dir():
        return read_export(p, device)
    if p.is_file() and p.name == WEIGHTS:
        return read_export(p.parent, device)
    if p.is_file():
        raw = safe_torch_load(p)  # one read, then whichever kind of checkpoint it is
        if is_rl2_checkpoint(raw):
            rl2_net, rl2_ckpt = rl2_from_checkpoint(raw, p, device)
            return rl2_net, card_from_rl2(rl2_ckpt, p.parent.name)
        ckpt = check_checkpoint(raw, p)
        net, _ = model_from_checkpoint(ckpt, p, device)
        return net, card_from_checkpoint(ckpt, p, p.parent.name, None)
    if str(model) in pretrained_names():
        return read_export(PRETRAINED_DIR / str(model), device)
    raise UserError(
        f"model={model} is neither a file, an export directory nor a pretrained name: pass a ckpt.pt, "
        f"a directory written by `algodistill export`, or one of {', '.join(pretrained_names()) or '(none)'}"
    )


@dataclass(frozen=True)
class ExportConfig:
    """Export a trained checkpoint as safetensors weights and a JSON model card (no pickle needed to load it)."""

    ckpt: tyro.conf.Positional[Path]
    """training checkpoint (ckpt.pt written by `algodistill train` or `run`)"""
    out: tyro.conf.Positional[Path]
    """new directory to write (model.safetensors, card.json); an existing path is refused"""
    name: str | None = None
    """the model's name in its card (default: the name of OUT)"""
    eval: Annotated[EvalConfig, tyro.conf.arg(name="")] = field(
        default_factory=lambda: EvalConfig(episodes=100, tasks=20, streams_per_task=2)
    )
    """held-out evaluation recorded in the card (episodes, tasks, streams; greedy or sampled)"""
    split: str = "test"
    """split of that evaluation"""
    evaluate: bool = True
    """evaluate on held-out tasks and record the result in the card (--no-evaluate: card without it)"""
    seed: int = 0
    """seed of the evaluation's env and action-sampling streams"""
    device: DeviceName = "cpu"
    """where the evaluation runs; the weights are written in float32 either way"""
    quiet: bool = False
    """print nothing on success"""

    def __post_init__(self) -> None:
        check_input_file(self.ckpt, "ckpt", "pass the ckpt.pt written by `algodistill train` or `run`")
        if self.out.exists():
            raise UserError(f"out={self.out} exists: choose a new path (nothing was overwritten)")


def export(cfg: ExportConfig) -> Path:
    """`algodistill export`: the checkpoint's model as an export directory; returns it."""
    device = pick_device(cfg.device)
    ckpt = load_checkpoint(cfg.ckpt)
    model, job = model_from_checkpoint(ckpt, cfg.ckpt, device)
    held_out = None
    if cfg.evaluate:
        held_out = _held_out(model, job["method"], job["env"], cfg.eval, cfg.split, cfg.seed, device, cfg.quiet)
    card = card_from_checkpoint(ckpt, cfg.ckpt, cfg.name or cfg.out.name, held_out)
    write_export(cfg.out, model.cpu(), card)
    if not cfg.quiet:
        result = ""
        if held_out is not None:
            last = held_out["last10pct"]
            result = f", held-out return over the last {last['episodes']} episodes {last['mean']:.2f}"
        print(f"exported {job['method']} on {job['env']} -> {cfg.out}{result}")
    return cfg.out
