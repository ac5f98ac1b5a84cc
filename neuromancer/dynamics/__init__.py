"""Differentiable dynamics: fixed-step integrators and the ``ODESystem`` base for ODE right-hand sides."""
from __future__ import annotations

from neuromancer.dynamics import integrators, ode
from neuromancer.dynamics.integrators import RK2, RK4, Euler, Integrator
from neuromancer.dynamics.ode import ODESystem

__all__ = ["integrators", "ode", "Integrator", "Euler", "RK2", "RK4", "ODESystem"]
