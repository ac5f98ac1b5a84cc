"""Linear interpolation of sampled signals (inputs, disturbances) at arbitrary query times.

`LinInterp_Offline` holds one uniformly sampled signal ``u(t)`` and evaluates it at query times,
extrapolating linearly from the first or last two samples outside the sampled range.
`LinInterp_Online` interpolates per batch element between two given samples, for signals that
arrive with the data. Both are called as ``interp(tq, t, u)``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from neuromancer.exceptions import warn_lenient_input


class Interpolation(ABC):
    """Base class: ``interp(tq, t=None, u=None)`` returns the signal at the query times ``tq``."""

    def __init__(self) -> None:
        super().__init__()

    @abstractmethod
    def interpolation(self, tq: torch.Tensor, t: torch.Tensor | None, u: torch.Tensor | None) -> torch.Tensor:
        """Return the signal ``u`` sampled at times ``t`` evaluated at the query times ``tq``."""

    def __call__(self, tq: torch.Tensor, t: torch.Tensor | None = None,
                 u: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`interpolation`."""
        return self.interpolation(tq, t, u)


class LinInterp_Offline(Interpolation):
    """Linear interpolation of one uniformly sampled signal.

    :param t: [T, 1] ascending sample times with a fixed spacing; strictly descending times are
        taken in ascending order, samples with them (with a `LenientInputWarning`), as upstream 1.5
        interpolates them
    :param u: [T, nu] samples, ``u[k]`` taken at ``t[k]``
    :raises ValueError: if ``t`` or ``u`` is not 2-D, their lengths differ, fewer than two samples
        are given, or ``t`` is not strictly monotonic
    """

    def __init__(self, t: torch.Tensor, u: torch.Tensor) -> None:
        super().__init__()
        if t.dim() != 2 or u.dim() != 2:
            raise ValueError(f"t and u must be 2-D ([T, 1] and [T, nu]), got shapes {tuple(t.shape)} and "
                             f"{tuple(u.shape)}")
        if t.shape[0] != u.shape[0] or t.shape[0] < 2:
            raise ValueError(f"need as many times as samples, at least two; got {t.shape[0]} times and "
                             f"{u.shape[0]} samples")
        steps = torch.diff(t[:, 0].to(torch.float64))
        if bool((steps < 0).all()):
            warn_lenient_input("LinInterp_Offline: t is descending; the samples are used in ascending time order, "
                               "as upstream 1.5 interpolates them. Pass ascending t (t.flip(0), u.flip(0)).")
            t, u, steps = t.flip(0), u.flip(0), -steps.flip(0)
        if not bool((steps > 0).all()):
            raise ValueError("t must be strictly ascending")
        self.t, self.u = t, u
        self.dt = steps.mean()

    def interpolation(self, tq: torch.Tensor, t: torch.Tensor | None = None,
                      u: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate the stored signal at ``tq``.

        :param tq: query times, any shape (flattened), in the units of ``t``
        :param t: ignored (the stored times are used)
        :param u: ignored (the stored samples are used)
        :return: [number of query times, nu], float32
        """
        position = ((tq.flatten().to(torch.float64) - self.t[0, 0].to(torch.float64)) / self.dt)
        lower = torch.floor(position).long().clamp(0, self.u.shape[0] - 2)
        fraction = (position - lower).unsqueeze(-1)
        start, end = self.u[lower].to(torch.float64), self.u[lower + 1].to(torch.float64)
        return (start + fraction * (end - start)).float()


class LinInterp_Online(Interpolation):
    """Per-sample linear interpolation between two known points of each batch element.

    Called as ``interp(tq, t, u)`` with ``t`` and ``tq`` ``[batch, 2, 1]`` and ``u`` ``[batch, 2, nu]``:
    the result is ``u0 + (tq0 - t0) / (t1 - t0) * (u1 - u0)`` with index 0/1 the two samples along
    dim 1 (only the first query time, ``tq[:, 0]``, is used).
    """

    def interpolation(self, tq: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Interpolate each batch element between its two samples.

        :return: [batch, nu]
        :raises ValueError: if ``t`` or ``u`` is missing
        """
        if t is None or u is None:
            raise ValueError("LinInterp_Online needs the sample times t and values u: call interp(tq, t, u)")
        query = tq[:, 0, :]
        weight = (query - t[:, 0, :]) / (t[:, 1, :] - t[:, 0, :])
        return u[:, 0, :] + weight * (u[:, 1, :] - u[:, 0, :])
