"""RL^2: GAE and PPO by hand, the recurrent state across episodes and trials, bit-exact resume, frozen
evaluation, and bad input."""

import dataclasses
import hashlib
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from algodistill import Agent
from algodistill.envs import get_family
from algodistill.errors import UserError
from algodistill.evaluate import rollout_policy
from algodistill.methods import NO_ACTION, get_method
from algodistill.methods.rl2 import RL2Config, RL2Net, RL2Policy
from algodistill.presets import rl2_preset
from algodistill.rl2 import PPOConfig, RL2TrainConfig, gae, load_rl2, ppo_loss, train_rl2

torch.set_num_threads(1)
FAMILY = get_family("darkroom")
CPU = torch.device("cpu")
TINY_NET = RL2Config(cell="gru", hidden=16, layers=1, embed=8, trial_episodes=2)


def tiny(out, **kw) -> RL2TrainConfig:
    """4 trials of 8 tasks x 2 episodes: well under a second per trial."""
    base = dict(net=TINY_NET, tasks=8, unroll=20, steps=4 * 8 * 40, ckpt_every=2, device="cpu", quiet=True)
    from algodistill.configs import EvalConfig

    return RL2TrainConfig("darkroom", out=out, eval=EvalConfig(episodes=4, tasks=2, streams_per_task=1), **(base | kw))


def param_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode() + p.detach().numpy().tobytes())
    return h.hexdigest()


def test_gae_on_a_hand_worked_two_step_unroll():
    # delta_1 = 1 + 0.9 * 0.4 - 0.2 = 1.16; delta_0 = 0 + 0.9 * 0.2 - 0.5 = -0.32
    # A_1 = 1.16; A_0 = -0.32 + 0.9 * 0.5 * 1.16 = 0.202
    adv = gae(np.array([[0.0, 1.0]]), np.array([[0.5, 0.2]]), np.array([0.4]), gamma=0.9, lam=0.5)
    np.testing.assert_allclose(adv, [[0.202, 1.16]])


def test_ppo_loss_on_a_hand_worked_two_step_case():
    cfg = PPOConfig(clip=0.2, vf_coef=0.5, ent_coef=0.01)
    logits = torch.zeros(1, 2, 2)  # pi = (1/2, 1/2) at both steps: entropy log 2
    actions = torch.tensor([[0, 1]])
    values, returns = torch.tensor([[0.5, 0.0]]), torch.tensor([[1.0, 0.0]])
    # ratio 1 at both steps: pg = -mean(1, -1) = 0; vf = mean(0.25, 0) / 2 = 0.0625
    loss, parts = ppo_loss(
        logits, values, actions, torch.full((1, 2), math.log(0.5)), torch.tensor([[1.0, -1.0]]), returns, cfg
    )
    assert parts["pg"] == pytest.approx(0.0) and parts["vf"] == pytest.approx(0.0625)
    assert loss.item() == pytest.approx(0.5 * 0.0625 - 0.01 * math.log(2))
    # old probability 1/4: ratio 2, clipped to 1.2 for a positive advantage; 2/3 -> ratio 0.75 -> 0.8 for a negative one
    old = torch.log(torch.tensor([[0.25, 2 / 3]]))
    _, parts = ppo_loss(logits, values, actions, old, torch.tensor([[1.0, -1.0]]), returns, cfg)
    assert parts["pg"] == pytest.approx(-(1.2 * 1.0 + 0.8 * -1.0) / 2)


@pytest.mark.parametrize("carry", [False, True])
def test_the_state_carries_across_episodes_and_resets_between_trials_unless_carried(carry):
    torch.manual_seed(0)
    policy = RL2Policy(RL2Net(TINY_NET, FAMILY.spec), carry=carry)
    H, k = FAMILY.spec.episode_length, TINY_NET.trial_episodes
    obs = torch.tensor([[4, 4]], dtype=torch.uint8)
    fresh, _ = policy.act(
        policy.init_state(1), obs, torch.tensor([NO_ACTION]), torch.zeros(1), torch.ones(1, dtype=torch.bool)
    )
    state = policy.init_state(1)
    a, r, d = torch.tensor([NO_ACTION]), torch.zeros(1), torch.ones(1, dtype=torch.bool)
    logits_at = {}  # the logits at each episode's first step
    for t in range(2 * k * H + 1):
        logits, state = policy.act(state, obs, a, r, d)
        if t % H == 0:
            logits_at[t // H] = logits
        a, r, d = torch.tensor([1]), torch.tensor([0.5]), torch.tensor([(t + 1) % H == 0])
    assert not torch.allclose(logits_at[1], fresh)  # episode 2 of the trial: the state carried on
    for e in (k, 2 * k):  # a new trial starts from the zero state; a carried evaluation runs on
        assert torch.allclose(logits_at[e], fresh) != carry


@pytest.mark.parametrize("unroll", [20, 40])  # one update per episode, or one through the whole trial
def test_resume_is_bit_exact(tmp_path, unroll):
    whole = tiny(tmp_path / "whole", unroll=unroll)
    train_rl2(whole)
    half = tiny(tmp_path / "half", unroll=unroll, steps=2 * 8 * 40)
    train_rl2(half)
    train_rl2(dataclasses.replace(half, steps=4 * 8 * 40))  # resumes at trial 2
    a, ca = load_rl2(tmp_path / "whole" / "ckpt.pt")
    b, cb = load_rl2(tmp_path / "half" / "ckpt.pt")
    assert ca["trial"] == cb["trial"] == 4 and ca["log"] == cb["log"]
    assert param_hash(a) == param_hash(b)
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    np.testing.assert_array_equal(
        np.load(tmp_path / "whole" / "eval-test.npz")["returns"],
        np.load(tmp_path / "half" / "eval-test.npz")["returns"],
    )


def test_frozen_evaluation_never_changes_the_weights_and_the_agent_loads_it(tmp_path):
    train_rl2(tiny(tmp_path / "run", steps=8 * 40))
    net, _ = load_rl2(tmp_path / "run" / "ckpt.pt")
    before = param_hash(net)
    rollout_policy(get_method("rl2").policy(net), FAMILY, np.array([2, 5]), 5, device=CPU)
    assert param_hash(net) == before
    agent = Agent.load(tmp_path / "run" / "ckpt.pt")  # an RL^2 checkpoint loads like any model
    assert agent.card["method"] == "rl2" and agent.env == "darkroom"
    assert agent.act(np.array([4, 4])) in range(5)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(UserError, match=r"rl2\.trial_episodes=0 must be >= 1"):
        RL2Config(trial_episodes=0)
    with pytest.raises(UserError, match="unroll=30 must divide the trial of 200 steps"):
        dataclasses.replace(rl2_preset("darkroom"), unroll=30)
    with pytest.raises(UserError, match="rl2 is trained online"):
        get_method("rl2").window(None)  # type: ignore[arg-type]
    train_rl2(tiny(tmp_path / "run", steps=8 * 40))
    cli = [sys.executable, "-m", "algodistill.cli"]
    for args, message in [
        (["rl2", "darkroom", "--net.trial-episodes", "0"], "trial_episodes=0 must be >= 1"),
        (["play", str(tmp_path / "run" / "ckpt.pt"), "--env", "keydoor"], "trained on darkroom"),
        (["rl2", "nowhere"], "env='nowhere'"),
        (["rl2", "darkroom", "--net.encoder.kind", "conv"], "net.encoder.kind='conv' does not fit"),
    ]:
        p = subprocess.run(cli + args, capture_output=True, text=True)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, (args, p.stderr)


def test_sigterm_stops_training_like_ctrl_c_and_keeps_the_checkpoint(tmp_path):
    """A scheduler's SIGTERM: exit 130 with the last checkpoint whole (the RL^2 trainer has no handler of its own)."""
    flags = "--net.cell gru --net.hidden 16 --net.layers 1 --net.embed 8 --net.trial-episodes 2 --tasks 8"
    args = ["rl2", "darkroom", *flags.split(), "--unroll", "20", "--steps", "100000000", "--ckpt-every", "1"]
    args += ["--out", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "algodistill.cli", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ckpt.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    load_rl2(tmp_path / "ckpt.pt")
    assert not [p.name for p in tmp_path.iterdir() if "tmp" in p.name]


def test_presets_follow_table_6():
    paper = rl2_preset("darkroom", "paper")
    assert (paper.net.cell, paper.net.hidden, paper.net.layers, paper.net.trial_episodes) == ("lstm", 256, 2, 10)
    assert (paper.ppo.lr, paper.tasks, paper.unroll, paper.steps) == (3e-4, 256, 20, 1_000_000_000)
    assert rl2_preset("bandit").net.trial_episodes == 100 and rl2_preset("bandit").normalize_by == "ucb"


def test_quick_presets_of_the_dark_tasks_read_coordinates_as_numbers_through_the_whole_trial():
    for env, trial in [("darkroom", 200), ("darkroom-hard", 200), ("keydoor", 500)]:
        quick, paper = rl2_preset(env), rl2_preset(env, "paper")
        assert (quick.net.encoder.kind, quick.unroll, quick.ppo.minibatches) == ("mlp", trial, 8), env
        assert (paper.net.encoder.kind, paper.unroll) == ("embedding", 20), env  # Table 6
    for env in ("bandit", "watermaze"):  # measured with an unroll of 20: kept
        assert rl2_preset(env).unroll == 20 and rl2_preset(env).net.encoder.kind != "mlp", env


def test_dark_room_hard_alone_leaves_its_rewards_unscaled():
    for scale in ("quick", "paper"):  # Hard pays at most 1 per episode (presets.RL2_REWARD_SCALES)
        assert rl2_preset("darkroom-hard", scale).ppo.reward_scale == 1.0
        assert rl2_preset("darkroom", scale).ppo.reward_scale == rl2_preset("keydoor", scale).ppo.reward_scale == 0.05


def test_the_bandit_reports_every_condition_normalised_by_ucb(tmp_path, capsys):
    from algodistill.configs import EvalConfig

    base = rl2_preset("bandit")
    cfg = dataclasses.replace(
        base,
        out=tmp_path / "run",
        net=dataclasses.replace(TINY_NET, trial_episodes=100),
        tasks=8,
        steps=800,
        device="cpu",
        eval=EvalConfig(episodes=10, tasks=3, streams_per_task=1),
    )
    train_rl2(cfg)
    out = capsys.readouterr().out
    for name in ("odd", "even", "uniform", "train"):
        assert (tmp_path / "run" / f"eval-{name}.npz").is_file()
        scores = r"normalised by ucb [-\d.]+, by ucb tuned [-\d.]+"
        assert re.search(rf"{name} [-\d.]+ \(episode 1 [-\d.]+, last 10% [-\d.]+, {scores}\)", out), out


def test_watermaze_rl2_reads_frames_through_a_conv_encoder_without_batchnorm(tmp_path):
    quick, paper = rl2_preset("watermaze"), rl2_preset("watermaze", "paper")
    assert quick.env == "watermaze-small" and paper.env == "watermaze"  # the run presets' envs (presets.ALIASES)
    assert (quick.net.trial_episodes, paper.net.trial_episodes) == (10, 30)  # paper: Table 7
    assert quick.net.encoder.kind == paper.net.encoder.kind == "conv"
    assert quick.net.encoder.norm == paper.net.encoder.norm == "none"
    net_cfg = dataclasses.replace(TINY_NET, encoder=dataclasses.replace(quick.net.encoder, channels=(4, 4)))
    out = tmp_path / "wm"
    base = dataclasses.replace(quick, out=out, net=net_cfg, tasks=4, steps=4 * 100, device="cpu", quiet=True)
    from algodistill.configs import EvalConfig

    cfg = dataclasses.replace(base, eval=EvalConfig(episodes=2, tasks=1, streams_per_task=1))
    train_rl2(cfg)  # 1 trial of 4 tasks x 2 episodes of 50 frames
    net, ckpt = load_rl2(out / "ckpt.pt")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert ckpt["log"][0][1] == 400 and np.isfinite(np.load(out / "eval-test.npz")["returns"]).all()
    family = get_family("watermaze-small")
    frames = torch.as_tensor(family.make(np.array([0, 1]), seed=0).reset())  # (2, 36, 48, 3) uint8
    policy = RL2Policy(net)
    start = (torch.full((2,), NO_ACTION), torch.zeros(2), torch.ones(2, dtype=torch.bool))  # a_tm1, r_tm1, done_tm1
    logits, _ = policy.act(policy.init_state(2), frames, *start)
    assert logits.shape == (2, family.spec.num_actions)
    with pytest.raises(UserError, match=r"^net\.encoder\.kind='embedding' does not fit the observations of env='water"):
        dataclasses.replace(cfg, net=TINY_NET)


def test_a_checkpoint_from_before_the_encoder_config_loads_with_the_same_weights(tmp_path):
    train_rl2(tiny(tmp_path / "run", steps=8 * 40))
    path = tmp_path / "run" / "ckpt.pt"
    net, _ = load_rl2(path)
    ckpt = torch.load(path, weights_only=True)
    table = ckpt["model"].pop("obs_encoder.table.weight")  # (9 + 9, E): the x rows, then the y rows
    ckpt["model"]["obs_emb.0.weight"], ckpt["model"]["obs_emb.1.weight"] = table[:9], table[9:]
    torch.save(ckpt, path)
    old, _ = load_rl2(path)
    assert param_hash(old) == param_hash(net)
