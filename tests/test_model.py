"""AD transformer: config checks, shapes, causality, token masking, and KV cache against full recompute (oracles.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algodistill.encoders import EncoderConfig
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.kvcache import KVCache
from algodistill.model import ADTransformer, ModelConfig, _apply_rope, _rope_angles
from algodistill.rng import torch_rng
from oracles import reference_context_lengths, reference_logits

torch.set_num_threads(1)

GRID = EnvSpec("darkroom", "test/Grid-v0", (2,), "uint8", (9, 9), 5, 20, 81, "9x9 grid")
BANDIT = EnvSpec("bandit", "test/Bandit-v0", (1,), "uint8", (1,), 10, 100, 100, "10-armed bandit")
KINDS = [(layout, pos) for layout in ("step", "sar") for pos in ("learned", "rope")]


def small_cfg(**kw: object) -> ModelConfig:
    base: dict[str, object] = dict(n_embd=32, n_layer=2, n_head=4, n_ff=64, context=8)
    return ModelConfig(**{**base, **kw})  # type: ignore[arg-type]


def make_model(cfg: ModelConfig, spec: EnvSpec = GRID) -> ADTransformer:
    """An eval-mode model with weights spread far beyond the 0.02 init, so logits differ by O(1)."""
    model = ADTransformer(cfg, spec, generator=torch_rng(0, 1))
    g = torch_rng(0, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def stream(spec: EnvSpec, B: int, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random model inputs; observations uint8, as the envs and the dataset give them."""
    assert spec.obs_high is not None
    g = torch_rng(seed)
    obs = torch.stack([torch.randint(0, h, (B, T), generator=g) for h in spec.obs_high], dim=-1)  # (B, T, D)
    obs = obs.to(torch.uint8)  # (B, T, D)
    a_tm1 = torch.randint(0, spec.num_actions + 1, (B, T), generator=g)
    r_tm1 = torch.rand(B, T, generator=g)
    return obs, a_tm1, r_tm1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(n_embd=65), r"^model\.n_embd=65 is not divisible by n_head=4: choose a multiple of n_head$"),
        (dict(n_layer=0), r"^model\.n_layer=0 must be positive"),
        (dict(context=-1), r"^model\.context=-1 must be positive"),
        (dict(dropout=1.0), r"^model\.dropout=1.0 is not a probability in \[0, 1\)"),
        (dict(token_mask=-0.1), r"^model\.token_mask=-0.1 is not a probability"),
        (dict(layout="sra"), r"^model\.layout='sra' is unknown"),
        (dict(positions="alibi"), r"^model\.positions='alibi' is unknown"),
        (dict(n_embd=12, n_head=4, positions="rope"), r"^model head size n_embd/n_head=3 is odd"),
    ],
)
def test_config_validation(kw: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ModelConfig(**kw)


def test_defaults_are_paper_table_1() -> None:
    cfg = ModelConfig()
    assert (cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.n_ff, cfg.norm) == (64, 4, 4, 2048, "post")
    assert (cfg.dropout, cfg.attn_dropout, cfg.token_mask) == (0.1, 0.5, 0.3)
    assert cfg.encoder == EncoderConfig(kind="embedding")  # the grid and bandit observations are categorical


@pytest.mark.parametrize(("layout", "positions"), KINDS)
@pytest.mark.parametrize("spec", [GRID, BANDIT], ids=["grid", "bandit"])
def test_shapes_and_every_parameter_trains(layout: str, positions: str, spec: EnvSpec) -> None:
    model = ADTransformer(small_cfg(layout=layout, positions=positions), spec).train()
    obs, a_tm1, r_tm1 = stream(spec, B=2, T=8)
    logits = model(obs, a_tm1, r_tm1, masked=model.draw_token_mask(2, 8, torch.device("cpu")))
    assert logits.shape == (2, 8, spec.num_actions)
    logits.logsumexp(-1).sum().backward()
    # DDP rejects parameters outside the graph, the token-mask embedding included
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    cache = model.eval().new_cache(2)
    assert model.step(cache, obs[:, 0], a_tm1[:, 0], r_tm1[:, 0]).shape == (2, spec.num_actions)
    assert model.num_params() == sum(p.numel() for p in model.parameters())


def test_learned_positions_refuse_more_steps_than_the_context() -> None:
    model = make_model(small_cfg())
    with pytest.raises(ValueError, match="9 steps exceed context=8"):
        model(*stream(GRID, B=1, T=9))


def test_step_checks_the_batch_size() -> None:
    model = make_model(small_cfg())
    obs, a_tm1, r_tm1 = stream(GRID, B=2, T=1)
    with pytest.raises(ValueError, match="batch of 2 streams, but the cache holds 3"):
        model.step(model.new_cache(3), obs[:, 0], a_tm1[:, 0], r_tm1[:, 0])


def test_kvcache_advance_by_hand() -> None:
    # re-prefill, W=4, k=1: steps 0..3 fill slots 0..3 one at a time, each at its own position and seeing
    # everything cached; from step 4 on every step re-encodes the newest W - 1 = 3 steps with the new one
    # at positions 0..3: a steady FIFO of the last 4 steps
    cache = KVCache(batch_size=1, context=4, tokens_per_step=1, rolling=False)
    for t in range(4):
        adv = cache.advance(torch.tensor([[t]]), torch.tensor([t]), torch.tensor([10.0 * t]))
        assert (adv.pos0, adv.a_tm1.tolist(), adv.mask) == (t, [[t]], None)
    for t in (4, 5):
        adv = cache.advance(torch.tensor([[t]]), torch.tensor([t]), torch.tensor([10.0 * t]))
        assert adv.pos0 == 0 and cache.n == 4
        assert adv.obs.tolist() == [[[t - 3], [t - 2], [t - 1], [t]]]  # (1, 4, 1)
        assert adv.a_tm1.tolist() == [[t - 3, t - 2, t - 1, t]]  # (1, 4)
        assert adv.r_tm1.tolist() == [[10.0 * (t - 3), 10.0 * (t - 2), 10.0 * (t - 1), 10.0 * t]]
        torch.testing.assert_close(adv.mask, torch.ones(4, 4, dtype=torch.bool).tril())  # plain causal

    # rolling, W=4, k=3: step 5 goes to ring slot 1 (tokens 3..5) at absolute position 15; its tokens see
    # every token of the other slots (older steps) and their own step's tokens causally
    ring = KVCache(batch_size=2, context=4, tokens_per_step=3, rolling=True)
    for t in range(6):
        adv = ring.advance(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.zeros(2))
        assert adv.pos0 == 3 * t and ring.n == min(t + 1, 4)
    want = torch.ones(3, 12, dtype=torch.bool)  # (Lq, Lk)
    want[:, 3:6] = torch.ones(3, 3, dtype=torch.bool).tril()
    torch.testing.assert_close(adv.mask, want)
    with pytest.raises(ValueError, match="batch of 1 streams, but the cache holds 2"):
        ring.advance(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1))


def test_init_is_seeded_by_the_generator() -> None:
    a, b = (ADTransformer(small_cfg(), GRID, generator=torch_rng(7)) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(("layout", "positions"), KINDS)
def test_causality(layout: str, positions: str) -> None:
    model = make_model(small_cfg(layout=layout, positions=positions))
    obs, a_tm1, r_tm1 = stream(GRID, B=2, T=8)
    base = model(obs, a_tm1, r_tm1)
    for t in range(8):
        obs2, a2, r2 = obs.clone(), a_tm1.clone(), r_tm1.clone()
        obs2[:, t] = (obs2[:, t] + 1) % 9
        a2[:, t] = (a2[:, t] + 1) % 6
        r2[:, t] += 1.0
        out = model(obs2, a2, r2)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=0)
        assert not torch.allclose(out[:, t], base[:, t])


def test_token_masking_only_in_training() -> None:
    cfg = small_cfg(dropout=0.0, attn_dropout=0.0, token_mask=0.5)
    model = make_model(cfg)
    x = stream(GRID, B=4, T=8)
    cpu = torch.device("cpu")
    assert model.draw_token_mask(4, 8, cpu) is None  # eval: nothing masked
    model.train()
    torch.manual_seed(0)
    masked = model.draw_token_mask(4, 8, cpu)
    assert masked is not None and masked.shape == (4, 8) and 0 < masked.sum() < 32
    out, plain = model(*x, masked=masked), model(*x)
    for b in range(4):  # the first step sees only itself: its logits change exactly when its token is masked
        assert torch.allclose(out[b, 0], plain[b, 0]) != bool(masked[b, 0])
    unmasked = make_model(small_cfg(dropout=0.0, attn_dropout=0.0, token_mask=0.0))
    assert unmasked.train().draw_token_mask(4, 8, cpu) is None
    with pytest.raises(ValueError, match="token_mask=0"):
        unmasked(*x, masked=masked)


def test_reference_context_lengths_by_hand() -> None:
    # learned, W=5: grow to 5, then a steady window of the last 5 steps
    lengths = reference_context_lengths(8, small_cfg(context=5))
    np.testing.assert_array_equal(lengths, [1, 2, 3, 4, 5, 5, 5, 5])
    np.testing.assert_array_equal(reference_context_lengths(4, small_cfg(context=1)), [1, 1, 1, 1])
    rope = reference_context_lengths(8, small_cfg(context=5, positions="rope"))
    np.testing.assert_array_equal(rope, [1, 2, 3, 4, 5, 5, 5, 5])


@pytest.mark.parametrize("context", [1, 3, 8])
@pytest.mark.parametrize(("layout", "positions"), KINDS)
def test_cached_steps_match_full_recompute(layout: str, positions: str, context: int) -> None:
    model = make_model(small_cfg(layout=layout, positions=positions, context=context))  # the window slides
    obs, a_tm1, r_tm1 = stream(GRID, B=3, T=30)
    ref = reference_logits(model, obs, a_tm1, r_tm1)  # (B, T, A)
    cache = model.new_cache(3)
    for _ in range(2):  # the second pass checks that reset() forgets everything
        for t in range(30):
            got = model.step(cache, obs[:, t], a_tm1[:, t], r_tm1[:, t])
            torch.testing.assert_close(got, ref[:, t], rtol=0, atol=1e-5, msg=f"step {t}")
        cache.reset()


@pytest.mark.parametrize(("layout", "positions"), KINDS)
def test_reference_before_the_window_fills_is_the_plain_forward(layout: str, positions: str) -> None:
    model = make_model(small_cfg(layout=layout, positions=positions))
    x = stream(GRID, B=2, T=8)
    torch.testing.assert_close(reference_logits(model, *x), model(*x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("layout", ["step", "sar"])
def test_one_layer_rope_window_is_the_last_context_steps(layout: str) -> None:
    # with one layer, sliding-window attention sees exactly the last W steps: an independent check of
    # the banded mask that reference_logits uses for rope
    model = make_model(small_cfg(layout=layout, positions="rope", n_layer=1))
    obs, a_tm1, r_tm1 = stream(GRID, B=2, T=20)
    ref = reference_logits(model, obs, a_tm1, r_tm1)
    for t in range(8, 20):
        s = slice(t - 7, t + 1)
        torch.testing.assert_close(model(obs[:, s], a_tm1[:, s], r_tm1[:, s])[:, -1], ref[:, t], rtol=0, atol=1e-5)


def test_rope_scores_stay_accurate_at_large_positions() -> None:
    # a rolling cache rotates keys at ever larger absolute positions; the angles are computed in float64
    # (float32 pos * freq would be off by ~0.3 rad at 10^7), so a score depends only on the offset
    q, k = torch.randn(2, 1, 1, 1, 16, generator=torch_rng(3)).unbind(0)  # (B, nh, L, hs) each

    def score(pos: int, offset: int) -> torch.Tensor:
        q_rot = _apply_rope(q, *_rope_angles(pos + offset, 1, 16, q.device))
        k_rot = _apply_rope(k, *_rope_angles(pos, 1, 16, k.device))
        return (q_rot * k_rot).sum()

    for offset in (0, 1, 5, 77):
        torch.testing.assert_close(score(10_000_000, offset), score(0, offset), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("layout", "positions"), KINDS)
def test_bf16_autocast(layout: str, positions: str) -> None:
    # no hard-coded dtypes: the cache takes the dtype of the keys, rope rotates in float32 (CUDA runs bf16)
    model = make_model(small_cfg(layout=layout, positions=positions))
    obs, a_tm1, r_tm1 = stream(GRID, B=2, T=12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.train()(obs[:, :8], a_tm1[:, :8], r_tm1[:, :8]).float().logsumexp(-1).sum().backward()
        model.eval()
        ref = reference_logits(model, obs, a_tm1, r_tm1)
        cache = model.new_cache(2)
        got = torch.stack([model.step(cache, obs[:, t], a_tm1[:, t], r_tm1[:, t]) for t in range(12)], dim=1)
    assert cache.keys[0].dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), ref.float(), rtol=0, atol=0.1)
