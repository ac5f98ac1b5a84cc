"""Tests of neuromancer.modules.solvers: violation reduction, differentiability, Newton convergence."""
import numpy as np
import pytest
import torch

from neuromancer.constraint import variable
from neuromancer.modules.solvers import GradientProjection, IterativeSolver, Solver


def _box_constraints():
    x, p = variable("x"), variable("p")
    return [x[:, [0]] + x[:, [1]] <= p, x[:, [0]] >= 0.0]


def _data(requires_grad=False):
    return {"x": torch.tensor([[2.0, 2.0], [-1.0, 0.5]], requires_grad=requires_grad), "p": torch.ones(2, 1)}


def test_energy_is_the_mean_violation_per_sample():
    projection = GradientProjection(_box_constraints(), input_keys=["x"])
    torch.testing.assert_close(projection.con_viol_energy(_data()), torch.tensor([(3.0 + 0.0) / 2, (0.0 + 1.0) / 2]))


def test_projection_reduces_violation_with_decaying_steps():
    projection = GradientProjection(_box_constraints(), input_keys=["x"], output_keys=["x_proj"],
                                    num_steps=5, step_size=0.1, decay=0.1)
    data = _data()
    out = projection(data)
    assert set(out) == {"x_proj"}
    before = projection.con_viol_energy(data)
    after = projection.con_viol_energy({**data, "x": out["x_proj"]})
    assert torch.all(after < before)
    moved = 0.1 * 0.5 * sum(0.9 ** k for k in range(5))  # d(energy)/dx0 = 1/2 on both samples
    torch.testing.assert_close(out["x_proj"][:, 0], torch.tensor([2.0 - moved, -1.0 + moved]))


def test_projection_with_many_steps_reaches_feasibility():
    projection = GradientProjection(_box_constraints(), input_keys=["x"], num_steps=200, step_size=0.5, decay=0.0)
    out = projection(_data())
    assert projection.con_viol_energy({**_data(), **out}).max() < 0.05


def test_projection_is_differentiable_and_works_under_no_grad():
    solution_map = torch.nn.Linear(1, 2)
    projection = GradientProjection(_box_constraints(), input_keys=["x"], num_steps=3, step_size=0.1)
    data = {"p": torch.ones(4, 1)}
    data["x"] = solution_map(data["p"]) + 2.0
    projection(data)["x"].sum().backward()
    assert solution_map.weight.grad is not None and solution_map.weight.grad.abs().sum() > 0
    with torch.no_grad():
        out = projection(_data())["x"]
    assert not out.requires_grad
    torch.testing.assert_close(out, projection(_data())["x"].detach())


def test_energy_update_false_reuses_the_first_gradient():
    frozen = GradientProjection(_box_constraints(), input_keys=["x"], num_steps=4, step_size=2.0, decay=0.0,
                                energy_update=False)
    out = frozen(_data())["x"]
    torch.testing.assert_close(out[:, 0], torch.tensor([2.0 - 4.0, -1.0 + 4.0]))


def test_iterative_solver_converges_to_the_root():
    x, p = variable("x"), variable("p")
    solver = IterativeSolver([x[:, [0]] ** 2 + x[:, [1]] == p, x[:, [0]] - x[:, [1]] == 0.0],
                             input_keys=["x"], num_steps=8)
    assert solver.num_steps == 8 and solver.output_keys == ["x"]
    p_values = torch.tensor([[1.0], [3.0]])
    out = solver({"x": torch.tensor([[2.0, 2.0], [1.0, 0.5]]), "p": p_values})["x"]
    root = (-1.0 + np.sqrt(1.0 + 4.0 * p_values.numpy().ravel())) / 2.0  # z**2 + z = p, positive root
    np.testing.assert_allclose(out.detach().numpy(), np.stack([root, root], 1), rtol=1e-5)
    assert solver.con_values({"x": out, "p": p_values}).abs().max() < 1e-5


def test_iterative_solver_rejects_inequalities_and_several_keys():
    x = variable("x")
    with pytest.raises(ValueError, match="equality constraints only"):
        IterativeSolver([x <= 1.0], input_keys=["x"])
    with pytest.raises(ValueError, match="one variable"):
        IterativeSolver([x == 1.0], input_keys=["x", "y"])


def test_solver_validation():
    with pytest.raises(TypeError):
        Solver()
    with pytest.raises(ValueError, match="pair one-to-one"):
        GradientProjection(_box_constraints(), input_keys=["x"], output_keys=["a", "b"])
    with pytest.raises(ValueError, match="decay=1.5"):
        GradientProjection(_box_constraints(), input_keys=["x"], decay=1.5)
    with pytest.raises(KeyError, match="reads 'x'"):
        GradientProjection(_box_constraints(), input_keys=["x"])({"p": torch.ones(1, 1)})
