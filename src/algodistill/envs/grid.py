"""Grid mechanics shared by Dark Room and Key-to-Door: moves, distances, random-walk distributions.

Cells are flat indices `c = x * size + y`; observations are (x, y). Moves are a lookup table
`next_cell[c, a]` so that one batched step is one fancy index (no clipping arithmetic on the hot path).
"""

from __future__ import annotations

import numpy as np

ACTION_NAMES = ("left", "right", "up", "down", "no-op")
"""Paper Sec. 4.1 lists the five actions in this order: left, right, up, down, no-op."""
NUM_ACTIONS = len(ACTION_NAMES)
_DX = np.array([-1, 1, 0, 0, 0])
_DY = np.array([0, 0, 1, -1, 0])


def cell_xy(size: int) -> np.ndarray:
    """(x, y) of every cell. (S, 2) uint8"""
    c = np.arange(size * size)
    return np.stack([c // size, c % size], axis=1).astype(np.uint8)


def next_cell_table(size: int) -> np.ndarray:
    """next_cell[c, a]: the cell after action a in cell c; a move into a wall leaves the agent in place. (S, A)"""
    xy = cell_xy(size).astype(np.int64)
    x = np.clip(xy[:, :1] + _DX[None, :], 0, size - 1)  # (S, A)
    y = np.clip(xy[:, 1:] + _DY[None, :], 0, size - 1)  # (S, A)
    return (x * size + y).astype(np.int64)


def manhattan(size: int, c1: np.ndarray | int, c2: np.ndarray | int) -> np.ndarray:
    """Manhattan distance between flat cells (broadcasting)."""
    return np.abs(c1 // size - c2 // size) + np.abs(c1 % size - c2 % size)


def greedy_action(size: int, cell: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The optimal action towards `target`: close the x gap, then the y gap, then no-op. (N,)"""
    dx = target // size - cell // size
    dy = target % size - cell % size
    return np.select([dx < 0, dx > 0, dy > 0, dy < 0], [0, 1, 2, 3], default=4)


def random_walk_matrix(size: int) -> np.ndarray:
    """P[c, c']: one-step transition probabilities of the uniform-random policy. (S, S)"""
    S = size * size
    P = np.zeros((S, S))
    np.add.at(P, (np.repeat(np.arange(S), NUM_ACTIONS), next_cell_table(size).ravel()), 1.0 / NUM_ACTIONS)
    return P
