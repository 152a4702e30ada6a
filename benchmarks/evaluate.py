"""In-context evaluation throughput: KV cache vs recomputing the whole context at every step.

Prints env steps per second summed over all parallel streams for the quick-preset model shape at
c = 80 and c = 200 steps, through `algodistill.evaluate.rollout_policy`, with the KV cache (AD's
policy, `get_method("ad").policy(model)`: `ADTransformer.step`) and with a full forward over the
last c steps at each step (`RecomputePolicy` below, what the public implementations do, peers.md).
Target: the cache wins by at least 10x at c = 200.

    .venv/bin/python benchmarks/evaluate.py [--streams 80] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from torch import Tensor

from algodistill.envs import get_family
from algodistill.evaluate import rollout_policy
from algodistill.methods import NO_ACTION, Policy, get_method
from algodistill.model import ADTransformer
from algodistill.presets import QUICK_MODEL

Window = list[tuple[Tensor, Tensor, Tensor]]  # the last <= c steps' (o_t, a_tm1, r_tm1), each (B, ...)


class RecomputePolicy:
    """AD without a cache: at every step the whole window of the last c steps' inputs goes through the model.

    Until the window fills it sees the same context as the cache; after that it slides one step at a
    time, where the cache re-prefills (learned positions) or rolls (rope), see `algodistill.kvcache`.
    """

    def __init__(self, model: ADTransformer) -> None:
        self.model = model.eval()
        self.start = model.spec.num_actions  # AD's start index: no previous action
        self.context = model.cfg.context

    def init_state(self, batch: int) -> Window:
        return []  # an empty context for every stream

    @torch.no_grad()
    def act(self, state: Window, o_t: Tensor, a_tm1: Tensor, r_tm1: Tensor, done_tm1: Tensor) -> tuple[Tensor, Window]:
        a_tm1 = torch.where(a_tm1 == NO_ACTION, self.start, a_tm1)  # (B,)
        c = self.context
        state = [*state[-(c - 1) :], (o_t, a_tm1, r_tm1)] if c > 1 else [(o_t, a_tm1, r_tm1)]
        obs, a, r = (torch.stack(x, dim=1) for x in zip(*state, strict=True))  # (B, <=c, ...)
        return self.model(obs, a, r)[:, -1], state  # (B, A)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=80, help="parallel (task, seed) streams (paper: 100)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    family = get_family("darkroom")
    tasks = np.resize(family.split("test"), args.streams)
    H = family.spec.episode_length
    cpu = torch.device("cpu")
    print(f"darkroom, {args.streams} streams, quick model shape, {args.threads} thread(s), CPU")
    print(f"{'context':>8} {'mode':>10} {'env steps':>10} {'seconds':>8} {'env steps/s':>12}")
    speed: dict[tuple[int, str], float] = {}
    for c in (80, 200):
        model = ADTransformer(dataclasses.replace(QUICK_MODEL, context=c), family.spec).eval()
        episodes = 2 * c // H  # the window fills in the first half, then slides
        policies: dict[str, Policy] = {"cache": get_method("ad").policy(model), "recompute": RecomputePolicy(model)}
        for mode, policy in policies.items():
            t0 = time.perf_counter()
            rollout_policy(policy, family, tasks, episodes, device=cpu)
            seconds = time.perf_counter() - t0
            steps = args.streams * episodes * H
            speed[c, mode] = steps / seconds
            print(f"{c:>8} {mode:>10} {steps:>10} {seconds:>8.2f} {speed[c, mode]:>12,.0f}")
    for c in (80, 200):
        ratio = speed[c, "cache"] / speed[c, "recompute"]
        verdict = "PASS" if c != 200 or ratio >= 10 else "FAIL"
        print(f"c = {c}: the cache is {ratio:.1f}x faster" + (f"  [{verdict}: target >= 10x]" if c == 200 else ""))


if __name__ == "__main__":
    main()
