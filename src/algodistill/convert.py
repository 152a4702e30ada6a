"""`algodistill convert`: a peer's published learning histories, rewritten as an algodistill dataset.

Layouts and mapping in docs/dataset.md ("Converting peers' datasets"): ad-eps (corl-team/ad-eps) run
directories of `*.metadata` JSON (goals, file order) and `.npz` files, whose grid is ours with the axes
named differently (their (row, col) is our (x, y), so a state index is our cell, a goal our task id,
and only the action numbers change); and the XLand-100B HDF5 layout (dunnolab/xland-minigrid-datasets),
one group per task (`ruleset-id`) of (histories, T, ...) datasets, holding data of one of our envs.

A plan (metadata, HDF5 shapes and attributes, every input's sha256) fixes N and the config; then one
part at a time (an ad-eps history, an XLand group) is loaded, checked against our env (shapes, ranges,
fixed-length episodes, and in the grid worlds a replay of every move and reward) and written as shards
into `<out>.tmp-<pid>`, renamed onto `out` at the end: a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import h5py
import numpy as np
import tyro

from algodistill import __version__, dataset
from algodistill.atomic import atomic_dir, sha256_file
from algodistill.dataset import Histories
from algodistill.envs import TaskFamily, get_family
from algodistill.envs.darkroom import DarkRoomFamily
from algodistill.envs.keydoor import KeyToDoorFamily
from algodistill.errors import UserError, check_output
from algodistill.progress import Bar

FORMATS = ("ad-eps", "xland")
_SHARD_HISTORIES = 64  # histories per shard file: bounds the memory of one write
# ad-eps action -> ours. Theirs: 0 no-op, 1 row-1, 2 col+1, 3 row+1, 4 col-1; ours: 0 x-1, 1 x+1, 2 y+1, 3 y-1, 4 no-op
_AD_EPS_ACTIONS = np.array([4, 0, 2, 1, 3])
_XLAND_FIELDS = ("states", "actions", "rewards", "dones")
Grid = DarkRoomFamily | KeyToDoorFamily
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]  # obs, actions, rewards, dones (n, T, ...)


@dataclass(frozen=True)
class ConvertConfig:
    """Convert a peer's published learning-history dataset into an algodistill dataset (manifest, checksums, spec)."""

    format: Annotated[Literal["ad-eps", "xland"], tyro.conf.Positional]
    """the peer's layout: ad-eps (corl-team/ad-eps .metadata + .npz) or xland (XLand-100B HDF5)"""
    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")]
    """input: an ad-eps directory (or one .metadata file), or an .hdf5 file in the XLand layout"""
    out: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")]
    """output dataset directory; must not exist (convert never overwrites)"""
    env: str = "darkroom"
    """task family of the data: darkroom, darkroom-hard or keydoor (xland also bandit)"""
    split: str = "train"
    """split of env that every history's task must be in (training reads only 'train' data)"""
    drop_other_tasks: bool = False
    """leave out the histories of tasks outside --split instead of refusing the input"""
    quiet: bool = False
    """no progress bar (stderr) and no summary line"""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"format={self.format!r} is unknown: choose one of {', '.join(FORMATS)}")
        family = get_family(self.env)  # UserError listing the envs
        if self.format == "ad-eps" and not isinstance(family, Grid):
            raise UserError(f"env={self.env!r} has no ad-eps data: pass --env darkroom, darkroom-hard or keydoor")
        family.split(self.split)  # UserError naming the splits
        if not self.src.exists():
            raise UserError(f"src={self.src} does not exist: pass the peer's dataset file or directory")
        _check_new(self.out)
        check_output(self.out, "out", directory=True)


def _check_new(out: Path) -> None:
    if out.exists():
        raise UserError(f"out={out} exists: convert never overwrites; choose a new output path or delete it")


# ----------------------------------------------------------------------------- plan: what the input holds


@dataclass(frozen=True)
class _Part:
    """One piece of the input loaded at once: an ad-eps learning history, or an XLand group."""

    where: str  # the file (and group) that error messages name
    task_ids: np.ndarray  # (n,) our task ids of its histories
    load: Callable[[], Arrays]


def _plan_ad_eps(src: Path, family: Grid) -> tuple[list[_Part], list[Path], dict[str, Any]]:
    """The runs under `src`: one part per learning history, every file to read, the peer's labels."""
    if src.is_dir():
        runs = sorted(src.rglob("*.metadata"))
        if not runs:
            raise UserError(f"src={src} holds no *.metadata file: pass a directory written by ad-eps's generator")
    elif src.suffix == ".metadata":
        runs = [src]
    elif h5py.is_hdf5(src):
        raise UserError(f"src={src} is an HDF5 file, not an ad-eps run: pass format xland")
    else:
        raise UserError(f"src={src} is not an ad-eps run: pass the directory holding its .metadata and .npz files")
    parts, files, algorithms = [], [], set()
    goal_shape = (2, 2) if isinstance(family, KeyToDoorFamily) else (2,)  # [key, door] or the goal, as [row, col]
    for run in runs:
        try:
            meta = json.loads(run.read_text())
            names, goal = [str(n) for n in meta["ordered_trajectories"]], np.asarray(meta["goal"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{run} is not ad-eps metadata ({e!r}): it needs 'goal', 'ordered_trajectories'") from None
        npzs = [run.parent / n for n in names]
        if missing := [p.name for p in npzs if not p.is_file()]:
            raise UserError(f"{run} lists {missing[:3]}, missing in {run.parent}: copy the whole run directory")
        files += [run, *npzs]
        algorithms.add(str(meta.get("algorithm")))
        if goal.shape == goal_shape:  # Q-learning: one history cut into consecutive chunks
            histories, goals = [npzs], goal[None]
        elif goal.shape == (len(npzs), *goal_shape):  # opt-eps: one history (one goal) per file
            histories, goals = [[p] for p in npzs], goal
        else:
            want = "[row, col]" if len(goal_shape) == 1 else "[[key row, col], [door row, col]]"
            raise UserError(
                f"{run}: 'goal' has shape {goal.shape}, not one {want} for the run or one per file as "
                f"{family.spec.name} needs: pass the --env of the data"
            )
        for chunks, g in zip(histories, goals, strict=True):
            if g.dtype.kind not in "iuf" or (g != np.round(g)).any() or (g < 0).any() or (g >= family.size).any():
                raise UserError(
                    f"{run}: goal {g.tolist()} lies outside algodistill's {family.size}x{family.size} "
                    f"{family.spec.name}: the data comes from another room and cannot be converted"
                )
            cells = g.astype(np.int64) @ np.array([family.size, 1])  # their row * size + col is our cell
            task = int(cells if cells.ndim == 0 else cells[0] * family.size**2 + cells[1])  # keydoor: key, door
            where = str(chunks[0]) if len(chunks) == 1 else f"{run} (files {chunks[0].name}, ...)"
            parts.append(_Part(where, np.array([task]), partial(_load_ad_eps, chunks, family)))
    return parts, files, {"algorithms": sorted(algorithms)}


def _npz(p: Path) -> dict[str, np.ndarray]:
    """The arrays of an ad-eps .npz. Never unpickles (allow_pickle=False): a downloaded file runs no code, and
    the object arrays of runs with episodes of different lengths are refused here."""
    try:
        with np.load(p) as z:
            if missing := [k for k in ("states", "actions", "rewards") if k not in z.files]:
                raise UserError(f"{p} has no array {missing}: an ad-eps .npz holds states, actions, rewards (dones)")
            return {k: z[k] for k in _XLAND_FIELDS if k in z.files}
    except ValueError as e:  # "Object arrays cannot be loaded when allow_pickle=False": ragged episodes
        if "Object arrays" in str(e):
            raise UserError(
                f"{p} holds ragged episodes (object arrays): runs whose episodes end early (ad-eps Key-to-Door, "
                "Dark Room Hard) cannot be converted to algodistill's fixed-length episodes"
            ) from None
        raise UserError(f"{p} cannot be read as .npz ({e}): pass the run's trajectories_*.npz") from None
    except (OSError, EOFError, TypeError, zipfile.BadZipFile) as e:  # TypeError: an .npy, not an .npz
        raise UserError(f"{p} cannot be read as .npz ({type(e).__name__}): pass the run's trajectories_*.npz") from None


def _load_ad_eps(chunks: list[Path], family: Grid) -> Arrays:
    """One ad-eps learning history (its chunks in order) in our encoding: (1, T, ...) arrays."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _XLAND_FIELDS}
    for p in chunks:
        z = _npz(p)  # each (episodes, H) or (steps, 1)
        if any(a.shape != z["states"].shape for a in z.values()) or z["states"].ndim > 2:
            raise UserError(f"{p}: {', '.join(f'{k} {a.shape}' for k, a in z.items())} must share one 2-D shape")
        if "dones" not in z and z["states"].ndim == 2 and z["states"].shape[1] > 1:  # no dones: a row per episode
            z["dones"] = np.zeros(z["states"].shape, bool)
            z["dones"][:, -1] = True
        for k, a in z.items():
            parts[k].append(a.ravel())
    cells = _exact(np.concatenate(parts["states"]), np.dtype(np.int64), chunks[0], "states")  # (T,)
    a = _exact(np.concatenate(parts["actions"]), np.dtype(np.int64), chunks[0], "actions")  # (T,)
    if cells.min() < 0 or cells.max() >= family.size**2 or a.min() < 0 or a.max() >= len(_AD_EPS_ACTIONS):
        raise UserError(
            f"{chunks[0]}: states in [{cells.min()}, {cells.max()}] or actions in [{a.min()}, {a.max()}] do not fit "
            f"{family.spec.name} ({family.size**2} cells, 5 actions): pass the --env of the data"
        )
    dones = np.concatenate(parts["dones"])[None] if len(parts["dones"]) == len(chunks) else None
    return family.xy[cells][None], _AD_EPS_ACTIONS[a][None], np.concatenate(parts["rewards"])[None], dones


def _plan_xland(src: Path, family: TaskFamily) -> tuple[list[_Part], list[Path], dict[str, Any]]:
    """The groups of `src`, one part each (all its histories have the group's task), and the peer's labels."""
    if src.is_dir():
        raise UserError(f"src={src} is a directory: format xland reads one .hdf5 file (an ad-eps run: format ad-eps)")
    if not h5py.is_hdf5(src):
        fix = "an .npz (zip) file: pass format ad-eps" if zipfile.is_zipfile(src) else "not an HDF5 file"
        raise UserError(f"src={src} is {fix} (format xland reads one .hdf5 file, one group per task)")
    spec, parts, ids = family.spec, [], set()
    with _hdf5(src) as f:
        # Combined files hold groups "0", "1", ...; one collection run holds the datasets at the root.
        names = [""] if "states" in f else sorted(f, key=lambda k: (len(k), k))  # "2" before "10"
        for name in names:
            g, where = f[name] if name else f, f"{src}:/{name}"
            if not isinstance(g, h5py.Group) or any(k not in g for k in _XLAND_FIELDS):
                raise UserError(f"{where} is not an XLand task group: it needs datasets {list(_XLAND_FIELDS)}")
            rid, env_id = g.attrs.get("ruleset-id"), g.attrs.get("env-id")
            env_id = env_id.decode() if isinstance(env_id, bytes) else env_id  # fixed-length strings read as bytes
            if rid is None or np.ndim(rid) or np.asarray(rid).dtype.kind not in "iu":
                raise UserError(f"{where} has no integer attribute 'ruleset-id': set it to the {spec.name} task id")
            if env_id is not None and str(env_id) not in (spec.name, spec.gym_id):
                raise UserError(
                    f"{where} holds {env_id} data (attribute env-id), which has no algodistill env: convert files "
                    f"holding {spec.name} data (env-id {spec.gym_id} or none)"
                )
            if not 0 <= int(rid) < spec.num_tasks:
                raise UserError(f"{where}: ruleset-id {int(rid)} is not a {spec.name} task id in [0, {spec.num_tasks})")
            shape = {k: g[k].shape for k in _XLAND_FIELDS}
            nt = shape["actions"]  # (n, T)
            if len(nt) != 2 or shape["states"] != (*nt, *spec.obs_shape) or {shape["rewards"], shape["dones"]} != {nt}:
                raise UserError(
                    f"{where}: shapes {shape} do not fit {spec.name}: states (n, T, *{spec.obs_shape}), others (n, T)"
                )
            ids.add(f"{env_id}/{g.attrs.get('benchmark-id')}")
            parts.append(_Part(where, np.full(nt[0], int(rid)), partial(_load_xland, src, name)))
    return parts, [src], {"env-id/benchmark-id": sorted(ids)}


def _hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path} cannot be read as HDF5 ({e}): download it again") from None


def _load_xland(src: Path, name: str) -> Arrays:
    with _hdf5(src) as f:
        g = f[name] if name else f
        try:
            s, a, r, d = (g[k][:] for k in _XLAND_FIELDS)  # (n, T, *obs_shape), then (n, T) each
        except OSError as e:  # a failed checksum or decompression
            raise UserError(f"{src}:/{name} cannot be read ({e}): download it again") from None
    return s, a, r, d


# ----------------------------------------------------------------------------- checks against our env


def _exact(a: np.ndarray, dtype: np.dtype, where: object, name: str) -> np.ndarray:
    """`a` as `dtype`, or a UserError if that changes a value (fractions, NaN, out-of-range numbers)."""
    with np.errstate(invalid="ignore", over="ignore"):
        b = a.astype(dtype)
    if a.dtype.kind not in "biuf" or not np.array_equal(b, a):
        raise UserError(f"{where}: {name} ({a.dtype}) are not all exact {dtype} values: the file is not in the format")
    return b


def _replay_problem(family: Grid, task: int, cells: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> str | None:
    """Where one history breaks our env's rules (start cell, moves, rewards); None if our env could have made it."""
    H = family.spec.episode_length
    c, a, r = (x.reshape(-1, H) for x in (cells, actions, rewards))  # (E, H) each: o_t as a cell, a_t, r_t
    nxt = family.next_cell[c, a]  # (E, H) the cell a_t leads to
    t = np.arange(H)
    if isinstance(family, DarkRoomFamily):
        off = c[:, 0] != family.centre  # (E,) episodes that do not start at the centre
        hit = nxt == task
        want = hit & (np.cumsum(hit, axis=1) == 1) if family.hard else hit  # Hard pays the first visit only
    else:  # Key-to-Door: any start; the key the first time, then the door the first time after the key
        off = np.zeros(len(c), bool)
        key, door = divmod(task, family.size**2)
        t_key = np.where((nxt == key).any(1), (nxt == key).argmax(1), H)  # (E,)
        opened = (nxt == door) & (t[None] > t_key[:, None])  # (E, H)
        t_door = np.where(opened.any(1), opened.argmax(1), H)  # (E,)
        want = (t[None] == t_key[:, None]) | (t[None] == t_door[:, None])
    xy = family.xy.tolist()
    if off.any():
        return f"episode {off.argmax()} starts at {xy[c[off.argmax(), 0]]}, not at the centre"
    if (moved := nxt[:, :-1] != c[:, 1:]).any():
        e, s = np.argwhere(moved)[0]
        return f"step {e * H + s}: action {a[e, s]} leads from {xy[c[e, s]]} to {xy[c[e, s + 1]]}"
    if (paid := r != want).any():
        e, s = np.argwhere(paid)[0]
        return f"step {e * H + s}: reward {r[e, s]:g} where algodistill's {family.spec.name} pays {int(want[e, s])}"
    return None


def _histories(family: TaskFamily, part: _Part, keep: np.ndarray) -> Histories:
    """The kept histories of one part, checked against our env and in our dtypes."""
    spec, H = family.spec, family.spec.episode_length
    obs, actions, rewards, dones = part.load()
    obs, actions, rewards, dones = obs[keep], actions[keep], rewards[keep], None if dones is None else dones[keep]
    obs = _exact(obs, np.dtype(spec.obs_dtype), part.where, "observations")  # (n, T, *obs_shape)
    actions = _exact(actions, np.dtype(np.uint8), part.where, "actions")  # (n, T)
    rewards = _exact(rewards, np.dtype(np.float32), part.where, "rewards")  # (n, T)
    n, T = actions.shape
    if spec.obs_high is not None and (obs.reshape(n, T, -1) >= np.array(spec.obs_high)).any():
        raise UserError(f"{part.where}: observations exceed {spec.obs_high}, the bounds of {spec.name}")
    if actions.size and actions.max() >= spec.num_actions:
        raise UserError(f"{part.where}: action {actions.max()} is out of range: {spec.name} has {spec.num_actions}")
    if not np.isfinite(rewards).all():
        raise UserError(f"{part.where}: a reward is not finite: the file is corrupt")
    ends = (np.arange(T) + 1) % H == 0  # (T,) our fixed-length episodes
    if T == 0 or T % H or (dones is not None and (dones.astype(bool) != ends).any()):
        first = int(np.argmax(dones[0])) + 1 if dones is not None and dones.any() else T
        raise UserError(f"{part.where}: T={T}, first episode {first} steps: {spec.name} needs fixed {H}-step episodes")
    if isinstance(family, Grid):
        cells = obs[..., 0].astype(np.int64) * family.size + obs[..., 1]  # (n, T)
        for i, task in enumerate(part.task_ids[keep]):
            if (problem := _replay_problem(family, int(task), cells[i], actions[i], rewards[i])) is not None:
                raise UserError(
                    f"{part.where}: history {i} breaks algodistill's {spec.name} rules ({problem}): the data comes "
                    "from another room (size, start cell, action order or rewards) and cannot be converted"
                )
    return Histories(obs, actions, rewards, np.broadcast_to(ends, (n, T)).copy(), part.task_ids[keep].astype(np.int64))


# ----------------------------------------------------------------------------- convert


def convert(cfg: ConvertConfig) -> Path:
    """`algodistill convert`: write `cfg.out` from the peer's data and return it; nothing is left on failure."""
    family, src = get_family(cfg.env), cfg.src
    _check_new(cfg.out)
    if cfg.format == "ad-eps":
        assert isinstance(family, Grid)  # ConvertConfig refuses the others
        parts, files, peer = _plan_ad_eps(src, family)
    else:
        parts, files, peer = _plan_xland(src, family)
    keeps = [np.isin(p.task_ids, family.split(cfg.split)) for p in parts]
    N = sum(int(k.sum()) for k in keeps)
    dropped = sum(len(k) for k in keeps) - N
    if dropped and not cfg.drop_other_tasks:
        part, k = next((p, k) for p, k in zip(parts, keeps, strict=True) if not k.all())
        task = int(part.task_ids[~k][0])
        raise UserError(
            f"src={src} holds {dropped} histories of tasks outside {cfg.env}'s {cfg.split!r} split (e.g. task "
            f"{task}, {family.describe_task(task)}, in {part.where}): pass --drop-other-tasks to leave them out"
        )
    if N == 0:
        raise UserError(f"src={src} has no history of a task in {cfg.env}'s {cfg.split!r} split: pass another --split")
    root = src if src.is_dir() else src.parent
    # What determines the bytes: the format, the env, the split choice and every input file's sha256.
    inputs = {p.relative_to(root).as_posix(): sha256_file(p) for p in files}
    config = dict(format=cfg.format, env=cfg.env, split=cfg.split, drop_other_tasks=cfg.drop_other_tasks, inputs=inputs)
    # As `generate` writes it (readers use spec and split); the peer's seeds are not in its files.
    meta = dict(spec=family.spec.record(), episode_length=family.spec.episode_length, source=cfg.format, seed=None)
    meta |= dict(split=cfg.split, package_version=__version__, converted=dict(src=str(src), dropped=dropped, **peer))
    with atomic_dir(cfg.out) as tmp:
        buffered: list[Histories] = []
        start = shard = T = 0
        with Bar(f"convert {cfg.format}", total=N, unit="histories", quiet=cfg.quiet) as bar:
            for i, (part, keep) in enumerate(zip(parts, keeps, strict=True)):
                if keep.any():
                    buffered.append(h := _histories(family, part, keep))
                    if h.T != (T := T or h.T):
                        raise UserError(f"{part.where} has histories of {h.T} steps, others {T}: a dataset has one T")
                if buffered and (sum(b.num_histories for b in buffered) >= _SHARD_HISTORIES or i == len(parts) - 1):
                    h = Histories.concat(buffered)
                    dataset.write_shard(tmp, shard, h, learner_start=start, num_histories=N, meta=meta, config=config)
                    start, shard, buffered = start + h.num_histories, shard + 1, []
                    bar.advance(h.num_histories)
        dataset.finalize(tmp)
        _check_new(cfg.out)  # created meanwhile: still never overwrite (a UserError, before the rename)
    if not cfg.quiet:
        left_out = f", left out {dropped} histories of other tasks" if dropped else ""
        print(f"dataset {cfg.out}: {N} histories x {T} steps of {cfg.env} from {src}, {shard} shards{left_out}")
    return cfg.out
