"""Plots of emulator data with the argument order of ``neuromancer.psl.plot`` in NeuroMANCER 1.5.

Thin wrappers over :mod:`neuromancer.plot` (matplotlib is imported only when plotting); every
function returns the matplotlib ``Figure`` and writes it to ``figname`` when given.
"""
from __future__ import annotations

from typing import Any

from neuromancer import plot as _plot


def pltOL(Y: Any, Ytrain: Any = None, U: Any = None, D: Any = None, X: Any = None,
          figname: str | None = None) -> Any:
    """Plot an open-loop simulation; see :func:`neuromancer.plot.pltOL` (same arguments)."""
    return _plot.pltOL(Y, Ytrain=Ytrain, U=U, D=D, X=X, figname=figname)


def pltPhase(X: Any, Xtrain: Any = None, figname: str | None = None) -> Any:
    """Plot a phase portrait of ``X`` with the optional reference trajectory ``Xtrain`` dashed.

    :raises ValueError: if ``X`` has fewer than two columns
    """
    return _plot.draw_phase(X, figname, reference=Xtrain)


def pltCL(Y: Any, U: Any = None, D: Any = None, X: Any = None, R: Any = None, Ymin: Any = None,
          Ymax: Any = None, Umin: Any = None, Umax: Any = None, figname: str | None = None) -> Any:
    """Plot a closed-loop simulation; see :func:`neuromancer.plot.pltCL` (psl argument order)."""
    return _plot.pltCL(Y, R=R, U=U, D=D, X=X, Ymin=Ymin, Ymax=Ymax, Umin=Umin, Umax=Umax, figname=figname)
