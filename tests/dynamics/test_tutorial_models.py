"""The central models of upstream's three tutorial series, trained briefly with `Trainer` and with `LitTrainer`.

- system identification: a neural ODE (MLP right-hand side under RK4) fitted to psl ``VanDerPol``
  trajectories by multiple shooting;
- SINDy: a polynomial library fitted to one-step transitions of a damped oscillator, recovering its
  coefficients;
- differentiable predictive control: a policy that sees a preview of the reference through
  `SystemPreview`, trained in closed loop with the `VanDerPolControl` ODE to track it.

Each test checks that training reduced the dev loss (and for SINDy that the coefficients are found).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.dynamics import ode
from neuromancer.dynamics.integrators import RK4
from neuromancer.dynamics.library import PolynomialLibrary
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.problem import Problem
from neuromancer.psl import systems
from neuromancer.system import Node, System, SystemPreview
from neuromancer.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parents[1] / "trainers"))
from lit_helpers import QUIET  # noqa: E402

TRAINERS = ["Trainer", "LitTrainer"]
pytestmark = pytest.mark.slow  # each trains a model for a few seconds


@pytest.fixture(autouse=True)
def _quiet_single_thread(tmp_path, monkeypatch):
    """Run in a scratch directory (Lightning writes logs) with one thread (tiny models train faster)."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fit(problem, train, dev, trainer, epochs, lr, batch_size):
    """Train ``problem`` on the dicts of tensors ``train``/``dev`` with the named trainer and Adam."""
    torch.manual_seed(0)
    train_set, dev_set = DictDataset(train, name="train"), DictDataset(dev, name="dev")
    optimizer = torch.optim.Adam(problem.parameters(), lr=lr)
    if trainer == "Trainer":
        loaders = [torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=shuffle,
                                               collate_fn=data.collate_fn)
                   for data, shuffle in ((train_set, True), (dev_set, False))]
        Trainer(problem, *loaders, optimizer=optimizer, epochs=epochs, patience=None,
                epoch_verbose=epochs).train()
    else:
        from neuromancer.trainer import LitTrainer

        LitTrainer(epochs=epochs, custom_optimizer=optimizer, save_weights=False, logger=False, **QUIET).fit(
            problem, lambda: (train_set, dev_set, None, batch_size))


def _dev_loss(problem, dev):
    with torch.no_grad():
        return problem({**dev, "name": "dev"})["dev_loss"].item()


def _windows(trajectory, nsteps):
    """Cut a [T, n] array into overlapping [nsteps + 1, n] windows, as a float32 tensor."""
    starts = range(0, len(trajectory) - nsteps, 2)
    return torch.tensor(np.stack([trajectory[s:s + nsteps + 1] for s in starts]), dtype=torch.float32)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_neural_ode_identifies_van_der_pol(trainer):
    plant = systems["VanDerPol"](seed=0)
    windows = {}
    for split, seed in (("train", 1), ("dev", 2)):
        x0 = np.random.default_rng(seed).uniform(-2, 2, plant.nx)
        trajectory = _windows(plant.simulate(nsim=200, x0=x0)["X"], nsteps=4)
        windows[split] = {"X": trajectory, "xhat": trajectory[:, :1]}  # the roll-out starts from the data
    torch.manual_seed(0)
    rhs = blocks.MLP(2, 2, bias=True, linear_map=torch.nn.Linear, nonlin=torch.nn.ELU, hsizes=[32, 32])
    model = System([Node(RK4(rhs, h=plant.ts), ["xhat"], ["xhat"], name="neural_ode")], nsteps=4)
    fit = 10.0 * (variable("xhat") == variable("X")) ^ 2
    problem = Problem([model], PenaltyLoss([fit], []))
    before = _dev_loss(problem, windows["dev"])
    _fit(problem, windows["train"], windows["dev"], trainer, epochs=4, lr=0.005, batch_size=16)
    assert _dev_loss(problem, windows["dev"]) < 0.5 * before


def _oscillator_transitions(seed, n=400, h=0.05):
    """One-step RK4 transitions of x0' = x1, x1' = -x0 - 0.2 x1 from random states."""
    generator = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, 2, generator=generator) - 1
    oscillator = RK4(lambda s: torch.stack([s[:, 1], -s[:, 0] - 0.2 * s[:, 1]], dim=-1), h=h)
    return {"x": x, "x_next": oscillator(x)}


@pytest.mark.parametrize("trainer", TRAINERS)
def test_sindy_recovers_a_damped_oscillator(trainer):
    train, dev = _oscillator_transitions(0), _oscillator_transitions(1)
    torch.manual_seed(0)
    sindy = ode.SINDy(PolynomialLibrary(2, max_degree=2))
    node = Node(RK4(sindy, h=0.05), ["x"], ["x_hat"], name="sindy")
    fit = 1e4 * (variable("x_hat") == variable("x_next")) ^ 2
    sparsity = 1e-3 * (variable(sindy.coef) == 0.0)  # the mean |coef|: an L1 penalty that prunes terms
    sparsity.name = "sparsity"
    problem = Problem([node], PenaltyLoss([fit], [sparsity]))
    before = _dev_loss(problem, dev)
    _fit(problem, train, dev, trainer, epochs=15, lr=0.04, batch_size=40)
    assert _dev_loss(problem, dev) < 0.01 * before
    true = torch.zeros(6, 2)  # library order 1, x0, x1, x0^2, x0*x1, x1^2
    true[2, 0], true[1, 1], true[2, 1] = 1.0, -1.0, -0.2
    assert (sindy.coef.detach() - true).abs().max() < 0.05


class PreviewPolicy(torch.nn.Module):
    """Control ``u = 3 tanh(MLP([x, r_t, ..., r_{t+preview}]))`` from the state and the reference window."""

    def __init__(self, nx, preview):
        super().__init__()
        self.net = blocks.MLP(nx + preview + 1, 1, bias=True, linear_map=torch.nn.Linear, nonlin=torch.nn.ReLU,
                              hsizes=[32, 32])

    def forward(self, x, r):
        return 3.0 * torch.tanh(self.net(torch.cat([x, r], dim=-1)))


@pytest.mark.parametrize("trainer", TRAINERS)
def test_dpc_policy_with_reference_preview_tracks_van_der_pol(trainer):
    nsteps, preview = 10, 2

    def references(seed, n):
        generator = torch.Generator().manual_seed(seed)
        levels = 2 * torch.rand(n, 1, 1, generator=generator) - 1
        return {"X": 0.5 * torch.randn(n, 1, 2, generator=generator),
                "R": levels.repeat(1, nsteps, 1)}

    torch.manual_seed(0)
    plant = ode.VanDerPolControl()
    plant.requires_grad_(False)
    policy_node = Node(PreviewPolicy(nx=2, preview=preview), ["X", "R"], ["U"], name="policy")
    model_node = Node(RK4(plant, h=0.1), ["X", "U"], ["X"], name="model")
    closed_loop = SystemPreview([policy_node, model_node], preview_keys_map={"R": ["policy"]},
                                preview_length={"R": preview}, pad_mode="replicate", nsteps=nsteps)
    x, r, u = variable("X"), variable("R"), variable("U")
    tracking = 5.0 * (x[:, 1:, [0]] == r) ^ 2
    effort = 0.01 * (u == 0.0) ^ 2
    problem = Problem([closed_loop], PenaltyLoss([tracking, effort], []))
    train, dev = references(0, 128), references(1, 64)
    before = _dev_loss(problem, dev)
    _fit(problem, train, dev, trainer, epochs=10, lr=0.01, batch_size=32)
    assert _dev_loss(problem, dev) < 0.5 * before
