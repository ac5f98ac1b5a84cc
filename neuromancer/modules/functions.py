"""Differentiable elementwise helpers used by blocks and constraints.

``bounds_clamp`` and ``bounds_scaling`` keep a network's output inside box bounds (the first by
clipping, the second by a smooth sigmoid squashing); ``window_functions`` builds the smooth
partition of unity that lets a :class:`~neuromancer.modules.blocks.KANBlock` split its input
domain into overlapping subdomains. ``functions`` maps each helper's name to the helper.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Bound = float | torch.Tensor

__all__ = ["bounds_clamp", "bounds_scaling", "window_functions", "functions"]


def bounds_clamp(x: torch.Tensor, xmin: Bound | None = None, xmax: Bound | None = None) -> torch.Tensor:
    """Clip ``x`` elementwise into ``[xmin, xmax]``.

    Written with ReLUs rather than ``torch.clamp`` so that the bounds may be floats or tensors that
    broadcast against ``x`` (a per-feature bound, or a bound that varies along the batch).

    :param x: values to clip.
    :param xmin: lower bound; ``None`` leaves ``x`` unbounded below.
    :param xmax: upper bound; ``None`` leaves ``x`` unbounded above.
    :return: the clipped values, same shape as ``x`` (after broadcasting with the bounds).
    """
    if xmin is not None:
        x = x + F.relu(xmin - x)
    if xmax is not None:
        x = x - F.relu(x - xmax)
    return x


def bounds_scaling(x: torch.Tensor, xmin: Bound, xmax: Bound, scaling: float = 1.0) -> torch.Tensor:
    """Squash ``x`` smoothly into the open interval ``(xmin, xmax)``.

    Computes ``xmin + (xmax - xmin) * sigmoid(scaling * x)``: ``x = 0`` maps to the midpoint and
    ``scaling`` sets how steeply values approach the bounds. Unlike clipping, the gradient never vanishes.

    :param x: values to squash.
    :param xmin: lower bound, broadcastable against ``x``.
    :param xmax: upper bound, broadcastable against ``x``.
    :param scaling: slope of the sigmoid at the midpoint.
    :return: values strictly between the bounds.
    """
    return xmin + (xmax - xmin) * torch.sigmoid(scaling * x)


def _subdomains_per_dimension(num_domains: int, ndim: int) -> int:
    """Number of subdomains along each input dimension so that their product is ``num_domains``."""
    per_dim = round(num_domains ** (1.0 / ndim))
    if isinstance(num_domains, bool) or num_domains < 1 or per_dim ** ndim != num_domains:
        raise ValueError(f"num_domains={num_domains!r} must be a positive integer power {ndim} "
                         f"(one equal split per each of the {ndim} input dimensions), e.g. {2 ** ndim}")
    return per_dim


def window_functions(x: torch.Tensor, num_domains: int, delta: float = 1.9, lower: Bound | None = None,
                     upper: Bound | None = None) -> torch.Tensor:
    """Smooth partition of unity over ``num_domains`` overlapping subdomains (finite-basis domain decomposition).

    The box ``[lower, upper]`` is split into ``m`` subdomains per input dimension
    (``m ** ndim = num_domains``) with centres evenly spaced from ``lower`` to ``upper``. Each
    subdomain has a compactly supported window ``prod_d cos^2(pi/2 * |x_d - c_d| / r)`` of radius
    ``r = delta * spacing / 2`` (zero beyond ``r``), and the windows are normalised to sum to 1 at
    every point. ``delta`` is the overlap ratio: it must exceed 1 so that neighbouring windows overlap
    and cover the whole box. By default the box is the batch's minimum and maximum, which makes a
    sample's weights depend on the rest of its batch; pass fixed ``lower`` and ``upper`` to avoid that.

    :param x: ``[batch, ndim]`` points.
    :param num_domains: total number of subdomains, a perfect ``ndim``-th power.
    :param delta: overlap ratio, > 1.
    :param lower: lower corner of the box; batch minimum if None.
    :param upper: upper corner of the box; batch maximum if None.
    :return: ``[batch, num_domains]`` non-negative weights summing to 1 per row.
    :raises ValueError: if ``delta <= 1`` or ``num_domains`` is not a perfect power of the dimension.
    """
    if delta <= 1.0:
        raise ValueError(f"delta must exceed 1 so that the windows overlap and cover the domain, got {delta!r}")
    ndim = x.shape[-1]
    per_dim = _subdomains_per_dimension(num_domains, ndim)
    if per_dim == 1:
        return torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    lower = x.detach().amin(dim=0) if lower is None else torch.as_tensor(lower, dtype=x.dtype, device=x.device)
    upper = x.detach().amax(dim=0) if upper is None else torch.as_tensor(upper, dtype=x.dtype, device=x.device)
    spacing = (upper - lower) / (per_dim - 1)
    steps = torch.arange(per_dim, dtype=x.dtype, device=x.device)
    centres = lower.unsqueeze(-1) + spacing.unsqueeze(-1) * steps if lower.dim() else lower + spacing * steps
    centres = centres.expand(ndim, per_dim)
    radius = (delta * spacing / 2.0).clamp_min(torch.finfo(x.dtype).tiny).reshape(-1, 1).expand(ndim, 1)
    distance = (x.unsqueeze(-1) - centres).abs() / radius
    per_dim_windows = torch.cos(math.pi / 2.0 * distance.clamp(max=1.0)) ** 2
    windows = per_dim_windows[..., 0, :]
    for d in range(1, ndim):
        windows = (windows.unsqueeze(-1) * per_dim_windows[..., d, :].unsqueeze(-2)).flatten(-2)
    return windows / (windows.sum(dim=-1, keepdim=True) + torch.finfo(x.dtype).eps)


functions: dict[str, Callable] = {
    "bounds_scaling": bounds_scaling,
    "bounds_clamp": bounds_clamp,
    "window_functions": window_functions,
}
"""The helpers of this module by name."""
