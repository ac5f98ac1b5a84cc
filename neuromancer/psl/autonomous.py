"""Autonomous emulators (no control input): Van der Pol, damped pendulum, Lorenz and forced Duffing.

Each class states its equations in ``equations(t, x)``, written once for numpy arrays (used by
``simulate``) and torch tensors (used by the differentiable ``forward``), and its default
parameters, sampling time and initial state in ``params``; the defaults are those of NeuroMANCER 1.5.
"""
from __future__ import annotations

from typing import Any

from neuromancer.psl.base import Array, ODE_Autonomous, math_library, stack_last


class VanDerPol(ODE_Autonomous):
    """Van der Pol oscillator in Lienard form (a stable limit cycle):

    ``dx1/dt = mu * (x1 - x1**3 / 3 - x2)``, ``dx2/dt = x1 / mu``; ``mu = 1``, ``ts = 0.1``, ``x0 = [1, 2]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [1.0, 2.0]}, {"ts": 0.1}, {"mu": 1.0}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Lienard-form Van der Pol right-hand side."""
        x1, x2 = x[..., 0], x[..., 1]
        return stack_last([self.mu * (x1 - x1 ** 3 / 3.0 - x2), x1 / self.mu])


class Pendulum(ODE_Autonomous):
    """Pendulum with viscous friction: ``dtheta/dt = omega``, ``domega/dt = -g sin(theta) - f omega``.

    ``g = 9.81``, ``f = 3`` (set ``f = 0`` for the conservative pendulum), ``ts = 0.1``, ``x0 = [0, 1]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.0, 1.0]}, {"ts": 0.1}, {"g": 9.81, "f": 3.0}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Damped pendulum right-hand side."""
        lib = math_library(x)
        theta, omega = x[..., 0], x[..., 1]
        return stack_last([omega, -self.g * lib.sin(theta) - self.f * omega])


class LorenzSystem(ODE_Autonomous):
    """Lorenz system (chaotic for the classic parameters ``sigma = 10``, ``beta = 8/3``, ``rho = 28``):

    ``dx/dt = sigma (y - x)``, ``dy/dt = x (rho - z) - y``, ``dz/dt = x y - beta z``; ``ts = 0.1``, ``x0 = [1, 1, 1]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [1.0, 1.0, 1.0]}, {"ts": 0.1}, {"sigma": 10.0, "beta": 8.0 / 3.0, "rho": 28.0}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Lorenz right-hand side."""
        px, py, pz = x[..., 0], x[..., 1], x[..., 2]
        return stack_last([self.sigma * (py - px), px * (self.rho - pz) - py, px * py - self.beta * pz])


class Duffing(ODE_Autonomous):
    """Periodically forced Duffing oscillator:

    ``dx1/dt = x2``, ``dx2/dt = -delta x2 - alpha x1 - beta x1**3 + gamma cos(omega t)``;
    ``alpha = 1``, ``beta = 5``, ``delta = 0.02``, ``gamma = 8``, ``omega = 0.5``, ``ts = 0.01``, ``x0 = [1, 0]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        parameters = {"alpha": 1.0, "beta": 5.0, "delta": 0.02, "gamma": 8.0, "omega": 0.5}
        return {"x0": [1.0, 0.0]}, {"ts": 0.01}, parameters, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Forced Duffing right-hand side."""
        lib = math_library(x, t)
        x1, x2 = x[..., 0], x[..., 1]
        forcing = self.gamma * lib.cos(self.omega * t)
        return stack_last([x2, -self.delta * x2 - self.alpha * x1 - self.beta * x1 ** 3 + forcing])
