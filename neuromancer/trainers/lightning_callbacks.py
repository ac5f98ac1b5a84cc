"""Lightning callbacks that give `LitTrainer` NeuroMANCER's training semantics.

`BestWeights` keeps the best weights in memory and puts them back into the model when training
ends or is interrupted, so the user's `Problem` holds the best weights on every strategy (with or
without files on disk); its state travels in checkpoints so a resumed run remembers them.
`WarmupEarlyStopping` is Lightning's `EarlyStopping` that does not count the first ``warmup``
epochs. `LastCheckpoint` writes ``last.ckpt`` after every epoch, the file a run resumes from.
`RandomState` stores the random number generators' state in checkpoints and restores it on
resume, so a resumed run shuffles and samples exactly as an uninterrupted one would.
`NeuromancerCallbackAdapter` calls a classic `neuromancer.callbacks.Callback`, and feeds classic
loggers, at the matching Lightning points. Every class here relies only on Lightning's public
callback API, and every state it saves is made of tensors, numbers, strings and plain containers
(loadable with ``weights_only=True``).
"""
from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from neuromancer.callbacks import Callback as NeuromancerCallback
from neuromancer.trainers.checkpoint_io import AtomicCheckpointIO, link_atomically
from neuromancer.trainers.common import cpu_state_dict

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


def _metric_value(trainer: pl.Trainer, name: str) -> float | None:
    """Return the logged metric ``name`` as a float, or None while it has not been logged."""
    value = trainer.callback_metrics.get(name)
    return None if value is None else float(value)


class BestWeights(Checkpoint):
    """Keep an in-memory copy of the weights that scored best on ``monitor``, and restore them at the end.

    Lightning treats it as a checkpointing callback, so it runs after the epoch's validation and
    after every ``on_train_epoch_end`` hook (metrics logged there count). The snapshot lives on the
    CPU, which makes it independent of ``save_weights``; when training ends (or is interrupted) the
    best weights are loaded back into the LightningModule on every process. Under spawn-based
    strategies Lightning then ships rank 0's final weights, which are these, to the main process.
    Before the first evaluation the initial weights count as the best, so a run that diverges in its
    first epoch gives back where it started. The best score, epoch and weights are part of every
    checkpoint (`state_dict`), so a run resumed from one keeps comparing against them. Should an
    exception end training, `interruption` records its type name (``'KeyboardInterrupt'`` for Ctrl-C).

    :param monitor: name of the logged metric that selects the best weights.
    :param mode: 'min' (a lower ``monitor`` is better) or 'max'.
    :raises ValueError: ``mode`` is neither 'min' nor 'max'.
    :raises KeyError: at the end of an epoch, once validation has run, when ``monitor`` was never
        logged (the message lists what was).
    """

    def __init__(self, monitor: str, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self.monitor, self.mode = monitor, mode
        self.best_score = self._worst_score()
        self.best_epoch: int | None = None
        self.best_state: StateDict | None = None
        self.interruption: str | None = None
        self._resumed = False

    @property
    def state_key(self) -> str:
        """Identify the state by the monitored metric: a resumed run monitoring another metric starts afresh."""
        return f"{type(self).__name__}[monitor={self.monitor}]"

    def state_dict(self) -> dict[str, Any]:
        """The best score, its epoch and the best weights (CPU tensors), for checkpoints."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; the next `on_train_start` keeps it instead of starting afresh."""
        self.best_score = float(state_dict["best_score"])
        self.best_epoch = state_dict["best_epoch"]
        self.best_state = state_dict["best_state"]
        self._resumed = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take the initial weights as the fallback best, unless the state was restored from a checkpoint."""
        self.interruption = None
        if self._resumed and self.best_state is not None:
            self._resumed = False
            return
        self.best_score, self.best_epoch = self._worst_score(), None
        self.best_state = cpu_state_dict(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Snapshot the weights when the monitored metric improved this epoch."""
        score = _metric_value(trainer, self.monitor)
        if score is None and trainer.current_epoch + 1 < (trainer.check_val_every_n_epoch or 1):
            return  # no validation has run yet
        if score is None and trainer.should_stop:
            return  # stopped (e.g. on a non-finite loss) before the metric could be logged
        if score is None:
            raise KeyError(f"eval_metric {self.monitor!r} was never logged; logged metrics are "
                           f"{sorted(trainer.callback_metrics)}. Pick one of them as eval_metric.")
        if math.isfinite(score) and (score < self.best_score if self.mode == "min" else score > self.best_score):
            self.best_score, self.best_epoch = score, trainer.current_epoch
            self.best_state = cpu_state_dict(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Load the best weights into the module."""
        self._restore(pl_module)
        if self.best_epoch is not None and trainer.is_global_zero:
            logger.info("Restored the weights of epoch %d (%s=%.6g).", self.best_epoch, self.monitor, self.best_score)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Leave the best weights in the module when training is interrupted, and record why."""
        self.interruption = type(exception).__name__
        if trainer.state.fn == TrainerFn.FITTING:
            self._restore(pl_module)

    def _worst_score(self) -> float:
        """The score every finite one improves on: +inf when minimising, -inf when maximising."""
        return math.inf if self.mode == "min" else -math.inf

    def _restore(self, pl_module: pl.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)


class WarmupEarlyStopping(EarlyStopping):
    """Lightning's `EarlyStopping` that never counts an epoch without improvement during warmup.

    During the first ``warmup`` epochs the best score is still tracked (so an improvement before
    the warmup ends raises the bar), but the patience counter stays at zero and training never
    stops; afterwards it is plain `EarlyStopping`.

    :param monitor: name of the logged metric to minimise.
    :param patience: epochs without improvement (after warmup) before stopping.
    :param warmup: number of leading epochs that never count against patience.
    :param kwargs: further `EarlyStopping` arguments (``min_delta``, ``mode``, ``verbose``...).
    """

    def __init__(self, monitor: str, patience: int, warmup: int = 0, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, patience=patience, **kwargs)
        self.warmup = warmup

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check for early stopping at epoch end, or only track the best score during warmup."""
        if self._in_warmup(trainer):
            self._track_best(trainer)
        else:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check for early stopping after validation, or only track the best score during warmup."""
        if self._in_warmup(trainer):
            self._track_best(trainer)
        else:
            super().on_validation_end(trainer, pl_module)

    def _in_warmup(self, trainer: pl.Trainer) -> bool:
        return trainer.current_epoch < self.warmup and not trainer.sanity_checking

    def _track_best(self, trainer: pl.Trainer) -> None:
        current = trainer.callback_metrics.get(self.monitor)
        if current is None or not torch.isfinite(current):
            return
        current = current.squeeze()
        if self.monitor_op(current - self.min_delta, self.best_score.to(current.device)):
            self.best_score = current


class LastCheckpoint(Checkpoint):
    """Write the complete training state to ``<dirpath>/last.ckpt`` at the end of every training epoch.

    Being a checkpointing callback, Lightning runs it after the LightningModule's and the other
    callbacks' epoch-end hooks; placed after `BestWeights` and the best-checkpoint callback, the
    file holds this epoch's weights, optimizer, loop, early-stopping and best-weights state, which
    is what ``LitTrainer.fit(..., ckpt_path='last')`` resumes from. The file is replaced every epoch
    (through the trainer's CheckpointIO, atomically with `AtomicCheckpointIO`); unlike Lightning's
    ``ModelCheckpoint(save_last=True)`` it never gets a version suffix, so 'last' always means the
    latest run's latest epoch.

    When ``best`` (the best-checkpoint callback, which must run right before this one, after
    `BestWeights`) has just written this epoch's state, that file already holds exactly what
    ``last.ckpt`` would, so in a single-process run with `AtomicCheckpointIO` ``last.ckpt``
    becomes a hard link to it instead of a second serialisation of the same state (a normal
    write where the file system cannot link).

    :param dirpath: directory of ``last.ckpt``.
    :param best: the best-checkpoint callback whose fresh
        file may be linked; None always writes.
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str | os.PathLike, best: ModelCheckpoint | None = None) -> None:
        self.dirpath = os.fspath(dirpath)
        self.best = best
        self._best_seen: tuple[str, float | None] | None = None

    @property
    def path(self) -> str:
        """The checkpoint's path, ``<dirpath>/last.ckpt``."""
        return os.path.join(self.dirpath, self.FILENAME)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Note the best checkpoint that exists before the first epoch (a resumed run's, or none)."""
        self._best_seen = self._best_marker()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save the state of the epoch that just ended (every process takes part; the strategy writes once)."""
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        marker, previous = self._best_marker(), self._best_seen
        self._best_seen = marker
        # Linking is local-file work on one process: a single process writing through AtomicCheckpointIO.
        checkpoint_io = trainer.strategy.checkpoint_io
        if marker is not None and marker != previous and trainer.world_size == 1 and \
                isinstance(checkpoint_io, AtomicCheckpointIO) and \
                link_atomically(marker[0], self.path, durable=checkpoint_io.durable):
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state, not only the weights

    def _best_marker(self) -> tuple[str, float | None] | None:
        """Path and score of the best checkpoint: they change exactly when the best callback writes a new one."""
        if self.best is None:
            return None
        score = self.best.best_model_score
        return self.best.best_model_path, None if score is None else float(score)


class RandomState(Callback):
    """Save the random number generators in checkpoints and restore them when a run resumes.

    A checkpoint written at the end of epoch ``k`` holds the state of torch's CPU generator (and
    of every CUDA device's, when CUDA is initialised), Python's ``random`` and NumPy's global
    generator. On resume the state is restored when training starts (after Lightning's sanity
    check, which draws from the generators too), so epoch ``k + 1`` shuffles its batches and draws
    its random numbers exactly as the uninterrupted run did. States are stored as tensors and
    plain lists, loadable with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The generators' current states."""
        return random_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the saved states, to be restored when training starts."""
        self._pending = dict(state_dict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restore the generators from the checkpoint this run resumed from, if any."""
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        set_random_state(state)


def random_state() -> dict[str, Any]:
    """The states of torch's CPU generator (and the CUDA ones, when CUDA is initialised), Python's and NumPy's.

    Made of tensors, numbers and lists, so it can be saved with the weights; `set_random_state`
    puts it back.
    """
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
                             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}
    numpy = _numpy()
    if numpy is not None:
        kind, keys, position, has_gauss, cached = numpy.random.get_state()
        state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), int(position), int(has_gauss), float(cached)]
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Put the generators back into a state `random_state` returned (CUDA's only on the same number of devices).

    :param state: what `random_state` returned.
    """
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda_states: list[torch.Tensor] = state.get("cuda", [])
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    numpy = _numpy()
    if numpy is not None and "numpy" in state:
        kind, keys, position, has_gauss, cached = state["numpy"]
        numpy.random.set_state((kind, keys.numpy().astype("uint32"), position, has_gauss, cached))


def _numpy() -> Any:
    """The numpy module, or None where it is not installed."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


class NeuromancerCallbackAdapter(Callback):
    """Call a classic `neuromancer.callbacks.Callback`, and feed classic loggers, at the matching Lightning points.

    Hooks run on the global-zero process only (a classic callback or logger knows nothing of
    ranks) and receive the Lightning trainer plus the output dictionary of that point, built as
    the classic `Trainer` builds it:

    ===============  ==========================  ==================================================
    classic hook     Lightning point             ``output``
    ===============  ==========================  ==================================================
    begin_train      ``on_train_start``          (none)
    end_batch        ``on_train_batch_end``      the Problem's output for the batch (detached)
    begin_epoch      ``on_train_epoch_end``      last train batch output, ``<train_metric>`` and
                                                 ``mean_<train_metric>`` holding the epoch mean
    begin_eval       ``on_train_epoch_end``      the above + last dev batch output, ``<dev_metric>``
                                                 and ``mean_<dev_metric>`` holding the dev mean
    end_eval         ``on_train_epoch_end``      same dict as begin_eval (and what a hook added)
    end_epoch        ``on_train_epoch_end``      same dict as end_eval
    end_train        ``on_train_end``            the last epoch's dict
    begin_test       ``on_test_start``           (none)
    end_test         ``on_test_end``             last test batch output, ``<test_metric>`` and
                                                 ``mean_<test_metric>`` holding the test mean
    ===============  ==========================  ==================================================

    A classic logger (`neuromancer.loggers.BasicLogger`, `neuromancer.loggers.LossLogger`...)
    gets what the classic `Trainer` gives it: ``log_weights(problem)`` when a fit starts,
    ``log_metrics(output, step=epoch)`` every epoch between ``begin_eval`` and ``end_eval`` (so it
    sees what ``begin_eval`` added), ``log_artifacts`` of the best weights (``best_model_state_dict.pth``)
    and the problem holding them (``best_model.pth``) when a fit ends, and the test outputs
    prefixed with ``best_`` after a test.

    The epoch means are the ones the `LitProblem` logs (for the training split, this process's
    running mean). The LightningModule must be a `LitProblem` (typed ``Any`` here: this module
    sits below the one defining it); the adapter switches on its output recording.

    :param callback: the classic callback to drive; None for none (only loggers).
    :param loggers: classic loggers to feed.
    :raises TypeError: ``callback`` is not a `neuromancer.callbacks.Callback`, or a logger lacks
        ``log_metrics``.
    """

    def __init__(self, callback: NeuromancerCallback | None = None, loggers: Sequence[Any] = ()) -> None:
        if callback is not None and not isinstance(callback, NeuromancerCallback):
            raise TypeError(f"callback must be a neuromancer.callbacks.Callback, got {type(callback).__name__}; "
                            "pass Lightning callbacks with callbacks=[...] instead.")
        for each in loggers:
            if not callable(getattr(each, "log_metrics", None)):
                raise TypeError(f"a classic logger needs log_metrics(output, step); got {type(each).__name__}.")
        self.callback = NeuromancerCallback() if callback is None else callback
        self.loggers = list(loggers)
        self._epoch_output: dict[str, Any] = {}

    @property
    def state_key(self) -> str:
        """Identify the adapter by the callback and loggers it drives, so several adapters can coexist."""
        names = [type(self.callback).__qualname__] + [type(each).__qualname__ for each in self.loggers]
        return f"{type(self).__name__}[{','.join(names)}]"

    def setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        """Ask the LitProblem to keep the latest detached output of every split."""
        pl_module.record_outputs = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Give the loggers the problem's size (``log_weights``)."""
        if trainer.is_global_zero:
            for each in self.loggers:
                _call_if_present(each, "log_weights", pl_module.problem)

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Call ``begin_train``."""
        if trainer.is_global_zero:
            self.callback.begin_train(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Call ``end_batch`` with the batch's output."""
        if trainer.is_global_zero:
            self.callback.end_batch(trainer, dict(pl_module.last_outputs.get("train", {})))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Call ``begin_epoch``, ``begin_eval``, the loggers, ``end_eval`` and ``end_epoch`` with the epoch's outputs."""
        if not trainer.is_global_zero:
            return
        output = self._split_output(trainer, pl_module, "train", pl_module.train_metric)
        self.callback.begin_epoch(trainer, dict(output))
        output.update(self._split_output(trainer, pl_module, "dev", pl_module.dev_metric))
        self.callback.begin_eval(trainer, output)
        for each in self.loggers:
            each.log_metrics(output, step=trainer.current_epoch)
        self.callback.end_eval(trainer, output)
        self.callback.end_epoch(trainer, output)
        self._epoch_output = output

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Call ``end_train`` with the last epoch's outputs."""
        if trainer.is_global_zero:
            self.callback.end_train(trainer, self._epoch_output)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Give the loggers the best weights (restored by now) and the problem holding them."""
        if trainer.is_global_zero:
            artifacts = {"best_model_state_dict.pth": pl_module.problem.state_dict(),
                         "best_model.pth": pl_module.problem}
            for each in self.loggers:
                _call_if_present(each, "log_artifacts", artifacts)

    def on_test_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Call ``begin_test``."""
        if trainer.is_global_zero:
            self.callback.begin_test(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Call ``end_test`` with the test outputs, and give them to the loggers prefixed with ``best_``."""
        if not trainer.is_global_zero:
            return
        output = self._split_output(trainer, pl_module, "test", pl_module.test_metric)
        self.callback.end_test(trainer, output)
        for each in self.loggers:
            each.log_metrics({f"best_{key}": value for key, value in output.items()})

    @staticmethod
    def _split_output(trainer: pl.Trainer, pl_module: Any, split: str, metric: str) -> dict[str, Any]:
        """Return the split's last batch output with ``metric`` and ``mean_<metric>`` set to its epoch mean.

        The training mean is still accumulating when this runs (Lightning calls callbacks'
        ``on_train_epoch_end`` before the module's), so it is read from the module; dev and test
        means have been logged by then.
        """
        output = dict(pl_module.last_outputs.get(split, {}))
        mean = pl_module.epoch_mean(metric) if split == "train" else trainer.callback_metrics.get(metric)
        if mean is not None:
            output[metric] = output[f"mean_{metric}"] = mean
        return output


def _call_if_present(target: Any, method: str, *args: Any) -> None:
    """Call ``target.method(*args)`` when ``target`` has such a method (classic loggers need not have all)."""
    function = getattr(target, method, None)
    if callable(function):
        function(*args)
