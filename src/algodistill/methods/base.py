"""The method seam: what every method (AD, ED; later RL^2, DPT) provides, and the loss they share.

A method is a module in this package with one object that says

- which histories it trains on (`data_source`: the run's source for AD, the expert for ED),
- how its model is built from the model config and the env's spec (`build_model`),
- which raw windows a training batch needs (`window`) and how they become model inputs, targets and a
  loss mask (`make_batch`): the tokenisation is the method's own,
- its loss (`loss`),
- how the trained model acts from an empty context (`policy`): a `Policy` whose state (AD: the KV
  cache) is created by `init_state` and threaded through `act`.

The trainer, the evaluator and the pipeline read only this interface and the registry
(`algodistill.methods.get_method`); none of them tests for a method's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algodistill.envs.spec import EnvSpec
from algodistill.model import ModelConfig
from algodistill.sampler import Windows

NO_ACTION = -1
"""a_tm1 at the first step of an evaluation stream, which has no previous action (each method encodes
it its own way: AD with a dedicated start token)."""


@dataclass(frozen=True)
class Batch:
    """A training batch as a method's model reads it."""

    inputs: tuple[Tensor, ...]  # the model's positional arguments, each (B, T, ...)
    targets: Tensor  # (B, T) long: the action to predict at each position
    mask: Tensor  # (B, T) bool: the positions that count in the loss

    def to(self, device: torch.device) -> Batch:
        move = [x.to(device, non_blocking=True) for x in (*self.inputs, self.targets, self.mask)]
        return dataclasses.replace(self, inputs=tuple(move[:-2]), targets=move[-2], mask=move[-1])


class Policy(Protocol):
    """A trained model acting in B streams at once, from an empty context, with frozen weights."""

    def init_state(self, batch: int) -> Any:
        """The state of `batch` fresh streams (an empty context)."""
        ...

    def act(self, state: Any, o_t: Tensor, a_tm1: Tensor, r_tm1: Tensor, done_tm1: Tensor) -> tuple[Tensor, Any]:
        """Logits (B, A) for a_t, and the next state.

        o_t (B, *obs_shape) as the env gives it; a_tm1 (B,) long, `NO_ACTION` at a stream's first step;
        r_tm1 (B,) float32; done_tm1 (B,) bool, True when step t starts an episode (and at the first step).
        """
        ...


class Method(Protocol):
    """A way to train a model on learning histories and run it in context (module docstring)."""

    name: str
    """registry name and CLI choice, e.g. "ad\""""
    label: str
    """name in plots and reports, e.g. "AD\""""
    color: str
    """matplotlib colour of its curves"""

    def data_source(self, run_source: str) -> str:
        """The source algorithm whose histories it trains on, given the run's source."""
        ...

    def build_model(self, cfg: ModelConfig, spec: EnvSpec, generator: torch.Generator | None) -> nn.Module:
        """A freshly initialised model (UserError if `cfg` cannot read the observations of `spec`)."""
        ...

    def window(self, cfg: ModelConfig) -> tuple[int, int]:
        """(length, lead) of the raw windows a batch is made from (`algodistill.sampler.Dataset.sample`)."""
        ...

    def make_batch(self, windows: Windows, spec: EnvSpec) -> Batch:
        """Model inputs, targets and loss mask from raw windows."""
        ...

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> tuple[Tensor, Tensor]:
        """(loss, accuracy) of the model on a batch; the loss is what the trainer minimises."""
        ...

    def policy(self, model: nn.Module) -> Policy:
        """The model acting in context (the policy puts it in eval mode)."""
        ...


def masked_nll(logits: Tensor, targets: Tensor, mask: Tensor, label_smoothing: float) -> tuple[Tensor, Tensor]:
    """Mean negative log-likelihood of the targets over the masked positions, and the action accuracy there.

    logits (B, T, A), targets (B, T) long, mask (B, T) bool. Label smoothing as in paper App. F. A batch
    with no masked position gives 0 (weighted sums, not boolean indexing: no host sync).
    """
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none", label_smoothing=label_smoothing)
    w = mask.float()  # (B, T)
    count = w.sum().clamp(min=1.0)
    accuracy = ((logits.detach().argmax(-1) == targets).float() * w).sum() / count
    return (nll * w).sum() / count, accuracy
