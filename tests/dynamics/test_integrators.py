"""Tests of neuromancer.dynamics.integrators: convergence orders, DiffEqIntegrator, argument passing, registries."""
import math
import subprocess
import sys

import pytest
import torch

from neuromancer.dynamics import integrators
from neuromancer.dynamics.integrators import (
    RK2,
    RK4,
    DiffEqIntegrator,
    Euler,
    Euler_Trap,
    Integrator,
    LeapFrog,
    Luther,
    MultiStep_PredictorCorrector,
    RK4_Trap,
    Runge_Kutta_Fehlberg,
    Yoshida4,
    make_norm,
    rms_norm,
)


class Decay(torch.nn.Module):
    """dx/dt = -x (+ u when given), with a regularization term."""

    in_features, out_features = 1, 1

    def forward(self, x, *args):
        return -x + sum(args) if args else -x

    def reg_error(self):
        return torch.tensor(0.25)


class Spring(torch.nn.Module):
    """Acceleration of a unit harmonic oscillator, x'' = -x."""

    in_features, out_features = 1, 1

    def forward(self, x):
        return -x


def _global_error(integrator_class, h, horizon=1.0):
    step = integrator_class(Decay(), h=h)
    x = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(round(horizon / h)):
        x = step(x)
    return abs(x.item() - math.exp(-horizon))


def _order(error_at):
    """Observed order of accuracy from the errors at step h and h/2."""
    return math.log2(error_at(1) / error_at(2))


@pytest.mark.parametrize("integrator_class, order, h", [
    (Euler, 1, 0.1), (RK2, 2, 0.1), (Euler_Trap, 2, 0.1), (RK4_Trap, 2, 0.1), (RK4, 4, 0.1),
    (Runge_Kutta_Fehlberg, 5, 0.25), (Luther, 6, 0.125)])
def test_one_step_methods_reach_their_order(integrator_class, order, h):
    observed = _order(lambda k: _global_error(integrator_class, h / k))
    assert observed == pytest.approx(order, abs=0.2)


def test_multistep_predictor_corrector_is_fifth_order():
    def error(k, horizon=2.0):
        h = 0.1 / k
        step = MultiStep_PredictorCorrector(Decay(), h=h)
        window = torch.exp(-h * torch.arange(4, dtype=torch.float64)).reshape(1, 4, 1)  # exact start values
        for _ in range(round(horizon / h) - 3):
            window = torch.cat([window[:, 1:], step(window).unsqueeze(1)], dim=1)
        return abs(window[0, -1, 0].item() - math.exp(-horizon))
    assert _order(error) == pytest.approx(5, abs=0.3)


@pytest.mark.parametrize("integrator_class, order", [(LeapFrog, 2), (Yoshida4, 4)])
def test_symplectic_methods_reach_their_order_on_the_harmonic_oscillator(integrator_class, order):
    def error(k, horizon=2.0):
        h = 0.1 / k
        step = integrator_class(Spring(), h=h)
        state = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # x = cos t, x' = -sin t
        for _ in range(round(horizon / h)):
            state = step(state)
        exact = torch.tensor([[math.cos(horizon), -math.sin(horizon)]], dtype=torch.float64)
        return (state - exact).abs().max().item()
    assert _order(error) == pytest.approx(order, abs=0.2)


def test_symplectic_methods_keep_the_energy_bounded():
    state = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    step = LeapFrog(Spring(), h=0.1)
    energies = []
    for _ in range(2000):
        state = step(state)
        energies.append(0.5 * (state ** 2).sum().item())
    assert max(energies) - min(energies) < 0.01


def test_fehlberg_records_a_local_error_estimate_of_order_five():
    step = Runge_Kutta_Fehlberg(Decay(), h=0.2, max_errors=3)
    x = torch.ones(2, 1, dtype=torch.float64, requires_grad=True)
    for _ in range(5):
        step(x)
    assert len(step.local_error) == 3 and not step.local_error[-1].requires_grad
    coarse = Runge_Kutta_Fehlberg(Decay(), h=0.2)
    fine = Runge_Kutta_Fehlberg(Decay(), h=0.1)
    coarse(x), fine(x)
    ratio = coarse.local_error[-1].abs().max() / fine.local_error[-1].abs().max()
    assert 2 ** 4.5 < ratio.item() < 2 ** 5.5


def test_multistep_and_second_order_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\[batch, 4, nx\]"):
        MultiStep_PredictorCorrector(Decay())(torch.ones(2, 3, 1))
    with pytest.raises(ValueError, match="even number of columns"):
        LeapFrog(Spring())(torch.ones(2, 3))
    assert Yoshida4(Spring(), h=0.1)(torch.ones(5, 2)).shape == (5, 2)


def test_extra_arguments_are_held_constant_over_the_step():
    u = torch.full((3, 1), 2.0, dtype=torch.float64)
    x = torch.zeros(3, 1, dtype=torch.float64)
    result = RK4(Decay(), h=0.1)(x, u)  # dx/dt = u - x, exact x(h) = u (1 - exp(-h))
    expected = 2.0 * (1 - math.exp(-0.1)) * torch.ones(3, 1, dtype=torch.float64)
    torch.testing.assert_close(result, expected, atol=1e-6, rtol=0)


def test_rk2_is_the_explicit_midpoint_rule():
    x = torch.tensor([[1.0]], dtype=torch.float64)
    # midpoint on dx/dt = x^2: x + h (x + h/2 x^2)^2
    result = RK2(lambda s: s ** 2, h=0.1)(x)
    assert result.item() == pytest.approx(1 + 0.1 * 1.05 ** 2)


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


def test_registries_and_validation():
    assert set(integrators.integrators) == {"Euler", "Euler_Trap", "RK2", "RK4", "RK4_Trap", "Luther",
                                            "Runge_Kutta_Fehlberg", "DiffEqIntegrator"}
    assert integrators.integrators_multistep == {"MultiStep_PredictorCorrector": MultiStep_PredictorCorrector}
    assert integrators.integrators_second_order == {"LeapFrog": LeapFrog, "Yoshida4": Yoshida4}
    assert issubclass(RK4, Integrator) and RK4(Decay()).h == 1.0 and DiffEqIntegrator(Decay()).h == 0.001
    with pytest.raises(ValueError, match="h=0"):
        Euler(Decay(), h=0)
    with pytest.raises(TypeError, match="block must be"):
        Euler(3.0)
    with pytest.raises(ValueError, match="not a torchdiffeq solver"):
        DiffEqIntegrator(Decay(), method="leapfrog")


class Pendulum(torch.nn.Module):
    """A damped pendulum driven by u, with learnable damping and stiffness."""

    in_features, out_features = 3, 2

    def __init__(self):
        super().__init__()
        self.damping = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        self.stiffness = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x, u):
        return torch.cat([x[:, [1]], -self.stiffness * torch.sin(x[:, [0]]) - self.damping * x[:, [1]] + u], dim=-1)


def _pendulum_inputs():
    x = torch.tensor([[0.5, 0.0], [-1.0, 0.4]], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([[0.1], [-0.2]], dtype=torch.float64, requires_grad=True)
    return x, u


def test_diffeq_fixed_grid_methods_equal_the_matching_fixed_step_integrators():
    x, u = _pendulum_inputs()
    block = Pendulum()
    for method, reference in (("euler", Euler), ("rk4", RK4)):
        torch.testing.assert_close(DiffEqIntegrator(block, h=0.1, method=method, adjoint=False)(x, u),
                                   reference(block, h=0.1)(x, u))


def test_adaptive_diffeq_matches_fine_rk4():
    x, u = _pendulum_inputs()
    block = Pendulum()
    adaptive = DiffEqIntegrator(block, h=0.5, method="dopri5", adjoint=False)(x, u)
    state = x
    for _ in range(100):
        state = RK4(block, h=0.005)(state, u)
    torch.testing.assert_close(adaptive, state, atol=1e-7, rtol=0)


def test_adjoint_gradients_match_direct_gradients():
    block = Pendulum()
    grads = []
    for adjoint in (False, True):
        x, u = _pendulum_inputs()
        step = DiffEqIntegrator(block, h=0.5, method="dopri5", adjoint=adjoint, rtol=1e-10, atol=1e-12)
        (step(x, u) ** 2).sum().backward()
        grads.append([x.grad.clone(), u.grad.clone(), block.damping.grad.clone(), block.stiffness.grad.clone()])
        block.zero_grad()
    for direct, adjoint in zip(*grads, strict=True):
        torch.testing.assert_close(adjoint, direct, atol=1e-6, rtol=1e-6)


def test_norms():
    assert rms_norm(torch.tensor([3.0, 4.0])).item() == pytest.approx(math.sqrt(12.5))
    state = torch.zeros(2)
    norm = make_norm(state)
    flat = torch.tensor([100.0, 1.0, 1.0, 0.0, 2.0, 50.0])  # t, y (2), adj_y (2), a parameter gradient
    assert norm(flat).item() == pytest.approx(math.sqrt(2.0))
    assert norm((torch.tensor(100.0), torch.ones(2), torch.tensor([0.0, 2.0]), torch.tensor([50.0]))).item() \
        == pytest.approx(math.sqrt(2.0))


@pytest.mark.slow  # a fresh interpreter imports torch
def test_torchdiffeq_and_the_tutorial_modules_load_only_when_used():
    code = ("import sys, neuromancer, neuromancer.dynamics, neuromancer.system; "
            "lazy = ['torchdiffeq', 'neuromancer.system_preview', 'neuromancer.arg', 'neuromancer.modules.lopo']; "
            "print([m for m in lazy if m in sys.modules]); "
            "from neuromancer.system import SystemPreview; neuromancer.arg; "
            "print(sorted(m for m in lazy[1:3] if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "['neuromancer.arg', 'neuromancer.system_preview']"]
