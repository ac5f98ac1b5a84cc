"""Behaviours of upstream NeuroMANCER 1.5 that its own tests and notebooks rely on.

Each test pins one behaviour a user arriving from upstream meets: term keys, expression values in
a Problem's output, tensor and parameter weights, same-named terms, short node outputs, Problem's
key and name checks, and the edges of the computational graphs.
"""
import warnings
from collections import defaultdict

import pytest
import torch
from torch import nn

from neuromancer.constraint import Constraint, variable
from neuromancer.loss import PenaltyLoss
from neuromancer.problem import Problem
from neuromancer.system import Node, System


def data(**extra):
    torch.manual_seed(0)
    return {"x": torch.randn(6, 1), "y": torch.randn(6, 1), **extra}


# ---------------------------------------------------------------------------------------- keys
def test_constraint_key_is_the_output_key_of_its_loss_and_follows_renames():
    x, y = variable("x"), variable("y")
    c = x == y
    batch = data()
    torch.testing.assert_close(c(batch)[c.key], torch.mean(torch.abs(batch["x"] - batch["y"])))
    c.name = "c1"
    assert c.key == "c1" and "c1" in c(batch)
    named = Constraint(x, y, c.comparator, name="mine")
    assert named.key == "mine" and set(named(batch)) == {"mine", "mine_value", "mine_violation"}


def test_objective_key_is_its_output_key():
    x = variable("x")
    objective = (x ** 2).minimize(name="obj")
    assert objective.key == "obj" and list(objective(data())) == ["obj"]
    objective.name = "renamed"
    assert list(objective(data())) == [objective.key] == ["renamed"]


def test_expressions_keep_a_unique_key():
    x, y = variable("x"), variable("y")
    f = x ** 2 + y ** 2
    g = x ** 2 + y ** 2
    assert x.key == "x" and isinstance(f.key, str) and f.key != g.key


# ----------------------------------------------------------------------- expression values
def test_problem_output_holds_every_evaluated_expression_under_its_key():
    x, y = variable("x"), variable("y")
    f = x ** 2 + y ** 2
    lhs, rhs = 2 * x, y - 1
    loss = PenaltyLoss([f.minimize(name="obj")], [lhs <= rhs])
    batch = data(name="test")
    out = Problem([], loss)(batch)
    torch.testing.assert_close(out["test_" + f.key], batch["x"] ** 2 + batch["y"] ** 2)
    torch.testing.assert_close(out["test_" + lhs.key], 2 * batch["x"])
    torch.testing.assert_close(out["test_" + rhs.key], batch["y"] - 1)
    torch.testing.assert_close(out["test_obj"], f(batch).mean())


def test_subexpressions_shared_by_terms_are_output_once_under_each_key():
    x = variable("x")
    square = x ** 2
    twin = x ** 2
    loss = PenaltyLoss([square.minimize(name="a"), (twin + 1).minimize(name="b")], [])
    batch = data()
    out = loss(batch)
    torch.testing.assert_close(out[square.key], batch["x"] ** 2)
    assert out[twin.key] is out[square.key]
    torch.testing.assert_close(out["b"], (out[square.key] + 1).mean())


# ------------------------------------------------------------------------------- weights
def test_parameter_weight_is_trained_with_the_problem():
    x, y = variable("x"), variable("y")
    weight = nn.Parameter(torch.tensor(0.1))
    constraint = weight * (x <= y) ^ 2
    assert constraint.weight is weight and constraint.comparator.norm == 2
    problem = Problem([], PenaltyLoss([], [constraint]))
    assert any(p is weight for p in problem.parameters())
    batch = {"x": torch.full((4, 1), 2.0), "y": torch.zeros(4, 1), "name": "train"}
    problem(batch)["train_loss"].backward()
    assert weight.grad.item() == pytest.approx(4.0)


def test_tensor_weights_scale_terms_and_follow_the_module():
    x = variable("x")
    objective = (x ** 2).minimize(weight=torch.tensor(3.0), name="obj")
    batch = data()
    torch.testing.assert_close(objective(batch)["obj"], 3.0 * (batch["x"] ** 2).mean())
    assert [name for name, _ in objective.named_buffers()] == ["weight_tensor"]
    scaled = 2.0 * (torch.tensor(5.0) * (x >= 1))
    assert float(scaled.weight) == 10.0
    frozen = torch.tensor(0.5, requires_grad=False) * (x >= 1)
    assert list(frozen.parameters()) == []


def test_number_times_parameter_weight_keeps_the_parameter_registered():
    weight = nn.Parameter(torch.tensor(2.0))
    constraint = 10.0 * (weight * (variable("x") <= 0))
    assert [p for p in constraint.parameters()] == [weight]
    assert constraint.weight.item() == 20.0


def test_weight_must_be_number_or_tensor():
    with pytest.raises(TypeError, match="real number or a tensor"):
        (variable("x") ** 2).minimize(weight="heavy")


# ------------------------------------------------------------------------ same-named terms
def test_adding_losses_with_same_named_terms_sums_both():
    x, y = variable("x"), variable("y")
    first = PenaltyLoss([(x ** 2).minimize(name="obj")], [(x <= 0.1)])
    second = PenaltyLoss([(y ** 2).minimize(name="obj")], [(x <= 0.1)])
    batch = data()
    one, two, both = first(batch), second(batch), (first + second)(batch)
    for key in ("objective_loss", "penalty_loss", "loss"):
        torch.testing.assert_close(both[key], one[key] + two[key])
    assert (first + second).term_names == ["obj", "obj_1", "x_lt_0.1", "x_lt_0.1_1"]
    torch.testing.assert_close(both["obj_1"], two["obj"])
    assert both["C_values"].shape == (6, 2)


# ------------------------------------------------------------------------- problem checks
def test_check_keys_warns_when_a_node_overwrites_a_key():
    node = Node(lambda p: p, ["p"], ["p"], name="echo")
    loss = PenaltyLoss([(variable("p") ** 2).minimize(name="obj")], [])
    with pytest.warns(UserWarning, match="overwritten by the node 'echo'"):
        problem = Problem([node], loss, check_overwrite=True)
    with pytest.warns(UserWarning, match=r"\['p'\]"):
        problem._check_keys()
    quiet = Problem([node], loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet._check_keys()


def test_same_named_nodes_raise_an_assertion_error_too():
    loss = PenaltyLoss([(variable("y") ** 2).minimize(name="obj")], [])
    first = Node(lambda p: p, ["p"], ["x"], name="map")
    second = Node(lambda p: p, ["p"], ["y"], name="map")
    with pytest.raises(AssertionError, match="'map'"):
        Problem([first, second], loss)
    with pytest.raises(ValueError):
        Problem([first, second], loss)
    with pytest.raises(AssertionError):
        Problem([Node(lambda p: p, ["p"], ["y"], name="obj")], loss)
    with pytest.raises(AssertionError):
        System([first, second])


def test_unnamed_nodes_are_named_in_order():
    nodes = [Node(lambda a: a, ["a"], ["b"]), Node(lambda b: b, ["b"], ["c"], name="named"),
             Node(lambda c: c, ["c"], ["d"])]
    System(nodes)
    assert [node.name for node in nodes] == ["node_1", "named", "node_2"]


# --------------------------------------------------------------------------------- graphs
def adjacency(graph):
    """Upstream's tests read a graph this way: destinations by source, in edge order."""
    edges = defaultdict(list)
    for edge in graph.get_edges():
        edges[edge.get_source()].append(edge.get_destination())
    return dict(edges)


def rosenbrock_problem():
    sol_map = Node(nn.Linear(2, 2), ["a", "p"], ["x"], name="map")
    x1, x2 = variable("x")[:, [0]], variable("x")[:, [1]]
    p, a = variable("p"), variable("a")
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(weight=1.0, name="obj")
    c1, c2, c3 = 100.0 * (x1 >= x2), 100.0 * ((p / 2) ** 2 <= x1 ** 2 + x2 ** 2), 100.0 * (x1 ** 2 + x2 ** 2 <= p ** 2)
    c1.name, c2.name, c3.name = "c1", "c2", "c3"
    return Problem([sol_map], PenaltyLoss([objective], [c1, c2, c3]))


def test_problem_graph_names_terms_and_orders_edges_as_upstream():
    pytest.importorskip("pydot")
    problem = rosenbrock_problem()
    assert adjacency(problem.problem_graph) == {
        "in": ["map", "map", "obj", "c2", "c3"],
        "map": ["obj", "c1", "c2", "c3"],
        "obj": ["out"], "c1": ["out"], "c2": ["out"], "c3": ["out"],
    }
    assert adjacency(problem.graph(include_objectives=False)) == {"in": ["map", "map", "out", "out"],
                                                                  "map": ["out"]}


@pytest.mark.parametrize("nodes, expected", [
    ([Node(lambda x: x, ["x1"], ["y1"], name="node_1"), Node(nn.Linear(2, 1), ["x2"], ["y2"], name="node_2"),
      Node(lambda a, b: a - b, ["y1", "y2"], ["y3"], name="quadratic")],
     {"node_2": ["quadratic", "out"], "node_1": ["quadratic", "out"], "in": ["node_1", "node_2"],
      "quadratic": ["out"]}),
    ([Node(lambda x: x, ["x1"], ["x1"], name="node_1")], {"node_1": ["node_1", "out"], "in": ["node_1"]}),
    ([Node(lambda x, u: x + u, ["x", "u"], ["x"], name="model"), Node(lambda x: -x, ["x"], ["u"], name="policy")],
     {"policy": ["model", "out"], "model": ["policy", "model", "out"], "in": ["model", "model", "policy"]}),
])
def test_system_graph_edges_as_upstream(nodes, expected):
    pytest.importorskip("pydot")
    graph = System(nodes).system_graph
    assert adjacency(graph) == expected
