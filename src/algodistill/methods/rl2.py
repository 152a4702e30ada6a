"""RL^2 (Duan et al. 2016): a recurrent policy trained online across trials of k episodes (AD paper Sec. 4.2).

The network reads, at step t, (o_t, a_{t-1}, r_{t-1}, d_{t-1}) - d the "an episode just ended" flag -
and its recurrent state carries everything before: within a trial of k episodes on one task it can
explore, remember where the reward was, and exploit it, all in its hidden state. The state is reset
only between trials (a new task). AD paper Table 6: LSTM 256 x 2 layers, 10 episodes per trial,
unroll 20, A3C; ours also allows a GRU (`cell`), which is cheaper on a CPU (docs/fidelity.md).

Input embedding (ours; the paper does not give it): o_t through the observation encoder the config
names (`RL2Config.encoder`, AD's encoders: a learned table per component of a grid cell by default, the
components as numbers through an MLP, or a conv encoder for Watermaze's frames), summed with tables of
a_{t-1} (with a start index for "no previous action") and d_{t-1}, plus a linear map of r_{t-1}; then
the recurrent core; then a policy head (A logits) and a value head.

As a method of the seam, its inference policy's state is the recurrent state; training is online
(`algodistill rl2`, `algodistill.rl2`), so it has no offline data, windows or batches: those methods
of the seam refuse with a UserError that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from algodistill.encoders import EncoderConfig, make_encoder
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.methods.base import NO_ACTION, Batch
from algodistill.model import ModelConfig
from algodistill.sampler import Windows

State = tuple[Tensor, ...]  # the recurrent state: (h,) for a GRU, (h, c) for an LSTM, each (layers, B, hidden)


@dataclass(frozen=True)
class RL2Config:
    """RL^2's network and trials (AD paper Table 6 for the Dark environments)."""

    cell: Literal["lstm", "gru"] = "lstm"
    """recurrent core: lstm (Table 6) or gru (ours, cheaper per step)"""
    hidden: int = 256
    """width of the recurrent state (Table 6: 256)"""
    layers: int = 2
    """recurrent layers (Table 6: 2)"""
    embed: int = 64
    """width of the input embedding (ours)"""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """how o_t becomes one embedding of width embed (encoders.py): embedding (a table per component), mlp (the
    components as numbers) or conv (frames; RL^2's presets drop its BatchNorm, see EncoderConfig.norm)"""
    trial_episodes: int = 10
    """episodes per trial on one task; the recurrent state is reset between trials (Table 6: 10)"""

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "embed", "trial_episodes"):
            if getattr(self, name) < 1:
                raise UserError(
                    f"rl2.{name}={getattr(self, name)} must be >= 1: e.g. --rl2.{name.replace('_', '-')} 10"
                )


class RL2Net(nn.Module):
    """(o_t, a_{t-1}, r_{t-1}, d_{t-1}) -> recurrent core -> (logits over a_t, value). Sequences are (B, T)."""

    def __init__(self, cfg: RL2Config, spec: EnvSpec) -> None:
        super().__init__()
        self.cfg, self.spec = cfg, spec
        E = cfg.embed
        self.obs_encoder = make_encoder(cfg.encoder, spec, E)
        self.act_emb = nn.Embedding(spec.num_actions + 1, E)  # + 1: the start index, no previous action
        self.done_emb = nn.Embedding(2, E)
        self.rew = nn.Linear(1, E)
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.core = rnn(E, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.pi = nn.Linear(cfg.hidden, spec.num_actions)
        self.v = nn.Linear(cfg.hidden, 1)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """The state of a new trial: zeros."""
        h = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device)
        return (h, h.clone()) if self.cfg.cell == "lstm" else (h,)

    def forward(
        self, obs: Tensor, a_tm1: Tensor, r_tm1: Tensor, d_tm1: Tensor, state: State
    ) -> tuple[Tensor, Tensor, State]:
        """obs (B, T, *obs_shape) (ints, or uint8 images), a_tm1 (B, T) long (num_actions = none), r_tm1 (B, T),
        d_tm1 (B, T) bool -> logits (B, T, A), values (B, T), the state after step T."""
        x = self.obs_encoder(obs)  # (B, T, E)
        x = x + self.act_emb(a_tm1) + self.done_emb(d_tm1.long()) + self.rew(r_tm1.unsqueeze(-1).float())
        y, new = self.core(torch.relu(x), state if self.cfg.cell == "lstm" else state[0])  # (B, T, hidden)
        new_state: State = tuple(new) if self.cfg.cell == "lstm" else (new,)
        return self.pi(y), self.v(y).squeeze(-1), new_state


class RL2Policy:
    """The frozen network acting in context: its state is the recurrent state and each stream's episode
    count in the current trial.

    `carry` (the default): the recurrent state runs on across the whole evaluation, as AD's context does,
    since a stream keeps one task throughout (AD paper Sec. 4.3), so what the trial found is kept instead of
    searched for again. The network never trained past `trial_episodes` episodes, but on Dark Room the
    carried state holds (RESULTS.md, "RL^2 carried through the evaluation"). `carry=False` resets it every
    `trial_episodes` episodes, as in training (the paper does not say which it evaluates)."""

    def __init__(self, model: RL2Net, carry: bool = True) -> None:
        self.model = model.eval()
        self.k = model.cfg.trial_episodes
        self.carry = carry

    def init_state(self, batch: int) -> tuple[State, Tensor]:
        device = next(self.model.parameters()).device
        return self.model.initial_state(batch, device), torch.zeros(batch, dtype=torch.long, device=device)

    @torch.no_grad()
    def act(
        self, state: tuple[State, Tensor], o_t: Tensor, a_tm1: Tensor, r_tm1: Tensor, done_tm1: Tensor
    ) -> tuple[Tensor, tuple[State, Tensor]]:
        rec, episodes = state
        first = a_tm1 == NO_ACTION  # (B,) a stream's first step: an empty trial already
        episodes = torch.where(first, 0, episodes + done_tm1.long())  # (B,) episodes finished in this trial
        new_trial = (episodes == self.k) & (not self.carry)  # (B,)
        episodes = torch.where(new_trial, 0, episodes)
        keep = (~new_trial).float()[None, :, None]  # (1, B, 1)
        rec = tuple(h * keep for h in rec)
        a = torch.where(first | new_trial, self.model.spec.num_actions, a_tm1)  # (B,) a new trial has no past
        r = torch.where(new_trial, 0.0, r_tm1.float())
        obs = o_t.unsqueeze(1)  # (B, 1, *obs_shape)
        logits, _, rec = self.model(obs, a[:, None], r[:, None], done_tm1[:, None], rec)  # d = 1 starts a trial too
        return logits[:, 0], (rec, episodes)


class RL2:
    """RL^2: trained online (`algodistill rl2`), evaluated frozen like any method's policy."""

    name = "rl2"
    label = "RL^2"
    color = "C4"

    def _online(self) -> UserError:
        return UserError("rl2 is trained online, not on a dataset: use `algodistill rl2 <env>`")

    def data_source(self, run_source: str) -> str:
        raise self._online()

    def build_model(self, cfg: ModelConfig, spec: EnvSpec, generator: torch.Generator | None) -> nn.Module:
        raise self._online()

    def window(self, cfg: ModelConfig) -> tuple[int, int]:
        raise self._online()

    def make_batch(self, windows: Windows, spec: EnvSpec) -> Batch:
        raise self._online()

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> tuple[Tensor, Tensor]:
        raise self._online()

    def policy(self, model: nn.Module) -> RL2Policy:
        assert isinstance(model, RL2Net), type(model)
        return RL2Policy(model)
