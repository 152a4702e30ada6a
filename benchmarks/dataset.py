"""Dataset benchmark: bytes per transition on disk and random-window read throughput.

Builds a realistic Dark Room dataset (tabular epsilon-greedy Q-learning batched over learners, so the
histories go from random walks to converged goal-seeking like a real source's), writes it with
`algodistill.dataset`, then times `algodistill.sampler.Dataset.sample` in RAM and lazy (HDF5) mode.

Each case prints two figures from the same timed loop, for the windows AD trains on (`AD.window`: c + 1
steps, one of them the lead step before the context):
- "sample": the raw sampler alone, `ds.sample(rng, B, c + 1, subsample, lead=1)` -> `Windows`;
- "+ make_batch": that plus AD's tokenisation, `get_method("ad").make_batch(windows, spec)`, i.e. a
  training batch of (o_t, a_tm1, r_tm1) inputs and a_t targets (what the old `Dataset.sample` returned).

Targets: >= 10,000 random 80-step windows per second; <= 3 bytes per transition on disk.

    .venv/bin/python benchmarks/dataset.py                       # 256 learners x 1000 episodes (~5M steps)
    .venv/bin/python benchmarks/dataset.py --learners 64 --episodes 200   # quick
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from algodistill import dataset as D
from algodistill import envs, sampler
from algodistill.methods import get_method


@dataclass
class Args:
    learners: int = 256
    """learning histories (one Dark Room task each, cycling over the train split)"""
    episodes: int = 1000
    """episodes per history (20 steps each)"""
    shard_size: int = 64
    """learners per shard file"""
    batch_size: int = 64
    """windows per `sample` call"""
    context: int = 80
    """window length in steps (the context c; the sampler draws c + 1 steps, lead 1)"""
    seconds: float = 2.0
    """time spent sampling per measurement"""


def q_learning_histories(n: int, episodes: int, seed: int = 0) -> D.Histories:
    """Tabular Q-learning on n Dark Room tasks; epsilon decays from 1 to 0.05 over the first 60% of episodes."""
    family = envs.get_family("darkroom")
    spec = family.spec
    size, H, A = spec.obs_high[0], spec.episode_length, spec.num_actions
    tasks = np.resize(family.split("train"), n)  # (n,)
    env = family.make(tasks, seed=seed)
    rng = np.random.default_rng(seed)
    Q = np.zeros((n, size * size, A))  # (n, S, A)
    T = episodes * H
    obs, act = np.empty((n, T, 2), np.uint8), np.empty((n, T), np.uint8)
    rew, done = np.empty((n, T), np.float32), np.empty((n, T), bool)
    rows = np.arange(n)
    for e in range(episodes):
        eps = max(0.05, 1.0 - e / (0.6 * episodes))
        o_t = env.reset()  # (n, 2)
        for h in range(H):
            t = e * H + h
            s_t = o_t[:, 0].astype(np.int64) * size + o_t[:, 1]  # (n,) cell index
            greedy = np.argmax(Q[rows, s_t] + 1e-6 * rng.random((n, A)), axis=1)  # random tie-break
            a_t = np.where(rng.random(n) < eps, rng.integers(0, A, n), greedy)  # (n,)
            o_tp1, r_t, d_t = env.step(a_t)
            s_tp1 = o_tp1[:, 0].astype(np.int64) * size + o_tp1[:, 1]
            target = r_t + 0.9 * Q[rows, s_tp1].max(1) * (~d_t)  # (n,)
            Q[rows, s_t, a_t] += 0.3 * (target - Q[rows, s_t, a_t])
            obs[:, t], act[:, t], rew[:, t], done[:, t] = o_t, a_t, r_t, d_t
            o_t = o_tp1
    return D.Histories(obs, act, rew, done, tasks.astype(np.int64))


def windows_per_second(ds: sampler.Dataset, args: Args, subsample: int) -> tuple[float, float]:
    """(windows/s of the raw sampler, windows/s of sampler + AD's make_batch), timed in the same loop."""
    ad, spec = get_method("ad"), envs.get_family("darkroom").spec
    length, lead = args.context + 1, 1  # AD's window: the context and the step before it
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.2 * args.seconds:  # warm up: lazy mode opens files, fills the chunk cache
        ad.make_batch(ds.sample(rng, args.batch_size, length, subsample, lead), spec)
    n, sample_s, batch_s, t0 = 0, 0.0, 0.0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        t1 = time.perf_counter()
        windows = ds.sample(rng, args.batch_size, length, subsample, lead)
        t2 = time.perf_counter()
        ad.make_batch(windows, spec)
        sample_s, batch_s = sample_s + t2 - t1, batch_s + time.perf_counter() - t2
        n += args.batch_size
    return n / sample_s, n / (sample_s + batch_s)


def main(args: Args) -> None:
    t0 = time.perf_counter()
    hist = q_learning_histories(args.learners, args.episodes)
    N, T = hist.num_histories, hist.T
    returns = hist.rewards.reshape(N, args.episodes, -1).sum(-1)  # (N, E)
    print(
        f"generated {N} x {T} = {N * T:,} transitions in {time.perf_counter() - t0:.1f} s "
        f"(return: first 10% of episodes {returns[:, : args.episodes // 10].mean():.2f}, "
        f"last 10% {returns[:, -args.episodes // 10 :].mean():.2f})"
    )
    meta = {"spec": envs.get_family("darkroom").spec.record(), "source": {"name": "q-learning"}, "seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        for i, s in enumerate(range(0, N, args.shard_size)):
            part = D.Histories(
                *(getattr(hist, f)[s : s + args.shard_size] for f in ("obs", "actions", "rewards", "dones", "task_ids"))
            )
            D.write_shard(out, i, part, learner_start=s, num_histories=N, meta=meta, config={"bench": True})
        D.finalize(out)
        write_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.glob("shard-*.h5"))
        print(
            f"written in {write_s:.1f} s; on disk {size / 2**20:.1f} MiB = {size / (N * T):.2f} bytes/transition "
            f"(target <= 3; raw uint8 fields would be {2 + 1 + 1 + 1})"
        )
        t0 = time.perf_counter()
        ram = sampler.Dataset.open(out)
        print(
            f"Dataset.open (sha256 of every shard + load into RAM): {time.perf_counter() - t0:.2f} s, "
            f"in_ram={ram.in_ram}"
        )
        # Lazy: with the default chunk cache (the dataset fits in it), then with none, so that every read
        # decompresses its chunks: the worst case, a dataset much larger than the cache.
        for name, cache in (("in RAM", None), ("lazy, chunk cache", sampler.CHUNK_CACHE_BYTES), ("lazy, no cache", 0)):
            if cache is not None:
                sampler.CHUNK_CACHE_BYTES = cache  # read when a shard is first opened, i.e. in the warm-up below
            ds = ram if cache is None else sampler.Dataset.open(out, max_ram_bytes=0, verify=False)
            for subsample in (1, 10):
                raw, batch = windows_per_second(ds, args, subsample)
                case = f"sample B={args.batch_size} c={args.context} subsample={subsample:>2} {name:<17}"
                print(f"{case}: {raw:>9,.0f} windows/s (target >= 10,000)")
                print(f"{'  + make_batch':<{len(case)}}: {batch:>9,.0f} windows/s")
            ds.close()


if __name__ == "__main__":
    main(tyro.cli(Args))
