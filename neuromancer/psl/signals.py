"""Excitation signals for system identification and control: steps, sinusoids, splines, ARMA and
binary sequences, random walks, noise.

Every generator returns a numpy array of shape ``[nsim, d]`` (float64, or ``dtype`` for the
bounded walks) and takes bounds ``min`` and ``max`` plus a numpy ``Generator`` ``rng`` so that a
seeded generator reproduces the same signal. Every bound (``min``, ``max``, and ``max_step`` and ``x0``
of the walks) is a scalar shared by all dimensions or a length-``d`` array. The emulators in
:mod:`neuromancer.psl` draw their default control inputs from these functions; the registry
``signals`` maps a name to a generator so that ``get_U(nsim, signal='walk')`` can pick one by name.
"""
from __future__ import annotations

import builtins
import functools
from collections.abc import Callable

import numpy as np

from neuromancer.exceptions import warn_lenient_input

Bound = float | np.ndarray

_PERIODIC_FORMS = ("sin", "square", "sawtooth")


def _check_size(nsim: int, d: int, min_nsim: int = 1) -> None:
    """Raise ValueError unless ``nsim >= min_nsim`` and ``d >= 0`` are integers.

    ``d=0`` (and ``nsim=0`` where ``min_nsim`` is 0) give an empty signal, as upstream 1.5's do,
    with a `LenientInputWarning`.
    """
    if int(nsim) != nsim or nsim < min_nsim:
        raise ValueError(f"nsim={nsim!r} must be a positive integer number of time steps")
    if int(d) != d or d < 0:
        raise ValueError(f"d={d!r} must be a positive integer signal dimension")
    if nsim == 0 or d == 0:
        warn_lenient_input(f"A signal of nsim={nsim} steps and d={d} dimensions is an empty [{nsim}, {d}] array, "
                           f"as in upstream 1.5; check the sizes you passed.")


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
         values: np.ndarray | None = None, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Piecewise-constant signal that holds ``randsteps`` random levels for equal stretches of time.

    Step signals excite a system at a few operating points, which is what the process emulators
    (CSTR, TwoTank) use by default.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound of the levels, default 0.0
    :param max: upper bound of the levels, default 1.0
    :param randsteps: number of constant segments, default 30 (segments have ``ceil(nsim/randsteps)`` steps)
    :param values: if given, levels are drawn from these values instead of ``U[min, max]``
    :param rng: source of randomness; pass a seeded generator to reproduce a signal
    :return: [nsim, d] signal
    :raises ValueError: for negative sizes, ``randsteps < 1``, ``min > max`` or empty ``values``
    """
    _check_size(nsim, d, min_nsim=0)
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

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param periods: number of periods over ``nsim`` steps, default 30
    :param form: waveform, one of ``'sin'``, ``'square'``, ``'sawtooth'``; default ``'sin'``
    :param phase_offset: give every dimension its own random phase, default False
    :param rng: source of randomness for the phases
    :return: [nsim, d] signal spanning ``[min, max]`` in every dimension
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

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param periods: largest number of periods of a component wave over the horizon, default 30
    :param nwaves: number of component waves per dimension, default 20
    :param form: waveform of the components: ``'sin'``, ``'square'`` or ``'sawtooth'``
    :param rng: source of randomness for frequencies and phases
    :return: [nsim, d] signal spanning ``[min, max]`` in every dimension
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

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound (and starting value when ``bound=False``), default 0.0
    :param max: upper bound, default 1.0
    :param sigma: standard deviation of each step, default 0.05
    :param bound: rescale the walk to span exactly ``[min, max]``, default True; when False the
        walk starts at ``min`` and is left unbounded
    :param rng: source of randomness
    :return: [nsim, d] signal
    :raises ValueError: for non-positive sizes, negative ``sigma`` or ``min > max``
    """
    steps, low, high = _gaussian_draws(nsim, d, min, max, sigma, rng)
    steps[0] = 0.0
    return _place(np.cumsum(steps, axis=0), low, high, bound)


def noise(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, sigma: float = 0.05, bound: bool = True,
          rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """White Gaussian noise with standard deviation ``sigma``.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound (and offset when ``bound=False``), default 0.0
    :param max: upper bound, default 1.0
    :param sigma: standard deviation, default 0.05
    :param bound: rescale the samples to span exactly ``[min, max]``, default True; when False
        the noise is centred on ``min`` and left unbounded
    :param rng: source of randomness
    :return: [nsim, d] signal
    :raises ValueError: for non-positive sizes, negative ``sigma`` or ``min > max``
    """
    samples, low, high = _gaussian_draws(nsim, d, min, max, sigma, rng)
    return _place(samples, low, high, bound)


def np_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """Softmax of ``x`` along axis ``dim`` (numerically stable): non-negative weights that sum to one.

    :param x: scores
    :param dim: axis to normalize over
    :return: weights with the shape of ``x``
    """
    x = np.asarray(x, dtype=np.float64)
    exp = np.exp(x - x.max(axis=dim, keepdims=True))
    return exp / exp.sum(axis=dim, keepdims=True)


def _check_probability(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` lies in ``[0, 1]``."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must be a probability in [0, 1]")


def _check_positive(**values: float) -> None:
    """Raise ValueError for any named value that is not strictly positive."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name}={value!r} must be positive")


def spline(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, values: np.ndarray | None = None,
           n_interpolants: int = 30, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Smooth signal: a cubic spline through knots spread evenly over the horizon, clipped to ``[min, max]``.

    Knot values are drawn from the triangular distribution on ``[min, max]`` with its mode in the
    middle, so the signal wanders smoothly and seldom rests on the bounds. Uses scipy (imported here).

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param values: knot values ``[n, d]`` (or ``[n]`` when ``d == 1``), at least two; default random
    :param n_interpolants: number of random knots when ``values`` is None, default 30
    :param rng: source of randomness
    :return: [nsim, d] signal within ``[min, max]``
    :raises ValueError: for non-positive sizes, ``min > max``, fewer than two knots or knots of the wrong width
    """
    from scipy.interpolate import CubicSpline

    _check_size(nsim, d)
    low, high = _bounds(min, max, d)
    if values is None:
        if int(n_interpolants) != n_interpolants or n_interpolants < 2:
            raise ValueError(f"n_interpolants={n_interpolants!r} must be an integer of at least 2 knots")
        knots = rng.triangular(low, (low + high) / 2.0, high, size=(int(n_interpolants), d))
    else:
        knots = np.asarray(values, dtype=np.float64)
        knots = knots.reshape(-1, 1) if knots.ndim == 1 else knots
        if knots.ndim != 2 or knots.shape[1] != d or len(knots) < 2:
            raise ValueError(f"values has shape {np.shape(values)}; pass at least two knots of shape [n, {d}]")
    curve = CubicSpline(np.linspace(0.0, nsim, len(knots)), knots, axis=0)
    return np.clip(curve(np.linspace(0.0, nsim, nsim)), low, high)


def arma(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, q: int = 10, p: int = 10, bound: bool = True,
         rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Random autoregressive moving-average signal: an AR(``p``) recursion plus an MA(``q``) filter of white noise.

    Both weight vectors are softmaxes of uniform draws (positive, summing to one), so the AR part
    is a stable running average started on ``p`` noise samples and the MA part is smoothed noise.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param q: moving-average order, default 10; 0 leaves the AR part alone
    :param p: autoregressive order, default 10; 0 leaves the MA part alone
    :param bound: rescale each dimension to span exactly ``[min, max]``, default True
    :param rng: source of randomness
    :return: [nsim, d] signal
    :raises ValueError: for non-positive sizes, negative orders, ``p = q = 0`` (no signal), or
        ``min > max``
    """
    _check_size(nsim, d)
    for name, order in (("q", q), ("p", p)):
        if int(order) != order or order < 0:
            raise ValueError(f"{name}={order!r} must be a non-negative integer order")
    if p == 0 and q == 0:
        raise ValueError("p=0 and q=0 leave no signal (upstream 1.5 returns NaN); give p >= 1 or q >= 1")
    low, high = _bounds(min, max, d)
    noise_samples = rng.normal(size=(nsim + builtins.max(p, q), d))
    moving_average = np.zeros((nsim, d))
    if q:
        ma_weights = np_softmax(rng.uniform(size=q), dim=0)
        windows = np.lib.stride_tricks.sliding_window_view(noise_samples[:nsim + q - 1], q, axis=0)
        moving_average = windows @ ma_weights
    history = np.zeros((nsim + p, d))
    if p:
        ar_weights = np_softmax(rng.uniform(size=p), dim=0)
        history[:p] = noise_samples[:p]
        for i in range(nsim):
            history[i + p] = ar_weights @ history[i:i + p]
    signal = history[p:] + moving_average
    return _rescale(signal, low, high) if bound else signal


def prbs(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, p: float = 0.9,
         rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Pseudo-random binary signal: starts at ``min`` and, at each step, each dimension switches to
    the other level with probability ``1 - p``.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: low level, default 0.0
    :param max: high level, default 1.0
    :param p: probability of holding the current level at a step, default 0.9
    :param rng: source of randomness
    :return: [nsim, d] signal taking only the values ``min`` and ``max``
    :raises ValueError: for non-positive sizes, ``min > max`` or ``p`` outside ``[0, 1]``
    """
    _check_size(nsim, d, min_nsim=0)
    _check_probability("p", p)
    low, high = _bounds(min, max, d)
    switches = rng.uniform(size=(builtins.max(nsim - 1, 0), d)) > p
    level = np.concatenate([np.zeros((1, d), dtype=np.int64), np.cumsum(switches, axis=0)]) % 2
    return np.where(level == 1, high, low)[:nsim]


def beta(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, alpha: float = 2, beta: float = 2,
         rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Independent samples of a Beta(``alpha``, ``beta``) distribution scaled to ``[min, max]``.

    With the default ``alpha = beta = 2`` the density is a frown centred in the range.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param alpha: first shape parameter, default 2
    :param beta: second shape parameter, default 2
    :param rng: source of randomness
    :return: [nsim, d] samples within ``[min, max]``
    :raises ValueError: for non-positive sizes or shapes, or ``min > max``
    """
    _check_size(nsim, d, min_nsim=0)
    _check_positive(alpha=alpha, beta=beta)
    low, high = _bounds(min, max, d)
    return low + (high - low) * rng.beta(alpha, beta, size=(nsim, d))


def _walk_setup(nsim: int, d: int, min: Bound, max: Bound, max_step: Bound | None, x0: Bound | None,
                dtype: np.dtype, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Check the common arguments of the bounded walks; return ``(low, high, max_step, x0)`` as ``dtype`` arrays [d].

    ``x0`` defaults to a uniform draw in ``[min, max]``; ``max_step`` stays None when not given.

    :raises ValueError: for non-positive sizes, ``min > max``, a negative ``max_step`` or ``x0`` out of bounds;
        a ``max_step`` of 0 keeps its dimension constant, with a `LenientInputWarning`
    """
    _check_size(nsim, d)
    low, high = (bound.astype(dtype) for bound in _bounds(min, max, d))
    if max_step is not None:
        max_step = np.broadcast_to(np.asarray(max_step, dtype=dtype), (d,))
        if np.any(max_step < 0):
            raise ValueError(f"max_step={max_step!r} must be positive")
        if np.any(max_step == 0):
            warn_lenient_input("max_step=0: the walk never moves in those dimensions, a constant signal, as in "
                               "upstream 1.5. Give a positive max_step.")
    start = rng.uniform(low, high) if x0 is None else np.broadcast_to(np.asarray(x0, dtype=np.float64), (d,))
    if np.any(start < low) or np.any(start > high):
        raise ValueError(f"x0={x0!r} lies outside [min, max]; pass a starting value within the bounds")
    return low, high, max_step, start.astype(dtype)


def _beta_shapes(mean: float, concentration: float) -> tuple[float, float]:
    """Beta shapes with the given mean: the shape on the side of the nearer bound is ``concentration``."""
    if mean < 0.5:
        return concentration, concentration * (1.0 - mean) / mean
    return concentration * mean / (1.0 - mean), concentration


def beta_walk_mean(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, max_step: Bound | None = None,
                   x0: Bound | None = None, dtype: np.dtype = np.float32, ab: float = 8, p: float = 0.5,
                   q: float = 0.5, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Bounded random walk whose moves are Beta draws centred on the current value.

    At each step, with probability ``p`` the walk may move; each dimension then moves with
    probability ``q`` to a Beta sample on ``[min, max]`` whose mean is the current value (kept
    within 10 % of the range from the bounds so the walk does not stick to them) and whose
    shape on the side of the nearer bound is ``ab``.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param max_step: if given, moves are limited to this size; default unlimited
    :param x0: first value, default uniform in ``[min, max]``
    :param dtype: dtype of the result, default float32
    :param ab: Beta concentration, default 8 (larger: smaller moves)
    :param p: probability that a step moves at all, default 0.5
    :param q: probability that a dimension moves in a moving step, default 0.5
    :param rng: source of randomness
    :return: [nsim, d] walk within ``[min, max]``
    :raises ValueError: for invalid sizes, bounds, probabilities, ``ab``, ``max_step`` or ``x0``
    """
    _check_probability("p", p)
    _check_probability("q", q)
    _check_positive(ab=ab)
    low, high, max_step, start = _walk_setup(nsim, d, min, max, max_step, x0, dtype, rng)
    walk_values = np.empty((nsim, d), dtype=dtype)
    walk_values[0] = start
    for t in range(1, nsim):
        walk_values[t] = walk_values[t - 1]
        if rng.random() >= p:
            continue
        for k in range(d):
            if rng.random() >= q or high[k] == low[k]:
                continue
            width = float(high[k] - low[k])
            mean = float(np.clip((walk_values[t - 1, k] - low[k]) / width, 0.1, 0.9))
            target = low[k] + width * rng.beta(*_beta_shapes(mean, ab))
            if max_step is not None:
                target = np.clip(target, walk_values[t - 1, k] - max_step[k], walk_values[t - 1, k] + max_step[k])
            walk_values[t, k] = target
    return walk_values


def beta_walk_max_step(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, max_step: Bound | None = None,
                       x0: Bound | None = None, dtype: np.dtype = np.float32, alpha: float = 2, beta: float = 2,
                       p: float = 0.3, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Bounded random walk with limited steps: with probability ``p`` every dimension moves to a
    Beta(``alpha``, ``beta``) sample on ``[x - max_step, x + max_step]`` intersected with ``[min, max]``.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param max_step: largest move, default a tenth of the range
    :param x0: first value, default uniform in ``[min, max]``
    :param dtype: dtype of the result, default float32
    :param alpha: first Beta shape, default 2
    :param beta: second Beta shape, default 2
    :param p: probability of moving at a step, default 0.3
    :param rng: source of randomness
    :return: [nsim, d] walk within ``[min, max]``
    :raises ValueError: for invalid sizes, bounds, shapes, ``p``, ``max_step`` or ``x0``
    """
    _check_probability("p", p)
    _check_positive(alpha=alpha, beta=beta)
    low, high, max_step, start = _walk_setup(nsim, d, min, max, max_step, x0, dtype, rng)
    max_step = (high - low) / 10 if max_step is None else max_step
    walk_values = np.empty((nsim, d), dtype=dtype)
    walk_values[0] = start
    for t in range(1, nsim):
        current = walk_values[t - 1]
        if rng.random() < p:
            lower, upper = np.maximum(low, current - max_step), np.minimum(high, current + max_step)
            walk_values[t] = np.clip(lower + (upper - lower) * rng.beta(alpha, beta, size=d), low, high)
        else:
            walk_values[t] = current
    return walk_values


def nd_walk(nsim: int, d: int, min: Bound = 0.0, max: Bound = 1.0, x0: Bound | None = None,
            max_step: Bound | None = None, p: float = 0.3, avoid_edge: bool = True, granularity: int = 0,
            dtype: np.dtype = np.float32, rng: np.random.Generator = np.random.default_rng()) -> np.ndarray:
    """Independent bounded random walks, one per dimension, that move with probability ``p`` per step.

    A move goes up or down (with ``avoid_edge`` the chance of going up is ``1 - (x - min) / (max - min)``,
    which pulls the walk toward the middle; otherwise one half), is clipped to the bounds, and
    always leaves a bound it rests on. Its length is ``max_step`` times a uniform draw
    (``granularity=0``), ``max_step`` itself (``granularity=1``), or ``max_step * n / granularity``
    for a random integer ``n`` in ``[1, granularity]``.

    :param nsim: number of time steps
    :param d: signal dimension
    :param min: lower bound, default 0.0
    :param max: upper bound, default 1.0
    :param x0: first value, default uniform in ``[min, max]``
    :param max_step: largest move, default a tenth of the range
    :param p: probability of moving at a step, default 0.3
    :param avoid_edge: bias moves toward the middle of the range, default True
    :param granularity: step-length rule, default 0 (see above)
    :param dtype: dtype of the result, default float32
    :param rng: source of randomness
    :return: [nsim, d] walk within ``[min, max]``
    :raises ValueError: for invalid sizes, bounds, ``p``, ``granularity``, ``max_step`` or ``x0``
    """
    _check_probability("p", p)
    if int(granularity) != granularity or granularity < 0:
        raise ValueError(f"granularity={granularity!r} must be a non-negative integer")
    low, high, max_step, start = _walk_setup(nsim, d, min, max, max_step, x0, dtype, rng)
    max_step = (high - low) / 10 if max_step is None else max_step
    walk_values = np.empty((nsim, d), dtype=dtype)
    for k in range(d):
        walk_values[:, k] = _walk_1d(nsim, float(start[k]), float(low[k]), float(high[k]), float(max_step[k]), p,
                                     avoid_edge, int(granularity), rng)
    return walk_values


def _walk_1d(nsim: int, x: float, low: float, high: float, max_step: float, p: float, avoid_edge: bool,
             granularity: int, rng: np.random.Generator) -> np.ndarray:
    """One dimension of :func:`nd_walk`: the values before each of ``nsim`` steps."""
    def step_length() -> float:
        if granularity == 0:
            return max_step * rng.random()
        if granularity == 1:
            return max_step
        return max_step * rng.integers(1, granularity + 1) / granularity

    values = np.empty(nsim)
    edge = 1e-4
    for i in range(nsim):
        values[i] = x
        if rng.random() >= p:
            continue
        if abs(x - low) < edge:
            up = True
        elif abs(x - high) < edge:
            up = False
        else:
            up = rng.random() < ((1.0 - (x - low) / (high - low)) if avoid_edge else 0.5)
        x = min(x + step_length(), high) if up else max(x - step_length(), low)
    return values


signals: dict[str, Callable[..., np.ndarray]] = {
    "sin": functools.partial(periodic, form="sin"),
    "square": functools.partial(periodic, form="square"),
    "sawtooth": functools.partial(periodic, form="sawtooth"),
    "sines": sines,
    "step": step,
    "walk": walk,
    "noise": noise,
    "spline": spline,
    "arma": arma,
    "prbs": prbs,
    "beta": beta,
    "beta_walk_mean": beta_walk_mean,
    "beta_walk_max_step": beta_walk_max_step,
}
