"""Networked (coupled) ODE systems: nodes with their own state that interact along the edges of a graph.

A coupled system keeps an adjacency list ``adj_list`` of shape ``[2, edges]`` whose columns are
``(receiver, sender)`` pairs. Its ``message_passing(receivers, senders, t[, u])`` computes, for every
edge at once, the contribution of the sender's state to the receiver's derivative, and
``equations`` adds the messages up per receiver. ``nx`` is the number of nodes. Systems whose
nodes hold several features (position, velocity, ...) are decorated with :func:`multidim` so that
``simulate`` takes and returns ``[nodes, features]`` states while the solver sees a flat vector.

The registry ``systems`` holds the resistor-capacitor building network (``'RCNet'``), the
N-body problem (``'Gravitational'``) and Reynolds' flocking boids (``'Boids'``). These systems are
numpy-only: their right-hand sides scatter messages with ``np.add.at``.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from neuromancer.psl import signals
from neuromancer.psl.base import Array, ODE_Autonomous, ODE_NonAutonomous, to_numpy

_DEFAULT_NSIM = 1001


def _graph(adj: np.ndarray | None, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(adjacency matrix [n, n], adjacency list [2, edges])`` from ``adj``.

    ``adj`` is None (a complete graph on ``nx`` nodes without self loops), an edge list of shape
    ``[2, edges]`` over ``nx`` nodes, or an ``[n, n]`` adjacency matrix (``nx`` is then ``n``).

    :raises ValueError: for a non-positive ``nx``, a malformed ``adj`` or an edge naming a node outside ``[0, nx)``
    """
    if int(nx) != nx or nx < 1:
        raise ValueError(f"nx={nx!r} must be a positive integer number of nodes")
    if adj is None:
        matrix = np.ones((nx, nx)) - np.eye(nx)
        return matrix, np.stack(np.nonzero(matrix))
    adj = np.asarray(adj)
    if adj.ndim == 2 and adj.shape[0] == adj.shape[1] and adj.shape[0] != 2:
        return adj.astype(np.float64), np.stack(np.nonzero(adj))
    if adj.ndim != 2 or adj.shape[0] != 2:
        raise ValueError(f"adj has shape {adj.shape}; pass an edge list [2, edges] or a square adjacency matrix")
    edges = adj.astype(np.int64)
    if edges.size and (edges.min() < 0 or edges.max() >= nx):
        raise ValueError(f"adj names nodes outside [0, {nx}); pass nx= the number of nodes of the edge list")
    matrix = np.zeros((nx, nx))
    matrix[edges[0], edges[1]] = 1.0
    return matrix, edges


def _sum_messages(messages: np.ndarray, receivers: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Add each edge's message to its receiver's row of an array shaped like ``like``."""
    total = np.zeros(like.shape[:1] + np.shape(messages)[1:], dtype=np.float64)
    np.add.at(total, receivers, messages)
    return total


class _Network:
    """What the coupled base classes share: the graph, the sampling time, default states and flat initial states."""

    def _set_graph(self, adj: np.ndarray | None, nx: int, backend: Any) -> None:
        """Store ``adj`` (adjacency matrix) and ``adj_list`` (``[2, edges]``); called before the emulator
        constructor because the ``get_x0`` it calls needs the graph.

        :raises ValueError: for a backend other than numpy (messages are scattered with numpy) or a malformed graph
        """
        if getattr(backend, "__name__", backend) != "numpy":
            raise ValueError(f"{type(self).__name__} supports only backend='numpy' (got {backend!r})")
        self.adj, self.adj_list = _graph(adj, nx)

    @property
    def params(self) -> tuple[dict, dict, dict, dict]:
        """Default ``(variables, constants, parameters, meta)``: only the sampling time ``ts = 0.1``."""
        return {}, {"ts": 0.1}, {}, {}

    def get_x0(self) -> np.ndarray:
        """Default node states; subclasses override it. Here: zeros, one per node."""
        return np.zeros(self.adj.shape[0])

    def _initial_state(self, x0: Array | None) -> np.ndarray:
        """Return ``x0`` (default ``self.x0``, possibly ``[nodes, features]``) flattened for the solver.

        :raises ValueError: for an initial state with another number of entries than ``self.x0``
        """
        state = to_numpy(self.x0 if x0 is None else x0).astype(np.float64).ravel()
        if state.size != np.size(self.x0):
            raise ValueError(f"x0 has {state.size} entries; {type(self).__name__} needs {np.shape(self.x0)} "
                             f"({np.size(self.x0)} entries)")
        return state


def multidim(is_autonomous: bool) -> Callable[[type], type]:
    """Class decorator for coupled systems whose nodes hold several features.

    The decorated class writes ``equations`` for states of shape ``[nodes, features]``; the
    decorator makes ``equations`` accept the flat vector the ODE solver uses, and ``simulate``
    accept an ``[nodes, features]`` ``x0`` and return ``'X'`` and ``'Y'`` of shape ``[nsim, nodes, features]``.

    :param is_autonomous: True for classes without input (``simulate(nsim, Time, ts, x0)``),
        False for classes with input (``simulate(nsim, Time, ts, x0, U)``)
    :return: the decorator
    """
    def decorate(cls: type) -> type:
        node_equations, flat_simulate = cls.equations, cls.simulate

        def reshape_outputs(out: dict, shape: tuple) -> dict:
            for key in ("X", "Y"):
                out[key] = out[key].reshape((-1,) + tuple(shape))
            return out

        def initial_shape(self: Any, x0: Array | None) -> tuple:
            return np.shape(self.x0 if x0 is None else x0)

        if is_autonomous:
            def equations(self: Any, t: Any, x: Array) -> np.ndarray:
                return np.asarray(node_equations(self, t, np.reshape(x, (self.nx, -1)))).ravel()

            def simulate(self: Any, nsim: int | None = None, Time: Array | None = None,
                         ts: float | None = None, x0: Array | None = None) -> dict:
                shape = initial_shape(self, x0)
                return reshape_outputs(flat_simulate(self, nsim=nsim, Time=Time, ts=ts, x0=x0), shape)
        else:
            def equations(self: Any, t: Any, x: Array, u: Array) -> np.ndarray:
                return np.asarray(node_equations(self, t, np.reshape(x, (self.nx, -1)), u)).ravel()

            def simulate(self: Any, nsim: int | None = None, Time: Array | None = None,
                         ts: float | None = None, x0: Array | None = None, U: Array | None = None) -> dict:
                shape = initial_shape(self, x0)
                return reshape_outputs(flat_simulate(self, nsim=nsim, Time=Time, ts=ts, x0=x0, U=U), shape)

        cls.equations = functools.wraps(node_equations)(equations)
        cls.simulate = functools.wraps(flat_simulate)(simulate)
        return cls

    return decorate


class Coupled_ODE(_Network, ODE_Autonomous):
    """Base class of autonomous networked systems: ``dx_i/dt = sum over edges (i, j) of message(x_i, x_j, t)``.

    Subclasses implement :meth:`message_passing` and ``get_x0`` (the default state of all nodes).

    :param exclude_norms: keys ``normalize`` leaves untouched, default ``['Time']``
    :param backend: only ``'numpy'`` is supported
    :param requires_grad: unused (numpy backend), kept for the common emulator signature
    :param seed: seed of ``self.rng``, default 59
    :param set_stats: accepted for the common signature; this base class computes no
        statistics at construction, because a subclass sets its own attributes after it (concrete
        systems honour the flag at the end of their constructor)
    :param adj: edge list ``[2, edges]`` of ``(receiver, sender)`` pairs, or an
        adjacency matrix; default a complete graph
    :param nx: number of nodes (ignored when ``adj`` is a matrix), default 1
    :raises ValueError: for a torch backend or a malformed graph
    """

    def __init__(self, exclude_norms: list[str] = ['Time'],  # noqa: B006 - the published signature's default
                 backend: str | ModuleType = "numpy", requires_grad: bool = False,
                 seed: int | np.random.Generator = 59, set_stats: bool = True,
                 adj: np.ndarray | None = None, nx: int = 1) -> None:
        self._set_graph(adj, nx, backend)
        super().__init__(exclude_norms=exclude_norms, backend=backend, requires_grad=requires_grad, seed=seed,
                         set_stats=False)
        self.nx = self.ny = self.nx0 = self.adj.shape[0]

    def message_passing(self, receivers: np.ndarray, senders: np.ndarray, t: Any) -> np.ndarray:
        """Contribution of each sender to its receiver's derivative, one row per edge.

        :param receivers: receiver states, row ``k`` for edge ``k``
        :param senders: sender states, row ``k`` for edge ``k``
        :param t: time
        :raises NotImplementedError: always here; subclasses define the coupling
        """
        raise NotImplementedError(f"{type(self).__name__} must implement message_passing(receivers, senders, t)")

    def equations(self, t: Any, x: np.ndarray) -> np.ndarray:
        """Sum of the messages each node receives."""
        x = np.asarray(x)
        messages = self.message_passing(x[self.adj_list[0]], x[self.adj_list[1]], t)
        return _sum_messages(messages, self.adj_list[0], x)


class Coupled_NonAutonomous(_Network, ODE_NonAutonomous):
    """Base class of networked systems with inputs: ``dx_i/dt = sum over edges (i, j) of message(x_i, x_j, t, u)``.

    Parameters are those of :class:`Coupled_ODE`; ``nu`` is the number of nodes unless a subclass
    sets it. Subclasses implement :meth:`message_passing`, ``get_x0`` and ``get_U``.
    """

    def __init__(self, exclude_norms: list[str] = ['Time'],  # noqa: B006 - the published signature's default
                 backend: str | ModuleType = "numpy", requires_grad: bool = False,
                 seed: int | np.random.Generator = 59, set_stats: bool = False,
                 adj: np.ndarray | None = None, nx: int = 1) -> None:
        self._set_graph(adj, nx, backend)
        super().__init__(exclude_norms=exclude_norms, backend=backend, requires_grad=requires_grad, seed=seed,
                         set_stats=False)
        self.nx = self.ny = self.nx0 = self.adj.shape[0]
        self.nu = self.nx

    def add_missing_parameters(self) -> None:
        """Draw the initial node states; the input sequence is left to the subclass, whose ``get_U``
        may need attributes set after this base constructor."""
        self.x0 = np.asarray(self.get_x0(), dtype=np.float32)

    def message_passing(self, receivers: np.ndarray, senders: np.ndarray, t: Any, u: np.ndarray) -> np.ndarray:
        """Contribution of each sender to its receiver's derivative under input ``u``, one row per edge.

        :raises NotImplementedError: always here; subclasses define the coupling
        """
        raise NotImplementedError(f"{type(self).__name__} must implement message_passing(receivers, senders, t, u)")

    def equations(self, t: Any, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Sum of the messages each node receives."""
        x = np.asarray(x)
        messages = self.message_passing(x[self.adj_list[0]], x[self.adj_list[1]], t, u)
        return _sum_messages(messages, self.adj_list[0], x)


class RC_Network(Coupled_NonAutonomous):
    """Thermal resistor-capacitor network of rooms (a lumped building model).

    Room ``i`` has temperature ``x_i`` [K] and heat capacity ``C_i``; walls between rooms ``i`` and
    ``j`` have resistance ``R_ij``; each room also exchanges heat with the outside temperature
    ``u_0`` through ``R_ext_i`` and with its own heat source at temperature ``u_(1+i)`` through ``R_int_i``::

        dx_i/dt = sum_j (x_j - x_i) / (R_ij C_i) + (u_0 - x_i) / (R_ext_i C_i) + (u_(1+i) - x_i) / (R_int_i C_i)

    so the input has ``nu = nx + 1`` columns. Resistances are an insulation R-value divided by a
    random wall area; capacities follow from random room volumes of air. Everything random is
    drawn from ``self.rng``.

    :param exclude_norms: keys ``normalize`` leaves untouched, default ``['Time']``
    :param backend: only ``'numpy'``
    :param requires_grad: unused
    :param seed: seed of ``self.rng``, default 59
    :param set_stats: compute ``stats`` from a reference simulation at construction, default False
    :param adj: edge list ``[2, edges]`` or adjacency matrix of the walls; default all rooms adjacent
    :param nx: number of rooms, default 1
    :param R: wall resistances, one per edge; default :meth:`get_resistances` with areas in ``[5, 20]``
    :param C: room heat capacities ``[nx]``; default :meth:`get_C`
    :param U: reference input ``[nsim + 1, nx + 1]``; default :meth:`get_U`
    :param nsim: length of the reference simulation, default 1001
    :raises ValueError: for a torch backend, a malformed graph or ``R``/``C`` of the wrong length
    """

    def __init__(self, exclude_norms: list[str] = ['Time'],  # noqa: B006 - the published signature's default
                 backend: str | ModuleType = "numpy", requires_grad: bool = False,
                 seed: int | np.random.Generator = 59, set_stats: bool = False,
                 adj: np.ndarray | None = None, nx: int = 1, R: Array | None = None,
                 C: Array | None = None, U: Array | None = None, nsim: int = _DEFAULT_NSIM) -> None:
        super().__init__(exclude_norms=exclude_norms, backend=backend, requires_grad=requires_grad, seed=seed,
                         adj=adj, nx=nx)
        self.nu = self.nx + 1
        self.nsim = int(nsim)
        edges, rooms = self.adj_list.shape[1], np.arange(self.nx)
        self.R = self._sized("R", R, edges) if R is not None else self.get_resistances(self.adj_list, amax=20, amin=5)
        self.C = self._sized("C", C, self.nx) if C is not None else self.get_C(self.nx)
        self.R_ext = self.get_resistances(np.stack([rooms, rooms]), amax=15, symmetric=False)
        self.R_int = self.get_resistances(np.stack([rooms, rooms]), Rval=1.0, amax=15, symmetric=False)
        self.R_extCi = 1.0 / (self.R_ext * self.C)
        self.R_intCi = 1.0 / (self.R_int * self.C)
        self.U = np.asarray(self.get_U(self.nsim + 1) if U is None else U, dtype=np.float32)
        if set_stats:
            self.set_stats()

    @staticmethod
    def _sized(name: str, value: Array, size: int) -> np.ndarray:
        """Broadcast a scalar or check an array ``value`` to ``size`` entries.

        :raises ValueError: for an array of another length
        """
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 0:
            return np.full(size, float(array))
        if array.shape != (size,):
            raise ValueError(f"{name} has shape {array.shape}; pass a scalar or {size} values")
        return array

    def get_x0(self) -> np.ndarray:
        """Random room temperatures uniformly in ``[288, 300]`` K."""
        return self.rng.uniform(288.0, 300.0, size=self.adj.shape[0])

    def get_U(self, nsim: int, periods: int | None = None) -> np.ndarray:
        """Outside temperature and per-room heat-source temperatures, ``[nsim, nx + 1]``.

        The outside temperature is a sinusoid in ``[280, 300]`` K plus noise in ``[-1, 1]``; each room's
        source is a sinusoid in ``[288, 300]`` K of twice the frequency, shifted by a random lag of up
        to 500 samples, plus noise in ``[-0.5, 0.5]``.

        :param nsim: number of steps
        :param periods: periods of the outside temperature over the horizon, default one per 500 steps
        """
        lag_span = 500
        periods = math.ceil(nsim / lag_span) if periods is None else periods
        rooms = self.adj.shape[0]
        outside = (signals.periodic(nsim, 1, min=280.0, max=300.0, periods=periods, rng=self.rng)
                   + signals.noise(nsim, 1, min=-1.0, max=1.0, rng=self.rng))
        sources = signals.periodic(nsim + lag_span, rooms, min=288.0, max=300.0, periods=2 * periods, rng=self.rng)
        lags = self.rng.integers(0, lag_span, size=rooms)
        sources = sources[lags[None, :] + np.arange(nsim)[:, None], np.arange(rooms)[None, :]]
        sources = sources + signals.noise(nsim, rooms, min=-0.5, max=0.5, rng=self.rng)
        return np.hstack([outside, sources])

    def get_resistances(self, adj_list: np.ndarray, Rval: float = 3.5, amax: float = 20, amin: float = 0,
                        symmetric: bool = True) -> np.ndarray:
        """Thermal resistances ``Rval / area`` of walls with random areas in ``[amin, amax]``.

        :param adj_list: ``[2, edges]`` walls
        :param Rval: insulation R-value, default 3.5 (fiberglass)
        :param amax: largest wall area, default 20
        :param amin: smallest wall area, default 0
        :param symmetric: give an edge and its reverse (when present) the same, averaged area
        :return: ``[edges]`` resistances
        """
        adj_list = np.asarray(adj_list)
        area = self.rng.uniform(amin, amax, size=adj_list.shape[1])
        if symmetric:
            index = {(int(i), int(j)): k for k, (i, j) in enumerate(adj_list.T)}
            reverse = np.array([index.get((int(j), int(i)), k) for k, (i, j) in enumerate(adj_list.T)], dtype=np.int64)
            area = (area + area[reverse]) / 2.0 if area.size else area
        return Rval / np.maximum(area, 1e-7)

    def get_C(self, num: int = 1) -> np.ndarray:
        """Heat capacities of ``num`` rooms of air with random volumes in ``[27, 500]`` m^3 (scaled by 1/100)."""
        heat_capacity_air, density_air = 700.0, 1.2
        volume = self.rng.uniform(3.0 ** 3, 10.0 * 10.0 * 5.0, size=num)
        return heat_capacity_air * density_air * volume / 100.0

    def message_passing(self, receivers: np.ndarray, senders: np.ndarray, t: Any, u: np.ndarray) -> np.ndarray:
        """Heat flow through each wall: ``(x_sender - x_receiver) / (R C_receiver)``."""
        return (senders - receivers) / (self.R * self.C[self.adj_list[0]])

    def equations(self, t: Any, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Room temperature derivatives: wall flows plus exchange with outside and with the heat sources."""
        x, u = np.asarray(x), np.asarray(u)
        walls = super().equations(t, x, u)
        return walls + self.R_extCi * (u[0] - x) + self.R_intCi * (u[1:] - x)

    @staticmethod
    def make_5_room(nsim: int = 10000) -> RC_Network:
        """A five-room floor plan with 14 directed walls (the one NeuroMANCER's networked-ODE tutorial uses).

        :param nsim: length of the reference input, default 10000
        """
        adj = np.array([[0, 1], [0, 2], [0, 3], [1, 0], [1, 3], [1, 4], [2, 0], [2, 3], [3, 0], [3, 1], [3, 2],
                        [3, 4], [4, 1], [4, 3]]).T
        return RC_Network(nx=5, adj=adj, nsim=nsim)


@multidim(True)
class Gravitational_System(Coupled_ODE):
    """Newtonian N-body problem in the plane. Each node's row is ``[mass, x, y, vx, vy]``::

        d(x, y)/dt = (vx, vy),   d(vx, vy)/dt = sum_j G m_j (p_j - p_i) / |p_j - p_i|**3

    :param backend: only ``'numpy'``
    :param set_stats: compute ``stats`` from a reference simulation at construction, default False
    :param G: gravitational constant, default 6.67e-11
    :param adj: which bodies attract which, default all pairs
    :param nx: number of bodies, default 4
    :param seed: seed of ``self.rng``, default 59
    :param x0: ``[nx, 5]`` initial rows, default :meth:`get_x0`
    :param nsim: length of the reference simulation, default 1001
    """

    mass_idx = [0]
    pos_idx = [1, 2]
    vel_idx = [3, 4]

    def __init__(self, backend: str | ModuleType = "numpy", set_stats: bool = False, G: float = 6.67e-11,
                 adj: np.ndarray | None = None, nx: int = 4, seed: int | np.random.Generator = 59,
                 x0: Array | None = None, nsim: int = _DEFAULT_NSIM) -> None:
        super().__init__(backend=backend, seed=seed, adj=adj, nx=nx)
        self.G = float(G)
        self.nsim = int(nsim)
        if x0 is not None:
            self.x0 = np.asarray(x0, dtype=np.float64).reshape(self.nx, 5)
        if set_stats:
            self.set_stats()

    def get_x0(self) -> np.ndarray:
        """Random bodies: masses in ``[0, 10]``, positions in ``[0, 2]^2``, velocities in ``[0, 0.1]^2``."""
        return self.rng.uniform(0.0, 1.0, size=(self.adj.shape[0], 5)) * np.array([10.0, 2.0, 2.0, 0.1, 0.1])

    def message_passing(self, receivers: np.ndarray, senders: np.ndarray, t: Any) -> np.ndarray:
        """Acceleration of each receiver due to its sender: ``G m_sender d / |d|**3`` with ``d`` from receiver to sender."""
        offset = senders[:, self.pos_idx] - receivers[:, self.pos_idx]
        distance = np.linalg.norm(offset, axis=1, keepdims=True)
        return self.G * senders[:, self.mass_idx] * offset / distance ** 3

    def equations(self, t: Any, x: np.ndarray) -> np.ndarray:
        """Derivatives of the ``[nx, 5]`` rows (masses are constant)."""
        x = np.asarray(x)
        dx = np.zeros_like(x, dtype=np.float64)
        dx[:, self.pos_idx] = x[:, self.vel_idx]
        dx[:, self.vel_idx] = super().equations(t, x)
        return dx

    @staticmethod
    def make_4_body(nsim: int = 10000) -> Gravitational_System:
        """Three unit-mass satellites on near-circular orbits around a body of mass 1e6 at the origin.

        :param nsim: length of the reference simulation, default 10000
        """
        x0 = np.array([[1e6, 0.0, 0.0, 0.0, 0.0],
                       [1.0, 1.0, 0.0, 0.0, 8.167e-3],
                       [1.0, 0.0, 2.0, 4.0835e-3, 0.0],
                       [1.0, -1.0, -1.0, 4e-3, -4e-3]])
        return Gravitational_System(nx=4, x0=x0, nsim=nsim)


@multidim(True)
class Boids(Coupled_ODE):
    """Reynolds' flocking boids in the box ``[0, 10]^2``. Each node's row is ``[x, y, vx, vy]``.

    The acceleration of a boid is the sum of cohesion (toward the mean position of its neighbours),
    alignment (toward their mean velocity), separation (away from boids closer than
    ``avoidance_range``) and a push of 0.5 back into the box within ``avoidance_range`` of a wall,
    limited to ``max_acc = 0.005``; boids move with their velocity limited to ``max_speed = 0.03``.
    The right-hand side switches rules at thresholds, so the solver runs with looser tolerances.

    :param backend: only ``'numpy'``
    :param set_stats: compute ``stats`` from a reference simulation at construction, default False
    :param coherence: cohesion gain, default 0.05
    :param separation: separation gain, default 0.01
    :param alignment: alignment gain, default 0.05
    :param avoidance_range: separation and wall distance, default 0.2
    :param visual_range: neighbours are the boids within this distance; None: the graph's edges
    :param nx: number of boids, default 50
    :param x0: ``[nx, 4]`` initial rows, default :meth:`get_x0`
    :param seed: seed of ``self.rng``, default 59
    """

    pos_idx = [0, 1]
    vel_idx = [2, 3]
    rtol = 1e-6
    atol = 1e-8
    box = (0.0, 10.0)

    def __init__(self, backend: str | ModuleType = "numpy", set_stats: bool = False, coherence: float = 0.05,
                 separation: float = 0.01, alignment: float = 0.05, avoidance_range: float = 0.2,
                 visual_range: float | None = None, nx: int = 50, x0: Array | None = None,
                 seed: int | np.random.Generator = 59) -> None:
        super().__init__(backend=backend, seed=seed, nx=nx)
        self.coherence, self.separation, self.alignment = coherence, separation, alignment
        self.avoidance_range = avoidance_range
        self.visual_range = None if visual_range is None else visual_range ** 2  # stored squared, as distances are
        self.max_speed, self.max_acc = 0.03, 0.005
        if x0 is not None:
            self.x0 = np.asarray(x0, dtype=np.float64).reshape(self.nx, 4)
        if set_stats:
            self.set_stats()

    def get_x0(self, nx: int | None = None, rseed: int | None = None) -> np.ndarray:
        """Random boids: positions in ``[3, 6] x [1, 4]``, velocities in ``[0, 0.06]^2``.

        :param nx: number of boids, default ``self.nx``
        :param rseed: draw from a fresh generator with this seed instead of ``self.rng``
        """
        count = self.adj.shape[0] if nx is None else nx
        rng = self.rng if rseed is None else np.random.default_rng(rseed)
        positions = rng.uniform(0.0, 3.0, size=(count, 2)) + np.array([3.0, 1.0])
        return np.hstack([positions, rng.uniform(0.0, 0.06, size=(count, 2))])

    def message_passing(self, receivers: np.ndarray, senders: np.ndarray, t: Any) -> np.ndarray:
        """Difference of each sender's and receiver's rows (positions or velocities)."""
        return senders - receivers

    def normalize_max(self, x: np.ndarray, length: float) -> np.ndarray:
        """Rescale the rows of ``x`` longer than ``length`` to length ``length`` (returns a new array)."""
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.where(norm > length, x * (length / np.maximum(norm, 1e-300)), x)

    def _mean_message(self, values: np.ndarray, receivers: np.ndarray, senders: np.ndarray) -> np.ndarray:
        """Mean over each boid's neighbours of ``values[sender] - values[boid]`` (zero without neighbours)."""
        total = _sum_messages(self.message_passing(values[receivers], values[senders], None), receivers, values)
        count = np.bincount(receivers, minlength=len(values))[:, None]
        return total / np.maximum(count, 1)

    def equations(self, t: Any, x: np.ndarray) -> np.ndarray:
        """Velocities (speed-limited) and accelerations of the ``[nx, 4]`` rows."""
        x = np.asarray(x, dtype=np.float64)
        pos, vel = x[:, self.pos_idx], self.normalize_max(x[:, self.vel_idx], self.max_speed)
        square_distance = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
        not_self = ~np.eye(len(pos), dtype=bool)
        if self.visual_range is None:
            receivers, senders = self.adj_list
        else:
            receivers, senders = np.nonzero((square_distance < self.visual_range) & not_self)
        acc = (self.coherence * self._mean_message(pos, receivers, senders)
               + self.alignment * self._mean_message(vel, receivers, senders))
        close_r, close_s = np.nonzero((square_distance < self.avoidance_range ** 2) & not_self)
        away = self.message_passing(pos[close_r], pos[close_s], t)
        away = away / np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-12)
        count = np.bincount(close_r, minlength=len(pos))[:, None]
        acc -= self.separation * _sum_messages(away, close_r, pos) / np.maximum(count, 1)
        low, high = self.box
        acc += 0.5 * (pos < low + self.avoidance_range) - 0.5 * (pos > high - self.avoidance_range)
        return np.hstack([vel, self.normalize_max(acc, self.max_acc)])


systems: dict[str, type] = {
    "RCNet": RC_Network,
    "Gravitational": Gravitational_System,
    "Boids": Boids,
}
