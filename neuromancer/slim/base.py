"""Abstract linear maps with structured weights, the foundation of ``neuromancer.slim``.

A structured linear map stores free parameters and builds from them an effective weight matrix
``W`` of shape ``[insize, outsize]`` that satisfies some constraint (non-negative, orthogonal,
bounded singular values, ...). Applying the map is ``x @ W + bias``; ``reg_error`` returns a
penalty that subclasses use for soft constraints. ``LinearBase`` and ``SquareLinear`` are
re-exported by :mod:`neuromancer.slim.linear`, their public import path.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn as nn

from neuromancer.exceptions import warn_lenient_input

__all__ = ["LinearBase", "SquareLinear", "uniform_weight"]


def uniform_weight(insize: int, outsize: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """An ``[insize, outsize]`` tensor uniform on ``[low, high] / sqrt(insize)`` (the ``nn.Linear`` scale;
    ``[low, high]`` where ``insize`` is 0)."""
    scale = 1.0 / math.sqrt(max(insize, 1))
    return torch.empty(insize, outsize).uniform_(low * scale, high * scale)


def _check_size(name: str, value: int) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is a non-negative integer.

    A size of 0 (a map from or to nothing, which upstream 1.5 builds) is kept with a
    `LenientInputWarning`.
    """
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if value == 0:
        result = "returns zeros (or its bias)" if name == "insize" else "returns a [batch, 0] tensor"
        warn_lenient_input(f"A linear map with {name}=0 {result}, as in upstream 1.5; check the size you passed.")
    return int(value)


class LinearBase(nn.Module, ABC):
    """Base class of every structured linear map: ``forward(x) = x @ effective_W() + bias``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias of shape ``[1, outsize]``.
    :param provide_weights: whether to create a free ``weight`` parameter of
        shape ``[insize, outsize]``; subclasses that build ``W`` from other parameters pass False.
    :raises ValueError: if a size is not a non-negative integer (0 warns: see `_check_size`).
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, provide_weights: bool = True):
        super().__init__()
        self.in_features = _check_size("insize", insize)
        self.out_features = _check_size("outsize", outsize)
        self.use_bias = bool(bias)
        if provide_weights:
            self.weight = nn.Parameter(uniform_weight(self.in_features, self.out_features))
        if self.use_bias:
            self.bias = nn.Parameter(uniform_weight(max(self.in_features, 1), self.out_features)[:1].clone())

    @property
    def device(self) -> torch.device:
        """Device of the map's parameters (CPU for a map without any)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def reg_error(self) -> torch.Tensor:
        """Soft-constraint penalty to add to the loss; zero for unconstrained maps."""
        return torch.zeros((), device=self.device)

    def eig(self):
        """Eigenvalues and eigenvectors of the effective weight (``torch.linalg.eig``).

        :raises ValueError: if the map is not square.
        """
        if self.in_features != self.out_features:
            raise ValueError(
                f"eig needs a square map, this {type(self).__name__} is {self.in_features}x{self.out_features}; "
                "use torch.linalg.svdvals(map.effective_W()) for singular values instead")
        return torch.linalg.eig(self.effective_W())

    @abstractmethod
    def effective_W(self) -> torch.Tensor:
        """The structured ``[insize, outsize]`` weight matrix."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the map to the last dimension of ``x``."""
        out = torch.matmul(x, self.effective_W())
        if self.use_bias:
            out = out + self.bias
        return out


class SquareLinear(LinearBase, ABC):
    """Base class for maps that only exist for square weights (``insize == outsize``).

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :param provide_weights: whether to create a free ``weight`` parameter.
    :raises ValueError: if ``insize != outsize``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, provide_weights: bool = True, **kwargs):
        if insize != outsize:
            raise ValueError(f"{type(self).__name__} needs a square map, got insize={insize} and "
                             f"outsize={outsize}; pass equal sizes or choose a map that allows rectangular weights")
        super().__init__(insize, outsize, bias=bias, provide_weights=provide_weights)
