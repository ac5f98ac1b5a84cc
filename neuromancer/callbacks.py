"""`Callback`: hooks the trainers call during training, for `Trainer` and `LitTrainer` alike.

Subclass `Callback` and override the hooks you need (visualisation, custom logging, curriculum
changes, alternate evaluations); every hook does nothing by default. The hooks receive the trainer
itself, so they can read ``trainer.model``, ``trainer.current_epoch``, ``trainer.best_devloss`` and
the like, and, where given, the ``output`` dict of the latest pass (keys prefixed with the split
name, e.g. ``train_loss``). They run in this order::

    begin_train
    for every epoch:
        for every training batch: ... end_batch
        begin_epoch        (after the training batches, with their averaged output)
        begin_eval         (before the dev evaluation)
        end_eval           (after the dev evaluation and logging)
        end_epoch
    end_train
    begin_test ... end_test   (in Trainer.test)

`LitTrainer(..., callback=MyCallback())` calls the same hooks at the matching Lightning points
(see `neuromancer.trainers.lightning_callbacks.NeuromancerCallbackAdapter`), so a callback
written for `Trainer` works unchanged there; the ``trainer`` it receives is then the Lightning one.
"""
from __future__ import annotations

from typing import Any

Output = dict[str, Any]


class Callback:
    """Base class of Trainer callbacks; every hook is a no-op to override."""

    def __init__(self) -> None:
        """Create a callback; the base class holds no state."""

    def begin_train(self, trainer: Any) -> None:
        """Called once before the first epoch.

        :param trainer: the running trainer.
        """

    def end_batch(self, trainer: Any, output: Output) -> None:
        """Called after every optimiser step on a training batch.

        :param trainer: the running trainer.
        :param output: the Problem's output for the batch.
        """

    def begin_epoch(self, trainer: Any, output: Output) -> None:
        """Called after an epoch's training batches, before evaluation.

        :param trainer: the running trainer.
        :param output: the epoch's training output (batch means).
        """

    def begin_eval(self, trainer: Any, output: Output) -> None:
        """Called before the dev set is evaluated; may add entries to ``output``.

        :param trainer: the running trainer.
        :param output: the epoch's output so far.
        """

    def end_eval(self, trainer: Any, output: Output) -> None:
        """Called after the dev evaluation (and the logger's ``log_metrics``).

        :param trainer: the running trainer.
        :param output: train and dev outputs of the epoch.
        """

    def end_epoch(self, trainer: Any, output: Output) -> None:
        """Called at the very end of every epoch.

        :param trainer: the running trainer.
        :param output: the epoch's outputs.
        """

    def end_train(self, trainer: Any, output: Output) -> None:
        """Called once after the last epoch (or early stop), before the best weights are returned.

        :param trainer: the running trainer.
        :param output: the last epoch's outputs.
        """

    def begin_test(self, trainer: Any) -> None:
        """Called at the start of ``Trainer.test``.

        :param trainer: the trainer.
        """

    def end_test(self, trainer: Any, output: Output) -> None:
        """Called at the end of ``Trainer.test`` with the test outputs.

        :param trainer: the trainer.
        :param output: the evaluation outputs of the best model.
        """
