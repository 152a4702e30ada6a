"""`algodistill convert`: peers' layouts (ad-eps .npz + .metadata, XLand-100B HDF5) round-trip into our datasets.

Fixtures are learning histories of our own envs (tabular Q-learning) written in the peer's layout, so
converting them back must give the same bytes; one fixture is made with the peer's own Dark Room rules
(row/col states, their action numbers) to check the mapping independently of our inverse of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from algodistill import dataset as D
from algodistill.atomic import sha256_file
from algodistill.convert import ConvertConfig, convert
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.sampler import Dataset
from algodistill.sources import SourceConfig, make_source, rollout

OURS_TO_THEIRS = np.array([1, 3, 2, 4, 0])  # our left, right, up, down, no-op -> ad-eps's action numbers


def learn(env: str, tasks: list[int], T: int, seed: int = 0, source: str = "qlearning") -> D.Histories:
    """Learning histories of our env on `tasks`, T steps each."""
    family = get_family(env)
    ids = np.arange(len(tasks))
    e = family.make(np.array(tasks), seed=seed, ids=ids)
    arrays, _ = rollout(e, make_source(source, e, seed, ids, T, SourceConfig()), T)
    return D.Histories(**arrays, task_ids=np.array(tasks, dtype=np.int64))


def train_tasks(env: str, k: int) -> list[int]:
    """k tasks of the train split, in turn (several histories per task when k exceeds the split)."""
    split = get_family(env).split("train")
    return [int(split[i % len(split)]) for i in range(k)]


def goal_of(env: str, task: int) -> list:
    """The ad-eps goal of one of our tasks: [row, col], or [[key row, col], [door row, col]] for keydoor."""
    size = 9
    if env == "keydoor":
        key, door = divmod(task, size * size)
        return [list(divmod(key, size)), list(divmod(door, size))]
    return list(divmod(task, size))


def write_ad_eps(run: Path, env: str, h: D.Histories, actions: np.ndarray = OURS_TO_THEIRS) -> Path:
    """One ad-eps opt-eps run: a trajectories_<i>.npz per history, (episodes, H) arrays, one goal per file."""
    run.mkdir(parents=True)
    H = get_family(env).spec.episode_length
    names = []
    for i in range(h.num_histories):
        names.append(f"trajectories_{i:03d}.npz")
        E = h.T // H
        np.savez(
            run / names[-1],
            states=(h.obs[i, :, 0].astype(float) * 9 + h.obs[i, :, 1]).reshape(E, H),
            actions=actions[h.actions[i]].astype(np.int64).reshape(E, H),
            rewards=h.rewards[i].astype(float).reshape(E, H),
            dones=h.dones[i].astype(np.int32).reshape(E, H),
            eps=np.ones((E, H)),
        )
    goals = [goal_of(env, int(t)) for t in h.task_ids]
    meta = {"algorithm": "opt-eps", "label": "label", "ordered_trajectories": names, "goal": goals}
    (run / "metadata.metadata").write_text(json.dumps(meta, indent=2))
    return run


def write_xland(path: Path, h: D.Histories, env_id: str = "algodistill/DarkRoom-v0") -> Path:
    """The XLand-100B layout: group "<i>" per task with attrs and (n, T, ...) datasets."""
    with h5py.File(path, "w") as f:
        for i, task in enumerate(np.unique(h.task_ids)):
            rows = h.task_ids == task
            g = f.create_group(str(i))
            g.attrs.update({"env-id": env_id, "benchmark-id": "none", "ruleset-id": int(task)})
            g.create_dataset("states", data=h.obs[rows], chunks=True, compression="gzip")
            g.create_dataset("actions", data=h.actions[rows])
            g.create_dataset("rewards", data=h.rewards[rows].astype(np.float16))
            g.create_dataset("dones", data=h.dones[rows])
            g.create_dataset("expert_actions", data=h.actions[rows])
    return path


def read_all(out: Path) -> D.Histories:
    assert D.verify(out) == []
    with Dataset.open(out) as ds:
        return ds.histories(np.arange(ds.num_histories))


def assert_same(a: D.Histories, b: D.Histories) -> None:
    for f in ("obs", "actions", "rewards", "dones", "task_ids"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        assert getattr(a, f).dtype == getattr(b, f).dtype, f


def test_ad_eps_darkroom_round_trips_into_a_trainable_dataset(tmp_path, capsys):
    h = learn("darkroom", train_tasks("darkroom", 3), T=200)
    src = write_ad_eps(tmp_path / "runs" / "ab12c", "darkroom", h).parent
    out = convert(ConvertConfig("ad-eps", src, tmp_path / "out"))
    assert "3 histories x 200 steps of darkroom" in capsys.readouterr().out
    assert_same(read_all(out), h)
    m = D.Manifest.load(out)
    assert m.meta["spec"] == get_family("darkroom").spec.record() and m.meta["split"] == "train"
    assert m.meta["source"] == "ad-eps" and m.meta["converted"]["algorithms"] == ["opt-eps"]
    assert m.config["format"] == "ad-eps" and m.config["env"] == "darkroom"
    assert sorted(m.config["inputs"]) == ["ab12c/metadata.metadata"] + [
        f"ab12c/trajectories_{i:03d}.npz" for i in range(3)
    ]
    for name, sha in m.config["inputs"].items():  # the sha256 of every input file
        assert sha == sha256_file(src / name)
    with Dataset.open(out) as ds:  # windows for training come out
        assert ds.sample(np.random.default_rng(0), 4, 40).obs.shape == (4, 40, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]  # no temporary directory left


def test_ad_eps_data_made_by_their_rules_converts(tmp_path):
    """Their room, re-implemented from corl-team/ad-eps dark_room/envs/darkroom.py: state row * 9 + col, start
    (4, 4), actions 0 no-op, 1 row-1, 2 col+1, 3 row+1, 4 col-1, reward 1 on every step on the goal."""
    rng = np.random.default_rng(1)
    moves = {0: (0, 0), 1: (-1, 0), 2: (0, 1), 3: (1, 0), 4: (0, -1)}
    goal, E, H = (2, 7), 10, 20
    task = goal[0] * 9 + goal[1]
    assert task in get_family("darkroom").split("train")
    states, actions, rewards = np.zeros((E, H)), rng.integers(0, 5, (E, H)), np.zeros((E, H))
    actions[:3, :6] = [1, 1, 2, 2, 2, 0]  # straight to the goal in a few episodes, then stay
    for e in range(E):
        pos = np.array([4, 4])
        for t in range(H):
            states[e, t] = pos[0] * 9 + pos[1]
            pos = np.clip(pos + moves[int(actions[e, t])], 0, 8)
            rewards[e, t] = float(tuple(pos) == goal)
    dones = np.zeros((E, H), np.int32)
    dones[:, -1] = 1  # gymnasium's TimeLimit truncates after 20 steps
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "trajectories_x.npz", states=states, actions=actions, rewards=rewards, dones=dones)
    meta = {"algorithm": "opt-eps", "ordered_trajectories": ["trajectories_x.npz"], "goal": [list(goal)]}
    (run / "metadata.metadata").write_text(json.dumps(meta))
    got = read_all(convert(ConvertConfig("ad-eps", run, tmp_path / "out", quiet=True)))
    np.testing.assert_array_equal(got.obs[0], np.stack(np.divmod(states.ravel().astype(int), 9), -1))
    np.testing.assert_array_equal(got.rewards[0], rewards.ravel())
    assert got.task_ids.tolist() == [task] and rewards.sum() >= 3
    # the same run with another action order (their up and down swapped) breaks our room's rules: refused
    swapped = np.array([0, 3, 2, 1, 4])[actions]
    np.savez(run / "trajectories_x.npz", states=states, actions=swapped, rewards=rewards, dones=dones)
    with pytest.raises(UserError, match=r"trajectories_x.npz: history 0 breaks algodistill's darkroom rules"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out2", quiet=True))
    assert not (tmp_path / "out2").exists() and not list(tmp_path.glob("out2*"))


def test_ad_eps_q_learning_chunks_are_one_history(tmp_path):
    """ad-eps's Q-learning runs: one goal [row, col] for the run, (steps, 1) chunks in `ordered_trajectories`."""
    h = learn("darkroom", train_tasks("darkroom", 1), T=300)
    run = tmp_path / "q"
    run.mkdir()
    names = []
    for i, lo in enumerate(range(0, 300, 100)):
        names.append(f"trajectories_{(i + 1) * 100}.npz")
        sl = slice(lo, lo + 100)
        np.savez(
            run / names[-1],
            states=(h.obs[0, sl, 0] * 9.0 + h.obs[0, sl, 1]).reshape(-1, 1),
            actions=OURS_TO_THEIRS[h.actions[0, sl]].reshape(-1, 1),
            rewards=h.rewards[0, sl].astype(float).reshape(-1, 1),
            dones=h.dones[0, sl].astype(np.int32).reshape(-1, 1),
        )
    goal = goal_of("darkroom", int(h.task_ids[0]))
    (run / "metadata.metadata").write_text(
        json.dumps({"algorithm": "Q-learning", "ordered_trajectories": names, "goal": goal})
    )
    assert_same(read_all(convert(ConvertConfig("ad-eps", run / "metadata.metadata", tmp_path / "out", quiet=True))), h)


def test_ad_eps_keydoor_round_trips_and_their_40_step_episodes_are_refused(tmp_path):
    h = learn("keydoor", train_tasks("keydoor", 2), T=150, source="noise")
    out = convert(ConvertConfig("ad-eps", write_ad_eps(tmp_path / "k", "keydoor", h), tmp_path / "out", env="keydoor"))
    assert_same(read_all(out), h)
    # ad-eps's own Key-to-Door: 40-step episodes (and no dones) -> refused with the reason
    run = tmp_path / "k40"
    run.mkdir()
    a = np.zeros((3, 40))
    np.savez(run / "t.npz", states=a, actions=a, rewards=a)
    (run / "m.metadata").write_text(
        json.dumps({"ordered_trajectories": ["t.npz"], "goal": [goal_of("keydoor", int(h.task_ids[0]))]})
    )
    with pytest.raises(UserError, match=r"t.npz: T=120, first episode 40 steps: keydoor needs fixed 50-step"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out40", env="keydoor"))
    ragged = np.array([np.zeros(40), np.zeros(23)], dtype=object)  # episodes that stopped at the door
    np.savez(run / "t.npz", states=ragged, actions=ragged, rewards=ragged)
    with pytest.raises(UserError, match=r"t.npz holds ragged episodes \(object arrays\)"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out40", env="keydoor"))
    assert not (tmp_path / "out40").exists()


@pytest.mark.parametrize(("env", "source"), [("darkroom", "qlearning"), ("darkroom-hard", "noise"), ("bandit", "ucb")])
def test_xland_round_trips(tmp_path, env, source):
    tasks = train_tasks(env, 3)
    h = learn(env, [tasks[0], tasks[0], tasks[1], tasks[2], tasks[2]], T=100, source=source)
    order = np.argsort(h.task_ids, kind="stable")  # groups come out in task order here
    h = D.Histories(*(getattr(h, f)[order] for f in ("obs", "actions", "rewards", "dones", "task_ids")))
    x = write_xland(tmp_path / "x.hdf5", h, env_id=get_family(env).spec.gym_id)
    out = convert(ConvertConfig("xland", x, tmp_path / "out", env=env, quiet=True))
    assert_same(read_all(out), h)
    m = D.Manifest.load(out)
    assert m.config["inputs"] == {"x.hdf5": m.config["inputs"]["x.hdf5"]} and m.meta["source"] == "xland"


def test_wrong_format_is_refused_naming_the_file(tmp_path):
    h = learn("darkroom", train_tasks("darkroom", 2), T=40)
    x = write_xland(tmp_path / "x.hdf5", h)
    run = write_ad_eps(tmp_path / "run", "darkroom", h)
    cases = [
        ("ad-eps", x, r"x.hdf5 is an HDF5 file, not an ad-eps run: pass format xland"),
        ("xland", run / "trajectories_000.npz", r"trajectories_000.npz is an .npz \(zip\) file.*pass format ad-eps"),
        ("xland", run, r"run is a directory: format xland reads one .hdf5 file"),
        ("ad-eps", run / "trajectories_000.npz", r"is not an ad-eps run"),
        ("ad-eps", tmp_path / "x.hdf5.missing", r"does not exist"),
    ]
    for fmt, src, msg in cases:
        with pytest.raises(UserError, match=msg):
            convert(ConvertConfig(fmt, src, tmp_path / "out"))  # type: ignore[arg-type]
    with h5py.File(x, "a") as f:
        del f["1/dones"]
    with pytest.raises(UserError, match=r"x.hdf5:/1 is not an XLand task group: it needs datasets"):
        convert(ConvertConfig("xland", x, tmp_path / "out"))
    xl = tmp_path / "xland-100b.hdf5"  # XLand's own data: MiniGrid observations (5, 5)
    with h5py.File(xl, "w") as f:
        g = f.create_group("0")
        g.attrs.update({"env-id": "XLand-MiniGrid-R1-9x9", "benchmark-id": "trivial-1m", "ruleset-id": 7})
        for k, shape, dt in [("states", (2, 8, 5, 5), np.uint8), ("actions", (2, 8), np.uint8)]:
            g.create_dataset(k, shape=shape, dtype=dt)
        g.create_dataset("rewards", shape=(2, 8), dtype=np.float16)
        g.create_dataset("dones", shape=(2, 8), dtype=bool)
    with pytest.raises(UserError, match=r"xland-100b.hdf5:/0 holds XLand-MiniGrid-R1-9x9 data .* no algodistill env"):
        convert(ConvertConfig("xland", xl, tmp_path / "out"))
    (run / "trajectories_001.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"trajectories_001.npz cannot be read as .npz"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out"))
    np.savez(run / "trajectories_001.npz", states=np.zeros((2, 20)), actions=np.zeros((2, 20)))
    with pytest.raises(UserError, match=r"trajectories_001.npz has no array \['rewards'\]"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))


def test_existing_out_is_refused_and_left_untouched(tmp_path):
    h = learn("darkroom", train_tasks("darkroom", 1), T=40)
    x = write_xland(tmp_path / "x.hdf5", h)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match=r"out=.*out exists: convert never overwrites"):
        ConvertConfig("xland", x, out)
    cfg = ConvertConfig("xland", x, tmp_path / "late", quiet=True)
    (tmp_path / "late").mkdir()  # created after the config was checked
    with pytest.raises(UserError, match=r"late exists"):
        convert(cfg)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert list((tmp_path / "late").iterdir()) == []


def test_out_of_range_goals_and_tasks_are_refused(tmp_path):
    h = learn("darkroom", train_tasks("darkroom", 1), T=40)
    run = write_ad_eps(tmp_path / "run", "darkroom", h)
    meta = json.loads((run / "metadata.metadata").read_text())
    (run / "metadata.metadata").write_text(json.dumps({**meta, "goal": [[3, 9]]}))  # a 10x10 room's goal
    with pytest.raises(UserError, match=r"metadata.metadata: goal \[3, 9\] lies outside algodistill's 9x9 darkroom"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out"))
    x = write_xland(tmp_path / "x.hdf5", h)
    with h5py.File(x, "a") as f:
        f["0"].attrs["ruleset-id"] = 81
    with pytest.raises(UserError, match=r"x.hdf5:/0: ruleset-id 81 is not a darkroom task id in \[0, 81\)"):
        convert(ConvertConfig("xland", x, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_held_out_tasks_are_refused_or_dropped(tmp_path, capsys):
    family = get_family("darkroom")
    test_task, train_task = int(family.split("test")[0]), int(family.split("train")[0])
    h = learn("darkroom", [train_task, test_task], T=40)
    x = write_xland(tmp_path / "x.hdf5", h)
    with pytest.raises(
        UserError, match=rf"1 histories of tasks outside darkroom's 'train' split \(e.g. task {test_task}"
    ):
        convert(ConvertConfig("xland", x, tmp_path / "out"))
    out = convert(ConvertConfig("xland", x, tmp_path / "out", drop_other_tasks=True))
    assert "left out 1 histories" in capsys.readouterr().out
    got = read_all(out)
    assert got.task_ids.tolist() == [train_task]
    np.testing.assert_array_equal(got.obs[0], h.obs[h.task_ids == train_task][0])
    assert D.Manifest.load(out).meta["converted"]["dropped"] == 1
    test_only = convert(ConvertConfig("xland", x, tmp_path / "test", split="test", drop_other_tasks=True, quiet=True))
    assert Dataset.open(test_only).meta["split"] == "test"


def test_a_failure_midway_leaves_no_output(tmp_path):
    """Shards are written while reading; a bad file after the first shard must remove them all."""
    h = learn("darkroom", train_tasks("darkroom", 70), T=20)  # > 64 histories: the first shard is written
    run = write_ad_eps(tmp_path / "run", "darkroom", h)
    with np.load(run / "trajectories_069.npz") as z:
        arrays = dict(z)
    arrays["rewards"][0, 0] = 0.5
    np.savez(run / "trajectories_069.npz", **arrays)
    with pytest.raises(UserError, match=r"trajectories_069.npz: history 0 breaks .* reward 0.5"):
        convert(ConvertConfig("ad-eps", run, tmp_path / "out", quiet=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_cli_wrong_format_is_one_line_and_exit_2(tmp_path, capsys):
    from algodistill.cli import main

    h = learn("darkroom", train_tasks("darkroom", 2), T=40)
    x = write_xland(tmp_path / "x.hdf5", h)
    with pytest.raises(SystemExit) as e:
        main(["convert", "ad-eps", str(x), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "x.hdf5 is an HDF5 file" in err
    assert not (tmp_path / "out").exists()
    main(["convert", "xland", str(x), str(tmp_path / "out"), "--quiet"])
    assert D.verify(tmp_path / "out") == []
