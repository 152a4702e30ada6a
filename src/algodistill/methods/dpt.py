"""Decision-Pretrained Transformer (Lee et al. 2023, "Supervised Pretraining Can Learn In-Context
Reinforcement Learning"): predict the *optimal* action for a query state, given in-context transitions
of the same task.

DPT pretrains on (an in-context dataset D of the task, a query state s_q, the optimal action a*(s_q))
and is deployed online with the query being the current state and D the transitions so far, sampling
its actions from the predicted distribution (posterior sampling, Lee et al. Sec. 4). We keep AD's
backbone, tokenisation and KV-cached policy (`methods.ad`), so the two differ only in their targets:
at every position t of a window of the source's history the target is a*(o_t), the env's optimal
action at o_t for the history's task (`TaskFamily.optimal_action`), instead of the source's a_t.

Departures (docs/fidelity.md): the query state of a position is the observation the source reached
there, not a state drawn independently of the context, so queries follow the source's visits; and the
context holds the steps before the query in order (a learning history), where Lee et al. shuffle D. The
data is the run's source, as AD's, so the two compare on the same histories. Needs an env whose
observation fixes the optimal action (Dark Room, Dark Room Hard); the family refuses others.
"""

from __future__ import annotations

import numpy as np
import torch

from algodistill.envs import get_family
from algodistill.envs.spec import EnvSpec
from algodistill.methods.ad import AD
from algodistill.methods.base import Batch
from algodistill.sampler import Windows


class DPT(AD):
    """AD's machinery trained on the optimal action at each observation (module docstring)."""

    name = "dpt"
    label = "DPT"
    color = "C5"

    def make_batch(self, windows: Windows, spec: EnvSpec) -> Batch:
        batch = super().make_batch(windows, spec)
        obs_t = batch.inputs[0]  # (B, c, *obs_shape) the query of each position
        a_star = get_family(spec.name).optimal_action(windows.task_ids.numpy(), obs_t.numpy())  # (B, c)
        return Batch(batch.inputs, torch.from_numpy(np.asarray(a_star, dtype=np.int64)), batch.mask)
