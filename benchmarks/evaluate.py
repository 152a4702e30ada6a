"""In-context evaluation throughput: KV cache vs recomputing the whole context at every step.

Prints env steps per second summed over all parallel streams for the quick-preset model shape at
c = 80 and c = 200 steps, with the KV cache (`ADTransformer.step`) and with a full forward over the
last c steps at each step (what the public implementations do, peers.md). Target: the cache wins by
at least 10x at c = 200.

    .venv/bin/python benchmarks/evaluate.py [--streams 80] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from algodistill.envs import get_family
from algodistill.evaluate import rollout_model
from algodistill.model import ADTransformer
from algodistill.train import QUICK_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=80, help="parallel (task, seed) streams (paper: 100)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    family = get_family("darkroom")
    tasks = np.resize(family.split("test"), args.streams)
    H = family.spec.episode_length
    print(f"darkroom, {args.streams} streams, quick model shape, {args.threads} thread(s), CPU")
    print(f"{'context':>8} {'mode':>10} {'env steps':>10} {'seconds':>8} {'env steps/s':>12}")
    speed: dict[tuple[int, str], float] = {}
    for c in (80, 200):
        model = ADTransformer(dataclasses.replace(QUICK_MODEL, context=c), family.spec).eval()
        episodes = 2 * c // H  # the window fills in the first half, then slides
        for mode in ("cache", "recompute"):
            t0 = time.perf_counter()
            rollout_model(model, family, tasks, episodes, use_cache=mode == "cache")
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
