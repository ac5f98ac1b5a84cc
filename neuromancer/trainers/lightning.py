"""Train NeuroMANCER problems with PyTorch Lightning: `LitTrainer`, `LitProblem` and `LitDataModule`.

``LitTrainer(epochs=10).fit(problem, data_setup_function, nsim=100)`` wraps the `Problem` in a
`LitProblem` (a LightningModule that logs the metric names the user chose), wraps the data setup
function in a `LitDataModule` (train/dev/test loaders built from `DictDataset`'s own batched fetch
and collate function), and runs a Lightning `Trainer` configured with NeuroMANCER semantics:
checkpointing and early stopping on ``eval_metric``, gradient clipping by norm, and an in-memory
best-weights keeper so that, on every strategy, the user's problem ends up holding the weights
that scored best. Only the public API of `Problem` (``forward``, ``parameters``, ``state_dict``),
`DictDataset` (``name``, ``collate_fn``, batched ``__getitems__``) and `Callback` is used, so this
module also fits the upstream tree. The data side (`LitDataModule`, the data checks) lives in
`neuromancer.trainers.lightning_data`, the custom-hook checks in
`neuromancer.trainers.lightning_hooks` and `hparam` in `neuromancer.trainers.common`; all are
re-exported here. Lightning is imported here at module level; the package only imports this
module when a Lightning name is first used.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback as LightningCallback
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import Profiler
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from neuromancer.callbacks import Callback
from neuromancer.exceptions import NeuromancerError
from neuromancer.loggers import BasicLogger
from neuromancer.trainers.checkpoint_io import with_checkpoint_io
from neuromancer.trainers.common import (
    DEFAULT_BETAS,
    DEFAULT_EVAL_METRIC,
    DEFAULT_LEARNING_RATE,
    alpha_loss,
    batch_length,
    check_non_negative_int,
    check_positive_int,
    cpu_state_dict,
    fidelity_modules,
    hparam,
    make_scheduler,
    resolve_eval_metric,
)
from neuromancer.trainers.compat import fit_keywords
from neuromancer.trainers.lightning_callbacks import (
    BestWeights,
    LastCheckpoint,
    NeuromancerCallbackAdapter,
    RandomState,
    WarmupEarlyStopping,
)
from neuromancer.trainers.lightning_cluster import (
    SlurmRequeue,
    join_restarted_process_group,
    latest_checkpoint,
    newest_hpc_checkpoint,
    scheduler_signals_kept,
)
from neuromancer.trainers.lightning_data import SPLITS, LitDataModule, validate_batch_size, validate_data_splits
from neuromancer.trainers.lightning_hooks import (
    BINDABLE_HOOKS,
    CHAINED_HOOKS,
    EPOCH_END_HOOKS,
    StepFunction,
    TensorDict,
    bind_custom_hooks,
    check_training_step,
    validate_custom_hooks,
)
from neuromancer.trainers.run_guards import UnwritableDirectoryError, ensure_writable_directory, sigint_handler_kept
from neuromancer.trainers.sweep import SweepResult
from neuromancer.trainers.sweep import hyperparameter_sweep as run_sweep
from neuromancer.utils import read_checkpoint

logger = logging.getLogger(__name__)

# The names defined here, then those re-exported from the data and hook modules they were split into.
__all__ = ["LitTrainer", "LitProblem", "UnwritableDirectoryError", "InferenceModeError",
           "LitDataModule", "hparam", "validate_data_splits", "validate_batch_size", "SPLITS",
           "validate_custom_hooks", "bind_custom_hooks", "BINDABLE_HOOKS", "CHAINED_HOOKS", "EPOCH_END_HOOKS"]

PROFILER_NAMES = ("simple", "advanced", "pytorch", "xla")
NONFINITE_MODES = ("stop", "skip")
EVAL_MODES = ("min", "max")
LAST_CHECKPOINT = "last"


def _check_custom_optimizer(optimizer: torch.optim.Optimizer | None, problem: torch.nn.Module) -> None:
    """Raise unless ``optimizer`` is None or an optimizer built on parameters of ``problem``."""
    if optimizer is None:
        return
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"custom_optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}.")
    own = {id(p) for p in problem.parameters()}
    foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in own]
    if foreign:
        raise ValueError(f"custom_optimizer updates {len(foreign)} tensor(s) that are not parameters of the problem; "
                         "build it on problem.parameters() of the problem you pass to fit.")


def _metric(output: Mapping[str, Any], name: str) -> torch.Tensor:
    """Return ``output[name]``, or raise a KeyError that lists the available outputs."""
    try:
        return output[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not among the problem's outputs {sorted(output)}; outputs are "
                       "prefixed with the dataset name, so set the metric to one of them.") from None


def _step_loss(result: Any, train_metric: str) -> torch.Tensor | None:
    """Extract the loss from a custom training step's result: a tensor, a dict, or None."""
    if result is None or isinstance(result, torch.Tensor):
        return result
    if isinstance(result, Mapping):
        for key in (train_metric, "loss"):
            if key in result:
                return result[key]
        raise KeyError(f"custom_training_step returned a dict without {train_metric!r} or 'loss' "
                       f"(keys: {sorted(result)}); include the loss to optimise under one of them.")
    raise TypeError(f"custom_training_step must return a loss tensor, a dict holding it, or None; "
                    f"got {type(result).__name__}.")


def _detached(output: Mapping[str, Any]) -> TensorDict:
    """A copy of ``output`` whose tensors are detached from autograd."""
    return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in output.items()}


def _module_device(module: torch.nn.Module) -> torch.device:
    """Device of the module's first parameter or buffer (CPU for a module without tensors)."""
    tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


class LitProblem(pl.LightningModule):
    """A LightningModule around a NeuroMANCER `Problem`.

    ``training_step`` runs ``problem(batch)`` (or ``custom_training_step(self, batch)``) and
    returns ``output[train_metric]``; ``validation_step`` and ``test_step`` evaluate ``dev_metric``
    and ``test_metric``. The module sums each metric (detached, so no autograd graph outlives its
    step) and logs the sample-weighted epoch mean once per epoch, reduced over processes in
    multi-device runs: ``<train_metric>_epoch`` for the loggers and ``<train_metric>`` for callbacks,
    ``<dev_metric>`` and ``<test_metric>``. The training loss of single steps is logged as
    ``<train_metric>_step`` on the steps the loggers write (every ``log_every_n_steps``), or on every
    step while a progress bar shows it; calling Lightning's ``log`` only then keeps its per-call
    cost out of the other steps. The problem's weights appear in the state dict under the ``problem.``
    prefix.

    ``training_step_outputs`` and ``validation_step_outputs`` list this epoch's detached step
    losses (``train_metric`` of each finite training step, ``dev_metric`` of each dev batch). They
    are emptied when an epoch starts, so every epoch-end hook (the module's, a custom one,
    callbacks') sees the whole epoch, e.g. ``torch.stack(self.training_step_outputs).mean()``.

    The module also works outside a `fit`, on any callable problem that has ``parameters()``:
    ``training_step(batch, 0)`` returns the loss and fills ``training_step_outputs``, and the
    epoch-end hooks run without a trainer (they log nothing then).

    Every training step's loss is checked: a NaN or infinite loss is never back-propagated. With
    ``nonfinite='stop'`` training stops at that step, with a warning naming the epoch, the batch,
    the global step and the metric (the best weights seen so far are what `LitTrainer` keeps); with
    ``nonfinite='skip'`` the step is skipped (counted in ``skipped_steps``) and training goes on.
    After a stop, ``nonfinite_stop`` says where (e.g. ``'epoch 2, batch 1 (global step 9):
    train_loss=nan is not finite'``); it is None otherwise.
    The check reads one number from the device per step (the loss itself, when it is a scalar):
    free on a CPU and, on a GPU, a synchronisation that costs about one kernel-launch latency (the
    host waits for the forward pass, then queues the backward pass), which is the price of keeping
    a non-finite step's update out of the weights; in multi-process runs the processes agree on it
    (one tiny all-reduce), so all of them skip or stop at the same step. A dev-split mean that is
    not finite stops training too.

    Custom hooks replace the module's hooks of the same name, except the epoch-start and epoch-end
    hooks (``on_train_epoch_start``, ``on_train_epoch_end``, their validation and test versions),
    which run after the module's own (so an epoch-end hook sees the epoch's logged means), and
    ``on_before_optimizer_step``, which runs after the module's own.

    :param problem: the `Problem` to train (any callable with ``parameters()`` outside `LitTrainer`).
    :param train_metric: output key minimised during training.
    :param dev_metric: output key logged on the dev split (`LitTrainer` passes 'dev_loss').
    :param test_metric: output key logged on the test split.
    :param custom_optimizer: an optimizer already built on ``problem.parameters()``; None for
        ``Adam(lr=lr, betas=(0.0, 0.9))``.
    :param custom_training_step: ``f(model, batch)`` returning the loss (a tensor, a dict holding it
        under ``train_metric`` or ``'loss'``, or None after a manual step).
    :param custom_hooks: Lightning hook name -> ``f(self, ...)`` bound onto the module.
    :param hparam_config: a mapping or a wandb config; a ``learning_rate`` entry sets ``lr``,
        the learning rate of the default optimizer and of a custom one; without it ``lr`` is 0.001
        and a custom optimizer keeps its own.
    :param nonfinite: what a NaN or infinite training loss does: 'stop' training or 'skip' the
        step. Under manual optimisation the custom step has already applied its update, so 'skip'
        only keeps the loss out of the epoch mean.
    :param multi_fidelity: add the ``get_alpha_loss()`` of every node callable that has one
        (multi-fidelity networks such as ``blocks.StackedMLP``) to the default training step's
        loss, as the classic `Trainer` does; a custom training step computes its own loss.
    :param lr_scheduler: True for ``ReduceLROnPlateau(factor=0.5, patience=100)`` on the
        optimizer, or a scheduler built on ``custom_optimizer``; stepped once per epoch, a
        ``ReduceLROnPlateau`` with the epoch mean of ``train_metric`` (see `configure_optimizers`).
    :raises TypeError: ``problem`` is not callable or has no ``parameters()``, or a custom part has
        the wrong type.
    :raises ValueError | KeyError: see `validate_custom_hooks`; a custom optimizer built on other
        parameters; a custom training step that cannot take ``(model, batch)``; an unknown
        ``nonfinite`` mode; ``multi_fidelity`` without a node providing ``get_alpha_loss``; an
        ``lr_scheduler`` that is not built on ``custom_optimizer``.
    """

    def __init__(self, problem: torch.nn.Module, train_metric: str = "train_loss", dev_metric: str = "train_loss",
                 test_metric: str = "train_loss", custom_optimizer: torch.optim.Optimizer | None = None,
                 custom_training_step: StepFunction | None = None,
                 custom_hooks: Mapping[str, Callable] | None = None, hparam_config: Any = None, *,
                 nonfinite: str = "stop", multi_fidelity: bool = False,
                 lr_scheduler: bool | LRScheduler | ReduceLROnPlateau = False) -> None:
        super().__init__()
        _check_nonfinite_mode(nonfinite)
        _check_lr_scheduler(lr_scheduler, custom_optimizer)
        self.lr_scheduler = lr_scheduler
        if not callable(problem) or not callable(getattr(problem, "parameters", None)):
            raise TypeError(f"problem must be a neuromancer Problem (an nn.Module, or a callable with parameters()), "
                            f"got {type(problem).__name__}.")
        self._fidelity_modules = fidelity_modules(problem) if multi_fidelity else []
        _check_custom_optimizer(custom_optimizer, problem)
        check_training_step(custom_training_step)
        self.problem = problem
        self.train_metric, self.dev_metric, self.test_metric = train_metric, dev_metric, test_metric
        self.custom_optimizer = custom_optimizer
        self.custom_training_step = custom_training_step
        self.custom_hooks = validate_custom_hooks(custom_hooks)
        self.hparam_config = hparam_config
        self._configured_lr = hparam(hparam_config, "learning_rate")
        self.lr = DEFAULT_LEARNING_RATE if self._configured_lr is None else self._configured_lr
        self.training_step_outputs: list[torch.Tensor] = []
        self.validation_step_outputs: list[torch.Tensor] = []
        self.record_outputs = False
        self.last_outputs: dict[str, TensorDict] = {}
        self._sums: dict[str, list[Any]] = {}
        self.nonfinite = nonfinite
        self.nonfinite_stop: str | None = None
        self._drop_gradients = False
        self.skipped_steps = 0
        self._skipped_this_epoch = 0
        bind_custom_hooks(self, self.custom_hooks, chained=CHAINED_HOOKS)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the bound custom hooks (methods bound onto the instance do not pickle)."""
        state = super().__getstate__()
        for name in self.custom_hooks:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Bind the custom hooks again, e.g. in a worker process a spawn-based strategy started."""
        super().__setstate__(state)
        bind_custom_hooks(self, self.custom_hooks, chained=CHAINED_HOOKS)

    def get_problem(self) -> torch.nn.Module:
        """Return the wrapped `Problem`."""
        return self.problem

    @property
    def attached_trainer(self) -> pl.Trainer | None:
        """The Trainer running this module, or None outside a fit or test (where ``trainer`` raises)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def training_step(self, batch: TensorDict, batch_idx: int) -> torch.Tensor | None:
        """Run the problem (or the custom step) on a training batch and return ``train_metric``.

        Like the classic `Trainer`, it adds the current epoch to the batch as ``batch['epoch']``
        (an int), which epoch-dependent losses such as `neuromancer.loss.AugmentedLagrangeLoss` read,
        and, with ``multi_fidelity``, adds the multi-fidelity nodes' ``get_alpha_loss()`` to the
        default step's loss (and so to the logged ``train_metric``).

        :param batch: a batch named 'train'.
        :param batch_idx: index of the batch in the epoch.
        :return: the loss Lightning back-propagates (None: skip the step).
        :raises KeyError: ``train_metric`` is not among the outputs.
        """
        batch["epoch"] = self.current_epoch
        loss: torch.Tensor | None
        if self.custom_training_step is None:
            output = self.problem(batch)
            loss = _metric(output, self.train_metric)
            if self._fidelity_modules:
                loss = loss + alpha_loss(self._fidelity_modules)
                output = {**output, self.train_metric: loss}
        else:
            output = self.custom_training_step(self, batch)
            loss = _step_loss(output, self.train_metric)
        trainer = self.attached_trainer
        if loss is not None and not self._loss_is_finite(loss, batch_idx, trainer):
            return self._no_update_loss()
        if loss is not None:
            detached, size = loss.detach(), batch_length(batch)
            self.training_step_outputs.append(detached)
            self._accumulate(self.train_metric, detached, size)
            if trainer is not None and _step_is_shown(trainer, self.global_step):
                self.log(f"{self.train_metric}_step", detached, on_step=True, on_epoch=False, prog_bar=True,
                         batch_size=size)
        if self.record_outputs:
            self.last_outputs["train"] = _detached(output if isinstance(output, Mapping) else
                                                   {self.train_metric: loss})
        return loss

    def validation_step(self, batch: TensorDict, batch_idx: int) -> None:
        """Evaluate the problem on a dev batch and add ``dev_metric`` to the epoch's mean.

        :raises KeyError: ``dev_metric`` is not among the outputs.
        """
        self._evaluate("dev", self.dev_metric, batch)

    def test_step(self, batch: TensorDict, batch_idx: int) -> None:
        """Evaluate the problem on a test batch and add ``test_metric`` to the split's mean.

        :raises KeyError: ``test_metric`` is not among the outputs.
        """
        self._evaluate("test", self.test_metric, batch)

    def on_train_epoch_start(self) -> None:
        """Empty ``training_step_outputs`` for the epoch that starts."""
        self.training_step_outputs.clear()

    def on_validation_epoch_start(self) -> None:
        """Empty ``validation_step_outputs`` for the dev pass that starts."""
        self.validation_step_outputs.clear()

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean training loss (over its finite steps) and how many steps were skipped."""
        self._log_epoch_mean(self.train_metric, logged_name=f"{self.train_metric}_epoch")
        if self._skipped_this_epoch > 1 and self.global_rank == 0:
            logger.warning("Skipped %d steps of epoch %d whose %s was not finite (%d in all).",
                           self._skipped_this_epoch, self.current_epoch, self.train_metric, self.skipped_steps)
        self._skipped_this_epoch = 0

    def on_validation_epoch_end(self) -> None:
        """Log the mean of ``dev_metric`` over the dev split; stop training if it is not finite."""
        mean = self._log_epoch_mean(self.dev_metric)
        trainer = self.attached_trainer
        if trainer is not None and not trainer.sanity_checking:
            self._stop_if_not_finite(self.dev_metric, mean)

    def on_test_epoch_end(self) -> None:
        """Log the mean of ``test_metric`` over the test split."""
        self._log_epoch_mean(self.test_metric)

    def epoch_mean(self, name: str) -> torch.Tensor | None:
        """The running mean of metric ``name`` over the current epoch (this process only), or None.

        :param name: a metric this module accumulates (train, dev or test metric).
        """
        if name not in self._sums:
            return None
        total, count = self._sums[name]
        return total / count

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """Return the custom optimizer if one was given, else ``Adam(lr=self.lr, betas=(0.0, 0.9))``.

        A ``learning_rate`` in ``hparam_config`` also sets the learning rate of a custom optimizer.
        With an ``lr_scheduler``, return Lightning's ``{'optimizer': ..., 'lr_scheduler': ...}``:
        the scheduler is stepped at the end of every epoch, a ``ReduceLROnPlateau`` with the epoch
        mean of ``train_metric`` (the classic `Trainer`'s schedule).
        """
        optimizer: torch.optim.Optimizer
        if self.custom_optimizer is None:
            optimizer = torch.optim.Adam(self.problem.parameters(), lr=self.lr, betas=DEFAULT_BETAS)
        else:
            optimizer = self.custom_optimizer
            if self._configured_lr is not None:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr
        scheduler = make_scheduler(self.lr_scheduler, optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1,
                                 "monitor": self.train_metric}}

    def _evaluate(self, split: str, metric: str, batch: TensorDict) -> None:
        with torch.set_grad_enabled(bool(getattr(self.problem, "grad_inference", False))):
            output = self.problem(batch)
        value = _metric(output, metric).detach()
        if split == "dev":
            self.validation_step_outputs.append(value)
        self._accumulate(metric, value, batch_length(batch))
        if self.record_outputs:
            self.last_outputs[split] = _detached(output)

    def _accumulate(self, name: str, value: torch.Tensor, size: int) -> None:
        """Add a batch's detached metric, weighted by its size, to the epoch's sum (one tensor operation)."""
        entry = self._sums.get(name)
        if entry is None:
            self._sums[name] = [value * size, size]
        else:
            entry[0], entry[1] = torch.add(entry[0], value, alpha=size), entry[1] + size

    def _log_epoch_mean(self, name: str, logged_name: str | None = None) -> torch.Tensor | None:
        """Log (and forget) the epoch's sample-weighted mean of ``name``, reduced over processes.

        The mean goes to ``callback_metrics`` under ``name`` and to the loggers and progress bar
        under ``logged_name`` (default: ``name``). Nothing is logged for an epoch without values.
        """
        if name not in self._sums:
            return None
        total, count = self._sums.pop(name)
        trainer = self.attached_trainer
        if trainer is None:
            return total / count
        distributed = trainer.world_size > 1
        if distributed:
            pair = torch.stack([total.reshape(()), total.new_tensor(float(count))])
            total, count = trainer.strategy.reduce(pair, reduce_op="sum")
        mean = total / count
        # Every process now holds the same mean, so Lightning's own sync (sync_dist) averages equal
        # values: it changes nothing but tells Lightning the value is global, which it checks.
        if logged_name is not None and logged_name != name:
            self.log(logged_name, mean, prog_bar=True, sync_dist=distributed)
            self.log(name, mean, prog_bar=False, logger=False, sync_dist=distributed)
        else:
            self.log(name, mean, prog_bar=True, sync_dist=distributed)
        return mean

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the gradients of a step whose loss was not finite, so the optimizer leaves every weight
        (and its own state: momenta, step counts) as it was."""
        if self._drop_gradients:
            self._drop_gradients = False
            optimizer.zero_grad(set_to_none=True)

    def _no_update_loss(self) -> torch.Tensor | None:
        """What a step with a non-finite loss returns: nothing to optimise.

        Under manual optimisation, None. Otherwise a zero that depends on every trainable weight:
        its backward pass gives zero (finite) gradients and, in multi-process runs, takes part in
        the gradient all-reduce the other processes wait for (Lightning refuses a None there);
        `on_before_optimizer_step` then drops the gradients so that nothing is updated.
        """
        if not self.automatic_optimization:
            return None
        self._drop_gradients = True
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.stack([p.sum() for p in trainable]).sum() * 0.0 if trainable else None

    def _loss_is_finite(self, loss: torch.Tensor, batch_idx: int, trainer: pl.Trainer | None) -> bool:
        """Whether this step's loss is finite on every process; report (and stop) when it is not."""
        finite = _is_finite(loss)
        if trainer is not None and trainer.world_size > 1:
            finite = bool(trainer.strategy.reduce_boolean_decision(finite, all=True))
        if not finite:
            self._report_nonfinite_step(loss, batch_idx, trainer)
        return finite

    def _report_nonfinite_step(self, loss: torch.Tensor, batch_idx: int, trainer: pl.Trainer | None) -> None:
        """Stop training, or count the skipped step, with a warning that says where it happened."""
        value = loss.detach()
        shown = float(value) if value.numel() == 1 else "a tensor with non-finite entries (on some process)"
        where = f"epoch {self.current_epoch}, batch {batch_idx} (global step {self.global_step})"
        applied = ("the custom training step had already applied its update" if not self.automatic_optimization
                   else "its update was not applied")
        if self.nonfinite == "stop":
            if trainer is not None:
                trainer.should_stop = True
            self.nonfinite_stop = f"{where}: {self.train_metric}={shown} is not finite"
            if self.global_rank == 0:
                logger.warning("Stopping at %s: %s=%s is not finite; %s, and the best weights seen so far are "
                               "kept. Pass nonfinite='skip' to skip such steps instead.",
                               where, self.train_metric, shown, applied)
            return
        self.skipped_steps += 1
        self._skipped_this_epoch += 1
        if self._skipped_this_epoch == 1 and self.global_rank == 0:
            logger.warning("Skipping the step at %s: %s=%s is not finite; %s.", where, self.train_metric, shown,
                           applied)

    def _stop_if_not_finite(self, name: str, mean: torch.Tensor | None) -> None:
        """Ask the trainer to stop, with a warning, when an epoch mean is NaN or infinite."""
        if mean is None or bool(torch.isfinite(mean).all()):
            return
        self.trainer.should_stop = True
        if self.trainer.is_global_zero:
            logger.warning("Stopping at epoch %d: %s=%s is not finite; the best weights seen so far are kept.",
                           self.current_epoch, name, float(mean))


def _step_is_shown(trainer: pl.Trainer, global_step: int) -> bool:
    """Whether the loss of the step at ``global_step`` reaches a logger or a progress bar."""
    return (trainer.progress_bar_callback is not None
            or (global_step + 1) % max(getattr(trainer, "log_every_n_steps", 1), 1) == 0)


def _is_finite(value: torch.Tensor) -> bool:
    """Whether every entry of ``value`` is finite; a scalar is read with one ``item()`` (the cheapest device read)."""
    if value.numel() == 1:
        return math.isfinite(value.item())
    return bool(torch.isfinite(value.detach()).all())


def _check_lr_scheduler(lr_scheduler: Any, custom_optimizer: torch.optim.Optimizer | None) -> None:
    """Raise unless ``lr_scheduler`` is a bool or a scheduler stepping ``custom_optimizer``."""
    if isinstance(lr_scheduler, bool):
        return
    if not callable(getattr(lr_scheduler, "step", None)):
        raise TypeError(f"lr_scheduler must be a bool or a torch learning-rate scheduler, got {lr_scheduler!r}.")
    if custom_optimizer is None or getattr(lr_scheduler, "optimizer", custom_optimizer) is not custom_optimizer:
        raise ValueError("lr_scheduler must be built on the custom_optimizer it schedules: pass "
                         "custom_optimizer=optimizer and lr_scheduler=Scheduler(optimizer, ...), or lr_scheduler=True "
                         "for ReduceLROnPlateau(factor=0.5, patience=100) on the trainer's optimizer.")


def _check_nonfinite_mode(mode: Any) -> None:
    """Raise unless ``mode`` is one of `NONFINITE_MODES`."""
    if mode not in NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_MODES} (what a NaN or infinite training loss does), "
                         f"got {mode!r}.")


class LitTrainer(pl.Trainer):
    """Lightning `Trainer` for NeuroMANCER problems: ``LitTrainer(epochs=10).fit(problem, data_setup_function)``.

    After `fit`, ``problem`` holds the weights that scored best on ``eval_metric``, on every
    strategy (single device, ``ddp``, ``ddp_spawn``, ``ddp_notebook``), whether or not weights
    are saved, and lives on the device it lived on before. Training stops early on ``patience``
    epochs without improvement (never within the first ``warmup`` epochs) and, with a warning
    naming the epoch, step and metric, at the first step whose loss is NaN or infinite (or skips
    such steps, with ``nonfinite='skip'``). A problem with ``grad_inference=True`` is evaluated
    (validation, test, predict) with autograd, as the classic `Trainer` does: Lightning's inference
    mode is off for it, and stays on for other problems unless ``inference_mode=False`` is given.
    Every keyword not listed below goes to Lightning's `Trainer` (``enable_progress_bar``,
    ``precision``, ``num_nodes``, ``deterministic``, ``callbacks``, ``plugins``...).

    Fault tolerance: with ``save_weights`` the best checkpoint and ``last.ckpt`` (the state after
    the latest epoch: weights, optimizer, epoch, early-stopping, best-weights and random-generator
    state) are written to ``weight_path`` atomically (a killed run never leaves a half-written
    file), and ``fit(..., ckpt_path='last')`` continues an interrupted run exactly where it
    stopped. Ctrl-C ends `fit` cleanly with the best weights in the problem. On clusters (see
    `neuromancer.trainers.lightning_cluster`): in a SLURM job, the requeue signal (SIGUSR1) saves
    the state at the end of the current epoch, requeues the job and ends `fit` with Lightning's
    SIGTERMException; after a torchrun restart the process group is set up afresh, so the
    restarted workers (with ``ckpt_path='last'``) resume from ``last.ckpt`` instead of hanging. Checkpoints are only
    ever read with ``weights_only=True``, so a file from an untrusted source runs no code. An
    unwritable ``weight_path`` or log directory is reported before the first epoch.

    :param epochs: maximum number of epochs.
    :param train_metric: output key minimised during training.
    :param dev_metric: output key logged on the dev split.
    :param test_metric: output key logged on the test split.
    :param eval_metric: logged metric whose minimum selects the best weights
        (the preferred name; ``monitor_metric`` is another name for it).
    :param patience: epochs without improvement before stopping; None: never.
    :param warmup: leading epochs that never count against ``patience``.
    :param clip: gradient-norm clipping threshold; None disables it.
        Ignored under manual optimisation, where the custom step owns clipping.
    :param custom_optimizer: optimizer built on ``problem.parameters()``;
        None for ``Adam(lr=0.001, betas=(0.0, 0.9))``.
    :param save_weights: write the best checkpoint and ``last.ckpt`` to ``weight_path``.
    :param weight_path: checkpoint directory.
    :param weight_name: best checkpoint's file name without '.ckpt' (overwritten by
        later runs; 'last' is reserved); None for ``epoch=<e>-step=<s>.ckpt``.
    :param devices: Lightning ``devices``.
    :param strategy: Lightning ``strategy`` ('ddp', 'ddp_spawn', 'ddp_notebook'...).
    :param accelerator: Lightning ``accelerator`` ('cpu', 'gpu'...).
    :param profiler: a Lightning Profiler, one of the names 'simple', 'advanced', 'pytorch' and
        'xla', or None for none.
    :param custom_training_step: ``f(model, batch)`` replacing the default step.
    :param custom_hooks: Lightning hook name -> ``f(self, ...)`` bound onto the
        LightningModule; a ``configure_optimizers`` hook's return value is what Lightning uses.
    :param logger: one Lightning logger or several; False logs nothing; None writes TensorBoard files
        under ``lightning_logs/``. Classic NeuroMANCER loggers (`neuromancer.loggers.BasicLogger`,
        `neuromancer.loggers.LossLogger`), alone or among Lightning ones, get what the classic
        `Trainer` gives them (see `NeuromancerCallbackAdapter`); given only classic loggers,
        Lightning logs nothing else.
    :param hparam_config: sweep values (a mapping or a wandb config): ``learning_rate``, ``batch_size``.
    :param automatic_optimization: False hands optimisation (backward,
        stepping, clipping) to ``custom_training_step``.
    :param callback: a classic NeuroMANCER
        callback, called at the matching Lightning points (see `NeuromancerCallbackAdapter`).
    :param num_workers: data loader worker processes.
    :param nonfinite: what a NaN or infinite training loss
        does: 'stop' training at that step, or 'skip' the step and go on (see `LitProblem`).
    :param monitor_metric: another name for ``eval_metric``; giving
        both with different values raises ValueError.
    :param multi_fidelity: add the multi-fidelity nodes' ``get_alpha_loss()`` to the training
        loss, as the classic `Trainer` does (see `LitProblem`); checked when `fit` starts.
    :param eval_mode: 'min' or 'max': whether a lower or a higher ``eval_metric`` is better, for
        the best weights, the best checkpoint and early stopping.
    :param lr_scheduler: a learning-rate scheduler stepped once per epoch, as the classic
        `Trainer` steps it: True builds ``ReduceLROnPlateau(factor=0.5, patience=100)`` on the
        optimizer; a scheduler must be built on ``custom_optimizer``. A ``ReduceLROnPlateau``
        follows the epoch mean of ``train_metric``.
    :param kwargs: further Lightning `Trainer` arguments. ``plugins`` gains an
        `AtomicCheckpointIO` unless it already holds a CheckpointIO.
    :raises ValueError | TypeError | KeyError: an argument of the wrong type or value (the message
        names it and the fix).
    """

    callbacks: list[LightningCallback]  # set by Lightning's Trainer.__init__

    def __init__(self, epochs: int = 1000, train_metric: str = "train_loss", dev_metric: str = "dev_loss",
                 test_metric: str = "test_loss", eval_metric: str = DEFAULT_EVAL_METRIC,
                 patience: int | None = None, warmup: int = 0, clip: float | None = 100.0,
                 custom_optimizer: torch.optim.Optimizer | None = None, save_weights: bool = True,
                 weight_path: str = "./", weight_name: str | None = None, devices: Any = "auto",
                 strategy: Any = "auto", accelerator: Any = "auto", profiler: str | Profiler | None = None,
                 custom_training_step: StepFunction | None = None,
                 custom_hooks: Mapping[str, Callable] | None = None,
                 logger: Logger | BasicLogger | Iterable[Logger | BasicLogger] | bool | None = None,
                 hparam_config: Any = None, automatic_optimization: bool = True, *,
                 callback: Callback | None = None, num_workers: int = 0, nonfinite: str = "stop",
                 monitor_metric: str | None = None, multi_fidelity: bool = False, eval_mode: str = "min",
                 lr_scheduler: bool | LRScheduler | ReduceLROnPlateau = False, **kwargs: Any) -> None:
        eval_metric = resolve_eval_metric(eval_metric, monitor_metric)
        # The constructor arguments as given (the metric under its one name), so a sweep can build one
        # fresh trainer per run.
        self.init_arguments = {name: value for name, value in locals().items()
                               if name not in ("self", "kwargs", "__class__", "monitor_metric")} | dict(kwargs)
        check_positive_int(epochs, "epochs")
        for name, value in (("train_metric", train_metric), ("dev_metric", dev_metric),
                            ("test_metric", test_metric), ("eval_metric", eval_metric)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str naming an output key, got {value!r}.")
        if patience is not None:
            check_non_negative_int(patience, "patience")
        check_non_negative_int(warmup, "warmup")
        if clip is not None and (not isinstance(clip, numbers.Real) or not clip > 0):
            raise ValueError(f"clip must be a positive number (or None to disable clipping), got {clip!r}.")
        if isinstance(profiler, str) and profiler not in PROFILER_NAMES:
            raise ValueError(f"profiler {profiler!r} is unknown; use one of {PROFILER_NAMES} or a Lightning Profiler.")
        if not automatic_optimization and custom_training_step is None:
            raise ValueError("automatic_optimization=False needs a custom_training_step that calls "
                             "model.manual_backward(loss) and steps model.optimizers().")
        check_training_step(custom_training_step)
        _check_nonfinite_mode(nonfinite)
        if eval_mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be 'min' or 'max' (is a lower or a higher eval_metric better?), "
                             f"got {eval_mode!r}.")
        _check_lr_scheduler(lr_scheduler, custom_optimizer)
        if lr_scheduler is not False and "configure_optimizers" in (custom_hooks or {}):
            raise ValueError("lr_scheduler and a configure_optimizers hook in custom_hooks both set up the "
                             "optimisation; return the scheduler from the hook instead (Lightning's "
                             "{'optimizer': ..., 'lr_scheduler': ...}), or drop the hook.")
        if weight_name == LAST_CHECKPOINT:
            raise ValueError(f"weight_name {LAST_CHECKPOINT!r} is reserved for the checkpoint of the latest epoch "
                             "(last.ckpt); name the best checkpoint otherwise, e.g. weight_name='best'.")
        custom_hooks = validate_custom_hooks(custom_hooks)
        if custom_training_step is None and not custom_hooks and eval_metric not in (train_metric, dev_metric):
            raise ValueError(f"eval_metric {eval_metric!r} is never logged; use train_metric ({train_metric!r}) or "
                             f"dev_metric ({dev_metric!r}), or log it from a custom hook.")
        self.epochs, self.train_metric, self.dev_metric = epochs, train_metric, dev_metric
        self.test_metric, self.eval_metric, self.patience, self.warmup = test_metric, eval_metric, patience, warmup
        self.clip, self.custom_optimizer = clip, custom_optimizer
        self.weight_path, self.weight_name = weight_path, weight_name
        self.save_weights = save_weights and kwargs.pop("enable_checkpointing", True)
        self.devices = devices
        self.custom_training_step, self.custom_hooks = custom_training_step, custom_hooks
        self.hparam_config, self.automatic_optimization = hparam_config, automatic_optimization
        self.callback, self.num_workers, self.nonfinite = callback, num_workers, nonfinite
        self.multi_fidelity, self.eval_mode, self.lr_scheduler = multi_fidelity, eval_mode, lr_scheduler
        lightning_loggers, self.classic_loggers = _split_loggers(logger)
        # None (not given): Lightning's inference mode, switched off for problems that need autograd.
        self._requested_inference_mode: bool | None = kwargs.get("inference_mode")
        self.lit_problem: LitProblem | None = None
        self.data_module: LitDataModule | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None
        # The requeue callback comes after the user's: every checkpointing callback has seen the epoch when it saves.
        callbacks = self._training_callbacks() + list(kwargs.pop("callbacks", None) or []) + [SlurmRequeue()]
        super().__init__(max_epochs=epochs, devices=devices, strategy=strategy, accelerator=accelerator,
                         profiler=profiler, logger=lightning_loggers,
                         gradient_clip_val=clip if automatic_optimization else None, gradient_clip_algorithm="norm",
                         callbacks=callbacks, enable_checkpointing=True,
                         plugins=with_checkpoint_io(kwargs.pop("plugins", None)), **kwargs)
        self._limit_val_batches = self.limit_val_batches

    def _training_callbacks(self) -> list[LightningCallback]:
        """The Lightning callbacks that implement checkpointing, early stopping and best weights."""
        callbacks: list[LightningCallback] = []
        if self.callback is not None or self.classic_loggers:
            callbacks.append(NeuromancerCallbackAdapter(self.callback, loggers=self.classic_loggers))
        if self.patience is not None:
            callbacks.append(WarmupEarlyStopping(monitor=self.eval_metric, patience=self.patience,
                                                 warmup=self.warmup, mode=self.eval_mode))
        # Lightning runs checkpointing callbacks last, in this order, at the end of the epoch after
        # every metric of the epoch (a train metric too) is logged: the best weights are updated
        # first, so the best checkpoint holds this epoch's complete state, which is also what
        # last.ckpt stores (and, when the best checkpoint was just written, shares by a hard link).
        callbacks.append(RandomState())
        callbacks.append(BestWeights(monitor=self.eval_metric, mode=self.eval_mode))
        if self.save_weights:
            best = ModelCheckpoint(dirpath=self.weight_path, filename=self.weight_name or "{epoch}-{step}",
                                   monitor=self.eval_metric, mode=self.eval_mode, save_top_k=1,
                                   enable_version_counter=self.weight_name is None, save_on_train_epoch_end=True)
            callbacks += [best, LastCheckpoint(self.weight_path, best=best)]
        return callbacks

    @property
    def checkpoint_callback(self) -> Checkpoint | None:
        """The first ModelCheckpoint among the callbacks (the best checkpoint, with ``best_model_path``).

        Lightning's rule takes the first checkpointing callback of any kind, which here would be
        `BestWeights`; without a ModelCheckpoint (``save_weights=False``) that rule applies.
        """
        return next((each for each in self.callbacks if isinstance(each, ModelCheckpoint)),
                    super().checkpoint_callback)

    # Upstream's fit and test take a problem and a data setup function, not Lightning's arguments.
    def fit(self, problem: torch.nn.Module, data_setup_function: Callable[..., Any], *,  # type: ignore[override]
            ckpt_path: str | os.PathLike | None = None, **kwargs: Any) -> None:
        """Train ``problem`` on the data ``data_setup_function(**kwargs)`` returns; leave it with the best weights.

        With ``ckpt_path`` the run continues from a checkpoint instead of starting afresh: weights,
        optimizer state, epoch and step counters, early-stopping, best-weights and random-generator
        state are restored, so a run stopped after epoch ``k`` and resumed (with the same seed, data
        and settings) ends with the weights an uninterrupted run ends with. ``epochs`` counts from
        the start of the original run. The checkpoint is read with ``weights_only=True``.

        Ctrl-C (KeyboardInterrupt) ends training cleanly: `fit` returns with the best weights seen
        so far in ``problem`` (and on disk, when ``save_weights``), and a warning says where it
        stopped and how to resume.

        :param problem: the `Problem` to train; it ends on the device it started on.
        :param data_setup_function: returns ``(train_data, dev_data, test_data, batch_size)``.
        :param ckpt_path: checkpoint to resume from: 'last'
            for ``<weight_path>/last.ckpt`` (in a SLURM job, or the requeue checkpoint
            ``<default_root_dir>/hpc_ckpt_<n>.ckpt`` when that is newer; with neither, training
            starts afresh with a warning, so one command line serves the first start and every
            restart), or a path; None trains from the problem's weights (except in a SLURM job
            with a requeue checkpoint, which Lightning resumes from). It is not passed to
            ``data_setup_function``.
        :param kwargs: passed to ``data_setup_function``.
        :raises TypeError | ValueError | KeyError: bad data (see `validate_data_splits`), a problem
            that is not an nn.Module, an ``eval_metric`` on the dev split without dev data, or metric names
            missing from the problem's outputs.
        :raises InferenceModeError: (a ValueError) the problem has ``grad_inference=True`` and the
            trainer was created with ``inference_mode=True``; left unset, such a problem is
            evaluated with autograd (validation, test and predict), like the classic `Trainer` does.
        :raises FileNotFoundError: ``ckpt_path`` is a path that names no file.
        :raises neuromancer.utils.CheckpointError: (a ValueError) the checkpoint is unsafe to
            unpickle, truncated or corrupt; the message names the file.
        :raises UnwritableDirectoryError: (a PermissionError and ValueError) ``weight_path`` or a
            logger's directory cannot be written; raised before the first epoch.
        """
        resume_from = self._resolve_ckpt_path(ckpt_path)
        self.lit_problem = lit_problem = self._lit_problem(problem)
        self.data_module = LitDataModule(data_setup_function, self.hparam_config, num_workers=self.num_workers,
                                         **kwargs)
        self.data_module.setup("fit")
        if self.data_module.dev_data is None and self.eval_metric == self.dev_metric != self.train_metric:
            raise ValueError(f"eval_metric {self.eval_metric!r} is computed on the dev split, but data_setup_function "
                             f"returned dev_data=None; return a dev DictDataset or set "
                             f"eval_metric={self.train_metric!r}.")
        self.limit_val_batches = 0 if self.data_module.dev_data is None else self._limit_val_batches
        self._check_output_directories()
        home = _module_device(problem)
        try:
            join_restarted_process_group(self.strategy)
            self._fit_until_done_or_interrupted(lit_problem, resume_from)
        finally:
            _release_process_group_at_exit()
        self._recover_best_checkpoint_state()
        problem.to(home)
        self._best_weights = cpu_state_dict(problem)

    def _recover_best_checkpoint_state(self) -> None:
        """Give the checkpoint callback back its ``best_model_score`` (and best-k record) after a spawned run.

        Launchers that train in child processes (``ddp_spawn``, ``ddp_notebook``) return only the
        best checkpoint's path to this process. The best checkpoint holds the callback's state as of
        that epoch, which is the best score, so it is read back from there.
        """
        callback = self.checkpoint_callback
        if (not isinstance(callback, ModelCheckpoint) or callback.best_model_score is not None
                or not callback.best_model_path or not os.path.isfile(callback.best_model_path)):
            return
        saved = read_checkpoint(callback.best_model_path).get("callbacks", {}).get(callback.state_key)
        if saved and saved.get("best_model_path") == callback.best_model_path:
            callback.load_state_dict(saved)

    def _resolve_ckpt_path(self, ckpt_path: str | os.PathLike | None) -> str | None:
        """The checkpoint file to resume from (checked to load safely), or None to start afresh.

        'last' is the latest of ``<weight_path>/last.ckpt`` and, in a SLURM job, the newest requeue
        checkpoint in ``default_root_dir``; with neither, the run starts afresh with a warning, so
        that one command line serves the first start and every restart.
        """
        if ckpt_path is None:
            return None
        if not isinstance(ckpt_path, (str, os.PathLike)):
            raise TypeError(f"ckpt_path must be 'last', a path or None, got {type(ckpt_path).__name__}.")
        if ckpt_path == LAST_CHECKPOINT:
            last = LastCheckpoint(self.weight_path).path
            requeued = newest_hpc_checkpoint(self.default_root_dir) if SLURMEnvironment.detect() else None
            found = latest_checkpoint([last, requeued])
            if found is None:
                if getattr(rank_zero_only, "rank", 0) == 0:  # before fit, from the launcher's environment
                    logger.warning("ckpt_path='last': there is no %s yet, so training starts afresh (it is written "
                                   "after every epoch while save_weights=True).", os.path.abspath(last))
                return None
            path = found
        else:
            path = os.fspath(ckpt_path)
        read_checkpoint(path)  # refuse an unsafe or corrupt file here, in this process, before any setup
        return path

    def _check_output_directories(self) -> None:
        """Make sure the checkpoint and log directories can be written, before any training happens."""
        if self.save_weights:
            ensure_writable_directory(self.weight_path, "weight_path",
                                      "pass LitTrainer(weight_path=...) a writable directory, or save_weights=False")
        for each in self.loggers:
            directory = _logger_directory(each)
            if directory is not None:
                ensure_writable_directory(directory, f"the log directory of {type(each).__name__}",
                                          "give the logger a writable save_dir (for the default TensorBoard logs, run "
                                          "from a writable directory or pass default_root_dir=...), or logger=False")

    def _fit_until_done_or_interrupted(self, lit_problem: LitProblem, resume_from: str | None) -> None:
        """Run Lightning's fit; after Ctrl-C return cleanly, with a warning, on every Lightning version."""
        self._run_catching_ctrl_c(super().fit, lit_problem, datamodule=self.data_module, ckpt_path=resume_from,
                                  **fit_keywords())
        if self._interrupted_by_ctrl_c():
            self._report_interruption()

    def _run_catching_ctrl_c(self, entry_point: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a Lightning entry point; return None if Ctrl-C interrupted it (see `_interrupted_by_ctrl_c`).

        Lightning 2.4 and later answer Ctrl-C with ``sys.exit(1)``, earlier versions return None;
        either way the handlers of SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 are put back afterwards.
        """
        self._best_weights_keeper().interruption = None
        try:
            with sigint_handler_kept(), scheduler_signals_kept():
                return entry_point(*args, **kwargs)
        except SystemExit:
            if not self._interrupted_by_ctrl_c():
                raise
            return None

    def _interrupted_by_ctrl_c(self) -> bool:
        """Whether Ctrl-C (KeyboardInterrupt) ended the last fit or test."""
        return self._best_weights_keeper().interruption == KeyboardInterrupt.__name__

    def _best_weights_keeper(self) -> BestWeights:
        return next(each for each in self.callbacks if isinstance(each, BestWeights))

    def _report_interruption(self) -> None:
        """Warn that training was interrupted, saying which weights the problem holds and how to resume."""
        keeper = self._best_weights_keeper()
        message = f"Training interrupted by Ctrl-C at epoch {self.current_epoch} (global step {self.global_step}). "
        if keeper.best_epoch is None:
            message += "No epoch had been evaluated yet: the problem keeps the weights it started with."
        else:
            message += (f"The problem holds the best weights seen, from epoch {keeper.best_epoch} "
                        f"({keeper.monitor}={keeper.best_score:.6g})")
            best = self.checkpoint_callback
            best_path = best.best_model_path if self.save_weights and isinstance(best, ModelCheckpoint) else ""
            message += f"; they are saved in {best_path}." if best_path else "."
        last = os.path.abspath(LastCheckpoint(self.weight_path).path)
        if self.save_weights and os.path.isfile(last):
            message += f" Resume with fit(..., ckpt_path='last') to continue from {last}."
        logger.warning(message)

    def test(self, problem: torch.nn.Module | None = None,  # type: ignore[override]
             data_setup_function: Callable[..., Any] | None = None, verbose: bool = True,
             **kwargs: Any) -> dict[str, float]:
        """Evaluate a problem on the test split and return its metrics, e.g. ``{'test_loss': 0.12}``.

        With no arguments after `fit`, it tests the fitted problem (holding its best weights) on
        the data `fit` loaded. A ``problem`` and/or ``data_setup_function`` (called with
        ``kwargs``) replace either.

        :param problem: the problem to test; None: the fitted one.
        :param data_setup_function: data to test on; None: the data `fit` loaded.
        :param verbose: print Lightning's results table.
        :param kwargs: passed to ``data_setup_function``.
        :return: metric name -> value for the test split.
        :raises ValueError: nothing to test (no problem or data and no earlier `fit`), or no test split.
        :raises InferenceModeError: see `fit`.
        :raises KeyboardInterrupt: Ctrl-C interrupted the test (Ctrl-C keeps working afterwards).
        """
        if data_setup_function is not None:
            self.data_module = LitDataModule(data_setup_function, self.hparam_config, num_workers=self.num_workers,
                                             **kwargs)
        lit_problem = self.lit_problem if problem is None else self._lit_problem(problem)
        if lit_problem is None or self.data_module is None:
            raise ValueError("nothing to test: call fit first, or pass test(problem, data_setup_function, ...).")
        self._evaluate_as_needed_by(lit_problem.problem)
        self.data_module.setup("test")
        if self.data_module.test_data is None:
            raise ValueError("data_setup_function returned test_data=None; return a DictDataset named 'test'.")
        results = self._run_catching_ctrl_c(super().test, lit_problem, datamodule=self.data_module, verbose=verbose)
        if self._interrupted_by_ctrl_c():
            raise KeyboardInterrupt("testing was interrupted by Ctrl-C")
        return {name: float(value) for name, value in results[0].items()}

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``validate``, with autograd for a problem that needs it, leaving Ctrl-C working afterwards.

        :raises InferenceModeError: see `fit`.
        """
        self._evaluate_as_needed_by(self._problem_of(args, kwargs))
        with sigint_handler_kept():
            return super().validate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``predict``, with autograd for a problem that needs it, leaving Ctrl-C working afterwards.

        :raises InferenceModeError: see `fit`.
        """
        self._evaluate_as_needed_by(self._problem_of(args, kwargs))
        with sigint_handler_kept():
            return super().predict(*args, **kwargs)

    def _problem_of(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """The NeuroMANCER problem a ``validate``/``predict`` call evaluates: the given model's, else the fitted one."""
        model = kwargs.get("model", args[0] if args else None)
        if model is None:
            model = self.lit_problem
        return model.problem if isinstance(model, LitProblem) else model

    def hyperparameter_sweep(self, problem: torch.nn.Module, data_setup_function: Callable[..., Any],
                             sweep_config: Mapping[str, Any], count: int = 10, project_name: str = "run_sweep",
                             **kwargs: Any) -> SweepResult:
        """Run a wandb sweep over this trainer's settings; leave the best run's weights in ``problem``.

        Online (wandb credentials and a network) it creates a wandb sweep and runs ``count`` runs
        through a wandb agent; offline it runs the same config locally on Optuna, each run logged
        by wandb in offline mode. See `neuromancer.trainers.sweep.hyperparameter_sweep` for the
        config forms, the keyword options (``sweep_mode``, ``sweep_id``, ``sweep_storage``,
        ``sweep_seed``, ``sweep_heartbeat_interval``, ``sweep_grace_period``, ``sweep_max_retry``)
        and the errors raised.

        :param problem: the problem; every run starts from its current weights.
        :param data_setup_function: returns ``(train_data, dev_data, test_data, batch_size)``.
        :param sweep_config: a wandb sweep config (``method``, ``metric``, ``parameters``...).
        :param count: number of runs.
        :param project_name: wandb project of the runs.
        :param kwargs: passed to ``data_setup_function`` (and the ``sweep_*`` options).
        :return: one row per run, best first.
        """
        return run_sweep(self, problem, data_setup_function, sweep_config, count, project_name, **kwargs)

    @property
    def stopped_on_nonfinite(self) -> str | None:
        """Where the last `fit` stopped on a NaN or infinite training loss, or None if it did not.

        E.g. ``'epoch 2, batch 1 (global step 9): train_loss=nan is not finite'``. A sweep or a
        script can treat such a run as failed. Under spawn-based strategies the stop happens in
        the worker processes, and this is None in the calling process.
        """
        return None if self.lit_problem is None else self.lit_problem.nonfinite_stop

    def get_weights(self) -> dict[str, torch.Tensor]:
        """Return the best weights of the last `fit` as a CPU state dict of the problem (no ``problem.`` prefix).

        :raises RuntimeError: `fit` has not run yet.
        """
        if self._best_weights is None:
            raise RuntimeError("get_weights() is available after fit(); call fit(problem, data_setup_function) first.")
        return self._best_weights

    def apply_custom_hooks(self, model: pl.LightningModule) -> None:
        """Bind this trainer's ``custom_hooks`` onto ``model``, replacing its hooks of those names.

        :param model: usually a `LitProblem`.
        :raises TypeError | KeyError | ValueError: see `validate_custom_hooks`.
        """
        bind_custom_hooks(model, self.custom_hooks, chained=CHAINED_HOOKS if isinstance(model, LitProblem) else ())

    def _lit_problem(self, problem: torch.nn.Module) -> LitProblem:
        """Wrap ``problem`` in a LitProblem configured like this trainer, and evaluate it as it needs.

        :raises InferenceModeError: the problem needs autograd in evaluation but ``inference_mode=True`` was given.
        """
        self._evaluate_as_needed_by(problem)
        lit_problem = LitProblem(problem, self.train_metric, self.dev_metric, self.test_metric,
                                 custom_optimizer=self.custom_optimizer, custom_training_step=self.custom_training_step,
                                 custom_hooks=self.custom_hooks, hparam_config=self.hparam_config,
                                 nonfinite=self.nonfinite, multi_fidelity=self.multi_fidelity,
                                 lr_scheduler=self.lr_scheduler)
        lit_problem.automatic_optimization = self.automatic_optimization
        return lit_problem

    def _evaluate_as_needed_by(self, problem: Any) -> None:
        """Run validation, test and predict under inference mode, or with autograd available, as ``problem`` needs.

        Lightning runs these loops under ``torch.inference_mode`` (``inference_mode=True``, its
        default) or ``torch.no_grad``. A problem with ``grad_inference=True`` (a projected-gradient
        solution map, say) differentiates during evaluation, which inference mode forbids, so for it
        the loops use ``no_grad``, inside which `LitProblem` switches autograd back on, as the
        classic `Trainer` does. Each loop reads its ``inference_mode`` when it runs, so setting it
        here, before every fit, test, validate and predict, decides it for the problem about to run;
        other problems keep the mode this trainer was created with. (The validation inside `fit`
        always runs under ``no_grad`` in Lightning.)

        :param problem: the problem about to be evaluated (anything without ``grad_inference``
            counts as not needing autograd).
        :raises InferenceModeError: the problem needs autograd but ``inference_mode=True`` was given.
        """
        needs_autograd = bool(getattr(problem, "grad_inference", False))
        if needs_autograd and self._requested_inference_mode:
            raise InferenceModeError("problem.grad_inference=True needs autograd during evaluation, which "
                                     "inference_mode=True forbids; leave inference_mode unset (LitTrainer then "
                                     "turns it off for such problems) or pass inference_mode=False.")
        enabled = self._requested_inference_mode is not False and not needs_autograd
        for loop in (self.validate_loop, self.test_loop, self.predict_loop):
            loop.inference_mode = enabled


class InferenceModeError(NeuromancerError, ValueError):
    """``inference_mode=True`` was given for a problem that needs autograd in evaluation (``grad_inference=True``).

    Raised by `LitTrainer.fit`, `LitTrainer.test`, ``validate`` and ``predict`` before anything
    runs. Leave ``inference_mode`` unset, and `LitTrainer` evaluates such a problem with autograd.
    """


def _logger_directory(each: Any) -> str | None:
    """The local directory a Lightning logger writes under (its root or save dir), or None if it has none."""
    for attribute in ("root_dir", "save_dir"):
        value = getattr(each, attribute, None)
        if isinstance(value, (str, os.PathLike)) and "://" not in os.fspath(value):
            return os.fspath(value)
    return None


def _split_loggers(logger: Any) -> tuple[Any, list[BasicLogger]]:
    """Split the ``logger`` argument into what Lightning gets and the classic NeuroMANCER loggers.

    None becomes Lightning's default (True: TensorBoard); classic loggers given without Lightning
    ones leave Lightning nothing to log to (False), as the classic `Trainer` writes nothing else.
    """
    if logger is None or isinstance(logger, bool):
        return True if logger is None else logger, []
    given = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    classic = [each for each in given if isinstance(each, BasicLogger)]
    lightning_loggers = [each for each in given if not isinstance(each, BasicLogger)]
    if not classic:
        return logger, []
    return lightning_loggers or False, classic


def _destroy_process_group() -> None:
    """Destroy the default process group if one is still up (an `atexit` handler)."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _release_process_group_at_exit() -> None:
    """Make sure a process group that training set up is destroyed before the interpreter exits.

    Lightning leaves the group up after ``fit`` (a later ``test`` reuses it). Left to interpreter
    teardown, gloo's worker threads can abort a process that trained successfully ("terminate
    called without an active exception", exit code -6); destroying the group at exit avoids that
    without taking it away from a later ``test``. Repeated fits keep a single handler.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        atexit.unregister(_destroy_process_group)
        atexit.register(_destroy_process_group)

