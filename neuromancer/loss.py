"""Aggregate losses: combine objectives and constraints into the scalar a trainer minimises.

An aggregate loss evaluates every `Objective` (or `Loss`) and `Constraint` of a problem on the data
dictionary (all terms' expressions in one compiled pass, so a sub-expression several terms use is
computed once) and returns that dictionary extended with each term's outputs, the per-sample
concatenations of constraint values and violations (``C_values``, ``C_violations`` and their
equality/inequality splits), ``objective_loss``, ``penalty_loss`` and ``loss``. `PenaltyLoss` adds
the weighted penalties to the objectives; `BarrierLoss` replaces the penalty of strictly satisfied
inequalities by a barrier that keeps iterates inside the feasible set; `AugmentedLagrangeLoss`
keeps per-sample Lagrange multipliers and penalty weights that it updates every few epochs.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from neuromancer.constraint import Constraint, Eq, Loss, Objective
from neuromancer.evaluation import EvaluationPlan, dropped_cache
from neuromancer.exceptions import warn_lenient_input
from neuromancer.vmap import is_transformed

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

logger = logging.getLogger(__name__)

TensorDict = dict[str, Any]

_CONSTRAINT_SUMMARY_KEYS = ["C_violations", "C_values", "C_eq_violations", "C_ineq_violations",
                            "C_eq_values", "C_ineq_values"]


def _as_term_list(terms: Any, kinds: tuple, what: str) -> list[nn.Module]:
    """Check that ``terms`` is a collection of ``kinds`` instances and return it as a list.

    Any iterable of terms is read into a list, as upstream 1.5 reads it; a set, whose order is
    arbitrary, also gets a `LenientInputWarning`.

    :raises TypeError: ``terms`` is a single term, not an iterable (or a str or dict), or an item
        has another type.
    """
    if isinstance(terms, nn.Module) and not isinstance(terms, nn.ModuleList):
        raise TypeError(f"{what} must be a list, got a single {type(terms).__name__}: wrap it as [{what[:-1]}].")
    if isinstance(terms, (str, bytes, Mapping, torch.Tensor)) or not isinstance(terms, Iterable):
        raise TypeError(f"{what} must be a list of {' or '.join(k.__name__ for k in kinds)}, "
                        f"got {type(terms).__name__}.")
    if isinstance(terms, (set, frozenset)):
        warn_lenient_input(f"{what} is a {type(terms).__name__}; its terms are read in the set's order, which is "
                           f"arbitrary, so term outputs and the columns of the C_* summaries may come in "
                           f"another order in every run. Pass a list.")
    terms = list(terms)
    for position, term in enumerate(terms):
        if not isinstance(term, kinds):
            raise TypeError(f"{what}[{position}] is a {type(term).__name__} ({term!r:.60}), not "
                            f"{' or '.join(k.__name__ for k in kinds)}. Build constraints with comparisons "
                            "of variables (x <= 1) and objectives with x.minimize(), or wrap a function of "
                            "data keys as Loss(input_keys, function, name=...).")
    return list(terms)


class AggregateLoss(nn.Module, ABC):
    """Base class of the aggregate losses: evaluates objectives and constraints.

    Subclasses implement `forward`, which must return the input dictionary extended with the terms'
    outputs and ``loss``. Every term reads the input dictionary given to the loss (one term's
    outputs are not inputs of another).

    :param objectives: the terms to minimise. A Constraint here adds its weighted penalty to
        ``objective_loss`` (not to ``penalty_loss`` nor the ``C_*`` summaries): system-identification scripts
        minimise tracking terms such as ``(xhat == x)^2`` this way.
    :param constraints: the soft constraints.
    :raises TypeError: an item is not an Objective/Loss/Constraint (objectives) or a Constraint (constraints).

    Terms sharing a name (e.g. after adding two losses that both have an ``'obj'``) are all
    evaluated and summed; their outputs go under distinct keys, see `term_names`. The output also
    holds the value of every expression the terms evaluate, under the expression's ``key``.
    """

    def __init__(self, objectives: list[Objective | Loss], constraints: list[Constraint]) -> None:
        super().__init__()
        self.objectives = nn.ModuleList(_as_term_list(objectives, (Objective, Loss, Constraint), "objectives"))
        self.constraints = nn.ModuleList(_as_term_list(constraints, (Constraint,), "constraints"))
        input_keys: dict[str, None] = {}
        for term in [*self.objectives, *self.constraints]:
            input_keys.update(dict.fromkeys(term.input_keys))
        self.input_keys = list(input_keys)
        self.output_keys = ["loss", "objective_loss", "penalty_loss", *_CONSTRAINT_SUMMARY_KEYS]

    @property
    def term_names(self) -> list[str]:
        """The output key of each term, objectives first: its ``name``, where a name repeats the
        name of an earlier term with ``_1``, ``_2``, ... added, so no output overwrites another."""
        return _distinct_names([term.name for term in (*self.objectives, *self.constraints)])

    def _split_term_names(self) -> tuple[list[str], list[str]]:
        """`term_names` split into the objectives' and the constraints' output keys."""
        names = self.term_names
        return names[:len(self.objectives)], names[len(self.objectives):]

    def calculate_objectives(self, input_dict: TensorDict) -> TensorDict:
        """Evaluate the objectives: their outputs plus ``objective_loss`` (their sum, 0 if none)."""
        return self._objective_outputs(input_dict, *self._expression_values(input_dict, "objectives"),
                                       self._split_term_names()[0])

    def calculate_constraints(self, input_dict: TensorDict) -> TensorDict:
        """Evaluate the constraints: their outputs, ``penalty_loss`` (sum of weighted penalties) and,
        where there are constraints, the per-sample summaries ``C_values``, ``C_violations``,
        ``C_eq_values``, ``C_ineq_values``, ``C_eq_violations``, ``C_ineq_violations`` (each
        constraint's value flattened to ``(batch, -1)`` and concatenated along dim 1).
        """
        return self._constraint_outputs(input_dict, *self._expression_values(input_dict, "constraints"),
                                        self._split_term_names()[1])

    def _term_outputs(self, input_dict: TensorDict) -> tuple[TensorDict, TensorDict, TensorDict]:
        """The expression values and the outputs of `calculate_objectives` and
        `calculate_constraints`, from one evaluation.

        One pass over all expressions computes a sub-expression used by several terms once and
        gives every expression's value (keyed by its ``key``) without further work. A subclass
        that overrides either public method gets it called instead, and no expression values.
        """
        kind = type(self)
        if kind.calculate_objectives is not AggregateLoss.calculate_objectives or \
                kind.calculate_constraints is not AggregateLoss.calculate_constraints:
            return {}, self.calculate_objectives(input_dict), self.calculate_constraints(input_dict)
        plan, values = self._expression_values(input_dict, "all")
        objective_names, constraint_names = self._split_term_names()
        expressions = {key: values[slot] for key, slot in plan.expressions.named_slots}
        return (expressions, self._objective_outputs(input_dict, plan, values, objective_names),
                self._constraint_outputs(input_dict, plan, values, constraint_names))

    def _expression_values(self, input_dict: TensorDict, part: str) -> tuple[_TermPlan, list[Any]]:
        """The plan of ``part`` ('all', 'objectives' or 'constraints') and its values on ``input_dict``."""
        plan = self._term_plan(part)
        return plan, plan.expressions.evaluate(input_dict)

    def _term_plan(self, part: str) -> _TermPlan:
        """The plan evaluating the expressions of ``part``'s terms at once (rebuilt where a term changed)."""
        objectives, constraints = self.objectives, self.constraints
        signature = _terms_signature(objectives, constraints)
        plans = self.__dict__.get("_cached_term_plans")
        if plans is None:
            plans = self.__dict__["_cached_term_plans"] = _TermPlanCache()
        plan = plans.get(part)
        if plan is None or not plan.matches(signature):
            plan = plans[part] = _TermPlan(signature, objectives if part != "constraints" else [],
                                           constraints if part != "objectives" else [])
        return plan

    def _objective_outputs(self, input_dict: TensorDict, plan: _TermPlan, values: list[Any],
                           names: list[str]) -> TensorDict:
        """Objective outputs (under ``names``) and ``objective_loss`` from the plan's ``values``."""
        output: TensorDict = {}
        total = None
        for (term, slot), name in zip(plan.objectives, names, strict=True):
            if slot is None or _has_hooks(term):
                result = term(input_dict)
                term_loss = result[term.name]
                output.update(_renamed(result, term.name, name))
            else:
                term_loss = term._weighted_metric(values[slot])
                output[name] = term_loss
            total = term_loss if total is None else total + term_loss
        output["objective_loss"] = torch.zeros(()) if total is None else total
        return output

    def _constraint_outputs(self, input_dict: TensorDict, plan: _TermPlan, values: list[Any],
                            names: list[str]) -> TensorDict:
        """Constraint outputs (under ``names``), summaries and ``penalty_loss`` from the plan's ``values``."""
        output: TensorDict = {}
        total = None
        per_sample_values, per_sample_violations, equality = [], [], []
        for (term, left_slot, right_slot), name in zip(plan.constraints, names, strict=True):
            value_key, violation_key = f"{name}_value", f"{name}_violation"
            if left_slot is None or _has_hooks(term):
                result = _renamed(term(input_dict), term.name, name)
                output.update(result)
                penalty, value, violation = result[name], result[value_key], result[violation_key]
            else:
                penalty, value, violation = term._penalty(values[left_slot], values[right_slot])
                output[name], output[value_key], output[violation_key] = penalty, value, violation
            total = penalty if total is None else total + penalty
            per_sample_values.append(_per_sample(value))
            per_sample_violations.append(_per_sample(violation))
            equality.append(isinstance(term.comparator, Eq))
        if per_sample_values:
            output.update(_constraint_summaries(per_sample_values, per_sample_violations, equality))
        output["penalty_loss"] = torch.zeros(()) if total is None else total
        return output

    @abstractmethod
    def forward(self, input_dict: TensorDict) -> TensorDict:
        """Return ``input_dict`` extended with the terms' outputs and ``loss``."""

    def _with_terms(self, objectives: list[nn.Module], constraints: list[nn.Module]) -> AggregateLoss:
        """A loss of the same kind and settings over other terms (used by ``+`` and ``*``)."""
        return type(self)(objectives, constraints)

    def __add__(self, other: AggregateLoss) -> AggregateLoss:
        """A loss with the terms of both losses (same-named terms get distinct output keys).

        A loss of a subclass (``PenaltyLoss() + BarrierLoss()``) is taken as upstream 1.5 takes it:
        the result is of this loss's class, and a `LenientInputWarning` says so.

        :raises TypeError: ``other`` is not a loss of this class or a subclass.
        """
        if not isinstance(other, type(self)):
            raise TypeError(f"Only losses of the same kind can be added: {type(self).__name__} + "
                            f"{type(other).__name__}.")
        if type(other) is not type(self):
            warn_lenient_input(f"{type(self).__name__} + {type(other).__name__} is a {type(self).__name__} with the "
                               f"terms of both, as in upstream 1.5: the {type(other).__name__}'s own settings are "
                               f"dropped. Build one {type(other).__name__} with all the terms to keep them.")
        return self._with_terms([*self.objectives, *other.objectives],
                                [*self.constraints, *other.constraints])

    def __mul__(self, weight: float) -> AggregateLoss:
        """A loss whose every term's weight is multiplied by ``weight``."""
        return self._with_terms([_scaled(term, weight) for term in self.objectives],
                                [weight * term for term in self.constraints])

    __rmul__ = __mul__


def _scaled(term: Objective | Loss, weight: float) -> Objective | Loss:
    """A copy of an objective term with its weight multiplied by ``weight``."""
    if isinstance(term, Loss):
        return term._copy_weight_to(Loss(term.input_keys, term.loss, name=term.name), term._scaled_weight(weight))
    return weight * term


def _distinct_names(names: list[str]) -> list[str]:
    """``names`` with each repeat of an earlier name suffixed ``_1``, ``_2``, ... (a suffix no
    other name uses), so that all are distinct."""
    if len(set(names)) == len(names):
        return names
    taken = set(names)
    used: set = set()
    distinct = []
    for name in names:
        candidate, count = name, 0
        while candidate in used or (count and candidate in taken):
            count += 1
            candidate = f"{name}_{count}"
        used.add(candidate)
        distinct.append(candidate)
    return distinct


def _renamed(outputs: TensorDict, name: str, new_name: str) -> TensorDict:
    """A term's ``outputs`` with the prefix ``name`` of their keys replaced by ``new_name``."""
    if name == new_name:
        return outputs
    return {new_name + key[len(name):] if key.startswith(name) else key: value for key, value in outputs.items()}


def _terms_signature(objectives: nn.ModuleList, constraints: nn.ModuleList) -> tuple:
    """The terms and the expressions they evaluate, in order: what a `_TermPlan` depends on."""
    signature: list[Any] = []
    for term in objectives:
        signature += (term, term._modules.get("var"))
    for term in constraints:
        modules = term._modules
        signature += (term, modules.get("left"), modules.get("right"))
    return tuple(signature)


def _evaluates_directly(term: nn.Module, base: type) -> bool:
    """Whether the loss may evaluate ``term`` from shared values: a ``base`` that keeps its forward."""
    return isinstance(term, base) and type(term).forward is base.forward


def _has_hooks(term: nn.Module) -> bool:
    """Whether forward hooks are registered on ``term`` (then it is called as a module)."""
    return bool(term._forward_hooks or term._forward_pre_hooks)


class _TermPlanCache(dict):
    """The term plans of a loss by part; copies and pickles of the loss drop it (it is rebuilt)."""

    def __reduce__(self) -> tuple:
        return dropped_cache, ()


class _TermPlan:
    """How an aggregate loss evaluates some of its terms: one `EvaluationPlan` over their expressions.

    Objectives and constraints that keep the standard forward are evaluated from the shared
    values (their slot is given); any other term (e.g. a `Loss`) is called on the data (slot None).

    :param signature: all the loss's terms and expressions when the plan was built, see `matches`.
    :param objectives: the objective terms to evaluate (empty for constraints only).
    :param constraints: the constraint terms to evaluate (empty for objectives only).
    """

    def __init__(self, signature: tuple, objectives: nn.ModuleList, constraints: nn.ModuleList) -> None:
        self.signature = signature
        self.signature_ids = tuple(map(id, signature))
        roots: list[Any] = []
        direct_objectives = [_evaluates_directly(term, Objective) for term in objectives]
        direct_constraints = [_evaluates_directly(term, Constraint) for term in constraints]
        for term, direct in zip(objectives, direct_objectives, strict=True):
            if direct:
                roots.append(term.var)
        for term, direct in zip(constraints, direct_constraints, strict=True):
            if direct:
                roots += (term.left, term.right)
        self.expressions = EvaluationPlan(tuple(roots))
        slots = iter(self.expressions.root_slots)
        self.objectives = [(term, next(slots) if direct else None)
                           for term, direct in zip(objectives, direct_objectives, strict=True)]
        self.constraints = [(term, *((next(slots), next(slots)) if direct else (None, None)))
                            for term, direct in zip(constraints, direct_constraints, strict=True)]

    def matches(self, signature: tuple) -> bool:
        """Whether ``signature`` lists the very same objects as the plan's.

        Objects are compared by ``id``: the plan holds its signature's objects, so their ids cannot
        be reused by other objects while it exists.
        """
        return tuple(map(id, signature)) == self.signature_ids


def _per_sample(tensor: Any) -> torch.Tensor:
    """Reshape a constraint value to ``(batch, -1)`` (a scalar becomes ``(1, 1)``)."""
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 2:
        return tensor
    tensor = torch.as_tensor(tensor)
    if tensor.dim() == 0:
        return tensor.reshape(1, 1)
    return tensor.reshape(tensor.shape[0], -1)


def _concatenated(columns: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(columns, dim=1)``; a single tensor is returned as is.

    :raises ValueError: the tensors disagree on the batch size.
    """
    if len(columns) == 1:
        return columns[0]
    try:
        return torch.cat(columns, dim=1)
    except RuntimeError:
        sizes = sorted({column.shape[0] for column in columns})
        if len(sizes) > 1:
            raise ValueError(f"Constraints evaluate to different batch sizes {sizes}: every constraint's "
                             "value must have the batch as its first dimension.") from None
        raise


def _constraint_summaries(values: list[torch.Tensor], violations: list[torch.Tensor],
                          equality: list[bool]) -> TensorDict:
    """Concatenate per-sample constraint values/violations and split them by constraint kind.

    ``equality[i]`` says whether constraint ``i`` is an equality. Where all constraints are of one
    kind, the split of that kind is the full concatenation and the other an empty ``(batch, 0)`` view.

    :raises ValueError: constraints disagree on the batch size.
    """
    all_values, all_violations = _concatenated(values), _concatenated(violations)
    if not any(equality):
        eq_values, eq_violations = all_values[:, :0], all_violations[:, :0]
        ineq_values, ineq_violations = all_values, all_violations
    elif all(equality):
        eq_values, eq_violations = all_values, all_violations
        ineq_values, ineq_violations = all_values[:, :0], all_violations[:, :0]
    else:
        eq_values = _concatenated([v for v, is_eq in zip(values, equality, strict=True) if is_eq])
        eq_violations = _concatenated([v for v, is_eq in zip(violations, equality, strict=True) if is_eq])
        ineq_values = _concatenated([v for v, is_eq in zip(values, equality, strict=True) if not is_eq])
        ineq_violations = _concatenated([v for v, is_eq in zip(violations, equality, strict=True) if not is_eq])
    return {"C_violations": all_violations, "C_values": all_values,
            "C_eq_violations": eq_violations, "C_ineq_violations": ineq_violations,
            "C_eq_values": eq_values, "C_ineq_values": ineq_values}


class PenaltyLoss(AggregateLoss):
    """Penalty method: ``loss = objective_loss + penalty_loss`` (sum of weighted penalties).

    :param objectives: terms to minimise.
    :param constraints: soft constraints.
    :raises TypeError: an item has the wrong type (the message names it).
    :raises ValueError: two terms share a name.
    """

    def __init__(self, objectives: list[Objective | Loss], constraints: list[Constraint]) -> None:
        super().__init__(objectives, constraints)

    def forward(self, input_dict: TensorDict) -> TensorDict:
        """Return a new dict: ``input_dict`` plus the terms' outputs, summaries and ``loss``."""
        expressions, objectives, constraints = self._term_outputs(input_dict)
        output = {**input_dict, **expressions, **objectives, **constraints}
        output["loss"] = output["objective_loss"] + output["penalty_loss"]
        return output


def _barrier_functions(alpha: float, shift: float) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The named barriers of `BarrierLoss`, as functions of a constraint value ``v < 0``."""
    return {
        "log10": lambda value: -torch.log10(-value),
        "log": lambda value: -torch.log(-value),
        "inverse": lambda value: -1.0 / value,
        "softexp": lambda value: (torch.exp(alpha * value) - 1.0) / alpha + alpha,
        "softlog": lambda value: -torch.log(1.0 + alpha * (-value - alpha)) / alpha,
        "expshift": lambda value: torch.exp(value + shift),
    }


class BarrierLoss(PenaltyLoss):
    """Barrier method: inequalities penalised where violated or active, barrier-ed where strictly held.

    For each inequality constraint with value ``v`` (``v <= 0`` means satisfied) the samples with
    ``v >= 0`` add ``weight * mean(mask * violation)`` and those with ``v < 0`` add
    ``weight * mean(mask * b(v))``, where the barrier ``b`` is clamped to ``[0, upper_bound]`` (NaN
    and infinite values count as 0). ``penalty_loss`` is the sum of both parts, ``barrier_loss``
    the barrier part, and ``<name>_barrier`` the barrier values of each constraint (0 where not
    strictly satisfied).

    Barriers: ``'log10'`` ``-log10(-v)``, ``'log'`` ``-ln(-v)``, ``'inverse'`` ``-1/v``,
    ``'softexp'`` ``(exp(alpha v) - 1)/alpha + alpha``, ``'softlog'``
    ``-ln(1 + alpha(-v - alpha))/alpha``, ``'expshift'`` ``exp(v + shift)``, or any callable.

    Equality constraints, which no barrier can keep, contribute their ordinary penalty, and
    barriers are only evaluated at strictly feasible points, so infeasible samples never inject
    NaN gradients.

    :param objectives: terms to minimise.
    :param constraints: soft constraints.
    :param barrier: one of the names above or a function of ``v``.
    :param upper_bound: the barrier values are clamped to at most this.
    :param shift: shift of the 'expshift' barrier.
    :param alpha: bending of the 'softexp' and 'softlog' barriers.
    :raises ValueError: unknown barrier name.
    """

    def __init__(self, objectives: list[Objective | Loss], constraints: list[Constraint],
                 barrier: str | Callable = "log10", upper_bound: float = 1.0, shift: float = 1.0,
                 alpha: float = 0.5) -> None:
        super().__init__(objectives, constraints)
        self.shift = shift
        self.alpha = alpha
        self.upper_bound = upper_bound
        self.barriers = _barrier_functions(alpha, shift)
        if callable(barrier):
            self.barrier = barrier
        elif isinstance(barrier, str) and barrier in self.barriers:
            self.barrier = self.barriers[barrier]
        else:
            raise ValueError(f"Unknown barrier {barrier!r}: use one of {sorted(self.barriers)} or a "
                             "callable of the constraint value.")
        self.barrier_name = barrier if isinstance(barrier, str) else getattr(barrier, "__name__", "custom")
        self.output_keys = [*self.output_keys, "barrier_loss"]

    def _with_terms(self, objectives: list[nn.Module], constraints: list[nn.Module]) -> BarrierLoss:
        return BarrierLoss(objectives, constraints, self.barrier, self.upper_bound, self.shift, self.alpha)

    def _barrier_values(self, value: torch.Tensor) -> torch.Tensor:
        """Clamped barrier values where ``value < 0``, and 0 elsewhere."""
        feasible = value < 0
        safe_value = torch.where(feasible, value, -torch.ones_like(value))
        barrier = torch.nan_to_num(self.barrier(safe_value), nan=0.0, posinf=0.0, neginf=0.0)
        barrier = torch.clamp(barrier, min=0.0, max=self.upper_bound)
        return torch.where(feasible, barrier, torch.zeros_like(barrier))

    def _constraint_outputs(self, input_dict: TensorDict, plan: _TermPlan, values: list[Any],
                            names: list[str]) -> TensorDict:
        """Constraint outputs and summaries, ``<name>_barrier`` values, ``barrier_loss`` and the
        barrier-aware ``penalty_loss`` (what `calculate_constraints` returns for this loss)."""
        output = super()._constraint_outputs(input_dict, plan, values, names)
        total = torch.zeros(())
        barrier_total = torch.zeros(())
        for constraint, name in zip(self.constraints, names, strict=True):
            if isinstance(constraint.comparator, Eq):
                total = total + output[name]
                continue
            value = torch.as_tensor(output[f"{name}_value"])
            violation = output[f"{name}_violation"]
            barrier = self._barrier_values(value)
            output[f"{name}_barrier"] = barrier
            active = value >= 0
            total = total + constraint.weight * _unless_none(active, torch.mean(active * violation))
            barrier_part = constraint.weight * _unless_none(~active, torch.mean(~active * barrier))
            barrier_total = barrier_total + barrier_part
            total = total + barrier_part
        output["barrier_loss"] = barrier_total
        output["penalty_loss"] = total
        return output


def _unless_none(mask: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``part`` where some entry of ``mask`` is set, else 0 (a NaN mean over no sample counts as 0).

    The selection happens in the tensor, not in a Python ``if``, so that it also runs inside
    ``torch.func.vmap`` where every member has its own mask.
    """
    return torch.where(mask.any(), part, torch.zeros_like(part))


def _dataset_size(train_data: Any) -> int:
    """Number of training samples of a DataLoader, a Dataset, or an int.

    :raises TypeError: none of these.
    """
    if isinstance(train_data, int) and not isinstance(train_data, bool):
        return train_data
    dataset = getattr(train_data, "dataset", train_data)
    if hasattr(dataset, "__len__"):
        return len(dataset)
    raise TypeError(f"train_data must be the training DataLoader (or its Dataset, or the number of "
                    f"samples), got {type(train_data).__name__}.")


class AugmentedLagrangeLoss(AggregateLoss):
    """Augmented Lagrangian method with per-sample multipliers and penalty weights.

    In training mode, ``loss = objective_loss + con_lagrangian + mu_scaled_penalty_loss`` where, for
    each sample ``s`` of the batch with constraint values ``C_s`` and violations ``V_s``,
    ``con_lagrangian = mean_s(lm_s . g(C_s))`` (``g = relu`` on inequalities, identity on
    equalities) and ``mu_scaled_penalty_loss = mean_s(mu_s * |V_s|^2)``. Every ``inner_loop`` epochs
    (at epochs ``inner_loop, 2 inner_loop, ...``) the multipliers of the batch's samples whose
    violation norm ``|V_s|`` dropped below ``eta`` times their best so far are updated
    (``lm <- relu(lm + mu C)`` for inequalities, ``lm <- lm + mu C`` for equalities) and that best
    is recorded; the other samples' ``mu`` grows by ``sigma`` up to ``mu_max``. In eval mode,
    ``loss = objective_loss + penalty_loss``. Also output: ``unscaled_penalty_loss``
    (``mean_s |V_s|^2``), ``2norm_unscaled_penalty_loss`` (``mean_s |V_s|``), ``scaled_performance``
    (``objective_loss + penalty_loss``) and, in training, ``con_lagrangian``,
    ``mu_scaled_penalty_loss`` and ``mu`` (the mean weight).

    Batches must carry ``'epoch'`` (the trainers add it) and ``'index'``, each sample's position in
    the training set (e.g. ``DictDataset({..., 'index': torch.arange(n)})``).

    Equality multipliers are not clipped at 0 and the equality term is not passed through relu;
    the penalty weight of each sample is that sample's own; multiplier buffers are created on the
    data's device and restored with their saved shape by ``load_state_dict``.

    :param objectives: terms to minimise.
    :param constraints: soft constraints.
    :param train_data: the training data (or its number of samples), to size per-sample buffers.
    :param inner_loop: epochs between multiplier updates.
    :param sigma: growth factor of ``mu`` where violations did not shrink (> 1).
    :param mu_max: upper bound of ``mu``.
    :param mu_init: initial ``mu``.
    :param eta: expected reduction of the violation norm (<= 1).
    :raises TypeError: ``train_data`` has no length.
    :raises ValueError: ``inner_loop`` < 1.
    """

    def __init__(self, objectives: list[Objective | Loss], constraints: list[Constraint],
                 train_data: DataLoader | Dataset | int,
                 inner_loop: int = 10, sigma: float = 2.0, mu_max: float = 1000.0, mu_init: float = 0.001,
                 eta: float = 1.0) -> None:
        super().__init__(objectives, constraints)
        if not isinstance(inner_loop, int) or inner_loop < 1:
            raise ValueError(f"inner_loop must be a positive int (epochs between updates), got {inner_loop!r}.")
        nsamples = _dataset_size(train_data)
        self.inner_loop = inner_loop
        self.mu_init = mu_init
        self.register_buffer("nsamples", torch.tensor(nsamples))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("mu_max", torch.tensor(float(mu_max)))
        self.register_buffer("mu", torch.full((nsamples, 1), float(mu_init)))
        self.register_buffer("lm", torch.empty(0))
        self.register_buffer("eta", torch.tensor(float(eta)))
        self.register_buffer("penalty_best", torch.empty(0))
        self.output_keys = [*self.output_keys, "2norm_unscaled_penalty_loss", "unscaled_penalty_loss",
                            "scaled_performance", "con_lagrangian", "mu_scaled_penalty_loss", "mu"]

    @property
    def init(self) -> bool:
        """True until the first training step has created the multipliers."""
        return self.lm.numel() == 0

    @property
    def vmap_safe(self) -> bool:
        """Whether the loss can run inside ``torch.func.vmap``: once its multiplier buffers exist.

        The first training step creates ``lm`` and ``penalty_best`` (their width is the number of
        constraint columns, known only then) by assigning new buffers, and ``functional_call`` does
        not keep buffers assigned inside it; afterwards the updates are in place, per member.
        """
        return not self.init

    vmap_unsafe_reason = ("its multiplier buffers (lm, penalty_best) are created by its first evaluation in "
                          "training mode, which a vmapped functional_call cannot keep; evaluate it once in training "
                          "mode outside vmap first (at epoch 0 that only creates them)")

    def _with_terms(self, objectives: list[nn.Module], constraints: list[nn.Module]) -> AugmentedLagrangeLoss:
        return AugmentedLagrangeLoss(objectives, constraints, int(self.nsamples), self.inner_loop,
                                     float(self.sigma), float(self.mu_max), self.mu_init, float(self.eta))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Resize the lazily created multiplier buffers to the saved shapes before loading them."""
        for name in ("lm", "penalty_best"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _batch_indices(self, input_dict: TensorDict) -> torch.Tensor:
        """The batch's sample positions (``input_dict['index']``) as a 1-d long tensor.

        :raises KeyError: the batch has no 'index'.
        """
        if "index" not in input_dict:
            raise KeyError("AugmentedLagrangeLoss needs each batch to carry 'index', the samples' positions "
                           "in the training set: add 'index': torch.arange(n) to the training dataset.")
        return torch.as_tensor(input_dict["index"], device=self.mu.device).reshape(-1).long()

    def _epoch(self, input_dict: TensorDict) -> int:
        """The current epoch from the batch.

        :raises KeyError: the batch has no 'epoch'.
        """
        if "epoch" not in input_dict:
            raise KeyError("AugmentedLagrangeLoss needs the batch to carry 'epoch' (the trainers add it); "
                           "set batch['epoch'] when calling the loss directly.")
        return int(input_dict["epoch"])

    def _update_multipliers(self, index: torch.Tensor, values: torch.Tensor, norms: torch.Tensor,
                            equality: torch.Tensor) -> None:
        """Outer-loop step for the batch's samples (no gradient flows through it)."""
        improved = norms < self.eta * self.penalty_best[index]
        if logger.isEnabledFor(logging.DEBUG) and not is_transformed(improved):
            logger.debug("augmented Lagrangian update: %d of %d samples improved", int(improved.sum()), len(index))
        mu = self.mu[index]
        step = self.lm[index] + mu * values * improved
        self.lm[index] = torch.where(equality, step, torch.relu(step))
        self.penalty_best[index] = torch.where(improved, norms, self.penalty_best[index])
        self.mu[index] = torch.clamp(torch.where(improved, mu, self.sigma * mu), max=self.mu_max)

    def forward(self, input_dict: TensorDict) -> TensorDict:
        """Return a new dict: ``input_dict`` plus term outputs, summaries and the augmented ``loss``.

        :raises KeyError: in training, the batch lacks 'epoch' or 'index'.
        """
        expressions, objectives, constraints = self._term_outputs(input_dict)
        output = {**input_dict, **expressions, **objectives, **constraints}
        objective = output["objective_loss"]
        squared_norms = torch.sum(output["C_violations"] ** 2, dim=-1, keepdim=True) if self.constraints \
            else torch.zeros(1, 1)
        norms = torch.sqrt(squared_norms)
        output["2norm_unscaled_penalty_loss"] = torch.mean(norms)
        output["unscaled_penalty_loss"] = torch.mean(squared_norms)
        output["scaled_performance"] = objective + output["penalty_loss"]
        if not self.training or not self.constraints:
            output["loss"] = objective + output["penalty_loss"]
            return output
        index = self._batch_indices(input_dict)
        values = output["C_values"]
        equality = _equality_columns(self.constraints, self._split_term_names()[1], output, values.device)
        if self.init:
            self.lm = torch.zeros(int(self.nsamples), values.shape[-1], device=values.device, dtype=values.dtype)
            self.penalty_best = torch.full((int(self.nsamples), 1), float(np.finfo(np.float32).max),
                                           device=values.device, dtype=values.dtype)
        epoch = self._epoch(input_dict)
        if epoch % self.inner_loop == 0 and epoch != 0:
            with torch.no_grad():
                self._update_multipliers(index, values.detach(), norms.detach(), equality)
        multipliers = self.lm[index]
        terms = torch.where(equality, values, torch.relu(values))
        con_lagrangian = torch.mean(torch.sum(multipliers * terms, dim=-1))
        mu_scaled_penalty_loss = torch.mean(self.mu[index] * squared_norms)
        output["loss"] = objective + con_lagrangian + mu_scaled_penalty_loss
        output["con_lagrangian"] = con_lagrangian
        output["mu_scaled_penalty_loss"] = mu_scaled_penalty_loss
        output["mu"] = torch.mean(self.mu)
        return output


def _equality_columns(constraints: Any, names: list[str], output: TensorDict, device: torch.device) -> torch.Tensor:
    """Boolean mask over the columns of ``C_values``: True where the column is an equality."""
    flags = []
    for constraint, name in zip(constraints, names, strict=True):
        width = _per_sample(output[f"{name}_value"]).shape[1]
        flags += [isinstance(constraint.comparator, Eq)] * width
    return torch.tensor(flags, dtype=torch.bool, device=device)
