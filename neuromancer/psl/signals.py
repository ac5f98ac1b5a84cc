"""Excitation signals for system identification and control: steps, sinusoids, random walks, noise.

Every generator returns a float64 numpy array of shape ``[nsim, d]`` and takes bounds ``min`` and
``max`` (scalars or length-``d`` arrays) plus a numpy ``Generator`` ``rng`` so that a seeded
generator reproduces the same signal. The emulators in :mod:`neuromancer.psl` draw their default
control inputs from these functions; the registry :data:`signals` maps a name to a generator so
that ``get_U(nsim, signal='walk')`` can pick one by name.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Union

import numpy as np

Bound = Union[float, np.ndarray]

_PERIODIC_FORMS = ("sin", "square", "sawtooth")


def _check_size(nsim: int, d: int) -> None:
    """Raise ValueError unless ``nsim`` and ``d`` are positive integers."""
    if int(nsim) != nsim or nsim < 1:
        raise ValueError(f"nsim={nsim!r} must be a positive integer number of time steps")
    if int(d) != d or d < 1:
        raise ValueError(f"d={d!r} must be a positive integer signal dimension")


def _bounds(min: Bound, max: Bound, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast the bounds to shape ``[d]`` and check that ``min <= max`` elementwise."""
    low = np.broadcast_to(np.asarray(min, dtype=np.float64), (d,))
    high = np.broadcast_to(np.asarray(max, dtype=np.float64), (d,))
    if np.any(low > high):
        raise ValueError(f"min={min!r} exceeds max={max!r}; pass bounds with min <= max")
    return low, high


def _rescale(signal: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map each column of ``signal`` affinely onto ``[low, high]`` (a constant column becomes ``low``)."""
    smin, smax = signal.min(axis=0), signal.max(axis=0)
    span = np.where(smax > smin, smax - smin, 1.0)
    unit = np.where(smax > smin, (signal - smin) / span, 0.0)
    return low + unit * (high - low)


def _gaussian_draws(nsim: int, d: int, min: Bound, max: Bound, sigma: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the arguments of a Gaussian signal and draw ``[nsim, d]`` samples of N(0, ``sigma``^2).

    :return: (samples, low, high) with the bounds broadcast to shape ``[d]``
    :raises ValueError: for non-positive sizes, negative ``sigma`` or ``min > max``
    """
    _check_size(nsim, d)
    if sigma < 0:
        raise ValueError(f"sigma={sigma!r} must be non-negative")
    low, high = _bounds(min, max, d)
    return rng.normal(0.0, sigma, size=(nsim, d)), low, high


def _place(signal: np.ndarray, low: np.ndarray, high: np.ndarray, bound: bool) -> np.ndarray:
    """Rescale ``signal`` onto ``[low, high]`` when ``bound``, else offset it by ``low``."""
    return _rescale(signal, low, high) if bound else low + signal


def _check_form(form: str) -> None:
    """Raise ValueError for a waveform name that is not supported."""
    if form not in _PERIODIC_FORMS:
        raise ValueError(f"form={form!r} is not a known waveform; use one of {_PERIODIC_FORMS}")


def _waveform(phase: np.ndarray, form: str) -> np.ndarray:
    """Evaluate a unit-period-``2*pi`` waveform (``sin``, ``square`` or ``sawtooth``) at ``phase``."""
    if form == "sin":
        return np.sin(phase)
    if form == "square":
        return (np.sin(phase) >= 0.0).astype(np.float64)
    return np.mod(phase / (2.0 * np.pi), 1.0)


def step(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, randsteps: int = 30,
         values: Optional[np.ndarray] = None, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Piecewise-constant signal that holds ``randsteps`` random levels for equal stretches of time.

    Step signals excite a system at a few operating points, which is what the process emulators
    (CSTR, TwoTank) use by default.

    :param nsim: (int) number of time steps
    :param d: (int) signal dimension
    :param min: (float or array [d]) lower bound of the levels, default 0.0
    :param max: (float or array [d]) upper bound of the levels, default 1.0
    :param randsteps: (int) number of constant segments, default 30 (segments have ``ceil(nsim/randsteps)`` steps)
    :param values: (array or None) if given, levels are drawn from these values instead of ``U[min, max]``
    :param rng: (np.random.Generator) source of randomness; pass a seeded generator to reproduce a signal
    :return: (np.ndarray) [nsim, d] signal
    :raises ValueError: for non-positive sizes, ``randsteps < 1``, ``min > max`` or empty ``values``
    """
    _check_size(nsim, d)
    if int(randsteps) != randsteps or randsteps < 1:
        raise ValueError(f"randsteps={randsteps!r} must be a positive integer number of segments")
    low, high = _bounds(min, max, d)
    if values is None:
        levels = rng.uniform(low, high, size=(randsteps, d))
    else:
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError("values is empty; pass at least one level or values=None")
        levels = rng.choice(values, size=(randsteps, d))
    length = int(np.ceil(nsim / randsteps))
    return np.repeat(levels, length, axis=0)[:nsim]


def periodic(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, periods: int = 30, form: str = "sin",
             phase_offset: bool = False, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Periodic signal with ``periods`` full periods over the horizon, rescaled to ``[min, max]``.

    :param nsim: (int) number of time steps
    :param d: (int) signal dimension
    :param min: (float or array [d]) lower bound, default 0.0
    :param max: (float or array [d]) upper bound, default 1.0
    :param periods: (int) number of periods over ``nsim`` steps, default 30
    :param form: (str) waveform, one of ``'sin'``, ``'square'``, ``'sawtooth'``; default ``'sin'``
    :param phase_offset: (bool) give every dimension its own random phase, default False
    :param rng: (np.random.Generator) source of randomness for the phases
    :return: (np.ndarray) [nsim, d] signal spanning ``[min, max]`` in every dimension
    :raises ValueError: for non-positive sizes, ``min > max`` or an unknown ``form``
    """
    _check_size(nsim, d)
    _check_form(form)
    low, high = _bounds(min, max, d)
    time = np.linspace(0.0, 2.0 * np.pi * periods, nsim)[:, None]
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(1, d)) if phase_offset else np.zeros((1, d))
    return _rescale(_waveform(time + phase, form), low, high)


def sines(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, periods: int = 30, nwaves: int = 20,
          form: str = "sin", rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Sum of ``nwaves`` periodic waves with random frequencies (up to ``periods``) and phases.

    A multi-sine excites many frequencies at once, a standard choice for identifying dynamics.

    :param nsim: (int) number of time steps
    :param d: (int) signal dimension
    :param min: (float or array [d]) lower bound, default 0.0
    :param max: (float or array [d]) upper bound, default 1.0
    :param periods: (int) largest number of periods of a component wave over the horizon, default 30
    :param nwaves: (int) number of component waves per dimension, default 20
    :param form: (str) waveform of the components: ``'sin'``, ``'square'`` or ``'sawtooth'``
    :param rng: (np.random.Generator) source of randomness for frequencies and phases
    :return: (np.ndarray) [nsim, d] signal spanning ``[min, max]`` in every dimension
    :raises ValueError: for non-positive sizes, ``nwaves < 1``, ``min > max`` or an unknown ``form``
    """
    _check_size(nsim, d)
    _check_form(form)
    if int(nwaves) != nwaves or nwaves < 1:
        raise ValueError(f"nwaves={nwaves!r} must be a positive integer number of component waves")
    low, high = _bounds(min, max, d)
    time = np.linspace(0.0, 2.0 * np.pi, nsim)[:, None, None]
    frequencies = rng.uniform(1.0, np.maximum(periods, 1.0), size=(1, nwaves, d))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(1, nwaves, d))
    total = _waveform(time * frequencies + phases, form).sum(axis=1)
    return _rescale(total, low, high)


def walk(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, sigma: float = 0.05, bound: bool = True,
         rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Gaussian random walk with step standard deviation ``sigma``.

    :param nsim: (int) number of time steps
    :param d: (int) signal dimension
    :param min: (float or array [d]) lower bound (and starting value when ``bound=False``), default 0.0
    :param max: (float or array [d]) upper bound, default 1.0
    :param sigma: (float) standard deviation of each step, default 0.05
    :param bound: (bool) rescale the walk to span exactly ``[min, max]``, default True; when False the
        walk starts at ``min`` and is left unbounded
    :param rng: (np.random.Generator) source of randomness
    :return: (np.ndarray) [nsim, d] signal
    :raises ValueError: for non-positive sizes, negative ``sigma`` or ``min > max``
    """
    steps, low, high = _gaussian_draws(nsim, d, min, max, sigma, rng)
    steps[0] = 0.0
    return _place(np.cumsum(steps, axis=0), low, high, bound)


def noise(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, sigma: float = 0.05, bound: bool = True,
          rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """White Gaussian noise with standard deviation ``sigma``.

    :param nsim: (int) number of time steps
    :param d: (int) signal dimension
    :param min: (float or array [d]) lower bound (and offset when ``bound=False``), default 0.0
    :param max: (float or array [d]) upper bound, default 1.0
    :param sigma: (float) standard deviation, default 0.05
    :param bound: (bool) rescale the samples to span exactly ``[min, max]``, default True; when False
        the noise is centred on ``min`` and left unbounded
    :param rng: (np.random.Generator) source of randomness
    :return: (np.ndarray) [nsim, d] signal
    :raises ValueError: for non-positive sizes, negative ``sigma`` or ``min > max``
    """
    samples, low, high = _gaussian_draws(nsim, d, min, max, sigma, rng)
    return _place(samples, low, high, bound)


signals: dict[str, Callable[..., np.ndarray]] = {
    "sin": functools.partial(periodic, form="sin"),
    "square": functools.partial(periodic, form="square"),
    "sawtooth": functools.partial(periodic, form="sawtooth"),
    "sines": sines,
    "step": step,
    "walk": walk,
    "noise": noise,
}
