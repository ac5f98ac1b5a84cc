"""Base classes of the physical-system emulators: parameters, random state, simulation and normalization.

An emulator is an ``nn.Module`` holding the parameters of an ordinary differential equation
``dx/dt = f(t, x[, u])``. ``simulate`` integrates it accurately with scipy's ``solve_ivp``
(imported on first use) and returns numpy arrays ``{'Y', 'X', ['U'], 'Time'}`` sampled every ``ts``;
``forward`` takes one differentiable ``ts`` step in torch so an emulator can sit inside a
``neuromancer.system.System`` as the true plant. Subclasses declare their default parameters in the
``params`` property as four dicts ``(variables, constants, parameters, meta)``: variables hold the
initial state ``x0`` (and the reference input ``U``), constants hold the sampling time ``ts``, and
parameters are the physical coefficients, which follow the numeric backend (numpy floats or torch
tensors that may require gradients). Statistics of a reference simulation are kept in ``stats`` and
used by ``normalize``/``denormalize`` and by ``get_x0`` to draw plausible initial conditions.
``get_x0``, ``get_U`` and ``get_R`` return float32 arrays, or float32 tensors with the torch backend.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from neuromancer.exceptions import NeuromancerError, warn_lenient_input
from neuromancer.psl import signals as signal_library

Array = np.ndarray | torch.Tensor
_BACKENDS = ("numpy", "torch")
_DEFAULT_NSIM = 1001


class SimulationError(NeuromancerError, RuntimeError):
    """Raised when the ODE solver fails to integrate an emulator over the requested horizon."""


def math_library(*values: Any) -> Any:
    """Return the ``torch`` module if any of ``values`` is a tensor, else ``numpy``.

    The emulators' ``equations`` use it to evaluate the same formula on numpy arrays (for
    ``solve_ivp``) and on batched torch tensors (for the differentiable ``forward`` step).
    """
    return torch if any(isinstance(v, torch.Tensor) for v in values) else np


def stack_last(parts: list) -> Array:
    """Stack the state-derivative components along a new last axis (numpy or torch).

    Scalar components (one unbatched state, which is what the ODE solver passes) take a fast path:
    broadcasting costs more than the right-hand side itself there.
    """
    if any(isinstance(p, torch.Tensor) for p in parts):
        return torch.stack(torch.broadcast_tensors(*parts), dim=-1)
    if all(np.ndim(p) == 0 for p in parts):
        return np.array(parts, dtype=np.float64)
    return np.stack(np.broadcast_arrays(*parts), axis=-1)


def _backend_name(backend: Any) -> str:
    """Normalize a backend given as a string or as the numpy/torch module to ``'numpy'``/``'torch'``."""
    name = getattr(backend, "__name__", backend)
    if name not in _BACKENDS:
        raise ValueError(f"backend={backend!r} is not supported; use 'numpy' or 'torch'")
    return name


def to_numpy(value: Array) -> np.ndarray:
    """Detach a tensor (or pass an array through) and return a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def integrate(rhs: Callable[[float, np.ndarray], np.ndarray], x0: np.ndarray, time: np.ndarray,
              rtol: float, atol: float) -> np.ndarray:
    """Integrate ``dx/dt = rhs(t, x)`` from ``x0`` and return the states at ``time`` as ``[len(time), nx]``.

    Uses scipy's 8th-order ``DOP853`` so that the tolerances, not the method, set the accuracy.

    :raises SimulationError: if the solver fails (e.g. the state blows up).
    """
    if len(time) == 1:
        return np.asarray(x0, dtype=np.float64)[None]
    from scipy.integrate import solve_ivp

    solution = solve_ivp(rhs, (float(time[0]), float(time[-1])), x0, method="DOP853", t_eval=time,
                         rtol=rtol, atol=atol)
    if not solution.success:
        raise SimulationError(f"ODE integration failed between t={time[0]} and t={time[-1]}: {solution.message}")
    return solution.y.T


_BACKEND_TYPED_METHODS = ("get_x0", "get_U", "get_R")


def _in_backend_type(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a sampling method so that, with the torch backend, it returns a float32 tensor.

    Scripts switch an emulator to ``backend='torch'`` to use it as a differentiable plant and then
    feed ``get_x0()`` to torch modules, as upstream 1.5 allows.
    """
    @functools.wraps(method)
    def in_backend_type(self: EmulatorBase, *args: Any, **kwargs: Any) -> Any:
        value = method(self, *args, **kwargs)
        if self.backend == "torch" and not isinstance(value, torch.Tensor):
            return torch.as_tensor(np.asarray(value, dtype=np.float32))
        return value
    return in_backend_type


class EmulatorBase(ABC, nn.Module):
    """Common machinery of every emulator: parameters, backend, seeded randomness and data statistics.

    :param exclude_norms: keys of simulation dicts that ``normalize`` leaves untouched, default ``['Time']``
    :param backend: ``'numpy'`` (default) or ``'torch'``; the type of the physical
        parameters and of the arrays ``simulate`` returns
    :param requires_grad: with the torch backend, make the physical parameters require gradients
    :param seed: seed of ``self.rng``, which draws every random signal and
        initial condition so that results are reproducible; default 59
    :param set_stats: run a reference simulation at construction and fill ``self.stats``, default True
    :raises ValueError: for an unknown backend
    """

    rtol: float = 1e-10
    atol: float = 1e-10

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make the subclass's own ``get_x0``, ``get_U`` and ``get_R`` return the backend's type."""
        super().__init_subclass__(**kwargs)
        for name in _BACKEND_TYPED_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _in_backend_type(cls.__dict__[name]))

    def __init__(self, exclude_norms: list[str] = ['Time'],  # noqa: B006 - the published signature's default
                 backend: str | ModuleType = "numpy", requires_grad: bool = False,
                 seed: int | np.random.Generator = 59, set_stats: bool = True) -> None:
        super().__init__()
        self.exclude_norms = list(exclude_norms)
        self.backend = _backend_name(backend)
        self.requires_grad = requires_grad
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._saved_rng_state: dict | None = None
        variables, constants, parameters, meta = self.params
        self.variables, self.constants, self.meta = dict(variables), dict(constants), dict(meta)
        self.parameter_names = list(parameters)
        for name, value in {**variables, **constants, **meta}.items():
            setattr(self, name, self._cast_setting(name, value))
        for name, value in parameters.items():
            self._store_parameter(name, value, requires_grad)
        self.nsim = int(constants.get("nsim", _DEFAULT_NSIM))
        self.stats: dict = {}
        self.add_missing_parameters()
        self.nx = int(np.asarray(self.x0).shape[-1])
        self.ny = self.nx
        if set_stats:
            self.set_stats()

    @property
    @abstractmethod
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)`` of the system (not its current values)."""

    @abstractmethod
    def simulate(self) -> dict:
        """Integrate the system and return a dict of trajectories."""

    @staticmethod
    def _cast_setting(name: str, value: Any) -> Any:
        """Cast a variable (float32 array) or a constant (float when scalar) to its stored type."""
        if name in ("x0", "U") or np.ndim(value) > 0:
            return np.asarray(to_numpy(value), dtype=np.float32)
        return float(value) if isinstance(value, (int, float, np.number)) else value

    def _cast_parameter(self, value: Any, requires_grad: bool) -> Any:
        """Cast a physical parameter to the backend type (float / float64 array, or float64 tensor)."""
        if self.backend == "torch":
            tensor = torch.as_tensor(to_numpy(value), dtype=torch.float64).clone()
            return tensor.requires_grad_(requires_grad)
        value = to_numpy(value).astype(np.float64)
        return float(value) if value.ndim == 0 else value

    def _store_parameter(self, name: str, value: Any, requires_grad: bool, cast: bool = True) -> None:
        """Set a physical parameter; tensors become buffers so ``.to(device)`` moves them."""
        value = self._cast_parameter(value, requires_grad) if cast else value
        if name in self._buffers or name in self.__dict__:
            delattr(self, name)
        if isinstance(value, torch.Tensor):
            self.register_buffer(name, value)
        else:
            setattr(self, name, value)

    def add_missing_parameters(self) -> None:
        """Fill in variables the ``params`` property leaves out; here a missing ``x0`` comes from ``get_x0``."""
        if "x0" not in self.variables:
            self.x0 = np.asarray(self.get_x0(), dtype=np.float32)

    def set_params(self, parameters: dict[str, Any], requires_grad: bool = False, cast: bool = True) -> None:
        """Change parameters, variables or constants by name.

        :param parameters: name -> new value
        :param requires_grad: with the torch backend, make the new physical parameters require gradients
        :param cast: cast physical parameters to the backend type, default True
        :raises KeyError: for a name that is not a parameter, variable or constant of this system
        :raises ValueError: for an ``x0`` whose length differs from ``nx``
        """
        known = set(self.parameter_names) | set(self.variables) | set(self.constants) | set(self.meta)
        for name, value in parameters.items():
            if name not in known:
                raise KeyError(f"{type(self).__name__} has no parameter {name!r}; known names: {sorted(known)}")
            if name in self.parameter_names:
                self._store_parameter(name, value, requires_grad, cast)
                continue
            value = self._cast_setting(name, value)
            if name == "x0" and np.shape(value)[-1] != self.nx:
                raise ValueError(f"x0 has {np.shape(value)[-1]} entries; {type(self).__name__} has nx={self.nx}")
            setattr(self, name, value)

    def change_backend(self, backend: str | ModuleType = torch) -> None:
        """Switch the numeric backend (``'numpy'`` or ``'torch'``, as a string or the module) and recast parameters.

        :raises ValueError: for an unknown backend
        """
        self.backend = _backend_name(backend)
        for name in self.parameter_names:
            value = getattr(self, name)
            requires_grad = bool(isinstance(value, torch.Tensor) and value.requires_grad)
            self._store_parameter(name, value, requires_grad)

    def save_random_state(self) -> dict:
        """Remember the state of ``self.rng`` (returned too) so ``restore_random_state`` can replay draws."""
        self._saved_rng_state = self.rng.bit_generator.state
        return self._saved_rng_state

    def restore_random_state(self, rng_state: dict | None = None) -> None:
        """Reset ``self.rng`` to ``rng_state``, or to the state saved by ``save_random_state`` when None.

        :raises ValueError: if no state is given and none was saved
        """
        state = self._saved_rng_state if rng_state is None else rng_state
        if state is None:
            raise ValueError("no random state to restore; call save_random_state() first or pass rng_state")
        self.rng.bit_generator.state = state

    @_in_backend_type
    def get_x0(self) -> np.ndarray:
        """Draw a random initial state uniformly within the state range of the reference simulation.

        Without statistics (``set_stats=False``) the default ``x0`` is returned. The state is a
        float32 array, or a float32 tensor with the torch backend (so are ``get_U``'s and ``get_R``'s).

        :raises TypeError: if the system has neither statistics nor a default ``x0``
        """
        if "X" in self.stats:
            return self.rng.uniform(self.stats["X"]["min"], self.stats["X"]["max"]).astype(np.float32)
        if not hasattr(self, "x0"):
            raise TypeError(f"{type(self).__name__} defines no 'x0' in params; add one or override get_x0")
        return np.array(self.x0, dtype=np.float32)

    def _stats_simulation(self, x0: np.ndarray | None, U: np.ndarray | None, nsim: int | None) -> dict:
        """Run the reference simulation that ``set_stats`` summarizes."""
        if U is not None:
            warn_lenient_input(f"{type(self).__name__} has no control input: set_stats ignores U, as upstream 1.5 "
                               f"does. Call set_stats without U.")
        return self.simulate(nsim=nsim or self.nsim, x0=x0)

    def set_stats(self, x0: np.ndarray | None = None, U: np.ndarray | None = None, D: np.ndarray | None = None,
                  nsim: int | None = None, sim: dict | None = None) -> None:
        """Compute ``min``, ``max``, ``mean``, ``var`` and ``std`` of every trajectory into ``self.stats``.

        :param x0: initial state of the reference simulation, default ``self.x0``
        :param U: input sequence of the reference simulation (systems with inputs; a system
            without input ignores it, as upstream 1.5 does, with a `LenientInputWarning`)
        :param D: disturbances; these emulators have none, so it is ignored, as upstream 1.5
            ignores it, with a `LenientInputWarning`
        :param nsim: length of the reference simulation, default ``self.nsim``
        :param sim: use these trajectories instead of simulating
        """
        if D is not None:
            warn_lenient_input(f"{type(self).__name__} has no disturbance input: set_stats ignores D, as upstream 1.5 "
                               f"does. Call set_stats without D.")
        if sim is None:
            sim = self._stats_simulation(x0, U, nsim)
        self.stats_data = sim
        self.stats = {}
        for key, value in sim.items():
            if key in self.exclude_norms:
                continue
            data = to_numpy(value).astype(np.float64).reshape(-1, np.shape(value)[-1])
            summary = {"min": data.min(0), "max": data.max(0), "mean": data.mean(0), "var": data.var(0), "std": data.std(0)}
            self.stats[key] = {name: column.astype(np.float32) for name, column in summary.items()}

    def _scale(self, value: Array, stats: dict, key: str, inverse: bool) -> Array:
        """Standardize ``value`` with ``stats[key]`` (mean/std), or undo it when ``inverse``."""
        if key not in stats:
            raise KeyError(f"no statistics for key {key!r}; available: {sorted(stats)}; run set_stats or pass normalizer")
        mean, std = stats[key]["mean"], np.where(stats[key]["std"] > 0, stats[key]["std"], 1.0)
        if isinstance(value, torch.Tensor):
            mean = torch.as_tensor(mean, dtype=value.dtype, device=value.device)
            std = torch.as_tensor(std, dtype=value.dtype, device=value.device)
        return value * std + mean if inverse else (value - mean) / std

    def _transform(self, data: dict | Array, normalizer: dict | None, key: str | None,
                   inverse: bool) -> dict | Array:
        """Apply (inverse) standardization to a dict of trajectories or to one array named by ``key``."""
        stats = self.stats if normalizer is None else normalizer
        if isinstance(data, dict):
            return {k: self._scale(v, stats, k, inverse) if k in stats and k not in self.exclude_norms else v
                    for k, v in data.items()}
        if key is None:
            raise KeyError(f"pass key= naming the statistics to use (one of {sorted(stats)}) when data is an array")
        return self._scale(data, stats, key, inverse)

    def normalize(self, data: dict | Array, normalizer: dict | None = None,
                  key: str | None = None) -> dict | Array:
        """Standardize data to zero mean and unit standard deviation with the reference statistics.

        :param data: a simulation dict (keys in ``exclude_norms`` or without
            statistics pass through), or one array named by ``key``
        :param normalizer: statistics to use instead of ``self.stats``
        :param key: statistics entry for an array ``data`` (e.g. ``'X'``)
        :return: data of the same structure and type
        :raises KeyError: if an array is given without ``key`` or ``key`` has no statistics
        """
        return self._transform(data, normalizer, key, inverse=False)

    def denormalize(self, data: dict | Array, normalizer: dict | None = None,
                    key: str | None = None) -> dict | Array:
        """Undo :meth:`normalize` (same arguments and errors)."""
        return self._transform(data, normalizer, key, inverse=True)

    def show(self, data: dict | None = None, figname: str | None = None) -> Any:
        """Plot a simulation (default: the reference simulation behind ``stats``) with ``psl.plot.pltOL``.

        :param data: trajectories with ``'Y'`` and optionally ``'X'``, ``'U'``
        :param figname: file to save the figure to
        :return: the matplotlib Figure
        """
        from neuromancer.psl.plot import pltOL

        data = data if data is not None else getattr(self, "stats_data", None) or self.simulate()
        return pltOL(Y=to_numpy(data["Y"]), U=None if "U" not in data else to_numpy(data["U"]),
                     X=None if "X" not in data else to_numpy(data["X"]), figname=figname)

    def _time_grid(self, nsim: int | None, Time: Array | None, ts: float | None) -> np.ndarray:
        """Return the simulation time points: ``Time`` itself, or ``nsim + 1`` points spaced ``ts`` from 0.

        A single time point (``nsim=0``) gives a simulation without steps, whose trajectories are
        empty, as upstream 1.5's are; a `LenientInputWarning` says so.

        :raises ValueError: for no time points, a non-increasing ``Time``, a negative ``nsim`` or
            a ``ts`` that is not positive
        """
        if Time is not None:
            time = to_numpy(Time).astype(np.float64).ravel()
            if time.size < 1 or np.any(np.diff(time) <= 0):
                raise ValueError("Time must hold at least two strictly increasing time points")
            if time.size == 1:
                warn_lenient_input("Time holds one time point: the simulation takes no step and returns empty "
                                   "trajectories, as upstream 1.5's does. Give at least two time points.")
            return time
        nsim = self.nsim if nsim is None else nsim
        if int(nsim) != nsim or nsim < 0:
            raise ValueError(f"nsim={nsim!r} must be a positive integer number of steps")
        if nsim == 0:
            warn_lenient_input("nsim=0: the simulation takes no step and returns empty trajectories, as upstream "
                               "1.5's does. Give a positive nsim.")
        ts = self.ts if ts is None else ts
        if ts <= 0:
            raise ValueError(f"ts={ts!r} must be a positive sampling time")
        return np.arange(int(nsim) + 1, dtype=np.float64) * ts

    def _initial_state(self, x0: Array | None) -> np.ndarray:
        """Return ``x0`` (default ``self.x0``) as a float64 vector of length ``nx``.

        :raises ValueError: if its length is not ``nx``
        """
        state = to_numpy(self.x0 if x0 is None else x0).astype(np.float64).ravel()
        if state.size != self.nx:
            raise ValueError(f"x0 has {state.size} entries; {type(self).__name__} has nx={self.nx}")
        return state

    def _numpy_rhs(self, equations: Callable[..., Array]) -> Callable[..., np.ndarray]:
        """Wrap ``equations`` so that scipy can call it with numpy arrays whatever the backend."""
        if self.backend == "numpy":
            return lambda *args: np.asarray(equations(*args), dtype=np.float64)

        def torch_rhs(t: float, *arrays: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                tensors = [torch.as_tensor(a, dtype=torch.float64) for a in arrays]
                return to_numpy(equations(torch.as_tensor(t, dtype=torch.float64), *tensors)).astype(np.float64)

        return torch_rhs

    def _package(self, trajectories: dict) -> dict:
        """Cast simulation outputs to float32 numpy arrays, or tensors with the torch backend."""
        out = {k: np.asarray(v, dtype=np.float32) for k, v in trajectories.items()}
        if self.backend == "torch":
            return {k: torch.from_numpy(v) for k, v in out.items()}
        return out

    def _rk4_step(self, derivative: Callable[[Array, Array], Array], x: torch.Tensor, t: torch.Tensor,
                  substeps: int) -> torch.Tensor:
        """Advance ``x`` by ``ts`` with ``substeps`` classical Runge-Kutta steps (differentiable)."""
        h = self.ts / substeps
        for _ in range(substeps):
            k1 = derivative(t, x)
            k2 = derivative(t + h / 2, x + h / 2 * k1)
            k3 = derivative(t + h / 2, x + h / 2 * k2)
            k4 = derivative(t + h, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t = t + h
        return x


class ODE_Autonomous(EmulatorBase):
    """An emulator whose right-hand side ``equations(t, x)`` has no control input.

    Subclasses implement ``params`` and ``equations``; ``simulate`` returns ``{'Y', 'X', 'Time'}``
    sampled at ``Time[1:]`` (the initial state itself is not included), with ``Y = X``.
    """

    forward_substeps: int = 10

    @abstractmethod
    def equations(self, t: Any, x: Array) -> Array:
        """Time derivative ``dx/dt`` at time ``t`` and state ``x`` (``[..., nx]``, numpy or torch)."""

    def simulate(self, nsim: int | None = None, Time: Array | None = None, ts: float | None = None,
                 x0: Array | None = None) -> dict:
        """Integrate the system.

        :param nsim: number of steps, default ``self.nsim`` (ignored when ``Time`` is given)
        :param Time: explicit time points; the states at ``Time[1:]`` are returned
        :param ts: sampling time, default ``self.ts``
        :param x0: initial state, default ``self.x0``
        :return: dict with ``'Y'``, ``'X'`` of shape ``[nsim, nx]`` and ``'Time'`` of shape ``[nsim]``
        :raises ValueError: for invalid sizes, times or initial state
        :raises SimulationError: if the integration fails
        """
        time = self._time_grid(nsim, Time, ts)
        states = integrate(self._numpy_rhs(self.equations), self._initial_state(x0), time, self.rtol, self.atol)
        return self._package({"Y": states[1:], "X": states[1:], "Time": time[1:]})

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Differentiable step: the state ``ts`` after state ``x`` at time ``t`` (RK4 with ``forward_substeps`` steps).

        :param x: ``[..., nx]`` states
        :param t: time, scalar or ``[..., 1]``
        :return: ``[..., nx]`` next states
        """
        x = torch.as_tensor(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == x.dim() and t.dim() > 0:
            t = t[..., 0]
        return self._rk4_step(self.equations, x, t, self.forward_substeps)


class ODE_NonAutonomous(EmulatorBase):
    """An emulator with control input ``u``: ``dx/dt = equations(t, x, u)``.

    ``simulate`` holds ``U[k]`` constant over ``[Time[k], Time[k+1]]`` (zero-order hold, as a digital
    controller would) and returns ``{'Y', 'X', 'U', 'Time'}`` at ``Time[1:]``, with ``U[1:]`` so that
    row ``k`` pairs the state ``X[k]`` with the input that drives it to ``X[k+1]``. Subclasses set
    ``nu`` (or put a ``'U'`` sequence in ``params``) and may override ``get_U`` for their default input.
    """

    forward_substeps: int = 10

    @abstractmethod
    def equations(self, t: Any, x: Array, u: Array) -> Array:
        """Time derivative ``dx/dt`` at time ``t``, state ``x`` (``[..., nx]``) and input ``u`` (``[..., nu]``)."""

    def add_missing_parameters(self) -> None:
        """Set ``nu`` and a reference input ``U`` of ``nsim + 1`` steps from ``get_U`` when ``params`` has none.

        :raises TypeError: if the class defines neither ``nu`` nor a ``'U'`` variable
        """
        if "U" in self.variables:
            self.nu = int(np.shape(self.U)[-1])
        elif not isinstance(getattr(type(self), "nu", None), int):
            raise TypeError(f"{type(self).__name__} must define the class attribute nu or a 'U' variable in params")
        super().add_missing_parameters()
        if "U" not in self.variables:
            self.U = np.asarray(self.get_U(self.nsim + 1), dtype=np.float32)

    def _stats_simulation(self, x0: np.ndarray | None, U: np.ndarray | None, nsim: int | None) -> dict:
        """Reference simulation driven by ``U`` (default the reference input ``self.U``)."""
        U = self.U if U is None else U
        return self.simulate(nsim=nsim if nsim is not None else len(U) - 1, x0=x0, U=U)

    def get_U(self, nsim: int, umin: Array | None = None, umax: Array | None = None,
              signal: str | Callable | None = None, **signal_kwargs: Any) -> np.ndarray:
        """Generate an input sequence of ``nsim`` steps within ``[umin, umax]`` using ``self.rng``.

        :param nsim: number of steps
        :param umin: lower bound, default ``self.umin`` or the reference input's minimum
        :param umax: upper bound, default ``self.umax`` or the reference input's maximum
        :param signal: a name in ``psl.signals.signals`` or a function
            ``f(nsim, d, min, max, rng=..., **kwargs)``; default ``'step'``
        :param signal_kwargs: extra keyword arguments of the signal
        :return: float32 ``[nsim, nu]``
        :raises KeyError: for an unknown signal name
        :raises ValueError: if no bounds are given and none are known
        """
        umin = self._input_bound(umin, "umin", "min")
        umax = self._input_bound(umax, "umax", "max")
        if signal is None:
            signal = "step"
        if isinstance(signal, str):
            if signal not in signal_library.signals:
                raise KeyError(f"unknown signal {signal!r}; use one of {sorted(signal_library.signals)} or a function")
            signal = signal_library.signals[signal]
        values = signal(nsim, self.nu, min=umin, max=umax, rng=self.rng, **signal_kwargs)
        return np.asarray(values, dtype=np.float32).reshape(nsim, self.nu)

    def _input_bound(self, given: Array | None, attribute: str, statistic: str) -> Array:
        """Resolve an input bound: the argument, else a class bound attribute, else the input statistics."""
        if given is not None:
            return given
        if getattr(self, attribute, None) is not None:
            return getattr(self, attribute)
        if "U" in self.stats:
            return self.stats["U"][statistic]
        raise ValueError(f"{type(self).__name__} knows no input bounds; pass umin= and umax= to get_U")

    def get_R(self, nsim: int) -> np.ndarray:
        """A reference trajectory for tracking control: the outputs ``Y`` of a simulation of ``nsim`` steps
        from a random initial state under a random input, so the reference is reachable by the plant.

        :return: float32 ``[nsim, ny]``
        """
        return to_numpy(self.simulate(nsim=nsim, x0=self.get_x0())["Y"]).astype(np.float32)

    def get_simulation_args(self, nsim: int | None, Time: Array | None, ts: float | None,
                            x0: Array | None, U: Array | None) -> tuple:
        """Resolve the arguments of ``simulate`` to ``(Time, ts, x0, U)`` with defaults filled in.

        ``nsim`` defaults to ``len(U) - 1`` when ``U`` is given, else ``self.nsim``; ``U`` defaults to
        ``get_U(nsim + 1)``.

        :raises ValueError: if ``U`` does not have ``nsim + 1`` rows of ``nu`` columns
        """
        if Time is None and nsim is None and U is not None:
            nsim = len(U) - 1
        time = self._time_grid(nsim, Time, ts)
        nsim = len(time) - 1
        ts = float(time[1] - time[0]) if len(time) > 1 else float(self.ts if ts is None else ts)
        x0 = self._initial_state(x0)
        U = self.get_U(nsim + 1) if U is None else U
        U = to_numpy(U).astype(np.float64)
        U = U.reshape(-1, 1) if U.ndim == 1 and self.nu == 1 else U
        if U.ndim != 2 or U.shape != (nsim + 1, self.nu):
            raise ValueError(f"U has shape {U.shape}; a simulation of nsim={nsim} steps needs U of shape "
                             f"({nsim + 1}, {self.nu}) (one input per time point, the first applied from Time[0])")
        return time, ts, x0, U

    def simulate(self, nsim: int | None = None, Time: Array | None = None, ts: float | None = None,
                 x0: Array | None = None, U: Array | None = None) -> dict:
        """Integrate the system under the input sequence ``U`` held constant over each step.

        :param nsim: number of steps (default ``len(U) - 1`` or ``self.nsim``)
        :param Time: explicit time points
        :param ts: sampling time, default ``self.ts``
        :param x0: initial state, default ``self.x0``
        :param U: ``[nsim + 1, nu]`` inputs, default ``get_U(nsim + 1)``
        :return: dict with ``'Y'``, ``'X'`` ``[nsim, nx]``, ``'U'`` ``[nsim, nu]`` and ``'Time'`` ``[nsim]``
        :raises ValueError: for inconsistent arguments
        :raises SimulationError: if the integration fails
        """
        time, _, x0, U = self.get_simulation_args(nsim, Time, ts, x0, U)
        rhs = self._numpy_rhs(self.equations)
        states = np.empty((len(time), self.nx))
        states[0] = x0
        for start, stop in self._constant_input_segments(U[:-1]):
            segment = integrate(lambda t, x, u=U[start]: rhs(t, x, u), states[start], time[start:stop + 1],
                                self.rtol, self.atol)
            states[start + 1:stop + 1] = segment[1:]
        return self._package({"Y": states[1:], "X": states[1:], "U": U[1:], "Time": time[1:]})

    @staticmethod
    def _constant_input_segments(U: np.ndarray) -> list[tuple[int, int]]:
        """Split step indices ``0..len(U)`` into ``(start, stop)`` runs over which the input is constant."""
        changes = np.flatnonzero(np.any(U[1:] != U[:-1], axis=1)) + 1
        bounds = [0, *changes.tolist(), len(U)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Differentiable step: the state ``ts`` after ``x`` under input ``u`` (RK4 with ``forward_substeps`` steps).

        The right-hand side is evaluated at ``t = 0``; the emulators with inputs are time invariant.

        :param x: ``[..., nx]`` states
        :param u: ``[..., nu]`` inputs held over the step
        :return: ``[..., nx]`` next states
        """
        x = torch.as_tensor(x)
        u = torch.as_tensor(u, dtype=x.dtype, device=x.device)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        return self._rk4_step(lambda t, state: self.equations(t, state, u), x, zero, self.forward_substeps)
