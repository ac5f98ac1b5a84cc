"""Elementwise activation functions with learnable shape parameters.

Besides the fixed PyTorch activations, NeuroMANCER offers activations whose curvature or slopes are
trained with the rest of the model (soft exponential, bendable linear units, adaptive piecewise
linear units, parametric ReLU/ELU) and a ReLU with a quadratic knee used to build continuously
differentiable Lyapunov functions. ``activations`` maps the short names accepted by configuration
code (``'relu'``, ``'softexp'``, ...) to the activation classes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from neuromancer.exceptions import warn_lenient_input
from neuromancer.vmap import population_values

__all__ = [
    "soft_exp", "SoftExponential", "RectifiedSoftExp", "BLU", "SmoothedReLU", "APLU", "PReLU", "PELU",
    "activations",
]


def _scalar_parameter(value: float, trainable: bool) -> nn.Parameter:
    """A 0-d parameter holding ``value``; ``trainable=False`` keeps it in the state dict but frozen."""
    return nn.Parameter(torch.tensor(float(value)), requires_grad=trainable)


def soft_exp(alpha: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Soft exponential activation of Godfrey and Gashler (2015), https://arxiv.org/abs/1602.01321.

    One parameter interpolates between logarithmic (``alpha < 0``), linear (``alpha = 0``) and
    exponential (``alpha > 0``) behaviour::

        alpha < 0:  -log(1 - alpha * (x + alpha)) / alpha
        alpha = 0:  x
        alpha > 0:  (exp(alpha * x) - 1) / alpha + alpha

    At ``alpha = 0`` the value is exactly ``x`` and the gradient with respect to ``alpha`` is the
    analytic limit ``1 + x**2 / 2`` (the same from both sides), so a learnable ``alpha`` initialised at
    zero does leave zero. For ``alpha < 0`` the logarithm is undefined where
    ``1 - alpha * (x + alpha) <= 0``: the result there is NaN/-inf, as in the paper; use
    :class:`RectifiedSoftExp` for a version that stays finite.

    Only the case at hand is computed. Inside ``torch.func.vmap``, where every member of a
    population has its own ``alpha``, that is the case all members share; where their cases
    differ, each case is computed with harmless stand-ins for the members it does not concern and
    the results are added, which gives every member the value and gradient of its own case.

    :param alpha: scalar shape parameter.
    :param x: input.
    :return: activation, same shape as ``x``.
    """
    case = _case(alpha)
    if case is None:
        return _soft_exp_mixed_cases(alpha, x)
    if case == 0.0:
        return x + alpha * (1.0 + x ** 2 / 2.0)
    if case < 0.0:
        return -torch.log(1.0 - alpha * (x + alpha)) / alpha
    return torch.expm1(alpha * x) / alpha + alpha


def _case(alpha: float | torch.Tensor) -> float | None:
    """A number whose sign picks the formula of :func:`soft_exp`: ``alpha`` itself, or, inside
    ``torch.func.vmap``, the sign all members' ``alpha`` share; None where they do not share one."""
    if not isinstance(alpha, torch.Tensor):
        return float(alpha)
    values = population_values(alpha)
    if values is None:
        return None
    if values is alpha:
        return float(alpha.detach())
    lowest, highest = torch.stack(torch.aminmax(torch.sign(values.detach()))).tolist()
    return lowest if lowest == highest else None


def _soft_exp_mixed_cases(alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:func:`soft_exp` for a population whose members' ``alpha`` have different signs.

    Each case is computed for every member with ``alpha`` replaced by 0 (and its divisor by 1)
    where it is not the member's case, which makes its value exactly 0 there and its gradient
    finite, and the three are added: each member gets its own case's value and gradient, exactly.
    A NaN ``alpha`` takes the exponential case, as outside vmap.
    """
    negative, zero = alpha < 0, alpha == 0
    positive = ~(negative | zero)
    exponential_alpha = torch.where(positive, alpha, 0.0)
    exponential = torch.expm1(exponential_alpha * x) / torch.where(positive, alpha, 1.0) + exponential_alpha
    logarithmic_alpha = torch.where(negative, alpha, 0.0)
    logarithmic = (-torch.log(1.0 - logarithmic_alpha * (x + logarithmic_alpha))
                   / torch.where(negative, alpha, 1.0))
    linear_alpha = torch.where(zero, alpha, 0.0)
    linear = zero.to(x.dtype) * (x + linear_alpha * (1.0 + x ** 2 / 2.0))
    return exponential + logarithmic + linear


class SoftExponential(nn.Module):
    """Soft exponential activation with a learnable scalar ``alpha`` (see :func:`soft_exp`).

    It starts as the identity (``alpha = 0``) and training bends it towards a logarithm or an
    exponential, which lets a network pick its own nonlinearity.

    :param alpha: initial shape parameter.
    :param tune_alpha: whether ``alpha`` is trained.
    """

    def __init__(self, alpha: float = 0.0, tune_alpha: bool = True):
        super().__init__()
        self.alpha = _scalar_parameter(alpha, tune_alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the soft exponential elementwise."""
        return soft_exp(self.alpha, x)


class RectifiedSoftExp(nn.Module):
    """Soft exponential whose parameter and logarithm argument are kept in a safe range.

    ``alpha`` is clipped to ``[-1, 1]`` and, on the logarithmic side, the argument
    ``1 - alpha * (x + alpha)`` is rectified at a small epsilon, so the output stays finite for every
    input (plain :func:`soft_exp` returns NaN there).

    :param tune_alpha: whether ``alpha`` (initialised at 0) is trained.
    """

    epsilon = 1e-7

    def __init__(self, tune_alpha: bool = True):
        super().__init__()
        self.alpha = _scalar_parameter(0.0, tune_alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the rectified soft exponential elementwise."""
        alpha = torch.clamp(self.alpha, -1.0, 1.0)
        case = _case(alpha)
        if case is None:
            negative = alpha < 0
            logarithmic = self._logarithmic(torch.where(negative, alpha, -1.0), x)
            return torch.where(negative, logarithmic, soft_exp(torch.where(negative, 0.0, alpha), x))
        if case >= 0.0:
            return soft_exp(alpha, x)
        return self._logarithmic(alpha, x)

    def _logarithmic(self, alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The rectified logarithmic case (``alpha < 0``); finite for every ``alpha`` and ``x``."""
        argument = F.relu(1.0 - alpha * (x + alpha)) + self.epsilon
        return -torch.log(argument) / alpha


class BLU(nn.Module):
    """Bendable linear unit, https://ieeexplore.ieee.org/document/8913972.

    ``f(x) = beta * (sqrt(x**2 + alpha**2) - alpha) + x``: the identity plus a learnable amount
    ``beta`` of a smooth absolute value, so the unit can bend from linear towards ReLU-like or
    V-shaped responses. ``alpha`` sets the radius of the smooth corner.

    :param tune_alpha: whether ``alpha`` (initialised at 1) is trained.
    :param tune_beta: whether ``beta`` (initialised at 0, i.e. the identity) is trained.
    """

    def __init__(self, tune_alpha: bool = False, tune_beta: bool = True):
        super().__init__()
        self.alpha = _scalar_parameter(1.0, tune_alpha)
        self.beta = _scalar_parameter(0.0, tune_beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the bendable linear unit elementwise."""
        return self.beta * (torch.sqrt(x ** 2 + self.alpha ** 2) - self.alpha) + x


class SmoothedReLU(nn.Module):
    """ReLU with a quadratic region on ``[0, d]`` (rectified Huber unit), https://arxiv.org/abs/2001.06116.

    ``f(x) = 0`` for ``x <= 0``, ``x**2 / (2 d)`` on ``(0, d]`` and ``x - d / 2`` beyond, which is
    continuously differentiable; it is used to build smooth positive-definite Lyapunov functions.
    The width actually used is ``softplus(d)``, which keeps it positive while ``d`` is trained.

    :param d: raw width parameter (the width is ``softplus(d)``).
    :param tune_d: whether ``d`` is trained.
    """

    def __init__(self, d: float = 1.0, tune_d: bool = True):
        super().__init__()
        self.d = _scalar_parameter(d, tune_d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the smoothed ReLU elementwise."""
        width = F.softplus(self.d)
        positive = F.relu(x)
        quadratic = positive ** 2 / (2.0 * width)
        return torch.where(positive <= width, quadratic, positive - width / 2.0)


class APLU(nn.Module):
    """Adaptive piecewise linear unit, https://arxiv.org/abs/1412.6830.

    ``f(x) = relu(x) + sum_s alpha_s * relu(-x + beta_s)``: a ReLU plus ``nsegments`` learnable
    hinges (slopes ``alpha``, hinge locations ``beta``, both initialised uniformly on [0, 1)).

    :param nsegments: number of hinges; 0 leaves a plain ReLU (with a `LenientInputWarning`).
    :param alpha_reg_weight: weight of the L2 norm of ``alpha`` in :meth:`reg_error`.
    :param beta_reg_weight: weight of the L2 norm of ``beta`` in :meth:`reg_error`.
    :param tune_alpha: whether the slopes are trained.
    :param tune_beta: whether the hinge locations are trained.
    :raises ValueError: if ``nsegments`` is not a non-negative integer.
    """

    def __init__(self, nsegments: int = 2, alpha_reg_weight: float = 1e-3, beta_reg_weight: float = 1e-3,
                 tune_alpha: bool = True, tune_beta: bool = True):
        super().__init__()
        if int(nsegments) != nsegments or nsegments < 0:
            raise ValueError(f"APLU nsegments must be a positive integer, got {nsegments!r}")
        if nsegments == 0:
            warn_lenient_input("APLU(nsegments=0) has no hinges: it is a plain ReLU, as in upstream 1.5. Use "
                               "torch.nn.ReLU, or nsegments >= 1 for learnable hinges.")
        self.nsegments = int(nsegments)
        self.alpha_reg_weight = alpha_reg_weight
        self.beta_reg_weight = beta_reg_weight
        self.alpha = nn.Parameter(torch.rand(self.nsegments), requires_grad=tune_alpha)
        self.beta = nn.Parameter(torch.rand(self.nsegments), requires_grad=tune_beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the piecewise linear unit elementwise."""
        hinges = F.relu(-x.unsqueeze(-1) + self.beta) * self.alpha
        return F.relu(x) + hinges.sum(dim=-1)

    def reg_error(self) -> torch.Tensor:
        """Weighted L2 norms of the slopes and hinge locations (keeps the hinges small)."""
        return self.alpha_reg_weight * torch.norm(self.alpha) + self.beta_reg_weight * torch.norm(self.beta)


class PReLU(nn.Module):
    """Parametric ReLU, https://arxiv.org/abs/1502.01852, with learnable slopes on both sides.

    ``f(x) = alpha * min(x, 0) + beta * max(x, 0)``, starting from the paper's ``alpha = 0.25``
    (negative slope) and ``beta = 1`` (positive slope), so an untrained unit behaves like a leaky ReLU.

    :param tune_alpha: whether the negative-side slope is trained.
    :param tune_beta: whether the positive-side slope is trained.
    """

    def __init__(self, tune_alpha: bool = True, tune_beta: bool = True):
        super().__init__()
        self.alpha = _scalar_parameter(0.25, tune_alpha)
        self.beta = _scalar_parameter(1.0, tune_beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the parametric ReLU elementwise."""
        return self.beta * F.relu(x) - self.alpha * F.relu(-x)


class PELU(nn.Module):
    """Parametric exponential linear unit of Trottier et al., https://arxiv.org/abs/1605.09332.

    ``f(x) = (a / b) x`` for ``x >= 0`` and ``a (exp(x / b) - 1)`` for ``x < 0`` with ``a, b``
    kept positive (the parameters are used clipped at 0.1, the paper's lower bound), both starting at 1
    (an ELU), so the unit is monotone.

    :param tune_alpha: whether ``a`` is trained.
    :param tune_beta: whether ``b`` is trained.
    """

    min_value = 0.1

    def __init__(self, tune_alpha: bool = True, tune_beta: bool = True):
        super().__init__()
        self.alpha = _scalar_parameter(1.0, tune_alpha)
        self.beta = _scalar_parameter(1.0, tune_beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the parametric ELU elementwise."""
        a = torch.clamp(self.alpha, min=self.min_value)
        b = torch.clamp(self.beta, min=self.min_value)
        negative = a * torch.expm1(torch.clamp(x, max=0.0) / b)
        return torch.where(x >= 0, (a / b) * x, negative)


activations = {
    "softexp": SoftExponential,
    "blu": BLU,
    "aplu": APLU,
    "prelu": PReLU,
    "pelu": PELU,
    "smoothedrelu": SmoothedReLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "rrelu": nn.RReLU,
    "hardtanh": nn.Hardtanh,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
    "tanh": nn.Tanh,
    "hardswish": nn.Hardswish,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "selu": nn.SELU,
    "hardshrink": nn.Hardshrink,
    "leakyrelu": nn.LeakyReLU,
    "logsigmoid": nn.LogSigmoid,
    "softplus": nn.Softplus,
    "softshrink": nn.Softshrink,
    "softsign": nn.Softsign,
    "tanhshrink": nn.Tanhshrink,
}
"""Activation classes by the short names used in configuration code (``activations['relu']()``)."""
