"""Computational graph building blocks: `Node`, `System` and `MovingHorizon`.

A `Node` wraps any callable (an ``nn.Module``, a function) so that it reads named tensors from a
data dictionary and writes its results back under names of its own; chaining nodes through shared
key names is how NeuroMANCER models are assembled. A `System` closes a list of nodes into a loop and
rolls it out over time (the states a node writes at step ``k`` are what the nodes read at step
``k + 1``), which is how dynamical models, state observers and closed-loop controllers are
simulated and trained over a horizon. `MovingHorizon` feeds a node a buffer of its last ``ndelay``
inputs, for time-delay models. The graph drawings (`System.graph`, `System.show`) use pydot, which is
imported only when a drawing is asked for.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from neuromancer.graphs import check_unique_names, name_unnamed_nodes, render_graph, system_graph

logger = logging.getLogger(__name__)

TensorDict = dict[str, torch.Tensor]
_is_callable = callable


def _as_key_list(keys: Any, what: str, node_name: str | None) -> list[str]:
    """Return ``keys`` as a list of strings, raising a TypeError naming the node where it is not one."""
    if isinstance(keys, str):
        return [keys]
    if not isinstance(keys, Iterable) or not all(isinstance(k, str) for k in keys):
        raise TypeError(
            f"Node {node_name!r}: {what} must be a list of str keys, got {keys!r}. "
            f"Pass e.g. {what}=['x']."
        )
    return list(keys)


class Freezable(nn.Module):
    """Adds `freeze`/`unfreeze` (toggle ``requires_grad`` of all parameters) to Node, System, Problem."""

    def freeze(self) -> None:
        """Stop gradients flowing into every parameter (e.g. to train only other parts of a model)."""
        for param in self.parameters():
            param.requires_grad_(False)

    def unfreeze(self) -> None:
        """Let every parameter be trained again after `freeze`."""
        for param in self.parameters():
            param.requires_grad_(True)


class Node(Freezable):
    """Wrap a callable so that it reads and writes named entries of a data dictionary.

    ``Node(f, ['x', 'u'], ['y'])`` computes ``{'y': f(data['x'], data['u'])}``. Nodes are the vertices
    of a NeuroMANCER computational graph: `Problem` and `System` run them in order and connect them
    through the key names.

    :param callable: the function or ``nn.Module`` to run; it receives the input tensors
        positionally, in the order of ``input_keys``, and returns one tensor or a tuple of tensors.
        An ``nn.Module`` is registered as a submodule, so its parameters train with the node.
    :param input_keys: keys of the data dictionary passed to ``callable``.
    :param output_keys: names given to the outputs, in order.
    :param name: the node's name in graphs and error messages; a `System` or
        `Problem` names an unnamed node ``node_<k>``, and until then messages describe it by its keys.
    :raises TypeError: where ``callable`` is not callable or the keys are not strings.
    """

    def __init__(self, callable: Callable[..., Any], input_keys: Sequence[str],
                 output_keys: Sequence[str], name: str | None = None) -> None:
        super().__init__()
        if not _is_callable(callable):
            raise TypeError(f"Node {name!r}: expected a callable (function or nn.Module), "
                            f"got {type(callable).__name__}.")
        self.input_keys = _as_key_list(input_keys, "input_keys", name)
        self.output_keys = _as_key_list(output_keys, "output_keys", name)
        self.callable = callable
        self.name = name

    def _label(self) -> str:
        """Describe the node for error messages: its name, or its signature where it has none."""
        if self.name is not None:
            return repr(self.name)
        return f"<unnamed: {', '.join(self.input_keys)} -> {', '.join(self.output_keys)}>"

    def _gather_inputs(self, data: TensorDict) -> list[Any]:
        """Fetch the input tensors from ``data`` in ``input_keys`` order."""
        try:
            return [data[k] for k in self.input_keys]
        except KeyError:
            missing = [k for k in self.input_keys if k not in data]
            if not missing:
                raise
        raise KeyError(
            f"Node {self._label()} needs input key {missing[0]!r}, which is not in the data; "
            f"available keys: {sorted(map(str, data))}. Provide it in the dataset or from an "
            f"earlier node's output_keys."
        )

    def _name_outputs(self, output: Any) -> TensorDict:
        """Map the callable's output onto ``output_keys``.

        A tuple holds one output per key (so does a list, where the node has several keys); any
        other value is the single output. Fewer outputs than keys fill the first keys and warn.
        """
        output_keys = self.output_keys
        if isinstance(output, tuple) or (isinstance(output, list) and len(output_keys) > 1):
            outputs = tuple(output)
        elif len(output_keys) == 1:
            return {output_keys[0]: output}
        else:
            outputs = (output,)
        if len(outputs) > len(output_keys):
            raise ValueError(
                f"Node {self._label()} has {len(output_keys)} output_keys {output_keys} but its "
                f"callable returned {len(outputs)} outputs; list one name per returned tensor in "
                f"output_keys."
            )
        if len(outputs) < len(output_keys):
            warnings.warn(
                f"Node {self._label()} has {len(output_keys)} output_keys {output_keys} but its callable "
                f"returned {len(outputs)} output(s): only {output_keys[:len(outputs)]} are written.",
                UserWarning, stacklevel=4)
        return dict(zip(output_keys, outputs, strict=False))

    def forward(self, data: TensorDict) -> TensorDict:
        """Run the callable on ``data[input_keys]`` and return ``{output_key: output}``.

        :param data: must contain every key in ``input_keys``.
        :return: the node's outputs only.
        :raises KeyError: an input key is missing from ``data`` (message names the key and the
            keys available).
        :raises ValueError: the callable returned more outputs than ``len(output_keys)`` (fewer
            fill the first keys, with a UserWarning).
        """
        return self._name_outputs(self.callable(*self._gather_inputs(data)))

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(self.input_keys)}) -> {', '.join(self.output_keys)}"


class MovingHorizon(nn.Module):
    """Give a node the last ``ndelay`` values of its inputs instead of the current one.

    Each call appends the single-step inputs (``[batch, dim]`` tensors) to a buffer per input key and
    calls the wrapped node with the last ``ndelay`` entries stacked along a new first dimension,
    i.e. ``[ndelay, batch, dim]``, oldest first. When the buffer starts empty, the first input is
    repeated ``ndelay`` times to fill it. The buffer keeps only the ``ndelay`` entries it needs.

    :param module: the node to feed.
    :param ndelay: how many past steps (including the current one) to pass.
    :param history: pre-filled buffers, one list of
        ``[batch, dim]`` tensors per input key, e.g. past measurements; None starts empty.
    :raises TypeError: ``module`` has no ``input_keys``/``output_keys``.
    :raises ValueError: ``ndelay`` is not a positive integer, or ``history`` misses an input key.
    """

    vmap_safe = False
    vmap_unsafe_reason = ("it keeps the inputs of past calls in a Python list, which cannot hold the tensors of "
                          "a torch.func.vmap call after it returns")

    def __init__(self, module: nn.Module, ndelay: int = 1,
                 history: dict[str, list[torch.Tensor]] | None = None) -> None:
        super().__init__()
        if not (hasattr(module, "input_keys") and hasattr(module, "output_keys")):
            raise TypeError(f"MovingHorizon wraps a Node (something with input_keys and output_keys), "
                            f"got {type(module).__name__}; wrap it first: Node(f, inputs, outputs).")
        if not isinstance(ndelay, int) or ndelay < 1:
            raise ValueError(f"MovingHorizon ndelay must be a positive int, got {ndelay!r}.")
        self.input_keys, self.output_keys = list(module.input_keys), list(module.output_keys)
        if history is None:
            history = {k: [] for k in self.input_keys}
        missing = [k for k in self.input_keys if k not in history]
        if missing:
            raise ValueError(f"MovingHorizon history lacks input key(s) {missing}; give a list of "
                             f"past [batch, dim] tensors for each of {self.input_keys}.")
        self.history = {k: list(v) for k, v in history.items()}
        self.ndelay, self.module = ndelay, module

    def forward(self, input: TensorDict) -> TensorDict:
        """Push ``input`` into the buffers and run the node on the last ``ndelay`` steps.

        :param input: single-step ``[batch, dim]`` inputs for every input key.
        :return: the wrapped node's outputs.
        """
        for key in self.input_keys:
            buffer = self.history[key]
            buffer.extend([input[key]] * (self.ndelay if not buffer else 1))
            del buffer[:-self.ndelay]
        return self.module({k: torch.stack(self.history[k][-self.ndelay:]) for k in self.input_keys})


class System(Freezable):
    """Roll a cycle of nodes out over time (simulation of a closed-loop or dynamical system).

    At rollout step ``i`` every node, in list order, receives ``data[key][:, i]`` for each of its input
    keys (data is ``[batch, time, dim]``), and each output is appended to ``data[key]`` along the time
    dimension (dim 1), creating the key if needed. A state node ``Node(f, ['X', 'U'], ['X'])`` started
    from ``X`` of shape ``[B, 1, nx]`` therefore reads at step ``i`` the state it wrote at step
    ``i - 1``, and after ``nsteps`` steps ``X`` is ``[B, 1 + nsteps, nx]``; an output key that is not
    in the input (e.g. ``Y``) ends up ``[B, nsteps, ny]``.

    :param nodes: the nodes, run in order at every step. Unnamed nodes are named
        ``node_1``, ``node_2``, ... in order, as they are vertices of the system's graph.
    :param name: the system's name in graphs.
    :param nstep_key: where ``nsteps`` is None, the rollout length is ``data[nstep_key].shape[1]``.
    :param init_func: replaces `init`: called on the input
        dict before the rollout, e.g. to set initial conditions.
    :param nsteps: rollout length; None reads it from ``data[nstep_key]``.
    :raises TypeError: an element of ``nodes`` lacks ``input_keys``/``output_keys``.
    :raises neuromancer.graphs.DuplicateNameError: two nodes have the same name (it is a
        ``ValueError`` and an ``AssertionError``).
    """

    def __init__(self, nodes: Sequence[nn.Module], name: str | None = None, nstep_key: str = "X",
                 init_func: Callable[[TensorDict], TensorDict] | None = None,
                 nsteps: int | None = None) -> None:
        super().__init__()
        for node in nodes:
            if not (hasattr(node, "input_keys") and hasattr(node, "output_keys")):
                raise TypeError(f"System {name!r}: every node needs input_keys and output_keys; got "
                                f"{type(node).__name__}. Wrap callables in Node(f, inputs, outputs).")
        self.nstep_key = nstep_key
        self.nsteps = nsteps
        self.name = name
        self.nodes = nn.ModuleList(nodes)
        if init_func is not None:
            self.init = init_func
        name_unnamed_nodes(self.nodes)
        check_unique_names([node.name for node in self.nodes], f"System {name!r}")
        self.input_keys = sorted(set().union(*[node.input_keys for node in nodes]))
        self.output_keys = sorted(set().union(*[node.output_keys for node in nodes]))

    def graph(self) -> Any:
        """Return a ``pydot.Dot`` drawing of the nodes and the keys that flow between them.

        An ``in`` vertex feeds each node the keys no earlier node produces (exogenous inputs and
        initial conditions), an ``out`` vertex collects every output; an edge from a node to itself
        or to an earlier node is a key carried to the next step (see `neuromancer.graphs.system_graph`).

        :raises ImportError: pydot is not installed.
        """
        return system_graph(self.nodes, self.name)

    def _produced_before(self, key: str, position: int) -> bool:
        """Whether a node listed before ``position`` outputs ``key`` (so it exists before it is read)."""
        return any(key in earlier.output_keys for earlier in self.nodes[:position])

    def _keys_needed_from_data(self) -> set:
        """The keys the input dict must hold: those read before any node of the cycle writes them."""
        return {key for position, node in enumerate(self.nodes) for key in node.input_keys
                if not self._produced_before(key, position)}

    @property
    def system_graph(self) -> Any:
        """The `graph` drawing (built on access, so constructing a System never needs pydot)."""
        return self.graph()

    def show(self, figname: str | None = None) -> None:
        """Draw `graph` to ``figname`` (.png, .svg, .jpg, .pdf), or display it where None.

        :param figname: output file; None renders a temporary png and shows it with matplotlib.
        :raises ImportError: pydot (or matplotlib, for display) is not installed.
        :raises FileNotFoundError: Graphviz's ``dot`` program is not installed.
        :raises ValueError: unsupported file extension.
        """
        render_graph(self.graph(), figname)

    def cat(self, data3d: TensorDict, data2d: TensorDict) -> TensorDict:
        """Append one time step to the sequences in ``data3d`` (in place) and return it.

        :param data3d: ``[batch, time, dim]`` sequences.
        :param data2d: ``[batch, dim]`` values of one step; a key absent from
            ``data3d`` starts a new ``[batch, 1, dim]`` sequence.
        :return: ``data3d`` with each ``data2d`` entry appended along dim 1.
        """
        for key, value in data2d.items():
            step = value.unsqueeze(1)
            data3d[key] = step if key not in data3d else torch.cat([data3d[key], step], dim=1)
        return data3d

    def init(self, data: TensorDict) -> TensorDict:
        """Prepare the input dict before the rollout; the default returns it unchanged.

        Override it, or pass ``init_func``, to set initial conditions.

        :param data: ``[batch, time, dim]`` tensors.
        :return: the dict to roll out from.
        """
        return data

    def _rollout_length(self, data: TensorDict) -> int:
        """Return ``nsteps``, or the time length of ``data[nstep_key]`` where nsteps is None."""
        if self.nsteps is not None:
            return self.nsteps
        if self.nstep_key not in data:
            raise KeyError(
                f"System {self.name!r} takes its number of steps from data[{self.nstep_key!r}], which "
                f"is missing (keys: {sorted(map(str, data))}). Pass nsteps=... or nstep_key=..."
            )
        return data[self.nstep_key].shape[1]

    def forward(self, input_dict: TensorDict) -> TensorDict:
        """Roll the nodes out and return the input dict extended with the stacked outputs.

        :param input_dict: ``[batch, time, dim]`` tensors; the caller's dict is not modified.
        :return: every input key plus the outputs, stacked along dim 1.
        :raises KeyError: ``nsteps`` is None and ``data[nstep_key]`` is missing, or a node input is
            missing.
        :raises IndexError: an input sequence is shorter than the rollout needs.
        """
        data = self.init(dict(input_dict))
        nsteps = self._rollout_length(data)
        for step in range(nsteps):
            for node in self.nodes:
                data = self.cat(data, node(self._slice_step(data, node, step)))
        return data

    def _slice_step(self, data: TensorDict, node: nn.Module, step: int) -> TensorDict:
        """Take the ``step``-th time slice of each of ``node``'s inputs."""
        inputs = {}
        for key in node.input_keys:
            if key not in data:
                raise KeyError(
                    f"System {self.name!r}: node {node.name!r} needs key {key!r}, which is "
                    f"neither in the data nor produced by a node (keys: {sorted(map(str, data))})."
                )
            sequence = data[key]
            if sequence.shape[1] <= step:
                raise IndexError(
                    f"System {self.name!r}: data[{key!r}] has {sequence.shape[1]} time steps but "
                    f"rollout step {step} reads index {step}; give {key!r} at least as many steps as "
                    f"the rollout (shape [batch, nsteps, dim]) or lower nsteps."
                )
            inputs[key] = sequence[:, step]
        return inputs


from neuromancer._lazy import lazy_exports  # noqa: E402 - SystemPreview's module imports this one

__getattr__, __dir__ = lazy_exports(__name__, {"SystemPreview": "neuromancer.system_preview"})
