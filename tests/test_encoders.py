"""Observation encoders: config checks, which encoder fits which observations, shapes, and models built on them."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from algodistill.encoders import (
    ConvEncoder,
    EmbeddingEncoder,
    EncoderConfig,
    MLPEncoder,
    check_fits,
    unfit_reason,
)
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError
from algodistill.model import ADTransformer
from algodistill.rng import torch_rng
from oracles import reference_logits
from test_model import GRID, KINDS, make_model, small_cfg, stream

torch.set_num_threads(1)

IMAGE = EnvSpec("toy-image", "test/Img-v0", (16, 16, 3), "uint8", None, 4, 10, 4, "toy")
FLAT = EnvSpec("toy-vector", "test/Vec-v0", (5,), "float32", None, 3, 10, 4, "toy")  # numbers, no vocabulary
SMALL_CONV = EncoderConfig(kind="conv", channels=(8, 8), dropout=0.2)  # 16x16 -> 4x4 -> 1x1


def image_spec(h: int, w: int, channels: int = 3) -> EnvSpec:
    return EnvSpec("toy-image", "test/Img-v0", (h, w, channels), "uint8", None, 4, 10, 4, "toy")


def image(B: int, T: int, shape: tuple[int, ...] = IMAGE.obs_shape, seed: int = 0) -> torch.Tensor:
    """Random uint8 images (B, T, H, W, C), as an image env gives them."""
    return torch.randint(0, 256, (B, T, *shape), generator=torch_rng(seed), dtype=torch.uint8)


def image_stream(B: int, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch_rng(seed, 1)
    a_tm1 = torch.randint(0, IMAGE.num_actions + 1, (B, T), generator=g)  # (B, T)
    return image(B, T, seed=seed), a_tm1, torch.rand(B, T, generator=g)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(kind="rnn"), r"model\.encoder\.kind='rnn' is unknown: choose embedding, mlp or conv$"),
        (dict(hidden=0), r"model\.encoder\.hidden=0 must be positive"),
        (dict(kernel=0), r"model\.encoder\.kernel=0 must be positive"),
        (dict(stride=-1), r"model\.encoder\.stride=-1 must be positive"),
        (dict(channels=()), r"model\.encoder\.channels=\(\) is invalid"),
        (dict(channels=(32, 0)), r"model\.encoder\.channels=\(32, 0\) is invalid"),
        (dict(dropout=1.0), r"model\.encoder\.dropout=1.0 is not a probability in \[0, 1\)"),
        (dict(norm="group"), r"model\.encoder\.norm='group' is unknown: choose batch or none$"),
    ],
)
def test_config_validation(kw: dict, message: str) -> None:
    with pytest.raises(UserError, match="^" + message):
        EncoderConfig(**kw)


def test_defaults() -> None:
    cfg = EncoderConfig()
    assert (cfg.kind, cfg.hidden, cfg.dropout, cfg.norm) == ("embedding", 128, 0.0, "batch")
    assert (cfg.channels, cfg.kernel, cfg.stride) == ((32, 64, 64), 5, 2)


@pytest.mark.parametrize(
    ("kind", "spec", "reason"),
    [
        ("embedding", GRID, None),
        ("embedding", IMAGE, "an embedding table needs categorical observations"),
        ("embedding", FLAT, "an embedding table needs categorical observations"),
        ("mlp", GRID, None),
        ("mlp", IMAGE, None),
        ("mlp", FLAT, None),
        ("conv", GRID, "conv needs images shaped (H, W, C)"),
        ("conv", FLAT, "conv needs images shaped (H, W, C)"),
        # each block: conv (kernel 5, stride 2, padding 2), then max-pool 2; the default 3 blocks need
        # 43 pixels: 43 -> 22 -> 11 -> 6 -> 3 -> 2 -> 1, while 42 -> 21 -> 10 -> 5 -> 2 -> 1 -> 0
        ("conv", IMAGE, "a 16x16 image is too small for 3 conv blocks"),
        ("conv", image_spec(43, 43), None),
        ("conv", image_spec(43, 42), "a 43x42 image is too small for 3 conv blocks"),
        ("conv", image_spec(42, 43, channels=1), "a 42x43 image is too small for 3 conv blocks"),
    ],
)
def test_unfit_reason(kind: str, spec: EnvSpec, reason: str | None) -> None:
    got = unfit_reason(EncoderConfig(kind=kind), spec)  # type: ignore[arg-type]
    if reason is None:
        assert got is None
        check_fits(EncoderConfig(kind=kind), spec)  # type: ignore[arg-type]
    else:
        assert got == reason


def test_smaller_conv_fits_a_small_image() -> None:
    assert unfit_reason(SMALL_CONV, IMAGE) is None
    assert unfit_reason(EncoderConfig(kind="conv", channels=(8, 8, 8)), IMAGE) == (
        "a 16x16 image is too small for 3 conv blocks"
    )


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        (
            "embedding",
            IMAGE,
            "model.encoder.kind='embedding' does not fit the observations of env='toy-image' (uint8 (16, 16, 3)): "
            "an embedding table needs categorical observations; choose one of mlp",
        ),
        (
            "conv",
            GRID,
            "model.encoder.kind='conv' does not fit the observations of env='darkroom' (2 ints < (9, 9)): "
            "conv needs images shaped (H, W, C); choose one of embedding, mlp",
        ),
    ],
)
def test_check_fits_names_the_field_and_the_choices(kind: str, spec: EnvSpec, message: str) -> None:
    with pytest.raises(UserError, match="^" + re.escape(message) + "$"):
        check_fits(EncoderConfig(kind=kind), spec)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="^" + re.escape(message) + "$"):  # the model refuses it the same way
        ADTransformer(small_cfg(encoder=EncoderConfig(kind=kind)), spec)  # type: ignore[arg-type]


def test_the_choices_keep_the_other_settings() -> None:
    # a conv of the default size does not fit a 16x16 image, the small one given does: it is offered
    with pytest.raises(UserError, match=r"choose one of mlp, conv$"):
        check_fits(dataclasses.replace(SMALL_CONV, kind="embedding"), IMAGE)


def test_embedding_encoder_by_hand_and_uint8() -> None:
    enc = EmbeddingEncoder((2, 3), n_embd=4)
    obs = torch.tensor([[[1, 2], [0, 0]]])  # (1, 2, 2) long
    out = enc(obs)  # (1, 2, 4)
    w = enc.table.weight  # (2 + 3, 4): rows 0..1 for the first component, 2..4 for the second
    torch.testing.assert_close(out, torch.stack([w[1] + w[2 + 2], w[0] + w[2]])[None], rtol=0, atol=0)
    # envs and datasets give uint8 observations: the encoder casts them, with the same result
    torch.testing.assert_close(enc(obs.to(torch.uint8)), out, rtol=0, atol=0)


@pytest.mark.parametrize("lead", [(3, 5), (1, 1)])
def test_output_shapes(lead: tuple[int, int]) -> None:
    B, T = lead
    grid_obs = torch.randint(0, 9, (B, T, 2), generator=torch_rng(0), dtype=torch.uint8)  # (B, T, 2)
    assert EmbeddingEncoder((9, 9), 32)(grid_obs).shape == (B, T, 32)
    assert MLPEncoder((2,), 16, 32)(grid_obs).shape == (B, T, 32)
    assert MLPEncoder(IMAGE.obs_shape, 16, 32)(image(B, T)).shape == (B, T, 32)
    assert MLPEncoder((5,), 16, 32)(torch.randn(B, T, 5)).shape == (B, T, 32)  # float observations too
    conv = ConvEncoder(IMAGE.obs_shape, SMALL_CONV, 32).eval()
    assert conv(image(B, T)).shape == (B, T, 32)
    # a non-square image: one block maps 12x20 to 3x5, so the projection reads 4 * 3 * 5 features
    wide = ConvEncoder((12, 20, 3), EncoderConfig(kind="conv", channels=(4,)), 32).eval()
    assert wide.proj.in_features == 4 * 3 * 5
    assert wide(image(B, T, (12, 20, 3))).shape == (B, T, 32)


def test_conv_encoder_reads_each_frame_alone_in_eval() -> None:
    # eval BatchNorm uses running stats, so a frame's embedding does not depend on the other frames of
    # the batch: what makes the cached step (one frame per stream) agree with the full forward
    enc = ConvEncoder(IMAGE.obs_shape, SMALL_CONV, 32).eval()
    x = image(2, 6)  # (2, 6, 16, 16, 3)
    whole = enc(x)  # (2, 6, 32)
    for t in range(6):
        torch.testing.assert_close(enc(x[:, t : t + 1]), whole[:, t : t + 1], rtol=0, atol=1e-5)


def encoder_models() -> list[tuple[str, EnvSpec, EncoderConfig]]:
    return [
        ("conv-image", IMAGE, SMALL_CONV),
        ("mlp-grid", GRID, EncoderConfig(kind="mlp", hidden=24)),
        ("mlp-image", IMAGE, EncoderConfig(kind="mlp", hidden=24)),
    ]


def inputs(spec: EnvSpec, B: int, T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return image_stream(B, T) if spec is IMAGE else stream(spec, B, T)


def perturb_batchnorm_stats(model: torch.nn.Module) -> None:
    """Running stats away from (0, 1), so that eval-mode BatchNorm is not the identity."""
    g = torch_rng(0, 3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


@pytest.mark.parametrize(("name", "spec", "enc"), encoder_models(), ids=[m[0] for m in encoder_models()])
def test_models_on_other_encoders_train(name: str, spec: EnvSpec, enc: EncoderConfig) -> None:
    model = ADTransformer(small_cfg(encoder=enc), spec, generator=torch_rng(0, 1)).train()
    obs, a_tm1, r_tm1 = inputs(spec, B=2, T=8)
    logits = model(obs, a_tm1, r_tm1, masked=model.draw_token_mask(2, 8, torch.device("cpu")))  # (B, T, A)
    assert logits.shape == (2, 8, spec.num_actions)
    logits.logsumexp(-1).sum().backward()
    # DDP rejects parameters outside the graph: the encoder's and the mask token's included
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert any(n.startswith("obs_encoder.") for n, _ in model.named_parameters())


@pytest.mark.parametrize(("layout", "positions"), KINDS)
@pytest.mark.parametrize(("name", "spec", "enc"), encoder_models(), ids=[m[0] for m in encoder_models()])
def test_cached_steps_match_full_recompute(
    name: str, spec: EnvSpec, enc: EncoderConfig, layout: str, positions: str
) -> None:
    model = make_model(small_cfg(layout=layout, positions=positions, context=4, encoder=enc), spec)  # eval mode
    with torch.no_grad():
        perturb_batchnorm_stats(model)
    obs, a_tm1, r_tm1 = inputs(spec, B=2, T=11)  # the window slides
    ref = reference_logits(model, obs, a_tm1, r_tm1)  # (B, T, A)
    cache = model.new_cache(2)
    for t in range(11):
        got = model.step(cache, obs[:, t], a_tm1[:, t], r_tm1[:, t])  # (B, A)
        torch.testing.assert_close(got, ref[:, t], rtol=0, atol=1e-5, msg=f"step {t}")
