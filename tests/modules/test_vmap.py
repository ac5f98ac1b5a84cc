"""The building blocks of neuromancer.modules under torch.func.vmap: a vmapped population of copies
with different weights gives every copy its own outputs and gradients, as a loop over the copies does.

``vmap_matches_loop`` (tests/conftest.py) runs the comparison in float64.
"""
import pytest
import torch
from torch.func import vmap

from neuromancer.constraint import variable
from neuromancer.modules import activations as A
from neuromancer.modules import blocks as B
from neuromancer.modules import functions as F
from neuromancer.modules.lopo import ADMMSolver, DRSolver, ParaMetricDiagonal, ProxBoxConstraint
from neuromancer.modules.solvers import GradientProjection, IterativeSolver
from neuromancer.vmap import VmapUnsupportedError, unsafe_modules


@pytest.mark.parametrize("name", sorted(B.blocks))
def test_every_block_matches_a_loop_over_members(vmap_matches_loop, small_block, name):
    block = small_block(name).eval()
    assert not unsafe_modules(block)
    vmap_matches_loop(block, torch.randn(5, 3))


@pytest.mark.parametrize("name", ["rnn", "pytorch_rnn"])
def test_recurrent_blocks_match_a_loop_over_sequences_and_layers(vmap_matches_loop, name):
    block = B.blocks[name](3, 2, hsizes=[4, 4])
    vmap_matches_loop(block, torch.randn(5, 6, 3))


def test_rnn_keeps_no_final_states_of_a_vmapped_call(vmap_matches_loop):
    rnn = B.RNN(3, 2, hsizes=[4])
    vmap_matches_loop(rnn, torch.randn(5, 6, 3), call=lambda block, x: (block(x), block.init_states is None))
    rnn(torch.randn(5, 6, 3))
    assert rnn.init_states.shape == (1, 5, 4)


def test_blocks_with_the_default_soft_exponential_match_a_loop(vmap_matches_loop):
    mlp = B.MLP(2, 2, hsizes=[8, 8])
    assert isinstance(mlp.nonlin[0], A.SoftExponential)
    vmap_matches_loop(mlp, torch.randn(7, 2), torch.randn(7, 0), call=lambda m, a, b: m(a, b))


def test_stacked_mlp_logs_its_blend_weights_outside_vmap_only(vmap_matches_loop, caplog):
    block = B.StackedMLP(3, 2, h_sf_size=[4], n_stacked_mf_layers=2, h_linear_sizes=[3], h_nonlinear_sizes=[4],
                         verbose=True)
    with caplog.at_level("INFO", logger="neuromancer.modules.blocks"):
        vmap_matches_loop(block, torch.randn(5, 3))
    assert len([r for r in caplog.records if "alpha=" in r.getMessage()]) == 2 * 3


def test_dropout_draws_its_own_mask_per_member():
    block = B.MLPDropout(3, 4, hsizes=[64], dropout=0.5, nonlin=torch.nn.ReLU)
    params, buffers = torch.func.stack_module_state([block, block])
    out = vmap(lambda p, b, x: torch.func.functional_call(block, (p, b), (x,)), in_dims=(0, 0, None),
               randomness="different")(params, buffers, torch.randn(5, 3))
    assert out.shape == (2, 5, 4) and not torch.equal(out[0], out[1])


def test_kan_stack_matches_a_loop_over_members(vmap_matches_loop):
    kan = B.KAN([2, 3, 1], grid_size=3)
    vmap_matches_loop(kan, torch.rand(6, 2) * 2 - 1, call=lambda m, x: (m(x), m.regularization_loss()))


def test_kan_grid_update_refuses_to_run_inside_vmap():
    kan = B.KAN([2, 3, 1], grid_size=3)
    params, buffers = torch.func.stack_module_state([kan, kan])

    def member(p, b, x):
        return torch.func.functional_call(kan, (p, b), (x,), {"update_grid": True})
    with pytest.raises(VmapUnsupportedError, match="update_grid cannot run inside torch.func.vmap"):
        vmap(member, in_dims=(0, 0, None))(params, buffers, torch.rand(8, 2))
    assert kan(torch.rand(8, 2), update_grid=True).shape == (8, 1)


def test_kan_block_with_scheduled_grid_updates_is_marked_unsafe():
    assert not unsafe_modules(B.KANBlock(2, 1, hsizes=[3], grid_sizes=[3]))
    scheduled = B.KANBlock(2, 1, hsizes=[3], grid_sizes=[3, 5], grid_updates=[2])
    assert unsafe_modules(scheduled) == [f"<root> (KANBlock): {B.KANBlock.vmap_unsafe_reason}"]


@pytest.mark.parametrize("name", sorted(set(A.activations) - {"rrelu"}))
def test_every_activation_matches_a_loop_over_members(vmap_matches_loop, name):
    activation = A.activations[name]().eval()
    assert not unsafe_modules(activation)
    vmap_matches_loop(activation, torch.linspace(-2.5, 2.5, 11).reshape(1, 11))


def test_randomized_relu_is_named_unsafe():
    """torch.rrelu has no vmap rule (in training or eval mode); an MLP using it is named by its layers."""
    mlp = B.MLP(2, 1, hsizes=[3, 3], nonlin=A.activations["rrelu"])
    assert [line.split(" ")[0] for line in unsafe_modules(mlp)] == ["nonlin.0", "nonlin.1"]
    assert "no vmap batching rule" in unsafe_modules(mlp.eval())[0]


@pytest.mark.parametrize("activation", [A.SoftExponential, A.RectifiedSoftExp])
@pytest.mark.parametrize("alphas", [[-0.01, 0.0, 0.4, -0.6], [0.0, 0.0, 0.0, 0.0], [0.3, 0.01, 2.0, 0.5],
                                    [-0.3, -0.01, -2.0, -0.5]], ids=["mixed", "zero", "positive", "negative"])
def test_soft_exponentials_match_a_loop_whatever_the_signs_of_the_members_alphas(activation, alphas):
    """Each member takes its own case (log, identity, exp), with the values and gradients of that case.

    The inputs include points where the other cases overflow or leave the log's domain; the
    members that do not use those cases must still get finite gradients.
    """
    x = torch.tensor([-40.0, -3.0, -0.5, 0.0, 0.7, 2.0, 60.0], dtype=torch.float64)
    alphas = torch.tensor(alphas, dtype=torch.float64)
    module = activation().double()
    params = {"alpha": alphas.clone().requires_grad_(True)}
    inputs = x.clone().requires_grad_(True)
    population = vmap(lambda p: torch.func.functional_call(module, p, (inputs,)))(params)
    weights = torch.randn(population.shape, dtype=torch.float64)
    (population * weights).sum().backward()
    for k, alpha in enumerate(alphas):
        single = activation().double()
        with torch.no_grad():
            single.alpha.fill_(alpha)
        alone_inputs = x.clone().requires_grad_(True)
        alone = single(alone_inputs)
        (alone * weights[k]).sum().backward()
        torch.testing.assert_close(population[k], alone, equal_nan=True)
        torch.testing.assert_close(params["alpha"].grad[k], single.alpha.grad, equal_nan=True)
    if alphas[0] < 0 < alphas[2]:
        assert torch.isfinite(params["alpha"].grad[1:3]).all() and torch.isfinite(population[1:3]).all()


def test_soft_exp_function_matches_a_loop_over_alphas():
    alphas = torch.tensor([-0.3, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    population = vmap(A.soft_exp, in_dims=(0, None))(alphas, x)
    population.sum().backward()
    for k in range(3):
        alpha = alphas.detach()[k].clone().requires_grad_(True)
        alone = A.soft_exp(alpha, x)
        alone.sum().backward()
        torch.testing.assert_close(population[k], alone)
        torch.testing.assert_close(alphas.grad[k], alpha.grad)


@pytest.mark.parametrize("name", sorted(F.functions))
def test_every_function_matches_a_loop_over_members(name):
    x = torch.rand(3, 6, 2, dtype=torch.float64) * 2 - 1
    arguments = {"bounds_scaling": (-0.5, 0.5), "bounds_clamp": (-0.5, 0.5), "window_functions": (4,)}[name]
    function = F.functions[name]
    population = vmap(lambda sample: function(sample, *arguments))(x)
    for k in range(3):
        torch.testing.assert_close(population[k], function(x[k], *arguments))


def test_box_bounds_may_differ_per_member(vmap_matches_loop):
    bounded = B.MLP_bounds(3, 2, hsizes=[4], min=torch.tensor([-1.0, 0.0]), max=torch.tensor([1.0, 2.0]))
    bounded.register_parameter("scale", torch.nn.Parameter(torch.ones(())))
    vmap_matches_loop(bounded, torch.randn(5, 3), call=lambda m, x: F.bounds_clamp(m(x) * m.scale, m.min, m.max))


def _solution_map(solver, output="x"):
    """An MLP from parameters ``p`` to ``x`` followed by ``solver``, as a solution-map node would chain them."""
    class Chain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp, self.solver = B.MLP(2, 2, hsizes=[4]), solver

        def forward(self, p):
            return self.solver({"x": self.mlp(p), "p": p})[output]
    return Chain()


@pytest.mark.parametrize("energy_update", [True, False])
def test_gradient_projection_matches_a_loop_over_members(vmap_matches_loop, energy_update):
    x, p = variable("x"), variable("p")
    solver = GradientProjection([x[:, [0]] + x[:, [1]] <= p[:, [0]], x >= 0.0], input_keys=["x"], num_steps=3,
                                step_size=0.1, energy_update=energy_update)
    vmap_matches_loop(_solution_map(solver), torch.rand(5, 2))


def test_gradient_projection_under_no_grad_matches_a_loop(vmap_matches_loop):
    x, p = variable("x"), variable("p")
    solver = GradientProjection([x[:, [0]] + x[:, [1]] <= p[:, [0]]], input_keys=["x"], num_steps=2, step_size=0.5)

    def evaluate(chain, p):
        with torch.no_grad():
            return chain(p)
    vmap_matches_loop(_solution_map(solver), torch.rand(5, 2), call=evaluate)


def test_iterative_solver_matches_a_loop_over_members(vmap_matches_loop):
    x, p = variable("x"), variable("p")
    solver = IterativeSolver([x[:, [0]] ** 2 + x[:, [1]] == p[:, [0]], x[:, [0]] - x[:, [1]] == 0.0],
                             input_keys=["x"], num_steps=2)
    vmap_matches_loop(_solution_map(solver), torch.rand(5, 2) + 0.5)


def _simplex_problem():
    """min 1/2 |x - c|^2 s.t. sum(x) = 1, x >= 0, one sample at a time."""
    return (lambda x, c: 0.5 * ((x - c) ** 2).sum(), lambda x, c: -x, lambda x, c: x.sum().reshape(1) - 1.0)


@pytest.mark.parametrize("solver_class", [DRSolver, ADMMSolver])
@pytest.mark.parametrize("learned_metric", [False, True])
@pytest.mark.parametrize("fixed", [False, True])
def test_operator_splitting_solvers_match_a_loop_over_members(vmap_matches_loop, solver_class, learned_metric, fixed):
    objective, inequality, equality = _simplex_problem()
    metric = ParaMetricDiagonal(4, 2, upper_bound=2.0, lower_bound=0.5) if learned_metric else None
    solver = solver_class(f_obj=objective, F_ineq=inequality, F_eq=equality, x_dim=2, n_ineq=2, n_eq=1,
                          metric=metric, JF_fixed=fixed, Hf_fixed=fixed and not learned_metric, num_steps=2)

    class Chain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp, self.solver = B.MLP(2, 2, hsizes=[4]), solver

        def forward(self, p):
            return self.solver(self.mlp(p), p)
    vmap_matches_loop(Chain(), torch.rand(5, 2))


def test_box_projection_matches_a_loop_over_members(vmap_matches_loop):
    box = ProxBoxConstraint(lambda p: -p.abs(), lambda p: p.abs())
    vmap_matches_loop(box, torch.randn(5, 2), torch.randn(5, 2))
