"""The structured linear maps of neuromancer.slim under torch.func.vmap: a vmapped population of maps
with different weights gives every map its own outputs, buffers and gradients, as a loop does.

``vmap_matches_loop`` (tests/conftest.py) runs the comparison in float64.
"""
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from neuromancer import slim
from neuromancer.vmap import unsafe_modules


def square_map(name, **kwargs):
    cls = slim.maps[name]
    bias = name != "trivial_nullspace"
    return cls(4, 4, bias=bias, **kwargs)


@pytest.mark.parametrize("name", sorted(slim.maps))
def test_every_map_matches_a_loop_over_members(vmap_matches_loop, name):
    linear_map = square_map(name).eval()
    assert not unsafe_modules(linear_map)
    vmap_matches_loop(linear_map, torch.randn(5, 4))


@pytest.mark.parametrize("name", sorted(name for name, cls in slim.maps.items() if cls not in slim.square_maps))
def test_rectangular_maps_and_their_regularisers_match_a_loop(vmap_matches_loop, name):
    linear_map = slim.maps[name](3, 5, bias=False).eval()
    vmap_matches_loop(linear_map, torch.randn(4, 3), call=lambda m, x: (m(x), m.reg_error()))


def test_lasso_relu_map_with_its_straight_through_gradient_matches_a_loop(vmap_matches_loop):
    lasso = slim.LassoLinearRELU(4, 3, bias=True)
    vmap_matches_loop(lasso, torch.randn(5, 4), call=lambda m, x: (m(x), m.reg_error()))


def test_lasso_relu_map_keeps_the_relu_values_and_the_identity_gradient():
    lasso = slim.LassoLinearRELU(3, 2)
    with torch.no_grad():
        lasso.u_param.copy_(torch.tensor([[0.5, -1.0], [0.0, 2.0], [-0.25, 1.0]]))
        lasso.v_param.zero_()
    weight = lasso.effective_W()
    assert torch.equal(weight, torch.relu(lasso.u_param.detach()))
    weight.sum().backward()
    assert torch.equal(lasso.u_param.grad, torch.ones(3, 2)) and torch.equal(lasso.v_param.grad, -torch.ones(3, 2))


def test_power_bound_map_updates_each_members_power_iterate_in_place(vmap_matches_loop):
    vmap_matches_loop(slim.PowerBoundLinear(3, 3, pwr_iters=3), torch.randn(5, 3),
                      call=lambda m, x: (m(x), m.reg_error()))


def test_l0_map_in_eval_mode_matches_a_loop_and_in_training_draws_gates_per_member(vmap_matches_loop):
    l0 = slim.L0Linear(4, 3)
    vmap_matches_loop(l0.eval(), torch.randn(5, 4), call=lambda m, x: (m(x), m.reg_error()))
    l0.train()
    params, buffers = stack_module_state([l0, l0])
    outputs = vmap(lambda p, b: functional_call(l0, (p, b), (torch.ones(1, 4),)), randomness="different")(params,
                                                                                                       buffers)
    assert outputs.shape == (2, 1, 3) and not torch.equal(outputs[0], outputs[1])
    torch.manual_seed(3)
    expected = torch.empty(4, 3).uniform_(1e-6, 1.0 - 1e-6)
    torch.manual_seed(3)
    assert torch.equal(l0.get_eps((4, 3)), expected)
