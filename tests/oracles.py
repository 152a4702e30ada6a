"""Test oracles for the KV cache: what `ADTransformer.step` must return, computed without a cache.

Both follow the module docstring of `algodistill.kvcache` and are deliberately naive (one full forward
per step for learned positions), so they check the cache rather than share its code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from algodistill.model import ADTransformer, ModelConfig


def reference_context_lengths(num_steps: int, cfg: ModelConfig) -> np.ndarray:
    """Steps attended at each of `num_steps` cached inference steps from a reset. (num_steps,) int64

    learned (re-prefill): the logits at step t equal a full forward over the last min(t + 1, W) steps.
    rope (rolling): each layer attends to the last min(t + 1, W) steps (sliding-window attention).
    """
    return np.minimum(np.arange(num_steps, dtype=np.int64) + 1, cfg.context)


@torch.no_grad()
def reference_logits(model: ADTransformer, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor) -> Tensor:
    """Without a cache, the logits (B, T, A) that `step` returns over a stream of T steps from a reset.

    rope: one banded forward (sliding-window attention). learned: one forward per step over the last
    `reference_context_lengths` steps. Slow (T forwards).
    """
    cfg = model.cfg
    if cfg.positions == "rope":
        return model(obs, a_tm1, r_tm1, window=cfg.context)  # (B, T, A)
    logits = []
    for t, n in enumerate(reference_context_lengths(a_tm1.shape[1], cfg).tolist()):
        s = slice(t + 1 - n, t + 1)  # the last n steps up to t
        logits.append(model(obs[:, s], a_tm1[:, s], r_tm1[:, s])[:, -1])  # (B, A)
    return torch.stack(logits, dim=1)  # (B, T, A)
