"""Env steps per second of the batched Dark Room and Key-to-Door simulators (N = 1, 64, 4096 tasks),
next to a plain Python loop over single-task Gymnasium envs.

    .venv/bin/python benchmarks/envs.py

Steps are counted over tasks (one batched step of N tasks is N env steps) and include the resets at
episode ends. Actions are uniform random and generated before timing. Each figure is the best of a few
repeats (the least disturbed by other processes on a shared machine). Targets (the envs issue): at
least 10 million Dark Room steps/s at N = 4096, and at least 100 times the per-task loop. The loop is
timed on raw (unwrapped) envs, the faster baseline, and with gymnasium.make's default wrappers.

Watermaze, a section of its own: rendered frames per second of the batched env (one frame per task
and step, resets included) at the paper's 72 x 96 (`watermaze`) and at 36 x 48 (`watermaze-small`), for
N = 1, 64, 1024. Target (the Watermaze issue): at least 5,000 frames/s at 72 x 96 with N = 1024 on 2 cores.
Then the sampler's redraw of a training batch from the stored form (`WatermazeFamily.decode_obs`, 32
windows x 101 steps = 3,232 frames): numpy on the CPU, torch on the CPU, and torch on CUDA when there is
a GPU (the trainer draws there; frames per second, the copy of the stored form to the device included).
Exit code 1 if a target is missed.
"""

from __future__ import annotations

import sys
import time

import gymnasium
import numpy as np
import torch

from algodistill.envs import TaskFamily, get_family

FAMILIES = ("darkroom", "keydoor")
BATCH_SIZES = (1, 64, 4096)
LOOP_ENVS = 64
REPEATS = 3
TARGET_STEPS = 1e7  # Dark Room, N = 4096
TARGET_RATIO = 100.0  # batched N = 4096 over the per-task loop
WATERMAZE = ("watermaze", "watermaze-small")  # 72 x 96 (paper Sec. 4.1) and 36 x 48
WATERMAZE_BATCH_SIZES = (1, 64, 1024)
TARGET_FRAMES = 5000.0  # watermaze 72 x 96, N = 1024
DECODE_FRAMES = 32 * 101  # one quick-preset training batch of Watermaze windows


def best_time(run, repeats: int = REPEATS) -> float:
    """Best wall time of `run()` over a few repeats."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def batched_steps_per_s(name: str, N: int, seconds: float = 0.25) -> float:
    f = get_family(name)
    H, A = f.spec.episode_length, f.spec.num_actions
    tasks = f.split("train")[np.arange(N) % len(f.split("train"))]
    env = f.make(tasks, seed=0)
    actions = np.random.default_rng(0).integers(0, A, (4, H, N))  # (episodes, H, N), reused cyclically

    def run(episodes: int) -> None:
        for e in range(episodes):
            env.reset()
            a = actions[e % len(actions)]
            for t in range(H):
                env.step(a[t])

    # Calibrate the number of episodes to about `seconds` per repeat.
    episodes = 1
    while (dt := best_time(lambda n=episodes: run(n), 1)) < seconds / 4:
        episodes *= 4
    episodes = max(1, int(episodes * seconds / dt))
    return episodes * H * N / best_time(lambda: run(episodes))


def loop_steps_per_s(name: str, wrapped: bool, steps: int) -> float:
    """A Python loop over LOOP_ENVS single-task gym envs, `steps` steps each."""
    f = get_family(name)
    tasks = f.split("train")[:LOOP_ENVS]
    envs = [gymnasium.make(f.spec.gym_id, task=int(t)) for t in tasks]
    if not wrapped:
        envs = [e.unwrapped for e in envs]
    actions = np.random.default_rng(0).integers(0, f.spec.num_actions, (steps, LOOP_ENVS)).tolist()

    def run() -> None:
        for i, env in enumerate(envs):
            env.reset(seed=i)
        for a_t in actions:
            for env, a in zip(envs, a_t, strict=True):
                if env.step(a)[3]:  # truncated: the fixed episode length
                    env.reset()

    return steps * LOOP_ENVS / best_time(run)


def frames_per_s(name: str, N: int, seconds: float = 1.0) -> float:
    """Watermaze: batched steps of N tasks per second, times N (each step renders N frames).

    Timed by steps, not whole episodes: one 50-step episode of 1024 tasks takes seconds."""
    f = get_family(name)
    H = f.spec.episode_length
    env = f.make(f.split("train")[np.arange(N) % len(f.split("train"))])
    actions = np.random.default_rng(0).integers(0, f.spec.num_actions, (H, N))  # (H, N)
    clock = [H]  # steps into the current episode, carried across runs

    def run(steps: int) -> None:
        for _ in range(steps):
            if clock[0] == H:
                env.reset()
                clock[0] = 0
            env.step(actions[clock[0]])
            clock[0] += 1

    steps = 1
    while (dt := best_time(lambda n=steps: run(n), 1)) < seconds / 4:
        steps *= 4
    steps = max(1, int(steps * seconds / dt))
    return steps * N / best_time(lambda: run(steps))


def watermaze_section() -> tuple[str, bool]:
    """Print the Watermaze frames/s table; return the target's line and whether it is met."""
    print(f"{'env':<16} {'resolution':<11} {'N':>5} {'frames/s':>12}")
    fps = {}
    for name in WATERMAZE:
        H, W = get_family(name).spec.obs_shape[:2]
        for N in WATERMAZE_BATCH_SIZES:
            fps[name, N] = frames_per_s(name, N)
            print(f"{name:<16} {f'{H}x{W}':<11} {N:>5} {fps[name, N]:>12,.0f}")
    print()
    got = fps["watermaze", 1024]
    return f"watermaze 72x96 batched N=1024 >= {TARGET_FRAMES:,.0f} frames/s ({got:,.0f})", got >= TARGET_FRAMES


def decode_section() -> None:
    """Print frames/s of redrawing a training batch from its stored form, per renderer and device."""
    devices = ["numpy", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'env':<16} {'resolution':<11} {'batch':>5} " + " ".join(f"{d:>12}" for d in devices))
    rng = np.random.default_rng(0)
    radius, bearing = 0.95 * np.sqrt(rng.random(DECODE_FRAMES)), 2 * np.pi * rng.random(DECODE_FRAMES)
    stored = np.stack([radius * np.cos(bearing), radius * np.sin(bearing), 2 * np.pi * rng.random(DECODE_FRAMES)])
    stored = stored.T.astype(np.float32)  # (n, 3) positions uniform over the pool, any heading
    for name in WATERMAZE:
        f = get_family(name)
        fps = []
        for d in devices:

            def run(d: str = d, f: TaskFamily = f) -> None:
                f.decode_obs(stored if d == "numpy" else torch.from_numpy(stored).to(d))
                if d == "cuda":
                    torch.cuda.synchronize()

            run()  # warm-up: the per-device camera, CUDA kernels
            fps.append(DECODE_FRAMES / best_time(run))
        H, W = f.spec.obs_shape[:2]
        print(f"{name:<16} {f'{H}x{W}':<11} {DECODE_FRAMES:>5} " + " ".join(f"{v:>12,.0f}" for v in fps))
    print()


def main() -> int:
    rows: list[tuple[str, str, float]] = []
    results: dict[tuple[str, str], float] = {}
    for name in FAMILIES:
        for N in BATCH_SIZES:
            results[name, f"batched N={N}"] = batched_steps_per_s(name, N)
        steps = 5 * get_family(name).spec.episode_length  # five episodes per env
        results[name, f"gym loop x{LOOP_ENVS}, unwrapped"] = loop_steps_per_s(name, wrapped=False, steps=steps)
        results[name, f"gym loop x{LOOP_ENVS}, gymnasium.make"] = loop_steps_per_s(name, wrapped=True, steps=steps)
        rows += [(name, how, v) for (fam, how), v in results.items() if fam == name]

    loop = {name: results[name, f"gym loop x{LOOP_ENVS}, unwrapped"] for name in FAMILIES}
    print(f"{'env':<10} {'simulator':<34} {'steps/s':>14} {'x loop':>9}")
    for name, how, v in rows:
        print(f"{name:<10} {how:<34} {v:>14,.0f} {v / loop[name]:>8.1f}x")
    print()

    checks = [
        (
            f"darkroom batched N=4096 >= {TARGET_STEPS:.0e} steps/s",
            results["darkroom", "batched N=4096"] >= TARGET_STEPS,
        )
    ]
    for name in FAMILIES:
        ratio = results[name, "batched N=4096"] / loop[name]
        checks.append((f"{name} batched N=4096 >= {TARGET_RATIO:.0f}x the per-task loop ({ratio:.0f}x)", ratio >= 100))
    checks.append(watermaze_section())
    decode_section()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
