"""Tests of neuromancer.dynamics.ode.ODESystem: sizes, input checks and use inside an integrator."""
import math

import pytest
import torch

from neuromancer.dynamics import RK4, ODESystem


class Tank(ODESystem):
    """dx/dt = -k x + u with a learnable k."""

    def __init__(self):
        super().__init__(insize=2, outsize=1)
        self.k = torch.nn.Parameter(torch.tensor(0.5))

    def ode_equations(self, x, u):
        return -self.k * x + u


def test_sizes_and_equations():
    tank = Tank()
    assert (tank.in_features, tank.out_features, tank.nx, tank.nu) == (2, 1, 1, 1)
    torch.testing.assert_close(tank(torch.ones(3, 1), torch.ones(3, 1)), torch.full((3, 1), 0.5))


def test_wrong_widths_raise():
    tank = Tank()
    with pytest.raises(ValueError, match="nx=1"):
        tank(torch.ones(3, 2), torch.ones(3, 1))
    with pytest.raises(ValueError, match="nu = insize - outsize = 1"):
        tank(torch.ones(3, 1))
    with pytest.raises(ValueError, match="outsize <= insize"):
        ODESystem.__init__(Tank.__new__(Tank), insize=1, outsize=2)


def test_integrated_ode_is_accurate_and_trainable():
    tank = Tank()
    step = RK4(tank, h=0.1)
    x = step(torch.ones(1, 1), torch.zeros(1, 1))
    assert x.item() == pytest.approx(math.exp(-0.05), abs=1e-7)
    x.sum().backward()
    assert tank.k.grad is not None and tank.k.grad.item() < 0


# --- upstream's ready-made systems ------------------------------------------------------------

from neuromancer.dynamics import integrators as integrator_registry  # noqa: E402
from neuromancer.dynamics import ode, physics  # noqa: E402
from neuromancer.dynamics.library import PolynomialLibrary  # noqa: E402


class Product(torch.nn.Module):
    """The learned term of a hybrid model, here exactly x1 * x2 (so hybrids equal their physics)."""

    in_features, out_features = 2, 1

    def forward(self, x):
        return x[:, [0]] * x[:, [1]]


# (number of states, number of extra input columns or None for autonomous)
SIZES = {"LorenzParam": (3, None), "LotkaVolterraParam": (2, None), "BrusselatorParam": (2, None),
         "DuffingParam": (2, 1), "TwoTankParam": (2, 2), "LorenzControl": (3, 2), "CSTR_Param": (2, 1),
         "VanDerPolControl": (2, 1), "LotkaVolterraHybrid": (2, None), "BrusselatorHybrid": (2, None)}


def _system(name):
    cls = ode.odes[name]
    return cls(Product()) if "Hybrid" in name else cls()


def _inputs(name, batch=5):
    nx, nu = SIZES[name]
    generator = torch.Generator().manual_seed(0)
    if name == "CSTR_Param":
        x = torch.tensor([[0.5, 320.0]]).repeat(batch, 1)
        return x, [torch.full((batch, 1), 300.0)]
    x = torch.rand(batch, nx, generator=generator)
    return x, [] if nu is None else [torch.rand(batch, nu, generator=generator)]


def test_registries_hold_upstreams_systems():
    assert set(ode.ode_param_systems_auto) == {"LorenzParam", "LotkaVolterraParam", "BrusselatorParam"}
    assert set(ode.ode_param_systems_nonauto) == {"DuffingParam", "TwoTankParam", "LorenzControl", "CSTR_Param",
                                                  "VanDerPolControl"}
    assert set(ode.ode_hybrid_systems_auto) == {"LotkaVolterraHybrid", "BrusselatorHybrid"}
    assert ode.ode_networked_systems == {"GeneralNetworkedODE": ode.GeneralNetworkedODE}
    assert set(ode.odes) == set(SIZES) | {"GeneralNetworkedODE"}
    assert all(issubclass(cls, ODESystem) for cls in ode.odes.values())


def _assert_close_to_exact_step(system, x, args, x_next, h):
    """One step lands within 5% of the step length of a fine RK4 reference (row max norms)."""
    with torch.no_grad():
        reference = x.double()
        fine = integrator_registry.RK4(lambda state, *a: system(state.float(), *a).double(), h=h / 20)
        for _ in range(20):
            reference = fine(reference, *args)
        error = (x_next.detach().double() - reference).abs().amax(dim=-1)
        step_length = (reference - x.double()).abs().amax(dim=-1)
        assert (error <= 0.05 * step_length + 1e-6 * (1 + reference.abs().amax(dim=-1))).all(), (error, step_length)


@pytest.mark.parametrize("name", sorted(SIZES))
@pytest.mark.parametrize("integrator", sorted(integrator_registry.integrators))
def test_every_system_integrates_with_every_integrator(name, integrator):
    system = _system(name)
    x, args = _inputs(name)
    options = {"method": "rk4"} if integrator == "DiffEqIntegrator" else {}
    step = integrator_registry.integrators[integrator](system, h=0.001, **options)
    x_next = step(x, *args)
    assert x_next.shape == x.shape and torch.isfinite(x_next).all()
    _assert_close_to_exact_step(system, x, args, x_next, h=0.001)
    x_next.sum().backward()
    assert any(p.grad is not None for p in system.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_every_system_runs_the_multistep_integrator(name):
    system = _system(name)
    x, args = _inputs(name, batch=3)
    window = torch.stack([x] * 4, dim=1)
    x_next = integrator_registry.MultiStep_PredictorCorrector(system, h=0.001)(window, *args)
    assert x_next.shape == x.shape
    # from a constant history the method moves along dx/dt like a one-step method
    increment = (x_next - x).detach()
    torch.testing.assert_close(increment, 0.001 * system(x, *args).detach(), rtol=0.05, atol=1e-6)


def test_right_hand_sides_follow_their_equations():
    x3 = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(ode.LorenzParam()(x3), torch.tensor([[5.0, 0.0, -13.0]]))
    torch.testing.assert_close(ode.LorenzControl()(x3, torch.tensor([[1.0, 2.0]])),
                               torch.tensor([[11.0, 23.0, 2.0 - 2.66667 * 3.0 - 2.0]]))
    x2 = torch.tensor([[2.0, 3.0]])
    torch.testing.assert_close(ode.LotkaVolterraParam()(x2), torch.tensor([[2.0 - 2.4, 0.6 - 1.2]]))
    torch.testing.assert_close(ode.BrusselatorParam()(x2), torch.tensor([[5.0 + 12.0 - 12.0, 10.0 - 12.0]]))
    torch.testing.assert_close(ode.BrusselatorHybrid(Product())(x2), torch.tensor([[5.0 + 6.0 - 12.0, 10.0 - 6.0]]))
    torch.testing.assert_close(ode.LotkaVolterraHybrid(Product())(x2), torch.tensor([[0.2 - 0.6, 0.6 - 0.3]]))
    torch.testing.assert_close(ode.VanDerPolControl()(x2, torch.tensor([[0.5]])),
                               torch.tensor([[3.0, (1 - 4.0) * 3.0 - 2.0 + 0.5]]))
    t = torch.tensor([[math.pi]])
    torch.testing.assert_close(ode.DuffingParam()(x2, t),
                               torch.tensor([[3.0, -0.06 - 2.0 - 40.0 + 8.0 * math.cos(0.5 * math.pi)]]))
    levels, pump_valve = torch.tensor([[0.25, 2.0]]), torch.tensor([[1.0, 0.5]])  # h2 clipped to 1
    torch.testing.assert_close(ode.TwoTankParam()(levels, pump_valve),
                               torch.tensor([[0.05 - 0.05, 0.05 + 0.05 - 0.1]]))
    cstr = ode.CSTR_Param().double()(torch.tensor([[0.5, 350.0]], dtype=torch.float64),
                                     torch.tensor([[300.0]], dtype=torch.float64))
    rate = 7.2e10 * math.exp(-8750.0 / 350.0) * 0.5
    expected = [0.5 - rate, 5e4 / 239.0 * rate + 5e4 / (100 * 239.0) * (300.0 - 350.0)]
    torch.testing.assert_close(cstr, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-5)


def test_learnable_parameters_are_upstreams():
    def trainable(system):
        return sorted(n for n, p in system.named_parameters() if p.requires_grad)
    assert trainable(ode.DuffingParam()) == ["omega"]
    assert trainable(ode.TwoTankParam()) == ["c1", "c2"]
    assert len(trainable(ode.CSTR_Param())) == 10
    assert trainable(ode.BrusselatorHybrid(Product())) == ["alpha", "beta"]


def test_hybrid_blocks_must_map_two_states_to_one_value():
    with pytest.raises(ValueError, match="in_features=2 and out_features=1"):
        ode.BrusselatorHybrid(torch.nn.Linear(2, 2))


def test_general_networked_ode_adds_intrinsic_and_coupling_physics():
    agents = [physics.RCNode(C=torch.nn.Parameter(torch.tensor([2.0]))), physics.RCNode(), physics.SourceSink()]
    state_map = physics.map_from_agents(agents)
    conduction = physics.DeltaTemp(R=torch.nn.Parameter(torch.tensor(0.5)), pins=[[0, 1]], symmetric=True)
    heating = physics.HVACConnection(pins=[[1, 2]])
    network = ode.GeneralNetworkedODE(map=state_map, agents=agents, couplings=[conduction, heating],
                                      insize=3, outsize=3)
    x = torch.tensor([[1.0, 3.0, 10.0]])
    # intrinsic: [2*1, 1*3, 0]; conduction 0.5*(3-1)=1 into agent 0, out of agent 1; heating 10 into agent 1
    torch.testing.assert_close(network.intrinsic_physics(x), torch.tensor([[2.0, 3.0, 0.0]]))
    torch.testing.assert_close(network.coupling_physics(x), torch.tensor([[1.0, 9.0, 0.0]]))
    torch.testing.assert_close(network(x), torch.tensor([[3.0, 12.0, 0.0]]))
    compositional = ode.GeneralNetworkedODE(map=state_map, agents=agents, couplings=[conduction, heating],
                                            outsize=2, inductive_bias="compositional")
    assert compositional.insize == 3
    torch.testing.assert_close(compositional(x), torch.tensor([[2.0, 9.0]]))
    with pytest.raises(ValueError, match="one state map per agent"):
        ode.GeneralNetworkedODE(map=state_map[:2], agents=agents)
    with pytest.raises(ValueError, match="inductive_bias"):
        ode.GeneralNetworkedODE(map=state_map, agents=agents, inductive_bias="general")


def test_sindy_evaluates_its_library_and_prints_its_equations():
    model = ode.SINDy(PolynomialLibrary(2, max_degree=1), threshold=0.05)
    assert model.coef.shape == (3, 2) and (model.in_features, model.out_features) == (2, 2)
    with torch.no_grad():
        model.coef.copy_(torch.tensor([[0.0, 1.0], [-0.5, 0.01], [2.0, 0.0]]))
    torch.testing.assert_close(model(torch.tensor([[2.0, 3.0]])), torch.tensor([[5.0, 1.02]]))
    assert str(model) == "dx0/dt = -0.500*x0 + 2.000*x1 \ndx1/dt = 1.000*1 \n"
    with pytest.raises(TypeError, match="FunctionLibrary"):
        ode.SINDy([lambda x: x])


def test_ssm_adds_state_input_and_disturbance_maps():
    fx, fu, fd = torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(2, 3, bias=False), torch.nn.Linear(1, 3, bias=False)
    model = ode.SSM(fx, fu, nx=3, nu=2, fd=fd, nd=1)
    x, u, d = torch.randn(4, 3), torch.randn(4, 2), torch.randn(4, 1)
    assert (model.in_features, model.out_features) == (6, 3)
    torch.testing.assert_close(model(x, u, d), fx(x) + fu(u) + fd(d))
    torch.testing.assert_close(model(x, u), fx(x) + fu(u))
    with pytest.raises(ValueError, match="2-D"):
        model(x.unsqueeze(0), u)
