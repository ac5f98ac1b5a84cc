"""Emulators with a control input: CSTR, two-tank, controlled Van der Pol and input-phased Duffing.

Each class states its equations in ``equations(t, x, u)`` (numpy or torch), its defaults in
``params`` (those of NeuroMANCER 1.5), and its default excitation in ``get_U``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

from neuromancer.psl.base import Array, ODE_NonAutonomous, math_library, stack_last


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

    def get_U(self, nsim: int, signal: Optional[Union[str, Callable]] = None, **signal_kwargs: Any) -> np.ndarray:
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

    def get_U(self, nsim: int, signal: Optional[Union[str, Callable]] = None, **signal_kwargs: Any) -> np.ndarray:
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

    def get_U(self, nsim: int, signal: Optional[Union[str, Callable]] = None, **signal_kwargs: Any) -> np.ndarray:
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

    def get_U(self, nsim: int, signal: Optional[Union[str, Callable]] = None, **signal_kwargs: Any) -> np.ndarray:
        """Drive phase within ``[0, 5]``; by default one sine period over the horizon."""
        if signal is None:
            signal = "sin"
            signal_kwargs.setdefault("periods", 1)
        return super().get_U(nsim, umin=0.0, umax=5.0, signal=signal, **signal_kwargs)
