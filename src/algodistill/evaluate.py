"""In-context evaluation: a frozen model on held-out tasks from an empty context (paper Sec. 4.3, Alg. 1).

Many (task, seed) streams run in parallel through one KV cache: at every step the model reads its own
growing history (o_t, a_{t-1}, r_{t-1}) and its action is sampled from the predicted distribution
(paper App. B; `greedy=True` takes the argmax instead, as corl-team/ad-eps does). Nothing is learned:
the weights stay frozen, so a rising return per episode is in-context RL.

The baselines run on the same streams: the source algorithm learning from scratch (its return per
episode over the same number of env steps), and the exact expected returns of the uniform-random
and the optimal policy (`TaskFamily.random_return` / `optimal_return`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from algodistill import rng
from algodistill.atomic import atomic_path
from algodistill.checkpoint import load_model
from algodistill.envs import TaskFamily, get_family
from algodistill.errors import UserError
from algodistill.model import ADTransformer
from algodistill.sources import SourceConfig, make_source, rollout
from algodistill.train import pick_device

_ACTION_STREAM = 7  # hashed-uniform stream for action sampling; the envs use streams 1 and 2


def eval_streams(family: TaskFamily, split: str, num_tasks: int, seeds: int) -> np.ndarray:
    """Task id of every evaluation stream: `num_tasks` tasks of the split (all when it has fewer;
    otherwise a fixed-seed sample) times `seeds` streams each. (num_tasks * seeds,) int64"""
    tasks = family.split(split)
    if num_tasks < len(tasks):
        tasks = np.sort(rng.np_rng(0, len(tasks)).choice(tasks, num_tasks, replace=False))
    return np.repeat(tasks, seeds)


def sample_actions(logits: torch.Tensor, keys: np.ndarray, step: int, greedy: bool) -> np.ndarray:
    """Sample a_t from softmax(logits) by inverting the CDF at a hashed uniform per stream, so a
    stream's actions do not depend on how many streams run together. logits (S, A) -> (S,) int64"""
    if greedy:
        return logits.argmax(dim=-1).cpu().numpy()
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(dim=-1).cpu().numpy()  # (S, A)
    u = rng.uniform(keys, step, stream=_ACTION_STREAM)[:, None]  # (S, 1)
    return np.minimum((cdf < u * cdf[:, -1:]).sum(axis=1), logits.shape[-1] - 1)


@torch.no_grad()
def rollout_model(
    model: ADTransformer,
    family: TaskFamily,
    stream_tasks: np.ndarray,
    episodes: int,
    *,
    greedy: bool = False,
    seed: int = 0,
    use_cache: bool = True,
) -> np.ndarray:
    """Run a frozen model from an empty context on every stream for `episodes` episodes.

    With `use_cache=False` the whole window of the last `context` steps is recomputed at every step,
    as the public implementations do (kept for benchmarks/evaluate.py). Until the window fills, both
    see the same context; after that the cache re-prefills (learned positions) or rolls (rope), see
    `algodistill.model`, while this path slides one step at a time. Returns per-episode returns (S, E).
    """
    model.eval()
    spec = family.spec
    device = next(model.parameters()).device
    S, H, c = len(stream_tasks), spec.episode_length, model.cfg.context
    env = family.make(stream_tasks, seed=seed, ids=np.arange(S))
    keys = rng.learner_keys(seed, np.arange(S))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    cache = model.new_cache(S) if use_cache else None
    a_tm1 = torch.full((S,), spec.num_actions, dtype=torch.long, device=device)  # start index: no a_{-1}
    r_tm1 = torch.zeros(S, device=device)
    window: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    returns = np.zeros((S, episodes))
    step = 0
    for e in range(episodes):
        o_t = env.reset()
        for _ in range(H):
            obs = torch.as_tensor(o_t, dtype=torch.long, device=device)  # (S, D)
            with autocast:
                if cache is not None:
                    logits = model.step(cache, obs, a_tm1, r_tm1)  # (S, A)
                else:
                    window = [*window[-(c - 1) :], (obs, a_tm1, r_tm1)] if c > 1 else [(obs, a_tm1, r_tm1)]
                    o_w, a_w, r_w = (torch.stack(x, dim=1) for x in zip(*window, strict=True))  # (S, <=c, ...)
                    logits = model(o_w, a_w, r_w)[:, -1]  # (S, A)
            a_t = sample_actions(logits, keys, step, greedy)
            o_t, r_t, _ = env.step(a_t)
            returns[:, e] += r_t
            a_tm1 = torch.as_tensor(a_t, dtype=torch.long, device=device)
            r_tm1 = torch.as_tensor(r_t, dtype=torch.float32, device=device)
            step += 1
    return returns


def rollout_source(
    family: TaskFamily,
    source: str,
    stream_tasks: np.ndarray,
    episodes: int,
    *,
    history_steps: int,
    cfg: SourceConfig,
    seed: int = 0,
) -> np.ndarray:
    """The source algorithm learning from scratch on every stream: the first `episodes` episodes of a
    learning history of `history_steps` steps, as in the dataset (its exploration schedules run over
    the whole history, so a source compared at equal env steps is the data's source). (S, E)"""
    S, H = len(stream_tasks), family.spec.episode_length
    env = family.make(stream_tasks, seed=seed, ids=np.arange(S))
    src = make_source(source, env, seed, np.arange(S), history_steps, cfg)
    data, _ = rollout(env, src, episodes * H, env.reset())
    return data["rewards"].reshape(S, episodes, H).sum(axis=2)


@dataclass(frozen=True)
class EvaluateConfig:
    """Run a trained checkpoint frozen on held-out tasks from an empty context; save returns per episode."""

    ckpt: Path
    """checkpoint file written by `algodistill train` (e.g. runs/darkroom-quick/ad/ckpt.pt)"""
    env: str | None = None
    """expected env of the checkpoint (default: the checkpoint's own); a mismatch is an error"""
    split: str = "test"
    """task split to evaluate on: "test" (held-out) or "train" (for comparison)"""
    episodes: int = 100
    """episodes per stream (paper Sec. 4.3: 1000 for the Dark environments)"""
    tasks: int = 20
    """tasks drawn from the split (all of them when the split is smaller; paper: 20)"""
    seeds: int = 5
    """evaluation streams per task (paper: 5 training seeds x 20 evaluation seeds)"""
    greedy: bool = False
    """take the argmax action instead of sampling (paper App. B samples)"""
    seed: int = 0
    """seed of the env and action-sampling streams"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto" uses CUDA (bf16 autocast) when present"""
    out: Path | None = None
    """where to save the returns (.npz; default: eval-<split>.npz next to the checkpoint)"""

    def __post_init__(self) -> None:
        for name in ("episodes", "tasks", "seeds"):
            if getattr(self, name) < 1:
                raise UserError(f"{name}={getattr(self, name)} must be positive: pass --{name} 1 or more")


def evaluate(cfg: EvaluateConfig) -> Path:
    """`algodistill evaluate`: returns per episode of a frozen checkpoint, saved as .npz."""
    device = pick_device(cfg.device)
    model, saved = load_model(cfg.ckpt, device=device)
    env_name = saved["env"]
    if cfg.env is not None and cfg.env != env_name:
        raise UserError(f"checkpoint {cfg.ckpt} was trained on env={env_name!r}, not {cfg.env!r}: pass its env")
    family = get_family(env_name)
    stream_tasks = eval_streams(family, cfg.split, cfg.tasks, cfg.seeds)
    returns = rollout_model(model, family, stream_tasks, cfg.episodes, greedy=cfg.greedy, seed=cfg.seed)
    out = cfg.out or Path(cfg.ckpt).parent / f"eval-{cfg.split}.npz"
    save_returns(out, returns, stream_tasks)
    mean = returns.mean(axis=0)
    print(f"{env_name} {cfg.split}: return episode 1 {mean[0]:.2f}, last {mean[-1]:.2f} -> {out}")
    return out


def save_returns(path: Path, returns: np.ndarray, stream_tasks: np.ndarray) -> None:
    """Atomically save returns (S, E) and the streams' task ids as .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, returns=returns.astype(np.float32), task_ids=stream_tasks)
