"""Fixed-step explicit integrators that turn a right-hand side ``f(x, *args)`` into a one-step map.

``Integrator(block, h=0.1)(x, u)`` returns the state one step ``h`` later, treating the extra
arguments (inputs, disturbances, time) as constant over the step. The ``block`` is any module or
callable computing ``dx/dt`` (a neural network for a neural ODE, or an ``ODESystem``), so the
result is differentiable end to end. ``integrators`` maps a name to its class.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch
from torch import nn


class Integrator(nn.Module, ABC):
    """Base class: holds the right-hand side ``block`` and the step size ``h``.

    :param block: (nn.Module or callable) computes ``dx/dt = block(x, *args)``
    :param interp_u: (callable or None) accepted for compatibility with NeuroMANCER 1.5, where it is
        deprecated and has no effect; passing it warns (FutureWarning) and it is ignored
    :param h: (float) step size, default 1.0
    :raises TypeError: if ``block`` is not callable
    :raises ValueError: if ``h`` is not positive
    """

    def __init__(self, block: Callable[..., torch.Tensor], interp_u: Optional[Callable] = None, h: float = 1.0) -> None:
        super().__init__()
        if not callable(block):
            raise TypeError(f"block must be a module or callable computing dx/dt, got {type(block).__name__}")
        if h <= 0:
            raise ValueError(f"h={h!r} must be a positive step size")
        if interp_u is not None:
            warnings.warn("interp_u has no effect: inputs are held constant over each integration step",
                          FutureWarning, stacklevel=2)
        self.block = block
        self.h = h
        self.in_features = getattr(block, "in_features", None)
        self.out_features = getattr(block, "out_features", None)

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Return the state one step ``h`` after ``x`` (calls :meth:`integrate`)."""
        return self.integrate(x, *args)

    @abstractmethod
    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Advance ``x`` by one step of size ``h`` with the extra arguments held constant."""

    def reg_error(self) -> torch.Tensor:
        """Regularization term of the block (its ``reg_error()``), or 0 when it has none."""
        block_error = getattr(self.block, "reg_error", None)
        return block_error() if callable(block_error) else torch.zeros(())


class Euler(Integrator):
    """Forward Euler, first order: ``x + h f(x)``."""

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One Euler step."""
        return x + self.h * self.block(x, *args)


class RK2(Integrator):
    """Heun's method (explicit trapezoid), second order."""

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One Heun step: average the slopes at both ends of an Euler predictor."""
        k1 = self.block(x, *args)
        k2 = self.block(x + self.h * k1, *args)
        return x + self.h / 2.0 * (k1 + k2)


class RK4(Integrator):
    """Classical fourth-order Runge-Kutta."""

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One classical RK4 step."""
        h = self.h
        k1 = self.block(x, *args)
        k2 = self.block(x + h / 2.0 * k1, *args)
        k3 = self.block(x + h / 2.0 * k2, *args)
        k4 = self.block(x + h * k3, *args)
        return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


integrators: dict[str, type] = {"Euler": Euler, "RK2": RK2, "RK4": RK4}
