"""Tests of the psl emulators against independent references (equilibria, invariants, scipy solves)."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import brentq, fsolve

from neuromancer.psl import ODE_Autonomous, ODE_NonAutonomous, autonomous, coupled_systems, nonautonomous, systems
from neuromancer.psl.base import EmulatorBase

NONAUTONOMOUS = sorted(nonautonomous.systems)
AUTONOMOUS = sorted(autonomous.systems)
TIGHT = dict(method="LSODA", rtol=1e-11, atol=1e-11)


UPSTREAM_REGISTRY = {  # upstream 1.5 psl.systems without the building-envelope models
    "Actuator", "Autoignition", "Boids", "Brusselator1D", "CSTR", "ChuaCircuit", "DoublePendulum", "Duffing",
    "DuffingControl", "Gravitational", "HindmarshRose", "InvPendulum", "IverSimple", "LorenzControl",
    "LorenzSystem", "LotkaVolterra", "Pendulum", "RCNet", "RosslerAttractor", "SEIR_population", "SwingEquation",
    "Tank", "ThomasAttractor", "ThomasAttractorControl", "TwoTank", "UniversalOscillator", "VanDerPol",
    "VanDerPolControl",
}


def test_registry_lists_the_systems():
    assert set(systems) == UPSTREAM_REGISTRY
    assert set(systems) == set(NONAUTONOMOUS) | set(AUTONOMOUS) | set(coupled_systems.systems)
    assert all(issubclass(systems[n], ODE_NonAutonomous) for n in NONAUTONOMOUS)
    assert all(issubclass(systems[n], ODE_Autonomous) for n in AUTONOMOUS)
    assert issubclass(ODE_Autonomous, EmulatorBase) and issubclass(EmulatorBase, torch.nn.Module)


@pytest.mark.parametrize("name", NONAUTONOMOUS + AUTONOMOUS)
def test_simulation_shapes_dtypes_and_time(name):
    system = systems[name](set_stats=False)
    data = system.simulate(nsim=12)
    expected = {"Y", "X", "Time"} | ({"U"} if name in NONAUTONOMOUS else set())
    assert set(data) == expected
    assert data["X"].shape == (12, system.nx) and data["Y"].shape == (12, system.ny)
    assert data["Time"].shape == (12,)
    np.testing.assert_allclose(data["Time"], system.ts * np.arange(1, 13), rtol=1e-6)
    if name in NONAUTONOMOUS:
        assert data["U"].shape == (12, system.nu)
    assert all(v.dtype == np.float32 for v in data.values())


@pytest.mark.parametrize("name", NONAUTONOMOUS + AUTONOMOUS)
def test_same_seed_reproduces_random_draws_and_simulations(name):
    first, second = systems[name](seed=3, set_stats=False), systems[name](seed=3, set_stats=False)
    np.testing.assert_array_equal(first.get_x0(), second.get_x0())
    np.testing.assert_array_equal(first.simulate(nsim=8)["X"], second.simulate(nsim=8)["X"])
    if name in NONAUTONOMOUS:
        np.testing.assert_array_equal(first.get_U(40), second.get_U(40))


def test_stats_describe_the_reference_simulation():
    system = systems["VanDerPol"]()
    X = system.stats_data["X"].astype(np.float64)
    assert set(system.stats) == {"X", "Y"}  # 'Time' is excluded from normalization
    np.testing.assert_allclose(system.stats["X"]["mean"], X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(system.stats["X"]["std"], X.std(0), rtol=1e-5)
    np.testing.assert_allclose(system.stats["X"]["min"], X.min(0))
    assert system.stats_data["X"].shape == (system.nsim, 2)


def test_default_get_x0_draws_within_the_reference_state_range():
    system = systems["Pendulum"]()
    draws = np.stack([system.get_x0() for _ in range(50)])
    assert np.all(draws >= system.stats["X"]["min"]) and np.all(draws <= system.stats["X"]["max"])


def test_undamped_pendulum_conserves_energy():
    system = systems["Pendulum"](set_stats=False)
    system.set_params({"f": 0.0})
    x0 = np.array([1.0, 0.5])
    X = system.simulate(nsim=300, x0=x0)["X"].astype(np.float64)

    def energy(theta, omega):
        return 0.5 * omega ** 2 + 9.81 * (1.0 - np.cos(theta))

    assert np.abs(energy(X[:, 0], X[:, 1]) - energy(*x0)).max() < 1e-4


def test_lorenz_matches_independent_solve():
    system = systems["LorenzSystem"](set_stats=False)

    def lorenz(t, s):
        x, y, z = s
        return [10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z]

    time = 0.1 * np.arange(31)
    reference = solve_ivp(lorenz, (0.0, 3.0), [1.0, 1.0, 1.0], t_eval=time, **TIGHT).y.T[1:]
    np.testing.assert_allclose(system.simulate(nsim=30)["X"], reference, atol=2e-4, rtol=1e-5)


def test_forced_duffing_matches_independent_solve():
    system = systems["Duffing"](set_stats=False)

    def duffing(t, s):
        return [s[1], -0.02 * s[1] - s[0] - 5.0 * s[0] ** 3 + 8.0 * np.cos(0.5 * t)]

    time = 0.01 * np.arange(301)
    reference = solve_ivp(duffing, (0.0, 3.0), [1.0, 0.0], t_eval=time, **TIGHT).y.T[1:]
    np.testing.assert_allclose(system.simulate(nsim=300)["X"], reference, atol=1e-5)


def test_van_der_pol_rests_at_its_equilibrium():
    system = systems["VanDerPol"](set_stats=False)
    np.testing.assert_array_equal(system.simulate(nsim=20, x0=np.zeros(2))["X"], np.zeros((20, 2)))


def test_two_tank_settles_at_the_root_of_its_equations():
    system = systems["TwoTank"](set_stats=False)
    pump, valve, c1, c2 = 0.3, 0.4, 0.08, 0.04

    def balances(h):
        h1, h2 = np.abs(h)
        return [c1 * (1 - valve) * pump - c2 * np.sqrt(h1), c1 * valve * pump + c2 * np.sqrt(h1) - c2 * np.sqrt(h2)]

    steady = np.abs(fsolve(balances, [0.2, 0.2], xtol=1e-14))
    U = np.tile([pump, valve], (601, 1))
    X = system.simulate(nsim=600, x0=np.array([0.05, 0.05]), U=U)["X"]
    np.testing.assert_allclose(X[-1], steady, atol=1e-5)


def test_two_tank_full_tank_cannot_rise():
    system = systems["TwoTank"](set_stats=False)
    derivative = system.equations(0.0, np.array([1.0, 1.0]), np.array([0.5, 0.5]))
    assert np.all(derivative <= 0.0)


def _cstr_balances(x, coolant):
    ca, temp = x
    rate = 7.2e10 * np.exp(-8750.0 / temp) * ca
    return [(1.0 - ca) - rate, (350.0 - temp) + 5e4 / 239.0 * rate + 5e4 / 23900.0 * (coolant - temp)]


def test_cstr_default_state_is_the_steady_state_of_u_ss():
    system = systems["CSTR"](set_stats=False)
    steady = fsolve(_cstr_balances, [0.9, 320.0], args=(300.0,), xtol=1e-13)
    np.testing.assert_allclose(system.x0, steady, rtol=1e-6)


def test_cstr_settles_at_the_root_of_its_equations():
    system = systems["CSTR"](set_stats=False)
    steady = fsolve(_cstr_balances, [0.85, 326.0], args=(301.0,), xtol=1e-13)
    X = system.simulate(nsim=400, U=np.full((401, 1), 301.0))["X"]
    np.testing.assert_allclose(X[-1], steady, rtol=1e-5)


def test_controlled_van_der_pol_rests_at_its_forced_equilibrium():
    system = systems["VanDerPolControl"](set_stats=False)
    X = system.simulate(nsim=20, x0=np.array([0.7, 0.0]), U=np.full((21, 1), 0.7))["X"]
    np.testing.assert_allclose(X, np.tile([0.7, 0.0], (20, 1)), atol=1e-7)


def test_duffing_control_rests_where_stiffness_balances_the_drive():
    system = systems["DuffingControl"](set_stats=False)
    drive = 8.0 * np.cos(0.5 * 1.3)
    x1 = brentq(lambda z: z + 5.0 * z ** 3 - drive, -5.0, 5.0, xtol=1e-14)
    X = system.simulate(nsim=20, x0=np.array([x1, 0.0]), U=np.full((21, 1), 1.3))["X"]
    np.testing.assert_allclose(X, np.tile([x1, 0.0], (20, 1)), atol=1e-6)


def test_inputs_are_held_over_each_step_and_reported_shifted():
    system = systems["VanDerPolControl"](set_stats=False)
    U = np.array([[0.0], [0.0], [4.0], [-9.0]])
    data = system.simulate(x0=np.array([1.0, 1.0]), U=U)
    np.testing.assert_array_equal(data["U"], U[1:])
    unforced = system.simulate(x0=np.array([1.0, 1.0]), U=np.array([[0.0], [0.0], [0.0], [5.0]]))
    np.testing.assert_array_equal(data["X"][:2], unforced["X"][:2])  # U[2] acts from Time[2] on
    assert not np.allclose(data["X"][2], unforced["X"][2])


def test_wrong_input_length_raises():
    system = systems["TwoTank"](set_stats=False)
    with pytest.raises(ValueError, match=r"needs U of shape \(4, 2\)"):
        system.simulate(nsim=3, U=np.zeros((3, 2)))


def test_get_u_respects_bounds_and_signal_choice():
    system = systems["CSTR"](set_stats=False)
    U = system.get_U(200, signal="walk")
    assert U.shape == (200, 1) and U.min() >= 297.0 - 1e-3 and U.max() <= 303.0 + 1e-3
    with pytest.raises(KeyError, match="unknown signal 'chirp'"):
        system.get_U(10, signal="chirp")


def test_forward_step_matches_simulation_and_is_differentiable():
    pendulum = systems["Pendulum"](set_stats=False)
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    nxt = pendulum(x, torch.zeros(1, 1, dtype=torch.float64))
    expected = pendulum.simulate(nsim=1, x0=np.array([0.3, -0.2]))["X"][0]
    np.testing.assert_allclose(nxt.detach().numpy()[0], expected, rtol=1e-5)
    nxt.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    tank = systems["TwoTank"](set_stats=False)
    step = tank(torch.tensor([[0.2, 0.3]] * 4), torch.tensor([[0.3, 0.4]] * 4))
    simulated = tank.simulate(x0=np.array([0.2, 0.3]), U=np.tile([0.3, 0.4], (2, 1)))["X"][0]
    assert step.shape == (4, 2)
    np.testing.assert_allclose(step[0].numpy(), simulated, rtol=1e-4)


def test_torch_backend_returns_tensors_and_trainable_parameters():
    system = systems["Pendulum"](backend="torch", requires_grad=True, set_stats=False)
    assert isinstance(system.simulate(nsim=3)["X"], torch.Tensor)
    system(torch.tensor([[0.5, 0.0]]), torch.zeros(1, 1)).sum().backward()
    assert system.g.grad is not None and system.g.grad.abs() > 0
    system.change_backend("numpy")
    assert isinstance(system.g, float) and isinstance(system.simulate(nsim=3)["X"], np.ndarray)


def test_switching_to_torch_recasts_float_parameters_and_samplers_return_tensors():
    plant = systems["Actuator"]()  # numpy backend: its physical parameters are plain floats
    plant.change_backend("torch")
    assert all(isinstance(getattr(plant, name), torch.Tensor) for name in plant.parameter_names)
    x0, U, R = plant.get_x0(), plant.get_U(5), plant.get_R(4)
    assert isinstance(x0, torch.Tensor) and x0.dtype == torch.float32 and x0.shape == (3,)
    assert isinstance(U, torch.Tensor) and U.dtype == torch.float32 and U.shape == (5, 3)
    assert isinstance(R, torch.Tensor) and R.shape == (4, 3)
    assert plant(x0.reshape(1, 3), U[:1]).shape == (1, 3)
    plant.change_backend("numpy")
    assert isinstance(plant.get_x0(), np.ndarray) and isinstance(plant.K_delta_u, float)


def test_normalize_roundtrip_and_exclusions():
    system = systems["VanDerPol"]()
    data = system.simulate(nsim=10)
    scaled = system.normalize(data)
    np.testing.assert_array_equal(scaled["Time"], data["Time"])
    expected = (data["X"] - system.stats["X"]["mean"]) / system.stats["X"]["std"]
    np.testing.assert_allclose(scaled["X"], expected, rtol=1e-6)
    np.testing.assert_allclose(system.denormalize(scaled)["X"], data["X"], rtol=1e-5, atol=1e-6)
    tensor = system.normalize(torch.from_numpy(data["X"]), key="X")
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-6)
    with pytest.raises(KeyError, match="pass key="):
        system.normalize(data["X"])


def test_random_state_save_and_restore():
    system = systems["TwoTank"](set_stats=False)
    system.save_random_state()
    first = system.get_x0()
    system.restore_random_state()
    np.testing.assert_array_equal(system.get_x0(), first)


def test_set_params_rejects_unknown_names():
    system = systems["Pendulum"](set_stats=False)
    with pytest.raises(KeyError, match="no parameter 'mass'"):
        system.set_params({"mass": 2.0})
    with pytest.raises(ValueError, match="x0 has 3 entries"):
        system.set_params({"x0": [0.0, 0.0, 0.0]})
