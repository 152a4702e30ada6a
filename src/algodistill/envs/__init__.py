"""Task families of the AD paper (Sec. 4.1): batched numpy simulators and single-task Gymnasium envs.

`get_family(name)` returns the family (spec, splits, reference returns, `make(task_ids)` for a
batched env); importing this package registers `algodistill/<Name>-v0` with Gymnasium.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import gymnasium

from algodistill.envs.bandit import BanditFamily
from algodistill.envs.base import BatchedEnv, TaskFamily
from algodistill.envs.darkroom import DarkRoomFamily
from algodistill.envs.keydoor import KeyToDoorFamily
from algodistill.envs.spec import EnvSpec
from algodistill.envs.watermaze import WatermazeFamily
from algodistill.errors import UserError

_GYM_IDS = {
    "bandit": "algodistill/Bandit-v0",
    "darkroom": "algodistill/DarkRoom-v0",
    "darkroom-hard": "algodistill/DarkRoomHard-v0",
    "keydoor": "algodistill/KeyToDoor-v0",
    "watermaze": "algodistill/Watermaze-v0",
    "watermaze-small": "algodistill/WatermazeSmall-v0",
}
_FAMILIES: dict[str, Callable[[], TaskFamily]] = {
    "bandit": BanditFamily,
    "darkroom": lambda: DarkRoomFamily("darkroom", _GYM_IDS["darkroom"], size=9, hard=False, num_test=16),
    "darkroom-hard": lambda: DarkRoomFamily(
        "darkroom-hard", _GYM_IDS["darkroom-hard"], size=17, hard=True, num_test=58
    ),
    "keydoor": KeyToDoorFamily,
    "watermaze": WatermazeFamily,  # 72 x 96, the paper's resolution
    "watermaze-small": lambda: WatermazeFamily("watermaze-small", _GYM_IDS["watermaze-small"], resolution=(36, 48)),
}
ENV_NAMES = tuple(_FAMILIES)
"""The built-in task families."""


def register_family(name: str, make: Callable[[], TaskFamily]) -> None:
    """Add a task family under `name` (a new env module, a plugin, a test's toy family)."""
    if name in _FAMILIES:
        raise ValueError(f"a task family called {name!r} is registered already")
    _FAMILIES[name] = make


def get_family(name: str) -> TaskFamily:
    """The task family called `name`, or a UserError listing the choices."""
    if name not in _FAMILIES:
        raise UserError(f"env={name!r} is unknown: choose one of {', '.join(_FAMILIES)}")
    return _built(name)


@cache
def _built(name: str) -> TaskFamily:
    return _FAMILIES[name]()


for _name, _id in _GYM_IDS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="algodistill.envs.gym_env:AlgoDistillEnv", kwargs={"family": _name})

__all__ = ["ENV_NAMES", "BatchedEnv", "EnvSpec", "TaskFamily", "get_family", "register_family"]
