"""Upstream-compatible import path for the trainers: ``from neuromancer.trainer import Trainer``.

`Trainer` and `move_batch_to_device` come from `neuromancer.trainers.trainer`. `LitTrainer` is
resolved on first access from `neuromancer.trainers.lightning`, so importing this module does
not import Lightning.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from neuromancer._lazy import lazy_exports
from neuromancer.trainers.trainer import Trainer, move_batch_to_device

if TYPE_CHECKING:
    from neuromancer.trainers.lightning import LitTrainer

__all__ = ["LitTrainer", "Trainer", "move_batch_to_device"]

__getattr__, __dir__ = lazy_exports(__name__, {"LitTrainer": "neuromancer.trainers.lightning"})
