"""Symbolic variables, objectives and constraints: the modeling language of NeuroMANCER.

``variable('x')`` names an entry of the data dictionary; arithmetic, indexing and torch functions on
variables build an expression graph (a DAG of `Variable` nodes) instead of computing anything, and
``expr(data)`` evaluates the graph on a data dictionary. ``expr.minimize()`` turns an expression into
an `Objective`, and comparisons (``x <= 1``, ``y >= p``, ``x == y``) into a `Constraint` whose forward
pass returns the weighted penalty, the constraint value and its violation; `Loss` wraps a plain
function of data keys. Building an expression costs O(1) per operation (a node only references its
inputs). On first evaluation an expression (or, in `neuromancer.loss`, all terms of a loss together)
is compiled into a flat plan in topological order, so every shared or repeated pure sub-expression
is computed once per call and deep expressions (thousands of chained sums) never meet Python's
recursion limit. Trainable and constant tensors inside an expression are registered with
the expressions that use them, so ``Problem.parameters()`` and ``.to(device)`` see them.
"""
from __future__ import annotations

import itertools
import numbers
import operator
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from neuromancer.evaluation import (
    FIRST_SLOTS,
    GET_MT,
    GET_T,
    EvaluationPlan,
    Seq,
    Slot,
    derivative,
    fill,
    missing_key_error,
    slot,
)
from neuromancer.exceptions import warn_lenient_input

TensorDict = dict[str, torch.Tensor]

_SUPPORTED_OPERANDS = "a Variable, a Python or numpy number, a numpy array or a torch.Tensor"
_key_counter = itertools.count()


def _new_key(base: str) -> str:
    """Return a readable key unique in this process: ``'<base>_<counter>'``."""
    return f"{_clean_label(base)}_{next(_key_counter)}"


def _clean_label(text: str) -> str:
    """Make ``text`` usable inside output-dictionary keys (no spaces)."""
    return str(text).strip().replace(" ", "_") or "var"


def _scalar_label(number: Any) -> str:
    """Label a Python number the way a user writes it: ``1`` for 1 and 1.0, ``0.5`` for 0.5."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number)


# Sets an attribute without nn.Module.__setattr__ (and without materialising the instance dict):
# expression nodes store their bookkeeping as plain attributes.
_set_field = object.__setattr__


def _template_of(obj: Any, parents: list[Variable]) -> Any:
    """Replace the variables inside ``obj`` (recursing into lists and tuples) by slots.

    Each variable found is appended to ``parents``; anything without variables is kept as a
    constant, so index tuples and keyword values are stored untouched.
    """
    if isinstance(obj, Variable):
        parents.append(obj)
        return slot(len(parents) - 1)
    if isinstance(obj, (list, tuple)):
        items = [_template_of(item, parents) for item in obj]
        if any(isinstance(item, (Slot, Seq)) for item in items):
            return Seq(type(obj), items)
    return obj


def _is_number(obj: Any) -> bool:
    """True for Python and numpy scalars (bool included, as torch accepts them)."""
    return isinstance(obj, (numbers.Number, np.generic)) and not isinstance(obj, np.ndarray)


def _python_number(obj: Any) -> Any:
    """Turn a numpy scalar into the Python number of the same value."""
    return obj.item() if isinstance(obj, np.generic) else obj


def _tensor_from_array(array: np.ndarray) -> torch.Tensor:
    """Convert a numpy array to a tensor; floating arrays take torch's default dtype, so that
    constants match the model's precision."""
    tensor = torch.as_tensor(array)
    if tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def _parameter_from_computed(tensor: torch.Tensor) -> nn.Parameter:
    """A new leaf parameter holding a copy of ``tensor``, a tensor computed from parameters.

    Upstream 1.5 wraps such a tensor in a new ``nn.Parameter``: the link to the parameters it was
    computed from is cut, and the optimiser trains the copy instead. That is kept, with a
    `LenientInputWarning`. A view into a parameter (``layer.weight[0, 1]``) is refused: upstream's
    new parameter shares that parameter's memory, so each optimiser step on the copy also
    changes the parameter, unseen.

    :raises ValueError: ``tensor`` is a view into a parameter.
    """
    base = tensor._base
    if base is not None and base.is_leaf and base.requires_grad:
        raise ValueError("A view into a parameter (it has a grad_fn) cannot be a Variable's value: its "
                         "gradient would be cut. Wrap the parameter itself, e.g. "
                         "variable(layer.weight)[0, 1] instead of variable(layer.weight[0, 1]).")
    warn_lenient_input(f"A tensor computed from parameters (grad_fn {type(tensor.grad_fn).__name__}) becomes "
                       "a new trainable parameter initialised from its value, as in upstream 1.5: gradients "
                       "do not reach the parameters it was computed from, and the optimiser trains the "
                       "copy. To train those parameters, let the expression compute the value: "
                       "variable([], lambda: <the computation>), e.g. variable([], K.reg_error) in place "
                       "of variable(K.reg_error()).")
    return nn.Parameter(tensor.detach().clone())


def _unsupported(obj: Any, action: str) -> TypeError:
    """The TypeError raised for an operand of an unsupported type."""
    return TypeError(f"Cannot {action} an object of type {type(obj).__name__!r} ({obj!r:.60}); "
                     f"supported operands are {_SUPPORTED_OPERANDS}.")


def _as_operand(obj: Any, action: str) -> Any:
    """Normalise the other operand of an operator on a Variable.

    Numbers (and 0-dimensional tensors that need no gradient) stay inline Python numbers: they need
    no device handling and cost nothing to store. Arrays and other tensors become leaf Variables so
    that their tensors are registered (buffers move with ``.to(device)``, trainable tensors appear
    in ``.parameters()``).

    :raises TypeError: for any other type.
    """
    if isinstance(obj, Variable):
        return obj
    if _is_number(obj):
        return _python_number(obj)
    if isinstance(obj, np.ndarray):
        return _python_number(obj[()]) if obj.ndim == 0 else Variable(value=_tensor_from_array(obj))
    if isinstance(obj, torch.Tensor):
        if obj.dim() == 0 and not obj.requires_grad:
            return obj.item()
        return Variable(value=obj)
    raise _unsupported(obj, action)


def _as_variable(obj: Any, action: str) -> Variable:
    """Like `_as_operand`, but wrap inline numbers in constant Variables too."""
    operand = _as_operand(obj, action)
    return operand if isinstance(operand, Variable) else Variable(value=operand)


_BINARY_NAMES = {operator.add: "add", operator.sub: "sub", operator.mul: "mul",
                 operator.truediv: "div", operator.pow: "pow", operator.matmul: "matmul"}

# ``tensor <op> variable`` reaches `Variable.__torch_function__` as the Tensor method (``Tensor.sub``
# with args ``(tensor, variable)``); route it to the Variable's reflected operator so the tensor
# becomes a registered leaf and comparisons become constraints.
_TENSOR_REFLECTIONS = {
    torch.Tensor.add: "__radd__", torch.Tensor.sub: "__rsub__", torch.Tensor.mul: "__rmul__",
    torch.Tensor.div: "__rtruediv__", torch.Tensor.matmul: "__rmatmul__",
    torch.Tensor.__pow__: "__rpow__",
    torch.Tensor.le: "__ge__", torch.Tensor.lt: "__gt__", torch.Tensor.ge: "__le__",
    torch.Tensor.gt: "__lt__", torch.Tensor.eq: "__eq__",
}


def _function_name(func: Callable) -> str:
    """A short readable name for a torch function or Tensor method (``sin``, ``sum``, ``mul``)."""
    name = getattr(func, "__name__", None) or type(func).__name__
    return _clean_label(name.strip("_").replace("<", "").replace(">", "") or "func")


# The attributes nn.Module.__init__ creates (containers are copied fresh per node).
_MODULE_STATE = dict(nn.Module().__dict__)


class Variable(nn.Module):
    """A node of a symbolic expression graph, evaluated on a data dictionary.

    Kinds of node:

    * data variable (``key`` given): ``Variable(key='x')(data)`` returns ``data['x']``;
    * constant (``value`` a tensor without grad, or a number): returns the value, stored as a
      non-persistent buffer so it follows ``.to(device)``;
    * trainable (``value`` an ``nn.Parameter`` or a tensor with ``requires_grad``): returns the
      parameter, registered so that the parameters of any module holding the expression include it;
    * derived (``func`` given): ``func(*values of input_variables)``;
    * placeholder (nothing given): has no value; evaluating it raises ValueError.

    Operators (``+ - * / ** @``, unary minus, ``abs``, indexing, ``.T``, ``.mT``) and torch functions
    (``torch.sin(x)``, ``torch.cat([x, y], 1)``, ``F.relu(x)``) build derived nodes; comparisons build
    `Constraint` objects and `minimize` builds an `Objective`. Numpy arrays and tensors mixed in are
    wrapped as constant (or trainable) leaves; numbers are stored inline.

    Keys: a data variable's key is its data key; every other node gets a readable key unique in
    the process, ``'<name>_<n>'``. Evaluating an expression leaves the data dictionary unchanged;
    the aggregate losses of `neuromancer.loss` return the value of every expression they evaluate
    under its key.

    :param input_variables: inputs of ``func``: Variables, tensors,
        arrays or numbers (non-variables become constant leaves).
    :param func: the function computing this node from its inputs.
    :param key: the data key of a data variable, or a custom key for other nodes.
    :param display_name: name shown in graphs and used in default objective/constraint names.
    :param value: the value of a leaf.
    :raises TypeError: ``func`` is not callable, a key is not a str, or a value has an unsupported type.
        A ``display_name`` that is not a str is used as ``str(display_name)``, with a
        `LenientInputWarning`.
    :raises ValueError: inputs are given without ``func``, ``key`` repeats a key of the graph, or
        ``value`` is a tensor computed from parameters (wrap the parameter instead).
    """

    __array_ufunc__ = None  # numpy defers to our reflected operators (``array + x`` -> Variable)
    __hash__ = nn.Module.__hash__  # defining __eq__ would otherwise make modules unhashable

    # Per-node bookkeeping; class-level defaults keep the nodes that operators create small.
    _kind = "derived"
    _parents: tuple[Variable, ...] = ()
    _func: Callable | None = None
    _args: tuple | None = None
    _kwargs: dict | None = None
    _order: tuple[Variable, ...] | None = None
    _data_keys: list[str] | None = None
    _leaf_list: nn.ModuleList | None = None
    _number: Any = None

    def __init__(self, input_variables: Sequence[Any] | None = None, func: Callable | None = None,
                 key: str | None = None, display_name: str | None = None,
                 value: torch.Tensor | np.ndarray | numbers.Number | None = None) -> None:
        super().__init__()
        if key is not None and not isinstance(key, str):
            raise TypeError(f"Variable key must be a str, got {type(key).__name__} {key!r}.")
        if display_name is not None and not isinstance(display_name, str):
            warn_lenient_input(f"display_name {display_name!r} is a {type(display_name).__name__}, not a str; "
                               f"it is used as {str(display_name)!r}. Pass a str.")
            display_name = str(display_name)
        inputs = list(input_variables) if input_variables is not None else []
        if func is not None:
            self._init_derived(inputs, func, key, display_name)
        elif inputs:
            raise ValueError(f"Variable got input variables {inputs!r:.80} but no func: pass the "
                             "function computing it, e.g. variable([x, y], lambda x, y: x * y).")
        elif value is not None:
            self._init_leaf(value, key, display_name)
        elif key is not None:
            self._set_identity("data", key, display_name or key, display_name or key)
        else:
            name = display_name or "placeholder"
            self._set_identity("placeholder", _new_key(name), name, name)

    # ----------------------------------------------------------------------------- construction
    def _set_identity(self, kind: str, key: str, display_name: str, label: str) -> None:
        """Store the node's kind, key and names (plain attributes, never registered)."""
        fields = self.__dict__
        fields["_kind"] = kind
        fields["_key"] = key
        fields["_display_name"] = display_name
        fields["_label"] = _clean_label(label)

    def _init_leaf(self, value: Any, key: str | None, display_name: str | None) -> None:
        """Make this node a constant or trainable leaf holding ``value``."""
        if _is_number(value):
            number = _python_number(value)
            label = display_name or _scalar_label(number)
            self._set_identity("scalar", key or _new_key("const"), label, label)
            self.__dict__["_number"] = number
            return
        if isinstance(value, np.ndarray):
            value = _tensor_from_array(value)
        if not isinstance(value, torch.Tensor):
            raise _unsupported(value, "make a Variable from")
        trainable = isinstance(value, nn.Parameter) or value.requires_grad
        if trainable and not isinstance(value, nn.Parameter) and value.grad_fn is not None:
            value = _parameter_from_computed(value)
        base = display_name or ("param" if trainable else "const")
        own_key = key or _new_key(base)
        self._set_identity("trainable" if trainable else "constant", own_key,
                           display_name or own_key, display_name or own_key)
        if trainable:
            parameter = value if isinstance(value, nn.Parameter) else nn.Parameter(value)
            self.register_parameter("_value", parameter)
        else:
            self.register_buffer("_value", value, persistent=False)
        self.__dict__["_leaf_list"] = nn.ModuleList([self])

    def _init_derived(self, inputs: list[Any], func: Callable, key: str | None,
                      display_name: str | None) -> None:
        """Make this node compute ``func(*inputs)`` (public constructor path)."""
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__name__} {func!r:.60}.")
        parents = tuple(_as_variable(item, "use as an input variable") for item in inputs)
        name = display_name or _function_name(func)
        own_key = key or _new_key(name)
        self._set_identity("derived", own_key, name, display_name or own_key)
        self._link(parents, func, None, None)
        if key is not None:
            self._check_key_against_ancestors(key)

    def _link(self, parents: tuple[Variable, ...], func: Callable, args: tuple | None,
              kwargs: dict | None) -> None:
        """Attach parents and the computation, and register the tensor leaves they depend on.

        The leaf list is shared with a parent whenever only one parent holds leaves, so building a
        node is O(1) unless it joins expressions over different tensors.
        """
        _set_field(self, "_parents", parents)
        _set_field(self, "_func", func)
        if args is not None:
            _set_field(self, "_args", args)
        if kwargs is not None:
            _set_field(self, "_kwargs", kwargs)
        leaf_lists = []
        for parent in parents:
            leaves = parent._leaf_list
            if leaves is not None and all(leaves is not seen for seen in leaf_lists):
                leaf_lists.append(leaves)
        if not leaf_lists:
            return
        if len(leaf_lists) == 1:
            merged = leaf_lists[0]
        else:
            seen_ids = set()
            members = []
            for leaves in leaf_lists:
                for leaf in leaves:
                    if id(leaf) not in seen_ids:
                        seen_ids.add(id(leaf))
                        members.append(leaf)
            merged = nn.ModuleList(members)
        _set_field(self, "_leaf_list", merged)
        self._modules["leaves"] = merged

    @classmethod
    def _derived(cls, func: Callable, parents: tuple[Variable, ...], name: str,
                 args: tuple | None = None, kwargs: dict | None = None) -> Variable:
        """Build the node computing ``func`` on ``parents`` (or on the filled ``args``/``kwargs``).

        This is the hot path of expression building, so the node skips ``nn.Module.__init__``:
        its module state (parameter, buffer and hook dictionaries) is created on first use by
        `__getattr__`, which keeps a node to a handful of attributes.
        """
        node = object.__new__(cls)
        key = f"{name}_{next(_key_counter)}"
        _set_field(node, "_key", key)
        _set_field(node, "_display_name", name)
        _set_field(node, "_label", key)
        node._link(parents, func, args, kwargs)
        return node

    def __getattr__(self, name: str) -> Any:
        """Create the module state of a node built by `_derived` the first time torch needs it."""
        if name in _MODULE_STATE and name not in self.__dict__:
            self._materialise_module_state()
            return self.__dict__[name]
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            self._materialise_module_state()
        super().__setattr__(name, value)

    def _materialise_module_state(self) -> None:
        """Give this node the empty parameter/buffer/module/hook containers of a fresh nn.Module."""
        fields = self.__dict__
        for name, default in _MODULE_STATE.items():
            if name not in fields:
                fields[name] = type(default)() if isinstance(default, (dict, set)) else default

    def _check_key_against_ancestors(self, key: str) -> None:
        """Raise ValueError where a custom ``key`` repeats the key of another node of the graph."""
        for node in self._topological_order()[:-1]:
            if node._key == key:
                raise ValueError(f"Key {key!r} repeats the key of a node in this expression; keys "
                                 "must be unique: choose another key.")

    # ------------------------------------------------------------------------ public properties
    @property
    def key(self) -> str:
        """The data key (data variables) or the unique node key (other nodes)."""
        return self._key

    @property
    def display_name(self) -> str:
        """The name shown in graphs and used to name objectives and constraints."""
        return self._display_name

    @property
    def keys(self) -> list[str]:
        """The data keys this expression reads, in first-use order (computed once, then cached)."""
        if self._data_keys is None:
            found = {}
            for node in self._topological_order():
                if node._kind == "data":
                    found.setdefault(node._key, None)
            _set_field(self, "_data_keys", list(found))
        return list(self._data_keys)

    @property
    def value(self) -> Any:
        """The tensor (or number) held by a constant or trainable leaf; None for other nodes."""
        if self._kind in ("constant", "trainable"):
            return self._value
        if self._kind == "scalar":
            return self._number
        return None

    @property
    def vmap_safe(self) -> bool:
        """Whether the expression can be evaluated inside ``torch.func.vmap``: unless it takes a derivative.

        `grad` differentiates with ``torch.autograd.grad``, which cannot see through ``vmap``.
        """
        return all(node._func is not derivative for node in self._topological_order())

    vmap_unsafe_reason = ("the expression takes a derivative (Variable.grad) with torch.autograd.grad, which "
                          "cannot differentiate inside torch.func.vmap")

    @property
    def T(self) -> Variable:
        """The transpose ``value.T`` as a new expression."""
        return Variable._derived(GET_T, (self,), "T")

    @property
    def mT(self) -> Variable:
        """The batched matrix transpose ``value.mT`` as a new expression."""
        return Variable._derived(GET_MT, (self,), "mT")

    # ------------------------------------------------------------------------------- evaluation
    def _topological_order(self) -> tuple[Variable, ...]:
        """Every node of the graph once, inputs before users, ending with self (cached).

        An explicit stack walks the DAG, so graph depth is not limited by Python's recursion limit.
        """
        order = self._order
        if order is not None:
            return order
        result, visited = [], {id(self)}
        stack = [(self, iter(self._parents))]
        while stack:
            node, pending = stack[-1]
            for parent in pending:
                if id(parent) not in visited:
                    visited.add(id(parent))
                    stack.append((parent, iter(parent._parents)))
                    break
            else:
                stack.pop()
                result.append(node)
        order = tuple(result)
        _set_field(self, "_order", order)
        return order

    def _call(self, values: list[Any]) -> Any:
        """Apply this derived node's function to its parents' ``values``."""
        if self._args is None:
            return self._func(*values)
        args = [fill(arg, values) for arg in self._args]
        if self._kwargs is None:
            return self._func(*args)
        return self._func(*args, **{name: fill(arg, values) for name, arg in self._kwargs.items()})

    def _leaf_value(self, datadict: dict[str, Any]) -> Any:
        """Value of a node without parents: data entry, constant, parameter, number or ``func()``."""
        kind = self._kind
        if kind == "data":
            try:
                return datadict[self._key]
            except KeyError:
                raise missing_key_error(self._key, datadict) from None
        if kind == "scalar":
            return self._number
        if kind in ("constant", "trainable"):
            return self._value
        if kind == "derived":
            return self._call([])
        raise ValueError(f"Variable {self._display_name!r} is a placeholder without a value: create it "
                         "with a key, a tensor, or inputs and a function.")

    def _plan(self) -> EvaluationPlan:
        """The compiled evaluation program of this expression (built on first use, then cached).

        The graph below a node never changes after it is built, so the plan stays valid.
        """
        plan = self.__dict__.get("_compiled_plan")
        if plan is None:
            plan = EvaluationPlan((self,))
            _set_field(self, "_compiled_plan", plan)
        return plan

    def forward(self, datadict: dict[str, Any] | None = None) -> Any:
        """Evaluate the expression on ``datadict``; each node is computed once per call.

        :param datadict: the data; data variables read their key.
        :return: the value (usually a tensor) of this expression.
        :raises KeyError: a data variable's key is missing (the message lists the keys available).
        :raises ValueError: the graph contains a placeholder without a value.
        """
        plan = self._plan()
        return plan.evaluate(datadict if datadict is not None else {})[plan.root_slots[0]]

    def get_value(self, n: Variable, datadict: dict[str, Any]) -> Any:
        """Value of node ``n`` (this variable or any other) on ``datadict``; same as ``n(datadict)``.

        :raises TypeError: ``n`` is not a Variable.
        """
        if not isinstance(n, Variable):
            raise TypeError(f"get_value needs a Variable, got {type(n).__name__}.")
        return n.forward(datadict)

    def check_keys(self, k: str) -> None:
        """Raise ValueError where ``k`` is already the key of a node of this expression.

        :raises ValueError: ``k`` is taken; keys must be unique within an expression.
        """
        for node in self._topological_order():
            if node._key == k:
                raise ValueError(f"Key {k!r} repeats an existing key of this expression; keys must be "
                                 "unique: choose another key.")

    def make_graph(self, input_variables: Sequence[Any]) -> list[Variable]:
        """Topologically sorted nodes of the graph formed by ``input_variables`` followed by self.

        Non-variable inputs are wrapped as constants. Building expressions never needs it: nodes
        are linked at construction and sorted lazily.
        """
        order, seen = [], set()
        for item in input_variables:
            for node in _as_variable(item, "use as an input variable")._topological_order():
                if id(node) not in seen:
                    seen.add(id(node))
                    order.append(node)
        if id(self) not in seen:
            order.append(self)
        return order

    # --------------------------------------------------------------------------------- algebra
    def _binary(self, other: Any, func: Callable, reflected: bool = False) -> Variable:
        """Build ``func(self, other)`` (or ``func(other, self)`` when ``reflected``)."""
        name = _BINARY_NAMES[func]
        operand = _as_operand(other, f"apply {name} to a Variable and")
        if isinstance(operand, Variable):
            parents = (operand, self) if reflected else (self, operand)
            return Variable._derived(func, parents, name)
        args = (operand, FIRST_SLOTS[0]) if reflected else (FIRST_SLOTS[0], operand)
        return Variable._derived(func, (self,), name, args)

    def __add__(self, other: Any) -> Variable:
        return self._binary(other, operator.add)

    def __radd__(self, other: Any) -> Variable:
        return self._binary(other, operator.add, reflected=True)

    def __sub__(self, other: Any) -> Variable:
        return self._binary(other, operator.sub)

    def __rsub__(self, other: Any) -> Variable:
        return self._binary(other, operator.sub, reflected=True)

    def __mul__(self, other: Any) -> Variable:
        return self._binary(other, operator.mul)

    def __rmul__(self, other: Any) -> Variable:
        return self._binary(other, operator.mul, reflected=True)

    def __truediv__(self, other: Any) -> Variable:
        return self._binary(other, operator.truediv)

    def __rtruediv__(self, other: Any) -> Variable:
        return self._binary(other, operator.truediv, reflected=True)

    def __pow__(self, other: Any) -> Variable:
        return self._binary(other, operator.pow)

    def __rpow__(self, other: Any) -> Variable:
        return self._binary(other, operator.pow, reflected=True)

    def __matmul__(self, other: Any) -> Variable:
        return self._binary(other, operator.matmul)

    def __rmatmul__(self, other: Any) -> Variable:
        return self._binary(other, operator.matmul, reflected=True)

    def __neg__(self) -> Variable:
        return Variable._derived(operator.neg, (self,), "neg")

    def __pos__(self) -> Variable:
        return self

    def __abs__(self) -> Variable:
        return Variable._derived(operator.abs, (self,), "abs")

    def __getitem__(self, index: Any) -> Variable:
        """``x[:, [0]]``, ``x[:, i]``, ``x[..., 1:3]``: a slice of the value as a new expression."""
        return Variable._derived(operator.getitem, (self,), "slice", (FIRST_SLOTS[0], index))

    def __iter__(self):
        """Variables are not iterable (iteration would index forever); use `unpack`."""
        raise TypeError(f"Variable {self._display_name!r} is not iterable: index it (x[:, i]) or "
                        "use unpack(n) for functions returning several values.")

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        """Apply a torch function to variables symbolically: ``torch.sin(x)`` is a new Variable."""
        kwargs = kwargs or {}
        reflection = _TENSOR_REFLECTIONS.get(func)
        if reflection is not None and len(args) == 2 and not kwargs and isinstance(args[1], Variable) \
                and not isinstance(args[0], Variable):
            return getattr(args[1], reflection)(args[0])
        parents: list[Variable] = []
        arg_template = tuple(_template_of(arg, parents) for arg in args)
        kwarg_template = {name: _template_of(arg, parents) for name, arg in kwargs.items()}
        return Variable._derived(func, tuple(parents), _function_name(func), arg_template,
                                 kwarg_template or None)

    def unpack(self, nret: int | Iterable[str]) -> list[Variable]:
        """Split a node whose value is a tuple (``torch.linalg.svd(A)``) into one Variable per item.

        :param nret: the number of returned values, or one name per value
            (used as display name and key of each new variable).
        :return: list of Variables, the i-th evaluating to ``value[i]``.
        :raises TypeError: ``nret`` is neither an int nor an iterable of str.
        """
        if isinstance(nret, bool) or not isinstance(nret, (int, Iterable)) or isinstance(nret, str):
            raise TypeError(f"unpack needs an int or a list of names, got {nret!r}.")
        names = [None] * nret if isinstance(nret, int) else list(nret)
        if not all(name is None or isinstance(name, str) for name in names):
            raise TypeError(f"unpack names must be str, got {names!r}.")
        parts = []
        for position, name in enumerate(names):
            part = Variable._derived(operator.getitem, (self,), f"{self._display_name}_{position}",
                                     (FIRST_SLOTS[0], position))
            if name is not None:
                _set_field(part, "_key", name)
                _set_field(part, "_display_name", name)
                _set_field(part, "_label", _clean_label(name))
            parts.append(part)
        return parts

    def grad(self, other: Variable) -> Variable:
        """The derivative d(self)/d(other) as a new expression (summed over self's elements).

        Evaluating it needs ``other``'s value to require grad (e.g. a network output or data
        created with ``requires_grad=True``).

        :raises TypeError: ``other`` is not a Variable.
        """
        if not isinstance(other, Variable):
            raise TypeError(f"grad needs a Variable to differentiate with respect to, got "
                            f"{type(other).__name__}.")
        name = f"d{self._display_name}/d{other._display_name}"
        node = Variable._derived(derivative, (self, other), "grad")
        _set_field(node, "_display_name", name)
        return node

    # ------------------------------------------------------------------ objectives, constraints
    def minimize(self, metric: Callable = torch.mean, weight: float = 1.0,
                 name: str | None = None) -> Objective:
        """An `Objective` minimising ``weight * metric(self)``; ``name`` is its output key."""
        return Objective(self, metric=metric, weight=weight, name=name)

    def _compare(self, other: Any, comparator: nn.Module, symbol: str) -> Constraint:
        """Build ``Constraint(self, other, comparator)``, checking the other operand's type."""
        right = _as_variable(other, f"compare (with {symbol}) a Variable and")
        return Constraint(self, right, comparator)

    def __le__(self, other: Any) -> Constraint:
        return self._compare(other, LT(), "<=")

    def __lt__(self, other: Any) -> Constraint:
        return self._compare(other, LT(), "<")

    def __ge__(self, other: Any) -> Constraint:
        return self._compare(other, GT(), ">=")

    def __gt__(self, other: Any) -> Constraint:
        return self._compare(other, GT(), ">")

    def __eq__(self, other: Any) -> Constraint:  # type: ignore[override]
        return self._compare(other, Eq(), "==")

    # ---------------------------------------------------------------------------- presentation
    def __repr__(self) -> str:
        if self._kind != "derived":
            return self._display_name
        inputs = ", ".join(parent._label for parent in self._parents)
        return f"{self._display_name}({inputs})"

    def show(self, figname: str | None = None) -> Any:
        """Draw the expression graph: to ``figname`` (.png, .svg, .pdf, .dot) or on screen.

        :param figname: output file; None displays the drawing with matplotlib.
        :return: the ``pydot.Dot`` graph.
        :raises ImportError: pydot (or matplotlib, to display) is not installed.
        :raises FileNotFoundError: Graphviz's ``dot`` program, needed for images, is not installed.
        """
        try:
            import pydot
        except ImportError as error:
            raise ImportError("Variable.show needs pydot (and Graphviz to render images): "
                              "pip install pydot") from error
        graph = pydot.Dot(self._display_name, graph_type="digraph", rankdir="LR")
        colors = {"data": "skyblue", "trainable": "orange", "constant": "lightgray",
                  "scalar": "lightgray", "derived": "white", "placeholder": "pink"}
        for node in self._topological_order():
            graph.add_node(pydot.Node(str(id(node)), label=f'"{node._display_name}"', style="filled",
                                      fillcolor=colors[node._kind]))
            for parent in node._parents:
                graph.add_edge(pydot.Edge(str(id(parent)), str(id(node))))
        from neuromancer.graphs import render_graph
        render_graph(graph, figname)
        return graph


class _Comparator(nn.Module):
    """Shared logic of `Eq`, `LT` and `GT`: norm validation and the penalty of a violation."""

    short_name = ""

    def __init__(self, norm: int = 1) -> None:
        super().__init__()
        if norm not in (1, 2):
            raise ValueError(f"{type(self).__name__} norm must be 1 (absolute violations) or 2 "
                             f"(squared violations), got {norm!r}.")
        self.norm = norm

    def __str__(self) -> str:
        return self.short_name

    def extra_repr(self) -> str:
        return f"norm={self.norm}"

    def _penalise(self, violation: torch.Tensor) -> torch.Tensor:
        """The violation as penalised: itself for norm 1, squared for norm 2."""
        return violation if self.norm == 1 else violation ** 2


def _as_tensor(value: Any) -> torch.Tensor:
    """``value`` itself where it is a tensor (the usual case), else ``torch.as_tensor(value)``."""
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


class Eq(_Comparator):
    """Equality ``left == right``: value ``left - right``, violation ``|value|`` (norm 1) or
    ``value**2`` (norm 2), loss the mean violation.

    :param norm: 1 or 2.
    :raises ValueError: ``norm`` is not 1 or 2.
    """

    short_name = "eq"

    def forward(self, left: Any, right: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(loss, value, violation)`` of ``left == right``."""
        value = left - right
        violation = self._penalise(torch.abs(_as_tensor(value)))
        return torch.mean(violation), value, violation


class LT(_Comparator):
    """Inequality ``left <= right``: value ``left - right``, violation ``relu(value)`` (norm 1) or
    its square (norm 2), loss the mean violation.

    :param norm: 1 or 2.
    :raises ValueError: ``norm`` is not 1 or 2.
    """

    short_name = "lt"

    def forward(self, left: Any, right: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(loss, value, violation)`` of ``left <= right``."""
        value = left - right
        violation = self._penalise(torch.relu(_as_tensor(value)))
        return torch.mean(violation), value, violation


class GT(_Comparator):
    """Inequality ``left >= right``: value ``right - left``, violation ``relu(value)`` (norm 1) or
    its square (norm 2), loss the mean violation.

    :param norm: 1 or 2.
    :raises ValueError: ``norm`` is not 1 or 2.
    """

    short_name = "gt"

    def forward(self, left: Any, right: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(loss, value, violation)`` of ``left >= right``."""
        value = right - left
        violation = self._penalise(torch.relu(_as_tensor(value)))
        return torch.mean(violation), value, violation


WeightParts = tuple[float, torch.Tensor | None]


def _weight_parts(weight: Any) -> WeightParts:
    """Split a term weight into ``(number, tensor or None)``, their product being the weight.

    Numbers stay numbers; tensors (and arrays, converted) are kept whole, so that an
    ``nn.Parameter`` weight remains the very parameter the user created. A bool is taken as 1.0
    or 0.0, with a `LenientInputWarning`.

    :raises TypeError: ``weight`` is neither a real number nor a tensor/array.
    """
    if isinstance(weight, torch.Tensor):
        return 1.0, weight
    if isinstance(weight, np.ndarray):
        return 1.0, _tensor_from_array(weight)
    if isinstance(weight, (bool, np.bool_)):
        warn_lenient_input(f"A weight of {weight!r} is used as {float(weight)}, as upstream 1.5 multiplies by it; "
                           f"pass the number {float(weight)} instead.")
    elif not isinstance(weight, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"A weight must be a real number or a tensor, got {type(weight).__name__} "
                        f"{weight!r:.60}.")
    return float(weight), None


def _weighted(weight: Any, loss: Any) -> Any:
    """``weight * loss``; a floating tensor with weight 1 is returned as is (no extra operation)."""
    if type(weight) is float and weight == 1.0 and isinstance(loss, torch.Tensor) and loss.is_floating_point():
        return loss
    return weight * loss


class _WeightedTerm(nn.Module):
    """Base of the loss terms (`Objective`, `Constraint`, `Loss`): a name and a weight.

    The weight is a number, a tensor or an ``nn.Parameter``. A tensor weight is registered with the
    term (a parameter when it requires grad, so the optimiser of any module holding the term
    trains it; a buffer otherwise, so it follows ``.to(device)``); multiplying a term by a number
    keeps that tensor and records the number beside it. Assigning ``term.weight = ...`` works
    for every kind.
    """

    _WEIGHT_TENSOR = "weight_tensor"

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "weight":
            self._assign_weight(*_weight_parts(value))
        else:
            super().__setattr__(name, value)

    def _assign_weight(self, scale: float, tensor: torch.Tensor | None) -> None:
        """Make the weight ``scale * tensor`` (``scale`` alone where ``tensor`` is None)."""
        self.__dict__["_weight_scale"] = scale
        self._parameters.pop(self._WEIGHT_TENSOR, None)
        self._buffers.pop(self._WEIGHT_TENSOR, None)
        if tensor is None:
            return
        if tensor.requires_grad and tensor.grad_fn is not None:
            warnings.warn("A weight computed from parameters (it has a grad_fn) is stored as computed: "
                          "its graph is built once, so gradients reach the parameters only while that "
                          "graph is alive. Pass the nn.Parameter itself as the weight.", UserWarning,
                          stacklevel=4)
            self.register_buffer(self._WEIGHT_TENSOR, tensor, persistent=False)
        elif tensor.requires_grad:
            parameter = tensor if isinstance(tensor, nn.Parameter) else nn.Parameter(tensor)
            self.register_parameter(self._WEIGHT_TENSOR, parameter)
        else:
            self.register_buffer(self._WEIGHT_TENSOR, tensor, persistent=False)

    def _weight_tensor(self) -> torch.Tensor | None:
        """The tensor part of the weight, or None for a plain number."""
        tensor = self._parameters.get(self._WEIGHT_TENSOR)
        return tensor if tensor is not None else self._buffers.get(self._WEIGHT_TENSOR)

    @property
    def weight(self) -> Any:
        """The weight multiplying the term: a float, or a tensor (the registered one where unscaled)."""
        tensor, scale = self._weight_tensor(), self.__dict__["_weight_scale"]
        if tensor is None:
            return scale
        return tensor if scale == 1.0 else scale * tensor

    def _scaled_weight(self, factor: Any) -> WeightParts:
        """The parts of ``self.weight * factor``, keeping a tensor weight registered as it is.

        :raises TypeError: ``factor`` is neither a number nor a tensor.
        """
        factor_scale, factor_tensor = _weight_parts(factor)
        own_tensor = self._weight_tensor()
        scale = self.__dict__["_weight_scale"] * factor_scale
        if own_tensor is None or factor_tensor is None:
            return scale, own_tensor if factor_tensor is None else factor_tensor
        return scale, own_tensor * factor_tensor

    def _copy_weight_to(self, term: _WeightedTerm, parts: WeightParts | None = None) -> _WeightedTerm:
        """Give ``term`` this term's weight (or ``parts``) and return it."""
        term._assign_weight(*(parts if parts is not None else (self.__dict__["_weight_scale"],
                                                                self._weight_tensor())))
        return term

    @property
    def key(self) -> str:
        """The output key of the term's value in the dict its forward returns: its ``name``."""
        return self.name


def _gradient_key(input_key: str | None, input_keys: list[str], owner: str) -> str:
    """Resolve the key to differentiate with respect to (None: the single input key)."""
    if input_key is not None:
        return input_key
    if len(input_keys) == 1:
        return input_keys[0]
    raise ValueError(f"{owner} reads keys {input_keys}: pass input_key= to choose which one to "
                     "differentiate with respect to.")


def _metric_name(metric: Callable) -> str:
    """Readable name of a metric function (``mean``, ``sum``, ``lambda``)."""
    return _clean_label(_function_name(metric))


class Objective(_WeightedTerm):
    """A term to minimise: ``forward(data)`` returns ``{name: weight * metric(var(data))}``.

    :param var: the expression.
    :param metric: reduces the expression's value to a scalar.
    :param weight: multiplies the metric; a tensor that
        requires grad (e.g. an ``nn.Parameter``) is a trainable weight, registered with the term.
    :param name: the output key (also `key`); None makes
        ``'<variable>_<metric>'``, e.g. ``'x_mean'``. Renaming the objective renames its output.
    :raises TypeError: ``var`` is not a Variable, ``metric`` is not callable or ``weight`` is
        neither a number nor a tensor.
    """

    def __init__(self, var: Variable, metric: Callable = torch.mean, weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__()
        if not isinstance(var, Variable):
            raise TypeError(f"Objective needs a Variable, got {type(var).__name__}: build one with "
                            "variable('key') and operators.")
        if not callable(metric):
            raise TypeError(f"Objective metric must be callable, got {metric!r:.60}.")
        self.var = var
        self.metric = metric
        self.weight = weight
        self.name = name if name is not None else f"{var._label}_{_metric_name(metric)}"

    @property
    def input_keys(self) -> list[str]:
        """The data keys the objective reads."""
        return self.var.keys

    @property
    def output_keys(self) -> list[str]:
        """``[self.name]``."""
        return [self.name]

    @property
    def variable_names(self) -> list[str]:
        """Display name of the objective's variable."""
        return [self.var.display_name]

    def forward(self, input_dict: dict[str, Any]) -> TensorDict:
        """Return ``{self.name: weight * metric(var(input_dict))}``.

        :raises KeyError: a key the expression reads is missing.
        """
        return {self.name: self._weighted_metric(self.var(input_dict))}

    def _weighted_metric(self, value: Any) -> Any:
        """``weight * metric(value)`` for the already evaluated expression ``value``.

        Aggregate losses call this with values they evaluated for all terms at once.
        """
        return _weighted(self.weight, self.metric(value))

    def grad(self, input_dict: dict[str, Any], input_key: str | None = None) -> torch.Tensor:
        """Gradient of the weighted objective w.r.t. ``input_dict[input_key]``.

        :param input_key: the key; None means the objective's only input key.
        :raises ValueError: ``input_key`` is None and the objective reads several keys, or the
            tensor does not require grad.
        """
        key = _gradient_key(input_key, self.input_keys, f"Objective {self.name!r}")
        return derivative(self.forward(input_dict)[self.name], input_dict[key])

    def __mul__(self, weight: Any) -> Objective:
        """A copy of this objective whose weight is multiplied by ``weight`` (a number or tensor)."""
        parts = self._scaled_weight(weight)
        return self._copy_weight_to(Objective(self.var, self.metric, name=self.name), parts)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.name}: {self.weight} * {_metric_name(self.metric)}({self.var!r}))"


class Constraint(_WeightedTerm):
    """A soft constraint ``left <comparator> right`` penalised in the loss.

    ``forward(data)`` returns ``{name: weight * loss, name + '_value': value,
    name + '_violation': violation}`` (see `Eq`, `LT`, `GT`). Build constraints with comparisons of
    variables (``x <= 1``; ``<`` and ``<=`` both give `LT`); ``w * c`` multiplies the weight and
    ``c ^ 2`` switches to squared violations.

    :param left: left side; non-variables become constants.
    :param right: right side.
    :param comparator: the relation.
    :param weight: multiplies the penalty; a tensor that
        requires grad (e.g. an ``nn.Parameter``) is a trainable weight, registered with the term.
    :param name: the output key (also `key`); None makes
        ``'<left>_<lt|gt|eq>_<right>'`` from data keys, display names, numbers or node keys
        (``'x_lt_1'``, ``'y_gt_p'``). Renaming the constraint renames its outputs.
    :raises TypeError: unsupported side types, a comparator that is not Eq/LT/GT, or a weight
        that is neither a number nor a tensor.
    """

    def __init__(self, left: Variable | torch.Tensor | float, right: Variable | torch.Tensor | float,
                 comparator: nn.Module, weight: float = 1.0,
                 name: str | None = None) -> None:
        super().__init__()
        if not isinstance(comparator, _Comparator):
            raise TypeError(f"comparator must be Eq(), LT() or GT(), got {comparator!r:.60}; for another penalty, "
                            f"subclass one of them and override forward(left, right) -> (loss, value, violation).")
        self.left = _as_variable(left, "constrain")
        self.right = _as_variable(right, "constrain")
        self.comparator = comparator
        self.weight = weight
        self.name = name if name is not None else \
            f"{self.left._label}_{comparator.short_name}_{self.right._label}"

    def update_name(self, name: str) -> None:
        """Rename the constraint (its output keys follow).

        A name that is not a str is used as ``str(name)``, the output keys upstream 1.5 gives it,
        with a `LenientInputWarning`.
        """
        if not isinstance(name, str):
            warn_lenient_input(f"Constraint name {name!r} is a {type(name).__name__}, not a str; it is used as "
                               f"{str(name)!r}, as in upstream 1.5's output keys. Pass a str.")
            name = str(name)
        self.name = name

    @property
    def variable_names(self) -> list[str]:
        """Display names of the two sides."""
        return [self.left.display_name, self.right.display_name]

    @property
    def input_keys(self) -> list[str]:
        """The data keys both sides read, without repeats."""
        return list(dict.fromkeys(self.left.keys + self.right.keys))

    @property
    def output_keys(self) -> list[str]:
        """``[name, name + '_value', name + '_violation']``."""
        return [self.name, f"{self.name}_value", f"{self.name}_violation"]

    def forward(self, input_dict: dict[str, Any]) -> TensorDict:
        """Evaluate both sides (sharing common sub-expressions) and penalise the violation.

        :raises KeyError: a key an expression reads is missing.
        """
        plan = self._sides_plan()
        values = plan.evaluate(input_dict)
        left_slot, right_slot = plan.root_slots
        penalty, value, violation = self._penalty(values[left_slot], values[right_slot])
        return {self.name: penalty, f"{self.name}_value": value, f"{self.name}_violation": violation}

    def _sides_plan(self) -> EvaluationPlan:
        """The evaluation plan of both sides, rebuilt where a side has been replaced."""
        left, right = self.left, self.right
        cached = self.__dict__.get("_cached_sides_plan")
        if cached is None or cached.roots[0] is not left or cached.roots[1] is not right:
            cached = EvaluationPlan((left, right))
            self.__dict__["_cached_sides_plan"] = cached
        return cached

    def _penalty(self, left: Any, right: Any) -> tuple[Any, Any, Any]:
        """``(weighted penalty, value, violation)`` for the already evaluated sides.

        Aggregate losses call this with values they evaluated for all terms at once. The comparator
        is an internal part of the constraint, so its ``forward`` is called without module hooks.
        """
        loss, value, violation = self.comparator.forward(left, right)
        return _weighted(self.weight, loss), value, violation

    def grad(self, input_dict: dict[str, Any], input_key: str | None = None) -> torch.Tensor:
        """Gradient of the weighted penalty w.r.t. ``input_dict[input_key]``.

        :param input_key: the key; None means the constraint's only input key.
        :raises ValueError: ``input_key`` is None and several keys are read, or the tensor does not
            require grad.
        """
        key = _gradient_key(input_key, self.input_keys, f"Constraint {self.name!r}")
        return derivative(self.forward(input_dict)[self.name], input_dict[key])

    def __mul__(self, weight: Any) -> Constraint:
        """A copy with the weight multiplied by ``weight``, a number or a tensor (``5.0 * (x <= 1)``)."""
        parts = self._scaled_weight(weight)
        return self._copy_weight_to(Constraint(self.left, self.right, self.comparator, name=self.name), parts)

    __rmul__ = __mul__

    def __xor__(self, norm: int) -> Constraint:
        """A copy penalising violations with norm ``norm`` (``c ^ 2``: squared violations).

        :raises ValueError: ``norm`` is not 1 or 2.
        """
        return self._copy_weight_to(Constraint(self.left, self.right, type(self.comparator)(norm=norm),
                                               name=self.name))

    def __bool__(self) -> bool:
        raise TypeError(f"Constraint {self.name!r} has no truth value: comparisons of Variables build "
                        "constraints. Compare the evaluated tensors instead.")

    def __repr__(self) -> str:
        symbol = {"eq": "==", "lt": "<=", "gt": ">="}[self.comparator.short_name]
        return (f"Constraint({self.name}: {self.left!r} {symbol} {self.right!r}, weight={self.weight}, "
                f"norm={self.comparator.norm})")


class Loss(_WeightedTerm):
    """A loss term from a plain function of data keys: ``{name: weight * loss(*data[input_keys])}``.

    Usable as an objective of `neuromancer.loss.PenaltyLoss` and friends.

    :param input_keys: keys passed positionally to ``loss``.
    :param loss: returns a scalar tensor.
    :param weight: multiplies the loss.
    :param name: the output key (also `key`).
    :raises TypeError: keys not strings (a one-character str is read as that one key, with a
        `LenientInputWarning`), ``loss`` not callable, or a weight that is neither a number nor a
        tensor.
    """

    def __init__(self, input_keys: list[str], loss: Callable[..., torch.Tensor], weight: float = 1.0,
                 name: str = "loss") -> None:
        super().__init__()
        if isinstance(input_keys, str) and len(input_keys) == 1:
            warn_lenient_input(f"Loss input_keys is the str {input_keys!r}; it is read as the one key "
                               f"[{input_keys!r}], as upstream 1.5 reads it. Pass a list: [{input_keys!r}].")
            input_keys = [input_keys]
        if isinstance(input_keys, str):
            raise TypeError(f"Loss input_keys must be a list of str, got the str {input_keys!r}, which upstream "
                            f"1.5 reads as one key per character; pass [{input_keys!r}].")
        if not all(isinstance(k, str) for k in input_keys):
            raise TypeError(f"Loss input_keys must be a list of str, got {input_keys!r}.")
        if not callable(loss):
            raise TypeError(f"Loss needs a callable loss, got {loss!r:.60}.")
        self.input_keys = list(input_keys)
        self.loss = loss
        self.weight = weight
        self.name = name

    @property
    def output_keys(self) -> list[str]:
        """``[self.name]``."""
        return [self.name]

    def forward(self, variables: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return ``{name: weight * loss(*[variables[k] for k in input_keys])}``, a one-entry dict.

        :raises KeyError: an input key is missing (the message lists the keys available).
        """
        missing = [key for key in self.input_keys if key not in variables]
        if missing:
            raise KeyError(f"Loss {self.name!r} needs keys {missing} that are not in the data; "
                           f"available keys: {sorted(map(str, variables))}.")
        return {self.name: self.weight * self.loss(*[variables[key] for key in self.input_keys])}

    def grad(self, variables: dict[str, torch.Tensor], input_key: str | None = None) -> torch.Tensor:
        """Gradient of the weighted loss w.r.t. ``variables[input_key]``.

        :param input_key: the key; None means the loss's only input key.
        :raises ValueError: ``input_key`` is None and several keys are read, or the tensor does not
            require grad.
        """
        key = _gradient_key(input_key, self.input_keys, f"Loss {self.name!r}")
        return derivative(self.forward(variables)[self.name], variables[key])

    def __repr__(self) -> str:
        return f"Loss: {self.name}({', '.join(self.input_keys)}) -> {self.loss!r} * {self.weight}"


def variable(*args: Any, display_name: str | None = None) -> Variable:
    """Create a `Variable` from a key, a tensor, inputs and a function, or a shape.

    * ``variable('x')``: the data entry ``'x'``;
    * ``variable(tensor)`` / ``variable(array)``: a constant, or a trainable variable where the
      tensor is an ``nn.Parameter`` or requires grad;
    * ``variable([x, y], func)``: ``func(x, y)`` evaluated on the inputs' values;
    * ``variable(2, 3)`` / ``variable((2, 3))`` / ``variable([2, 3])`` / ``variable(torch.Size([2, 3]))``:
      a trainable tensor of that shape initialised from a standard normal;
    * ``variable()``: a trainable scalar (shape ``[1]``) initialised from a standard normal;
    * ``variable(None)``: a placeholder without a value.

    ``display_name`` may also be given positionally after the key, tensor, shape or function.

    :raises TypeError: the arguments match none of these forms.
    """
    if args and isinstance(args[-1], str) and len(args) >= 2 and display_name is None:
        *args, display_name = args
        args = tuple(args)
    if not args:
        return Variable(value=nn.Parameter(torch.randn(1)), display_name=display_name)
    first = args[0]
    if len(args) == 1:
        if first is None:
            return Variable(display_name=display_name)
        if isinstance(first, str):
            return Variable(key=first, display_name=display_name)
        if isinstance(first, (torch.Tensor, np.ndarray)):
            return Variable(value=first, display_name=display_name)
        if isinstance(first, (torch.Size, tuple, list)) and all(_is_int(size) for size in first):
            return Variable(value=nn.Parameter(torch.randn(*first)), display_name=display_name)
        if _is_int(first):
            return Variable(value=nn.Parameter(torch.randn(first)), display_name=display_name)
    if len(args) == 2 and isinstance(first, (list, tuple)) and callable(args[1]):
        return Variable(first, func=args[1], display_name=display_name)
    if all(_is_int(size) for size in args):
        return Variable(value=nn.Parameter(torch.randn(*args)), display_name=display_name)
    raise TypeError(f"variable() got unsupported arguments {args!r:.80}: use variable('key'), "
                    "variable(tensor), variable([inputs], func), variable(*shape) or variable().")


def _is_int(obj: Any) -> bool:
    """True for Python/numpy integers, excluding bool."""
    return isinstance(obj, (int, np.integer)) and not isinstance(obj, bool)
