"""neuromancer.vmap (the vmap-safety convention and its helpers) and the modeling layer under
torch.func.vmap: a Problem, its nodes, systems, losses and constraints evaluated for a population
of copies with different weights give every copy its own outputs, buffers and gradients, exactly
as a loop over the copies does, in training and in evaluation (with and without autograd).

``vmap_matches_loop`` (tests/conftest.py) runs the comparison in float64.
"""
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from neuromancer.constraint import Loss, variable
from neuromancer.dynamics import integrators
from neuromancer.exceptions import NeuromancerError
from neuromancer.loss import AugmentedLagrangeLoss, BarrierLoss, PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.modules.solvers import GradientProjection
from neuromancer.problem import Problem
from neuromancer.system import MovingHorizon, Node, System
from neuromancer.system_preview import SystemPreview
from neuromancer.vmap import (
    VmapUnsupportedError,
    is_transformed,
    population_values,
    transform_active,
    unsafe_modules,
)


def rosenbrock_problem(loss_class=PenaltyLoss, **loss_kwargs):
    """The README's parametric Rosenbrock problem, with a small default MLP (soft exponential activations)."""
    solution_map = Node(blocks.MLP(2, 2, hsizes=[8, 8]), ["a", "p"], ["x"], name="map")
    x, a, p = variable("x"), variable("a"), variable("p")
    x1, x2 = x[:, [0]], x[:, [1]]
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(weight=1.0, name="obj")
    constraints = [100.0 * (x1 >= x2), 100.0 * ((p / 2) ** 2 <= x1 ** 2 + x2 ** 2),
                   100.0 * (x1 ** 2 + x2 ** 2 <= p ** 2)]
    return Problem([solution_map], loss_class([objective], constraints, **loss_kwargs))


def rosenbrock_batch(n=6, name="train", **extra):
    generator = torch.Generator().manual_seed(7)
    return {"a": torch.rand(n, 1, generator=generator) + 0.2, "p": 1.5 * torch.rand(n, 1, generator=generator) + 0.5,
            "name": name, **extra}


# --------------------------------------------------------------------------------- the helpers
def test_is_transformed_and_transform_active_see_vmap_and_grad_only():
    plain = torch.ones(3)
    assert not is_transformed(plain) and not is_transformed(nn.Parameter(plain)) and not transform_active()
    seen = []

    def record(x):
        seen.append((is_transformed(x), transform_active()))
        return x.sum()
    vmap(record)(torch.ones(2, 3))
    grad(record)(torch.ones(3))
    assert seen == [(True, True), (True, True)]


def test_population_values_reads_one_level_of_vmap_only():
    stacked = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert population_values(stacked) is stacked
    seen = []

    def record(row):
        seen.append(population_values(row))
        return row
    vmap(record)(stacked)
    assert torch.equal(seen.pop(), stacked)
    vmap(vmap(record))(stacked)
    assert seen.pop() is None


def test_unsafe_modules_names_the_offending_submodules_with_their_reasons():
    rosenbrock = rosenbrock_problem()
    assert unsafe_modules(rosenbrock) == []
    model = nn.ModuleDict({
        "ode": integrators.DiffEqIntegrator(blocks.MLP(2, 2, hsizes=[4]), h=0.1),
        "lstm": nn.LSTM(2, 3),
        "delay": MovingHorizon(Node(blocks.MLP(2, 2, hsizes=[4]), ["x"], ["y"]), ndelay=2),
        "safe": blocks.MLP(2, 2, hsizes=[4]),
    })
    found = unsafe_modules(model)
    assert [line.split(" (")[0] for line in found] == ["ode", "lstm", "delay"]
    assert found[1] == "lstm (LSTM): the fused kernels of torch.nn.RNN, LSTM and GRU have no vmap batching rule"
    assert "Python list" in found[2]
    assert all(model.get_submodule(line.split(" ")[0]) is not None for line in found)
    assert unsafe_modules(model["ode"]) == [f"<root> (DiffEqIntegrator): {integrators.DiffEqIntegrator.vmap_unsafe_reason}"]
    model["lstm"].vmap_safe = True
    assert len(unsafe_modules(model)) == 2


def test_vmap_unsupported_error_is_a_neuromancer_value_error():
    assert issubclass(VmapUnsupportedError, NeuromancerError) and issubclass(VmapUnsupportedError, ValueError)


# ---------------------------------------------------------------------------- problem and losses
@pytest.mark.parametrize("loss_class", [PenaltyLoss, BarrierLoss])
def test_problem_training_step_matches_a_loop_over_members(vmap_matches_loop, loss_class):
    """The population trainer's call: one vmap of functional_call(problem) over the stacked copies."""
    problem = rosenbrock_problem(loss_class)
    assert unsafe_modules(problem) == []
    vmap_matches_loop(problem, rosenbrock_batch())


@pytest.mark.parametrize("barrier", ["log10", "log", "inverse", "softexp", "softlog", "expshift"])
def test_barrier_loss_with_active_and_inactive_constraints_matches_a_loop(vmap_matches_loop, barrier):
    x = variable("x")
    loss = BarrierLoss([(x ** 2).minimize(name="obj")], [x <= 0.5, x >= -3.0, x == 0.2], barrier=barrier)
    node = Node(blocks.MLP(1, 1, hsizes=[4], nonlin=nn.Tanh), ["p"], ["x"], name="map")
    problem = Problem([node], loss)
    vmap_matches_loop(problem, {"p": torch.linspace(-1, 1, 7).reshape(-1, 1), "name": "train"})


def test_barrier_loss_counts_no_penalty_where_no_sample_is_active():
    """All samples strictly feasible: the penalty part is 0 (in a tensor now, not an ``if``), as before."""
    x = variable("x")
    loss = BarrierLoss([(x ** 2).minimize(name="obj")], [x <= 1.2], barrier="log")
    out = loss({"x": torch.tensor([[0.5], [1.0]])})
    expected = torch.mean((-torch.log(torch.tensor([[0.7], [0.2]]))).clamp(0.0, 1.0))
    torch.testing.assert_close(out["penalty_loss"], expected)
    torch.testing.assert_close(out["barrier_loss"], expected)


@pytest.mark.parametrize("with_grad", [False, True])
def test_problem_evaluation_matches_a_loop_with_and_without_autograd(vmap_matches_loop, with_grad):
    """Validation: eval mode under torch.no_grad, or with autograd on (grad_inference problems)."""
    x, p = variable("x"), variable("p")
    projection = GradientProjection([x[:, [0]] + x[:, [1]] <= p[:, [0]]], input_keys=["x"], num_steps=2,
                                    step_size=0.5, name="projection")
    problem = Problem([Node(blocks.MLP(1, 2, hsizes=[4]), ["p"], ["x"], name="map"), projection],
                      PenaltyLoss([(x ** 2).minimize(name="obj")], [x >= 0.0]), grad_inference=True)

    def evaluate(model, batch):
        model.eval()
        with torch.set_grad_enabled(with_grad):
            return model(batch)
    vmap_matches_loop(problem, {"p": torch.rand(5, 1), "name": "dev"}, call=evaluate)


def test_trainable_weights_function_terms_and_squared_violations_match_a_loop(vmap_matches_loop):
    x = variable("x")
    weight = nn.Parameter(torch.tensor(2.0))
    smooth = Loss(["x"], lambda value: torch.nn.functional.softplus(value).mean(), weight=0.5, name="smooth")
    loss = PenaltyLoss([(x ** 2).minimize(weight=weight, name="obj"), smooth],
                       [weight * (x <= 0.1), (x >= -0.5) ^ 2, 3.0 * ((x == 0.05) ^ 2)])
    problem = Problem([Node(blocks.MLP(1, 1, hsizes=[4]), ["p"], ["x"], name="map")], loss)
    vmap_matches_loop(problem, {"p": torch.randn(5, 1), "name": "train"})


def test_augmented_lagrangian_updates_each_members_multipliers_in_place(vmap_matches_loop):
    problem = rosenbrock_problem(AugmentedLagrangeLoss, train_data=6, inner_loop=1)
    (line,) = unsafe_modules(problem)
    assert line.startswith("loss (AugmentedLagrangeLoss): its multiplier buffers")
    index = torch.arange(6)
    problem(rosenbrock_batch(epoch=0, index=index))  # the first training step creates the multipliers
    assert unsafe_modules(problem) == []
    vmap_matches_loop(problem, rosenbrock_batch(epoch=1, index=index))


def test_problem_with_a_derivative_is_named_unsafe_and_raises_inside_vmap():
    x, t = variable("x"), variable("t")
    residual = x.grad(t) - x
    problem = Problem([Node(blocks.MLP(1, 1, hsizes=[4]), ["t"], ["x"], name="map")],
                      PenaltyLoss([], [residual == 0.0]))
    (line,) = unsafe_modules(problem)
    assert line.startswith("loss.constraints.0.left (Variable): the expression takes a derivative")
    params, buffers = stack_module_state([problem, problem])
    batch = {"t": torch.rand(4, 1, requires_grad=True), "name": "train"}

    def member(p, b):
        return functional_call(problem, (p, b), (batch,))["train_loss"]
    with pytest.raises(VmapUnsupportedError, match="Variable.grad cannot be evaluated inside torch.func.vmap"):
        vmap(member)(params, buffers)
    assert problem(batch)["train_loss"].isfinite()


# ------------------------------------------------------------------------------- nodes, systems
def test_node_wrapping_a_function_and_a_module_matches_a_loop(vmap_matches_loop):
    nodes = nn.ModuleList([Node(blocks.MLP(2, 3, hsizes=[4]), ["a", "b"], ["h"], name="net"),
                           Node(lambda h: (h.sum(-1, keepdim=True), torch.tanh(h)), ["h"], ["s", "t"], name="f")])

    def run(model, data):
        data = dict(data)
        for node in model:
            data.update(node(data))
        return data
    vmap_matches_loop(nodes, {"a": torch.randn(5, 1), "b": torch.randn(5, 1)}, call=run)


def closed_loop_nodes():
    policy = Node(blocks.MLP(3, 1, hsizes=[4]), ["X", "R"], ["U"], name="policy")
    model = Node(integrators.RK4(blocks.MLP(3, 2, hsizes=[4]), h=0.1), ["X", "U"], ["X"], name="model")
    return [policy, model]


def test_system_rollout_matches_a_loop_over_members(vmap_matches_loop):
    system = System(closed_loop_nodes(), nsteps=4)
    data = {"X": torch.randn(3, 1, 2), "R": torch.randn(3, 4, 1)}
    vmap_matches_loop(system, data)


def test_system_preview_rollout_matches_a_loop_over_members(vmap_matches_loop):
    policy = Node(blocks.MLP(4, 1, hsizes=[4]), ["X", "R"], ["U"], name="policy")
    model = Node(integrators.Euler(blocks.MLP(3, 2, hsizes=[4]), h=0.1), ["X", "U"], ["X"], name="model")
    system = SystemPreview([policy, model], preview_keys_map={"R": ["policy"]}, preview_length={"R": 1}, nsteps=3)
    vmap_matches_loop(system, {"X": torch.randn(3, 1, 2), "R": torch.randn(3, 3, 1)})


def test_control_problem_over_a_rollout_matches_a_loop(vmap_matches_loop):
    system = System(closed_loop_nodes(), nsteps=3, name="loop")
    x, r, u = variable("X"), variable("R"), variable("U")
    loss = PenaltyLoss([((x[:, 1:, [0]] - r) ** 2).minimize(name="track")], [u <= 1.0, u >= -1.0])
    vmap_matches_loop(Problem([system], loss), {"X": torch.randn(3, 1, 2), "R": torch.randn(3, 3, 1),
                                                 "name": "train"})
