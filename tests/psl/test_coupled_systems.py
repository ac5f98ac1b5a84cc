"""Tests of the networked psl systems: graphs, message passing, independent solves and conservation laws."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from neuromancer.psl import systems
from neuromancer.psl.coupled_systems import (
    Boids,
    Coupled_NonAutonomous,
    Coupled_ODE,
    Gravitational_System,
    RC_Network,
    multidim,
)

TIGHT = dict(method="DOP853", rtol=1e-11, atol=1e-12)
FIVE_ROOMS = np.array([[0, 1], [0, 2], [0, 3], [1, 0], [1, 3], [1, 4], [2, 0], [2, 3], [3, 0], [3, 1], [3, 2],
                       [3, 4], [4, 1], [4, 3]]).T


class Diffusion(Coupled_ODE):
    """Consensus dynamics dx_i/dt = sum_j (x_j - x_i): the graph Laplacian flow."""

    def message_passing(self, receivers, senders, t):
        return senders - receivers


def test_registry_names_the_coupled_systems():
    assert systems["RCNet"] is RC_Network
    assert systems["Gravitational"] is Gravitational_System
    assert systems["Boids"] is Boids


def test_message_passing_base_class_is_the_laplacian_flow():
    edges = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])  # a path 0-1-2-3
    system = Diffusion(adj=edges, nx=4)
    x0 = np.array([1.0, -2.0, 0.5, 3.0])
    laplacian = np.diag(system.adj.sum(1)) - system.adj
    X = system.simulate(nsim=10, x0=x0)["X"]
    expected = np.stack([expm(-laplacian * t) @ x0 for t in 0.1 * np.arange(1, 11)])
    np.testing.assert_allclose(X, expected, atol=1e-6)
    np.testing.assert_allclose(X.sum(axis=1), x0.sum(), atol=1e-5)  # the flow conserves the total


def test_graph_given_as_matrix_or_edge_list_or_default():
    matrix = np.zeros((5, 5))
    matrix[FIVE_ROOMS[0], FIVE_ROOMS[1]] = 1
    from_matrix = Diffusion(adj=matrix, nx=1)
    from_edges = Diffusion(adj=FIVE_ROOMS, nx=5)
    assert from_matrix.nx == from_edges.nx == 5
    np.testing.assert_array_equal(from_matrix.adj_list, from_edges.adj_list)
    np.testing.assert_array_equal(from_edges.adj, matrix)
    complete = Diffusion(nx=3)
    assert complete.adj_list.shape == (2, 6) and np.all(complete.adj_list[0] != complete.adj_list[1])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(adj=np.array([[0, 5], [1, 0]]), nx=3), ValueError, "outside"),
    (dict(adj=np.zeros((3, 2, 2)), nx=3), ValueError, "edge list"),
    (dict(nx=0), ValueError, "positive integer"),
    (dict(nx=2, backend="torch"), ValueError, "numpy"),
])
def test_invalid_graphs_and_backends_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        Diffusion(**kwargs)


def test_unimplemented_message_passing_raises():
    with pytest.raises(NotImplementedError, match="message_passing"):
        Coupled_ODE(nx=2).simulate(nsim=2)
    with pytest.raises(NotImplementedError, match="message_passing"):
        Coupled_NonAutonomous(nx=2).simulate(nsim=2, U=np.zeros((3, 2)))


def _rc_reference(system, x0, u, nsim):
    rooms = system.nx
    conductance = np.zeros((rooms, rooms))
    conductance[system.adj_list[0], system.adj_list[1]] = 1.0 / system.R

    def rhs(t, x):
        walls = (conductance * (x[None, :] - x[:, None])).sum(1)
        return (walls + (u[0] - x) / system.R_ext + (u[1:] - x) / system.R_int) / system.C

    time = system.ts * np.arange(nsim + 1)
    return solve_ivp(rhs, (0.0, time[-1]), x0, t_eval=time, **TIGHT).y.T[1:]


def test_rc_network_five_rooms_matches_independent_solve():
    system = RC_Network.make_5_room(nsim=40)
    assert (system.nx, system.nu) == (5, 6) and system.U.shape == (41, 6)
    u = np.array([285.0, 295.0, 290.0, 300.0, 292.0, 289.0])
    x0 = np.asarray(system.x0, dtype=np.float64)
    data = system.simulate(x0=x0, U=np.tile(u, (41, 1)))
    assert {k: v.shape for k, v in data.items()} == {"X": (40, 5), "Y": (40, 5), "U": (40, 6), "Time": (40,)}
    np.testing.assert_allclose(data["X"], _rc_reference(system, x0, u, 40), rtol=1e-6)


def test_rc_network_rests_when_every_temperature_is_equal():
    system = RC_Network(nx=3, seed=1)
    X = system.simulate(x0=np.full(3, 293.0), U=np.full((11, 4), 293.0))["X"]
    np.testing.assert_allclose(X, 293.0, rtol=1e-7)


def test_rc_network_physics_and_default_input_ranges():
    system = RC_Network.make_5_room(nsim=600)
    reverse = {(i, j): k for k, (i, j) in enumerate(system.adj_list.T)}
    np.testing.assert_allclose(system.R, [system.R[reverse[(j, i)]] for i, j in system.adj_list.T])  # symmetric walls
    assert np.all(system.R >= 3.5 / 20) and np.all(system.C >= 700 * 1.2 * 27 / 100) and np.all(system.C <= 4200)
    U = system.get_U(600)
    assert U.shape == (600, 6)
    assert U[:, 0].min() >= 279.0 - 1e-9 and U[:, 0].max() <= 301.0 + 1e-9
    assert U[:, 1:].min() >= 287.5 - 1e-9 and U[:, 1:].max() <= 300.5 + 1e-9
    assert np.all((system.x0 >= 288) & (system.x0 <= 300))


def test_rc_network_is_reproducible_under_a_seed_and_accepts_given_r_and_c():
    first, second, other = RC_Network(nx=3, seed=4), RC_Network(nx=3, seed=4), RC_Network(nx=3, seed=5)
    for name in ("R", "C", "x0", "U", "R_ext", "R_int"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert not np.array_equal(first.U, other.U)
    np.testing.assert_array_equal(first.simulate(nsim=5)["X"], second.simulate(nsim=5)["X"])
    given = RC_Network(nx=3, R=2.0, C=np.array([100.0, 200.0, 300.0]))
    np.testing.assert_array_equal(given.R, np.full(6, 2.0))
    with pytest.raises(ValueError, match="C has shape"):
        RC_Network(nx=3, C=np.ones(2))


def _nbody(G, masses):
    def rhs(t, flat):
        state = flat.reshape(len(masses), 4)
        pos, vel = state[:, :2], state[:, 2:]
        offset = pos[None, :, :] - pos[:, None, :]
        dist = np.linalg.norm(offset, axis=-1) + np.eye(len(masses))
        acc = (G * masses[None, :, None] * offset / dist[..., None] ** 3).sum(1)
        return np.hstack([vel, acc]).ravel()
    return rhs


def test_gravitational_system_matches_independent_solve_and_conserves_momentum():
    x0 = np.array([[5.0, 0.0, 0.0, 0.0, 0.1], [2.0, 1.0, 0.0, 0.0, -0.3], [1.0, 0.0, 1.5, 0.2, 0.0]])
    system = Gravitational_System(nx=3, G=0.1, x0=x0)
    X = system.simulate(nsim=30)["X"].astype(np.float64)
    assert X.shape == (30, 3, 5)
    np.testing.assert_array_equal(X[:, :, 0], np.tile(x0[:, 0], (30, 1)))  # masses do not change
    time = 0.1 * np.arange(31)
    flat = solve_ivp(_nbody(0.1, x0[:, 0]), (0, 3.0), x0[:, 1:].ravel(), t_eval=time, **TIGHT).y.T[1:]
    np.testing.assert_allclose(X[:, :, 1:], flat.reshape(30, 3, 4), rtol=1e-5, atol=1e-6)
    momentum = (X[:, :, [0]] * X[:, :, 3:]).sum(axis=1)
    np.testing.assert_allclose(momentum, np.tile((x0[:, [0]] * x0[:, 3:]).sum(0), (30, 1)), atol=1e-5)


def test_four_body_satellite_keeps_its_circular_orbit():
    system = Gravitational_System.make_4_body(nsim=50)
    assert system.nsim == 50 and system.x0.shape == (4, 5)
    X = system.simulate(nsim=200)["X"].astype(np.float64)
    radius = np.linalg.norm(X[:, 1, 1:3], axis=1)
    np.testing.assert_allclose(radius, 1.0, atol=1e-4)


def test_gravitational_default_bodies_are_seeded():
    first, second = Gravitational_System(seed=3), Gravitational_System(seed=3)
    np.testing.assert_array_equal(first.x0, second.x0)
    assert first.x0.shape == (4, 5) and np.all(first.x0[:, 0] <= 10) and np.all(first.x0[:, 3:] <= 0.1)


def test_boids_shapes_speed_limit_and_box():
    system = Boids(nx=12, seed=2)
    data = system.simulate(nsim=40)
    assert data["X"].shape == (40, 12, 4) and data["Time"].shape == (40,)
    path = np.concatenate([system.x0[None, :, :2], data["X"][:, :, :2]]).astype(np.float64)
    step = np.linalg.norm(np.diff(path, axis=0), axis=-1)
    assert step.max() <= system.max_speed * system.ts * 1.01  # float32 outputs


def test_boids_rules():
    system = Boids(nx=3, coherence=1.0, alignment=0.0, separation=0.0)
    system.max_acc = 10.0
    x = np.array([[5.0, 5.0, 0, 0], [6.0, 5.0, 0, 0], [5.0, 6.0, 0, 0]])
    acc = system.equations(0.0, x.ravel()).reshape(3, 4)[:, 2:]
    np.testing.assert_allclose(acc[0], [0.5, 0.5])  # toward the mean position of the other two
    near_wall = np.array([[0.1, 5.0, 0, 0], [5.0, 5.0, 0, 0], [5.0, 9.95, 0, 0]])
    walls = Boids(nx=3, coherence=0.0, alignment=0.0, separation=0.0)
    walls.max_acc = 10.0
    acc = walls.equations(0.0, near_wall.ravel()).reshape(3, 4)[:, 2:]
    np.testing.assert_allclose(acc, [[0.5, 0.0], [0.0, 0.0], [0.0, -0.5]])
    np.testing.assert_allclose(system.normalize_max(np.array([[3.0, 4.0], [0.1, 0.0]]), 1.0), [[0.6, 0.8], [0.1, 0.0]])


def test_boids_seeded_initial_state_and_stats():
    assert np.array_equal(Boids(seed=1).x0, Boids(seed=1).x0)
    np.testing.assert_array_equal(Boids().get_x0(nx=5, rseed=9), Boids(seed=3).get_x0(nx=5, rseed=9))
    flock = Boids(nx=6)
    flock.set_stats(nsim=20)
    assert flock.stats["X"]["mean"].shape == (4,)  # per feature, over time and boids
    bodies = Gravitational_System(set_stats=True, nsim=20)
    assert bodies.stats_data["X"].shape == (20, 4, 5) and bodies.stats["X"]["max"].shape == (5,)


def test_multidim_decorator_reshapes_states():
    @multidim(True)
    class Decay(Coupled_ODE):
        def get_x0(self):
            return np.zeros((self.adj.shape[0], 3))

        def equations(self, t, x):
            return -x

    system = Decay(nx=2)
    x0 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    X = system.simulate(nsim=3, x0=x0)["X"]
    assert X.shape == (3, 2, 3)
    np.testing.assert_allclose(X[-1], x0 * np.exp(-0.3), rtol=1e-6)
