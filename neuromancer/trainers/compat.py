"""What differs between the Lightning versions the package admits, decided once, here.

``setup.py`` admits every Lightning from 2.5.3 on. Where a Lightning API the trainers use changed
within that range, this module reads once, at import, what the installed version offers, and
the trainers ask it instead of testing versions themselves.
"""
from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import ClusterEnvironment

__all__ = ["FIT_TAKES_WEIGHTS_ONLY", "cluster_environment", "fit_keywords"]

FIT_TAKES_WEIGHTS_ONLY: bool = "weights_only" in inspect.signature(pl.Trainer.fit).parameters
"""Whether ``Trainer.fit`` takes ``weights_only`` (Lightning 2.6 and later; 2.5 does not)."""


def fit_keywords() -> dict[str, Any]:
    """Keyword arguments for Lightning's ``Trainer.fit`` beyond the model, data and ``ckpt_path``.

    Where ``fit`` takes ``weights_only``, resuming reads the checkpoint with ``weights_only=True``
    whatever CheckpointIO the user installed. Older versions have no such option; there the
    checkpoint `LitTrainer.fit` resumes from has already been read weights-only once, before
    training, so an unsafe file is refused on every version.
    """
    return {"weights_only": True} if FIT_TAKES_WEIGHTS_ONLY else {}


def cluster_environment(trainer: pl.Trainer) -> ClusterEnvironment | None:
    """The cluster environment Lightning detected or was given for ``trainer`` (e.g. ``SLURMEnvironment``).

    Multi-process strategies expose it as ``trainer.strategy.cluster_environment``; a single-device
    strategy does not, although Lightning still chose one (a one-task SLURM job has a
    ``SLURMEnvironment`` whose requeue signal Lightning handles). Every Lightning version the
    package admits keeps it on the trainer's accelerator connector, which is read when the strategy
    has none.
    """
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None:
        environment = getattr(getattr(trainer, "_accelerator_connector", None), "cluster_environment", None)
    return environment if isinstance(environment, ClusterEnvironment) else None
