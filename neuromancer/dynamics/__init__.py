"""Differentiable dynamics: one-step integrators, ODE right-hand sides and their building blocks.

Submodules: `integrators` (fixed-step schemes and the torchdiffeq-backed `DiffEqIntegrator`),
`ode` (the `ODESystem` base and ready-made parametric, hybrid and networked systems), `physics`
(agents and couplings of networked ODEs), `library` (SINDy function libraries) and
`interpolation` (linear interpolation of sampled inputs). All need torch only.
"""
from __future__ import annotations

from neuromancer.dynamics import integrators, interpolation, library, ode, physics
from neuromancer.dynamics.integrators import RK2, RK4, Euler, Integrator
from neuromancer.dynamics.ode import ODESystem

__all__ = ["integrators", "interpolation", "library", "ode", "physics", "Integrator", "Euler", "RK2", "RK4",
           "ODESystem"]
