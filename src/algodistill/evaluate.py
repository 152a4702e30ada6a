"""In-context evaluation: a frozen model on held-out tasks from an empty context (paper Sec. 4.3, Alg. 1).

Many (task, seed) streams run in parallel through one policy state (AD: one KV cache), stepped by
`InContextActor`, which `algodistill.Agent` uses too: at every step the method's policy reads the
stream's growing history and its action is sampled from the predicted distribution (paper App. B;
`greedy` takes the argmax instead, as corl-team/ad-eps does). Nothing is learned: the weights stay
frozen, so a rising return per episode is in-context RL. Which method a checkpoint holds is read from
it; the rollout only talks to the method's `Policy`.

The baselines run on the same streams: the source algorithm learning from scratch (its return per
episode over the same number of env steps), and the exact expected returns of the uniform-random
and the optimal policy (`TaskFamily.random_return` / `optimal_return`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro

from algodistill import rng
from algodistill.atomic import atomic_path
from algodistill.checkpoint import load_model
from algodistill.configs import EvalConfig
from algodistill.device import DeviceName, autocast, pick_device
from algodistill.envs import TaskFamily, get_family
from algodistill.errors import UserError, check_input_file, check_output
from algodistill.methods import NO_ACTION, Policy, get_method
from algodistill.progress import Bar
from algodistill.rng import Stream
from algodistill.sources import SourceConfig, make_source, rollout


def eval_streams(family: TaskFamily, split: str, num_tasks: int, streams_per_task: int) -> np.ndarray:
    """Task id of every evaluation stream: `num_tasks` tasks of the split (all when it has fewer;
    otherwise a fixed-seed sample) times `streams_per_task` streams each. (num_tasks * streams,) int64"""
    tasks = family.split(split)
    if num_tasks < len(tasks):
        tasks = np.sort(rng.np_rng(0, len(tasks)).choice(tasks, num_tasks, replace=False))
    return np.repeat(tasks, streams_per_task)


def sample_actions(
    logits: torch.Tensor, keys: np.ndarray, step: int, greedy: bool, temperature: float = 1.0
) -> np.ndarray:
    """a_t from softmax(logits / temperature) at a hashed uniform per stream, so a stream's actions do not
    depend on how many streams run together; or the argmax. logits (S, A) -> (S,) int64"""
    if greedy:
        return logits.argmax(dim=-1).cpu().numpy()
    return rng.categorical(_probs(logits, temperature), rng.uniform(keys, step, stream=Stream.EVAL_ACTION))


def _probs(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(logits.float() / temperature, dim=-1).cpu().numpy()  # (S, A)


@dataclass(frozen=True)
class Prompt:
    """Whole episodes that fill every stream's context before it acts (paper Fig. 5: a demonstration)."""

    obs: np.ndarray  # (S, P, *obs_shape) o_t as the env shows it
    actions: np.ndarray  # (S, P) int64 a_t of the demonstrator
    rewards: np.ndarray  # (S, P) float32 r_t


class InContextActor:
    """S streams of a frozen policy stepping together from an empty context: the one implementation of an
    in-context step, shared by the evaluator (`rollout_policy`) and `algodistill.Agent`.

    It keeps what the policy reads besides the observation: the policy state (AD: the KV cache) and
    every stream's previous action; the caller passes r_{t-1} and done_{t-1}, which the env returned.
    Actions are sampled at hashed uniforms keyed by (seed, stream id, step), as the data's sources are,
    so a stream's actions do not depend on how many streams run beside it.
    """

    def __init__(self, policy: Policy, streams: int, *, device: torch.device, seed: int = 0) -> None:
        self.policy, self.streams, self.device = policy, streams, device
        self.keys = rng.learner_keys(seed, np.arange(streams))
        self.state = policy.init_state(streams)
        self.a_tm1 = torch.full((streams,), NO_ACTION, dtype=torch.long, device=device)  # (S,) none yet
        self.t = 0  # steps taken since the context was empty

    @torch.no_grad()
    def act(
        self,
        o_t: np.ndarray,
        r_tm1: np.ndarray | None,
        done_tm1: np.ndarray | None,
        *,
        greedy: bool = False,
        temperature: float = 1.0,
        generator: np.random.Generator | None = None,
    ) -> np.ndarray:
        """a_t (S,) int64 of every stream, given o_t (S, *obs_shape) and what the previous step returned:
        r_{t-1} (S,) and done_{t-1} (S,) (None at the first step: reward 0, an episode starts).
        `generator`, when given, draws the sampling uniforms instead of the hashed per-stream ones."""
        logits = self._step(o_t, r_tm1, done_tm1)
        if generator is not None and not greedy:
            a_t = rng.categorical(_probs(logits, temperature), generator.random(self.streams))  # (S,)
        else:
            a_t = sample_actions(logits, self.keys, self.t, greedy, temperature)  # (S,)
        self.a_tm1 = torch.as_tensor(a_t, dtype=torch.long, device=self.device)
        self.t += 1
        return a_t

    @torch.no_grad()
    def observe(self, o_t: np.ndarray, a_t: np.ndarray, r_tm1: np.ndarray | None, done_tm1: np.ndarray | None) -> None:
        """Feed a step whose action a_t (S,) someone else took (a prompt's demonstrator): the policy reads it
        as its own, and nothing is sampled."""
        self._step(o_t, r_tm1, done_tm1)
        self.a_tm1 = torch.as_tensor(a_t, dtype=torch.long, device=self.device)
        self.t += 1

    def _step(self, o_t: np.ndarray, r_tm1: np.ndarray | None, done_tm1: np.ndarray | None) -> torch.Tensor:
        """Advance the policy state by one step; logits (S, A) for a_t."""
        S, dev = self.streams, self.device
        r = torch.zeros(S) if r_tm1 is None else torch.as_tensor(r_tm1, dtype=torch.float32)  # (S,)
        done = torch.ones(S, dtype=torch.bool) if done_tm1 is None else torch.as_tensor(done_tm1, dtype=torch.bool)
        r, done = r.to(dev), done.to(dev)
        with autocast(dev):
            logits, self.state = self.policy.act(self.state, torch.as_tensor(o_t, device=dev), self.a_tm1, r, done)
        return logits


@torch.no_grad()
def rollout_policy(
    policy: Policy,
    family: TaskFamily,
    stream_tasks: np.ndarray,
    episodes: int,
    *,
    device: torch.device,
    greedy: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    label: str | None = None,
    prompt: Prompt | None = None,
) -> np.ndarray:
    """Run a policy from an empty context on every stream for `episodes` episodes; returns per episode (S, E).

    One policy step per env step and none for resets: the policy sees (o_t, a_{t-1}, r_{t-1}, done_{t-1})
    with a_{t-1} = NO_ACTION at each stream's first step. `label` names a progress bar (None: no bar).
    A `prompt`'s episodes are fed first, as if the policy had taken them (paper Fig. 5); its return is not
    counted.
    """
    S, H = len(stream_tasks), family.spec.episode_length
    env = family.make(stream_tasks, seed=seed, ids=np.arange(S))
    actor = InContextActor(policy, S, device=device, seed=seed)
    r_tm1: np.ndarray | None = None
    done_tm1: np.ndarray | None = None
    if prompt is not None:
        for t in range(prompt.actions.shape[1]):
            actor.observe(prompt.obs[:, t], prompt.actions[:, t], r_tm1, done_tm1)
            r_tm1, done_tm1 = prompt.rewards[:, t], np.full(S, (t + 1) % H == 0)
    returns = np.zeros((S, episodes))
    with Bar(label or "", episodes, unit="episodes", quiet=label is None) as bar:
        for e in range(episodes):
            o_t = env.reset()
            for _ in range(H):
                a_t = actor.act(o_t, r_tm1, done_tm1, greedy=greedy, temperature=temperature)  # (S,)
                o_t, r_tm1, done_tm1 = env.step(a_t)
                returns[:, e] += r_tm1
            bar.note(f"return {returns[:, e].mean():.2f}")
            bar.advance()
    return returns


def evaluate_policy(
    policy: Policy,
    family: TaskFamily,
    split: str,
    cfg: EvalConfig,
    *,
    seed: int,
    device: torch.device,
    label: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A policy in context on a split's evaluation streams (`eval_streams`): (returns (S, E), task ids (S,))."""
    streams = eval_streams(family, split, cfg.tasks, cfg.streams_per_task)
    returns = rollout_policy(
        policy,
        family,
        streams,
        cfg.episodes,
        device=device,
        greedy=cfg.greedy,
        temperature=cfg.temperature,
        seed=seed,
        label=label,
    )
    return returns, streams


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
    data = source_history(family, source, stream_tasks, episodes * H, history_steps=history_steps, cfg=cfg, seed=seed)
    return data["rewards"].reshape(S, episodes, H).sum(axis=2)


def source_history(
    family: TaskFamily,
    source: str,
    stream_tasks: np.ndarray,
    steps: int,
    *,
    history_steps: int,
    cfg: SourceConfig,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The first `steps` transitions of the source learning from scratch on every stream, recorded as
    `sources.rollout` records them (observations in the env's stored form where it has one)."""
    S = len(stream_tasks)
    env = family.make(stream_tasks, seed=seed, ids=np.arange(S))
    src = make_source(source, env, seed, np.arange(S), history_steps, cfg)
    data, _ = rollout(env, src, steps, env.reset())
    return data


def evaluate_checkpoint(
    ckpt: Path,
    cfg: EvalConfig,
    splits: Sequence[str],
    *,
    seed: int,
    device: torch.device,
    env: str | None = None,
    quiet: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A checkpoint's method in context on each split: {split: (returns (S, E), stream task ids (S,))}.

    `env`, when given, must be the checkpoint's (UserError otherwise); a progress bar per split unless quiet."""
    model, job = load_model(ckpt, device=device)
    if env is not None and env != job["env"]:
        raise UserError(f"checkpoint {ckpt} was trained on env={job['env']!r}, not {env!r}: pass its env")
    family = get_family(job["env"])
    policy = get_method(job["method"]).policy(model)
    return {
        split: evaluate_policy(
            policy,
            family,
            split,
            cfg,
            seed=seed,
            device=device,
            label=None if quiet else f"evaluate {job['method']} on {split}",
        )
        for split in splits
    }


def save_returns(path: Path, returns: np.ndarray, stream_tasks: np.ndarray) -> None:
    """Atomically save returns (S, E) and the streams' task ids as .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, returns=returns.astype(np.float32), task_ids=stream_tasks)


@dataclass(frozen=True)
class EvaluateConfig:
    """Run a trained checkpoint frozen on held-out tasks from an empty context; save returns per episode."""

    ckpt: Path
    """checkpoint file written by `algodistill train` (e.g. runs/darkroom-quick/ad/ckpt.pt)"""
    env: str | None = None
    """expected env of the checkpoint (default: the checkpoint's own); a mismatch is an error"""
    split: str = "test"
    """task split to evaluate on: "test" (held-out) or "train" (for comparison)"""
    eval: Annotated[EvalConfig, tyro.conf.arg(name="")] = field(default_factory=EvalConfig)
    """episodes, tasks and streams (paper Sec. 4.3: 1000 episodes for the Dark environments, 20 tasks)"""
    seed: int = 0
    """seed of the env and action-sampling streams"""
    device: DeviceName = "auto"
    """"auto" uses CUDA (bf16 autocast) when present"""
    out: Path | None = None
    """where to save the returns (.npz; default: eval-<split>.npz next to the checkpoint)"""
    quiet: bool = False
    """print nothing on success"""

    def __post_init__(self) -> None:
        check_input_file(self.ckpt, "ckpt", "pass the ckpt.pt written by `algodistill train`")
        check_output(self.out_path, "out", directory=False)

    @property
    def out_path(self) -> Path:
        return self.out or self.ckpt.parent / f"eval-{self.split}.npz"


def evaluate(cfg: EvaluateConfig) -> Path:
    """`algodistill evaluate`: returns per episode of a frozen checkpoint, saved as .npz."""
    device = pick_device(cfg.device)
    results = evaluate_checkpoint(
        cfg.ckpt, cfg.eval, [cfg.split], seed=cfg.seed, device=device, env=cfg.env, quiet=cfg.quiet
    )
    returns, streams = results[cfg.split]
    save_returns(cfg.out_path, returns, streams)
    if not cfg.quiet:
        mean = returns.mean(axis=0)
        print(f"{cfg.split}: return episode 1 {mean[0]:.2f}, last {mean[-1]:.2f} -> {cfg.out_path}")
    return cfg.out_path
