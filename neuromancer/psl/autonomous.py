"""Autonomous emulators (no control input): oscillators, chaotic attractors, population and reaction models.

Each class states its equations in ``equations(t, x)``, written once for numpy arrays (used by
``simulate``) and torch tensors (used by the differentiable ``forward``), and its default
parameters, sampling time and initial state in ``params``; the defaults are those of NeuroMANCER 1.5.
"""
from __future__ import annotations

import math
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


class UniversalOscillator(ODE_Autonomous):
    """Damped harmonic oscillator driven by a unit cosine (the "universal oscillator" equation
    ``x'' + 2 mu x' + x = cos(omega t)``):

    ``dx1/dt = x2``, ``dx2/dt = -2 mu x2 - x1 + cos(omega t)``; ``mu = 2`` (overdamped), ``omega = 1``,
    ``ts = 0.1``, ``x0 = [1, 0]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [1.0, 0.0]}, {"ts": 0.1}, {"mu": 2.0, "omega": 1.0}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Driven damped oscillator right-hand side."""
        lib = math_library(x, t)
        x1, x2 = x[..., 0], x[..., 1]
        return stack_last([x2, -2.0 * self.mu * x2 - x1 + lib.cos(self.omega * t)])


class DoublePendulum(ODE_Autonomous):
    """Frictionless double pendulum of two point masses on massless rods.

    States ``[theta1, z1, theta2, z2]`` (angles from the downward vertical and their rates). With
    ``c = cos(theta1 - theta2)``, ``s = sin(theta1 - theta2)`` and ``den = m1 + m2 s**2``, the
    Lagrangian equations of motion are::

        dz1/dt = (m2 g sin(theta2) c - m2 s (L1 z1**2 c + L2 z2**2) - (m1 + m2) g sin(theta1)) / (L1 den)
        dz2/dt = ((m1 + m2) (L1 z1**2 s - g sin(theta2) + g sin(theta1) c) + m2 L2 z2**2 s c) / (L2 den)

    ``L1 = L2 = 1``, ``m1 = m2 = 1``, ``g = 9.81``, ``ts = 0.1``, ``x0 = [3 pi / 7, 0, 3 pi / 4, 0]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        parameters = {"L1": 1.0, "L2": 1.0, "m1": 1.0, "m2": 1.0, "g": 9.81}
        return {"x0": [3.0 * math.pi / 7.0, 0.0, 3.0 * math.pi / 4.0, 0.0]}, {"ts": 0.1}, parameters, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Double-pendulum right-hand side."""
        lib = math_library(x)
        theta1, z1, theta2, z2 = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
        c, s = lib.cos(theta1 - theta2), lib.sin(theta1 - theta2)
        den = self.m1 + self.m2 * s ** 2
        total = self.m1 + self.m2
        dz1 = (self.m2 * self.g * lib.sin(theta2) * c - self.m2 * s * (self.L1 * z1 ** 2 * c + self.L2 * z2 ** 2)
               - total * self.g * lib.sin(theta1)) / (self.L1 * den)
        dz2 = (total * (self.L1 * z1 ** 2 * s - self.g * lib.sin(theta2) + self.g * lib.sin(theta1) * c)
               + self.m2 * self.L2 * z2 ** 2 * s * c) / (self.L2 * den)
        return stack_last([z1, dz1, z2, dz2])


def thomas_rhs(x: Array, b: Any) -> Array:
    """Right-hand side of Thomas' attractor for dissipation ``b`` (a number or an array broadcast over ``x[..., 0]``)."""
    lib = math_library(x, b)
    px, py, pz = x[..., 0], x[..., 1], x[..., 2]
    return stack_last([lib.sin(py) - b * px, lib.sin(pz) - b * py, lib.sin(px) - b * pz])


class ThomasAttractor(ODE_Autonomous):
    """Thomas' cyclically symmetric attractor:

    ``dx/dt = sin(y) - b x``, ``dy/dt = sin(z) - b y``, ``dz/dt = sin(x) - b z``; the dissipation
    ``b = 0.208186`` is close to the onset of chaos; ``ts = 0.1``, ``x0 = [1, -1, 1]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [1.0, -1.0, 1.0]}, {"ts": 0.1}, {"b": 0.208186}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Thomas attractor right-hand side."""
        return thomas_rhs(x, self.b)


class RosslerAttractor(ODE_Autonomous):
    """Rossler attractor: ``dx/dt = -y - z``, ``dy/dt = x + a y``, ``dz/dt = b + z (x - c)``.

    ``a = 0.2``, ``b = 0.2``, ``c = 5.7`` (the chaotic regime), ``ts = 0.1``, ``x0 = [0, 0, 0]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.0, 0.0, 0.0]}, {"ts": 0.1}, {"a": 0.2, "b": 0.2, "c": 5.7}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Rossler right-hand side."""
        px, py, pz = x[..., 0], x[..., 1], x[..., 2]
        return stack_last([-py - pz, px + self.a * py, self.b + pz * (px - self.c)])


class LotkaVolterra(ODE_Autonomous):
    """Lotka-Volterra predator-prey equations: prey ``x``, predators ``y``::

        dx/dt = a x - b x y
        dy/dt = c x y - d y

    ``a = 1.1``, ``b = 0.4``, ``c = 0.1``, ``d = 0.4``, ``ts = 0.1``, ``x0 = [5, 100]``; the orbits
    circle the equilibrium ``(d / c, a / b)``. (NeuroMANCER 1.5 evaluates ``c ** x`` instead of
    ``c * x`` in the predator equation; this class follows the published equations.)

    The default orbit is extreme: prey fall to about 1e-38 and predators to about 1e-14 before
    recovering, so the solver controls only the relative error (``atol`` is negligible).
    """

    atol: float = 1e-200

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [5.0, 100.0]}, {"ts": 0.1}, {"a": 1.1, "b": 0.4, "c": 0.1, "d": 0.4}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Predator-prey right-hand side."""
        prey, predators = x[..., 0], x[..., 1]
        return stack_last([self.a * prey - self.b * prey * predators,
                           self.c * prey * predators - self.d * predators])


class Brusselator1D(ODE_Autonomous):
    """Brusselator, a model autocatalytic reaction: ``dx/dt = a + x**2 y - (b + 1) x``, ``dy/dt = b x - x**2 y``.

    ``a = 1``, ``b = 3`` (``b > 1 + a**2``, so the fixed point ``(a, b / a)`` is unstable and the
    system settles on a limit cycle), ``ts = 0.1``, ``x0 = [1, 1]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [1.0, 1.0]}, {"ts": 0.1}, {"a": 1.0, "b": 3.0}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Brusselator right-hand side."""
        px, py = x[..., 0], x[..., 1]
        return stack_last([self.a + px ** 2 * py - (self.b + 1.0) * px, self.b * px - px ** 2 * py])


class ChuaCircuit(ODE_Autonomous):
    """Chua's circuit in dimensionless form, with the piecewise-linear Chua diode ``f``::

        f(x)  = m1 x + (m0 - m1) (|x + 1| - |x - 1|) / 2
        dx/dt = a (y - x - f(x)),   dy/dt = x - y + z,   dz/dt = -b y

    ``a = 15.6``, ``b = 28``, ``m0 = -1.143``, ``m1 = -0.714`` (the double-scroll attractor),
    ``ts = 0.1``, ``x0 = [0.7, 0, 0]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.7, 0.0, 0.0]}, {"ts": 0.1}, {"a": 15.6, "b": 28.0, "m0": -1.143, "m1": -0.714}, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Chua circuit right-hand side."""
        lib = math_library(x)
        px, py, pz = x[..., 0], x[..., 1], x[..., 2]
        diode = self.m1 * px + 0.5 * (self.m0 - self.m1) * (lib.abs(px + 1.0) - lib.abs(px - 1.0))
        return stack_last([self.a * (py - px - diode), px - py + pz, -self.b * py])


class Autoignition(ODE_Autonomous):
    """Pulsating autoignition in an open-ended combustor (Koch, Kurosaka, Knowlen and Kutz, Phys. Rev. E 2021).

    States: specific energy ``u`` and combustion progress ``lam``. Combustion proceeds at the
    Arrhenius-like rate ``w = k (1 - lam) exp((u - uc) / alpha)``; fresh reactants regenerate at
    ``beta = s up / (1 + exp(r (u - up)))``, and ``e u**2`` models energy losses::

        du/dt   = q w - e u**2
        dlam/dt = w - beta lam

    ``alpha = 0.3``, ``uc = 1.1``, ``s = 1``, ``k = 1``, ``r = 5``, ``q = 6.5``, ``up = 0.55``, ``e = 1``,
    ``ts = 0.1``, ``x0 = [1, 0.7]``.
    """

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        parameters = {"alpha": 0.3, "uc": 1.1, "s": 1.0, "k": 1.0, "r": 5.0, "q": 6.5, "up": 0.55, "e": 1.0}
        return {"x0": [1.0, 0.7]}, {"ts": 0.1}, parameters, {}

    def equations(self, t: Any, x: Array) -> Array:
        """Autoignition right-hand side."""
        lib = math_library(x)
        energy, progress = x[..., 0], x[..., 1]
        reaction = self.k * (1.0 - progress) * lib.exp((energy - self.uc) / self.alpha)
        regeneration = self.s * self.up * progress / (1.0 + lib.exp(self.r * (energy - self.up)))
        return stack_last([self.q * reaction - self.e * energy ** 2, reaction - regeneration])


systems: dict[str, type] = {
    "Autoignition": Autoignition,
    "Brusselator1D": Brusselator1D,
    "ChuaCircuit": ChuaCircuit,
    "DoublePendulum": DoublePendulum,
    "Duffing": Duffing,
    "LorenzSystem": LorenzSystem,
    "LotkaVolterra": LotkaVolterra,
    "Pendulum": Pendulum,
    "RosslerAttractor": RosslerAttractor,
    "ThomasAttractor": ThomasAttractor,
    "UniversalOscillator": UniversalOscillator,
    "VanDerPol": VanDerPol,
}
