"""Train a population -- K runs of one problem that differ only in how far the optimizer steps -- in one Lightning fit.

`fit_population(problem, data_setup_function, members, trainer_arguments)` trains K members of
`problem` together: their weights stacked (`neuromancer.trainers.population.StackedProblem`), one
vmapped forward and backward per batch, one optimizer step. Each member still trains exactly as
its own ``LitTrainer(**trainer_arguments, ...)`` fit would: the same initial weights and batches,
its own learning rate, gradient clipping (by the member's own gradient norm), warmup and patience,
its own best weights on ``eval_metric``, and its own best checkpoint, which
`neuromancer.utils.load_state_dict_lightning` loads into the plain problem. A member that stops
(patience, a NaN or infinite loss, pruning) keeps its best weights and no longer changes while the
others go on; the fit ends when no member is left training or at ``epochs``. On several devices
the population is one model under the trainer's strategy, data-parallel like a single run.

`LitPopulation` is the LightningModule; every per-member record (state, best score, best epoch,
the metric history, the best weights) lives in its buffers, so it is saved in checkpoints and
comes back from spawned worker processes with the weights. `MemberCheckpoints` writes the members'
best checkpoints. This module uses only the public API of `Problem` and `DictDataset`.
"""
from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback as LightningCallback
from lightning.pytorch.callbacks import Checkpoint

from neuromancer.trainers.checkpoint_io import save_atomically, with_checkpoint_io
from neuromancer.trainers.common import DEFAULT_BETAS, DEFAULT_LEARNING_RATE, batch_length, resolve_eval_metric
from neuromancer.trainers.lightning_callbacks import RandomState
from neuromancer.trainers.lightning_data import LitDataModule
from neuromancer.trainers.population import (
    MemberSettings,
    NotVectorisableError,
    PopulationOptimizer,
    StackedProblem,
    check_vectorisable,
)
from neuromancer.trainers.run_guards import ensure_writable_directory, sigint_handler_kept
from neuromancer.utils import LIGHTNING_PREFIX

logger = logging.getLogger(__name__)

__all__ = ["MemberResult", "LitPopulation", "MemberCheckpoints", "fit_population",
           "population_arguments", "LIT_TRAINER_SETTINGS"]

TRAINING, STOPPED, FAILED, PRUNED = range(4)
# What a member's state code means in a sweep's record: a member stopped by patience finished normally.
STATE_NAMES = {TRAINING: "finished", STOPPED: "finished", FAILED: "failed", PRUNED: "pruned"}
# Why a member failed: its training loss, or its eval metric, was NaN or infinite.
TRAIN_LOSS_FAILURE, EVAL_METRIC_FAILURE = 1, 2
# LitTrainer's own parameters (monitor_metric aside, which init_arguments folds into eval_metric); the
# other entries of its init_arguments are Lightning Trainer keywords. tests/trainers/test_lightning_population.py
# checks the list against LitTrainer's signature.
LIT_TRAINER_SETTINGS = frozenset((
    "epochs", "train_metric", "dev_metric", "test_metric", "eval_metric", "patience", "warmup", "clip",
    "custom_optimizer", "save_weights", "weight_path", "weight_name", "devices", "strategy", "accelerator", "profiler",
    "custom_training_step", "custom_hooks", "logger", "hparam_config", "automatic_optimization", "callback",
    "num_workers", "nonfinite", "multi_fidelity", "eval_mode", "lr_scheduler"))
# LitTrainer arguments a population cannot honour other than through the settings it stacks.
_SINGLE_RUN_ONLY = {"custom_training_step": None, "custom_hooks": None, "callback": None,
                    "automatic_optimization": True, "nonfinite": "stop", "multi_fidelity": False, "eval_mode": "min",
                    "lr_scheduler": False}


@dataclass(frozen=True)
class MemberResult:
    """How one member's training went, as its own run would report it.

    :param state: ``'finished'`` (trained to ``epochs`` or stopped by patience), ``'failed'`` (a NaN
        or infinite loss or metric) or ``'pruned'``.
    :param best_score: the lowest ``eval_metric`` it reached, None if it never had a finite one.
    :param best_epoch: the epoch of ``best_score``, None without one.
    :param history: ``eval_metric`` after each epoch the member trained.
    :param train_history: the epoch mean of ``train_metric`` after each epoch the member trained.
    :param error: for a failed member, where and why it failed.
    :param checkpoint: path of its best checkpoint, None without one.
    :param weights: its best weights (the initial ones without a best epoch), a CPU state dict of the problem.
    """

    state: str
    best_score: float | None
    best_epoch: int | None
    history: tuple[float, ...]
    train_history: tuple[float, ...]
    error: str | None
    checkpoint: str | None
    weights: dict[str, torch.Tensor]


def population_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Check that a ``LitTrainer``'s constructor arguments can train a population.

    :param arguments: ``LitTrainer.init_arguments`` of the trainer the members' runs would use
        (every ``LitTrainer`` parameter, plus the Lightning keywords it forwards).
    :return: the arguments, ``eval_metric`` as a plain name.
    :raises KeyError: a ``LitTrainer`` parameter is missing (they did not come from ``init_arguments``).
    :raises NotVectorisableError: a setting only a single run honours (a custom training step or
        hooks, manual optimisation, a classic callback, ``nonfinite='skip'``, ``multi_fidelity``,
        ``eval_mode='max'``, a learning-rate scheduler, extra Lightning callbacks), or an
        ``eval_metric`` that is neither the train nor the dev metric.
    """
    missing = sorted(LIT_TRAINER_SETTINGS - set(arguments))
    if missing:
        raise KeyError(f"trainer arguments lack {missing}; pass a LitTrainer's init_arguments")
    filled = dict(arguments)
    for name, expected in _SINGLE_RUN_ONLY.items():
        value = filled[name]
        if value != expected and not (name in ("custom_hooks", "lr_scheduler") and not value):
            raise NotVectorisableError(f"LitTrainer({name}={value!r}) changes how a single run trains, which a "
                                       f"population cannot reproduce; these runs train one at a time.")
    if filled.get("callbacks"):
        raise NotVectorisableError("Lightning callbacks given to the trainer see one run's LightningModule, not a "
                                   "population; these runs train one at a time.")
    eval_metric = resolve_eval_metric(filled["eval_metric"], None)
    if eval_metric not in (filled["train_metric"], filled["dev_metric"]):
        raise NotVectorisableError(f"eval_metric {eval_metric!r} is logged by custom code, which a population does "
                                   "not run; these runs train one at a time.")
    filled["eval_metric"] = eval_metric
    return filled


class LitPopulation(pl.LightningModule):
    """A LightningModule that trains the members of a `StackedProblem`, each as its own run.

    ``training_step`` evaluates every member on the batch and returns the sum of the losses of the
    members still training (each member's gradient is its own run's); a member whose loss is NaN
    or infinite fails there, with its update of that step left out. ``configure_gradient_clipping``
    clips each member by the norm of its own gradients, and ``optimizer_step`` runs one optimizer
    at learning rate 1 over the stacked weights, then scales each member's update by its learning
    rate (0 for a member that stopped), which is exactly its own optimizer's step for the optimizers
    of `neuromancer.trainers.population.VECTORISABLE_OPTIMIZERS`.

    At each epoch's end every member still training gets its epoch means recorded, its warmup and
    patience applied (Lightning's early-stopping rule, with the warmup of `LitTrainer`) and, when its
    ``eval_metric`` improved, its weights copied into its best weights (`improved_members` names them
    for `MemberCheckpoints`). The fit stops when no member is left training.

    :param problem: the problem every member starts from.
    :param members: one `MemberSettings` per member.
    :param optimizer: how the members' optimizer is built and scaled.
    :param epochs: the most epochs the fit runs (the length of the history buffers).
    :param train_metric: output key minimised during training.
    :param dev_metric: output key evaluated on the dev split.
    :param eval_metric: ``train_metric`` or ``dev_metric``: the metric whose minimum selects each
        member's best weights.
    """

    # Buffers (registered in __init__), declared for type checkers.
    clip_thresholds: torch.Tensor
    state: torch.Tensor
    best_score: torch.Tensor
    best_epoch: torch.Tensor
    best_step: torch.Tensor
    patience_best: torch.Tensor
    patience_wait: torch.Tensor
    history: torch.Tensor
    failure: torch.Tensor

    def __init__(self, problem: torch.nn.Module, members: Sequence[MemberSettings], optimizer: PopulationOptimizer,
                 epochs: int, train_metric: str = "train_loss", dev_metric: str = "dev_loss",
                 eval_metric: str = "dev_loss") -> None:
        super().__init__()
        self.population = StackedProblem(problem, len(members))
        self.members = tuple(members)
        self.optimizer_plan = optimizer
        self.train_metric, self.dev_metric, self.eval_metric = train_metric, dev_metric, eval_metric
        self.grad_inference = bool(getattr(problem, "grad_inference", False))
        size = len(members)
        self.register_buffer("clip_thresholds", torch.tensor([math.inf if m.clip is None else float(m.clip)
                                                              for m in members]))
        self.register_buffer("state", torch.full((size,), TRAINING, dtype=torch.long))
        self.register_buffer("best_score", torch.full((size,), math.inf, dtype=torch.float64))
        self.register_buffer("best_epoch", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("best_step", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("patience_best", torch.full((size,), math.inf, dtype=torch.float64))
        self.register_buffer("patience_wait", torch.zeros(size, dtype=torch.long))
        # [epoch, (train mean, eval metric), member]; NaN where the member did not train that epoch.
        self.register_buffer("history", torch.full((epochs, 2, size), math.nan, dtype=torch.float64))
        # [member, (kind, epoch, batch, global step, value)] of the failure that ended a member.
        self.register_buffer("failure", torch.full((size, 5), math.nan, dtype=torch.float64))
        for index, tensor in enumerate(self.population.stacked_tensors()):
            self.register_buffer(f"best_state_{index}", tensor.detach().clone())
        self.improved_members: list[int] = []
        self._sums: dict[str, tuple[torch.Tensor, int]] = {}
        self._dev_means: torch.Tensor | None = None
        self._training: list[bool] = [True] * size
        self._step_scales: list[torch.Tensor] | None = None
        self._mask: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.members)

    def best_tensors(self) -> list[torch.Tensor]:
        """The stacked best weights, in the order of ``StackedProblem.stacked_tensors``."""
        return [getattr(self, f"best_state_{index}") for index in range(len(self.population.stacked_tensors()))]

    def training_members(self) -> list[int]:
        """Indices of the members still training."""
        return [member for member, training in enumerate(self._training) if training]

    def on_train_start(self) -> None:
        """Read which members are still training from the state (a resumed fit may have stopped some)."""
        self._training = [code == TRAINING for code in self.state.tolist()]
        self._step_scales = self._mask = None

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        """Evaluate every member on the batch; return the sum of the losses of the members still training.

        As `LitProblem` does, the batch gets the current epoch as ``batch['epoch']``.

        :raises ValueError: ``train_metric`` is not one number per member.
        :raises KeyError: ``train_metric`` is not among the problem's outputs.
        """
        batch = {**batch, "epoch": self.current_epoch}
        losses = self.population(batch, (self.train_metric,))[self.train_metric]
        if losses.shape != (self.size,):
            raise ValueError(f"{self.train_metric!r} has shape {tuple(losses.shape[1:])} per member; training needs "
                             "a scalar loss.")
        self._fail_nonfinite_members(losses.detach(), batch_idx)
        training = self._training_mask(losses.device)
        self._accumulate("train", torch.where(training, losses.detach(), 0.0), batch_length(batch))
        return torch.where(training, losses, torch.zeros_like(losses)).sum()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Add every member's ``dev_metric`` on the batch to the epoch's means."""
        with torch.set_grad_enabled(self.grad_inference):
            values = self.population(batch, (self.dev_metric,))[self.dev_metric].detach()
        if values.shape != (self.size,):
            raise ValueError(f"{self.dev_metric!r} has shape {tuple(values.shape[1:])} per member; it must be a "
                             "scalar.")
        self._accumulate("dev", values, batch_length(batch))

    def on_validation_epoch_end(self) -> None:
        """Keep the members' dev means for the end of the epoch (sanity checks aside)."""
        means = self._epoch_means("dev")
        if not self.trainer.sanity_checking:
            self._dev_means = means

    def on_train_epoch_end(self) -> None:
        """Record every training member's epoch; apply patience and keep improved members' best weights."""
        train_means = self._epoch_means("train")
        dev_means, self._dev_means = self._dev_means, None
        scores = dev_means if self.eval_metric == self.dev_metric else train_means
        epoch, members = self.current_epoch, self.training_members()
        self.improved_members = []
        if scores is None or train_means is None or not members:
            self._stop_when_none_left()
            return
        train_values, score_values = train_means.tolist(), scores.tolist()
        for member in members:
            self.history[epoch, 0, member] = train_values[member]
            self.history[epoch, 1, member] = score_values[member]
            score = score_values[member]
            if not math.isfinite(score):
                self._fail(member, EVAL_METRIC_FAILURE, epoch, -1, score)
                continue
            if score < self.best_score[member]:
                self.best_score[member], self.best_epoch[member] = score, epoch
                self.best_step[member] = self.global_step
                self.improved_members.append(member)
            if self._patience_exhausted(member, score, epoch):
                self.state[member] = STOPPED
                self._training[member] = False
                self._step_scales = self._mask = None
        self._keep_best_weights(self.improved_members)
        self._stop_when_none_left()

    def stop_member(self, member: int, state: int = PRUNED) -> None:
        """Stop a member from outside (e.g. a pruner); it keeps its best weights.

        :param member: index of the member.
        :param state: the state it ends in (`PRUNED` by default).
        """
        if self._training[member]:
            self.state[member] = state
            self._training[member] = False
            self._step_scales = self._mask = None
            self._stop_when_none_left()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The members' optimizer class and settings at learning rate 1 over the stacked weights."""
        return self.optimizer_plan.build(self.population)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero the gradients of members that no longer train, so no NaN reaches the optimizer's state."""
        if all(self._training):
            return
        training = self._training_mask(self.state.device)
        for parameter in self.population.stacked_parameters:
            if parameter.grad is not None:
                parameter.grad.masked_fill_(~training.reshape(_member_shape(parameter)), 0.0)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        """Clip each member's gradients by their own norm, as ``torch.nn.utils.clip_grad_norm_`` clips a run's.

        Where no member's factor is below 1 the gradients are left as they are (multiplying them by 1,
        as ``clip_grad_norm_`` does, would change nothing).
        """
        if all(member.clip is None for member in self.members):
            return
        gradients = [p.grad for p in self.population.stacked_parameters if p.grad is not None]
        if not gradients:
            return
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.size, -1), dim=1) for g in gradients])
        total = torch.linalg.vector_norm(norms, dim=0)
        factors = torch.clamp(self.clip_thresholds.to(total.dtype) / (total + 1e-6), max=1.0)
        if bool((factors < 1.0).any()):
            torch._foreach_mul_(gradients, [factors.to(g.dtype).reshape(_member_shape(g)) for g in gradients])

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any,
                       optimizer_closure: Callable[[], Any] | None = None) -> None:
        """Step the optimizer at learning rate 1, then scale each member's update by its learning rate."""
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        with torch.no_grad():
            before = torch._foreach_mul(parameters, 1.0)
        optimizer.step(closure=optimizer_closure)
        with torch.no_grad():
            torch._foreach_sub_(parameters, before)
            torch._foreach_mul_(parameters, self._scales())
            torch._foreach_add_(parameters, before)

    def member_result(self, member: int, checkpoint: str | None) -> MemberResult:
        """The record of one member after the fit.

        :param member: index of the member.
        :param checkpoint: path of its best checkpoint, if one was written.
        """
        state = int(self.state[member])
        if state == TRAINING:
            state = STOPPED
        best_epoch = int(self.best_epoch[member])
        history = self.history[:, :, member]
        trained = ~torch.isnan(history[:, 0])
        return MemberResult(
            state=STATE_NAMES[state], best_score=None if best_epoch < 0 else float(self.best_score[member]),
            best_epoch=None if best_epoch < 0 else best_epoch, history=tuple(history[trained, 1].tolist()),
            train_history=tuple(history[trained, 0].tolist()), error=self._failure_message(member),
            checkpoint=checkpoint, weights=self.population.member_state_dict(member, self.best_tensors()))

    def _scales(self) -> list[torch.Tensor]:
        """Per optimized parameter, each member's learning rate, zero for members no longer training (cached)."""
        if self._step_scales is None:
            rates = [m.learning_rate if training else 0.0 for m, training in zip(self.members, self._training,
                                                                                  strict=True)]
            self._step_scales = self.optimizer_plan.update_scales(self.population, rates)
        return self._step_scales

    def _training_mask(self, device: torch.device) -> torch.Tensor:
        """Which members still train, as a bool tensor on ``device`` (cached until a member stops)."""
        if self._mask is None or self._mask.device != device:
            self._mask = torch.tensor(self._training, device=device)
        return self._mask

    def _attached_trainer(self) -> pl.Trainer | None:
        """The Trainer running this module, or None outside a fit (where ``trainer`` raises)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def _fail_nonfinite_members(self, losses: torch.Tensor, batch_idx: int) -> None:
        """Fail the training members whose loss is not finite (on any process); one read of K flags per step."""
        nonfinite = (~torch.isfinite(losses)).to(torch.float32)
        trainer = self._attached_trainer()
        if trainer is not None and trainer.world_size > 1:
            nonfinite = trainer.strategy.reduce(nonfinite, reduce_op="sum")
        for member, flag in enumerate(nonfinite.tolist()):
            if flag > 0 and self._training[member]:
                self._fail(member, TRAIN_LOSS_FAILURE, self.current_epoch, batch_idx, float(losses[member]))
        self._stop_when_none_left()

    def _fail(self, member: int, kind: int, epoch: int, batch_idx: int, value: float) -> None:
        self.state[member] = FAILED
        self.failure[member] = torch.tensor([kind, epoch, batch_idx, self.global_step, value], dtype=torch.float64)
        self._training[member] = False
        self._step_scales = self._mask = None

    def _failure_message(self, member: int) -> str | None:
        kind, epoch, batch_idx, step, value = self.failure[member].tolist()
        if kind == TRAIN_LOSS_FAILURE:
            return (f"FloatingPointError: epoch {int(epoch)}, batch {int(batch_idx)} (global step {int(step)}): "
                    f"{self.train_metric}={value} is not finite")
        if kind == EVAL_METRIC_FAILURE:
            return f"FloatingPointError: {self.eval_metric} became {value} at epoch {int(epoch)}"
        return None

    def _patience_exhausted(self, member: int, score: float, epoch: int) -> bool:
        """Lightning's early-stopping rule for one member, never counting its warmup epochs."""
        settings = self.members[member]
        if settings.patience is None:
            return False
        improved = score < self.patience_best[member]
        if improved:
            self.patience_best[member] = score
        if epoch < settings.warmup:
            return False
        if improved:
            self.patience_wait[member] = 0
            return False
        self.patience_wait[member] += 1
        return bool(self.patience_wait[member] >= settings.patience)

    def _keep_best_weights(self, members: Sequence[int]) -> None:
        if not members:
            return
        improved = torch.zeros(self.size, dtype=torch.bool, device=self.state.device)
        improved[list(members)] = True
        with torch.no_grad():
            for best, current in zip(self.best_tensors(), self.population.stacked_tensors(), strict=True):
                best.copy_(torch.where(improved.reshape(_member_shape(current)), current, best))

    def _stop_when_none_left(self) -> None:
        trainer = self._attached_trainer()
        if not any(self._training) and trainer is not None:
            trainer.should_stop = True

    def _accumulate(self, split: str, values: torch.Tensor, size: int) -> None:
        entry = self._sums.get(split)
        self._sums[split] = (values * size, size) if entry is None else (torch.add(entry[0], values, alpha=size),
                                                                         entry[1] + size)

    def _epoch_means(self, split: str) -> torch.Tensor | None:
        """The epoch's sample-weighted mean of every member on ``split``, reduced over processes (and forgotten)."""
        if split not in self._sums:
            return None
        total, count = self._sums.pop(split)
        trainer = self._attached_trainer()
        if trainer is not None and trainer.world_size > 1:
            total = trainer.strategy.reduce(total, reduce_op="sum")
            count = int(trainer.strategy.reduce(torch.tensor(float(count), device=total.device), reduce_op="sum"))
        return total / count


def _member_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    """The shape that broadcasts one value per member against a stacked ``tensor``."""
    return (tensor.shape[0],) + (1,) * (tensor.dim() - 1)


class MemberCheckpoints(Checkpoint):
    """Write each member's best checkpoint into its own directory whenever its ``eval_metric`` improves.

    Like a run's best checkpoint (Lightning's ``ModelCheckpoint`` with ``save_top_k=1``), the file
    is ``epoch=<e>-step=<s>.ckpt`` (or ``<weight_name>.ckpt``) and replaces the member's previous
    best. It holds the member's weights under the keys a `LitTrainer` checkpoint uses, so
    `neuromancer.utils.load_state_dict_lightning` loads it into the plain problem. Files are written
    atomically, by the global-zero process only. Being a checkpointing callback, it runs after the
    LightningModule's epoch-end hook, which decides who improved.

    :param directories: one directory per member.
    :param weight_name: fixed file name without ``.ckpt``; None names files by epoch and step.
    """

    def __init__(self, directories: Sequence[str], weight_name: str | None = None) -> None:
        self.directories = tuple(os.fspath(directory) for directory in directories)
        self.weight_name = weight_name
        self._written: dict[int, str] = {}

    def path(self, member: int, epoch: int, step: int) -> str:
        """Where member ``member``'s best checkpoint of ``epoch`` and global ``step`` goes."""
        name = self.weight_name or f"epoch={epoch}-step={step}"
        return os.path.join(self.directories[member], f"{name}.ckpt")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Write the checkpoints of the members that improved this epoch."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        best = pl_module.best_tensors()
        for member in pl_module.improved_members:
            path = self.path(member, trainer.current_epoch, trainer.global_step)
            state = pl_module.population.member_state_dict(member, best)
            save_atomically({"state_dict": {LIGHTNING_PREFIX + key: value for key, value in state.items()},
                             "epoch": trainer.current_epoch, "global_step": trainer.global_step,
                             "pytorch-lightning_version": pl.__version__,
                             "population_member": {"monitor": pl_module.eval_metric,
                                                   "best_model_score": float(pl_module.best_score[member])}}, path)
            previous = self._written.get(member)
            if previous is not None and previous != path and os.path.exists(previous):
                os.remove(previous)
            self._written[member] = path


def fit_population(problem: torch.nn.Module, data_setup_function: Callable[..., Any], members: Sequence[MemberSettings],
                   trainer_arguments: Mapping[str, Any], *, member_directories: Sequence[str] | None = None,
                   hparam_config: Mapping[str, Any] | None = None, callbacks: Sequence[LightningCallback] = (),
                   data_kwargs: Mapping[str, Any] | None = None) -> list[MemberResult]:
    """Train ``len(members)`` members of ``problem`` as one population; return each member's record.

    Every member starts from ``problem``'s current weights and trains as
    ``LitTrainer(**trainer_arguments, learning_rate / clip / patience / warmup of the member)`` would,
    on ``data_setup_function(**data_kwargs)`` (``hparam_config``'s ``batch_size`` overriding the
    returned batch size). ``problem`` keeps its weights; each member's best weights are in its result.

    :param problem: the problem to train.
    :param data_setup_function: returns ``(train_data, dev_data, test_data, batch_size)``.
    :param members: each member's settings.
    :param trainer_arguments: a ``LitTrainer``'s constructor arguments (its ``init_arguments``);
        its ``hparam_config``, ``logger`` and, per member, ``clip``, ``patience`` and ``warmup`` are
        replaced.
    :param member_directories: where each member's best checkpoint goes; None writes none (also
        when ``save_weights`` is False).
    :param hparam_config: shared sweep values (``batch_size``).
    :param callbacks: further Lightning callbacks (e.g. to report each epoch to a sweep).
    :param data_kwargs: keyword arguments of ``data_setup_function``.
    :return: one `MemberResult` per member, in order.
    :raises NotVectorisableError: the trainer's settings, the optimizer or the problem cannot train
        as a population (raised before any training; see `population_arguments` and
        `neuromancer.trainers.population.check_vectorisable`).
    """
    arguments = population_arguments(trainer_arguments)
    optimizer = PopulationOptimizer.from_settings(problem, arguments["custom_optimizer"], DEFAULT_LEARNING_RATE,
                                                  {"betas": DEFAULT_BETAS})
    data = LitDataModule(data_setup_function, hparam_config, num_workers=arguments["num_workers"],
                         **dict(data_kwargs or {}))
    data.setup("fit")
    check_vectorisable(problem, _first_batch(data), arguments["train_metric"])
    eval_metric = arguments["eval_metric"]
    if data.dev_data is None and eval_metric == arguments["dev_metric"]:
        raise ValueError(f"eval_metric {eval_metric!r} is computed on the dev split, but data_setup_function returned "
                         f"dev_data=None; return a dev DictDataset or set eval_metric={arguments['train_metric']!r}.")
    module = LitPopulation(problem, members, optimizer, arguments["epochs"], arguments["train_metric"],
                           arguments["dev_metric"], eval_metric)
    save = arguments["save_weights"] and arguments.get("enable_checkpointing", True)
    checkpoints = MemberCheckpoints(member_directories, arguments["weight_name"]) \
        if save and member_directories is not None else None
    if checkpoints is not None:
        for directory in checkpoints.directories:
            ensure_writable_directory(directory, "a sweep run's checkpoint directory",
                                      "pass LitTrainer(weight_path=...) a writable directory, or save_weights=False")
    trainer = pl.Trainer(**_lightning_arguments(arguments, module.grad_inference, data.dev_data is None,
                                                [RandomState(), *callbacks, *([checkpoints] if checkpoints else [])]))
    home = next(iter(problem.parameters()), torch.empty(0)).device
    try:
        _fit_keeping_ctrl_c(trainer, module, data)
    finally:
        problem.to(home)
    return [module.member_result(member, _best_path(module, checkpoints, member)) for member in range(module.size)]


def _first_batch(data: LitDataModule) -> dict[str, Any]:
    """The first batch of the train split in dataset order, as the loader would collate it."""
    dataset, size = data.train_data, data.batch_size or 1
    if dataset is None:
        raise ValueError("data_setup_function returned no train split; return a DictDataset named 'train'.")
    return dataset.collate_fn(dataset.__getitems__(list(range(min(size, len(dataset))))))


def _lightning_arguments(arguments: Mapping[str, Any], grad_inference: bool, no_dev: bool,
                         callbacks: list[LightningCallback]) -> dict[str, Any]:
    """The Lightning ``Trainer`` arguments of the population's fit, from a ``LitTrainer``'s."""
    extra = {name: value for name, value in arguments.items() if name not in LIT_TRAINER_SETTINGS}
    extra.pop("enable_checkpointing", None)
    extra.pop("callbacks", None)
    if grad_inference:
        extra["inference_mode"] = False
    if no_dev:
        extra["limit_val_batches"] = 0
    return dict(max_epochs=arguments["epochs"], devices=arguments["devices"], strategy=arguments["strategy"],
                accelerator=arguments["accelerator"], profiler=arguments["profiler"], logger=False,
                gradient_clip_val=None, callbacks=callbacks,
                enable_checkpointing=any(isinstance(each, Checkpoint) for each in callbacks),
                plugins=with_checkpoint_io(extra.pop("plugins", None)), **extra)


def _fit_keeping_ctrl_c(trainer: pl.Trainer, module: LitPopulation, data: LitDataModule) -> None:
    """Run the fit; after Ctrl-C return (the members keep their best weights) instead of exiting."""
    with sigint_handler_kept():
        try:
            trainer.fit(module, datamodule=data)
        except SystemExit:
            # Lightning answers Ctrl-C by ignoring SIGINT for its shutdown, then exiting.
            if not (trainer.interrupted and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
                raise
            logger.warning("Training of the population interrupted by Ctrl-C at epoch %d; every member keeps its "
                           "best weights so far.", trainer.current_epoch)


def _best_path(module: LitPopulation, checkpoints: MemberCheckpoints | None, member: int) -> str | None:
    epoch = int(module.best_epoch[member])
    if checkpoints is None or epoch < 0:
        return None
    path = checkpoints.path(member, epoch, int(module.best_step[member]))
    return path if os.path.isfile(path) else None

