"""One-step integrators that turn a right-hand side ``f(x, *args)`` into a discrete-time map.

``Integrator(block, h=0.1)(x, u)`` returns the state one step ``h`` later, treating the extra
arguments (inputs, disturbances, time) as constant over the step. The ``block`` is any module or
callable computing ``dx/dt`` (a neural network for a neural ODE, or an ``ODESystem``), so the
result is differentiable end to end.

Schemes:

- explicit Runge-Kutta methods: `Euler` (order 1), `RK2` (explicit midpoint, order 2), `Luther`
  (order 6) and `Runge_Kutta_Fehlberg` (order 5, with an embedded order-4 error estimate), each
  defined by its Butcher tableau, and `RK4` (order 4), written out because it is the workhorse;
- predictor-corrector methods: `Euler_Trap` and `RK4_Trap` (trapezoidal corrector, order 2) and
  `MultiStep_PredictorCorrector` (Adams-Bashforth-Moulton over four past states);
- symplectic schemes for second-order systems ``x'' = f(x)``: `LeapFrog` (order 2) and
  `Yoshida4` (order 4), whose state is ``[x, x']``;
- `DiffEqIntegrator`, any solver of ``torchdiffeq`` (adaptive ``dopri5`` and friends), with
  gradients by the adjoint method.

``integrators``, ``integrators_multistep`` and ``integrators_second_order`` map names to classes.
"""
from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence

import torch
from torch import nn

from neuromancer.vmap import is_transformed

Tableau = tuple[Sequence[Sequence[float]], Sequence[float]]


class Integrator(nn.Module, ABC):
    """Base class: holds the right-hand side ``block`` and the step size ``h``.

    :param block: computes ``dx/dt = block(x, *args)``
    :param interp_u: deprecated and ignored; passing it warns (FutureWarning)
    :param h: step size, default 1.0
    :raises TypeError: if ``block`` is not callable
    :raises ValueError: if ``h`` is not positive
    """

    def __init__(self, block: Callable[..., torch.Tensor], interp_u: Callable | None = None, h: float = 1.0) -> None:
        super().__init__()
        if not callable(block):
            raise TypeError(f"block must be a module or callable computing dx/dt, got {type(block).__name__}")
        if h <= 0:
            raise ValueError(f"h={h!r} must be a positive step size")
        if interp_u is not None:
            warnings.warn("interp_u has no effect: inputs are held constant over each integration step",
                          FutureWarning, stacklevel=2)
        self.block = block
        self.h = h
        self.in_features = getattr(block, "in_features", None)
        self.out_features = getattr(block, "out_features", None)

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Return the state one step ``h`` after ``x`` (calls :meth:`integrate`)."""
        return self.integrate(x, *args)

    @abstractmethod
    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Advance ``x`` by one step of size ``h`` with the extra arguments held constant."""

    def reg_error(self) -> torch.Tensor:
        """Regularization term of the block (its ``reg_error()``), or 0 when it has none."""
        block_error = getattr(self.block, "reg_error", None)
        return block_error() if callable(block_error) else torch.zeros(())


def _runge_kutta_stages(block: Callable[..., torch.Tensor], x: torch.Tensor, args: tuple[torch.Tensor, ...],
                        h: float, tableau: Sequence[Sequence[float]]) -> list:
    """Evaluate the stage slopes ``k_i = f(x + h sum_j a_ij k_j)`` of an explicit Runge-Kutta method.

    :param tableau: strictly lower-triangular rows of the Butcher matrix, one row per stage
        (the first row is empty)
    :return: the list of stage slopes
    """
    slopes = []
    for row in tableau:
        point = x
        for a, k in zip(row, slopes, strict=True):
            if a != 0.0:
                point = point + (h * a) * k
        slopes.append(block(point, *args))
    return slopes


def _combine(x: torch.Tensor, h: float, weights: Sequence[float], slopes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return ``x + h sum_i b_i k_i`` over the nonzero weights."""
    result = x
    for b, k in zip(weights, slopes, strict=True):
        if b != 0.0:
            result = result + (h * b) * k
    return result


class _ExplicitRungeKutta(Integrator):
    """An explicit Runge-Kutta method given by the class attribute ``TABLEAU = (matrix rows, weights)``."""

    TABLEAU: Tableau

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One step of the method: stage slopes from the Butcher matrix, then their weighted sum."""
        matrix, weights = self.TABLEAU
        return _combine(x, self.h, weights, _runge_kutta_stages(self.block, x, args, self.h, matrix))


class Euler(_ExplicitRungeKutta):
    """Forward Euler, first order: ``x + h f(x)``."""

    TABLEAU = ([[]], [1.0])


class RK2(_ExplicitRungeKutta):
    """Explicit midpoint method, second order: ``x + h f(x + h/2 f(x))``."""

    TABLEAU = ([[], [0.5]], [0.0, 1.0])


def _rk4(block: Callable[..., torch.Tensor], x: torch.Tensor, args: tuple[torch.Tensor, ...],
         h: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One classical RK4 step, written out (the most used scheme); returns ``(f(x), x_next)``."""
    k1 = block(x, *args)
    k2 = block(x + (0.5 * h) * k1, *args)
    k3 = block(x + (0.5 * h) * k2, *args)
    k4 = block(x + h * k3, *args)
    return k1, x + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


class RK4(Integrator):
    """Classical fourth-order Runge-Kutta."""

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One classical RK4 step."""
        return _rk4(self.block, x, args, self.h)[1]


_Q = math.sqrt(21.0)


class Luther(_ExplicitRungeKutta):
    """Luther's seven-stage explicit Runge-Kutta method (Luther 1968), sixth order."""

    TABLEAU = (
        [[],
         [1.0],
         [3 / 8, 1 / 8],
         [8 / 27, 2 / 27, 8 / 27],
         [(9 * _Q - 21) / 392, (8 * _Q - 56) / 392, (336 - 48 * _Q) / 392, (3 * _Q - 63) / 392],
         [(-1155 - 255 * _Q) / 1960, (-280 - 40 * _Q) / 1960, -320 * _Q / 1960, (63 + 363 * _Q) / 1960,
          (2352 + 392 * _Q) / 1960],
         [(330 + 105 * _Q) / 180, 120 / 180, (280 * _Q - 200) / 180, (126 - 189 * _Q) / 180,
          (-686 - 126 * _Q) / 180, (490 - 70 * _Q) / 180]],
        [1 / 20, 0.0, 16 / 45, 0.0, 49 / 180, 49 / 180, 1 / 20],
    )


class Runge_Kutta_Fehlberg(_ExplicitRungeKutta):
    """Runge-Kutta-Fehlberg 4(5): returns the fifth-order solution and records the local error.

    Each step also forms the embedded fourth-order solution; their difference, an estimate of the
    step's local truncation error, is appended (detached) to ``local_error``, a deque that keeps the
    last ``max_errors`` estimates so that long trainings do not accumulate memory. Inside
    ``torch.func.vmap`` the estimates differ per member and cannot outlive the call, so none is kept.

    :param max_errors: how many error estimates ``local_error`` keeps, default 1000
    """

    TABLEAU = (
        [[],
         [1 / 4],
         [3 / 32, 9 / 32],
         [1932 / 2197, -7200 / 2197, 7296 / 2197],
         [439 / 216, -8.0, 3680 / 513, -845 / 4104],
         [-8 / 27, 2.0, -3544 / 2565, 1859 / 4104, -11 / 40]],
        [16 / 135, 0.0, 6656 / 12825, 28561 / 56430, -9 / 50, 2 / 55],
    )
    LOWER_ORDER_WEIGHTS = [25 / 216, 0.0, 1408 / 2565, 2197 / 4104, -1 / 5, 0.0]

    def __init__(self, block: Callable[..., torch.Tensor], interp_u: Callable | None = None, h: float = 1.0,
                 max_errors: int = 1000) -> None:
        super().__init__(block, interp_u=interp_u, h=h)
        self.local_error: deque = deque(maxlen=max_errors)

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One fifth-order step; the difference to the fourth-order solution goes to ``local_error``."""
        matrix, weights = self.TABLEAU
        slopes = _runge_kutta_stages(self.block, x, args, self.h, matrix)
        high = _combine(x, self.h, weights, slopes)
        low = _combine(x, self.h, self.LOWER_ORDER_WEIGHTS, slopes)
        error = (high - low).detach()
        if not is_transformed(error):
            self.local_error.append(error)
        return high


class Euler_Trap(Integrator):
    """Predictor-corrector: forward Euler predictor, trapezoidal corrector (Heun's method), second order."""

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Average the slopes at ``x`` and at the Euler prediction."""
        slope = self.block(x, *args)
        predicted = x + self.h * slope
        return x + 0.5 * self.h * (slope + self.block(predicted, *args))


class RK4_Trap(Integrator):
    """Predictor-corrector: RK4 predictor, trapezoidal corrector.

    The corrector evaluates the slope once at the RK4 prediction and averages it with the slope at
    ``x``; the result is second-order accurate (the trapezoid rule's order).
    """

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """One trapezoidal step whose end-point slope is taken at the RK4 prediction."""
        slope, predicted = _rk4(self.block, x, args, self.h)
        return x + 0.5 * self.h * (slope + self.block(predicted, *args))


_ADAMS_BASHFORTH_4 = (-9 / 24, 37 / 24, -59 / 24, 55 / 24)
_ADAMS_MOULTON_4 = (-19 / 720, 106 / 720, -264 / 720, 646 / 720, 251 / 720)


class MultiStep_PredictorCorrector(Integrator):
    """Four-step Adams-Bashforth predictor with an Adams-Moulton corrector (PECE), fifth order.

    ``integrate(x)`` takes the last four states ``x[:, 0] = x_{t-3}, ..., x[:, 3] = x_t`` in a
    ``[batch, 4, nx]`` tensor and returns ``x_{t+1}`` as ``[batch, nx]``.
    """

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Predict ``x_{t+1}`` with Adams-Bashforth, then correct it once with Adams-Moulton.

        :raises ValueError: if ``x`` is not ``[batch, 4, nx]``
        """
        if x.dim() != 3 or x.shape[1] != 4:
            raise ValueError(f"MultiStep_PredictorCorrector needs the last four states as a [batch, 4, nx] tensor, "
                             f"got shape {tuple(x.shape)}")
        history = [x[:, i, :] for i in range(4)]
        slopes = [self.block(state, *args) for state in history]
        current = history[-1]
        predicted = current + self.h * sum(c * k for c, k in zip(_ADAMS_BASHFORTH_4, slopes, strict=True))
        slopes.append(self.block(predicted, *args))
        return current + self.h * sum(c * k for c, k in zip(_ADAMS_MOULTON_4, slopes, strict=True))


def _split_position_velocity(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``[..., 2n]`` into positions ``[..., :n]`` and velocities ``[..., n:]``.

    :raises ValueError: if the last dimension is odd
    """
    if X.shape[-1] % 2:
        raise ValueError(f"second-order integrators take the state [x, dx/dt] with an even number of columns, "
                         f"got {X.shape[-1]}")
    half = X.shape[-1] // 2
    return X[..., :half], X[..., half:]


class LeapFrog(Integrator):
    """Velocity Verlet (leapfrog) for ``x'' = f(x)``: symplectic, second order.

    The state is ``X = [x, dx/dt]`` (``[batch, 2 n]``) and ``block`` returns the acceleration
    ``[batch, n]``.
    """

    def integrate(self, X: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Advance positions with the current acceleration, then velocities with the mean acceleration."""
        x, v = _split_position_velocity(X)
        acceleration = self.block(x, *args)
        x_next = x + self.h * v + 0.5 * self.h ** 2 * acceleration
        v_next = v + 0.5 * self.h * (acceleration + self.block(x_next, *args))
        return torch.cat([x_next, v_next], dim=-1)


_CBRT2 = 2.0 ** (1.0 / 3.0)
_W1 = 1.0 / (2.0 - _CBRT2)
_W0 = -_CBRT2 / (2.0 - _CBRT2)
_YOSHIDA_DRIFT = (_W1 / 2, (_W0 + _W1) / 2, (_W0 + _W1) / 2, _W1 / 2)
_YOSHIDA_KICK = (_W1, _W0, _W1)


class Yoshida4(Integrator):
    """Yoshida's fourth-order symplectic integrator for ``x'' = f(x)`` (Yoshida 1990).

    Three leapfrog sub-steps with weights ``w1, w0, w1`` composed into one step; the state is
    ``X = [x, dx/dt]`` and ``block`` returns the acceleration, as for `LeapFrog`.
    """

    def integrate(self, X: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Alternate four position drifts with three velocity kicks."""
        x, v = _split_position_velocity(X)
        for drift, kick in zip(_YOSHIDA_DRIFT, _YOSHIDA_KICK + (None,), strict=True):
            x = x + drift * self.h * v
            if kick is not None:
                v = v + kick * self.h * self.block(x, *args)
        return torch.cat([x, v], dim=-1)


def rms_norm(tensor: torch.Tensor) -> torch.Tensor:
    """Root mean square of the entries of ``tensor`` (the norm torchdiffeq's step-size control uses)."""
    return tensor.pow(2).mean().sqrt()


def make_norm(state: torch.Tensor) -> Callable[[torch.Tensor | tuple[torch.Tensor, ...]], torch.Tensor]:
    """Build the adjoint-pass error norm for an ODE whose state looks like ``state``.

    During the adjoint (backward) solve torchdiffeq integrates the augmented state
    ``(t, y, adj_y, adj_params...)``. The returned norm measures only ``y`` and ``adj_y`` (the max of
    their RMS norms), so that the many parameter-gradient entries do not force tiny steps.

    :param state: a state of the forward solve; its size locates ``y`` and ``adj_y``
        when the augmented state arrives flattened into one tensor
    :return: a function of the augmented state, either the tuple ``(t, y, adj_y, ...)`` or its
        flattening ``[t, y.flatten(), adj_y.flatten(), ...]``
    """
    size = state.numel()

    def norm(augmented: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        if isinstance(augmented, (tuple, list)):
            y, adj_y = augmented[1], augmented[2]
        else:
            y, adj_y = augmented[1:1 + size], augmented[1 + size:1 + 2 * size]
        return torch.maximum(rms_norm(y), rms_norm(adj_y))

    return norm


class DiffEqIntegrator(Integrator):
    """Integrate over ``[0, h]`` with a ``torchdiffeq`` solver; gradients by the adjoint method.

    Fixed-grid methods (``'euler'``, ``'midpoint'``, ``'rk4'``, ...) take one step of size ``h``;
    adaptive ones (``'dopri5'``, ``'dopri8'``, ``'bosh3'``, ``'fehlberg2'``, ``'adaptive_heun'``)
    choose their own steps to meet ``rtol``/``atol``. With ``adjoint=True`` the backward pass
    solves the adjoint ODE instead of storing the forward solver's graph (memory independent of the
    number of solver steps); gradients reach the block's parameters and every extra argument that
    requires grad (e.g. a control policy's output).

    :param block: computes ``dx/dt = block(x, *args)``
    :param interp_u: deprecated, ignored with a FutureWarning
    :param h: length of the integration interval, default 0.001
    :param method: torchdiffeq solver name, default ``'euler'``
    :param adjoint: use ``torchdiffeq.odeint_adjoint`` (default True) or differentiate
        through the solver with ``torchdiffeq.odeint`` (False)
    :param rtol: relative tolerance of adaptive solvers, default 1e-7 (torchdiffeq's)
    :param atol: absolute tolerance of adaptive solvers, default 1e-9 (torchdiffeq's)
    :raises ValueError: if ``method`` is not a torchdiffeq solver
    :raises ImportError: if torchdiffeq is not installed
    """

    vmap_safe = False
    vmap_unsafe_reason = ("torchdiffeq's solvers write each step in place into unbatched tensors, choose "
                          "adaptive steps from tensor values in Python and run the adjoint method through an "
                          "autograd.Function that torch.func cannot transform; use a fixed-step integrator "
                          "of this module (e.g. RK4) to train a vmapped population")

    def __init__(self, block: Callable[..., torch.Tensor], interp_u: Callable | None = None, h: float = 0.001,
                 method: str = "euler", adjoint: bool = True, rtol: float = 1e-7, atol: float = 1e-9) -> None:
        super().__init__(block, interp_u=interp_u, h=h)
        solvers = _torchdiffeq_solvers()
        if method not in solvers:
            raise ValueError(f"method={method!r} is not a torchdiffeq solver; use one of {sorted(solvers)}")
        self.method, self.adjoint, self.rtol, self.atol = method, adjoint, rtol, atol

    def integrate(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Solve ``dx/dt = block(x, *args)`` from ``x`` over ``[0, h]`` and return the end state."""
        import torchdiffeq

        times = torch.tensor([0.0, self.h], dtype=x.dtype, device=x.device)

        def rhs(t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
            return self.block(state, *args)

        if not self.adjoint:
            return torchdiffeq.odeint(rhs, x, times, rtol=self.rtol, atol=self.atol, method=self.method)[-1]
        block_params = list(self.block.parameters()) if isinstance(self.block, nn.Module) else []
        adjoint_params = tuple(p for p in [*block_params, *args] if torch.is_tensor(p) and p.requires_grad)
        solution = torchdiffeq.odeint_adjoint(rhs, x, times, rtol=self.rtol, atol=self.atol, method=self.method,
                                              adjoint_params=adjoint_params,
                                              adjoint_options=dict(norm=make_norm(x)))
        return solution[-1]


def _torchdiffeq_solvers() -> frozenset:
    """The solver names torchdiffeq accepts (imports torchdiffeq)."""
    try:
        from torchdiffeq._impl.odeint import SOLVERS
    except ImportError as error:
        raise ImportError("DiffEqIntegrator needs torchdiffeq: pip install torchdiffeq") from error
    return frozenset(SOLVERS)


integrators: dict = {
    "Euler": Euler,
    "Euler_Trap": Euler_Trap,
    "RK2": RK2,
    "RK4": RK4,
    "RK4_Trap": RK4_Trap,
    "Luther": Luther,
    "Runge_Kutta_Fehlberg": Runge_Kutta_Fehlberg,
    "DiffEqIntegrator": DiffEqIntegrator,
}
integrators_multistep: dict = {"MultiStep_PredictorCorrector": MultiStep_PredictorCorrector}
integrators_second_order: dict = {"LeapFrog": LeapFrog, "Yoshida4": Yoshida4}
