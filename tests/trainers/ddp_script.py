"""A one-parameter NeuroMANCER problem with a closed-form training trajectory, and a DDP training script.

The problem is ``x = w * a`` with ``a = 1`` and loss ``mean((x - t)^2)``; the train target is 1,
the dev target 0.5 and the test target 0.25. Plain SGD from ``w = 0`` with learning rate ``lr``
maps ``w -> w - 2 lr (w - 1)`` at every step, whatever the batch, so the weight after each epoch,
the dev loss and hence the best epoch are known in closed form (`expected_trajectory`): the dev
loss falls while ``w`` approaches 0.5 and rises once it passes it. The tests import these helpers;
run as a script (``python ddp_script.py STRATEGY OUT.json``) it trains with ``devices=2`` on the
CPU and writes the final weight and checkpoint path to ``OUT.json``, for strategies such as
``ddp`` whose launcher re-runs the script.
"""
from __future__ import annotations

import json
import sys

import torch

from neuromancer.dataset import DictDataset
from neuromancer.problem import Problem
from neuromancer.system import Node

TARGETS = {"train": 1.0, "dev": 0.5, "test": 0.25}


class Scale(torch.nn.Module):
    """``x = w * a`` with a single weight ``w`` (starts at ``w0``)."""

    def __init__(self, w0: float = 0.0) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((1,), float(w0)))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.w * a


class SquaredError(torch.nn.Module):
    """Loss ``mean((x - t)^2)``: returns the data plus ``loss`` and its square root ``rmse``."""

    def forward(self, data: dict) -> dict:
        loss = ((data["x"] - data["t"]) ** 2).mean()
        return {**data, "loss": loss, "rmse": loss.sqrt()}


def scalar_problem(w0: float = 0.0) -> Problem:
    """The one-weight problem, starting at ``w0``."""
    return Problem([Node(Scale(w0), ["a"], ["x"], name="scale")], SquaredError())


def weight(problem: Problem) -> float:
    """The problem's single weight."""
    return float(next(problem.parameters()).detach())


def split(name: str, nsamples: int) -> DictDataset:
    """``nsamples`` samples of ``a = 1`` and the split's target."""
    return DictDataset({"a": torch.ones(nsamples, 1), "t": torch.full((nsamples, 1), TARGETS[name])}, name=name)


def data_setup(nsim: int = 8, batch_size: int = 8, with_test: bool = True):
    """Data setup function: train, dev and (optionally) test splits of ``nsim`` samples each."""
    return split("train", nsim), split("dev", nsim), split("test", nsim) if with_test else None, batch_size


def expected_trajectory(epochs: int, steps_per_epoch: int, lr: float,
                        w0: float = 0.0) -> tuple[list[float], list[float]]:
    """Closed-form weight and dev loss after every epoch of SGD on the scalar problem."""
    decay = 1.0 - 2.0 * lr
    weights = [1.0 + (w0 - 1.0) * decay ** (steps_per_epoch * (epoch + 1)) for epoch in range(epochs)]
    return weights, [(w - TARGETS["dev"]) ** 2 for w in weights]


def main(strategy: str, out_path: str) -> None:
    """Train on two CPU processes with ``strategy`` and write the result (rank 0) to ``out_path``."""
    from neuromancer.trainer import LitTrainer

    problem = scalar_problem()
    trainer = LitTrainer(epochs=6, accelerator="cpu", devices=2, strategy=strategy, weight_name="best",
                         custom_optimizer=torch.optim.SGD(problem.parameters(), lr=0.1),
                         enable_progress_bar=False, enable_model_summary=False, logger=False)
    trainer.fit(problem, data_setup, nsim=16, batch_size=8)
    if trainer.is_global_zero:
        with open(out_path, "w") as handle:
            json.dump({"weight": weight(problem), "best_path": trainer.checkpoint_callback.best_model_path}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
