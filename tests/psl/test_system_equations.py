"""Each psl system against an independent solve of its published equations, plus invariants and defaults."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from neuromancer.psl import autonomous, nonautonomous, systems

TIGHT = dict(method="DOP853", rtol=1e-11, atol=1e-12)


def _chua(x, y, z):
    diode = -0.714 * x + 0.5 * (-1.143 + 0.714) * (abs(x + 1) - abs(x - 1))
    return [15.6 * (y - x - diode), x - y + z, -28.0 * y]


def _double_pendulum(t1, z1, t2, z2):
    c, s, g = math.cos(t1 - t2), math.sin(t1 - t2), 9.81
    den = 1.0 + s ** 2
    dz1 = (g * math.sin(t2) * c - s * (z1 ** 2 * c + z2 ** 2) - 2 * g * math.sin(t1)) / den
    dz2 = (2 * (z1 ** 2 * s - g * math.sin(t2) + g * math.sin(t1) * c) + z2 ** 2 * s * c) / den
    return [z1, dz1, z2, dz2]


def _autoignition(u, lam):
    w = (1 - lam) * math.exp((u - 1.1) / 0.3)
    regen = 0.55 * lam / (1 + math.exp(5.0 * (u - 0.55)))
    return [6.5 * w - u ** 2, w - regen]


# name -> (independent right-hand side f(t, x), horizon in steps); parameters are upstream's defaults
AUTONOMOUS_RHS = {
    "UniversalOscillator": (lambda t, x: [x[1], -4.0 * x[1] - x[0] + math.cos(t)], 30),
    "DoublePendulum": (lambda t, x: _double_pendulum(*x), 20),
    "ThomasAttractor": (lambda t, x: [math.sin(x[1]) - 0.208186 * x[0], math.sin(x[2]) - 0.208186 * x[1],
                                      math.sin(x[0]) - 0.208186 * x[2]], 30),
    "RosslerAttractor": (lambda t, x: [-x[1] - x[2], x[0] + 0.2 * x[1], 0.2 + x[2] * (x[0] - 5.7)], 30),
    "LotkaVolterra": (lambda t, x: [1.1 * x[0] - 0.4 * x[0] * x[1], 0.1 * x[0] * x[1] - 0.4 * x[1]], 30),
    "Brusselator1D": (lambda t, x: [1 + x[0] ** 2 * x[1] - 4 * x[0], 3 * x[0] - x[0] ** 2 * x[1]], 30),
    "ChuaCircuit": (lambda t, x: _chua(*x), 20),
    "Autoignition": (lambda t, x: _autoignition(*x), 30),
    "VanDerPol": (lambda t, x: [x[0] - x[0] ** 3 / 3 - x[1], x[0]], 30),
    "Pendulum": (lambda t, x: [x[1], -9.81 * math.sin(x[0]) - 3.0 * x[1]], 30),
}


def _iver(x, u):
    theta, _, uu, q, r, du, dq, dr = x
    return [q, r / math.cos(theta), -0.179 * uu ** 2 + 0.519 * du,
            -3.519 * uu * q - 0.748 * q - 8.947 * math.sin(theta) + 3.096 * uu ** 2 * dq,
            -0.441 * uu * r + 0.065 * uu ** 2 * dr, -10 * (du - u[0]), -10 * (dq - u[1]), -10 * (dr - u[2])]


def _seir(x, u):
    s, e, i, _ = x
    beta, alpha, gamma = 2.4 / 3.3, 1 / 5.1, 1 / 3.3
    flow = (1 - u[0]) * beta * s * i
    return [-flow, flow - alpha * e, alpha * e - gamma * i, gamma * i]


def _cstr(x, u):
    ca, temp = x
    rate = 7.2e10 * math.exp(-8750.0 / temp) * ca
    return [(1.0 - ca) - rate, (350.0 - temp) + 5e4 / 239.0 * rate + 5e4 / 23900.0 * (u[0] - temp)]


# name -> (f(t, x, u), constant input, x0 or None for the default, horizon in steps)
NONAUTONOMOUS_RHS = {
    "Actuator": (lambda t, x, u: [-10 * (x[k] - u[k]) for k in range(3)], [0.5, -0.3, 0.8], None, 20),
    "HindmarshRose": (lambda t, x, u: [x[1] - x[0] ** 3 + 2.6 * x[0] ** 2 - x[2] + u[0], 1 - 5 * x[0] ** 2 - x[1],
                                       0.01 * (4 * (x[0] + 1.6) - x[2])], [3.05], None, 30),
    "InvPendulum": (lambda t, x, u: [x[1], (0.15 * 9.81 * 0.5 * math.sin(x[0]) - 0.1 * x[1] + u[0]) / (0.15 * 0.25)],
                    [-0.2], None, 10),
    "IverSimple": (lambda t, x, u: _iver(x, u), [0.8, 0.3, -0.5], [0.05, 0.1, 0.5, 0.1, 0.05, 0.2, 0.0, 0.0], 30),
    "LorenzControl": (lambda t, x, u: [10 * (x[1] - x[0]) + u[0], x[0] * (28 - x[2]) - x[1],
                                       x[0] * x[1] - 8 / 3 * x[2] - u[1]], [0.5, -0.7], None, 30),
    "SEIR_population": (lambda t, x, u: _seir(x, u), [0.3, 0.9], [0.7, 0.1, 0.15, 0.05], 30),
    "SwingEquation": (lambda t, x, u: [2 * math.pi * 60 * x[1], (u[0] - 5 * math.sin(x[0]) - 5 * x[1])
                                       / (1000 / (2 * math.pi * 60))], [0.81], None, 30),
    "Tank": (lambda t, x, u: [u[0] * u[1] / 1000.0], [20.0, 7.0], None, 10),
    "ThomasAttractorControl": (lambda t, x, u: [math.sin(x[1]) - u[0] * x[0], math.sin(x[2]) - u[0] * x[1],
                                                math.sin(x[0]) - u[0] * x[2]], [0.3289], None, 30),
    "CSTR": (lambda t, x, u: _cstr(x, u), [302.0], None, 30),
    "TwoTank": (lambda t, x, u: [0.08 * (1 - u[1]) * u[0] - 0.04 * math.sqrt(x[0]),
                                 0.08 * u[1] * u[0] + 0.04 * math.sqrt(x[0]) - 0.04 * math.sqrt(x[1])],
                [0.3, 0.4], [0.1, 0.2], 30),
    "VanDerPolControl": (lambda t, x, u: [x[1], (1 - x[0] ** 2) * x[1] - x[0] + u[0]], [0.5], [1.0, 1.0], 30),
    "DuffingControl": (lambda t, x, u: [x[1], -0.02 * x[1] - x[0] - 5 * x[0] ** 3 + 8 * math.cos(0.5 * u[0])],
                       [1.3], None, 30),
}

ALL_SYSTEMS = sorted(set(autonomous.systems) | set(nonautonomous.systems))


def _reference(rhs, x0, ts, nsim):
    time = ts * np.arange(nsim + 1)
    return solve_ivp(rhs, (0.0, time[-1]), x0, t_eval=time, **TIGHT).y.T[1:]


@pytest.mark.parametrize("name", sorted(AUTONOMOUS_RHS))
def test_autonomous_system_matches_independent_solve(name):
    rhs, nsim = AUTONOMOUS_RHS[name]
    system = systems[name](set_stats=False)
    expected = _reference(rhs, np.asarray(system.x0, dtype=np.float64), system.ts, nsim)
    np.testing.assert_allclose(system.simulate(nsim=nsim)["X"], expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("name", sorted(NONAUTONOMOUS_RHS))
def test_nonautonomous_system_matches_independent_solve(name):
    rhs, u, x0, nsim = NONAUTONOMOUS_RHS[name]
    system = systems[name](set_stats=False)
    x0 = np.asarray(system.x0 if x0 is None else x0, dtype=np.float64)
    expected = _reference(lambda t, x: rhs(t, x, u), x0, system.ts, nsim)
    simulated = system.simulate(x0=x0, U=np.tile(u, (nsim + 1, 1)))["X"]
    np.testing.assert_allclose(simulated, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("name", ALL_SYSTEMS)
def test_torch_forward_step_matches_the_numpy_simulation(name):
    system = systems[name](set_stats=False)
    x0 = np.asarray(system.x0, dtype=np.float64)
    x = torch.tensor(np.stack([x0, x0]), dtype=torch.float64)
    if name in nonautonomous.systems:
        u = np.asarray(system.U[0], dtype=np.float64)
        expected = system.simulate(x0=x0, U=np.stack([u, u]))["X"][0]
        step = system(x, torch.tensor(np.stack([u, u])))
    else:
        expected = system.simulate(nsim=1)["X"][0]
        step = system(x, torch.zeros(2, 1, dtype=torch.float64))
    assert step.shape == (2, system.nx)
    # forward takes 10 RK4 substeps; HindmarshRose starts on a fast transient, hence 1e-3
    np.testing.assert_allclose(step.numpy(), np.stack([expected, expected]), rtol=1e-3, atol=1e-5 * (1 + np.abs(x0).max()))


def test_lotka_volterra_conserves_its_first_integral_and_rests_at_equilibrium():
    system = systems["LotkaVolterra"](set_stats=False)

    def integral(x, y):
        return 0.1 * x - 0.4 * np.log(x) + 0.4 * y - 1.1 * np.log(y)

    X = system.simulate(nsim=200, x0=np.array([2.0, 5.0]))["X"].astype(np.float64)
    np.testing.assert_allclose(integral(X[:, 0], X[:, 1]), integral(2.0, 5.0), rtol=1e-5)
    default = system.simulate(nsim=150)["X"].astype(np.float64)  # through the deep trough of the default orbit
    assert default[:, 0].min() < 1e-30 and np.all(default > 0)
    np.testing.assert_allclose(integral(default[:, 0], default[:, 1]), integral(5.0, 100.0), rtol=1e-6)
    rest = system.simulate(nsim=10, x0=np.array([4.0, 2.75]))["X"]
    np.testing.assert_allclose(rest, np.tile([4.0, 2.75], (10, 1)), rtol=1e-6)


def test_seir_keeps_the_population_and_full_isolation_stops_infection():
    system = systems["SEIR_population"](set_stats=False)
    x0 = np.array([0.9, 0.05, 0.04, 0.01])
    X = system.simulate(x0=x0, U=np.tile([1.0, 0.0], (101, 1)))["X"].astype(np.float64)
    np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(X[:, 0], 0.9, atol=1e-6)  # no new exposures under total isolation


def test_swing_equation_default_state_is_the_equilibrium_of_nominal_power():
    system = systems["SwingEquation"](set_stats=False)
    np.testing.assert_allclose(system.x0, [math.asin(0.8 / 5.0), 0.0], rtol=1e-6)
    X = system.simulate(x0=system.x0, U=np.full((21, 1), 0.8))["X"]
    np.testing.assert_allclose(X, np.tile(system.x0, (20, 1)), atol=1e-7)


def test_brusselator_settles_on_a_limit_cycle_around_its_unstable_fixed_point():
    X = systems["Brusselator1D"](set_stats=False).simulate(nsim=600, x0=np.array([1.01, 3.0]))["X"]
    late = X[300:]
    assert late[:, 0].max() - late[:, 0].min() > 2.0  # sustained oscillation, not decay to (a, b/a) = (1, 3)


DEFAULTS = {  # upstream 1.5 defaults: (sampling time, initial state, a few parameters)
    "Autoignition": (0.1, [1.0, 0.7], {"alpha": 0.3, "q": 6.5, "up": 0.55}),
    "Brusselator1D": (0.1, [1.0, 1.0], {"a": 1.0, "b": 3.0}),
    "ChuaCircuit": (0.1, [0.7, 0.0, 0.0], {"a": 15.6, "b": 28.0, "m0": -1.143, "m1": -0.714}),
    "DoublePendulum": (0.1, [3 * math.pi / 7, 0.0, 3 * math.pi / 4, 0.0], {"L1": 1.0, "g": 9.81}),
    "LotkaVolterra": (0.1, [5.0, 100.0], {"a": 1.1, "b": 0.4, "c": 0.1, "d": 0.4}),
    "RosslerAttractor": (0.1, [0.0, 0.0, 0.0], {"a": 0.2, "b": 0.2, "c": 5.7}),
    "ThomasAttractor": (0.1, [1.0, -1.0, 1.0], {"b": 0.208186}),
    "UniversalOscillator": (0.1, [1.0, 0.0], {"mu": 2.0, "omega": 1.0}),
    "Actuator": (0.1, [0.0, 0.0, 0.0], {"K_delta_u": -10.0}),
    "HindmarshRose": (0.1, [-5.0, -10.0, 0.0], {"b": 2.6, "xR": -1.6, "r": 0.01}),
    "InvPendulum": (0.1, [0.5, 0.0], {"L": 0.5, "m": 0.15, "b": 0.1}),
    "IverSimple": (0.01, [0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0], {"Bz": 8.947, "Zww": 0.098}),
    "LorenzControl": (0.01, [-8.0, 8.0, 27.0], {"sigma": 10.0, "rho": 28.0}),
    "SEIR_population": (0.01, [0.9999, 0.0001, 0.0, 0.0], {"R0": 2.4, "beta": 2.4 / 3.3}),
    "SwingEquation": (0.01, [math.asin(0.16), 0.0], {"Pmax": 5.0, "H": 500.0, "M": 1000 / (120 * math.pi)}),
    "Tank": (0.1, [0.0], {"rho": 1000.0, "A": 1.0}),
    "ThomasAttractorControl": (0.1, [1.0, -1.0, 1.0], {"b": 0.208186}),
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_defaults_are_upstreams(name):
    ts, x0, parameters = DEFAULTS[name]
    system = systems[name](set_stats=False)
    assert system.ts == ts
    np.testing.assert_allclose(system.x0, x0, rtol=1e-6)
    for key, value in parameters.items():
        assert getattr(system, key) == pytest.approx(value)


INPUT_BOUNDS = {  # default excitation of each system with input: (nu, lower, upper)
    "Actuator": (3, [0.0, -1.0, -1.0], [1.0, 1.0, 1.0]),
    "HindmarshRose": (1, [2.99], [3.1]),
    "IverSimple": (3, [0.0, -1.0, -1.0], [1.0, 1.0, 1.0]),
    "LorenzControl": (2, [-1.0, -1.0], [1.0, 1.0]),
    "SEIR_population": (2, [0.0, 0.0], [1.0, 1.0]),
    "SwingEquation": (1, [0.784], [0.816]),
    "Tank": (2, [0.1, 0.0], [55.0, 11.0]),
    "ThomasAttractorControl": (1, [0.198186], [1.01]),
}


@pytest.mark.parametrize("name", sorted(INPUT_BOUNDS))
def test_default_inputs_respect_upstream_bounds(name):
    nu, low, high = INPUT_BOUNDS[name]
    system = systems[name](set_stats=False)
    U = system.get_U(300)
    assert system.nu == nu and U.shape == (300, nu) and U.dtype == np.float32
    assert np.all(U >= np.array(low, dtype=np.float32) - 1e-6) and np.all(U <= np.array(high, dtype=np.float32) + 1e-6)
    named = system.get_U(50, signal="walk")
    assert named.shape == (50, nu)


def test_lorenz_control_default_input_is_the_two_tone_forcing():
    system = systems["LorenzControl"](set_stats=False)
    U = system.get_U(100).astype(np.float64)
    steps = 0.01 * np.arange(100)
    grid = np.linspace(0.0, np.pi, 100001)  # the forcing starts at a random time in [0, pi]
    mismatch = [np.abs(np.sin(2 * (grid + t)) - U[k, 0]) + np.abs(np.sin(8 * (grid + t)) - U[k, 1])
                for k, t in enumerate(steps[:3])]
    start = grid[np.argmin(sum(mismatch))]
    np.testing.assert_allclose(system.u_fun(start + steps), U, atol=1e-3)


def test_inverted_pendulum_default_input_is_small_gaussian_noise():
    U = systems["InvPendulum"](set_stats=False).get_U(20000)
    assert abs(U.mean()) < 0.005 and U.std() == pytest.approx(0.1, rel=0.03)


def test_thomas_control_steps_between_the_four_dissipation_levels():
    U = systems["ThomasAttractorControl"](set_stats=False).get_U(480)[:, 0]
    levels = np.array([0.208186, 0.3289, 0.5, 1.0])
    assert np.abs(U[:, None] - levels[None, :]).min(axis=1).max() <= 0.01 + 1e-6
