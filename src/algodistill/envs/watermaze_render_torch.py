"""The Watermaze renderer in torch: `watermaze_render.render`'s frames, drawn on the tensors' device.

Where AD trains on a GPU, its windows' frames are drawn there from their stored form (x, y, heading):
12 bytes per step cross to the device instead of a 72 x 96 x 3 frame (20,736 bytes), and the per-pixel
work (integer compares and a palette gather over N x H x W) runs on the accelerator. The geometry and the
order of operations are `render`'s, step for step (its docstring has the derivation), in float64, so on
the CPU the two give the same bytes (tests/test_watermaze.py); on a GPU only a last-bit difference in
cos/sin could move a boundary pixel, as between two numpy builds. Its own module, so that the envs stay
importable without torch (`WatermazeFamily.decode_obs` imports it only when handed a tensor).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from algodistill.envs.watermaze_render import CUE0, CUE_BANDS, CUE_COLOURS, SCENE, WALL, Scene, camera
from algodistill.errors import UserError


@lru_cache(maxsize=16)
def _camera(H: int, W: int, scene: Scene, device: torch.device) -> tuple[torch.Tensor, ...]:
    """`camera(H, W, scene)`'s arrays on `device`: x (W,), e2 (W,) float64, background (H,), palette (M, 3) uint8."""
    cam = camera(H, W, scene)
    return tuple(torch.from_numpy(a.copy()).to(device) for a in (cam.x, cam.e2, cam.background, cam.palette))


def render_torch(
    pos: torch.Tensor, heading: torch.Tensor, resolution: tuple[int, int] = (72, 96), scene: Scene = SCENE
) -> torch.Tensor:
    """What agents at `pos` (N, 2) facing `heading` (N,) radians see: (N, H, W, 3) uint8 on their device.

    The same bytes as `render(pos, heading, resolution)` on the CPU; pos and heading are read at float32.
    """
    H, W = resolution
    device = pos.device
    pos = pos.to(torch.float32).to(torch.float64).reshape(-1, 2)  # (N, 2)
    heading = heading.to(torch.float32).to(torch.float64).reshape(-1)  # (N,)
    N = len(pos)
    if heading.shape != (N,):
        raise UserError(f"heading has shape {tuple(heading.shape)}: pass one heading per position, shape ({N},)")
    r = torch.hypot(pos[:, 0], pos[:, 1])  # (N,)
    if N and not bool((r < scene.pool_radius).all()):  # also catches NaN; one sync per call
        bad = pos[~(r < scene.pool_radius)][0].tolist()
        raise UserError(
            f"pos=({bad[0]:.3g}, {bad[1]:.3g}) is outside the pool: choose a point at distance less than "
            f"{scene.pool_radius} from (0, 0)"
        )
    x, e2, background, palette = _camera(H, W, scene, device)
    cam = camera(H, W, scene)

    # cast(): one ray per column to the wall, closed form.
    px, py = pos[:, 0:1], pos[:, 1:2]  # (N, 1)
    fx, fy = torch.cos(heading)[:, None], torch.sin(heading)[:, None]  # (N, 1)
    ex, ey = fx - x * fy, fy + x * fx  # (N, W)
    pe = px * ex + py * ey  # (N, W)
    c = px * px + py * py - scene.pool_radius**2  # (N, 1)
    depth = (torch.sqrt(pe * pe - e2 * c) - pe) / e2  # (N, W)
    qx, qy = px + depth * ex, py + depth * ey  # (N, W)

    cos_half = math.cos(math.radians(scene.cue_half_width)) * scene.pool_radius
    colour = torch.full(depth.shape, WALL, dtype=torch.uint8, device=device)  # (N, W)
    band_lo = torch.zeros_like(depth)  # (N, W)
    band_hi = torch.zeros_like(depth)  # (N, W)
    for k in range(len(CUE_COLOURS)):
        bearing = math.radians(360.0 * k / len(CUE_COLOURS))
        hit = qx * math.cos(bearing) + qy * math.sin(bearing) >= cos_half  # (N, W)
        colour.masked_fill_(hit, CUE0 + k)
        band_lo.masked_fill_(hit, CUE_BANDS[k][0] * scene.wall_height)
        band_hi.masked_fill_(hit, CUE_BANDS[k][1] * scene.wall_height)

    scale = cam.focal / depth  # (N, W)

    def rows(z_top: float | torch.Tensor, z_bottom: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.ceil(cam.horizon - (z_top - scene.eye_height) * scale).clamp(0, H)  # (N, W)
        stop = (torch.floor(cam.horizon - (z_bottom - scene.eye_height) * scale) + 1).clamp(0, H)  # (N, W)
        return first.to(torch.int16)[:, None, :], stop.to(torch.int16)[:, None, :]  # (N, 1, W)

    wall_first, wall_stop = rows(scene.wall_height, 0.0)
    cue_first, cue_stop = rows(band_hi, band_lo)
    cue_stop.masked_fill_(colour[:, None, :] == WALL, 0)  # (N, 1, W)

    i = torch.arange(H, dtype=torch.int16, device=device)[None, :, None]  # (1, H, 1)
    on_wall = (i >= wall_first) & (i < wall_stop)  # (N, H, W)
    on_cue = (i >= cue_first) & (i < cue_stop)  # (N, H, W)
    idx = torch.where(on_wall, WALL, background[None, :, None])  # (N, H, W) uint8
    idx = torch.where(on_cue, colour[:, None, :], idx)  # (N, H, W)
    return palette[idx.long()]  # (N, H, W, 3)
