"""Expert Distillation (paper Sec. 4.2, App. B): AD's model, tokenisation and loss on expert histories.

ED has the same across-episode context as AD, but every history it sees is the optimal policy acting
from the first step, so its targets are the expert's actions and its context never shows learning.
It is the control for AD: a model that imitates a policy, not an algorithm, should not improve in
context.
"""

from __future__ import annotations

from algodistill.methods.ad import AD


class ED(AD):
    """AD's machinery on the expert's histories (source `expert`)."""

    name = "ed"
    label = "ED"
    color = "C3"

    def data_source(self, run_source: str) -> str:
        return "expert"
