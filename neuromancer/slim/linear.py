"""Structured linear maps (``neuromancer.slim.linear``): the public home of every map class.

Each map builds an effective weight ``W`` of shape ``[insize, outsize]`` with a structural
property (non-negativity, stochasticity, symmetry, bounded spectrum, sparsity, ...) and applies
``x @ W + bias``. Maps are interchangeable wherever a block takes a ``linear_map`` class.
``square_maps`` lists the maps that need ``insize == outsize``. The abstract bases live in
``neuromancer.slim.base`` and the Householder/SVD family in ``neuromancer.slim.spectral``;
both are re-exported here.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from neuromancer.exceptions import warn_lenient_input
from neuromancer.slim.base import LinearBase, SquareLinear, uniform_weight
from neuromancer.slim.spectral import (
    Hprod,
    OrthogonalLinear,
    SchurDecompositionLinear,
    SpectralLinear,
    SVDLinear,
    SVDLinearLearnBounds,
    SymmetricSpectralLinear,
    SymmetricSVDLinear,
)
from neuromancer.vmap import is_transformed

__all__ = [
    "LinearBase", "SquareLinear", "Linear", "IdentityInitLinear", "IdentityLinear", "NonNegativeLinear",
    "LassoLinear", "LassoLinearRELU", "IdentityGradReLU", "L0Linear", "LeftStochasticLinear",
    "RightStochasticLinear", "PerronFrobeniusLinear", "SymmetricLinear", "SkewSymmetricLinear",
    "DampedSkewSymmetricLinear", "SplitLinear", "StableSplitLinear", "PSDLinear", "SymplecticLinear",
    "GershgorinLinear", "BoundedNormLinear", "TrivialNullSpaceLinear", "PowerBoundLinear", "Hprod",
    "OrthogonalLinear", "SVDLinear", "SVDLinearLearnBounds", "SymmetricSVDLinear", "SpectralLinear",
    "SymmetricSpectralLinear", "SchurDecompositionLinear", "maps", "square_maps",
]


class Linear(LinearBase):
    """Unconstrained map wrapping ``torch.nn.Linear`` (the default ``linear_map`` of every block).

    The parameters are those of the inner ``nn.Linear`` (``weight`` is ``[outsize, insize]``), also
    exposed as ``self.weight`` and ``self.bias``; ``effective_W`` is ``weight.T``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=False, provide_weights=False)
        self.use_bias = bool(bias)
        self.linear = nn.Linear(insize, outsize, bias=bias)
        self.weight = self.linear.weight
        if bias:
            self.bias = self.linear.bias

    def effective_W(self) -> torch.Tensor:
        """The transposed ``nn.Linear`` weight."""
        return self.linear.weight.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the inner ``nn.Linear``."""
        return self.linear(x)


class IdentityInitLinear(Linear):
    """:class:`Linear` whose weight starts as the (rectangular) identity; useful for residual-like starts.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(outsize, insize))


class IdentityLinear(IdentityInitLinear):
    """Fixed identity map: :class:`IdentityInitLinear` with the weight frozen (the bias, if any, still learns).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        self.linear.weight.requires_grad_(False)


class NonNegativeLinear(LinearBase):
    """Map with an elementwise non-negative weight ``W = relu(weight)``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        with torch.no_grad():
            self.weight.abs_()

    def effective_W(self) -> torch.Tensor:
        """``relu(weight)``."""
        return F.relu(self.weight)


class LassoLinear(LinearBase):
    """Unconstrained map whose :meth:`reg_error` is the lasso penalty ``gamma * sum|W|``.

    Adding the penalty to the loss drives entries of ``W`` towards zero (sparse weights).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param gamma: weight of the L1 penalty.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, gamma: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        self.gamma = gamma

    def effective_W(self) -> torch.Tensor:
        """The free weight."""
        return self.weight

    def reg_error(self) -> torch.Tensor:
        """``gamma`` times the L1 norm of ``W``."""
        return self.gamma * self.weight.abs().sum()


class IdentityGradReLU(torch.autograd.Function):
    """ReLU in the forward pass, identity in the backward pass (a straight-through estimator).

    Entries clipped to zero still receive gradient, so they can become positive again.
    """

    @staticmethod
    def forward(ctx, input: torch.Tensor) -> torch.Tensor:
        """``relu(input)``."""
        return F.relu(input)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        """Pass the gradient through unchanged."""
        return grad_output


def _straight_through_relu(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)`` forward, identity backward: what :class:`IdentityGradReLU` computes, as plain operations.

    ``x + (relu(x) - x)`` equals ``relu(x)`` exactly (the correction is 0 or ``-x``), and as the
    correction is detached the gradient is the identity's. `IdentityGradReLU` keeps upstream's
    old-style ``forward(ctx, input)``, which ``torch.func`` transforms cannot run; this can.
    """
    return x + (F.relu(x) - x).detach()


class LassoLinearRELU(LinearBase):
    """Lasso map with ``W = relu(u) - relu(v)``: positive and negative parts kept separately.

    With the split, the L1 penalty ``gamma * sum(relu(u) + relu(v))`` is linear in the parameters
    (no kink at zero), and entries hit exactly zero. The ReLUs pass gradients straight through
    (:class:`IdentityGradReLU`), so zeroed entries can revive.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param gamma: weight of the L1 penalty.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, gamma: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        self.gamma = gamma
        self.u_param = nn.Parameter(uniform_weight(insize, outsize, 0.0, 1.0))
        self.v_param = nn.Parameter(uniform_weight(insize, outsize, 0.0, 1.0))

    def effective_W(self) -> torch.Tensor:
        """``relu(u) - relu(v)``, each with the straight-through gradient of :class:`IdentityGradReLU`."""
        return _straight_through_relu(self.u_param) - _straight_through_relu(self.v_param)

    def reg_error(self) -> torch.Tensor:
        """``gamma`` times the total size of both parts (equals ``gamma * sum|W|`` when they do not overlap)."""
        return self.gamma * (F.relu(self.u_param) + F.relu(self.v_param)).sum()


class L0Linear(LinearBase):
    """Sparse map with hard-concrete gates, L0 regularisation of Louizos et al., https://arxiv.org/abs/1712.01312.

    ``W = weight * z`` where each gate ``z`` in [0, 1] is sampled from a stretched, clipped concrete
    distribution while training and set to its deterministic value in ``eval()`` mode, so gates can be
    exactly 0 or 1. :meth:`reg_error` is the expected number of open gates weighted by ``lamda`` plus
    an L2 weight decay on the kept weights (a positive penalty).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param weight_decay: L2 weight-decay strength (prior precision).
    :param droprate_init: initial probability that a gate is closed, in (0, 1).
    :param temperature: temperature of the concrete distribution.
    :param lamda: cost of each open gate.
    :raises ValueError: if ``droprate_init`` is not in (0, 1) or ``temperature <= 0``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, weight_decay: float = 1.0,
                 droprate_init: float = 0.5, temperature: float = 2.0 / 3.0, lamda: float = 1.0):
        super().__init__(insize, outsize, bias=bias)
        if not 0.0 < droprate_init < 1.0:
            raise ValueError(f"droprate_init must be in (0, 1), got {droprate_init!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        for name, value in [("prior_prec", weight_decay), ("temperature", temperature),
                            ("droprate_init", droprate_init), ("lamda", lamda), ("limit_a", -0.1),
                            ("limit_b", 1.1), ("epsilon", 1e-6)]:
            self.register_buffer(name, torch.tensor(float(value)))
        mean = math.log(1.0 - droprate_init) - math.log(droprate_init)
        self.qz_loga = nn.Parameter(torch.randn(insize, outsize) * 1e-2 + mean)

    def cdf_qz(self, x) -> torch.Tensor:
        """Probability that each stretched gate (before clipping) is below ``x``."""
        stretched = (x - self.limit_a) / (self.limit_b - self.limit_a)
        logits = torch.log(stretched) - torch.log1p(-stretched)
        return torch.sigmoid(logits * self.temperature - self.qz_loga).clamp(self.epsilon, 1.0 - self.epsilon)

    def quantile_concrete(self, x: torch.Tensor) -> torch.Tensor:
        """Stretched gate values at uniform quantiles ``x`` (inverse CDF of the hard-concrete distribution)."""
        y = torch.sigmoid((torch.log(x) - torch.log1p(-x) + self.qz_loga) / self.temperature)
        return y * (self.limit_b - self.limit_a) + self.limit_a

    def get_eps(self, size) -> torch.Tensor:
        """Uniform noise on ``(epsilon, 1 - epsilon)`` of the given size, on the map's device.

        Inside ``torch.func.vmap`` (run it with ``randomness='different'`` so that every member
        draws its own gates) the noise is drawn out of place and scaled with the member's ``epsilon``.
        """
        if is_transformed(self.qz_loga) or is_transformed(self.epsilon):
            noise = torch.rand(size, device=self.qz_loga.device, dtype=self.epsilon.dtype)
            return self.epsilon + (1.0 - 2.0 * self.epsilon) * noise
        return torch.empty(size, device=self.qz_loga.device).uniform_(float(self.epsilon), 1.0 - float(self.epsilon))

    def gates(self) -> torch.Tensor:
        """Sampled gates while training, deterministic gates in eval mode; values in [0, 1]."""
        if self.training:
            stretched = self.quantile_concrete(self.get_eps(self.qz_loga.shape))
        else:
            stretched = torch.sigmoid(self.qz_loga) * (self.limit_b - self.limit_a) + self.limit_a
        return F.hardtanh(stretched, min_val=0.0, max_val=1.0)

    def effective_W(self) -> torch.Tensor:
        """``weight * gates``."""
        return self.weight * self.gates()

    def reg_error(self) -> torch.Tensor:
        """Expected L0 cost plus weight decay: ``sum P(gate open) * (lamda + weight_decay / 2 * weight**2)``."""
        open_probability = 1.0 - self.cdf_qz(torch.zeros((), device=self.qz_loga.device))
        return torch.sum(open_probability * (self.lamda + 0.5 * self.prior_prec * self.weight ** 2))


class LeftStochasticLinear(LinearBase):
    """Left (column) stochastic map: ``W >= 0`` and every column of ``W`` sums to 1 (softmax over rows).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def effective_W(self) -> torch.Tensor:
        """Column-wise softmax of the free weight."""
        return F.softmax(self.weight, dim=0)


class RightStochasticLinear(LinearBase):
    """Right (row) stochastic map: ``W >= 0`` and every row of ``W`` sums to 1 (softmax over columns).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def effective_W(self) -> torch.Tensor:
        """Row-wise softmax of the free weight."""
        return F.softmax(self.weight, dim=1)


class PerronFrobeniusLinear(LinearBase):
    """Non-negative map whose row sums lie in ``[sigma_min, sigma_max]``.

    ``W_ij = softmax_j(weight)_ij * s_ij`` with ``s_ij`` in ``[sigma_min, sigma_max]``, so every row
    sum is a convex combination of the ``s_ij``. For square maps the Perron-Frobenius theorem then
    puts the dominant (real, non-negative) eigenvalue in ``[sigma_min, sigma_max]`` and every
    eigenvalue's magnitude below ``sigma_max``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param sigma_min: lower bound of the row sums.
    :param sigma_max: upper bound of the row sums.
    :raises ValueError: if ``sigma_min > sigma_max`` or ``sigma_min < 0``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.8,
                 sigma_max: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        if not 0.0 <= sigma_min <= sigma_max:
            raise ValueError(f"PerronFrobeniusLinear needs 0 <= sigma_min <= sigma_max, got "
                             f"sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.scaling = nn.Parameter(uniform_weight(insize, outsize))

    def effective_W(self) -> torch.Tensor:
        """Row-stochastic matrix scaled entrywise into ``[sigma_min, sigma_max]``."""
        scale = self.sigma_min + (self.sigma_max - self.sigma_min) * torch.sigmoid(self.scaling)
        return F.softmax(self.weight, dim=1) * scale


class SymmetricLinear(SquareLinear):
    """Symmetric map ``W = (weight + weight^T) / 2`` (real eigenvalues).

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :raises ValueError: if the map is not square.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias)

    def effective_W(self) -> torch.Tensor:
        """Symmetric part of the free weight."""
        return (self.weight + self.weight.T) / 2.0


class SkewSymmetricLinear(SquareLinear):
    """Skew-symmetric map ``W = U - U^T`` with ``U`` the strict upper triangle (imaginary eigenvalues).

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :raises ValueError: if the map is not square.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias)

    def effective_W(self) -> torch.Tensor:
        """``triu(weight, 1) - triu(weight, 1)^T``."""
        upper = torch.triu(self.weight, diagonal=1)
        return upper - upper.T


class DampedSkewSymmetricLinear(SkewSymmetricLinear):
    """Damped skew-symmetric map ``W = S - gamma I`` with ``gamma`` in ``[sigma_min, sigma_max]``.

    ``S`` is skew-symmetric, so every eigenvalue of ``W`` has real part exactly ``-gamma``: the map
    is the state matrix of a stable continuous-time linear system with bounded decay rate.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :param sigma_min: lower bound of the damping ``gamma``.
    :param sigma_max: upper bound of the damping ``gamma``.
    :raises ValueError: if the map is not square or ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.1,
                 sigma_max: float = 0.5, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        if sigma_min > sigma_max:
            raise ValueError(f"sigma_min={sigma_min} exceeds sigma_max={sigma_max}; pass sigma_min <= sigma_max")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.register_buffer("eye", torch.eye(insize))
        self.gamma = nn.Parameter(torch.zeros(1, 1))

    def damping(self) -> torch.Tensor:
        """The damping ``gamma`` in ``[sigma_min, sigma_max]`` (shape ``[1, 1]``)."""
        return self.sigma_min + (self.sigma_max - self.sigma_min) * torch.sigmoid(self.gamma)

    def effective_W(self) -> torch.Tensor:
        """Skew-symmetric part minus ``gamma`` times the identity."""
        return super().effective_W() - self.damping() * self.eye


class SplitLinear(LinearBase):
    """Map written as the difference of two non-negative maps, ``W = B - C``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        self.B = NonNegativeLinear(insize, outsize)
        self.C = NonNegativeLinear(insize, outsize)

    def effective_W(self) -> torch.Tensor:
        """``B - C``."""
        return self.B.effective_W() - self.C.effective_W()


class StableSplitLinear(LinearBase):
    """``W = B - C`` with ``B``, ``C`` :class:`PerronFrobeniusLinear` maps of row sums in ``[sigma_min/2, sigma_max/2]``.

    Every row of ``|W|`` then sums to at most ``sigma_max``, so ``||W||_inf <= sigma_max`` and for a
    square map every eigenvalue has magnitude at most ``sigma_max``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param sigma_min: twice the lower bound of the row sums of each part.
    :param sigma_max: bound on the absolute row sums of ``W``.
    :raises ValueError: if ``sigma_min > sigma_max`` or ``sigma_min < 0``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.1,
                 sigma_max: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        self.B = PerronFrobeniusLinear(insize, outsize, sigma_min=sigma_min / 2, sigma_max=sigma_max / 2)
        self.C = PerronFrobeniusLinear(insize, outsize, sigma_min=sigma_min / 2, sigma_max=sigma_max / 2)

    def effective_W(self) -> torch.Tensor:
        """``B - C``."""
        return self.B.effective_W() - self.C.effective_W()


class PSDLinear(SquareLinear):
    """Positive semi-definite map ``W = weight^T weight`` (symmetric, eigenvalues >= 0).

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :raises ValueError: if the map is not square.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias)

    def effective_W(self) -> torch.Tensor:
        """Gram matrix of the free weight."""
        return self.weight.T @ self.weight


class SymplecticLinear(LinearBase):
    """Symplectic map: ``W^T J W = J`` with ``J = [[0, I], [-I, 0]]`` (preserves phase-space volume and form).

    ``W = [[I, S1], [0, I]] @ [[I, 0], [S2, I]]`` with ``S1``, ``S2`` the symmetric parts of two free
    ``[n/2, n/2]`` weights: each factor is a symplectic shear, so the product is symplectic for any
    parameters.

    :param insize: input dimension, even.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :raises ValueError: if the map is not square or the size is odd.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        if insize != outsize or insize % 2:
            raise ValueError(f"SymplecticLinear needs equal, even sizes, got insize={insize} and outsize={outsize}")
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        half = insize // 2
        self.weight_upper = nn.Parameter(uniform_weight(half, half))
        self.weight_lower = nn.Parameter(uniform_weight(half, half))
        self.register_buffer("eye", torch.eye(half), persistent=False)

    def effective_W(self) -> torch.Tensor:
        """Product of the two symplectic shears."""
        zero = torch.zeros_like(self.eye)
        s1 = self.weight_upper + self.weight_upper.T
        s2 = self.weight_lower + self.weight_lower.T
        upper_shear = torch.cat([torch.cat([self.eye, s1], 1), torch.cat([zero, self.eye], 1)], 0)
        lower_shear = torch.cat([torch.cat([self.eye, zero], 1), torch.cat([s2, self.eye], 1)], 0)
        return upper_shear @ lower_shear


class GershgorinLinear(SquareLinear):
    """Square map whose Gershgorin discs lie in the band ``sigma_min <= Re(z) <= sigma_max``.

    Each row ``i`` has diagonal ``c_i`` in ``[sigma_min, sigma_max]`` and off-diagonal absolute sum
    at most ``min(c_i - sigma_min, sigma_max - c_i)``, so by Gershgorin's theorem every eigenvalue
    has real part in ``[sigma_min, sigma_max]``. With ``real=True`` the off-diagonal part is
    symmetric (scaled by one common factor), so ``W`` is symmetric and its eigenvalues are real and
    inside ``[sigma_min, sigma_max]``; with ``real=False`` each row is scaled separately.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :param sigma_min: lower eigenvalue bound.
    :param sigma_max: upper eigenvalue bound.
    :param real: whether to make ``W`` symmetric (real eigenvalues).
    :raises ValueError: if the map is not square or ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.0,
                 sigma_max: float = 1.0, real: bool = True, **kwargs):
        super().__init__(insize, outsize, bias=bias)
        if sigma_min > sigma_max:
            raise ValueError(f"sigma_min={sigma_min} exceeds sigma_max={sigma_max}; pass sigma_min <= sigma_max")
        self.sigma_min, self.sigma_max, self.real = sigma_min, sigma_max, real
        self.radius = nn.Parameter(torch.zeros(insize))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(insize), persistent=False)

    def effective_W(self) -> torch.Tensor:
        """Diagonal centres plus off-diagonal entries scaled into the allowed disc radii."""
        centres = self.sigma_min + (self.sigma_max - self.sigma_min) * torch.sigmoid(self.weight.diagonal())
        room = torch.minimum(centres - self.sigma_min, self.sigma_max - centres) * torch.sigmoid(self.radius)
        off = self.weight * self.off_diagonal
        if self.real:
            off = (off + off.T) / 2.0
        row_sums = off.abs().sum(dim=1) + 1e-12
        if self.real:
            off = off * torch.min(room / row_sums)
        else:
            off = off * (room / row_sums).unsqueeze(1)
        return torch.diag(centres) + off


class BoundedNormLinear(Linear):
    """:class:`Linear` whose :meth:`reg_error` penalises a matrix norm of ``W`` outside ``[sigma_min, sigma_max]``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param sigma_min: lower bound of the norm.
    :param sigma_max: upper bound of the norm.
    :param p: matrix norm order as in ``torch.linalg.matrix_norm``
        (2: spectral norm, 1 / inf: max column / row sum, 'fro', 'nuc', ...).
    :raises ValueError: on an unsupported ``p`` or ``sigma_min > sigma_max``.
    """

    norm_orders = (1, -1, 2, -2, math.inf, -math.inf, "fro", "nuc")

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.1,
                 sigma_max: float = 1.0, p: int | float | str = 2, **kwargs: Any) -> None:
        super().__init__(insize, outsize, bias=bias)
        if p not in self.norm_orders:
            raise ValueError(f"p={p!r} is not a matrix norm order; use one of {self.norm_orders}")
        if sigma_min > sigma_max:
            raise ValueError(f"sigma_min={sigma_min} exceeds sigma_max={sigma_max}; pass sigma_min <= sigma_max")
        self.sigma_min, self.sigma_max, self.p = sigma_min, sigma_max, p

    def reg_error(self) -> torch.Tensor:
        """Distance of ``||W||_p`` from ``[sigma_min, sigma_max]`` (zero inside)."""
        norm = torch.linalg.matrix_norm(self.effective_W(), ord=self.p)
        return F.relu(norm - self.sigma_max) + F.relu(self.sigma_min - norm)


class TrivialNullSpaceLinear(LinearBase):
    """Map ``x -> x @ W`` that is injective (only ``x = 0`` maps to 0): ``W = [G^T G + epsilon I, N]``.

    The leading ``[insize, insize]`` block is positive definite with eigenvalues at least
    ``epsilon``, so ``W`` has full row rank and every singular value is at least ``epsilon``.
    ``G`` is ``[rank, insize]`` (``rank`` defaults to ``insize``); ``N`` fills the remaining
    ``outsize - insize`` columns freely.

    :param insize: input dimension.
    :param outsize: output dimension, at least ``insize``.
    :param bias: must be False: a bias would move the null space.
    :param rank: number of rows of ``G``; 0 fixes the leading block at ``epsilon I`` (with a
        `LenientInputWarning` where ``insize > 0``).
    :param epsilon: lower bound of the singular values, positive.
    :raises ValueError: if ``outsize < insize``, ``bias`` is True, ``epsilon <= 0`` or ``rank < 0``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, rank: int | None = None,
                 epsilon: float = 0.1, **kwargs):
        if outsize < insize:
            raise ValueError(f"TrivialNullSpaceLinear cannot reduce dimension: insize={insize} > outsize={outsize}")
        if bias:
            raise ValueError("TrivialNullSpaceLinear needs bias=False: a bias makes x=0 map to a non-zero output")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        rank = insize if rank is None else rank
        if rank < 0:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        if rank == 0 and insize > 0:
            warn_lenient_input("TrivialNullSpaceLinear(rank=0) has no G: its leading block stays epsilon * I, as "
                               "in upstream 1.5. Give a positive rank to train it.")
        super().__init__(insize, outsize, bias=False, provide_weights=False)
        self.epsilon = epsilon
        self.Gl1 = nn.Parameter(uniform_weight(rank, insize))
        self.Gl2 = nn.Parameter(uniform_weight(insize, outsize - insize))
        self.register_buffer("eye", torch.eye(insize), persistent=False)

    def effective_W(self) -> torch.Tensor:
        """``[G^T G + epsilon I, N]``."""
        return torch.cat([self.Gl1.T @ self.Gl1 + self.epsilon * self.eye, self.Gl2], dim=1)


class PowerBoundLinear(SquareLinear):
    """Square map rescaled so its spectral norm (hence every eigenvalue's magnitude) is at most ``max_p``.

    The spectral norm of the free weight ``W`` is estimated by ``pwr_iters`` power iterations on
    ``W^T W``; when it exceeds ``max_p`` the weight is scaled down to norm ``max_p``.
    :meth:`reg_error` penalises the excess of the free weight, keeping it near the bound.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param max_p: bound on the spectral norm.
    :param pwr_iters: power iterations per estimate.
    :param bias: whether to learn a bias.
    :raises ValueError: if the map is not square, ``max_p <= 0`` or ``pwr_iters < 1``.
    """

    def __init__(self, insize: int, outsize: int, max_p: float = 1, pwr_iters: int = 200, bias: bool = False,
                 **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        if max_p <= 0 or pwr_iters < 1:
            raise ValueError(f"PowerBoundLinear needs max_p > 0 and pwr_iters >= 1, got {max_p!r}, {pwr_iters!r}")
        self.max_p, self.pwr_iters = max_p, int(pwr_iters)
        self.W = nn.Parameter(torch.randn(insize, insize) / math.sqrt(insize))
        self.register_buffer("v", F.normalize(torch.randn(insize), dim=0))

    def eig_v_estimate(self) -> torch.Tensor:
        """Power-iteration estimate of the largest singular value of the free weight (differentiable)."""
        with torch.no_grad():
            v = self.v
            gram = self.W.T @ self.W
            for _ in range(self.pwr_iters):
                v = F.normalize(gram @ v, dim=0)
            self.v.copy_(v)
        return torch.linalg.vector_norm(self.W @ v)

    def effective_W(self) -> torch.Tensor:
        """The free weight, scaled down to spectral norm ``max_p`` when it exceeds it."""
        return self.W * torch.clamp(self.max_p / self.eig_v_estimate(), max=1.0)

    def reg_error(self) -> torch.Tensor:
        """Excess of the free weight's spectral norm over ``max_p``."""
        return F.relu(self.eig_v_estimate() - self.max_p)


square_maps = {
    SymmetricSpectralLinear, DampedSkewSymmetricLinear, SchurDecompositionLinear, SymmetricLinear,
    SymmetricSVDLinear, GershgorinLinear, SymplecticLinear, SkewSymmetricLinear, PowerBoundLinear,
    OrthogonalLinear, PSDLinear,
}
"""Map classes that only accept ``insize == outsize``."""

maps = {
    "l0": L0Linear,
    "linear": Linear,
    "nneg": NonNegativeLinear,
    "lasso": LassoLinear,
    "lstochastic": LeftStochasticLinear,
    "rstochastic": RightStochasticLinear,
    "pf": PerronFrobeniusLinear,
    "symmetric": SymmetricLinear,
    "skew_symetric": SkewSymmetricLinear,
    "damp_skew_symmetric": DampedSkewSymmetricLinear,
    "split": SplitLinear,
    "stable_split": StableSplitLinear,
    "spectral": SpectralLinear,
    "softSVD": SVDLinear,
    "learnSVD": SVDLinearLearnBounds,
    "orthogonal": OrthogonalLinear,
    "psd": PSDLinear,
    "symplectic": SymplecticLinear,
    "schur": SchurDecompositionLinear,
    "identity": IdentityLinear,
    "gershgorin": GershgorinLinear,
    "bounded_Lp_norm": BoundedNormLinear,
    "trivial_nullspace": TrivialNullSpaceLinear,
    "Power_bound": PowerBoundLinear,
}
"""Map classes by short name, as configuration code and ``blocks`` (``linear_map=maps['...']``) name them."""
