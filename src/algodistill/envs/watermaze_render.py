"""First-person renderer of the Watermaze pool (paper Sec. 4.1): a pure function of (position, heading).

`render(pos, heading, resolution)` draws what an agent standing in a circular pool sees, for a whole
batch at once: (N, 2) positions and (N,) headings -> (N, H, W, 3) uint8 frames. The env draws its
observations with it, so a dataset may store (pos, heading) and re-render the same bytes later.

The scene (all lengths in pool radii; bearings counter-clockwise from +x, seen from above):

- a circular wall of radius R = 1 and height 0.6 around a flat floor (the water), under a plain sky;
- 8 coloured cue panels on the wall, centred at bearings 0, 45, ..., 315 degrees and 30 degrees wide,
  each in its own colour and covering its own vertical band of the wall (full height, top half,
  bottom half or middle), so that position and heading can be read from the view (the distal cues of
  the Morris water maze); the wall between panels is grey;
- the floor darkens with distance, so depth is visible on the floor too;
- the platform is hidden: it is never drawn (DMLab's platform is hidden under the water).

The camera is a pinhole at eye height 0.2 with a 90 degree horizontal field of view and square
pixels: column j looks along e_j = forward + x_j * left, x_j = (1 - 2 (j + 0.5) / W) * tan(45 deg),
so column 0 is the left edge. A ray p + s * e_j meets the wall |q| = R where

    s = (-(p.e) + sqrt((p.e)^2 - |e|^2 (|p|^2 - R^2))) / |e|^2,

closed form (the ray starts inside the circle, so the root is real and positive). e_j has unit
forward component, so s is the hit's depth along the view axis (the ray's length is t = s |e_j|, its
angle to the view axis acos(1 / |e_j|); s = t cos(offset)). A world height z at depth s lands on the
image at v = f (z - eye) / s pixels above the horizon, f = (W / 2) / tan(45 deg): per column, the
wall spans the rows between v(0) and v(0.6), and a cue panel those of its band. So everything is
worked out per (N, W) column; the (N, H, W) image is then a few comparisons of row index against
per-column boundaries, and one palette look-up into the output.

Determinism: inputs are read at float32 (the stored form's precision: a float32 copy of the state
renders the same bytes), per-column geometry is float64 using only +, *, / and sqrt (correctly
rounded in IEEE 754, so the same on every machine) plus cos/sin of the N headings, and everything per
pixel is integer. So the same machine and numpy always give the same bytes; on another numpy build a
last-bit difference in cos/sin could move a boundary pixel, only when a boundary falls within ~1e-12
of a pixel's edge. `watermaze_render_torch.render_torch` is the same function in torch, for frames drawn
on an accelerator (the trainer's); the env draws with this one, which is the faster on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from algodistill.errors import UserError

# Cue panels: colour and the band of the wall they cover (as fractions of the wall height), by bearing.
CUE_COLOURS = (
    (220, 40, 40),  # 0 deg: red, full height
    (245, 150, 20),  # 45: orange, top half
    (235, 225, 40),  # 90: yellow, bottom half
    (40, 170, 60),  # 135: green, middle band
    (30, 200, 210),  # 180: cyan, full height
    (40, 70, 220),  # 225: blue, top half
    (140, 60, 200),  # 270: purple, bottom half
    (245, 110, 190),  # 315: pink, middle band
)
CUE_BANDS = ((0.0, 1.0), (0.5, 1.0), (0.0, 0.5), (0.25, 0.75)) * 2
SKY_COLOUR = (150, 190, 235)
WALL_COLOUR = (130, 130, 130)
FLOOR_COLOUR = (40, 110, 150)
FLOOR_SHADES = 32  # the floor's brightness by distance is quantised to this many levels


@dataclass(frozen=True)
class Scene:
    """The pool and the camera (lengths in pool radii, angles in degrees)."""

    pool_radius: float = 1.0
    wall_height: float = 0.6
    eye_height: float = 0.2
    fov: float = 90.0
    """horizontal field of view; the vertical one follows from square pixels (73.7 deg at 72 x 96)"""
    cue_half_width: float = 15.0
    """each cue panel spans its bearing +- this; panels are 360 / 8 = 45 deg apart"""
    floor_fade: float = 2.0
    """the floor's brightness falls linearly from 1 at the agent's feet to 0.5 at this distance, then stays"""

    def __post_init__(self) -> None:
        if not 0 < self.eye_height < self.wall_height:
            raise ValueError("the eye must be above the floor and below the top of the wall")
        if not 0 < self.cue_half_width < 360 / len(CUE_COLOURS) / 2:
            raise ValueError("cue panels must not overlap")


SCENE = Scene()

SKY, WALL, CUE0, FLOOR0 = 0, 1, 2, 2 + len(CUE_COLOURS)
"""Palette indices: sky, bare wall, the cue panels, then the floor's shades."""


@dataclass(frozen=True, eq=False)
class Camera:
    """Everything that depends on the resolution only, computed once per (H, W, scene)."""

    x: np.ndarray  # (W,) lateral offset of each column's ray per unit of forward distance (+ = left)
    e2: np.ndarray  # (W,) |e_j|^2 = 1 + x_j^2
    focal: float  # f, pixels per unit of height at unit depth
    horizon: float  # H / 2 - 0.5: the fractional row of the horizon (v = 0)
    background: np.ndarray  # (H,) uint8 palette index of each row where no wall covers it: sky or floor
    palette: np.ndarray  # (M, 3) uint8


@lru_cache(maxsize=16)
def _columns(W: int, scene: Scene) -> tuple[np.ndarray, np.ndarray, float]:
    """Each column's ray x_j (W,), |e_j|^2 = 1 + x_j^2 (W,), and the focal length f in pixels."""
    tan_half = math.tan(math.radians(scene.fov / 2))
    x = (1.0 - 2.0 * (np.arange(W) + 0.5) / W) * tan_half  # (W,)
    e2 = 1.0 + x * x  # (W,)
    x.setflags(write=False)  # shared by every call through the cache
    e2.setflags(write=False)
    return x, e2, (W / 2) / tan_half


@lru_cache(maxsize=16)
def camera(H: int, W: int, scene: Scene = SCENE) -> Camera:
    """The per-column rays, per-row background and palette of an H x W view."""
    x, e2, focal = _columns(W, scene)
    horizon = H / 2 - 0.5
    v = horizon - np.arange(H)  # (H,) pixels above the horizon of each row's centre
    # The floor seen by a row below the horizon is at depth f * eye / -v (the same in every column).
    depth = focal * scene.eye_height / np.maximum(-v, 1e-9)  # (H,)
    brightness = 1.0 - 0.5 * np.minimum(depth / scene.floor_fade, 1.0)  # (H,) in [0.5, 1]
    level = np.rint((brightness - 0.5) / 0.5 * (FLOOR_SHADES - 1)).astype(np.int64)  # (H,)
    background = np.where(v > 0, SKY, FLOOR0 + level).astype(np.uint8)  # (H,)
    shades = 0.5 + 0.5 * np.arange(FLOOR_SHADES) / (FLOOR_SHADES - 1)  # (FLOOR_SHADES,)
    floor = np.rint(np.outer(shades, FLOOR_COLOUR))  # (FLOOR_SHADES, 3)
    palette = np.concatenate([[SKY_COLOUR, WALL_COLOUR], CUE_COLOURS, floor]).astype(np.uint8)  # (M, 3)
    background.setflags(write=False)
    palette.setflags(write=False)
    return Camera(x, e2, focal, horizon, background, palette)


def cast(pos: np.ndarray, heading: np.ndarray, W: int, scene: Scene = SCENE) -> tuple[np.ndarray, ...]:
    """Cast one ray per image column from every agent to the wall (float64 in, float64 out).

    pos (N, 2), heading (N,) radians -> depth s (N, W), ray length t (N, W), hit point qx, qy (N, W).
    """
    x, e2, _ = _columns(W, scene)
    px, py = pos[:, 0:1], pos[:, 1:2]  # (N, 1)
    fx, fy = np.cos(heading)[:, None], np.sin(heading)[:, None]  # (N, 1) forward; left is (-fy, fx)
    ex = fx - x * fy  # (N, W) ray direction, unit forward component
    ey = fy + x * fx  # (N, W)
    pe = px * ex + py * ey  # (N, W)
    c = px * px + py * py - scene.pool_radius**2  # (N, 1) < 0 inside the pool
    depth = (np.sqrt(pe * pe - e2 * c) - pe) / e2  # (N, W)
    return depth, depth * np.sqrt(e2), px + depth * ex, py + depth * ey


def render(
    pos: np.ndarray,
    heading: np.ndarray,
    resolution: tuple[int, int] = (72, 96),
    scene: Scene = SCENE,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """What agents at `pos` (N, 2) facing `heading` (N,) radians see: (N, H, W, 3) uint8.

    A pure function: the same (pos, heading, resolution) gives the same bytes. pos and heading are
    read at float32. Positions must be strictly inside the pool; `out`, if given, receives the frames.
    The resolution is not checked here (WatermazeFamily checks its own).
    """
    H, W = resolution
    pos = np.asarray(pos, dtype=np.float32).astype(np.float64).reshape(-1, 2)  # (N, 2)
    heading = np.asarray(heading, dtype=np.float32).astype(np.float64).reshape(-1)  # (N,)
    N = len(pos)
    if heading.shape != (N,):
        raise UserError(f"heading has shape {heading.shape}: pass one heading per position, shape ({N},)")
    r = np.hypot(pos[:, 0], pos[:, 1])  # (N,)
    if N and not (r < scene.pool_radius).all():  # also catches NaN
        bad = pos[~(r < scene.pool_radius)][0]
        raise UserError(
            f"pos=({bad[0]:.3g}, {bad[1]:.3g}) is outside the pool: choose a point at distance less than "
            f"{scene.pool_radius} from (0, 0)"
        )
    cam = camera(H, W, scene)
    depth, _, qx, qy = cast(pos, heading, W, scene)  # (N, W) each

    # Which cue panel (if any) each column's ray hits: the hit's direction against each panel's centre.
    cos_half = math.cos(math.radians(scene.cue_half_width)) * scene.pool_radius
    colour = np.full(depth.shape, WALL, dtype=np.uint8)  # (N, W)
    band_lo = np.zeros(depth.shape)  # (N, W) the panel's band of the wall, in world heights
    band_hi = np.zeros(depth.shape)  # (N, W) empty (lo == hi) where no panel is hit
    for k in range(len(CUE_COLOURS)):
        bearing = math.radians(360.0 * k / len(CUE_COLOURS))
        hit = qx * math.cos(bearing) + qy * math.sin(bearing) >= cos_half  # (N, W)
        colour[hit] = CUE0 + k
        band_lo[hit] = CUE_BANDS[k][0] * scene.wall_height
        band_hi[hit] = CUE_BANDS[k][1] * scene.wall_height

    # Per column: the rows covered by the wall and by the panel's band. Row i shows height z when
    # v_i = horizon - i lies within f (z - eye) / depth, i.e. rows [ceil(row(z_top)), floor(row(z_bottom)) + 1).
    scale = cam.focal / depth  # (N, W) pixels per unit height at the wall

    def rows(z_top: float | np.ndarray, z_bottom: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.ceil(cam.horizon - (z_top - scene.eye_height) * scale)  # (N, W)
        stop = np.floor(cam.horizon - (z_bottom - scene.eye_height) * scale) + 1  # (N, W)
        first, stop = np.clip(first, 0, H), np.clip(stop, 0, H)
        return first.astype(np.int16)[:, None, :], stop.astype(np.int16)[:, None, :]  # (N, 1, W)

    wall_first, wall_stop = rows(scene.wall_height, 0.0)
    cue_first, cue_stop = rows(band_hi, band_lo)
    cue_stop[colour[:, None, :] == WALL] = 0  # (N, 1, W) no panel in this column: an empty band

    # Per pixel: the row index against the column's boundaries, then one palette look-up.
    i = np.arange(H, dtype=np.int16)[None, :, None]  # (1, H, 1)
    on_wall = (i >= wall_first) & (i < wall_stop)  # (N, H, W)
    on_cue = (i >= cue_first) & (i < cue_stop)  # (N, H, W)
    idx = np.where(on_wall, np.uint8(WALL), cam.background[None, :, None])  # (N, H, W) uint8
    idx = np.where(on_cue, colour[:, None, :], idx)  # (N, H, W)
    if out is None:
        out = np.empty((N, H, W, 3), dtype=np.uint8)
    return np.take(cam.palette, idx, axis=0, out=out)  # (N, H, W, 3)
