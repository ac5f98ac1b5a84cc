"""Plots of trajectories: open-loop responses, closed-loop control results and phase portraits.

matplotlib is imported inside the functions. With ``figname`` the figure is built without pyplot
(so it renders headless, no backend is touched) and written to that file; without it the figure is
created through pyplot so notebooks display it. Every function returns the matplotlib ``Figure``.
Inputs may be numpy arrays or torch tensors of shape ``[T]``, ``[T, n]`` or ``[..., T, n]`` (leading
dimensions are flattened into time).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _as_matrix(values: Any) -> np.ndarray | None:
    """Convert an array or tensor to a float ``[T, n]`` numpy matrix (None passes through)."""
    if values is None:
        return None
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError("cannot plot a scalar; pass an array of shape [T] or [T, n]")
    return values.reshape(-1, 1) if values.ndim == 1 else values.reshape(-1, values.shape[-1])


def new_figure(nrows: int, figname: str | None, projection: str | None = None) -> tuple[Any, list]:
    """Create a figure with ``nrows`` stacked axes; pyplot-free when it will be saved to ``figname``."""
    if figname is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(10, 3 * nrows))
    else:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(10, 3 * nrows))
    axes = [figure.add_subplot(nrows, 1, i + 1, projection=projection) for i in range(nrows)]
    return figure, axes


def finish_figure(figure: Any, figname: str | None) -> Any:
    """Tighten the layout and save to ``figname`` when given; return the figure."""
    figure.tight_layout()
    if figname is not None:
        figure.savefig(figname)
    return figure


def _draw_panel(axis: Any, title: str, curves: Sequence[tuple[np.ndarray, dict]],
                bounds: Sequence[np.ndarray | None] = ()) -> None:
    """Draw labelled curves (each ``(matrix, line style)``) and optional bound lines on one axis."""
    for matrix, style in curves:
        for column in range(matrix.shape[1]):
            axis.plot(matrix[:, column], **style)
    for bound in bounds:
        if bound is not None:
            for column in range(bound.shape[1]):
                axis.plot(bound[:, column], "k--", linewidth=1.0)
    axis.set_title(title)
    axis.set_xlabel("time step")
    axis.grid(True, alpha=0.3)


def _bound_matrix(bound: Any, length: int) -> np.ndarray | None:
    """Broadcast a scalar, vector ``[n]`` or trajectory ``[T, n]`` bound to a ``[length, n]`` matrix."""
    if bound is None:
        return None
    matrix = np.asarray(bound.detach().cpu().numpy() if hasattr(bound, "detach") else bound, dtype=np.float64)
    if matrix.ndim <= 1:
        return np.tile(matrix.reshape(1, -1), (length, 1))
    return _as_matrix(matrix)


def pltOL(Y: ArrayLike, Ytrain: ArrayLike | None = None, U: ArrayLike | None = None, D: ArrayLike | None = None,
          X: ArrayLike | None = None, figname: str | None = None) -> Any:
    """Plot an open-loop simulation: outputs (with training targets dashed), states, inputs, disturbances.

    :param Y: [T, ny] outputs
    :param Ytrain: [T, ny] reference outputs, e.g. the data a model was fitted to
    :param U: [T, nu] inputs
    :param D: [T, nd] disturbances
    :param X: [T, nx] states
    :param figname: file to write the figure to
    :return: the matplotlib Figure
    :raises ValueError: for scalar data
    """
    panels = [("Outputs", [(_as_matrix(Y), {"linewidth": 2.0})]
               + ([(_as_matrix(Ytrain), {"linestyle": "--", "linewidth": 1.5})] if Ytrain is not None else []))]
    panels += [(title, [(_as_matrix(data), {"linewidth": 1.5})])
               for title, data in (("States", X), ("Inputs", U), ("Disturbances", D)) if data is not None]
    figure, axes = new_figure(len(panels), figname)
    for axis, (title, curves) in zip(axes, panels, strict=True):
        _draw_panel(axis, title, curves)
    return finish_figure(figure, figname)


def pltCL(Y: ArrayLike, R: ArrayLike | None = None, U: ArrayLike | None = None, D: ArrayLike | None = None,
          X: ArrayLike | None = None, ctrl_outputs: Sequence[int] | None = None, Ymin: ArrayLike | None = None,
          Ymax: ArrayLike | None = None, Umin: ArrayLike | None = None, Umax: ArrayLike | None = None,
          figname: str | None = None) -> Any:
    """Plot a closed-loop simulation: outputs against references and bounds, states, inputs with bounds.

    :param Y: [T, ny] outputs
    :param R: [T, nr] references, dashed
    :param U: [T, nu] inputs
    :param D: [T, nd] disturbances
    :param X: [T, nx] states
    :param ctrl_outputs: columns of ``Y`` that track ``R`` (default: all); only they are drawn
    :param Ymin: lower output bound (a scalar, ``[ny]`` or ``[T, ny]``), black dashed
    :param Ymax: upper output bound, shaped as ``Ymin``
    :param Umin: lower input bound (a scalar, ``[nu]`` or ``[T, nu]``)
    :param Umax: upper input bound, shaped as ``Umin``
    :param figname: file to write the figure to
    :return: the matplotlib Figure
    :raises ValueError: for scalar data or ``ctrl_outputs`` outside the columns of ``Y``
    """
    outputs = _as_matrix(Y)
    if ctrl_outputs is not None:
        if any(not 0 <= int(i) < outputs.shape[1] for i in ctrl_outputs):
            raise ValueError(f"ctrl_outputs={list(ctrl_outputs)} must index the {outputs.shape[1]} columns of Y")
        outputs = outputs[:, list(ctrl_outputs)]
    length = outputs.shape[0]
    curves = [(outputs, {"linewidth": 2.0})]
    if R is not None:
        curves.append((_as_matrix(R), {"linestyle": "--", "linewidth": 1.5}))
    panels = [("Outputs", curves, (_bound_matrix(Ymin, length), _bound_matrix(Ymax, length)))]
    if X is not None:
        panels.append(("States", [(_as_matrix(X), {"linewidth": 1.5})], ()))
    if U is not None:
        inputs = _as_matrix(U)
        bounds = (_bound_matrix(Umin, inputs.shape[0]), _bound_matrix(Umax, inputs.shape[0]))
        panels.append(("Inputs", [(inputs, {"linewidth": 1.5})], bounds))
    if D is not None:
        panels.append(("Disturbances", [(_as_matrix(D), {"linewidth": 1.5})], ()))
    figure, axes = new_figure(len(panels), figname)
    for axis, (title, panel_curves, bounds) in zip(axes, panels, strict=True):
        _draw_panel(axis, title, panel_curves, bounds)
    return finish_figure(figure, figname)


def draw_phase(X: Any, figname: str | None, reference: Any = None) -> Any:
    """Phase portrait of the first two (or three, in 3-D) state columns, with an optional dashed reference.

    :raises ValueError: if ``X`` has fewer than two columns
    """
    states = _as_matrix(X)
    if states.shape[1] < 2:
        raise ValueError(f"a phase portrait needs at least 2 state columns, X has {states.shape[1]}")
    dims = 3 if states.shape[1] >= 3 else 2
    figure, (axis,) = new_figure(1, figname, projection="3d" if dims == 3 else None)
    trajectories = [(states, "-")] + ([(_as_matrix(reference), "--")] if reference is not None else [])
    for matrix, style in trajectories:
        axis.plot(*(matrix[:, i] for i in range(dims)), style)
    axis.set_xlabel("$x_1$")
    axis.set_ylabel("$x_2$")
    if dims == 3:
        axis.set_zlabel("$x_3$")
    axis.set_title("Phase portrait")
    return finish_figure(figure, figname)


def pltPhase(X: ArrayLike, figname: str | None = None) -> Any:
    """Plot the phase portrait of a trajectory (2-D, or 3-D for three or more states).

    :param X: [T, nx] states, nx >= 2
    :param figname: file to write the figure to
    :return: the matplotlib Figure
    :raises ValueError: if ``X`` has fewer than two columns
    """
    return draw_phase(X, figname)
