"""Methods by name: AD, ED, DPT and RL^2 (trained online, `algodistill.rl2`), each a module here;
`register_method` adds one from anywhere.

    method = get_method("ad")          # UserError naming the choices for an unknown name
    model = method.build_model(model_cfg, spec, generator)

The interface a method implements is `algodistill.methods.base.Method`.
"""

from __future__ import annotations

from algodistill.errors import UserError
from algodistill.methods.ad import AD
from algodistill.methods.base import NO_ACTION, Batch, Method, Policy, masked_nll
from algodistill.methods.dpt import DPT
from algodistill.methods.ed import ED
from algodistill.methods.rl2 import RL2

_METHODS: dict[str, Method] = {m.name: m for m in (AD(), ED(), RL2(), DPT())}


def register_method(method: Method) -> None:
    """Add a method to the registry (a new module of this package, a plugin, a test's toy method)."""
    if method.name in _METHODS:
        raise ValueError(f"a method called {method.name!r} is registered already")
    _METHODS[method.name] = method


def get_method(name: str) -> Method:
    """The method called `name`, or a UserError listing the registered ones."""
    if name not in _METHODS:
        raise UserError(f"method={name!r} is unknown: choose one of {', '.join(_METHODS)}")
    return _METHODS[name]


def method_names() -> tuple[str, ...]:
    """Names of the registered methods."""
    return tuple(_METHODS)


__all__ = ["NO_ACTION", "Batch", "Method", "Policy", "get_method", "masked_nll", "method_names", "register_method"]
