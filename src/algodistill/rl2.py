"""`algodistill rl2`: RL^2 trained online with recurrent PPO on batched training tasks (AD paper Sec. 4.2).

Each trial, N tasks are drawn from the training split and stepped together for k episodes (Table 6:
k = 10); the recurrent state starts at zero and is carried across the trial's episodes, so a trial is
one RL^2 "episode" (Duan et al. 2016): the return is summed and discounted across its episodes, which
is what makes exploring in the first episode pay in the later ones. The trial is cut into unrolls of U
steps (Table 6: 20; the Dark tasks' quick preset: the whole trial, `presets.RL2_QUICK_GRID` says why)
for truncated back-propagation through time: each unroll's start state is stored, the next value
bootstraps its GAE(lambda) advantages (0 at the trial's end), and PPO (Schulman et al. 2017; clipped
ratio, several epochs over minibatches of tasks) updates the network once per unroll.
The paper trains RL^2 with A3C; PPO is our choice (docs/fidelity.md), with the paper's lr 3e-4 and
batch of 256 tasks; rewards are scaled in the loss (`PPOConfig.reward_scale`, ours).

Determinism: trial i's tasks and env seed come from `np_rng(seed, i, RL2_TASKS)`, update u's actions
from `torch_rng(seed, u, RL2_ACTION)` and its minibatches from `np_rng(seed, u, RL2_MINIBATCH)`.
Checkpoints are written atomically at trial boundaries (no env or recurrent state to save), so a
resumed run continues bit-exactly on the CPU. Loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
import tyro

from algodistill import __version__, rng
from algodistill.atomic import atomic_path
from algodistill.checkpoint import load_state, safe_torch_load
from algodistill.configs import EvalConfig
from algodistill.device import DeviceName, pick_device
from algodistill.encoders import check_fits
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.evaluate import evaluate_policy, rollout_source, save_returns
from algodistill.jsonio import first_difference, from_jsonable, jsonable
from algodistill.methods.rl2 import RL2Config, RL2Net, RL2Policy, State
from algodistill.progress import Bar
from algodistill.rng import Tag
from algodistill.sources import SourceConfig, check_source
from algodistill.stats import normalized_score
from algodistill.train import TrainingDiverged
from algodistill.tuning import tune_source

FORMAT, VERSION = "algodistill-rl2", 1


@dataclass(frozen=True)
class PPOConfig:
    """Recurrent PPO (ours; the paper's RL^2 uses A3C with lr 3e-4, Table 6)."""

    lr: float = 3e-4
    """Adam learning rate (Table 6: 3e-4)"""
    gamma: float = 0.99
    """discount across the whole trial"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip: float = 0.2
    """PPO ratio clip"""
    epochs: int = 4
    """passes over each unroll"""
    minibatches: int = 4
    """minibatches of tasks per pass"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss weight"""
    grad_clip: float = 0.5
    """gradient norm clip"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for the loss only (returns are logged unscaled): keeps the value
    targets near 1, so the value loss does not swamp the policy gradient under the shared clip"""

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.clip > 0):
            raise UserError(
                f"ppo: lr={self.lr} must be > 0, gamma={self.gamma} in (0, 1], gae_lambda={self.gae_lambda} "
                f"in [0, 1] and clip={self.clip} > 0"
            )
        if self.epochs < 1 or self.minibatches < 1:
            raise UserError(f"ppo.epochs={self.epochs} and ppo.minibatches={self.minibatches} must be >= 1")


@dataclass(frozen=True)
class RL2TrainConfig:
    """Train RL^2 online on an env's training tasks (the preset of ENV), then evaluate it on held-out tasks."""

    env: tyro.conf.Positional[str]
    """task family (darkroom, darkroom-hard, keydoor, bandit, watermaze: its frames through a conv encoder)"""
    preset: str = "quick"
    """preset whose settings are the defaults (quick: minutes on 2 CPU cores; paper: Table 6)"""
    out: Path | None = None
    """run directory (default: runs/<env>-rl2-<preset>/seed-<seed>): ckpt.pt, eval-<condition>.npz, eval-train.npz"""
    seed: int = 0
    """seed of the initialisation, the trials' tasks, the actions and the minibatches"""
    net: RL2Config = field(default_factory=RL2Config)
    """the recurrent network and the trial length"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """the optimiser"""
    tasks: int = 256
    """training tasks stepped in parallel (Table 6: batch 256)"""
    unroll: int = 20
    """steps of truncated back-propagation through time (Table 6: 20); must divide the trial length"""
    steps: int = 20_000_000
    """env-step budget (all tasks together), rounded up to whole trials (the paper: 1e9)"""
    ckpt_every: int = 20
    """trials between checkpoints"""
    eval: Annotated[EvalConfig, tyro.conf.arg(name="eval")] = field(
        default_factory=lambda: EvalConfig(episodes=100, tasks=20, streams_per_task=5)
    )
    """evaluation at the end on held-out and on training tasks, frozen weights"""
    eval_carry: bool = True
    """carry the recurrent state across the whole evaluation, as AD's context is (a stream keeps one task);
    --no-eval-carry resets it every trial, as in training (methods/rl2.py, RL2Policy)"""
    normalize_by: str | None = None
    """source algorithm whose return, learning from scratch on the same streams, is 1 of the printed
    normalised score (0: random), and again with its schedule tuned to the evaluation budget
    (`algodistill.tuning`); the bandit's presets: ucb (paper Fig. 3)"""
    device: DeviceName = "auto"
    """"auto": CUDA when present, else CPU (float32)"""
    resume: bool = True
    """continue from out/ckpt.pt when it exists (its config must match)"""
    quiet: bool = False
    """no progress and no summary line"""

    def __post_init__(self) -> None:
        family = get_family(self.env)  # UserError naming the envs
        check_fits(self.net.encoder, family.spec, "net.encoder")  # e.g. an embedding table for Watermaze's frames
        if self.tasks < 1 or self.unroll < 1 or self.steps < 1 or self.ckpt_every < 1:
            raise UserError(
                f"tasks={self.tasks}, unroll={self.unroll}, steps={self.steps} and ckpt_every={self.ckpt_every} "
                "must be >= 1"
            )
        trial = self.net.trial_episodes * family.spec.episode_length
        if trial % self.unroll:
            raise UserError(
                f"unroll={self.unroll} must divide the trial of {trial} steps ({self.net.trial_episodes} episodes "
                f"of {family.spec.episode_length}): pass --unroll {math.gcd(trial, 20)}"
            )
        if self.normalize_by is not None:
            check_source(self.normalize_by, self.env)  # UserError naming the sources that fit
        if self.tasks < self.ppo.minibatches:
            raise UserError(f"tasks={self.tasks} is fewer than ppo.minibatches={self.ppo.minibatches}")

    @property
    def out_dir(self) -> Path:
        return self.out or Path("runs") / f"{self.env}-rl2-{self.preset}" / f"seed-{self.seed}"

    def record(self) -> dict[str, Any]:
        """What determines the weights (a resume compares it; `steps` may grow)."""
        return jsonable({k: getattr(self, k) for k in ("env", "seed", "net", "ppo", "tasks", "unroll")})


def gae(rewards: np.ndarray, values: np.ndarray, next_value: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """GAE(lambda) advantages of one unroll with no terminal inside (a trial is one episode).
    rewards, values (N, U); next_value (N,): the value after the unroll (0 at a trial's end). -> (N, U)"""
    adv = np.zeros_like(values)
    last = np.zeros_like(next_value)
    for t in reversed(range(values.shape[1])):
        v_next = next_value if t == values.shape[1] - 1 else values[:, t + 1]
        delta = rewards[:, t] + gamma * v_next - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    return adv


def ppo_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped PPO objective over (B, U) steps: -min(ratio A, clip(ratio) A) + vf (v - G)^2 / 2 - ent H."""
    logp_all = F.log_softmax(logits, dim=-1)  # (B, U, A)
    logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, U)
    ratio = torch.exp(logp - old_logp)
    pg = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv).mean()
    vf = 0.5 * (values - returns).pow(2).mean()
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    loss = pg + cfg.vf_coef * vf - cfg.ent_coef * entropy
    return loss, {"pg": pg.item(), "vf": vf.item(), "entropy": entropy.item()}


def _save(path: Path, ckpt: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def is_rl2_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded checkpoint (`checkpoint.safe_torch_load`) was written by `algodistill rl2`."""
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def load_rl2(path: Path, device: str | torch.device = "cpu") -> tuple[RL2Net, dict[str, Any]]:
    """The network of an RL^2 checkpoint (eval mode) and its checkpoint dict; UserError if it is not one."""
    return rl2_from_checkpoint(safe_torch_load(path), path, device)


def rl2_from_checkpoint(ckpt: Any, path: Path, device: str | torch.device = "cpu") -> tuple[RL2Net, dict[str, Any]]:
    """`load_rl2` for a checkpoint already loaded from `path` (which errors name)."""
    if not is_rl2_checkpoint(ckpt) or ckpt.get("version") != VERSION:
        raise UserError(f"{path} is not a version-{VERSION} RL^2 checkpoint: pass the ckpt.pt of `algodistill rl2`")
    job = ckpt.get("job")
    if not isinstance(job, dict) or not isinstance(ckpt.get("model"), dict) or not isinstance(ckpt.get("log"), list):
        raise UserError(f"{path} is a damaged RL^2 checkpoint (no job, model or log): train again")
    net = RL2Net(from_jsonable(RL2Config, job.get("net"), "net."), get_family(job.get("env", "?")).spec)
    load_state(net, _renamed(ckpt["model"]), path)  # strict: names the first missing, extra or misshapen tensor
    return net.to(device).eval(), ckpt


def _renamed(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict of before the observation encoder became a config (its tables `obs_emb.<i>.weight`, one per
    component) in today's names: the tables stacked are `obs_encoder.table.weight`, the same function."""
    old = sorted((k for k in state if k.startswith("obs_emb.")), key=lambda k: int(k.split(".")[1]))
    if not old:
        return state
    rest = {k: v for k, v in state.items() if not k.startswith("obs_emb.")}
    return {**rest, "obs_encoder.table.weight": torch.cat([state[k] for k in old])}


def env_steps(ckpt: dict[str, Any]) -> int:
    """Env steps an RL^2 checkpoint was trained for (its log's last entry; 0 before the first trial)."""
    return int(ckpt["log"][-1][1]) if ckpt["log"] else 0


def train_rl2(cfg: RL2TrainConfig) -> Path:
    """`algodistill rl2`: train (or resume) to the step budget, then evaluate on held-out tasks; returns out."""
    device = pick_device(cfg.device)
    net, log = fit_rl2(cfg, device)
    family, out = get_family(cfg.env), cfg.out_dir
    policy = RL2Policy(net, carry=cfg.eval_carry)
    summary = []
    if cfg.normalize_by is not None:  # on training tasks, so one fit serves every condition
        tuned = tune_source(family, cfg.normalize_by, SourceConfig(), cfg.eval.episodes, seed=0)
    # every test condition (held out), and training tasks for comparison (RL^2 can memorise those)
    for name, split in {**family.conditions, "train": "train"}.items():
        returns, streams = evaluate_policy(policy, family, split, cfg.eval, seed=cfg.seed, device=device)
        save_returns(out / f"eval-{name}.npz", returns, streams)
        last = returns[:, -max(1, cfg.eval.episodes // 10) :].mean()
        line = f"{name} {returns.mean():.2f} (episode 1 {returns[:, 0].mean():.2f}, last 10% {last:.2f}"
        if cfg.normalize_by is not None:
            steps = cfg.eval.episodes * family.spec.episode_length  # the source's schedules span the evaluation
            ref = rollout_source(
                family, cfg.normalize_by, streams, cfg.eval.episodes, history_steps=steps, cfg=SourceConfig()
            )
            ref_tuned = rollout_source(
                family, cfg.normalize_by, streams, cfg.eval.episodes, history_steps=steps, cfg=tuned.cfg
            )
            r_random = family.random_return(streams).mean()
            score = normalized_score(returns.mean(), r_random, ref.mean())
            score_tuned = normalized_score(returns.mean(), r_random, ref_tuned.mean())
            line += f", normalised by {cfg.normalize_by} {score:.2f}, by {cfg.normalize_by} tuned {score_tuned:.2f}"
        summary.append(line + ")")
    if not cfg.quiet:
        trained = int(log[-1][1]) if log else 0
        print(f"rl2 {cfg.env} seed {cfg.seed}: {trained} env steps; return per episode on {'; '.join(summary)}")
        print(f"-> {out}")
    return out


def fit_rl2(cfg: RL2TrainConfig, device: torch.device) -> tuple[RL2Net, list[list[float]]]:
    """Train (or resume) to the step budget, checkpointing to out/ckpt.pt; returns the network (eval mode)
    and the log of [trial, env steps so far, mean return per episode of the trial]."""
    family = get_family(cfg.env)
    spec, train_tasks = family.spec, family.split("train")
    N, U, H = cfg.tasks, cfg.unroll, spec.episode_length
    trial_steps = cfg.net.trial_episodes * H
    chunks = trial_steps // U
    trials = math.ceil(cfg.steps / (N * trial_steps))
    out = cfg.out_dir
    ckpt_path = out / "ckpt.pt"

    saved = None
    if ckpt_path.is_file():
        if not cfg.resume:
            raise UserError(f"out={out} already holds an RL^2 run: pass --resume or choose another --out")
        net, saved = load_rl2(ckpt_path, device)
        if diff := first_difference(saved["job"], cfg.record()):
            raise UserError(
                f"out={out} holds an RL^2 run with another config: {diff[0]} ({diff[1]!r} there, {diff[2]!r} now)"
            )
    else:
        torch.manual_seed(cfg.seed)  # the initial weights
        net = RL2Net(cfg.net, spec).to(device)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.ppo.lr, eps=1e-5)
    trial0, log = 0, []  # [trial, env steps so far, mean return per episode of the trial]
    if saved is not None:
        opt.load_state_dict(saved["optimizer"])
        trial0, log = saved["trial"], saved["log"]
    out.mkdir(parents=True, exist_ok=True)

    def checkpoint(trial: int) -> None:
        state = {
            "format": FORMAT,
            "version": VERSION,
            "job": cfg.record(),
            "trial": trial,
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "log": log,
            "package_version": __version__,
        }
        _save(ckpt_path, state)

    with Bar(
        f"rl2 {cfg.env}", trials * N * trial_steps, unit="steps", quiet=cfg.quiet, start=trial0 * N * trial_steps
    ) as bar:
        for trial in range(trial0, trials):
            g = rng.np_rng(cfg.seed, trial, Tag.RL2_TASKS)
            tasks = g.choice(train_tasks, N)
            env = family.make(tasks, seed=int(g.integers(2**62)))
            trial_return = _run_trial(net, opt, env, cfg, trial * chunks, chunks, device)  # (N,)
            log.append([trial, (trial + 1) * N * trial_steps, float(trial_return.mean() / cfg.net.trial_episodes)])
            bar.note(f"return per episode {log[-1][2]:.2f}")
            bar.update((trial + 1) * N * trial_steps)
            if (trial + 1) % cfg.ckpt_every == 0 or trial + 1 == trials:
                checkpoint(trial + 1)
    return net.eval(), log


def _run_trial(
    net: RL2Net,
    opt: torch.optim.Optimizer,
    env: Any,
    cfg: RL2TrainConfig,
    update0: int,
    chunks: int,
    device: torch.device,
) -> np.ndarray:
    """One trial of every task: `chunks` unrolls, one PPO update after each. Returns each task's trial return."""
    spec, N, U = env.spec, cfg.tasks, cfg.unroll
    A = spec.num_actions
    obs_dtype = torch.long if spec.obs_high is not None else getattr(torch, spec.obs_dtype)  # categories, or frames
    o_t = env.reset()
    state: State = net.initial_state(N, device)
    a_tm1 = torch.full((N,), A, dtype=torch.long, device=device)  # the start index: no previous action
    r_tm1 = torch.zeros(N, device=device)
    d_tm1 = torch.ones(N, dtype=torch.bool, device=device)  # a trial starts with an episode
    total = np.zeros(N)
    for c in range(chunks):
        g = rng.torch_rng(cfg.seed, update0 + c, Tag.RL2_ACTION)
        h0 = tuple(h.detach() for h in state)
        obs = torch.zeros((N, U, *spec.obs_shape), dtype=obs_dtype, device=device)  # (N, U, *obs_shape)
        inp_a, inp_r, inp_d = (
            torch.zeros((N, U), dtype=dt, device=device) for dt in (torch.long, torch.float32, torch.bool)
        )
        actions = torch.zeros((N, U), dtype=torch.long, device=device)
        old_logp, values = torch.zeros((N, U), device=device), np.zeros((N, U))
        rewards = np.zeros((N, U))
        with torch.no_grad():
            for t in range(U):
                ot = torch.as_tensor(o_t, dtype=obs_dtype, device=device)  # (N, *obs_shape)
                obs[:, t], inp_a[:, t], inp_r[:, t], inp_d[:, t] = ot, a_tm1, r_tm1, d_tm1
                logits, v, state = net(ot[:, None], a_tm1[:, None], r_tm1[:, None], d_tm1[:, None], state)
                logp_all = F.log_softmax(logits[:, 0], dim=-1)  # (N, A)
                a_t = torch.multinomial(logp_all.exp().cpu(), 1, generator=g)[:, 0].to(device)  # (N,)
                old_logp[:, t] = logp_all.gather(-1, a_t[:, None])[:, 0]
                values[:, t] = v[:, 0].cpu().numpy()
                actions[:, t] = a_t
                o_t, r_t, done_t = env.step(a_t.cpu().numpy())
                rewards[:, t] = r_t
                if done_t[0] and not (c == chunks - 1 and t == U - 1):
                    o_t = env.reset()  # the next episode of the trial; the state carries on
                a_tm1 = a_t
                r_tm1 = torch.as_tensor(r_t, dtype=torch.float32, device=device)
                d_tm1 = torch.as_tensor(done_t, device=device)
            if c == chunks - 1:
                next_value = np.zeros(N)  # the trial (one RL^2 episode) ends
            else:
                ot = torch.as_tensor(o_t, dtype=obs_dtype, device=device)
                _, v, _ = net(ot[:, None], a_tm1[:, None], r_tm1[:, None], d_tm1[:, None], state)
                next_value = v[:, 0].cpu().numpy()
        total += rewards.sum(axis=1)
        adv_np = gae(rewards * cfg.ppo.reward_scale, values, next_value, cfg.ppo.gamma, cfg.ppo.gae_lambda)
        adv = torch.as_tensor(adv_np, dtype=torch.float32, device=device)
        ret = adv + torch.as_tensor(values, dtype=torch.float32, device=device)
        order = rng.np_rng(cfg.seed, update0 + c, Tag.RL2_MINIBATCH)
        for _ in range(cfg.ppo.epochs):
            for idx_np in np.array_split(order.permutation(N), cfg.ppo.minibatches):
                idx = torch.as_tensor(idx_np, device=device)
                logits, v, _ = net(obs[idx], inp_a[idx], inp_r[idx], inp_d[idx], tuple(h[:, idx] for h in h0))
                mb_adv = adv[idx]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                loss, _ = ppo_loss(logits, v, actions[idx], old_logp[idx], mb_adv, ret[idx], cfg.ppo)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"RL^2 loss is {loss.item()} at update {update0 + c} (last checkpoint kept): lower --ppo.lr"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.ppo.grad_clip)
                opt.step()
    return total
