"""Emulators with a control input: process models (CSTR, tanks), mechanical, electrical, biological and
epidemic systems, and forced chaotic attractors.

Each class states its equations in ``equations(t, x, u)`` (numpy or torch), its defaults in
``params`` (those of NeuroMANCER 1.5), and its default excitation in ``get_U``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from neuromancer.psl import signals
from neuromancer.psl.autonomous import thomas_rhs
from neuromancer.psl.base import Array, ODE_NonAutonomous, math_library, stack_last

Signal = str | Callable | None


class CSTR(ODE_NonAutonomous):
    """Continuous stirred-tank reactor with an exothermic first-order reaction A -> B.

    States: concentration ``Ca`` [mol/m^3] and temperature ``T`` [K]; input: coolant temperature ``Tc`` [K].
    With ``rA = k0 exp(-EoverR / T) Ca``::

        dCa/dt = q/V (Caf - Ca) - rA
        dT/dt  = q/V (Tf - T) + mdelH/(rho Cp) rA + UA/(V rho Cp) (Tc - T)

    The default state is the steady state ``(Ca_ss, T_ss)`` for ``Tc = u_ss = 300``; ``ts = 0.1``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        ca_ss, t_ss = 0.87725294608097, 324.475443431599
        parameters = {"q": 100.0, "V": 100.0, "rho": 1000.0, "Cp": 0.239, "mdelH": 5e4, "EoverR": 8750.0,
                      "k0": 7.2e10, "UA": 5e4, "u_ss": 300.0, "Tf": 350.0, "Caf": 1.0}
        return {"x0": [ca_ss, t_ss]}, {"ts": 0.1, "Ca_ss": ca_ss, "T_ss": t_ss}, parameters, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """CSTR mass and energy balances."""
        lib = math_library(x, u)
        ca, temp, coolant = x[..., 0], x[..., 1], u[..., 0]
        rate = self.k0 * lib.exp(-self.EoverR / temp) * ca
        dilution = self.q / self.V
        dca = dilution * (self.Caf - ca) - rate
        dtemp = (dilution * (self.Tf - temp) + self.mdelH / (self.rho * self.Cp) * rate
                 + self.UA / (self.V * self.rho * self.Cp) * (coolant - temp))
        return stack_last([dca, dtemp])

    def get_x0(self, rand: bool = False) -> np.ndarray:
        """The steady state ``[Ca_ss, T_ss]``, or with ``rand=True`` a draw within +-5 % of ``Ca_ss`` and +-5 K of ``T_ss``."""
        steady = np.array([self.Ca_ss, self.T_ss])
        if not rand:
            return steady.astype(np.float32)
        return self.rng.uniform(steady - [0.05 * self.Ca_ss, 5.0], steady + [0.05 * self.Ca_ss, 5.0]).astype(np.float32)

    def get_U(self, nsim: int, signal: str | Callable | None = None, **signal_kwargs: Any) -> np.ndarray:
        """Coolant temperature within ``u_ss +- 3`` K; by default steps held for 25 samples."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", max(1, nsim // 25))
        return super().get_U(nsim, umin=self.u_ss - 3.0, umax=self.u_ss + 3.0, signal=signal, **signal_kwargs)


class TwoTank(ODE_NonAutonomous):
    """Two cascaded tanks fed by one pump whose flow a valve splits between them.

    States: liquid levels ``h1, h2`` in ``[0, 1]``; inputs: pump ``p`` and valve ``v`` in ``[0, 1]``
    (values outside are clipped)::

        dh1/dt = c1 (1 - v) p - c2 sqrt(h1)
        dh2/dt = c1 v p + c2 sqrt(h1) - c2 sqrt(h2)

    A full tank (level >= 1) cannot rise further. ``c1 = 0.08``, ``c2 = 0.04``, ``ts = 1``, ``x0 = [0, 0]``.
    """

    nu = 2

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.0, 0.0]}, {"ts": 1.0}, {"c1": 0.08, "c2": 0.04}, {}

    @property
    def umin(self) -> np.ndarray:
        """Lower bounds of pump and valve."""
        return np.array([0.0, 0.0])

    @property
    def umax(self) -> np.ndarray:
        """Upper bounds of pump and valve used for the default excitation."""
        return np.array([0.5, 0.5])

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Two-tank mass balances with level and actuator saturation."""
        lib = math_library(x, u)
        h1, h2 = lib.clip(x[..., 0], 0.0, 1.0), lib.clip(x[..., 1], 0.0, 1.0)
        pump, valve = lib.clip(u[..., 0], 0.0, 1.0), lib.clip(u[..., 1], 0.0, 1.0)
        dh1 = self.c1 * (1.0 - valve) * pump - self.c2 * lib.sqrt(h1)
        dh2 = self.c1 * valve * pump + self.c2 * lib.sqrt(h1) - self.c2 * lib.sqrt(h2)
        dh1 = lib.where(x[..., 0] >= 1.0, lib.clip(dh1, None, 0.0), dh1)
        dh2 = lib.where(x[..., 1] >= 1.0, lib.clip(dh2, None, 0.0), dh2)
        return stack_last([dh1, dh2])

    def get_x0(self) -> np.ndarray:
        """Random levels uniformly in ``[0, 0.5]``."""
        return self.rng.uniform(0.0, 0.5, size=2).astype(np.float32)

    def get_U(self, nsim: int, signal: str | Callable | None = None, **signal_kwargs: Any) -> np.ndarray:
        """Pump and valve within ``[umin, umax]``; by default steps held for 100 samples."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", max(1, nsim // 100))
        return super().get_U(nsim, umin=self.umin, umax=self.umax, signal=signal, **signal_kwargs)


class VanDerPolControl(ODE_NonAutonomous):
    """Van der Pol oscillator with an additive force: ``dx1/dt = x2``, ``dx2/dt = mu (1 - x1**2) x2 - x1 + u``.

    ``mu = 1``, ``ts = 0.1``; the default initial state is drawn from ``U[-2, 2]^2`` with ``self.rng``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``; ``x0`` is drawn by ``get_x0``."""
        return {}, {"ts": 0.1}, {"mu": 1.0}, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Forced Van der Pol right-hand side."""
        x1, x2 = x[..., 0], x[..., 1]
        return stack_last([x2, self.mu * (1.0 - x1 ** 2) * x2 - x1 + u[..., 0]])

    def get_x0(self) -> np.ndarray:
        """Random initial state uniformly in ``[-2, 2]^2``."""
        return self.rng.uniform(-2.0, 2.0, size=2).astype(np.float32)

    def get_U(self, nsim: int, signal: str | Callable | None = None, **signal_kwargs: Any) -> np.ndarray:
        """Force within ``[-5, 5]``; by default steps held for 200 samples."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", max(1, nsim // 200))
        return super().get_U(nsim, umin=-5.0, umax=5.0, signal=signal, **signal_kwargs)


class DuffingControl(ODE_NonAutonomous):
    """Duffing oscillator whose periodic drive is phased by the input:

    ``dx1/dt = x2``, ``dx2/dt = -delta x2 - alpha x1 - beta x1**3 + gamma cos(omega u)``.

    As in NeuroMANCER 1.5 the input plays the role of time in the drive, so ``u = t`` recovers the
    forced :class:`~neuromancer.psl.autonomous.Duffing` oscillator. ``alpha = 1``, ``delta = 0.02``,
    ``beta = 5``, ``gamma = 8``, ``omega = 0.5``, ``ts = 0.1``, ``x0 = [1, 0]``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        parameters = {"alpha": 1.0, "delta": 0.02, "beta": 5.0, "gamma": 8.0, "omega": 0.5}
        return {"x0": [1.0, 0.0]}, {"ts": 0.1}, parameters, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Input-phased Duffing right-hand side."""
        lib = math_library(x, u)
        x1, x2 = x[..., 0], x[..., 1]
        drive = self.gamma * lib.cos(self.omega * u[..., 0])
        return stack_last([x2, -self.delta * x2 - self.alpha * x1 - self.beta * x1 ** 3 + drive])

    def get_U(self, nsim: int, signal: str | Callable | None = None, **signal_kwargs: Any) -> np.ndarray:
        """Drive phase within ``[0, 5]``; by default one sine period over the horizon."""
        if signal is None:
            signal = "sin"
            signal_kwargs.setdefault("periods", 1)
        return super().get_U(nsim, umin=0.0, umax=5.0, signal=signal, **signal_kwargs)


class LorenzControl(ODE_NonAutonomous):
    """Lorenz system forced through its first and third equations::

        dx/dt = sigma (y - x) + u1,   dy/dt = x (rho - z) - y,   dz/dt = x y - beta z - u2

    ``sigma = 10``, ``beta = 8/3``, ``rho = 28``, ``ts = 0.01``, ``x0 = [-8, 8, 27]``. The default
    input is the two-tone signal :meth:`u_fun` started at a random phase.
    """

    nu = 2

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [-8.0, 8.0, 27.0]}, {"ts": 0.01}, {"sigma": 10.0, "beta": 8.0 / 3.0, "rho": 28.0}, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Forced Lorenz right-hand side."""
        px, py, pz = x[..., 0], x[..., 1], x[..., 2]
        return stack_last([self.sigma * (py - px) + u[..., 0], px * (self.rho - pz) - py,
                           px * py - self.beta * pz - u[..., 1]])

    def u_fun(self, t: Array) -> Array:
        """The default forcing ``[sin(2 t), sin(8 t)]`` at times ``t``, stacked on a new last axis."""
        lib = math_library(t)
        return stack_last([lib.sin(2.0 * t), lib.sin(8.0 * t)])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """By default :meth:`u_fun` sampled every ``ts`` from a random start time in ``[0, pi]``;
        a named ``signal`` is drawn within ``[-1, 1]``."""
        if signal is not None:
            return super().get_U(nsim, umin=-1.0, umax=1.0, signal=signal, **signal_kwargs)
        start = self.rng.uniform(0.0, np.pi)
        return self.u_fun(start + self.ts * np.arange(nsim)).astype(np.float32)


class SEIR_population(ODE_NonAutonomous):
    """SEIR epidemic model with social distancing ``u`` in ``[0, 1]`` (0: none, 1: total isolation).

    States are population fractions: susceptible ``s``, exposed ``e``, infectious ``i``, recovered ``r``::

        ds/dt = -(1 - u) beta s i,   de/dt = (1 - u) beta s i - alpha e,   di/dt = alpha e - gamma i,   dr/dt = gamma i

    ``alpha = 1 / t_incubation`` (5.1 days), ``gamma = 1 / t_infective`` (3.3 days), ``beta = R0 gamma``
    with ``R0 = 2.4``; one exposed person in ``N = 10000`` at first; ``ts = 0.01``. As in NeuroMANCER
    1.5 the input has two columns and only the first acts on the dynamics.
    """

    nu = 2

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        population, t_incubation, t_infective, r0 = 10000, 5.1, 3.3, 2.4
        e0 = 1.0 / population
        parameters = {"e_0": e0, "i_0": 0.0, "r_0": 0.0, "s_0": 1.0 - e0, "t_incubation": t_incubation,
                      "t_infective": t_infective, "R0": r0, "alpha": 1.0 / t_incubation,
                      "gamma": 1.0 / t_infective, "beta": r0 / t_infective}
        return {"x0": [1.0 - e0, e0, 0.0, 0.0]}, {"ts": 0.01, "N": population}, parameters, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """SEIR right-hand side."""
        s, e, i = x[..., 0], x[..., 1], x[..., 2]
        infections = (1.0 - u[..., 0]) * self.beta * s * i
        return stack_last([-infections, infections - self.alpha * e, self.alpha * e - self.gamma * i, self.gamma * i])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """Distancing levels in ``[0, 1]``; by default steps held for 24 samples."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", math.ceil(nsim / 24))
        return super().get_U(nsim, umin=0.0, umax=1.0, signal=signal, **signal_kwargs)


class Tank(ODE_NonAutonomous):
    """Single tank filled through a valve: ``dh/dt = c valve / (rho A)``.

    State: level ``h`` [m]; inputs: valve coefficient ``c`` [kg/s per % open] and valve opening
    ``valve`` [%]. ``rho = 1000`` kg/m^3, ``A = 1`` m^2, ``ts = 0.1``, ``x0 = [0]``.
    """

    nu = 2

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.0]}, {"ts": 0.1}, {"rho": 1000.0, "A": 1.0}, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Tank mass balance."""
        return stack_last([u[..., 0] * u[..., 1] / (self.rho * self.A)])

    def get_x0(self) -> np.ndarray:
        """Random level uniformly in ``[0, 0.1]``."""
        return self.rng.uniform(0.0, 0.1, size=1).astype(np.float32)

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """By default a valve coefficient stepping in ``[0.1, 55]`` every 48 samples and a noisy
        sinusoidal opening in ``[0, 11]``; a named ``signal`` spans ``[0.1, 55] x [0, 11]``."""
        low, high = np.array([0.1, 0.0]), np.array([55.0, 11.0])
        if signal is not None:
            return super().get_U(nsim, umin=low, umax=high, signal=signal, **signal_kwargs)
        cycles = math.ceil(nsim / 48)
        coefficient = signals.step(nsim, 1, min=0.1, max=55.0, randsteps=cycles, rng=self.rng)
        opening = (signals.periodic(nsim, 1, min=0.0, max=10.0, periods=cycles, rng=self.rng)
                   + signals.noise(nsim, 1, rng=self.rng))
        return np.concatenate([coefficient, opening], axis=1).astype(np.float32)


class InvPendulum(ODE_NonAutonomous):
    """Inverted pendulum driven by a torque ``u``; ``theta`` is the angle from the upright position::

        dtheta/dt = omega,   domega/dt = (m g L sin(theta) - b omega + u) / (m L**2)

    ``g = 9.81``, ``L = 0.5`` m, ``m = 0.15`` kg, friction ``b = 0.1``, ``ts = 0.1``, ``x0 = [0.5, 0]``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.5, 0.0]}, {"ts": 0.1}, {"g": 9.81, "L": 0.5, "m": 0.15, "b": 0.1}, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Torque-driven inverted pendulum right-hand side."""
        lib = math_library(x, u)
        theta, omega = x[..., 0], x[..., 1]
        inertia = self.m * self.L ** 2
        return stack_last([omega, (self.m * self.g * self.L * lib.sin(theta) - self.b * omega + u[..., 0]) / inertia])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """By default white Gaussian torque with standard deviation 0.1; a named ``signal`` spans ``[-0.3, 0.3]``."""
        if signal is not None:
            return super().get_U(nsim, umin=-0.3, umax=0.3, signal=signal, **signal_kwargs)
        return self.rng.normal(0.0, 0.1, size=(nsim, 1)).astype(np.float32)


class HindmarshRose(ODE_NonAutonomous):
    """Hindmarsh-Rose model of a bursting neuron driven by the current ``I = u``::

        dx/dt = y - a x**3 + b x**2 - z + I,   dy/dt = c - d x**2 - y,   dz/dt = r (s (x - xR) - z)

    ``a = 1``, ``b = 2.6``, ``c = 1``, ``d = 5``, ``s = 4``, ``xR = -8/5``, ``r = 0.01``, ``ts = 0.1``,
    ``x0 = [-5, -10, 0]``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        parameters = {"a": 1.0, "b": 2.6, "c": 1.0, "d": 5.0, "s": 4.0, "xR": -8.0 / 5.0, "r": 0.01}
        return {"x0": [-5.0, -10.0, 0.0]}, {"ts": 0.1}, parameters, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Hindmarsh-Rose right-hand side."""
        px, py, pz = x[..., 0], x[..., 1], x[..., 2]
        dx = py - self.a * px ** 3 + self.b * px ** 2 - pz + u[..., 0]
        return stack_last([dx, self.c - self.d * px ** 2 - py, self.r * (self.s * (px - self.xR) - pz)])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """Current within ``[2.99, 3.1]``; by default steps held for about 48 samples."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", max(1, int(nsim / 48)))
        return super().get_U(nsim, umin=2.99, umax=3.1, signal=signal, **signal_kwargs)


class IverSimple(ODE_NonAutonomous):
    """Simplified dynamics of an unmanned underwater vehicle (after Stankiewicz et al.): pitch and
    yaw kinematics, surge/pitch/yaw dynamics with hydrodynamic and buoyancy terms, and first-order
    actuators. Roll, sway and currents are left out.

    States ``[theta, psi, uu, q, r, delta_u, delta_q, delta_r]`` (pitch, yaw, surge speed, pitch
    rate, yaw rate, thrust, elevator and rudder deflections); inputs ``[delta_uc, delta_qc, delta_rc]``
    (normalized commands)::

        dtheta/dt = q,   dpsi/dt = r / cos(theta)
        duu/dt = Xuu uu**2 + k delta_u
        dq/dt  = Muq uu q + Mq q - Bz sin(theta) + b uu**2 delta_q
        dr/dt  = Nur uu r + c uu**2 delta_r
        d delta_i/dt = K_delta_i (delta_i - delta_ic)   for i in u, q, r

    Coefficients are those of NeuroMANCER 1.5; ``ts = 0.01``, ``x0 = [0, 0, 0.01, 0, 0, 0, 0, 0]``.
    """

    nu = 3

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        parameters = {"Mq": -0.748, "Nur": -0.441, "Xuu": -0.179, "Zww": 0.098, "Muq": -3.519, "Bz": 8.947,
                      "k": 0.519, "b": 3.096, "c": 0.065, "K_delta_u": -10.0, "K_delta_q": -10.0, "K_delta_r": -10.0}
        return {"x0": [0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0]}, {"ts": 0.01}, parameters, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Underwater-vehicle right-hand side."""
        lib = math_library(x, u)
        theta, uu, q, r = x[..., 0], x[..., 2], x[..., 3], x[..., 4]
        delta_u, delta_q, delta_r = x[..., 5], x[..., 6], x[..., 7]
        return stack_last([
            q,
            r / lib.cos(theta),
            self.Xuu * uu ** 2 + self.k * delta_u,
            self.Muq * uu * q + self.Mq * q - self.Bz * lib.sin(theta) + self.b * uu ** 2 * delta_q,
            self.Nur * uu * r + self.c * uu ** 2 * delta_r,
            self.K_delta_u * (delta_u - u[..., 0]),
            self.K_delta_q * (delta_q - u[..., 1]),
            self.K_delta_r * (delta_r - u[..., 2]),
        ])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """Commands within ``[0, 1] x [-1, 1] x [-1, 1]``; by default 100 random steps."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", 100)
        return super().get_U(nsim, umin=[0.0, -1.0, -1.0], umax=[1.0, 1.0, 1.0], signal=signal, **signal_kwargs)


class Actuator(ODE_NonAutonomous):
    """The first-order actuator dynamics of :class:`IverSimple` alone, a linear test system:

    ``d delta_i/dt = K_delta_i (delta_i - delta_ic)`` for thrust, elevator and rudder, with
    ``K_delta_u = K_delta_q = K_delta_r = -10``, ``ts = 0.1``, ``x0 = [0, 0, 0]``.
    """

    nu = 3

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [0.0, 0.0, 0.0]}, {"ts": 0.1}, {"K_delta_u": -10.0, "K_delta_q": -10.0, "K_delta_r": -10.0}, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Actuator right-hand side."""
        return stack_last([self.K_delta_u * (x[..., 0] - u[..., 0]), self.K_delta_q * (x[..., 1] - u[..., 1]),
                           self.K_delta_r * (x[..., 2] - u[..., 2])])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """Commands within ``[0, 1] x [-1, 1] x [-1, 1]``; by default multi-sines of up to 100 periods."""
        if signal is None:
            signal = "sines"
            signal_kwargs.setdefault("periods", 100)
        return super().get_U(nsim, umin=[0.0, -1.0, -1.0], umax=[1.0, 1.0, 1.0], signal=signal, **signal_kwargs)


class SwingEquation(ODE_NonAutonomous):
    """Swing equation of a synchronous generator on an infinite bus, as two first-order ODEs.

    States: rotor angle ``delta`` [rad] and per-unit speed deviation ``domega``; input: mechanical power ``Pm``::

        ddelta/dt = ws domega,   ddomega/dt = (Pm - Pmax sin(delta) - D domega) / M

    ``Pmax = 5``, ``H = 500``, ``D = 5``, ``freq = 60`` Hz, ``ws = 2 pi freq``, ``M = 2 H / ws``;
    ``ts = 0.01``; ``x0 = [arcsin(Pm / Pmax), 0]``, the equilibrium for the nominal ``Pm = 0.8``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        pm, pmax, inertia, freq = 0.8, 5.0, 500.0, 60.0
        ws = 2.0 * math.pi * freq
        parameters = {"Pm": pm, "Pmax": pmax, "H": inertia, "D": 5.0, "freq": freq, "ws": ws, "M": 2.0 * inertia / ws}
        return {"x0": [math.asin(pm / pmax), 0.0]}, {"ts": 0.01}, parameters, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Swing-equation right-hand side."""
        lib = math_library(x, u)
        delta, domega = x[..., 0], x[..., 1]
        return stack_last([self.ws * domega, (u[..., 0] - self.Pmax * lib.sin(delta) - self.D * domega) / self.M])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """Mechanical power within 2 % of 0.8; by default steps held for 200 samples."""
        if signal is None:
            signal = "step"
            signal_kwargs.setdefault("randsteps", math.ceil(nsim / 200))
        return super().get_U(nsim, umin=0.8 * 0.98, umax=0.8 * 1.02, signal=signal, **signal_kwargs)


class ThomasAttractorControl(ODE_NonAutonomous):
    """Thomas' cyclically symmetric attractor whose dissipation ``b`` is the input ``u``
    (see :class:`~neuromancer.psl.autonomous.ThomasAttractor`).

    ``b = 0.208186`` is the nominal dissipation, ``ts = 0.1``, ``x0 = [1, -1, 1]``. The default input
    steps between 0.208186, 0.3289, 0.5 and 1 with uniform noise in ``[-0.01, 0.01]``.
    """

    nu = 1

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``."""
        return {"x0": [1.0, -1.0, 1.0]}, {"ts": 0.1}, {"b": 0.208186}, {}

    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Thomas attractor with dissipation ``u``."""
        return thomas_rhs(x, u[..., 0])

    def get_U(self, nsim: int, signal: Signal = None, **signal_kwargs: Any) -> np.ndarray:
        """By default noisy steps between four dissipation levels, about 48 samples each;
        a named ``signal`` spans ``[0.198186, 1.01]``."""
        if signal is not None:
            return super().get_U(nsim, umin=0.198186, umax=1.01, signal=signal, **signal_kwargs)
        levels = signals.step(nsim, 1, values=[0.208186, 0.3289, 0.5, 1.0], randsteps=math.ceil(nsim / 48), rng=self.rng)
        return (levels + signals.noise(nsim, 1, min=-0.01, max=0.01, rng=self.rng)).astype(np.float32)


systems: dict[str, type] = {
    "Actuator": Actuator,
    "CSTR": CSTR,
    "DuffingControl": DuffingControl,
    "HindmarshRose": HindmarshRose,
    "InvPendulum": InvPendulum,
    "IverSimple": IverSimple,
    "LorenzControl": LorenzControl,
    "SEIR_population": SEIR_population,
    "SwingEquation": SwingEquation,
    "Tank": Tank,
    "ThomasAttractorControl": ThomasAttractorControl,
    "TwoTank": TwoTank,
    "VanDerPolControl": VanDerPolControl,
}
