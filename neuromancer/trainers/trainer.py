"""The classic NeuroMANCER training loop in plain PyTorch.

`Trainer` fits a `neuromancer.problem.Problem` with one optimizer over a training
`DataLoader`, evaluates it on a development loader after every epoch, keeps the weights that
scored best on `eval_metric`, stops early when that metric stops improving, and hands the best
weights back to the problem at the end. It calls the user's `Callback` at the same waypoints as
NeuroMANCER 1.5, so callbacks and loggers written for upstream keep working. It imports nothing
beyond torch and the modeling layer; the Lightning trainer lives in
`neuromancer.trainers.lightning`.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from neuromancer.callbacks import Callback
from neuromancer.exceptions import NeuromancerError
from neuromancer.trainers.common import (
    DEFAULT_EVAL_METRIC,
    alpha_loss,
    fidelity_modules,
    make_scheduler,
    resolve_eval_metric,
)

if TYPE_CHECKING:
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    from neuromancer.loggers import BasicLogger

log = logging.getLogger(__name__)

_EVAL_MODES = ("min", "max")
_NAME_HINT = (
    "Batches must carry the dataset name so the problem can prefix its outputs: build loaders "
    "from DictDataset(data, name='train'|'dev'|'test') with collate_fn=dataset.collate_fn."
)

StateDict = dict[str, torch.Tensor]


def move_batch_to_device(batch: Mapping[str, Any], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Return a copy of ``batch`` with every tensor moved to ``device``.

    Non-tensor entries (the dataset ``name``, python numbers, lists) are kept as they are, so the
    returned dict can be passed straight to a `Problem`.

    :param batch: a batch as produced by ``DictDataset.collate_fn``.
    :param device: where the tensors should live.
    :return: a new dict; the input is not modified.
    """
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def _metric(output: Mapping[str, Any], key: str, role: str) -> Any:
    """Return ``output[key]``, or raise a KeyError that lists the metrics that are available."""
    try:
        return output[key]
    except KeyError:
        available = sorted(k for k, v in output.items() if isinstance(v, torch.Tensor) and v.numel() == 1)
        raise KeyError(
            f"{role}={key!r} is not among the problem's outputs. Scalar metrics available: {available}. "
            f"Pass one of them as {role}. {_NAME_HINT}"
        ) from None


def _snapshot(module: torch.nn.Module) -> StateDict:
    """Copy a module's state dict into fresh tensors on the same device (cheaper than deepcopy)."""
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


class _NonFiniteLoss(NeuromancerError, ArithmeticError):
    """Signals, inside `Trainer.train`, that the training metric became NaN or infinite."""


class Trainer:
    """Train a `Problem` with a plain PyTorch loop, early stopping and best-weight restoring.

    Each epoch runs every training batch through ``problem(batch)[train_metric]``, backpropagates,
    clips the gradient norm at ``clip`` and takes an optimizer step; then it evaluates
    ``dev_data`` without gradients (with gradients when ``problem.grad_inference`` is True),
    compares ``eval_metric`` with the best value so far and counts an epoch without improvement
    towards ``patience`` once more than ``warmup`` epochs have passed. Training stops after
    ``epochs`` epochs, when the count exceeds ``patience``, when the training metric becomes
    non-finite (a warning names the epoch, step and metric) or on Ctrl-C; in every case the best
    weights are loaded back into ``problem`` and returned by `train`.

    Callbacks are called in NeuroMANCER 1.5's order: ``begin_train``; per epoch ``end_batch``
    after every training step, ``begin_epoch`` once the training pass is done (with the epoch's
    training output), ``begin_eval`` after the dev pass (a callback may add metrics to the
    output dict here), ``end_eval``, ``end_epoch``; finally ``end_train``.

    In the epoch output, ``train_metric`` and ``dev_metric`` (and ``mean_<metric>``) hold the mean
    over all batches of the epoch; the other entries are the last batch's. The best value starts
    at +inf ('min') or -inf ('max'). Progress goes to ``logging`` (logger
    ``neuromancer.trainers.trainer``, level INFO).

    :param problem: the model and loss to train; its ``forward`` returns a dict whose
        keys are prefixed with the batch's ``name``.
    :param train_data: training batches (dicts with a ``name`` entry, e.g. 'train').
    :param dev_data: development batches used for model selection.
    :param test_data: test batches, used by `test` only.
    :param optimizer: defaults to
        ``Adam(problem.parameters(), lr=0.01, betas=(0.0, 0.9))``.
    :param logger: gets ``log_weights`` at construction,
        ``log_metrics(output, step=epoch)`` every epoch, ``log_artifacts`` at the end of
        training and the ``best_`` metrics from `test`.
    :param callback: hooks called during training; None means a no-op
        ``Callback()``.
    :param lr_scheduler: True builds
        ``ReduceLROnPlateau(optimizer, mode='min', factor=0.5, patience=100)`` stepped with the
        epoch's mean training metric; a scheduler instance is stepped once per epoch (with that
        metric if it is a ReduceLROnPlateau).
    :param epochs: number of epochs for one call of `train`.
    :param epoch_verbose: log progress every this many epochs.
    :param patience: epochs without improvement tolerated (after
        warmup) before stopping; None never stops early.
    :param warmup: epochs with index <= warmup never count towards patience.
    :param train_metric: output key that is minimized.
    :param dev_metric: output key averaged over the dev batches.
    :param test_metric: output key averaged over the test batches.
    :param eval_metric: output key used to select the best weights (the
        preferred name; ``monitor_metric`` is another name for it).
    :param eval_mode: 'min' or 'max': whether a lower or higher
        ``eval_metric`` is better.
    :param clip: maximum gradient norm.
    :param multi_fidelity: add ``get_alpha_loss()`` of every node callable
        that has it (multi-fidelity networks such as ``StackedMLP``) to the training metric.
    :param device: where the problem and batches live; the problem is moved there
        when the trainer is built.
    :param monitor_metric: another name for ``eval_metric``.
    :raises ValueError: ``eval_metric`` and ``monitor_metric`` both given with different values;
        for an unknown ``eval_mode``, negative ``epochs``/``patience``/``warmup``,
        ``epoch_verbose`` < 1, a non-positive ``clip``, a dev ``eval_metric`` without
        ``dev_data``, or ``multi_fidelity`` without any node providing ``get_alpha_loss``.
    :raises TypeError: when ``train_data`` is not iterable.
    """

    def __init__(
        self,
        problem: torch.nn.Module,
        train_data: DataLoader,
        dev_data: DataLoader | None = None,
        test_data: DataLoader | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        logger: BasicLogger | None = None,
        callback: Callback | None = None,
        lr_scheduler: bool | LRScheduler | ReduceLROnPlateau = False,
        epochs: int = 1000,
        epoch_verbose: int = 1,
        patience: int | None = 5,
        warmup: int = 0,
        train_metric: str = "train_loss",
        dev_metric: str = "dev_loss",
        test_metric: str = "test_loss",
        eval_metric: str = DEFAULT_EVAL_METRIC,
        eval_mode: str = "min",
        clip: float | None = 100.0,
        multi_fidelity: bool = False,
        device: str | torch.device = "cpu",
        *,
        monitor_metric: str | None = None,
    ) -> None:
        eval_metric = resolve_eval_metric(eval_metric, monitor_metric)
        _check_settings(train_data, dev_data, epochs, epoch_verbose, patience, warmup, clip,
                        train_metric, dev_metric, eval_metric, eval_mode)
        self.device = device
        self.model = _on_device(problem, device)
        self.optimizer = optimizer if optimizer is not None else torch.optim.Adam(
            problem.parameters(), lr=0.01, betas=(0.0, 0.9))
        self.train_data = train_data
        self.dev_data = dev_data
        self.test_data = test_data
        self.callback = callback if callback is not None else Callback()
        self.logger = logger
        self.epochs = epochs
        self.current_epoch = 0
        self.epoch_verbose = epoch_verbose
        self.train_metric = train_metric
        self.dev_metric = dev_metric
        self.test_metric = test_metric
        self.eval_metric = eval_metric
        self.eval_mode = eval_mode
        self._eval_min = eval_mode == "min"
        self.lr_scheduler = make_scheduler(lr_scheduler, self.optimizer)
        self.patience = patience
        self.warmup = warmup
        self.badcount = 0
        self.clip = clip
        self.best_devloss = math.inf if self._eval_min else -math.inf
        self.best_model = _snapshot(self.model)
        self.multi_fidelity = multi_fidelity
        self._fidelity_modules = fidelity_modules(problem) if multi_fidelity else []
        self.stop_reason: str | None = None
        if logger is not None:
            logger.log_weights(self.model)

    def train(self) -> StateDict:
        """Run up to ``epochs`` epochs, then load the best weights into the problem and return them.

        A second call continues from ``current_epoch`` with the optimizer state kept.
        ``stop_reason`` says why training ended: 'epochs', 'early_stopping', 'non_finite_loss'
        or 'interrupted'.

        :return: the best state dict (the one now loaded in ``problem``).
        :raises KeyError: when ``train_metric``, ``dev_metric`` or ``eval_metric`` is not in the
            problem's outputs (the message lists the available metrics).
        """
        self.callback.begin_train(self)
        output: dict[str, Any] = {}
        self.stop_reason = "epochs"
        try:
            for epoch in range(self.current_epoch, self.current_epoch + self.epochs):
                output = self._run_epoch(epoch)
                self.current_epoch = epoch + 1
                if self._patience_exhausted():
                    log.info("Early stopping at epoch %d: %s has not improved for %d epochs.",
                             epoch, self.eval_metric, self.badcount)
                    self.stop_reason = "early_stopping"
                    break
        except _NonFiniteLoss as err:
            log.warning("%s Stopping and restoring the best weights (%s=%s).",
                        err, self.eval_metric, self.best_devloss)
            self.stop_reason = "non_finite_loss"
        except KeyboardInterrupt:
            log.warning("Training interrupted at epoch %d; restoring the best weights.", self.current_epoch)
            self.stop_reason = "interrupted"
        self.callback.end_train(self, output)
        self.model.load_state_dict(self.best_model)
        if self.logger is not None:
            self.logger.log_artifacts({"best_model_state_dict.pth": self.best_model, "best_model.pth": self.model})
        return self.best_model

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train over all batches, evaluate, update the best weights; return the epoch output."""
        output = self._train_pass(epoch)
        self.callback.begin_epoch(self, output)
        self._step_scheduler(output[f"mean_{self.train_metric}"])
        with torch.set_grad_enabled(bool(getattr(self.model, "grad_inference", False))):
            self.model.eval()
            if self.dev_data is not None:
                output.update(self._mean_pass(self.dev_data, self.dev_metric, "dev_metric"))
            self.callback.begin_eval(self, output)
            self._track_best(epoch, output)
            if self.logger is not None:
                self.logger.log_metrics(output, step=epoch)
            if epoch % self.epoch_verbose == 0:
                log.info("epoch: %d  %s: %.6g  %s: %.6g", epoch, self.train_metric,
                         float(output[self.train_metric]), self.eval_metric, float(output[self.eval_metric]))
            self.callback.end_eval(self, output)
        self.callback.end_epoch(self, output)
        return output

    def _train_pass(self, epoch: int) -> dict[str, Any]:
        """One optimization pass over ``train_data``; the output holds the last batch and the means."""
        self.model.train()
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        total: torch.Tensor | float = 0.0
        output: dict[str, Any] = {}
        steps = 0
        for steps, batch in enumerate(self.train_data, start=1):
            batch = move_batch_to_device(batch, self.device)
            batch["epoch"] = epoch
            output = self.model(batch)
            loss = _metric(output, self.train_metric, "train_metric")
            if self._fidelity_modules:
                loss = loss + alpha_loss(self._fidelity_modules)
            if not torch.isfinite(loss):
                raise _NonFiniteLoss(
                    f"Non-finite {self.train_metric} ({float(loss.detach())}) at epoch {epoch}, step {steps - 1}.")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip is not None:
                torch.nn.utils.clip_grad_norm_(parameters, self.clip)
            self.optimizer.step()
            loss = loss.detach()
            output[self.train_metric] = loss
            total = total + loss
            self.callback.end_batch(self, output)
        if steps == 0:
            raise ValueError("train_data yielded no batches; give it at least one sample (and drop_last=False).")
        mean = total / steps
        output[self.train_metric] = mean
        output[f"mean_{self.train_metric}"] = mean
        return output

    def _mean_pass(self, loader: Iterable, metric: str, role: str) -> dict[str, Any]:
        """Run the problem over ``loader``; return the last batch's output with ``metric`` averaged."""
        total, steps, output = 0.0, 0, {}
        for batch in loader:
            steps += 1
            output = self.model(move_batch_to_device(batch, self.device))
            total = total + _metric(output, metric, role).detach()
        if steps == 0:
            raise ValueError(f"The loader for {role}={metric!r} yielded no batches.")
        output[metric] = total / steps
        output[f"mean_{metric}"] = output[metric]
        return output

    def _step_scheduler(self, mean_train: torch.Tensor) -> None:
        """Advance the learning-rate scheduler once per epoch, if there is one."""
        if self.lr_scheduler is None:
            return
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step(float(mean_train))
        else:
            self.lr_scheduler.step()

    def _track_best(self, epoch: int, output: Mapping[str, Any]) -> None:
        """Keep a copy of the weights when ``eval_metric`` improves; otherwise count a bad epoch."""
        metric = _metric(output, self.eval_metric, "eval_metric")
        if isinstance(metric, torch.Tensor) and metric.numel() != 1:
            raise ValueError(f"eval_metric={self.eval_metric!r} must be a scalar, got a tensor of shape "
                             f"{tuple(metric.shape)}; select a loss or objective key instead.")
        value = float(metric)
        improved = value < self.best_devloss if self._eval_min else value > self.best_devloss
        if improved:
            self.best_devloss = value
            self.best_model = _snapshot(self.model)
            self.badcount = 0
        elif epoch > self.warmup:
            self.badcount += 1

    def _patience_exhausted(self) -> bool:
        """Whether the epochs without improvement exceed ``patience``."""
        return self.patience is not None and self.badcount > self.patience

    def test(self, best_model: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Load ``best_model`` and evaluate it on the train, dev and test loaders.

        Runs the ``begin_test``/``end_test`` callbacks and, with a logger, logs every metric
        with a ``best_`` prefix. Loaders that are None are skipped.

        :param best_model: a state dict, e.g. the one returned by `train`; loaded with
            ``strict=False``.
        :return: the last batch's outputs of every split, with ``train_metric``,
            ``dev_metric``, ``test_metric`` and ``mean_<metric>`` averaged over their batches.
        :raises KeyError: when a metric is missing from the problem's outputs.
        """
        self.model.load_state_dict(best_model, strict=False)
        self.model.eval()
        output: dict[str, Any] = {}
        with torch.set_grad_enabled(bool(getattr(self.model, "grad_inference", False))):
            self.callback.begin_test(self)
            splits = ((self.train_data, self.train_metric, "train_metric"),
                      (self.dev_data, self.dev_metric, "dev_metric"),
                      (self.test_data, self.test_metric, "test_metric"))
            for loader, metric, role in splits:
                if loader is not None:
                    output.update(self._mean_pass(loader, metric, role))
        self.callback.end_test(self, output)
        if self.logger is not None:
            self.logger.log_metrics({f"best_{key}": value for key, value in output.items()})
        return output

    def evaluate(self, best_model: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Deprecated alias of `test`, kept for the scripts that call it.

        :param best_model: a state dict to load before evaluating.
        :return: what `test` returns.
        """
        warnings.warn("Trainer.evaluate is deprecated; call Trainer.test instead.", DeprecationWarning, stacklevel=2)
        return self.test(best_model)


def _check_settings(train_data: Any, dev_data: Any, epochs: int, epoch_verbose: int, patience: int | None,
                    warmup: int, clip: float | None, train_metric: str, dev_metric: str, eval_metric: str,
                    eval_mode: str) -> None:
    """Reject Trainer settings that cannot work, with a message that says how to fix them."""
    if not isinstance(train_data, Iterable):
        raise TypeError(f"train_data must be an iterable of batches such as a DataLoader, got {type(train_data).__name__}.")
    if eval_mode not in _EVAL_MODES:
        raise ValueError(f"eval_mode={eval_mode!r} is not supported; use 'min' or 'max'.")
    for name, value in (("epochs", epochs), ("warmup", warmup), ("patience", patience)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{name}={value!r} must be a non-negative integer.")
    if not isinstance(epoch_verbose, int) or epoch_verbose < 1:
        raise ValueError(f"epoch_verbose={epoch_verbose!r} must be a positive integer (log every N epochs).")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip={clip!r} must be a positive gradient norm, or None to disable clipping.")
    on_train_split = eval_metric in (train_metric, f"mean_{train_metric}")
    if dev_data is None and eval_metric in (dev_metric, f"mean_{dev_metric}") and not on_train_split:
        raise ValueError(
            f"eval_metric={eval_metric!r} is computed on dev_data, which is None. Pass dev_data, or select "
            f"the best weights on the training metric, e.g. eval_metric='train_loss'.")


def _on_device(problem: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """Move the problem to ``device`` (in place, so optimizers built on its parameters stay valid)."""
    target = torch.device(device)
    current = next(iter(problem.parameters()), None)
    if current is not None and current.device.type != target.type:
        log.info("Moving the problem from %s to %s.", current.device, target)
    return problem.to(target)
