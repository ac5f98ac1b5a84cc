"""Physical system library (psl): ODE emulators that generate data for system identification and control.

``systems`` maps a system name to its class, e.g. ``systems['TwoTank']().simulate(nsim=100)``; it
holds the autonomous and non-autonomous emulators and the networked systems of
:mod:`neuromancer.psl.coupled_systems` (``'RCNet'``, ``'Gravitational'``, ``'Boids'``).
Importing this package loads numpy and torch only; scipy (integration, splines) and matplotlib
(plots) are imported by the functions that need them.
"""
from __future__ import annotations

from neuromancer.psl import autonomous, coupled_systems, nonautonomous, signals
from neuromancer.psl.autonomous import (
    Autoignition,
    Brusselator1D,
    ChuaCircuit,
    DoublePendulum,
    Duffing,
    LorenzSystem,
    LotkaVolterra,
    Pendulum,
    RosslerAttractor,
    ThomasAttractor,
    UniversalOscillator,
    VanDerPol,
)
from neuromancer.psl.base import EmulatorBase, ODE_Autonomous, ODE_NonAutonomous
from neuromancer.psl.nonautonomous import (
    CSTR,
    Actuator,
    DuffingControl,
    HindmarshRose,
    InvPendulum,
    IverSimple,
    LorenzControl,
    SEIR_population,
    SwingEquation,
    Tank,
    ThomasAttractorControl,
    TwoTank,
    VanDerPolControl,
)

systems: dict[str, type] = {**nonautonomous.systems, **autonomous.systems, **coupled_systems.systems}

__all__ = [
    "systems", "signals", "autonomous", "nonautonomous", "coupled_systems",
    "EmulatorBase", "ODE_Autonomous", "ODE_NonAutonomous",
    "Autoignition", "Brusselator1D", "ChuaCircuit", "DoublePendulum", "Duffing", "LorenzSystem", "LotkaVolterra",
    "Pendulum", "RosslerAttractor", "ThomasAttractor", "UniversalOscillator", "VanDerPol",
    "Actuator", "CSTR", "DuffingControl", "HindmarshRose", "InvPendulum", "IverSimple", "LorenzControl",
    "SEIR_population", "SwingEquation", "Tank", "ThomasAttractorControl", "TwoTank", "VanDerPolControl",
]
