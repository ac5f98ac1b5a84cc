"""Multi-process fault scenarios for `test_lightning_faults`: a linear regression trained on two CPU processes.

The problem is ``y_hat = Linear(x)`` fitted by mean squared error on fixed random data. With one
full batch per epoch (16 samples: 8 per process on two processes, or 16 on one) plain SGD takes the
same steps on one process as on two, because DDP averages the two half-batch gradients into the
full-batch gradient; so a two-process run can be compared with a single-process reference.
Run as a script (``python fault_ddp.py STRATEGY MODE OUT.json``), it trains with ``devices=2``:
MODE ``train`` writes the final dev loss and the best weights (rank 0) to ``OUT.json``; MODE
``fail`` makes process 1 raise `WorkerFailure` at the start of epoch 1, which must end the run;
MODE ``nan`` gives process 1 alone a NaN loss in epoch 1, on which both processes must stop
together (rank 0 then writes where it stopped).
"""
from __future__ import annotations

import json
import sys
from typing import Any

import lightning.pytorch as pl
import torch

from neuromancer.constraint import Objective, variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.problem import Problem
from neuromancer.system import Node

NSAMPLES = 16
EPOCHS = 4
LEARNING_RATE = 0.1
FAILURE_MESSAGE = "process 1 failed on purpose in epoch 1"


class WorkerFailure(RuntimeError):
    """The error the failing process raises."""


class FailOnSecondProcess(pl.Callback):
    """Raise `WorkerFailure` on global rank 1 when epoch 1 starts."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 1 and trainer.current_epoch == 1:
            raise WorkerFailure(FAILURE_MESSAGE)


def nan_on_second_process(model: pl.LightningModule, batch: dict) -> torch.Tensor:
    """Training step whose loss is NaN on global rank 1 in epoch 1, and the problem's loss elsewhere."""
    loss = model.problem(batch)["train_loss"]
    if model.global_rank == 1 and model.current_epoch == 1:
        return loss * float("nan")
    return loss


def regression_problem() -> Problem:
    """``y_hat = Linear(x)`` (3 inputs) with a mean-squared-error objective; same initial weights every call."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(0)
    net = Node(torch.nn.Linear(3, 1), ["x"], ["y_hat"], name="net")
    torch.set_rng_state(generator_state)
    fit = Objective((variable("y_hat") - variable("y")) ** 2, name="fit")
    return Problem([net], PenaltyLoss([fit], []))


def regression_data(name: str, seed: int) -> DictDataset:
    """``NSAMPLES`` samples of ``y = x @ w + noise`` drawn from their own generator."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(NSAMPLES, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(NSAMPLES, 1, generator=generator)
    return DictDataset({"x": x, "y": y}, name=name)


def regression_setup(batch_size: int = NSAMPLES) -> tuple[DictDataset, DictDataset, None, int]:
    """Data setup function: fixed train and dev splits, no test split."""
    return regression_data("train", 1), regression_data("dev", 2), None, batch_size


def train(problem: Problem, strategy: str = "auto", devices: int = 1, **options: Any) -> dict[str, Any]:
    """Train ``problem`` with SGD on one global batch per epoch; return the final dev loss and best weights."""
    from neuromancer.trainers.lightning import LitTrainer

    trainer = LitTrainer(epochs=EPOCHS, accelerator="cpu", devices=devices, strategy=strategy,
                         custom_optimizer=torch.optim.SGD(problem.parameters(), lr=LEARNING_RATE),
                         save_weights=False, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, **options)
    trainer.fit(problem, regression_setup, batch_size=NSAMPLES // devices)
    return {"dev_loss": float(trainer.callback_metrics["dev_loss"]), "is_global_zero": trainer.is_global_zero,
            "weights": {key: value.tolist() for key, value in problem.state_dict().items()},
            "stopped_on_nonfinite": trainer.stopped_on_nonfinite, "epoch": trainer.current_epoch}


def main(strategy: str, mode: str, out_path: str) -> None:
    """Train on two CPU processes; write rank 0's result to ``out_path`` (mode 'train') or fail (mode 'fail')."""
    options = {"fail": {"callbacks": [FailOnSecondProcess()]},
               "nan": {"custom_training_step": nan_on_second_process}}.get(mode, {})
    result = train(regression_problem(), strategy=strategy, devices=2, **options)
    if result["is_global_zero"]:
        with open(out_path, "w") as handle:
            json.dump(result, handle)


if __name__ == "__main__":
    main(*sys.argv[1:4])
