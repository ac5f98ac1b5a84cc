"""Base class for user-written ODE right-hand sides with learnable parameters.

Subclass :class:`ODESystem`, declare parameters (e.g. ``nn.Parameter``) in ``__init__`` and write
``ode_equations(x, *args)``; wrap the instance in an integrator (``RK4(MyODE(), h=0.1)``) to get a
differentiable one-step model for system identification.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class ODESystem(nn.Module, ABC):
    """Right-hand side ``dx/dt = ode_equations(x, *args)`` of an ODE with ``outsize`` states.

    :param insize: (int) total width of the inputs: states plus the extra arguments (e.g. ``nx + nu``)
    :param outsize: (int) number of states ``nx``; the derivative has this width
    :raises ValueError: if the sizes are not positive or ``insize < outsize``

    Attributes ``in_features``/``out_features`` mirror the sizes, ``nx = outsize`` and ``nu = insize - outsize``.
    """

    def __init__(self, insize: int, outsize: int) -> None:
        super().__init__()
        if outsize < 1 or insize < outsize:
            raise ValueError(f"need 1 <= outsize <= insize, got insize={insize}, outsize={outsize}")
        self.in_features, self.out_features = insize, outsize
        self.nx, self.nu = outsize, insize - outsize

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Check the input widths and return ``ode_equations(x, *args)``.

        :param x: (torch.Tensor) [..., nx] states
        :param args: extra tensors [..., n_i] (inputs, disturbances) whose widths add up to ``nu``
        :return: (torch.Tensor) [..., nx] time derivative
        :raises ValueError: if ``x`` is not ``nx`` wide or the arguments are not ``nu`` wide in total
        """
        if x.shape[-1] != self.nx:
            raise ValueError(f"x has {x.shape[-1]} columns; {type(self).__name__} has nx={self.nx} states")
        extra = sum(arg.shape[-1] for arg in args)
        if extra != self.nu:
            raise ValueError(f"extra arguments have {extra} columns in total; {type(self).__name__} expects "
                             f"nu = insize - outsize = {self.nu}")
        return self.ode_equations(x, *args)

    @abstractmethod
    def ode_equations(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Compute ``dx/dt`` from the states and the extra arguments."""
