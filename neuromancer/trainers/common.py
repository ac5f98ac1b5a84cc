"""Small helpers the trainers share: the eval-metric name, argument checks, config reads, weight snapshots,
the multi-fidelity regularisation, the classic learning-rate scheduler.

This module imports only torch, neither Lightning nor any other trainer module, so the classic
`Trainer`, the Lightning modules and the sweep can all import it without importing each other.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["DEFAULT_EVAL_METRIC", "DEFAULT_LEARNING_RATE", "DEFAULT_BETAS", "resolve_eval_metric", "check_positive_int",
           "check_non_negative_int", "hparam", "cpu_state_dict", "batch_length", "fidelity_modules", "alpha_loss",
           "make_scheduler"]


class _DefaultName(str):
    """A default metric name: equal to the plain string, but recognisable by identity.

    Used as the default of ``eval_metric`` so that `resolve_eval_metric` can tell an
    ``eval_metric`` the caller wrote (even ``'dev_loss'``) from one left at its default.
    """

    __slots__ = ()


DEFAULT_EVAL_METRIC: str = _DefaultName("dev_loss")
"""The default ``eval_metric`` of both trainers, ``'dev_loss'``."""

DEFAULT_LEARNING_RATE = 0.001
"""Learning rate of `LitTrainer`'s default optimizer (without a swept or configured one)."""

DEFAULT_BETAS = (0.0, 0.9)
"""Adam's ``betas`` in `LitTrainer`'s default optimizer."""


def resolve_eval_metric(eval_metric: str, monitor_metric: str | None) -> str:
    """The metric that selects the best weights, given ``eval_metric`` and its alias ``monitor_metric``.

    ``eval_metric`` is the preferred name; ``monitor_metric`` is accepted as another name for it.

    :param eval_metric: the ``eval_metric`` argument (`DEFAULT_EVAL_METRIC` when not given).
    :param monitor_metric: the ``monitor_metric`` argument; None when not given.
    :return: ``monitor_metric`` when given, else ``eval_metric`` (the default as a plain str).
    :raises TypeError: ``monitor_metric`` is neither None nor a str.
    :raises ValueError: both are given, with different values.
    """
    if monitor_metric is None:
        return str(eval_metric) if eval_metric is DEFAULT_EVAL_METRIC else eval_metric
    if not isinstance(monitor_metric, str):
        raise TypeError(f"monitor_metric must be a str naming an output key, got {monitor_metric!r}.")
    if eval_metric is not DEFAULT_EVAL_METRIC and eval_metric != monitor_metric:
        raise ValueError(f"eval_metric={eval_metric!r} and monitor_metric={monitor_metric!r} name the same setting "
                         "(the metric that selects the best weights) with different values; pass only one of them "
                         "(eval_metric is the preferred name).")
    return str(monitor_metric)



def check_positive_int(value: Any, name: str) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an int >= 1 (booleans excluded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


def check_non_negative_int(value: Any, name: str) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an int >= 0 (booleans excluded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}.")


def hparam(config: Any, key: str) -> Any:
    """Read ``key`` from a hyperparameter config (a mapping, a wandb config or a namespace).

    :param config: the config; None reads as empty.
    :param key: the entry to read, e.g. ``'learning_rate'`` or ``'batch_size'``.
    :return: the value, or None when the config has no such entry.
    """
    if config is None:
        return None
    if hasattr(config, "keys"):
        return config[key] if key in config else None
    return getattr(config, key, None)


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Return a detached copy of ``module.state_dict()`` on the CPU (a snapshot that later steps cannot change).

    :param module: the module to snapshot.
    :return: parameter and buffer names mapped to CPU copies.
    """
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()}


def batch_length(batch: Any) -> int:
    """Number of samples in a batch dict: the leading size of its first tensor (1 when none has one).

    :param batch: a mapping of names to tensors and other values (a collated `DictDataset` batch).
    """
    return next((len(v) for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() > 0), 1)


def fidelity_modules(problem: torch.nn.Module) -> list[Any]:
    """The node callables of ``problem`` that provide ``get_alpha_loss()`` (multi-fidelity networks).

    :param problem: a `Problem` (its ``nodes`` are searched).
    :return: those callables, in node order.
    :raises ValueError: no node's callable has ``get_alpha_loss`` (multi_fidelity=True cannot work).
    """
    modules = [node.callable for node in getattr(problem, "nodes", [])
               if callable(getattr(getattr(node, "callable", None), "get_alpha_loss", None))]
    if not modules:
        raise ValueError("multi_fidelity=True needs a node whose callable has get_alpha_loss() "
                         "(e.g. blocks.StackedMLP); none was found. Set multi_fidelity=False.")
    return modules


def alpha_loss(modules: list[Any]) -> torch.Tensor:
    """The multi-fidelity regularisation added to the training loss: the sum of the modules' ``get_alpha_loss()``.

    :param modules: what `fidelity_modules` returned.
    """
    return torch.stack([module.get_alpha_loss() for module in modules]).sum()


def make_scheduler(lr_scheduler: Any, optimizer: torch.optim.Optimizer) -> Any:
    """The learning-rate scheduler to step once per epoch, from a trainer's ``lr_scheduler`` argument.

    :param lr_scheduler: False or None for none; True for upstream's
        ``ReduceLROnPlateau(optimizer, mode='min', factor=0.5, patience=100)``; or a scheduler.
    :param optimizer: the optimizer True builds the scheduler on.
    :return: None, the new ``ReduceLROnPlateau``, or ``lr_scheduler`` itself.
    :raises TypeError: ``lr_scheduler`` is neither a bool nor something with ``step()``.
    """
    if lr_scheduler is False or lr_scheduler is None:
        return None
    if lr_scheduler is True:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=100)
    if not hasattr(lr_scheduler, "step"):
        raise TypeError(f"lr_scheduler must be a bool or a torch learning-rate scheduler, got {lr_scheduler!r}.")
    return lr_scheduler
