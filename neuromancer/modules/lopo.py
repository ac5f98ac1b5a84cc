"""Learned operator-splitting correction layers for parametric constrained optimization (learning to optimize).

A neural network predicts a solution ``x(p)`` of ``min f(x; p) s.t. F_eq(x; p) = 0, F_ineq(x; p) <= 0``;
these layers then run a few differentiable iterations of an operator-splitting method that pull
the prediction towards feasibility and optimality, and training goes through them. With slacks
``s >= 0`` the problem becomes ``min f(x) s.t. F(x, s) = [F_eq(x); F_ineq(x) + s] = 0``, split into
``g1 = f + indicator{F = 0}`` and ``g2 = indicator{box bounds, s >= 0}``:

- `ProxObjectivePlusEqualityConstraint`: the (metric) proximal step on ``g1`` with ``f`` expanded to
  second order and ``F`` to first order, solved exactly as a small equality-constrained QP;
- `ProxBoxConstraint`: the projection on the box (the proximal step on ``g2``);
- `DRSolver` (Douglas-Rachford) and `ADMMSolver` (relaxed ADMM) alternate the two;
- `ParaMetricDiagonal`: a learned, parameter-dependent diagonal metric for the proximal step.

All problem functions are written for ONE sample (``f(x, p)`` with ``x [n]`` and ``p [n_p]``) and are
batched here with ``torch.func.vmap``; their derivatives come from ``torch.func`` (grad, jacrev, hessian).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import grad, hessian, jacrev, vmap

ProblemFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _identity_metric(x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
    """The Euclidean metric: the identity matrix of the size of ``x`` (one sample)."""
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


def _kkt_matrix(step_matrix: torch.Tensor, jacobian: torch.Tensor) -> torch.Tensor:
    """The batched KKT matrix ``[[Md, J^T], [J, 0]]`` ``[batch, n + m, n + m]`` of the proximal step.

    Assembled by concatenation rather than by writing into a zero matrix, so that inside
    ``torch.func.vmap`` a batched ``Md`` or ``J`` is never written into an unbatched tensor.
    """
    corner = jacobian.new_zeros(jacobian.shape[0], jacobian.shape[1], jacobian.shape[1])
    return torch.cat([torch.cat([step_matrix, jacobian.transpose(1, 2)], dim=2),
                      torch.cat([jacobian, corner], dim=2)], dim=1)


class ProxObjectivePlusEqualityConstraint(nn.Module):
    """Approximate metric proximal operator of ``f(x) + indicator{F(x) = 0}``.

    For a batch of points ``x`` it returns ``y = x + d`` where ``d`` minimizes
    ``1/2 d^T Md d + (gamma/2) grad f(x)^T d`` subject to ``J_F(x) d = -F(x)``, with
    ``Md = (gamma/2) M(x, p) + H_f(x)``: the proximal step with ``f`` replaced by its second-order
    and ``F`` by its first-order expansion at ``x`` (exact when ``f`` is quadratic and ``F`` affine).
    The Jacobian of ``F`` is treated as a constant in backpropagation (it is computed without
    gradient); gradients flow through ``F(x)``, ``grad f``, ``H_f`` and the metric.

    :param f: objective, one sample, torch.func-compatible
    :param F: equality constraints ``F(x) = 0``, ``m <= n``
    :param metric: the metric ``M``; None (default) uses the identity
    :param JF_fixed: reuse the Jacobian of ``F`` stored by :meth:`prefactor` (linear constraints),
        default False
    :param Hf_fixed: reuse the matrix ``Md`` stored by :meth:`prefactor` (quadratic objective,
        constant metric), default False
    :param gamma: proximal step parameter, default 2.0
    """

    def __init__(self, f: ProblemFunction, F: ProblemFunction, metric: ProblemFunction | None = None,
                 JF_fixed: bool = False, Hf_fixed: bool = False, gamma: float = 2.0) -> None:
        super().__init__()
        self.f = vmap(f)
        self.f_grad = vmap(grad(f, argnums=0))
        self.H_vec = vmap(hessian(f, argnums=0))
        self.F = vmap(F)
        self.JF = vmap(jacrev(F, argnums=0))
        self.metric = metric if metric is not None else _identity_metric
        self.JF_fixed = JF_fixed
        self.Hf_fixed = Hf_fixed
        self.gamma = gamma
        self.JFx: torch.Tensor | None = None
        self.Md: torch.Tensor | None = None

    def _jacobian(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """Batched ``J_F(x)`` ``[batch, m, n]``, without gradient."""
        with torch.no_grad():
            return self.JF(x, parms)

    def _step_matrix(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """Batched ``Md = (gamma/2) M + H_f`` ``[batch, n, n]``."""
        return 0.5 * self.gamma * vmap(self.metric)(x, parms) + self.H_vec(x, parms)

    def prefactor(self, x: torch.Tensor, parms: torch.Tensor) -> None:
        """Compute and store what the ``*_fixed`` flags say does not change between steps.

        Call it once per batch of parameters before the iterations (`DRSolver` and `ADMMSolver` do).

        :param x: [batch, n] points where the Jacobian and Hessian are taken
        :param parms: [batch, n_p] problem parameters
        """
        if self.JF_fixed:
            self.JFx = self._jacobian(x, parms)
        if self.Hf_fixed:
            self.Md = self._step_matrix(x, parms)

    def _stored(self, name: str) -> torch.Tensor:
        """A prefactored matrix, or a clear error when :meth:`prefactor` was not called."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{name} is fixed (JF_fixed/Hf_fixed=True) but prefactor(x, parms) has not been called")
        return value

    def forward(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """Return the approximate proximal point of each row of ``x``.

        :param x: [batch, n]
        :param parms: [batch, n_p]
        :return: [batch, n], satisfying the linearized constraints ``F(x) + J d = 0``
        """
        jacobian = self._stored("JFx") if self.JF_fixed else self._jacobian(x, parms)
        step_matrix = self._stored("Md") if self.Hf_fixed else self._step_matrix(x, parms)
        n = x.shape[1]
        kkt = _kkt_matrix(step_matrix.to(x.dtype), jacobian.to(x.dtype))
        rhs = torch.cat([-0.5 * self.gamma * self.f_grad(x, parms), -self.F(x, parms)], dim=-1)
        step = torch.linalg.solve(kkt, rhs)[:, :n]
        return x + step


class ProxBoxConstraint(nn.Module):
    """Projection onto parameter-dependent box constraints ``l(p) <= x <= u(p)``.

    :param f_lower_bound: lower bounds for one sample (batched with vmap)
    :param f_upper_bound: upper bounds for one sample
    """

    def __init__(self, f_lower_bound: Callable[[torch.Tensor], torch.Tensor],
                 f_upper_bound: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.lower_bound_func = vmap(f_lower_bound)
        self.upper_bound_func = vmap(f_upper_bound)

    def forward(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """Clip each row of ``x`` ``[batch, n]`` to its box; returns ``[batch, n]``."""
        lower, upper = self.lower_bound_func(parms), self.upper_bound_func(parms)
        return torch.maximum(torch.minimum(x, upper), lower)


class _SplitProblem:
    """The slack reformulation shared by `DRSolver` and `ADMMSolver`.

    Builds, for the stacked variable ``xs = [x, s]``, the objective ``f(xs) = f_obj(x)``, the
    equality map ``F(xs) = [F_eq(x); F_ineq(x) + s]`` and the box ``|x| <= bound``, ``0 <= s <= bound``.
    """

    def __init__(self, f_obj: ProblemFunction | None, F_ineq: ProblemFunction | None, F_eq: ProblemFunction | None,
                 x_dim: int, n_ineq: int, n_eq: int, state_slack_bound: float) -> None:
        if f_obj is None:
            raise ValueError("f_obj is required: the objective f(x, parms) of one sample")
        if F_ineq is None and F_eq is None:
            raise ValueError("give F_eq, F_ineq or both: the solvers need at least one constraint")
        if n_eq > x_dim:
            raise ValueError(f"n_eq={n_eq} equality constraints on x_dim={x_dim} variables are overdetermined")
        if F_ineq is None:
            n_ineq = 0
        self.f_obj, self.F_ineq, self.F_eq = f_obj, F_ineq, F_eq
        self.x_dim, self.n_ineq = x_dim, n_ineq
        self.n_dim = x_dim + n_ineq
        self.lower = torch.cat([torch.full((x_dim,), -float(state_slack_bound)), torch.zeros(n_ineq)])
        self.upper = torch.full((self.n_dim,), float(state_slack_bound))

    def objective(self, xs: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """``f_obj`` of the primal part of ``xs``."""
        return self.f_obj(xs[:self.x_dim], parms)

    def constraints(self, xs: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """``[F_eq(x); F_ineq(x) + s]`` (the parts that exist)."""
        x, slack = xs[:self.x_dim], xs[self.x_dim:]
        parts = []
        if self.F_eq is not None:
            parts.append(self.F_eq(x, parms))
        if self.F_ineq is not None:
            parts.append(self.F_ineq(x, parms) + slack)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def box(self) -> ProxBoxConstraint:
        """The projection onto the box of ``[x, s]``."""
        return ProxBoxConstraint(lambda parms: self.lower.to(device=parms.device, dtype=parms.dtype),
                                 lambda parms: self.upper.to(device=parms.device, dtype=parms.dtype))

    def with_slacks(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[batch, x_dim]`` extended with zero slacks ``[batch, n_dim]``."""
        if self.n_ineq == 0:
            return x
        return torch.cat([x, x.new_zeros(x.shape[0], self.n_ineq)], dim=-1)


class _OperatorSplittingSolver(nn.Module):
    """Common set-up of `DRSolver` and `ADMMSolver` (problem reformulation, proximal and box operators)."""

    PROX_GAMMA: float = 2.0

    def __init__(self, f_obj: ProblemFunction | None, F_ineq: ProblemFunction | None, F_eq: ProblemFunction | None,
                 x_dim: int, n_ineq: int, n_eq: int, JF_fixed: bool, Hf_fixed: bool, num_steps: int,
                 metric: ProblemFunction | None, state_slack_bound: float) -> None:
        super().__init__()
        self.problem = _SplitProblem(f_obj, F_ineq, F_eq, x_dim, n_ineq, n_eq, state_slack_bound)
        self.f_obj, self.F_ineq, self.F_eq, self.metric = f_obj, F_ineq, F_eq, metric
        self.x_dim, self.n_ineq, self.n_eq = x_dim, self.problem.n_ineq, n_eq
        self.n_dim = self.problem.n_dim
        self.JF_fixed, self.Hf_fixed = JF_fixed, Hf_fixed
        self.num_steps = num_steps
        self.state_slack_bound = state_slack_bound
        self.f, self.F = self.problem.objective, self.problem.constraints
        self.foF = ProxObjectivePlusEqualityConstraint(self.f, self.F, metric, JF_fixed=JF_fixed, Hf_fixed=Hf_fixed,
                                                       gamma=self.PROX_GAMMA)
        self.sp = self.problem.box()

    def _start(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """Add the slacks and prefactor where the flags allow; returns the starting ``[x, s]``."""
        xs = self.problem.with_slacks(x)
        if self.JF_fixed or self.Hf_fixed:
            self.foF.prefactor(xs, parms)
        return xs


class DRSolver(_OperatorSplittingSolver):
    """Douglas-Rachford splitting for ``min f(x) s.t. F_eq(x) = 0, F_ineq(x) <= 0``, unrolled ``num_steps`` times.

    Each iteration projects on the box (``y = P(x_k)``), takes the proximal step on the objective and
    linearized constraints from the reflection (``z = prox(2 y - x_k)``) and updates
    ``x_{k+1} = x_k + z - y``.

    :param f_obj: objective of one sample
    :param F_ineq: inequality constraints ``<= 0``
    :param F_eq: equality constraints ``= 0``
    :param x_dim: number of primal variables
    :param n_ineq: number of inequality constraints (slack variables)
    :param n_eq: number of equality constraints, at most ``x_dim``
    :param JF_fixed: constraints are linear: compute their Jacobian once per call, default False
    :param Hf_fixed: objective quadratic and metric constant: compute the step matrix once per call
    :param num_steps: iterations, default 3
    :param metric: metric of the proximal step (e.g. `ParaMetricDiagonal`),
        over the stacked ``[x, s]``; None uses the identity
    :param state_slack_bound: bound on ``|x|`` and on the slacks, default 1e3
    :raises ValueError: no objective, no constraint, or more equality constraints than variables
    """

    def __init__(self, f_obj: ProblemFunction | None = None, F_ineq: ProblemFunction | None = None,
                 F_eq: ProblemFunction | None = None, x_dim: int = 0, n_ineq: int = 0, n_eq: int = 0,
                 JF_fixed: bool = False, Hf_fixed: bool = False, num_steps: int = 3,
                 metric: ProblemFunction | None = None, state_slack_bound: float = 1e3) -> None:
        super().__init__(f_obj, F_ineq, F_eq, x_dim, n_ineq, n_eq, JF_fixed, Hf_fixed, num_steps, metric,
                         state_slack_bound)

    def forward(self, x: torch.Tensor, parms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the iterations from the prediction ``x``.

        :param x: [batch, x_dim] initial guess
        :param parms: [batch, n_p] problem parameters
        :return: the final iterate ``[batch, x_dim + n_ineq]`` (primal variables then slacks) and the
            squared residual ``(z - y)^2`` of the last iteration, same shape (0 at a fixed point)
        """
        x_k = self._start(x, parms)
        gap = torch.zeros_like(x_k)
        for _ in range(self.num_steps):
            y_k = self.sp(x_k, parms)
            z_k = self.foF(2 * y_k - x_k, parms)
            x_k = x_k + (z_k - y_k)
            gap = (z_k - y_k) ** 2
        return x_k, gap


class ADMMSolver(_OperatorSplittingSolver):
    """Relaxed ADMM for ``min f(x) s.t. F_eq(x) = 0, F_ineq(x) <= 0``, unrolled ``num_steps`` times.

    With ``y_0 = x``, ``w_0 = 0``, each iteration computes ``x_k = prox(y - w)`` (proximal parameter
    ``gamma = 1/2``), the relaxed point ``a = 2 alpha x_k + (1 - 2 alpha) y``, ``y = P(a + w)`` and
    ``w = w + a - y``. Parameters as for `DRSolver`, plus:

    :param alpha: relaxation in (0, 1); 0.5 (default) is plain ADMM
    """

    PROX_GAMMA = 0.5

    def __init__(self, f_obj: ProblemFunction | None = None, F_ineq: ProblemFunction | None = None,
                 F_eq: ProblemFunction | None = None, x_dim: int = 0, n_ineq: int = 0, n_eq: int = 0,
                 JF_fixed: bool = False, Hf_fixed: bool = False, num_steps: int = 3,
                 metric: ProblemFunction | None = None, state_slack_bound: float = 1e3, alpha: float = 0.5) -> None:
        super().__init__(f_obj, F_ineq, F_eq, x_dim, n_ineq, n_eq, JF_fixed, Hf_fixed, num_steps, metric,
                         state_slack_bound)
        self.alpha = alpha
        self.gamma = self.PROX_GAMMA

    def forward(self, x: torch.Tensor, parms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the iterations from the prediction ``x``.

        :param x: [batch, x_dim] initial guess
        :param parms: [batch, n_p] problem parameters
        :return: the last proximal iterate ``x_k`` ``[batch, x_dim + n_ineq]`` and the squared primal
            plus dual residual ``(x_k - y_k)^2 + (y_k - y_{k-1})^2``, same shape
        """
        y_k = self._start(x, parms)
        w_k = torch.zeros_like(y_k)
        x_k, gap = y_k, torch.zeros_like(y_k)
        for _ in range(self.num_steps):
            y_previous = y_k
            x_k = self.foF(y_k - w_k, parms)
            relaxed = 2 * self.alpha * x_k + (1 - 2 * self.alpha) * y_k
            y_k = self.sp(relaxed + w_k, parms)
            w_k = w_k + relaxed - y_k
            gap = (x_k - y_k) ** 2 + (y_k - y_previous) ** 2
        return x_k, gap


class ParaMetricDiagonal(nn.Module):
    """A learned diagonal metric ``M(p) = diag(scale(p) * d(p))`` for the proximal step.

    Two small ReLU networks of the problem parameters (hidden width ``10 * parm_dim``) give the
    diagonal ``d(p)``, squashed into ``[lower_bound, upper_bound]``, and a scalar ``scale(p)``, squashed
    into ``[scl_lower_bound, scl_upper_bound]``. Written for one sample (``parms [parm_dim]`` gives
    ``[n_dim, n_dim]``), as the solvers' ``metric`` expects; a batch ``[batch, parm_dim]`` gives
    ``[batch, n_dim, n_dim]``.

    :param n_dim: size of the metric (the solver's ``x_dim + n_ineq``)
    :param parm_dim: number of problem parameters
    :param upper_bound: largest diagonal entry before scaling
    :param lower_bound: smallest diagonal entry before scaling, > 0 for a positive definite metric
    :param scl_upper_bound: largest scale, default 0.2
    :param scl_lower_bound: smallest scale, default 0.05
    """

    def __init__(self, n_dim: int, parm_dim: int, upper_bound: float, lower_bound: float,
                 scl_upper_bound: float = 0.2, scl_lower_bound: float = 0.05) -> None:
        super().__init__()
        self.n_dim, self.parm_dim = n_dim, parm_dim
        self.P_diag_upper_bound, self.P_diag_lower_bound = upper_bound, lower_bound
        self.scl_upper_bound, self.scl_lower_bound = scl_upper_bound, scl_lower_bound
        self.hidden_dim = int(round(10 * parm_dim))
        self.DiagMap = self._network(n_dim)
        self.ScaleMap = self._network(1)

    def _network(self, out_features: int) -> nn.Sequential:
        """A two-hidden-layer ReLU network from the parameters to ``out_features`` values."""
        return nn.Sequential(nn.Linear(self.parm_dim, self.hidden_dim), nn.ReLU(),
                             nn.Linear(self.hidden_dim, self.hidden_dim), nn.ReLU(),
                             nn.Linear(self.hidden_dim, out_features))

    def forward(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """The metric at ``parms`` (``x`` is unused: the metric depends on the parameters only)."""
        scale = self.scl_lower_bound + torch.sigmoid(self.ScaleMap(parms)) * (self.scl_upper_bound
                                                                              - self.scl_lower_bound)
        diagonal = self.P_diag_lower_bound + torch.sigmoid(self.DiagMap(parms)) * (self.P_diag_upper_bound
                                                                                   - self.P_diag_lower_bound)
        return torch.diag_embed(scale * diagonal)

    def scl_comp(self, x: torch.Tensor, parms: torch.Tensor) -> torch.Tensor:
        """The raw scale ``sigmoid(ScaleMap(parms))`` in (0, 1), before mapping to the scale bounds."""
        return torch.sigmoid(self.ScaleMap(parms))
