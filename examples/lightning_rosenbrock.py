"""Learn to solve a family of constrained Rosenbrock problems with LitTrainer, on the CPU.

For every parameter pair (a, p), with a in [0.2, 1.2] and p in [0.5, 2.0], the problem is

    minimize over (x1, x2):  (1 - x1)^2 + a (x2 - x1^2)^2
    subject to:              x1 >= x2,   (p/2)^2 <= x1^2 + x2^2 <= p^2

A neural network (MLP 2 -> 2, four hidden layers of 80 ReLU units) maps (a, p) to (x1, x2) and
is trained on the penalised objective, so that after training one forward pass solves any
instance (differentiable parametric programming). Training uses `LitTrainer` with a data setup
function, early stopping, and the best weights restored into the problem at the end.

Run ``python examples/lightning_rosenbrock.py [--out figs]``. ``NEUROMANCER_QUICK=1`` shrinks the
data and the number of epochs so it finishes in seconds. It prints a short summary (test loss,
constraint violations, and the gap to SciPy's solution of one instance) and saves a figure of the
learned solution against the feasible region to ``<out>/lightning_rosenbrock.png``.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import torch

from neuromancer import slim
from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainer import LitTrainer

QUICK = os.environ.get("NEUROMANCER_QUICK") == "1"
PENALTY_WEIGHT = 100.0
logger = logging.getLogger("lightning_rosenbrock")


def sample_parameters(nsim: int, seed: int) -> dict[str, torch.Tensor]:
    """``nsim`` random instances: curvature ``a`` in [0.2, 1.2] and radius ``p`` in [0.5, 2.0]."""
    generator = torch.Generator().manual_seed(seed)
    return {"a": 0.2 + torch.rand(nsim, 1, generator=generator),
            "p": 0.5 + 1.5 * torch.rand(nsim, 1, generator=generator)}


def data_setup_function(nsim: int = 5000, batch_size: int = 64, seed: int = 0):
    """Train, dev and test splits of ``nsim`` sampled instances each, and the batch size."""
    return (DictDataset(sample_parameters(nsim, seed), name="train"),
            DictDataset(sample_parameters(nsim, seed + 1), name="dev"),
            DictDataset(sample_parameters(nsim, seed + 2), name="test"),
            batch_size)


def build_problem() -> Problem:
    """The solution map and the penalised Rosenbrock objective with its three constraints."""
    solution_map = blocks.MLP(insize=2, outsize=2, bias=True, linear_map=slim.maps["linear"], nonlin=torch.nn.ReLU,
                              hsizes=[80] * 4)
    node = Node(solution_map, ["a", "p"], ["x"], name="solution_map")
    a, p, x = variable("a"), variable("p"), variable("x")
    x1, x2 = x[:, [0]], x[:, [1]]
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(weight=1.0, name="objective")
    ordering = PENALTY_WEIGHT * (x1 >= x2)
    inner = PENALTY_WEIGHT * ((p / 2) ** 2 <= x1 ** 2 + x2 ** 2)
    outer = PENALTY_WEIGHT * (x1 ** 2 + x2 ** 2 <= p ** 2)
    for constraint, name in ((ordering, "x1_ge_x2"), (inner, "inner_radius"), (outer, "outer_radius")):
        constraint.name = name
    return Problem([node], PenaltyLoss([objective], [ordering, inner, outer]))


def scipy_solution(a: float, p: float) -> np.ndarray:
    """Reference optimum of one instance, from SciPy's SLSQP started at several points."""
    from scipy.optimize import minimize

    constraints = [{"type": "ineq", "fun": lambda z: z[0] - z[1]},
                   {"type": "ineq", "fun": lambda z: z[0] ** 2 + z[1] ** 2 - (p / 2) ** 2},
                   {"type": "ineq", "fun": lambda z: p ** 2 - z[0] ** 2 - z[1] ** 2}]
    starts = [np.array([p * np.cos(t), p * np.sin(t)]) * 0.75 for t in np.linspace(-np.pi, np.pi, 8, endpoint=False)]
    results = [minimize(lambda z: (1 - z[0]) ** 2 + a * (z[1] - z[0] ** 2) ** 2, start, method="SLSQP",
                        constraints=constraints) for start in starts]
    return min((r for r in results if r.success), key=lambda r: r.fun).x


def solve(problem: Problem, a: float, p: float) -> np.ndarray:
    """The trained network's solution of one instance."""
    batch = {"a": torch.tensor([[a]]), "p": torch.tensor([[p]]), "name": "test"}
    with torch.no_grad():
        return problem(batch)["test_x"][0].numpy()


def plot_solution(problem: Problem, a: float, p: float, reference: np.ndarray, path: Path) -> None:
    """Save the objective's contours, the feasible region, and the learned and reference solutions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-2.2, 2.2, 400)
    x1, x2 = np.meshgrid(grid, grid)
    objective = (1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2
    radius2 = x1 ** 2 + x2 ** 2
    feasible = (x1 >= x2) & (radius2 >= (p / 2) ** 2) & (radius2 <= p ** 2)
    learned = solve(problem, a, p)

    fig, ax = plt.subplots(figsize=(6, 6))
    contours = ax.contour(x1, x2, objective, levels=np.logspace(-2, 2, 12), cmap="viridis", alpha=0.8)
    ax.clabel(contours, fontsize=7)
    ax.contourf(x1, x2, feasible, levels=[0.5, 1.5], colors=["tab:green"], alpha=0.2)
    ax.plot(*reference, "k*", markersize=14, label="SciPy SLSQP")
    ax.plot(*learned, "r^", markersize=10, label="LitTrainer-trained network")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=f"Rosenbrock, a={a:g}, p={p:g}: feasible region shaded",
           aspect="equal")
    ax.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def train(out_dir: Path, epochs: int | None = None) -> tuple[Problem, LitTrainer, dict[str, float]]:
    """Train the solution map with LitTrainer; return the problem (best weights), trainer and test metrics."""
    nsim, epochs = (500, epochs or 3) if QUICK else (5000, epochs or 200)
    problem = build_problem()
    trainer = LitTrainer(epochs=epochs, accelerator="cpu", devices=1, patience=20, warmup=10,
                         weight_path=str(out_dir / "weights"), weight_name="rosenbrock",
                         enable_progress_bar=not QUICK, enable_model_summary=False)
    trainer.fit(problem, data_setup_function, nsim=nsim)
    return problem, trainer, trainer.test(verbose=False)


def main(argv: list | None = None) -> None:
    """Train, then print a summary and save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figs"), help="output directory (default ./figs)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 200, 3 when quick)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    problem, trainer, test_metrics = train(args.out, args.epochs)
    with torch.no_grad():
        output = problem({**sample_parameters(1000, seed=7), "name": "test"})
    a, p = 1.0, 1.0
    reference, learned = scipy_solution(a, p), solve(problem, a, p)
    figure = args.out / "lightning_rosenbrock.png"
    plot_solution(problem, a, p, reference, figure)

    print(f"epochs run: {trainer.current_epoch}; best checkpoint: {trainer.checkpoint_callback.best_model_path}")
    print(f"test loss: {test_metrics['test_loss']:.4f}")
    print(f"mean constraint violation on 1000 new instances: {output['test_C_violations'].abs().mean():.2e}")
    print(f"a={a}, p={p}: network x={np.round(learned, 3)}, SciPy x={np.round(reference, 3)}, "
          f"distance {np.linalg.norm(learned - reference):.3f}")
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
