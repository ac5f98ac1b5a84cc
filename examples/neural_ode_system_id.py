"""System identification with a neural ODE: learn the two-tank dynamics from simulated data with LitTrainer.

The plant is the psl ``TwoTank`` emulator: a pump and a valve (inputs ``u = [p, v]``) fill two
cascaded tanks whose levels ``x = [h1, h2]`` drain through their outlets,

    dh1/dt = c1 (1 - v) p - c2 sqrt(h1),    dh2/dt = c1 v p + c2 sqrt(h1) - c2 sqrt(h2).

We pretend not to know these equations. The example simulates several trajectories under random
step inputs (train, dev and a long test trajectory), standardises states and inputs with the
statistics of the training data, and cuts the training and dev trajectories into windows of
``nsteps`` steps. The model is a neural ODE: an MLP right-hand side ``dx/dt = f(x, u)``
integrated by a fixed-step RK4 over one sampling period, wrapped as
``Node(RK4(f, h=ts), ['xn', 'U'], ['xn'])`` and rolled out over each window by a ``System`` from
the window's first state. It is fitted by multiple shooting on each window: the squared error of the
whole rollout, of the first step, and of the step-to-step differences (the ``(xhat == x)^2`` terms),
with ``LitTrainer`` on the CPU, early stopping on the dev loss and the best weights kept.

After training the model is run open loop over the whole test trajectory from its first state,
given only the inputs. The example prints the open-loop mean squared error (in tank-level units)
next to that of a naive baseline that holds the initial levels constant, and saves true against
predicted levels, with the inputs, to ``<out>/neural_ode_system_id.png``.

Run ``python examples/neural_ode_system_id.py [--out figs]`` (a few minutes on two CPU cores).
``NEUROMANCER_QUICK=1`` shrinks the data, the windows and the number of epochs so it finishes in
well under a minute, with a rougher fit.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuromancer import slim
from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.dynamics.integrators import RK4
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.plot import pltOL
from neuromancer.problem import Problem
from neuromancer.psl import ODE_NonAutonomous, systems
from neuromancer.system import Node, System
from neuromancer.trainer import LitTrainer

QUICK = os.environ.get("NEUROMANCER_QUICK") == "1"
SYSTEM_NAME = "TwoTank"


@dataclass(frozen=True)
class Settings:
    """Sizes of the experiment.

    :param train_trajectories: (int) number of simulated training trajectories
    :param trajectory_length: (int) steps per training or dev trajectory
    :param test_length: (int) steps of the open-loop test trajectory
    :param nsteps: (int) rollout length of a training window
    :param stride: (int) steps between the starts of consecutive windows
    :param hidden: (tuple of int) hidden layer sizes of the right-hand side MLP
    :param epochs: (int) maximum number of epochs
    :param patience: (int) epochs without a better dev loss before training stops
    :param batch_size: (int) windows per batch
    :param learning_rate: (float) Adam step size
    """

    train_trajectories: int
    trajectory_length: int
    test_length: int
    nsteps: int
    stride: int
    hidden: tuple[int, ...]
    epochs: int
    patience: int
    batch_size: int
    learning_rate: float


FULL = Settings(train_trajectories=8, trajectory_length=2000, test_length=2000, nsteps=32, stride=8,
                hidden=(64, 64), epochs=150, patience=20, batch_size=64, learning_rate=3e-3)
QUICK_SETTINGS = Settings(train_trajectories=3, trajectory_length=1000, test_length=1000, nsteps=16, stride=4,
                          hidden=(32, 32), epochs=40, patience=10, batch_size=32, learning_rate=1e-2)


def simulate_trajectories(system: ODE_NonAutonomous, count: int, nsim: int) -> dict[str, np.ndarray]:
    """Simulate ``count`` trajectories of ``nsim`` steps from random initial levels under random step inputs.

    :return: ``{'X': [count, nsim, nx], 'U': [count, nsim, nu]}``, where ``U[:, k]`` drives ``X[:, k]`` to ``X[:, k + 1]``
    """
    runs = [system.simulate(nsim=nsim, x0=system.get_x0(), U=system.get_U(nsim + 1)) for _ in range(count)]
    return {key: np.stack([run[key] for run in runs]).astype(np.float32) for key in ("X", "U")}


def cut_windows(trajectories: dict[str, np.ndarray], nsteps: int, stride: int) -> dict[str, torch.Tensor]:
    """Cut trajectories into overlapping windows of ``nsteps`` transitions.

    :return: ``{'X': [B, nsteps + 1, nx], 'U': [B, nsteps, nu], 'xn': [B, 1, nx]}``; ``xn`` is each
        window's initial state, from which the model's rollout starts
    """
    length = trajectories["X"].shape[1]
    starts = range(0, length - nsteps, stride)
    states = np.concatenate([trajectories["X"][:, s:s + nsteps + 1] for s in starts])
    inputs = np.concatenate([trajectories["U"][:, s:s + nsteps] for s in starts])
    states, inputs = torch.from_numpy(states), torch.from_numpy(inputs)
    return {"X": states, "U": inputs, "xn": states[:, :1]}


def make_data(system: ODE_NonAutonomous, settings: Settings) -> tuple[dict[str, np.ndarray], ...]:
    """Simulate the train, dev and test trajectories and standardise them with the training statistics.

    :return: normalised ``(train, dev, test)`` trajectory dicts; the test dict holds one trajectory
    """
    train = simulate_trajectories(system, settings.train_trajectories, settings.trajectory_length)
    dev = simulate_trajectories(system, 1, settings.trajectory_length)
    test = simulate_trajectories(system, 1, settings.test_length)
    system.set_stats(sim=train)
    return tuple(system.normalize(split) for split in (train, dev, test))


def data_setup_function(train: dict[str, np.ndarray], dev: dict[str, np.ndarray], nsteps: int, stride: int,
                        batch_size: int) -> tuple[DictDataset, DictDataset, None, int]:
    """Windowed train and dev datasets for LitTrainer (the test is the open-loop run after training)."""
    return (DictDataset(cut_windows(train, nsteps, stride), name="train"),
            DictDataset(cut_windows(dev, nsteps, stride), name="dev"),
            None,
            batch_size)


def build_model(nx: int, nu: int, ts: float, hidden: tuple[int, ...]) -> System:
    """The neural ODE ``dx/dt = MLP(x, u)`` integrated by RK4 over one sampling period, as a rollout System.

    The rollout length follows the length of the input sequence ``U`` in the data.
    """
    right_hand_side = blocks.MLP(nx + nu, nx, bias=True, linear_map=slim.maps["linear"], nonlin=torch.nn.ELU,
                                 hsizes=list(hidden))
    step = Node(RK4(right_hand_side, h=ts), ["xn", "U"], ["xn"], name="neural_ode")
    return System([step], name="two_tank_model", nstep_key="U")


def build_problem(model: System) -> Problem:
    """Multiple-shooting fit of the rollout to the measured windows.

    Three squared-error terms: the whole rollout against the data, its first step (an easy signal
    early in training), and its step-to-step increments (so the model also matches the local slope).
    They are minimised as objectives (upstream NeuroMANCER style: a constraint in the objectives
    list adds its weighted penalty to the objective loss), so the training loss is their weighted sum.
    """
    measured, predicted = variable("X"), variable("xn")
    rollout_fit = 10.0 * (predicted[:, 1:, :] == measured[:, 1:, :]) ^ 2
    rollout_fit.name = "rollout_fit"
    one_step_fit = 1.0 * (predicted[:, 1, :] == measured[:, 1, :]) ^ 2
    one_step_fit.name = "one_step_fit"
    increment_fit = 1.0 * ((predicted[:, 1:, :] - predicted[:, :-1, :])
                           == (measured[:, 1:, :] - measured[:, :-1, :])) ^ 2
    increment_fit.name = "increment_fit"
    return Problem([model], PenaltyLoss([rollout_fit, one_step_fit, increment_fit], []))


def train(problem: Problem, train_data: dict[str, np.ndarray], dev_data: dict[str, np.ndarray],
          settings: Settings, out_dir: Path) -> LitTrainer:
    """Fit ``problem`` with LitTrainer on the CPU; it ends holding the weights with the lowest dev loss."""
    trainer = LitTrainer(epochs=settings.epochs, patience=settings.patience, warmup=5, accelerator="cpu", devices=1,
                         custom_optimizer=torch.optim.Adam(problem.parameters(), lr=settings.learning_rate),
                         weight_path=str(out_dir / "weights"), weight_name="neural_ode",
                         default_root_dir=str(out_dir), enable_progress_bar=not QUICK,
                         enable_model_summary=False)
    trainer.fit(problem, data_setup_function, train=train_data, dev=dev_data, nsteps=settings.nsteps,
                stride=settings.stride, batch_size=settings.batch_size)
    return trainer


def open_loop(model: System, test: dict[str, np.ndarray]) -> np.ndarray:
    """Simulate the model over the whole test trajectory from its first state, given only the inputs.

    :return: ``[T, nx]`` normalised states predicted for the test trajectory (the first is the given one)
    """
    states, inputs = torch.from_numpy(test["X"]), torch.from_numpy(test["U"])
    with torch.no_grad():
        rollout = model({"xn": states[:, :1], "U": inputs[:, :-1]})
    return rollout["xn"][0].numpy()


def mean_squared_error(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean of the squared differences over every time step and state."""
    return float(np.mean((prediction - target) ** 2))


def evaluate(system: ODE_NonAutonomous, model: System, test: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Open-loop prediction and constant-level baseline in tank-level units, with the true levels and inputs."""
    true = system.denormalize(test["X"][0], key="X")
    return {"true": true,
            "model": system.denormalize(open_loop(model, test), key="X"),
            "baseline": np.repeat(true[:1], len(true), axis=0),
            "inputs": system.denormalize(test["U"][0], key="U")}


def main(argv: list[str] | None = None) -> None:
    """Simulate, train, evaluate open loop, print the errors and save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figs"), help="output directory (default ./figs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = QUICK_SETTINGS if QUICK else FULL
    # The network is tiny, so thread synchronisation would cost more than it saves: one thread is
    # several times faster, and much faster again when other processes share the cores.
    torch.set_num_threads(1)
    torch.manual_seed(0)

    system = systems[SYSTEM_NAME](seed=0)
    train_data, dev_data, test_data = make_data(system, settings)
    model = build_model(system.nx, system.nu, system.ts, settings.hidden)
    problem = build_problem(model)
    trainer = train(problem, train_data, dev_data, settings, args.out)

    result = evaluate(system, model, test_data)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / "neural_ode_system_id.png"
    pltOL(Y=result["true"], Ytrain=result["model"], U=result["inputs"], figname=str(figure))

    print(f"epochs run: {trainer.current_epoch}; best dev loss: {trainer.checkpoint_callback.best_model_score:.4f}")
    print(f"open-loop test MSE (neural ODE): {mean_squared_error(result['model'], result['true']):.6f}")
    print(f"open-loop test MSE (constant-level baseline): "
          f"{mean_squared_error(result['baseline'], result['true']):.6f}")
    print(f"figure (solid: true levels, dashed: neural ODE): {figure}")


if __name__ == "__main__":
    main()
