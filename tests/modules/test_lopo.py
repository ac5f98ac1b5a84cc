"""Tests of neuromancer.modules.lopo: proximal step, box projection, DR and ADMM correction layers, learned metric."""
import pytest
import torch

from neuromancer.modules.lopo import (
    ADMMSolver,
    DRSolver,
    ParaMetricDiagonal,
    ProxBoxConstraint,
    ProxObjectivePlusEqualityConstraint,
)

A = torch.tensor([[1.0, 2.0, -1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)


def _simplex_projection(c):
    """Euclidean projection of each row of c onto {x >= 0, sum x = 1} (sort-based, Held et al.)."""
    sorted_c, _ = torch.sort(c, dim=-1, descending=True)
    cumulative = sorted_c.cumsum(-1) - 1
    index = torch.arange(1, c.shape[-1] + 1, dtype=c.dtype)
    support = (sorted_c - cumulative / index > 0).sum(-1, keepdim=True)
    threshold = cumulative.gather(-1, support - 1) / support
    return torch.clamp(c - threshold, min=0)


def _simplex_problem():
    """min 1/2 |x - c|^2 s.t. sum(x) = 1, -x <= 0, with c the parameters."""
    def objective(x, c):
        return 0.5 * ((x - c) ** 2).sum()

    def equality(x, c):
        return x.sum().reshape(1) - 1.0

    def inequality(x, c):
        return -x
    return objective, equality, inequality


def test_prox_without_objective_is_the_projection_on_the_affine_set():
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)
    prox = ProxObjectivePlusEqualityConstraint(lambda x, p: 0.0 * x.sum(), lambda x, p: A @ x - b)
    x = torch.randn(4, 3, dtype=torch.float64)
    expected = x - (A.T @ torch.linalg.solve(A @ A.T, (x @ A.T - b).T)).T
    torch.testing.assert_close(prox(x, torch.zeros(4, 1, dtype=torch.float64)), expected)


def test_prox_of_a_quadratic_solves_the_equality_constrained_step_exactly():
    Q = torch.tensor([[3.0, 0.5, 0.0], [0.5, 2.0, 0.2], [0.0, 0.2, 1.0]], dtype=torch.float64)

    def objective(x, p):
        return 0.5 * x @ Q @ x + p @ x

    def constraint(x, p):
        return A[:1] @ x - 1.0
    gamma = 2.0
    prox = ProxObjectivePlusEqualityConstraint(objective, constraint, gamma=gamma)
    x, p = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    y = prox(x, p)
    torch.testing.assert_close(y @ A[0], torch.ones(5, dtype=torch.float64))
    # stationarity on the constraint's null space: ((gamma/2) I + Q)(y - x) + (gamma/2) grad f(x) is normal to it
    residual = (y - x) @ (0.5 * gamma * torch.eye(3, dtype=torch.float64) + Q) + 0.5 * gamma * (x @ Q + p)
    null_space = torch.linalg.svd(A[:1])[2][1:].T
    torch.testing.assert_close(residual @ null_space, torch.zeros(5, 2, dtype=torch.float64), atol=1e-10, rtol=0)


def test_prefactored_matrices_are_reused_and_required():
    def objective(x, p):
        return (x ** 2).sum() + p @ x

    def constraint(x, p):
        return A @ x - p[:2]
    x, p = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    free = ProxObjectivePlusEqualityConstraint(objective, constraint)
    fixed = ProxObjectivePlusEqualityConstraint(objective, constraint, JF_fixed=True, Hf_fixed=True)
    with pytest.raises(ValueError, match="prefactor"):
        fixed(x, p)
    fixed.prefactor(torch.zeros(3, 3, dtype=torch.float64), p)
    torch.testing.assert_close(fixed(x, p), free(x, p))


def test_box_projection_clips_to_parameter_dependent_bounds():
    box = ProxBoxConstraint(lambda p: -p, lambda p: 2 * p)
    x = torch.tensor([[-5.0, 0.5, 5.0]])
    torch.testing.assert_close(box(x, torch.ones(1, 3)), torch.tensor([[-1.0, 0.5, 2.0]]))


@pytest.mark.parametrize("solver_class, steps", [(DRSolver, 40), (ADMMSolver, 60)])
def test_solvers_converge_to_the_simplex_projection(solver_class, steps):
    objective, equality, inequality = _simplex_problem()
    solver = solver_class(f_obj=objective, F_ineq=inequality, F_eq=equality, x_dim=3, n_ineq=3, n_eq=1,
                          num_steps=steps, state_slack_bound=10.0)
    c = torch.tensor([[0.2, 0.9, -0.4], [1.5, 1.2, 2.0], [0.1, 0.1, 0.1]], dtype=torch.float64)
    solution, gap = solver(c.clone(), c)
    assert solution.shape == (3, 6) and gap.shape == (3, 6)
    torch.testing.assert_close(solution[:, :3], _simplex_projection(c), atol=1e-4, rtol=0)
    assert gap.max() < 1e-6


def test_solver_variants_and_gradients():
    objective, equality, inequality = _simplex_problem()
    c = torch.tensor([[0.2, 0.9, -0.4]], dtype=torch.float64)
    only_eq = DRSolver(f_obj=objective, F_eq=equality, x_dim=3, n_eq=1, num_steps=20)
    solution, _ = only_eq(c.clone(), c)
    torch.testing.assert_close(solution, c - (c.sum() - 1) / 3)  # projection on the plane sum x = 1
    only_ineq = ADMMSolver(f_obj=objective, F_ineq=inequality, x_dim=3, n_ineq=3, num_steps=60)
    solution, _ = only_ineq(c.clone(), c)
    torch.testing.assert_close(solution[:, :3], c.clamp(min=0), atol=1e-4, rtol=0)
    guess = torch.nn.Linear(3, 3).double()
    solution, _ = DRSolver(f_obj=objective, F_ineq=inequality, F_eq=equality, x_dim=3, n_ineq=3, n_eq=1)(guess(c), c)
    solution.sum().backward()
    assert guess.weight.grad is not None and torch.isfinite(guess.weight.grad).all()


def test_solvers_reject_ill_posed_problems():
    objective, equality, _ = _simplex_problem()
    with pytest.raises(ValueError, match="at least one constraint"):
        DRSolver(f_obj=objective, x_dim=3)
    with pytest.raises(ValueError, match="overdetermined"):
        ADMMSolver(f_obj=objective, F_eq=equality, x_dim=1, n_eq=2)
    with pytest.raises(ValueError, match="f_obj"):
        DRSolver(F_eq=equality, x_dim=3, n_eq=1)


def test_parametric_diagonal_metric_is_bounded_and_usable_by_the_solvers():
    torch.manual_seed(0)
    metric = ParaMetricDiagonal(n_dim=6, parm_dim=3, upper_bound=2.0, lower_bound=0.5)
    p = torch.randn(3)
    matrix = metric(torch.zeros(6), p)
    diagonal = torch.diagonal(matrix)
    assert matrix.shape == (6, 6) and torch.count_nonzero(matrix - torch.diag(diagonal)) == 0
    assert (diagonal >= 0.05 * 0.5).all() and (diagonal <= 0.2 * 2.0).all()
    assert metric(torch.zeros(4, 6), torch.randn(4, 3)).shape == (4, 6, 6)
    assert 0 < metric.scl_comp(None, p).item() < 1
    objective, equality, inequality = _simplex_problem()
    solver = DRSolver(f_obj=objective, F_ineq=inequality, F_eq=equality, x_dim=3, n_ineq=3, n_eq=1, metric=metric)
    c = torch.randn(4, 3)
    solution, _ = solver(c.clone(), c)
    solution.sum().backward()
    assert metric.DiagMap[0].weight.grad is not None
