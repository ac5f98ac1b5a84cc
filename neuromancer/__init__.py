"""NeuroMANCER: differentiable constrained optimization and control, trained with PyTorch or Lightning.

Importing the package is cheap: submodules (``neuromancer.system``, ``neuromancer.psl``, ...)
load on first attribute access, so ``import neuromancer`` never pulls in lightning, wandb,
scipy or matplotlib. The import paths are NeuroMANCER 1.5's, so scripts written for it run unchanged.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from neuromancer.version import __version__

_SUBMODULES = frozenset({
    "arg", "callbacks", "constraint", "dataset", "dynamics", "loggers", "loss", "modules", "plot",
    "problem", "psl", "slim", "system", "trainer", "trainers", "utils", "vmap",
})

__all__ = ["__version__", *sorted(_SUBMODULES)]


def __getattr__(name: str) -> ModuleType:
    """Import a submodule the first time ``neuromancer.<name>`` is accessed."""
    if name in _SUBMODULES:
        module = importlib.import_module(f"neuromancer.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'neuromancer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
