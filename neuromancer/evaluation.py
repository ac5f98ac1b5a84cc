"""The evaluator of symbolic expressions: a graph of `Variable` nodes compiled into a flat program.

`neuromancer.constraint` builds expression graphs; this module runs them. `EvaluationPlan` walks
the graphs of several expressions once, gives every distinct value a slot in a list, merges
repeated pure sub-expressions, and evaluates the lot on a data dictionary in one pass, without
recursion. It also holds what building and running share: the argument templates (`Slot`,
`Seq`, `fill`) through which a node names its parents' values, the pure operators that may be
merged, and `derivative`, the one operator whose meaning depends on where a value came from.

The nodes are read through their attributes (``_kind``, ``_key``, ``_parents``, ``_func``,
``_args``, ``_kwargs``, ``_number``, ``_call``, ``_leaf_value``, ``_topological_order``), the
protocol `neuromancer.constraint.Variable` keeps for this module.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from neuromancer.vmap import VmapUnsupportedError, transform_active

if TYPE_CHECKING:
    from neuromancer.constraint import Variable

__all__ = ["EvaluationPlan", "FIRST_SLOTS", "GET_MT", "GET_T", "Seq", "Slot", "derivative", "dropped_cache",
           "fill", "is_pure_operator", "missing_key_error", "slot"]


class Slot:
    """Placeholder for the value of the ``index``-th parent in a node's argument template."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


FIRST_SLOTS = tuple(Slot(index) for index in range(8))


def slot(index: int) -> Slot:
    """The placeholder of parent ``index`` (shared instances for the usual few parents)."""
    return FIRST_SLOTS[index] if index < len(FIRST_SLOTS) else Slot(index)

class Seq:
    """Template of a list or tuple argument that contains variables (e.g. ``torch.cat([x, y])``)."""

    __slots__ = ("kind", "items")

    def __init__(self, kind: type, items: list) -> None:
        self.kind = kind
        self.items = items

def fill(template: Any, values: list[Any]) -> Any:
    """Rebuild an argument from its template with the parents' computed ``values``."""
    kind = type(template)
    if kind is Slot:
        return values[template.index]
    if kind is Seq:
        return template.kind(fill(item, values) for item in template.items)
    return template

def derivative(output: Any, wrt: torch.Tensor) -> torch.Tensor:
    """Gradient of ``output`` (summed over its elements) w.r.t. ``wrt``, keeping the graph.

    Used by `Variable.grad`, `Objective.grad`, `Constraint.grad` and `Loss.grad`; the graph is kept
    (``create_graph=True``) so that derivatives can appear inside losses and be trained through.

    :raises ValueError: ``wrt`` is not a tensor that requires grad.
    :raises neuromancer.vmap.VmapUnsupportedError: inside ``torch.func.vmap`` (or another ``torch.func``
        transform), where ``torch.autograd.grad`` cannot differentiate.
    """
    if transform_active():
        raise VmapUnsupportedError("Variable.grad cannot be evaluated inside torch.func.vmap (or another "
                                   "torch.func transform): torch.autograd.grad cannot differentiate there. "
                                   "Evaluate this expression outside vmap, one model copy at a time.")
    if not isinstance(wrt, torch.Tensor) or not wrt.requires_grad:
        raise ValueError("Cannot differentiate with respect to a tensor that does not require grad: "
                         "create it with requires_grad=True (or compute it from parameters).")
    if not isinstance(output, torch.Tensor) or not output.requires_grad:
        return torch.zeros_like(wrt)
    return torch.autograd.grad(output, wrt, grad_outputs=torch.ones_like(output), create_graph=True,
                               allow_unused=True, materialize_grads=True)[0]

def missing_key_error(key: str, datadict: dict[str, Any]) -> KeyError:
    """The KeyError raised where a data variable's ``key`` is absent from ``datadict``."""
    return KeyError(f"Variable {key!r} is not in the data dictionary; available keys: "
                    f"{sorted(map(str, datadict))}. Add it to the dataset or produce it "
                    "with a Node whose output_keys include it.")

GET_T = operator.attrgetter("T")
GET_MT = operator.attrgetter("mT")

# Functions that the operators of Variable build and that always give the same result for the same
# inputs: two nodes applying one of them to the same operands may share one computed value.
_PURE_OPERATORS = (operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, operator.matmul,
                   operator.neg, operator.abs, operator.getitem, GET_T, GET_MT)
_PURE_OPERATOR_IDS = frozenset(map(id, _PURE_OPERATORS))


def is_pure_operator(func: Any) -> bool:
    """True where ``func`` is one of `_PURE_OPERATORS` (compared by identity: funcs may be unhashable)."""
    return id(func) in _PURE_OPERATOR_IDS

def dropped_cache() -> None:
    """What a cached plan becomes when its owner is copied or unpickled: nothing, so it is rebuilt.

    Plans hold compiled functions and refer to the original nodes, neither of which a copy should keep.
    """
    return None


_ATOMIC_CONSTANTS = frozenset({int, bool, str, type(None), type(Ellipsis)})


def _constant_signature(obj: Any) -> Any:
    """A hashable description of a constant argument, equal only for interchangeable constants.

    The type is part of it, so ``2`` and ``2.0`` stay apart, and so is the sign of floats, so
    ``0.0`` and ``-0.0`` do too. Returns None for constants that cannot be compared safely (e.g.
    tensors used as indices).
    """
    kind = type(obj)
    if kind is float:
        return float, obj, math.copysign(1.0, obj)
    if kind in _ATOMIC_CONSTANTS:
        return kind, obj
    if kind is Slot:
        return Slot, obj.index
    if kind is complex:
        return complex, repr(obj)
    if kind is slice:
        parts = (_constant_signature(obj.start), _constant_signature(obj.stop), _constant_signature(obj.step))
        return None if None in parts else (slice, parts)
    if kind in (list, tuple):
        items = []
        for item in obj:
            signature = _constant_signature(item)
            if signature is None:
                return None
            items.append(signature)
        return kind, tuple(items)
    return None


def _node_signature(node: Variable, parent_slots: tuple[int, ...]) -> Any:
    """What makes ``node``'s value interchangeable with another node's, or None where nothing does.

    Data variables are identified by their key, numbers by their value, and nodes computed by a pure
    operator by the operator, their operands' slots and their constant arguments. Tensor leaves,
    placeholders and nodes applying any other function (which may be random or have side effects)
    are only ever equal to themselves.
    """
    kind = node._kind
    if kind == "data":
        return "data", node._key
    if kind == "scalar":
        return "scalar", _constant_signature(node._number)
    if kind != "derived" or not is_pure_operator(node._func) or node._kwargs is not None:
        return None
    arguments = None if node._args is None else _constant_signature(node._args)
    if node._args is not None and arguments is None:
        return None
    return node._func, parent_slots, arguments


def _compile_step(node: Variable, slots: tuple[int, ...]) -> Callable[[list[Any]], Any]:
    """A function computing ``node`` from the list of values, where its parents sit at ``slots``.

    The usual shapes of call (the function on one or two operands, or on one operand and a constant)
    get a direct call; anything else goes through `Variable._call`.
    """
    func, args = node._func, node._args
    if node._kwargs is None and args is None:
        return _direct_step(func, slots)
    if node._kwargs is None and args is not None:
        if all(type(arg) is Slot for arg in args):
            return _direct_step(func, tuple(slots[arg.index] for arg in args))
        if len(args) == 2 and len(slots) == 1:
            left, right = args
            only = slots[0]
            if type(left) is Slot and type(right) is not Seq:
                return lambda values: func(values[only], right)
            if type(right) is Slot and type(left) is not Seq:
                return lambda values: func(left, values[only])
    return lambda values: node._call([values[slot] for slot in slots])


def _direct_step(func: Callable, slots: tuple[int, ...]) -> Callable[[list[Any]], Any]:
    """A function calling ``func`` on the values at ``slots``, in that order."""
    if len(slots) == 1:
        only = slots[0]
        return lambda values: func(values[only])
    if len(slots) == 2:
        first, second = slots
        return lambda values: func(values[first], values[second])
    return lambda values: func(*[values[slot] for slot in slots])


class EvaluationPlan:
    """A flat program that evaluates several expressions on a data dictionary in one pass.

    Compiling walks every root's graph once (no recursion), gives each distinct value a slot of a
    list, and records the data keys to read, the tensor leaves to fetch and the computations to run
    in topological order. Nodes shared between the roots are computed once, and so are repeated
    pure sub-expressions such as ``x[:, [0]] ** 2`` built twice (unless the expressions take
    derivatives, whose meaning depends on which node a value came from). Leaves are read at every
    evaluation, so moved buffers and replaced parameters are always current.

    :param roots: the expressions; their values are at ``root_slots``, and the
        value of every node that is not a data variable is at the slot `named_slots` gives its key.
    """

    def __init__(self, roots: tuple[Variable, ...]) -> None:
        self.roots = tuple(roots)
        (self.root_slots, self.named_slots, self._initial, self._data_reads, self._leaf_reads,
         self._steps) = self._compile()

    def __reduce__(self) -> tuple:
        """Copies and pickles of an expression drop its plan; the copy compiles its own on first use."""
        return dropped_cache, ()

    def _compile(self) -> tuple:
        """``(root_slots, named_slots, initial values, data reads, leaf reads, steps)`` for the roots."""
        nodes: dict[int, Variable] = {}
        for root in self.roots:
            for node in root._topological_order():
                nodes.setdefault(id(node), node)
        merge = not any(node._func is derivative for node in nodes.values())
        slot_of: dict[int, int] = {}
        slot_by_signature: dict[Any, int] = {}
        initial: list[Any] = []
        data_reads, leaf_reads, steps, named_slots = [], [], [], []
        for node in nodes.values():
            parent_slots = tuple(slot_of[id(parent)] for parent in node._parents)
            signature = _node_signature(node, parent_slots) if merge else None
            shared_slot = slot_by_signature.get(signature) if signature is not None else None
            slot = len(initial) if shared_slot is None else shared_slot
            slot_of[id(node)] = slot
            if node._kind != "data":
                named_slots.append((node._key, slot))
            if shared_slot is not None:
                continue
            if signature is not None:
                slot_by_signature[signature] = slot
            initial.append(None)
            if node._kind == "data":
                data_reads.append((slot, node._key))
            elif node._kind == "scalar":
                initial[slot] = node._number
            elif node._kind == "derived":
                steps.append((slot, _compile_step(node, parent_slots)))
            else:
                leaf_reads.append((slot, node))
        root_slots = tuple(slot_of[id(root)] for root in self.roots)
        return root_slots, tuple(named_slots), initial, tuple(data_reads), tuple(leaf_reads), tuple(steps)

    def evaluate(self, datadict: dict[str, Any]) -> list[Any]:
        """Compute every value of the plan on ``datadict``; the roots' are at `root_slots`.

        :raises KeyError: a data variable's key is missing (the message lists the keys available).
        :raises ValueError: an expression contains a placeholder without a value.
        """
        values = self._initial.copy()
        for slot, key in self._data_reads:
            try:
                values[slot] = datadict[key]
            except KeyError:
                raise missing_key_error(key, datadict) from None
        for slot, node in self._leaf_reads:
            values[slot] = node._leaf_value(datadict)
        for slot, step in self._steps:
            values[slot] = step(values)
        return values
