"""Training loops for NeuroMANCER problems.

Two trainers share one modeling layer: `Trainer` (module ``trainer``) is the classic plain
PyTorch loop, and `LitTrainer`, `LitProblem`, `LitDataModule` (module ``lightning``) train the
same `Problem` with PyTorch Lightning. Names are resolved on first access, so importing this
package imports neither loop, and Lightning is only loaded when a Lightning name is used.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Trainer": "neuromancer.trainers.trainer",
    "move_batch_to_device": "neuromancer.trainers.trainer",
    "LitTrainer": "neuromancer.trainers.lightning",
    "LitProblem": "neuromancer.trainers.lightning",
    "LitDataModule": "neuromancer.trainers.lightning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` the first time ``neuromancer.trainers.<name>`` is used."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuromancer.trainers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
