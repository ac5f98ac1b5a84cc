"""Tests of neuromancer.dynamics.integrators: convergence orders, argument passing, registry."""
import math

import pytest
import torch

from neuromancer.dynamics import integrators
from neuromancer.dynamics.integrators import RK2, RK4, Euler, Integrator


class Decay(torch.nn.Module):
    """dx/dt = -x (+ u when given), with a regularization term."""

    in_features, out_features = 1, 1

    def forward(self, x, *args):
        return -x + sum(args) if args else -x

    def reg_error(self):
        return torch.tensor(0.25)


def _global_error(integrator_class, h, horizon=1.0):
    step = integrator_class(Decay(), h=h)
    x = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(round(horizon / h)):
        x = step(x)
    return abs(x.item() - math.exp(-horizon))


@pytest.mark.parametrize("integrator_class, order", [(Euler, 1), (RK2, 2), (RK4, 4)])
def test_global_error_order(integrator_class, order):
    ratio = _global_error(integrator_class, 0.1) / _global_error(integrator_class, 0.05)
    assert ratio == pytest.approx(2 ** order, rel=0.1)


def test_extra_arguments_are_held_constant_over_the_step():
    u = torch.full((3, 1), 2.0, dtype=torch.float64)
    x = torch.zeros(3, 1, dtype=torch.float64)
    result = RK4(Decay(), h=0.1)(x, u)  # dx/dt = u - x, exact x(h) = u (1 - exp(-h))
    torch.testing.assert_close(result, 2.0 * (1 - math.exp(-0.1)) * torch.ones(3, 1, dtype=torch.float64), atol=1e-6, rtol=0)


def test_gradients_flow_to_block_parameters():
    block = torch.nn.Linear(2, 2)
    RK4(block, h=0.1)(torch.ones(4, 2)).sum().backward()
    assert block.weight.grad is not None and block.weight.grad.abs().sum() > 0


def test_reg_error_delegates_to_block_or_is_zero():
    assert Euler(Decay()).reg_error().item() == 0.25
    assert RK2(torch.nn.Linear(1, 1)).reg_error().item() == 0.0


def test_interp_u_warns_and_is_ignored():
    with pytest.warns(FutureWarning, match="interp_u has no effect"):
        step = Euler(Decay(), interp_u=lambda t, u: u, h=0.5)
    assert step(torch.ones(1, 1)).item() == 0.5


def test_registry_and_validation():
    assert integrators.integrators == {"Euler": Euler, "RK2": RK2, "RK4": RK4}
    assert issubclass(RK4, Integrator) and RK4(Decay()).h == 1.0
    with pytest.raises(ValueError, match="h=0"):
        Euler(Decay(), h=0)
    with pytest.raises(TypeError, match="block must be"):
        Euler(3.0)
