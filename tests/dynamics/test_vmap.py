"""Integrators, ODE systems, physics, libraries and interpolation under torch.func.vmap: a vmapped
population of models with different weights gives every model its own outputs and gradients, as a
loop over the models does; torchdiffeq's integrator is named unsafe.

``vmap_matches_loop`` (tests/conftest.py) runs the comparison in float64.
"""
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from neuromancer.dynamics import integrators, interpolation, library, ode, physics
from neuromancer.modules import blocks
from neuromancer.vmap import unsafe_modules

FIXED_STEP = sorted(set(integrators.integrators) - {"DiffEqIntegrator"})


@pytest.mark.parametrize("name", FIXED_STEP)
def test_every_fixed_step_integrator_matches_a_loop_over_members(vmap_matches_loop, name):
    integrator = integrators.integrators[name](blocks.MLP(3, 2, hsizes=[4]), h=0.1)
    assert not unsafe_modules(integrator)
    vmap_matches_loop(integrator, torch.randn(5, 2), torch.randn(5, 1))


def test_multistep_integrator_matches_a_loop_over_members(vmap_matches_loop):
    integrator = integrators.MultiStep_PredictorCorrector(blocks.MLP(3, 2, hsizes=[4]), h=0.1)
    vmap_matches_loop(integrator, torch.randn(5, 4, 2), torch.randn(5, 1))


@pytest.mark.parametrize("name", sorted(integrators.integrators_second_order))
def test_every_second_order_integrator_matches_a_loop_over_members(vmap_matches_loop, name):
    integrator = integrators.integrators_second_order[name](blocks.MLP(2, 2, hsizes=[4]), h=0.1)
    vmap_matches_loop(integrator, torch.randn(5, 4))


def test_runge_kutta_fehlberg_records_error_estimates_outside_vmap_only(vmap_matches_loop):
    integrator = integrators.Runge_Kutta_Fehlberg(blocks.MLP(2, 2, hsizes=[4]), h=0.1)
    vmap_matches_loop(integrator, torch.randn(5, 2))
    assert len(integrator.local_error) == 0  # the vmapped call ran on this module
    integrator(torch.randn(5, 2))
    assert len(integrator.local_error) == 1


def test_torchdiffeq_integrator_is_named_unsafe():
    model = torch.nn.ModuleDict({"step": integrators.DiffEqIntegrator(blocks.MLP(2, 2, hsizes=[4]), h=0.1)})
    (line,) = unsafe_modules(model)
    assert line.startswith("step (DiffEqIntegrator): torchdiffeq") and "RK4" in line


def _ode_inputs(name):
    """States (and inputs) in each system's physical range, 5 samples."""
    rand = torch.rand
    return {"LorenzParam": (torch.randn(5, 3),), "LotkaVolterraParam": (rand(5, 2),),
            "BrusselatorParam": (rand(5, 2),), "DuffingParam": (torch.randn(5, 2), rand(5, 1)),
            "TwoTankParam": (rand(5, 2), rand(5, 2)), "LorenzControl": (torch.randn(5, 3), torch.randn(5, 2)),
            "CSTR_Param": (rand(5, 2) + torch.tensor([0.5, 300.0]), 300.0 + rand(5, 1)),
            "VanDerPolControl": (torch.randn(5, 2), torch.randn(5, 1))}[name]


@pytest.mark.parametrize("name", sorted({**ode.ode_param_systems_auto, **ode.ode_param_systems_nonauto}))
def test_every_parametric_ode_matches_a_loop_over_members(vmap_matches_loop, name):
    system = ode.odes[name]()
    vmap_matches_loop(system, *_ode_inputs(name), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ode.ode_hybrid_systems_auto))
def test_every_hybrid_ode_matches_a_loop_over_members(vmap_matches_loop, name):
    vmap_matches_loop(ode.odes[name](blocks.MLP(2, 1, hsizes=[4])), torch.rand(5, 2))


def _network(inductive_bias):
    agents = [physics.agents["RCNode"](state_names=["T"]), physics.agents["RCNode"](state_names=["T"]),
              physics.agents["SourceSink"](state_names=["T"])]
    couplings = [physics.couplings["DeltaTemp"](feature_name="T", pins=[[0, 1]], symmetric=True),
                 physics.couplings["DeltaTempSwitch"](feature_name="T", pins=[[1, 2]]),
                 physics.couplings["HVACConnection"](feature_name="T", pins=[[0, 2]])]
    return ode.odes["GeneralNetworkedODE"](map=physics.map_from_agents(agents), agents=agents, couplings=couplings,
                                           outsize=2, inductive_bias=inductive_bias)


@pytest.mark.parametrize("inductive_bias", ["additive", "compositional"])
def test_networked_ode_with_every_agent_and_coupling_matches_a_loop(vmap_matches_loop, inductive_bias):
    vmap_matches_loop(_network(inductive_bias), torch.randn(5, 3))


@pytest.mark.parametrize("make_library", [lambda: library.PolynomialLibrary(2, max_degree=2),
                                          lambda: library.FourierLibrary(2, max_freq=2),
                                          lambda: library.FunctionLibrary([lambda x: x[:, 0] * x[:, 1],
                                                                           lambda x: torch.ones(())], 2)])
def test_sindy_over_every_library_matches_a_loop_over_members(vmap_matches_loop, make_library):
    vmap_matches_loop(ode.SINDy(make_library()), torch.randn(5, 2))


def test_state_space_model_matches_a_loop_over_members(vmap_matches_loop):
    ssm = ode.SSM(blocks.MLP(2, 2, hsizes=[4]), blocks.MLP(1, 2, hsizes=[4]), 2, 1, fd=blocks.Linear(1, 2), nd=1)
    vmap_matches_loop(ssm, torch.randn(5, 2), torch.randn(5, 1), torch.randn(5, 1))


def test_offline_interpolation_drives_a_population_of_integrators():
    """A population of RK4 models reads its inputs from one interpolated signal at each member's time."""
    signal = interpolation.LinInterp_Offline(torch.arange(10.0).reshape(-1, 1), torch.randn(10, 1))
    model = integrators.RK4(blocks.MLP(3, 2, hsizes=[4]), h=0.1)
    copies = [model, integrators.RK4(blocks.MLP(3, 2, hsizes=[4]), h=0.1)]
    params, buffers = stack_module_state(copies)
    times, x = torch.tensor([[1.5], [7.25]]), torch.randn(4, 2)

    def member(p, b, t):
        return functional_call(model, (p, b), (x, signal(t.expand(4, 1))))
    population = vmap(member)(params, buffers, times)
    for k, copy_ in enumerate(copies):
        torch.testing.assert_close(population[k], copy_(x, signal(times[k].expand(4, 1))))


def test_online_interpolation_matches_a_loop_over_members():
    t = torch.tensor([[[0.0], [1.0]]]).expand(4, 2, 1)
    u = torch.randn(3, 4, 2, 2)
    query = torch.rand(3, 4, 2, 1)
    interp = interpolation.LinInterp_Online()
    population = vmap(lambda q, v: interp(q, t, v))(query, u)
    for k in range(3):
        torch.testing.assert_close(population[k], interp(query[k], t, u[k]))
