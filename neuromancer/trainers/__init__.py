"""Training loops for NeuroMANCER problems.

Two trainers share one modeling layer: `Trainer` (module ``trainer``) is the classic plain
PyTorch loop, and `LitTrainer`, `LitProblem`, `LitDataModule` (module ``lightning``) train the
same `Problem` with PyTorch Lightning. Names are resolved on first access, so importing this
package imports neither loop, and Lightning is only loaded when a Lightning name is used.
"""
from __future__ import annotations

from neuromancer._lazy import lazy_exports

_EXPORTS = {
    "Trainer": "neuromancer.trainers.trainer",
    "move_batch_to_device": "neuromancer.trainers.trainer",
    "LitTrainer": "neuromancer.trainers.lightning",
    "LitProblem": "neuromancer.trainers.lightning",
    "LitDataModule": "neuromancer.trainers.lightning",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
