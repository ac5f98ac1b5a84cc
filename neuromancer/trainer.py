"""Upstream-compatible import path for the trainers: ``from neuromancer.trainer import Trainer``.

`Trainer` and `move_batch_to_device` come from `neuromancer.trainers.trainer`. `LitTrainer` is
resolved on first access from `neuromancer.trainers.lightning`, so importing this module does
not import Lightning.
"""
from __future__ import annotations

import importlib
from typing import Any

from neuromancer.trainers.trainer import Trainer, move_batch_to_device

_LIGHTNING_EXPORTS = frozenset({"LitTrainer"})

__all__ = ["LitTrainer", "Trainer", "move_batch_to_device"]


def __getattr__(name: str) -> Any:
    """Import ``LitTrainer`` from `neuromancer.trainers.lightning` the first time it is used."""
    if name in _LIGHTNING_EXPORTS:
        value = getattr(importlib.import_module("neuromancer.trainers.lightning"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuromancer.trainer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LIGHTNING_EXPORTS)
