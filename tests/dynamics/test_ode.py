"""Tests of neuromancer.dynamics.ode.ODESystem: sizes, input checks and use inside an integrator."""
import math

import pytest
import torch

from neuromancer.dynamics import RK4, ODESystem


class Tank(ODESystem):
    """dx/dt = -k x + u with a learnable k."""

    def __init__(self):
        super().__init__(insize=2, outsize=1)
        self.k = torch.nn.Parameter(torch.tensor(0.5))

    def ode_equations(self, x, u):
        return -self.k * x + u


def test_sizes_and_equations():
    tank = Tank()
    assert (tank.in_features, tank.out_features, tank.nx, tank.nu) == (2, 1, 1, 1)
    torch.testing.assert_close(tank(torch.ones(3, 1), torch.ones(3, 1)), torch.full((3, 1), 0.5))


def test_wrong_widths_raise():
    tank = Tank()
    with pytest.raises(ValueError, match="nx=1"):
        tank(torch.ones(3, 2), torch.ones(3, 1))
    with pytest.raises(ValueError, match="nu = insize - outsize = 1"):
        tank(torch.ones(3, 1))
    with pytest.raises(ValueError, match="outsize <= insize"):
        ODESystem.__init__(Tank.__new__(Tank), insize=1, outsize=2)


def test_integrated_ode_is_accurate_and_trainable():
    tank = Tank()
    step = RK4(tank, h=0.1)
    x = step(torch.ones(1, 1), torch.zeros(1, 1))
    assert x.item() == pytest.approx(math.exp(-0.05), abs=1e-7)
    x.sum().backward()
    assert tank.k.grad is not None and tank.k.grad.item() < 0
