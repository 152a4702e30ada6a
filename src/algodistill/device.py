"""Where models run: the torch device for "auto", "cpu" or "cuda", the precision there, and where frames are drawn.

On CUDA, training and evaluation run under bf16 autocast (weights and optimizer state stay float32);
on the CPU everything is float32, which keeps runs bit-exact and resumable there.
"""

from __future__ import annotations

import contextlib
import os
from typing import Literal

import torch

from algodistill.errors import UserError

DeviceName = Literal["auto", "cpu", "cuda"]


def cpu_share(processes: int) -> int:
    """This machine's cores split between `processes` processes running side by side (at least one each)."""
    return max(1, (os.cpu_count() or 1) // processes)


def pick_device(device: DeviceName, local_rank: int | None = None) -> torch.device:
    """The torch device for "auto" (CUDA when present, else CPU), "cpu" or "cuda"; under DDP the local rank's GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device='cuda' but no CUDA device is available: use --device cpu or auto")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank is None:
        return torch.device("cuda")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA, nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def frames_device(device: torch.device) -> torch.device | None:
    """Where frames are drawn from an env's stored form for work on `device` (the trainer's sampler, the dqn
    source's replay): on an accelerator, beside the model, since the stored form is 12 bytes a step and a
    72 x 96 frame 20,736; None on the CPU, meaning numpy, which is faster there than torch (about 1.4x:
    `python benchmarks/envs.py`, RESULTS.md)."""
    return None if device.type == "cpu" else device
