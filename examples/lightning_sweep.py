"""Hyperparameter sweep of a learned solver with LitTrainer (the Lightning tutorial's sweep section).

A neural network learns to solve a family of Rosenbrock problems in one forward pass,

    minimize over (x, y):  (1 - x)^2 + a (y - x^2)^2
    subject to:            x^2 + y^2 <= p^2,  x >= 0

for parameters p in [0.5, 2] and a in [0.2, 1.2]. How well it learns depends on the learning
rate, the batch size and how many sampled problems it sees, so we let a sweep choose them.

``trainer.hyperparameter_sweep`` takes a Weights & Biases sweep configuration. With a wandb
account (``wandb login``) it creates a sweep you can watch in the wandb UI and join from other
machines; without one, or with ``WANDB_MODE=offline``, it runs the same sweep locally on Optuna
and wandb keeps each run in ``./wandb/offline-run-*`` for a later ``wandb sync``. It returns one
row per run, best first, and leaves the best run's weights in ``problem``.

Run ``python examples/lightning_sweep.py``; ``NEUROMANCER_QUICK=1`` shrinks it to seconds.
"""
import os

import torch

from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainers.lightning import LitTrainer
from neuromancer.trainers.sweep import resolve_sweep_mode

QUICK = os.environ.get("NEUROMANCER_QUICK") == "1"
EPOCHS = 2 if QUICK else 30
RUNS = 2 if QUICK else 12


def sample_parameters(nsim: int, generator: torch.Generator) -> dict:
    """``nsim`` random problem instances: the radius ``p`` and the curvature weight ``a``."""
    return {"p": 0.5 + 1.5 * torch.rand(nsim, 1, generator=generator),
            "a": 0.2 + 1.0 * torch.rand(nsim, 1, generator=generator)}


def data_setup_function(nsim: int = 2000, batch_size: int = 64, seed: int = 0):
    """Train, dev and test sets of problem instances; ``nsim`` is swept, so it is a keyword here.

    Each split has its own random stream, so the dev set that ranks the runs is the same
    whatever ``nsim`` a run draws.
    """
    def split(size: int, offset: int, name: str) -> DictDataset:
        return DictDataset(sample_parameters(size, torch.Generator().manual_seed(seed + offset)), name=name)

    return split(nsim, 0, "train"), split(500, 1, "dev"), split(500, 2, "test"), batch_size


def build_problem() -> Problem:
    """The learned solver: an MLP maps (p, a) to (x, y); a penalty loss scores the Rosenbrock problem."""
    solver = Node(blocks.MLP(2, 2, hsizes=[32, 32], nonlin=torch.nn.ReLU), ["p", "a"], ["xy"], name="solver")
    split = Node(lambda xy: (xy[:, :1], xy[:, 1:]), ["xy"], ["x", "y"], name="split")
    x, y, p, a = variable("x"), variable("y"), variable("p"), variable("a")
    objective = ((1.0 - x) ** 2 + a * (y - x ** 2) ** 2).minimize(name="rosenbrock")
    constraints = [10.0 * (x ** 2 + y ** 2 <= p ** 2), 10.0 * (x >= 0.0)]
    return Problem([solver, split], PenaltyLoss([objective], constraints))


SWEEP_CONFIG = {
    "method": "random",
    "metric": {"name": "dev_loss", "goal": "minimize"},
    "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-3, "max": 3e-2},
        "batch_size": {"values": [32, 64, 128]},
        "nsim": {"values": [500, 1000] if QUICK else [1000, 4000]},
    },
}


def main() -> None:
    torch.manual_seed(0)
    problem = build_problem()
    # Every run gets a fresh LitTrainer built from these arguments plus the sampled values; each
    # run checkpoints into sweep_weights/<run name>/. Progress bars are off: many runs, one table.
    trainer = LitTrainer(epochs=EPOCHS, accelerator="cpu", weight_path="sweep_weights", patience=10,
                         enable_progress_bar=False)
    # Offline, sweep_vectorize trains the runs that share a batch size and nsim as one population
    # (weights stacked, one vmapped step for all), each exactly as it would train alone; online
    # (a wandb agent hands out one run at a time) it is refused, so it applies to offline sweeps only.
    vectorize = RUNS if resolve_sweep_mode() == "offline" else 1
    result = trainer.hyperparameter_sweep(problem, data_setup_function, SWEEP_CONFIG, count=RUNS,
                                          project_name="rosenbrock_sweep", sweep_vectorize=vectorize)
    print(result)
    best = result.best
    print(f"\nbest run {best.name}: {best.config} reached dev_loss {best.metric:.4g}")
    _, dev, _, _ = data_setup_function()
    with torch.no_grad():
        output = problem(dev.collate_fn([dev[i] for i in range(len(dev))]))
    print(f"the problem now holds that run's weights: dev_loss {output['dev_loss'].item():.4g} on the whole dev set")


if __name__ == "__main__":
    main()
