"""Experiment loggers for the classic `Trainer`: metrics to the log and to files, artifacts to disk.

`BasicLogger` creates ``savedir``, writes the run's arguments to ``args.json``, appends every
``log_metrics`` call (all scalar entries) as a JSON line to ``metrics.jsonl``, reports the metrics
named in ``stdout`` through the ``logging`` module every ``verbosity`` epochs, and saves artifacts
(e.g. the best model) with ``torch.save``. `LossLogger` additionally keeps each epoch's train, dev
and test losses in memory for plotting (`LossLogger.get_losses`). Nothing is printed; configure
``logging`` (e.g. ``logging.basicConfig(level=logging.INFO)``) to see the progress lines.
"""
from __future__ import annotations

import json
import logging
import numbers
import os
import pickle
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    import argparse

log = logging.getLogger(__name__)

DEFAULT_STDOUT = ("nstep_dev_loss", "loop_dev_loss", "best_loop_dev_loss",
                  "nstep_dev_ref_loss", "loop_dev_ref_loss")
METRICS_FILE = "metrics.jsonl"
ARGS_FILE = "args.json"


def _scalar(value: Any) -> float | None:
    """``value`` as a float where it is a number or a one-element tensor, else None."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().reshape(())) if value.numel() == 1 else None
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return float(value)
    return None


def _args_dict(args: Any) -> dict[str, Any]:
    """The run arguments as a dict (argparse Namespace, mapping, or any object with attributes)."""
    if isinstance(args, Mapping):
        return dict(args)
    if hasattr(args, "__dict__"):
        return dict(vars(args))
    return {"args": args}


class BasicLogger:
    """Log training metrics and parameters, and save artifacts into ``savedir``.

    :param args: the run's settings, written to ``savedir/args.json`` and logged.
    :param savedir: folder for the files; created if missing.
    :param verbosity: report the ``stdout`` metrics every ``verbosity`` steps.
    :param stdout: metric keys to report, e.g. ``['train_loss', 'dev_loss']``.
    :raises ValueError: ``verbosity`` is not a positive int.
    """

    def __init__(self, args: argparse.Namespace | Mapping[str, Any] | None = None, savedir: str = "test",
                 verbosity: int = 10, stdout: Sequence[str] = DEFAULT_STDOUT) -> None:
        if not isinstance(verbosity, int) or verbosity < 1:
            raise ValueError(f"BasicLogger verbosity must be a positive int (report every N epochs), "
                             f"got {verbosity!r}.")
        os.makedirs(savedir, exist_ok=True)
        self.stdout = stdout
        self.savedir = savedir
        self.verbosity = verbosity
        self.start_time = time.time()
        self.step = 0
        self.args = args
        self.log_parameters()

    def log_parameters(self) -> None:
        """Log the run's arguments and write them to ``savedir/args.json`` (nothing where args is None)."""
        if self.args is None:
            return
        settings = _args_dict(self.args)
        log.info("run parameters: %s", settings)
        with open(os.path.join(self.savedir, ARGS_FILE), "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=2, sort_keys=True, default=str)

    def log_weights(self, model: nn.Module) -> int:
        """Log and return the number of trainable parameters of ``model``.

        :param model: the model.
        :return: the number of elements of parameters with ``requires_grad``.
        """
        nweights = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log.info("Number of parameters: %d", nweights)
        return nweights

    def log_metrics(self, output: Mapping[str, Any], step: int | None = None) -> None:
        """Record the scalar entries of ``output``; report the ``stdout`` ones every ``verbosity`` steps.

        Every call appends ``{"step": step, "elapsed": seconds, key: value, ...}`` (scalars only:
        numbers and one-element tensors) as one line to ``savedir/metrics.jsonl``.

        :param output: e.g. the Trainer's epoch output.
        :param step: the epoch; None reuses the last step given.
        """
        if step is None:
            step = self.step
        else:
            self.step = step
        elapsed = time.time() - self.start_time
        scalars = {k: v for k, v in ((k, _scalar(v)) for k, v in output.items()) if v is not None}
        with open(os.path.join(self.savedir, METRICS_FILE), "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "elapsed": elapsed, **scalars}) + "\n")
        if step % self.verbosity == 0:
            shown = [f"{k}: {scalars[k]:.5f}" for k in scalars if k in self.stdout]
            log.info("\t".join([f"epoch: {step}", *shown, f"eltime: {elapsed:.5f}"]))

    def log_artifacts(self, artifacts: Mapping[str, Any]) -> None:
        """Save each artifact with ``torch.save`` to ``savedir/<key>``.

        Uses dill where it is installed, so models holding lambdas pickle. A module
        that cannot be pickled is saved as its ``state_dict`` instead, with a warning.

        :param artifacts: file name -> object (tensor, state dict, model, ...).
        """
        pickle_module = _pickle_module()
        for name, value in artifacts.items():
            path = os.path.join(self.savedir, name)
            try:
                torch.save(value, path, pickle_module=pickle_module)
            except (pickle.PicklingError, AttributeError, TypeError) as error:
                if not isinstance(value, nn.Module):
                    raise
                log.warning("artifact %r cannot be pickled (%s); saving its state_dict instead", name, error)
                torch.save(value.state_dict(), path)

    def clean_up(self) -> None:
        """End the run. Files in ``savedir`` are kept; the metrics file is closed after every write, so
        nothing is pending."""
        log.debug("logger for %s finished after %.1f s", self.savedir, time.time() - self.start_time)


def _pickle_module() -> Any:
    """dill where installed (pickles lambdas and local functions), else the standard pickle."""
    try:
        import dill
    except ImportError:
        return pickle
    return dill


class LossLogger(BasicLogger):
    """A `BasicLogger` that also keeps the history of the train, dev and test losses.

    Every `log_metrics` call stores the ``stdout`` metrics whose key contains 'loss' under 'train',
    'dev' or 'test' (by which of those the key contains): the history has one entry per call, i.e.
    per epoch.

    Parameters as `BasicLogger`.
    """

    def __init__(self, args: Any = None, savedir: str = "test", verbosity: int = 10,
                 stdout: Sequence[str] = DEFAULT_STDOUT) -> None:
        super().__init__(args, savedir, verbosity, stdout)
        self.losses: dict[str, list[float]] = {"train": [], "dev": [], "test": []}

    def log_metrics(self, output: Mapping[str, Any], step: int | None = None) -> None:
        """Record as `BasicLogger.log_metrics` and append the losses to their histories."""
        super().log_metrics(output, step)
        for key, value in output.items():
            number = _scalar(value)
            if number is None or key not in self.stdout or "loss" not in key.lower():
                continue
            split = next((s for s in ("train", "dev", "test") if s in key.lower()), None)
            if split is not None:
                self.losses[split].append(number)

    def get_losses(self) -> dict[str, list[float]]:
        """Return the recorded histories, only for the splits that have entries.

        :return: e.g. ``{'train': [...], 'dev': [...]}``, one value per logged epoch.
        """
        return {split: list(values) for split, values in self.losses.items() if values}
