"""Drawings of computational graphs: which node feeds which, through which keys.

`System.graph`, `Problem.graph` and `Variable.show` build ``pydot.Dot`` graphs here. A vertex
stands for a node (by its name), an objective or constraint (by its name), the dataset (``in``) or
the output (``out``); an edge carries one key, so two keys between the same pair give two edges.
Edges are added in a fixed order (node to node, dataset to nodes, then loss terms or outputs),
so code that walks ``graph.get_edges()`` sees the same sources and destinations in the same order
every time. Unnamed nodes are named ``node_1``, ``node_2``,
... when a `System` or `Problem` takes them, and the names of a graph's vertices must be unique.
pydot is imported only when a drawing is built.
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from neuromancer.exceptions import NeuromancerError

if TYPE_CHECKING:
    import pydot

logger = logging.getLogger(__name__)

__all__ = ["DuplicateNameError", "GraphvizMissingWarning", "check_unique_names", "import_pydot", "name_unnamed_nodes",
           "problem_graph", "render_graph", "system_graph"]


class DuplicateNameError(NeuromancerError, ValueError, AssertionError):
    """Two vertices of one graph (nodes, objectives, constraints) have the same name.

    It is also an ``AssertionError``, so ``except AssertionError`` and
    ``pytest.raises(AssertionError)`` catch it.
    """


def name_unnamed_nodes(nodes: Iterable[Any]) -> None:
    """Give each node whose ``name`` is None or ``''`` the name ``node_<k>`` (k = 1, 2, ... in order).

    Nodes become vertices named after them, so each needs a name.
    """
    count = 0
    for node in nodes:
        if getattr(node, "name", None) in (None, ""):
            count += 1
            node.name = f"node_{count}"


def check_unique_names(names: Sequence[str], owner: str) -> None:
    """Raise `DuplicateNameError` where ``names`` repeats a name.

    :param names: the names of a graph's vertices.
    :param owner: what the vertices belong to, for the message (e.g. ``"Problem"``).
    """
    seen: set[str] = set()
    repeated = [name for name in names if name in seen or seen.add(name)]
    if repeated:
        raise DuplicateNameError(f"{owner} has several nodes, objectives or constraints named "
                                 f"{sorted(set(repeated))}: give each a distinct name (name='...').")


def import_pydot() -> Any:
    """Import pydot, raising an ImportError that says how to get it."""
    try:
        import pydot
    except ImportError as error:
        raise ImportError("Drawing computational graphs needs pydot (and Graphviz for rendering): "
                          "pip install pydot") from error
    return pydot


class _Vertex(NamedTuple):
    """What a drawing needs of a node: its name and the keys it reads and writes, without repeats."""

    name: str
    input_keys: list[str]
    output_keys: list[str]


def _vertices(nodes: Sequence[Any]) -> list[_Vertex]:
    """The `_Vertex` of each node (a module without ``input_keys``/``output_keys`` has none)."""
    return [_Vertex(str(node.name), list(dict.fromkeys(getattr(node, "input_keys", None) or [])),
                    list(dict.fromkeys(getattr(node, "output_keys", None) or []))) for node in nodes]


def _shared_keys(outputs: Sequence[str], inputs: Sequence[str]) -> list[str]:
    """The keys of ``inputs`` that ``outputs`` holds, in ``inputs`` order."""
    return [key for key in inputs if key in outputs]


def _new_graph(pydot: Any, name: str, output_label: str) -> Any:
    """An empty left-to-right digraph with the ``in`` (dataset) and ``out`` vertices."""
    graph = pydot.Dot(name, graph_type="digraph", rankdir="LR")
    graph.add_node(pydot.Node("in", label="dataset", color="skyblue", style="filled", shape="box"))
    graph.add_node(pydot.Node("out", label=output_label, color="skyblue", style="filled", shape="box"))
    return graph


def _add_node_vertices(pydot: Any, graph: Any, nodes: Sequence[Any]) -> None:
    """One box per node, named and labelled by the node's name."""
    for node in nodes:
        graph.add_node(pydot.Node(node.name, label=node.name, color="lavender", style="filled", shape="box"))


def _add_node_to_node_edges(pydot: Any, graph: Any, nodes: Sequence[Any]) -> None:
    """Connect each node to the nearest earlier node writing each key it reads (last node first)."""
    for position in reversed(range(len(nodes))):
        reader = nodes[position]
        connected: set[str] = set()
        for writer in reversed(nodes[:position]):
            for key in _shared_keys(writer.output_keys, reader.input_keys):
                if key not in connected:
                    connected.add(key)
                    graph.add_edge(pydot.Edge(writer.name, reader.name, label=key))


def _add_output_edges(pydot: Any, graph: Any, nodes: Sequence[Any]) -> None:
    """Connect to ``out`` the last node (in list order) writing each output key, last node first."""
    written_later: set[str] = set()
    for node in reversed(nodes):
        for key in node.output_keys:
            if key not in written_later:
                graph.add_edge(pydot.Edge(node.name, "out", label=key))
        written_later.update(node.output_keys)


def system_graph(nodes: Sequence[Any], name: str | None = None) -> Any:
    """The drawing of a `System`'s cycle of named ``nodes``.

    Edges: node to node for keys written earlier in the cycle; a node to itself for keys it reads
    and writes; ``in`` to every node reading a key no earlier node writes (initial conditions and
    exogenous inputs); a later node back to an earlier one for a key that closes the loop; and the
    last writer of each key to ``out``.

    :param nodes: named nodes with ``input_keys`` and ``output_keys``.
    :param name: the graph's name; None names it ``System``.
    :raises ImportError: pydot is not installed.
    """
    pydot = import_pydot()
    graph = _new_graph(pydot, name or "System", "out")
    vertices = _vertices(nodes)
    _add_node_vertices(pydot, graph, vertices)
    _add_node_to_node_edges(pydot, graph, vertices)
    loop_keys: set[str] = set()
    initial_keys: set[str] = set()
    written: set[str] = set()
    for position, node in enumerate(vertices):
        inputs = node.input_keys
        own_loop = [key for key in inputs if key in node.output_keys]
        loop_keys.update(own_loop)
        initial_keys.update(key for key in inputs if key not in written)
        written.update(node.output_keys)
        for key in own_loop:
            graph.add_edge(pydot.Edge(node.name, node.name, label=key))
        for key in inputs:
            if key in initial_keys:
                graph.add_edge(pydot.Edge("in", node.name, label=key))
        if any(key in loop_keys and key in initial_keys for key in inputs):
            for key in inputs:
                writer = next((later for later in reversed(vertices[position + 1:])
                               if key in later.output_keys and key not in written), None)
                if writer is not None:
                    graph.add_edge(pydot.Edge(writer.name, node.name, label=key))
    _add_output_edges(pydot, graph, vertices)
    return graph


def problem_graph(nodes: Sequence[Any], terms: Sequence[Any], term_names: Sequence[str],
                  loss_input_keys: Sequence[str], include_objectives: bool = True) -> Any:
    """The drawing of a `Problem`: dataset, named ``nodes``, loss terms and loss.

    Edges: node to node as in `system_graph`; ``in`` to each node reading a key that the data must
    provide; then, with ``include_objectives``, for every term (objectives first) the nearest node
    writing each key it reads, ``in`` for each key only the data holds, and the term to ``out``;
    without, each node output the loss reads and each data key the loss reads go to ``out``.

    :param nodes: named nodes (``input_keys`` and ``output_keys`` where they have them).
    :param terms: the loss's objectives and constraints (with ``input_keys``).
    :param term_names: the vertex name of each term (its output key in the loss).
    :param loss_input_keys: the keys the loss reads, used where ``include_objectives`` is False.
    :param include_objectives: draw a vertex per term (True) or one ``out`` vertex for the loss.
    :raises ImportError: pydot is not installed.
    """
    pydot = import_pydot()
    graph = _new_graph(pydot, "problem", "loss")
    vertices = _vertices(nodes)
    _add_node_vertices(pydot, graph, vertices)
    _add_node_to_node_edges(pydot, graph, vertices)
    all_inputs = {key for node in vertices for key in node.input_keys}
    all_outputs = {key for node in vertices for key in node.output_keys}
    loop_keys = {key for node in vertices for key in node.input_keys if key in node.output_keys}
    data_keys = all_inputs - (all_outputs - loop_keys)
    written: set[str] = set()
    for node in vertices:
        for key in node.input_keys:
            if key in data_keys and key not in written:
                graph.add_edge(pydot.Edge("in", node.name, label=key))
        written.update(node.output_keys)
    if include_objectives:
        for term, term_name in zip(terms, term_names, strict=True):
            term_inputs = list(dict.fromkeys(getattr(term, "input_keys", None) or []))
            graph.add_node(pydot.Node(term_name, label=term_name, color="mistyrose", style="filled", shape="box"))
            connected: set[str] = set()
            for node in reversed(vertices):
                for key in _shared_keys(node.output_keys, term_inputs):
                    if key not in connected:
                        connected.add(key)
                        graph.add_edge(pydot.Edge(node.name, term_name, label=key))
            for key in term_inputs:
                if key not in all_outputs:
                    graph.add_edge(pydot.Edge("in", term_name, label=key))
            graph.add_edge(pydot.Edge(term_name, "out", label=term_name))
    else:
        loss_inputs = list(dict.fromkeys(loss_input_keys))
        for node in vertices:
            for key in _shared_keys(node.output_keys, loss_inputs):
                graph.add_edge(pydot.Edge(node.name, "out", label=key))
        for key in loss_inputs:
            if key in all_inputs and key not in all_outputs:
                graph.add_edge(pydot.Edge("in", "out", label=key))
    return graph


_WRITERS = {"png": "write_png", "svg": "write_svg", "jpg": "write_jpg", "jpeg": "write_jpg",
            "pdf": "write_pdf", "dot": "write_raw"}


class GraphvizMissingWarning(NeuromancerError, UserWarning):
    """A graph was to be displayed, but Graphviz's ``dot`` program, which draws it, is not installed."""


def render_graph(graph: pydot.Dot, figname: str | None = None) -> None:
    """Write a pydot graph to ``figname`` or, where None, display it with matplotlib.

    Displaying is a courtesy to the reader: without Graphviz's ``dot`` program it draws nothing and
    warns (a `GraphvizMissingWarning`) instead of stopping the script that asked, which upstream
    NeuroMANCER does with an error. A file that was asked for is never silently left unwritten.

    :param graph: the graph.
    :param figname: output path, whose extension picks the format; None displays the drawing.
    :raises ValueError: unsupported extension.
    :raises FileNotFoundError: Graphviz's ``dot`` program is missing and ``figname`` was given.
    """
    if figname is None:
        handle, path = tempfile.mkstemp(suffix=".png")
        os.close(handle)
        try:
            _write_graph(graph, path)
            import matplotlib.image as mpimg
            import matplotlib.pyplot as plt
            image = mpimg.imread(path)
        except FileNotFoundError as error:
            warnings.warn(f"{error} The graph is not displayed.", GraphvizMissingWarning, stacklevel=3)
            return
        finally:
            os.remove(path)
        plt.figure()
        axes = plt.imshow(image, aspect="equal").axes
        axes.set_axis_off()
        plt.show()
    else:
        _write_graph(graph, figname)


def _write_graph(graph: Any, path: str) -> None:
    """Render ``graph`` to ``path`` in the format its extension names."""
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in _WRITERS:
        raise ValueError(f"Cannot draw a graph to {path!r}: use one of the extensions "
                         f"{sorted(_WRITERS)}.")
    try:
        getattr(graph, _WRITERS[extension])(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"Rendering {path!r} needs Graphviz's 'dot' program on the PATH "
                                f"(e.g. apt-get install graphviz); graph() works without it.") from error
    logger.info("wrote graph drawing to %s", path)
