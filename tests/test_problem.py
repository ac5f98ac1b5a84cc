"""Tests for neuromancer.problem.Problem: prefixing, gradient flow, key checks, graph, repr."""
import sys
import warnings

import pytest
import torch
from torch import nn

from neuromancer.problem import Problem
from neuromancer.system import Node, System


class MeanSquareLoss(nn.Module):
    """A loss module taking and returning a dict, as Problem accepts besides PenaltyLoss."""

    def forward(self, data):
        return {**data, "loss": (data["y"] ** 2).mean()}


def linear_problem(**kwargs):
    torch.manual_seed(0)
    return Problem([Node(nn.Linear(2, 1), ["a"], ["y"], name="lin")], MeanSquareLoss(), **kwargs)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_forward_prefixes_every_key_with_batch_name(split):
    problem = linear_problem()
    a = torch.randn(5, 2)
    data = {"a": a, "name": split}
    out = problem(data)
    assert set(out) == {f"{split}_a", f"{split}_y", f"{split}_loss", f"{split}_name"}
    lin = problem.nodes[0].callable
    torch.testing.assert_close(out[f"{split}_loss"], (lin(a) ** 2).mean())
    assert set(data) == {"a", "name"}


def test_gradients_flow_to_node_parameters():
    problem = linear_problem()
    problem({"a": torch.randn(5, 2), "name": "train"})["train_loss"].backward()
    lin = problem.nodes[0].callable
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    problem.freeze()
    assert not any(p.requires_grad for p in problem.parameters())
    problem.unfreeze()
    assert all(p.requires_grad for p in problem.parameters())


def test_missing_name_explains_collate_fn():
    with pytest.raises(KeyError, match="collate_fn"):
        linear_problem()({"a": torch.randn(2, 2)})


def test_missing_node_input_names_node_and_key():
    with pytest.raises(KeyError, match="'lin' needs key 'a'"):
        linear_problem()({"b": torch.randn(2, 2), "name": "train"})


def test_later_nodes_see_earlier_outputs_and_tensor_outputs_use_node_name():
    class Doubler(nn.Module):
        name = "double"

        def forward(self, data):
            return 2 * data["y"]

    nodes = [Node(lambda a: a.sum(-1, keepdim=True), ["a"], ["y"], name="sum"), Doubler()]
    loss = lambda d: {"loss": d["double"].mean()}  # noqa: E731  a plain function loss
    out = Problem(nodes, loss)({"a": torch.ones(3, 2), "name": "train"})
    assert out == {"train_loss": torch.tensor(4.0)}


def test_tensor_loss_is_stored_under_loss():
    problem = Problem([Node(lambda a: a, ["a"], ["y"])], lambda d: d["y"].sum())
    assert set(problem({"a": torch.ones(2), "name": "dev"})) == {"dev_loss"}


def test_check_overwrite_warns_naming_keys_and_node():
    nodes = [Node(lambda a: a, ["a"], ["y"], name="first"), Node(lambda a: 2 * a, ["a"], ["y"], name="second")]
    with pytest.warns(UserWarning, match=r"\['y'\].*'second'"):
        Problem(nodes, MeanSquareLoss(), check_overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Problem(nodes, MeanSquareLoss())


def test_bad_nodes_and_loss_raise_typeerror():
    node = Node(lambda a: a, ["a"], ["y"])
    with pytest.raises(TypeError, match="list"):
        Problem(node, MeanSquareLoss())
    with pytest.raises(TypeError, match="Node"):
        Problem([lambda d: d], MeanSquareLoss())
    with pytest.raises(TypeError, match="callable"):
        Problem([node], 3)


def test_grad_inference_is_a_flag_for_trainers():
    assert linear_problem(grad_inference=True).grad_inference is True
    assert linear_problem().grad_inference is False


def test_problem_with_system_checks_only_external_keys():
    system = System([Node(lambda x, u: x + u, ["X", "U"], ["X"], name="euler"),
                     Node(lambda x: x, ["X"], ["y"], name="obs")], nsteps=3)
    problem = Problem([system], MeanSquareLoss())
    out = problem({"X": torch.zeros(2, 1, 1), "U": torch.ones(2, 3, 1), "name": "train"})
    torch.testing.assert_close(out["train_X"][0, :, 0], torch.tensor([0., 1, 2, 3]))
    with pytest.raises(KeyError, match="needs key 'U'"):
        problem({"X": torch.zeros(2, 1, 1), "name": "train"})


def test_graph_and_repr():
    pytest.importorskip("pydot")
    problem = linear_problem()
    edges = {(e.get_source(), e.get_destination(), e.get_label()) for e in problem.graph().get_edges()}
    assert ("in", "lin", "a") in edges
    edges = {(e.get_source(), e.get_destination(), e.get_label())
             for e in problem.graph(include_objectives=False).get_edges()}
    assert ("lin", "out", "y") in edges
    assert problem.problem_graph.get_name() == "problem"
    text = repr(problem)
    assert "lin(a) -> y" in text and "MeanSquareLoss" in text


def test_import_does_not_pull_lightning():
    import subprocess
    code = "import sys, neuromancer.problem, neuromancer.dataset; print('lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_penalty_loss_outputs_are_prefixed():
    from neuromancer.constraint import variable
    from neuromancer.loss import PenaltyLoss
    y = variable("y")
    loss = PenaltyLoss([(y ** 2).minimize(name="obj")], [(y <= 0.5)])
    problem = Problem([Node(nn.Linear(2, 1), ["a"], ["y"], name="lin")], loss)
    out = problem({"a": torch.randn(4, 2), "name": "dev"})
    for key in ("loss", "objective_loss", "penalty_loss"):
        assert f"dev_{key}" in out
    torch.testing.assert_close(out["dev_loss"], out["dev_objective_loss"] + out["dev_penalty_loss"])
