"""A small parametric Rosenbrock problem and its data, shared by the population and vectorised-sweep tests.

The test modules import this file by name from their own folder (which they put on ``sys.path``).
"""
import torch

from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.problem import Problem
from neuromancer.system import Node


def rosenbrock(seed=0, width=16):
    """``x = MLP(a, p)`` minimising ``(1 - x1)^2 + a (x2 - x1^2)^2`` under two penalised constraints."""
    torch.manual_seed(seed)
    net = Node(blocks.MLP(2, 2, hsizes=[width, width], nonlin=torch.nn.ReLU), ["a", "p"], ["x"], name="map")
    x, a, p = variable("x"), variable("a"), variable("p")
    x1, x2 = x[:, [0]], x[:, [1]]
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(name="obj")
    return Problem([net], PenaltyLoss([objective], [10.0 * (x1 >= x2), 10.0 * (x1 ** 2 + x2 ** 2 <= p ** 2)]))


def rosenbrock_data(nsim=96, batch_size=16):
    """Train and dev splits of ``nsim`` samples of ``a`` in [0, 1] and ``p`` in [1, 2], the same at every call."""
    generator = torch.Generator().manual_seed(5)

    def split(name):
        return DictDataset({"a": torch.rand(nsim, 1, generator=generator),
                            "p": 1 + torch.rand(nsim, 1, generator=generator)}, name=name)

    return split("train"), split("dev"), None, batch_size
