"""`Problem`: a trainable optimisation problem made of computational nodes and a loss.

A Problem runs its nodes in order on a batch dictionary (each node adds the keys it computes),
hands the result to the loss (typically `neuromancer.loss.PenaltyLoss`, which adds ``loss`` and the
objective/constraint terms), and returns everything with keys prefixed by the batch's name
(``train_loss``, ``dev_loss``, ...). That prefixing is what lets one model be evaluated on the train,
dev and test splits and the results be logged side by side. It is a plain ``nn.Module``: trainers
only need `Problem.forward` and `Problem.parameters`. ``neuromancer.problem.LitProblem`` resolves
lazily to `neuromancer.trainers.lightning.LitProblem`, so importing this module never imports
Lightning.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from neuromancer._lazy import lazy_exports
from neuromancer.graphs import check_unique_names, name_unnamed_nodes, problem_graph, render_graph
from neuromancer.system import Freezable, System

TensorDict = dict[str, torch.Tensor]

__all__ = ["Problem"]


__getattr__, __dir__ = lazy_exports(__name__, {"LitProblem": "neuromancer.trainers.lightning"})


def _keys_of(component: Any, attribute: str) -> list[str]:
    """Return ``component.<attribute>`` as a list of keys, or [] where it has none."""
    keys = getattr(component, attribute, None)
    return [] if keys is None else list(keys)


def _loss_terms(loss: Any) -> list[Any]:
    """The objectives and constraints of a loss that has them (e.g. PenaltyLoss), else []."""
    return list(getattr(loss, "objectives", []) or []) + list(getattr(loss, "constraints", []) or [])


def _term_names(loss: Any) -> list[str]:
    """The output name of each of `_loss_terms` (a loss may give same-named terms distinct names)."""
    names = getattr(loss, "term_names", None)
    return list(names) if names is not None else [str(term.name) for term in _loss_terms(loss)]


def _describe(component: Any) -> str:
    """Name a node or the loss in messages: its ``name`` where it has one, else its class."""
    name = getattr(component, "name", None)
    return str(name) if name is not None else type(component).__name__


def _term_inputs(term: Any) -> list[str]:
    """The data keys an objective or constraint reads."""
    keys = getattr(term, "input_keys", None)
    if keys is None:
        keys = getattr(term, "variable_names", None)
    return [] if keys is None else [str(k) for k in keys]


class Problem(Freezable):
    """A differentiable (constrained) optimisation problem: nodes computing variables, and a loss.

    :param nodes: the nodes (`Node`, `System`, or any module mapping a dict of
        tensors to a dict of new tensors), run in this order.
    :param loss: the loss, usually ``PenaltyLoss(objectives, constraints)``; any module or function that takes
        the dict of data and node outputs and returns a dict containing ``'loss'`` works too (a bare tensor is
        stored under the loss's ``name`` or ``'loss'``).
    :param grad_inference: ask the trainers to keep autograd on while
        evaluating (dev/test), for models that differentiate during inference, e.g. gradient-based
        projections. Read by `Trainer` and `LitTrainer`; `forward` itself follows torch's grad mode.
    :param check_overwrite: warn (UserWarning, at construction and on each `_check_keys` call) when a node or
        the loss outputs a key that the data or an earlier node already holds.
    :raises TypeError: ``nodes`` is not a list of ``nn.Module`` or ``loss`` is not callable.
    :raises neuromancer.graphs.DuplicateNameError: two nodes, objectives or constraints have the
        same name, so the graph could not tell them apart (it is a ``ValueError`` and an
        ``AssertionError``). Unnamed nodes are named ``node_1``, ``node_2``, ... in order.
    """

    def __init__(self, nodes: list[Callable[[TensorDict], TensorDict]],
                 loss: Callable[[TensorDict], TensorDict],
                 grad_inference: bool = False, check_overwrite: bool = False) -> None:
        super().__init__()
        self.nodes = nn.ModuleList(self._validated_nodes(nodes))
        if not callable(loss):
            raise TypeError(f"Problem loss must be callable (e.g. PenaltyLoss(objectives, constraints)), "
                            f"got {type(loss).__name__}.")
        self.loss = loss
        self.grad_inference = grad_inference
        self.check_overwrite = check_overwrite
        self.input_keys = sorted({k for node in self.nodes for k in _keys_of(node, "input_keys")})
        self.output_keys = sorted({k for node in self.nodes for k in _keys_of(node, "output_keys")})
        name_unnamed_nodes(self.nodes)
        check_unique_names([str(node.name) for node in self.nodes] + _term_names(loss), "Problem")
        self._check_keys()

    @staticmethod
    def _validated_nodes(nodes: Any) -> list[nn.Module]:
        """Check that ``nodes`` is a list of modules and return it as a list."""
        if isinstance(nodes, nn.Module) or not isinstance(nodes, Iterable):
            raise TypeError(f"Problem nodes must be a list of nn.Module (e.g. [Node(...)]), got "
                            f"{type(nodes).__name__}; wrap a single node in a list.")
        nodes = list(nodes)
        for index, node in enumerate(nodes):
            if not isinstance(node, nn.Module):
                raise TypeError(f"Problem node {index} is a {type(node).__name__}, not an nn.Module; "
                                f"wrap functions as Node(f, input_keys, output_keys).")
        return nodes

    def _check_keys(self) -> None:
        """With ``check_overwrite``, warn about every node (or the loss) writing a key already held.

        A key is held once the data provides it (a component reads it) or an earlier component
        wrote it. Without ``check_overwrite`` this does nothing.
        """
        if not self.check_overwrite:
            return
        seen: set = set()
        for component in [*self.nodes, self.loss]:
            seen |= set(_keys_of(component, "input_keys"))
            written = set(_keys_of(component, "output_keys"))
            clashes = sorted(written & seen)
            if clashes:
                warnings.warn(f"Keys {clashes} are being overwritten by the node {_describe(component)!r}.",
                              UserWarning, stacklevel=3)
            seen |= written

    def forward(self, data: TensorDict) -> TensorDict:
        """Run the nodes and the loss on a batch and return every entry prefixed by the batch name.

        :param data: a batch, with ``data['name']`` ('train', 'dev', 'test', ...)
            as `neuromancer.dataset.DictDataset.collate_fn` adds; not modified.
        :return: ``{f"{data['name']}_{key}": value}`` for the data, every node
            output and every loss output (e.g. ``train_loss``).
        :raises KeyError: ``data`` has no ``'name'``, or a node input key is neither in ``data`` nor
            produced by an earlier node.
        """
        if "name" not in data:
            raise KeyError(
                "Problem.forward needs data['name'] (e.g. 'train', 'dev') to prefix its outputs; "
                "batches from a DataLoader built with collate_fn=DictDataset.collate_fn carry it. "
                f"Got keys {sorted(map(str, data))}; add data['name'] = 'train' for a hand-made batch."
            )
        output = self.loss(self.step(data))
        if isinstance(output, torch.Tensor):
            output = {str(getattr(self.loss, "name", "loss")): output}
        prefix = f"{data['name']}_"
        return {f"{prefix}{key}": value for key, value in output.items()}

    def step(self, input_dict: TensorDict) -> TensorDict:
        """Run the nodes in order, each seeing the data plus every earlier node's outputs.

        :param input_dict: the data; not modified (a shallow copy is extended).
        :return: the data plus all node outputs (a node returning a bare tensor
            has it stored under the node's name).
        :raises KeyError: a node input key is missing (the message names the node and the key).
        """
        data = dict(input_dict)
        for node in self.nodes:
            self._check_inputs(node, data)
            output = node(data)
            if isinstance(output, torch.Tensor):
                output = {_describe(node): output}
            data.update(output)
        return data

    @staticmethod
    def _check_inputs(node: nn.Module, data: TensorDict) -> None:
        """Raise a KeyError naming ``node`` where a key it reads from outside is absent from ``data``."""
        if isinstance(node, System):
            needed = node._keys_needed_from_data()
        else:
            needed = getattr(node, "input_keys", None) or ()
        if any(key not in data for key in needed):
            missing = sorted(key for key in needed if key not in data)
            raise KeyError(
                f"Problem node {_describe(node)!r} needs key {missing[0]!r}, which neither the "
                f"data nor an earlier node provides (available: {sorted(map(str, data))}). Add it to "
                f"the dataset or put the node producing it earlier in the nodes list."
            )

    def graph(self, include_objectives: bool = True) -> Any:
        """Return a ``pydot.Dot`` drawing: data -> nodes -> (objectives, constraints) -> loss.

        Vertices are named after the nodes and loss terms (see `neuromancer.graphs.problem_graph`).

        :param include_objectives: draw the loss's objectives and constraints
            as vertices; False draws only the nodes, with the outputs the loss reads (all of them,
            where the loss has no ``input_keys``) going to ``out``.
        :raises ImportError: pydot is not installed.
        """
        loss_inputs = getattr(self.loss, "input_keys", None)
        if loss_inputs is None:
            loss_inputs = [*self.input_keys, *self.output_keys]
        return problem_graph(self.nodes, _loss_terms(self.loss), _term_names(self.loss), loss_inputs,
                             include_objectives)

    @property
    def problem_graph(self) -> Any:
        """The `graph` drawing (built on access, so constructing a Problem never needs pydot)."""
        return self.graph()

    def show(self, figname: str | None = None) -> None:
        """Draw `graph` to ``figname`` (.png, .svg, .jpg, .pdf), or display it where None.

        :param figname: output file; None shows the drawing with matplotlib.
        :raises ImportError: pydot (or matplotlib, for display) is not installed.
        :raises FileNotFoundError: Graphviz's ``dot`` program is not installed.
        :raises ValueError: unsupported file extension.
        """
        render_graph(self.graph(), figname)

    def __repr__(self) -> str:
        lines = ["Problem(", "  nodes:"]
        lines += [f"    {node!r}".replace("\n", "\n    ") for node in self.nodes]
        lines.append(f"  loss: {type(self.loss).__name__}")
        for label in ("objectives", "constraints"):
            terms = list(getattr(self.loss, label, []) or [])
            if terms:
                lines.append(f"  {label}:")
                lines += [f"    {term.name}: {', '.join(_term_inputs(term))}" for term in terms]
        lines.append(f"  grad_inference={self.grad_inference}, check_overwrite={self.check_overwrite}")
        lines.append(")")
        return "\n".join(lines)
