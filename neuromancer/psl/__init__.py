"""Physical system library (psl): ODE emulators that generate data for system identification and control.

``systems`` maps a system name to its class, e.g. ``systems['TwoTank']().simulate(nsim=100)``.
Importing this package loads numpy and torch only; scipy (integration) and matplotlib (plots) are
imported by the functions that need them.
"""
from __future__ import annotations

from neuromancer.psl import signals
from neuromancer.psl.autonomous import Duffing, LorenzSystem, Pendulum, VanDerPol
from neuromancer.psl.base import EmulatorBase, ODE_Autonomous, ODE_NonAutonomous
from neuromancer.psl.nonautonomous import CSTR, DuffingControl, TwoTank, VanDerPolControl

systems: dict[str, type] = {
    "CSTR": CSTR,
    "TwoTank": TwoTank,
    "VanDerPolControl": VanDerPolControl,
    "DuffingControl": DuffingControl,
    "VanDerPol": VanDerPol,
    "Pendulum": Pendulum,
    "LorenzSystem": LorenzSystem,
    "Duffing": Duffing,
}

__all__ = ["systems", "signals", "EmulatorBase", "ODE_Autonomous", "ODE_NonAutonomous", *systems]
