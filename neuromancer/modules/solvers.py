"""Differentiable correction layers that push a solution map's output toward feasibility.

A learned solution map (e.g. an MLP from problem parameters to decision variables) rarely satisfies
the constraints exactly. These solvers run a few differentiable iterations on its output inside the
computational graph, so training sees (and backpropagates through) the corrected solution:
:class:`GradientProjection` descends the mean constraint violation, :class:`IterativeSolver` takes
Newton steps on equality-constraint residuals. Both are graph nodes: ``forward(data)`` reads
``input_keys`` from the data dict and returns ``{output_key: corrected tensor}``. Constraints are
``neuromancer.constraint.Constraint`` objects, evaluated through their ``f'{name}_violation'`` and
``f'{name}_value'`` outputs.

Inside ``torch.func`` transforms (a vmapped population), where ``torch.autograd.grad`` cannot
differentiate, the derivatives are taken with ``torch.func.vjp`` instead; the values are the same.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from neuromancer.exceptions import warn_lenient_input
from neuromancer.vmap import transform_active

TensorDict = dict[str, torch.Tensor]


def _per_sample(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Reshape a constraint output to ``[batch, -1]`` (a per-sample row of values)."""
    return tensor.reshape(batch, -1) if tensor.dim() > 0 else tensor.reshape(1, 1).expand(batch, 1)


def _trackable(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` itself when it is part of a graph, else a detached copy that records gradients."""
    return tensor if tensor.requires_grad else tensor.detach().requires_grad_(True)


class Solver(nn.Module, ABC):
    """Base class of the correction layers: constraint and objective lists plus the node interface.

    :param objectives: objectives the solver may use, default none
    :param constraints: constraints to satisfy
    :param input_keys: data keys of the variables to correct
    :param output_keys: keys of the corrected variables, default the input keys (overwrite)
    :param name: node name
    :raises ValueError: if there are no input keys or ``output_keys`` differs in length from ``input_keys``
    """

    def __init__(self, objectives: Sequence[nn.Module] | None = None, constraints: Sequence[nn.Module] | None = None,
                 input_keys: Sequence[str] | None = None, output_keys: Sequence[str] | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        input_keys = list(input_keys or [])
        output_keys = list(output_keys or []) or list(input_keys)
        if not input_keys:
            raise ValueError(f"{type(self).__name__} needs input_keys naming the variables to correct, e.g. ['x']")
        if len(output_keys) != len(input_keys):
            raise ValueError(f"output_keys {output_keys} must pair one-to-one with input_keys {input_keys}")
        self.objectives = nn.ModuleList(objectives or [])
        self.constraints = nn.ModuleList(constraints or [])
        self.input_keys, self.output_keys, self.name = input_keys, output_keys, name

    @abstractmethod
    def forward(self, data: TensorDict) -> TensorDict:
        """Return ``{output_key: corrected variable}`` for the variables named by ``input_keys``."""

    def _inputs(self, data: TensorDict) -> list[torch.Tensor]:
        """Fetch the input variables from ``data``.

        :raises KeyError: naming a missing input key
        """
        missing = [key for key in self.input_keys if key not in data]
        if missing:
            raise KeyError(f"{type(self).__name__} reads {missing[0]!r}, which is not in the data "
                           f"(keys: {sorted(map(str, data))}); put the node producing it first")
        return [data[key] for key in self.input_keys]

    def _finish(self, outputs: list[torch.Tensor], grad_was_enabled: bool) -> TensorDict:
        """Map corrected tensors to ``output_keys``, detached when called under ``torch.no_grad``."""
        if not grad_was_enabled:
            outputs = [out.detach() for out in outputs]
        return dict(zip(self.output_keys, outputs, strict=True))


class GradientProjection(Solver):
    """Projected-gradient correction: ``x <- x - step * d(energy)/dx`` for ``num_steps`` steps.

    The energy of a sample is the mean of all its constraint violations; the step size shrinks by a
    factor ``(1 - decay)`` after every step. The iterations are built with ``create_graph=True``, so
    the corrected output stays differentiable with respect to the solution map's parameters, and they
    run under ``torch.enable_grad`` so the correction also works in ``torch.no_grad`` evaluation.

    :param constraints: constraints whose violation is reduced
    :param input_keys: keys of the variables to correct
    :param output_keys: keys of the corrected variables, default the input keys
    :param decay: relative step-size decay per step, in [0, 1), default 0.1
    :param num_steps: number of gradient steps, default 1
    :param step_size: initial step size, default 0.01
    :param energy_update: recompute the energy gradient after each step (default True); when
        False the gradient at the initial point is reused for every step
    :param name: node name
    :raises ValueError: for bad keys, ``num_steps < 0``, ``step_size < 0`` or ``decay`` outside [0, 1);
        ``step_size=0`` leaves the input unchanged, with a `LenientInputWarning`
    """

    def __init__(self, constraints: Sequence[nn.Module], input_keys: Sequence[str], output_keys: Sequence[str] | None = None,
                 decay: float = 0.1, num_steps: int = 1, step_size: float = 0.01, energy_update: bool = True,
                 name: str | None = None) -> None:
        super().__init__(constraints=constraints, input_keys=input_keys, output_keys=output_keys, name=name)
        if int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps={num_steps!r} must be a non-negative integer")
        if step_size < 0:
            raise ValueError(f"step_size={step_size!r} must be positive")
        if step_size == 0:
            warn_lenient_input("GradientProjection(step_size=0) takes no step: it returns its input unchanged, "
                               "as in upstream 1.5. Give a positive step_size.")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay!r} must lie in [0, 1)")
        self.num_steps, self.step_size, self.decay = int(num_steps), step_size, decay
        self.energy_update = energy_update

    def con_viol_energy(self, input_dict: TensorDict) -> torch.Tensor:
        """Per-sample mean of all constraint violations, shape ``[batch]``.

        :raises ValueError: if there are no constraints
        """
        if len(self.constraints) == 0:
            raise ValueError("GradientProjection has no constraints; pass constraints=[...]")
        batch = input_dict[self.input_keys[0]].shape[0]
        violations = []
        for constraint in self.constraints:
            output = constraint(input_dict)
            violations.append(_per_sample(output[f"{constraint.name}_violation"], batch))
        return torch.cat(violations, dim=1).mean(dim=1)

    def _energy_gradients(self, data: TensorDict, variables: list[torch.Tensor]) -> list[torch.Tensor]:
        """Gradients of the summed energy with respect to each variable (zeros where it does not depend on one)."""
        if transform_active():
            def energy_of(*values: torch.Tensor) -> torch.Tensor:
                return self.con_viol_energy({**data, **dict(zip(self.input_keys, values, strict=True))}).sum()

            energy, pullback = torch.func.vjp(energy_of, *variables)
            return list(pullback(torch.ones_like(energy)))
        energy = self.con_viol_energy(data).sum()
        grads = torch.autograd.grad(energy, variables, create_graph=True, allow_unused=True)
        return [torch.zeros_like(v) if g is None else g for v, g in zip(variables, grads, strict=True)]

    def forward(self, data: TensorDict) -> TensorDict:
        """Correct the input variables and return them under ``output_keys``.

        :raises KeyError: if an input key is missing from ``data``
        """
        grad_was_enabled = torch.is_grad_enabled()
        with torch.enable_grad():
            state = dict(data)
            variables = self._inputs(data)
            if not transform_active():
                variables = [_trackable(v) for v in variables]
            state.update(zip(self.input_keys, variables, strict=True))
            step, grads = self.step_size, None
            for _ in range(self.num_steps):
                if grads is None or self.energy_update:
                    grads = self._energy_gradients(state, variables)
                variables = [v - step * g for v, g in zip(variables, grads, strict=True)]
                state.update(zip(self.input_keys, variables, strict=True))
                step *= 1.0 - self.decay
        return self._finish(variables, grad_was_enabled)


class IterativeSolver(Solver):
    """Damped Newton iterations on the residuals of equality constraints.

    Each step solves ``J dx = g`` in the least-squares sense per sample (``J`` is the Jacobian of the
    stacked residuals ``g = left - right`` with respect to the variable, via the pseudo-inverse so
    under- and over-determined systems work) and sets ``x <- x - step_size * dx``. The signed
    residuals are used, and the solver also works under ``torch.no_grad``.

    :param constraints: equality constraints ``left == right``
    :param input_keys: one key, the variable ``[batch, n]`` to solve for
    :param output_keys: key of the solution, default the input key
    :param num_steps: number of Newton steps, default 1
    :param step_size: damping of the Newton step, default 1.0 (full step)
    :param name: node name
    :raises ValueError: for more than one input key, no or non-equality constraints, ``num_steps < 0``
    """

    def __init__(self, constraints: Sequence[nn.Module], input_keys: Sequence[str], output_keys: Sequence[str] | None = None,
                 num_steps: int = 1, step_size: float = 1.0, name: str | None = None) -> None:
        super().__init__(constraints=constraints, input_keys=input_keys, output_keys=output_keys, name=name)
        if len(self.input_keys) != 1:
            raise ValueError(f"IterativeSolver solves for one variable; got input_keys={self.input_keys}")
        if not constraints:
            raise ValueError("IterativeSolver needs at least one equality constraint")
        for constraint in self.constraints:
            kind = getattr(getattr(constraint, "comparator", None), "short_name", None)
            if kind != "eq":
                raise ValueError(f"constraint {getattr(constraint, 'name', constraint)!r} is not an equality "
                                 "(==); IterativeSolver solves equality constraints only")
        if int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps={num_steps!r} must be a non-negative integer")
        self._num_steps, self.step_size = int(num_steps), step_size

    @property
    def num_steps(self) -> int:
        """Number of Newton steps per forward pass."""
        return self._num_steps

    def con_values(self, data: TensorDict) -> torch.Tensor:
        """Stacked signed residuals ``left - right`` of all constraints, shape ``[batch, m]``."""
        batch = data[self.input_keys[0]].shape[0]
        values = []
        for constraint in self.constraints:
            values.append(_per_sample(constraint(data)[f"{constraint.name}_value"], batch))
        return torch.cat(values, dim=1)

    def newton_step(self, data: TensorDict, x: torch.Tensor) -> torch.Tensor:
        """One damped Newton step from ``x`` (other keys of ``data`` are held fixed); returns the new ``x``."""
        with torch.enable_grad():
            if transform_active():
                residual, rows = self._residual_and_jacobian_rows(data, x)
            else:
                x = _trackable(x)
                residual = self.con_values({**data, self.input_keys[0]: x})
                rows = [torch.autograd.grad(residual[:, i].sum(), x, create_graph=True, retain_graph=True,
                                            allow_unused=True)[0] for i in range(residual.shape[1])]
                rows = [torch.zeros_like(x) if row is None else row for row in rows]
            jacobian = torch.stack([row.reshape(x.shape[0], -1) for row in rows], dim=1)
            delta = torch.linalg.pinv(jacobian) @ residual.unsqueeze(-1)
            return x - self.step_size * delta.squeeze(-1).reshape(x.shape)

    def _residual_and_jacobian_rows(self, data: TensorDict, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The residuals at ``x`` and, per residual column ``i``, ``d(sum of column i)/dx``, by ``torch.func.vjp``."""
        residual, pullback = torch.func.vjp(lambda value: self.con_values({**data, self.input_keys[0]: value}), x)
        columns = torch.eye(residual.shape[1], dtype=residual.dtype, device=residual.device)
        return residual, [pullback(column.expand_as(residual))[0] for column in columns]

    def forward(self, data: TensorDict) -> TensorDict:
        """Run ``num_steps`` Newton steps from ``data[input_key]``; return ``{output_key: solution}``.

        :raises KeyError: if the input key is missing from ``data``
        """
        grad_was_enabled = torch.is_grad_enabled()
        (x,) = self._inputs(data)
        for _ in range(self.num_steps):
            x = self.newton_step(data, x)
        return self._finish([x], grad_was_enabled)
