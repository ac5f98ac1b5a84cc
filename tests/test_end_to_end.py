"""End-to-end learning-to-optimize runs with the symbolic API and the classic `Trainer`.

Each test trains a solution map for a parametric optimization problem on CPU and compares it,
on 50 held-out parameter samples, with SciPy's SLSQP solutions of the same problems: the mean
objective of the network's solutions must be within 5% of SLSQP's and the mean constraint
violation, computed here with numpy, below 1e-2.
"""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainer import Trainer

pytestmark = pytest.mark.slow

N_TEST = 50
ROSENBROCK_EPOCHS, ROSENBROCK_LR = 200, 2e-3
QP_EPOCHS, QP_LR = 60, 3e-3


def uniform(generator, n, low, high):
    return low + (high - low) * torch.rand(n, 1, generator=generator)


def loaders(sample, n_train, n_dev, batch_size):
    """Train/dev DataLoaders over parameter samples drawn by ``sample(generator, n)``."""
    generator = torch.Generator().manual_seed(0)
    train = DictDataset(sample(generator, n_train), name="train")
    dev = DictDataset(sample(generator, n_dev), name="dev")
    return (DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=train.collate_fn,
                       generator=torch.Generator().manual_seed(1)),
            DataLoader(dev, batch_size=n_dev, collate_fn=dev.collate_fn))


def held_out(sample):
    """Parameter samples never seen in training, as numpy arrays and as a 'test' batch."""
    params = sample(torch.Generator().manual_seed(123), N_TEST)
    return {k: v.numpy()[:, 0].astype(np.float64) for k, v in params.items()}, {**params, "name": "test"}


def slsqp(objective, constraints, starts):
    """Best feasible SLSQP solution over several starting points (the problems are nonconvex)."""
    from scipy.optimize import minimize

    best = None
    for start in starts:
        result = minimize(objective, np.asarray(start, dtype=float), method="SLSQP",
                          constraints=[{"type": "ineq", "fun": c} for c in constraints],
                          options={"ftol": 1e-10, "maxiter": 500})
        feasible = min(c(result.x) for c in constraints) > -1e-6
        if feasible and (best is None or result.fun < best.fun):
            best = result
    return best.x


def named(constraints):
    """Give every constraint a unique name, as the computational graph requires."""
    for index, constraint in enumerate(constraints, start=1):
        constraint.name = f"c{index}"
    return constraints


def solution_map(insize, hsizes):
    from neuromancer import slim

    return blocks.MLP(insize=insize, outsize=2, bias=True, linear_map=slim.maps["linear"],
                      nonlin=torch.nn.ReLU, hsizes=hsizes)


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks train fastest, and most reproducibly on shared cores, with one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_and_solve(problem, train, dev, test_batch, epochs, lr):
    """Train with Adam and a cosine learning-rate decay; return the solutions of the test batch."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(problem.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    trainer = Trainer(problem, train, dev, optimizer=optimizer, lr_scheduler=scheduler, epochs=epochs,
                      patience=None, epoch_verbose=epochs)
    trainer.train()
    with torch.no_grad():
        return problem(test_batch)["test_x"].double().numpy()


def train_against_slsqp(objective, constraints, input_keys, hsizes, sample, reference, epochs, lr, n_train,
                        batch_size):
    """Train a solution map from the parameters ``input_keys`` to ``x`` and solve the held-out samples.

    ``sample(generator, n)`` draws the parameters (one column each) and ``reference(params)`` solves
    them with SLSQP. Returns (held-out parameters as numpy, network solutions, SLSQP solutions).
    """
    node = Node(solution_map(len(input_keys), hsizes), input_keys, ["x"], name="solution_map")
    problem = Problem([node], PenaltyLoss([objective], constraints))
    train, dev = loaders(sample, n_train, 500, batch_size)
    params, test_batch = held_out(sample)
    solution = train_and_solve(problem, train, dev, test_batch, epochs=epochs, lr=lr)
    return params, solution, reference(params)


def rosenbrock_samples(generator, n):
    return {"a": uniform(generator, n, 0.2, 1.2), "p": uniform(generator, n, 0.5, 2.0)}


def rosenbrock_objective(x1, x2, a):
    return (1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2


def rosenbrock_violations(x1, x2, p):
    radius2 = x1 ** 2 + x2 ** 2
    return (np.maximum(0, x2 - x1) + np.maximum(0, (p / 2) ** 2 - radius2)
            + np.maximum(0, radius2 - p ** 2))


def rosenbrock_reference(params):
    return np.array([slsqp(
        lambda z, a=a_i: rosenbrock_objective(z[0], z[1], a),
        [lambda z: z[0] - z[1],
         lambda z, p=p_i: z[0] ** 2 + z[1] ** 2 - (p / 2) ** 2,
         lambda z, p=p_i: p ** 2 - z[0] ** 2 - z[1] ** 2],
        starts=[(p_i * 0.75, 0.0), (p_i * 0.6, p_i * 0.5), (p_i * 0.5, -p_i * 0.6)])
        for a_i, p_i in zip(params["a"], params["p"], strict=True)])


def run_rosenbrock(epochs, lr, weight, n_train=3000, batch_size=64):
    """Train the Rosenbrock solution map; return (network objective, SLSQP objective, violation)."""
    torch.manual_seed(0)
    a, p, x = variable("a"), variable("p"), variable("x")
    x1, x2 = x[:, [0]], x[:, [1]]
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(weight=1.0, name="obj")
    constraints = named([weight * (x1 >= x2), weight * ((p / 2) ** 2 <= x1 ** 2 + x2 ** 2),
                         weight * (x1 ** 2 + x2 ** 2 <= p ** 2)])
    params, solution, reference = train_against_slsqp(
        objective, constraints, ["a", "p"], [80] * 4, rosenbrock_samples, rosenbrock_reference,
        epochs=epochs, lr=lr, n_train=n_train, batch_size=batch_size)
    return (rosenbrock_objective(solution[:, 0], solution[:, 1], params["a"]).mean(),
            rosenbrock_objective(reference[:, 0], reference[:, 1], params["a"]).mean(),
            rosenbrock_violations(solution[:, 0], solution[:, 1], params["p"]).mean())


def test_parametric_rosenbrock_matches_slsqp():
    f_net, f_ref, violation = run_rosenbrock(epochs=ROSENBROCK_EPOCHS, lr=ROSENBROCK_LR, weight=100.0)
    assert abs(f_net - f_ref) <= 0.05 * f_ref, f"network objective {f_net:.5f}, SLSQP {f_ref:.5f}"
    assert violation < 1e-2, f"mean constraint violation {violation:.2e}"


def qp_samples(generator, n):
    return {"p1": uniform(generator, n, 1.0, 11.0), "p2": uniform(generator, n, 1.0, 11.0)}


def qp_violations(x1, x2, p1, p2):
    return (np.maximum(0, -x1 - x2 + p1) + np.maximum(0, x1 + x2 - p1 - 5)
            + np.maximum(0, x1 - x2 + p2 - 5) + np.maximum(0, -x1 + x2 - p2 - 5))


def qp_reference(params):
    return np.array([slsqp(
        lambda z: z[0] ** 2 + z[1] ** 2,
        [lambda z, p=q1: z[0] + z[1] - p,
         lambda z, p=q1: p + 5 - z[0] - z[1],
         lambda z, q=q2: 5 - q - z[0] + z[1],
         lambda z, q=q2: q + 5 + z[0] - z[1]],
        starts=[(q1, q1)])
        for q1, q2 in zip(params["p1"], params["p2"], strict=True)])


def run_qp(epochs, lr, weight, n_train=3000, batch_size=64):
    """Train the QP solution map; return (network objective, SLSQP objective, violation)."""
    torch.manual_seed(0)
    p1, p2, x = variable("p1"), variable("p2"), variable("x")
    x1, x2 = x[:, [0]], x[:, [1]]
    objective = (x1 ** 2 + x2 ** 2).minimize(weight=1.0, name="obj")
    constraints = named([weight * (-x1 - x2 + p1 <= 0), weight * (x1 + x2 - p1 - 5 <= 0),
                         weight * (x1 - x2 + p2 - 5 <= 0), weight * (-x1 + x2 - p2 - 5 <= 0)])
    params, solution, reference = train_against_slsqp(
        objective, constraints, ["p1", "p2"], [60] * 2, qp_samples, qp_reference,
        epochs=epochs, lr=lr, n_train=n_train, batch_size=batch_size)
    return ((solution ** 2).sum(axis=1).mean(), (reference ** 2).sum(axis=1).mean(),
            qp_violations(solution[:, 0], solution[:, 1], params["p1"], params["p2"]).mean())


def test_parametric_qp_matches_slsqp():
    f_net, f_ref, violation = run_qp(epochs=QP_EPOCHS, lr=QP_LR, weight=100.0)
    assert abs(f_net - f_ref) <= 0.05 * f_ref, f"network objective {f_net:.5f}, SLSQP {f_ref:.5f}"
    assert violation < 1e-2, f"mean constraint violation {violation:.2e}"
