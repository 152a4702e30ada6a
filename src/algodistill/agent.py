"""`algodistill.Agent`: a trained model acting step by step in your own Gymnasium loop, its context kept for you.

    agent = Agent.load("darkroom-quick")           # a pretrained name, an export directory, or a ckpt.pt
    env = gymnasium.make("algodistill/DarkRoom-v0", task=3)
    obs, _ = env.reset(seed=0)
    agent.reset(env)                                # an empty context: a new task
    reward, terminated, truncated = None, False, False
    for t in range(50 * 20):                        # 50 episodes of 20 steps, no weight update
        action = agent.act(obs, reward, terminated, truncated)
        obs, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()                    # the next act() gets the new episode's first obs
                                                    # and the last step's reward and flags

`act` is called once per env step with what the env returned for the previous step, which is what AD
reads at step t: (o_t, a_{t-1}, r_{t-1}) (paper Sec. 3); the agent remembers a_{t-1} itself. Its
context runs across episodes (an env reset is not a new task); `reset()` empties it. The step is the
evaluator's own (`evaluate.InContextActor`: the method's policy and its KV cache), so an agent and
`algodistill evaluate` take the same actions on the same task and seed. An observation with a leading
batch axis steps that many streams at once.

`algodistill play MODEL --task i` runs an agent on the model's Gymnasium env and prints the return
of every episode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

import gymnasium
import numpy as np
import torch
import tyro

from algodistill.device import DeviceName, pick_device
from algodistill.envs import get_family
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.evaluate import InContextActor
from algodistill.export import load_model_any
from algodistill.methods import Policy, get_method


class Agent:
    """A frozen model acting in context on one env's tasks, one step per call (module docstring)."""

    def __init__(self, policy: Policy, spec: EnvSpec, card: dict[str, Any], device: torch.device) -> None:
        self.policy, self.spec, self.card, self.device = policy, spec, card, device
        self._actor: InContextActor | None = None  # created at the first act(), when the batch size is known
        self._seed = 0

    @classmethod
    def load(cls, model: str | os.PathLike[str], device: str | torch.device = "cpu") -> Agent:
        """An agent from a pretrained name (`algodistill pretrained`), an export directory, or a ckpt.pt of
        `algodistill train`/`run` or `algodistill rl2`."""
        named = isinstance(device, str) and device in ("auto", "cpu", "cuda")
        dev = pick_device(cast(DeviceName, device)) if named else torch.device(device)
        net, card = load_model_any(model, dev)
        return cls(get_method(card["method"]).policy(net), get_family(card["env"]).spec, card, dev)

    @property
    def env(self) -> str:
        """Name of the task family the model was trained on."""
        return self.spec.name

    def reset(self, env: gymnasium.Env[Any, Any] | str | None = None, *, seed: int = 0) -> None:
        """Empty the context (a new task). `env` (a Gymnasium env, a gym id or a family name), when given,
        must be the model's; `seed` keys the sampling of actions, as the evaluator's `--seed` does."""
        if env is not None:
            self._check_env(env)
        self._actor, self._seed = None, seed

    def act(
        self,
        obs: Any,
        reward: Any = None,
        terminated: Any = False,
        truncated: Any = False,
        *,
        greedy: bool = False,
        generator: np.random.Generator | None = None,
    ) -> Any:
        """The action for `obs`, given what the env returned for the previous step (ignored at the first
        call after `reset`). obs (*obs_shape) gives an int; obs (B, *obs_shape) an int64 array (B,), the
        reward and flags then being scalars or (B,) arrays. `greedy` takes the argmax; `generator` draws
        the sampling uniforms (default: hashed per stream and step from the reset seed)."""
        o_t, batched = self._check_obs(obs)
        B = o_t.shape[0]
        if self._actor is None:
            self._actor = InContextActor(self.policy, B, device=self.device, seed=self._seed)
            r_tm1 = done_tm1 = None  # an empty context: no previous step (evaluate.InContextActor)
        else:
            if B != self._actor.streams:
                raise UserError(f"obs holds {B} streams, but this context holds {self._actor.streams}: call reset()")
            if reward is None:
                raise UserError(
                    "reward=None after the first step: pass the reward the env returned for the last action"
                )
            try:  # a scalar or one value per stream; copies, since torch wants writable arrays
                r_tm1 = np.array(np.broadcast_to(np.asarray(reward, dtype=np.float32), (B,)))
                done_tm1 = np.array(np.broadcast_to(np.asarray(terminated, bool) | np.asarray(truncated, bool), (B,)))
            except ValueError:
                raise UserError(
                    f"reward {np.shape(reward)}, terminated {np.shape(terminated)} and truncated "
                    f"{np.shape(truncated)} must be scalars or hold one value per stream ({B})"
                ) from None
        a_t = self._actor.act(o_t, r_tm1, done_tm1, greedy=greedy, generator=generator)  # (B,)
        return a_t if batched else int(a_t[0])

    def _check_obs(self, obs: Any) -> tuple[np.ndarray, bool]:
        """obs as (B, *obs_shape) in the env's dtype and whether it came batched; UserError for an
        observation that the model's env cannot produce."""
        o = obs.detach().cpu().numpy() if isinstance(obs, torch.Tensor) else np.asarray(obs)
        s = self.spec
        trained = f"this agent was trained on {s.name} ({s.gym_id}), whose observations are {s.describe_obs()}"
        if o.shape == s.obs_shape:
            o, batched = o[None], False
        elif o.shape[1:] == s.obs_shape and o.shape[0] > 0:
            batched = True
        else:
            raise UserError(f"obs of shape {o.shape} is not an observation of {s.name}: {trained}, or a batch of them")
        if s.obs_high is not None:
            if not np.issubdtype(o.dtype, np.integer):
                raise UserError(f"obs of dtype {o.dtype} is not an observation of {s.name}: {trained}")
            high = np.array(s.obs_high).reshape(s.obs_shape)
            if (o < 0).any() or (o >= high).any():
                raise UserError(f"obs={o.reshape(-1)[:8].tolist()} is out of range: {trained}")
        elif o.dtype != np.dtype(s.obs_dtype):
            raise UserError(f"obs of dtype {o.dtype} is not an observation of {s.name}: {trained}")
        return o.astype(s.obs_dtype, copy=False), batched

    def _check_env(self, env: gymnasium.Env[Any, Any] | str) -> None:
        s = self.spec
        if isinstance(env, str):
            if env in (s.name, s.gym_id):
                return
            other = env
        else:
            gym_spec = getattr(env, "spec", None)
            other = gym_spec.id if gym_spec is not None else type(env.unwrapped).__name__
            if other == s.gym_id:
                return
        raise UserError(
            f"this agent was trained on {s.name} ({s.gym_id}), not {other}: load a model of that env "
            "(`algodistill pretrained` lists the shipped ones)"
        )


@dataclass(frozen=True)
class PlayConfig:
    """Run a trained model in context on one task of its Gymnasium env and print the return of each episode."""

    model: tyro.conf.Positional[str]
    """a pretrained name (`algodistill pretrained`), an export directory or a ckpt.pt"""
    env: str | None = None
    """Gymnasium id or family name to play (default: the model's own); another env is refused"""
    task: int = 0
    """task index of the env (e.g. Dark Room's goal x * 9 + y)"""
    episodes: int = 50
    """episodes to play with one context (no weight update)"""
    seed: int = 0
    """seed of the env and of action sampling"""
    greedy: bool = False
    """take the argmax action instead of sampling"""
    device: DeviceName = "cpu"
    """where the model runs"""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise UserError(f"episodes={self.episodes} must be >= 1: pass --episodes 50, say")
        if not self.model:
            raise UserError("model is empty: pass a pretrained name, an export directory or a ckpt.pt")


def play(cfg: PlayConfig) -> np.ndarray:
    """`algodistill play`: the return of every episode of one in-context stream. (episodes,)"""
    agent = Agent.load(cfg.model, cfg.device)
    gym_id = agent.spec.gym_id if cfg.env is None else _gym_id(cfg.env)
    agent.reset(gym_id, seed=cfg.seed)  # another env is refused before it is made
    env = gymnasium.make(gym_id, task=cfg.task)
    obs, _ = env.reset(seed=cfg.seed)
    reward, terminated, truncated = None, False, False
    returns = np.zeros(cfg.episodes)
    for e in range(cfg.episodes):
        while True:
            action = agent.act(obs, reward, terminated, truncated, greedy=cfg.greedy)
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[e] += float(reward)
            if terminated or truncated:
                break
        obs, _ = env.reset()  # the next act() gets this first observation with the last step's reward and flags
        print(f"episode {e + 1:>4}: return {returns[e]:.2f}")
    return returns


def _gym_id(env: str) -> str:
    """The Gymnasium id of a family name; any other string is taken as a Gymnasium id."""
    try:
        return get_family(env).spec.gym_id
    except UserError:
        return env
