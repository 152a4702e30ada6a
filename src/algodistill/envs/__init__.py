"""Task families of the AD paper (Sec. 4.1): batched numpy simulators and single-task Gymnasium envs.

`get_family(name)` returns the family (spec, splits, reference returns, `make(task_ids)` for a
batched env); importing this package registers `algodistill/<Name>-v0` with Gymnasium.
"""

from __future__ import annotations

from functools import cache

import gymnasium

from algodistill.envs.bandit import BanditFamily
from algodistill.envs.base import BatchedEnv, TaskFamily
from algodistill.envs.darkroom import DarkRoomFamily
from algodistill.envs.keydoor import KeyToDoorFamily
from algodistill.envs.spec import EnvSpec
from algodistill.errors import UserError

ENV_NAMES = ("bandit", "darkroom", "darkroom-hard", "keydoor")
_GYM_IDS = {
    "bandit": "algodistill/Bandit-v0",
    "darkroom": "algodistill/DarkRoom-v0",
    "darkroom-hard": "algodistill/DarkRoomHard-v0",
    "keydoor": "algodistill/KeyToDoor-v0",
}


@cache
def get_family(name: str) -> TaskFamily:
    """The task family called `name` (one of ENV_NAMES), or a UserError listing the choices."""
    if name == "bandit":
        return BanditFamily()
    if name == "darkroom":
        return DarkRoomFamily("darkroom", _GYM_IDS[name], size=9, hard=False, num_test=16)
    if name == "darkroom-hard":
        return DarkRoomFamily("darkroom-hard", _GYM_IDS[name], size=17, hard=True, num_test=58)
    if name == "keydoor":
        return KeyToDoorFamily()
    raise UserError(f"env={name!r} is unknown: choose one of {', '.join(ENV_NAMES)}")


for _name, _id in _GYM_IDS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="algodistill.envs.gym_env:AlgoDistillEnv", kwargs={"family": _name})

__all__ = ["ENV_NAMES", "BatchedEnv", "EnvSpec", "TaskFamily", "get_family"]
