"""Tests for neuromancer.system: Node mapping and errors, System roll-outs, MovingHorizon, graphs."""
import pytest
import torch
from torch import nn

from neuromancer.system import MovingHorizon, Node, System


def euler_node():
    return Node(lambda x, u: x + u, ["X", "U"], ["X"], name="euler")


def test_node_maps_single_and_tuple_outputs_to_keys():
    single = Node(lambda x, u: x * u, ["x", "u"], ["y"], name="mul")
    x, u = torch.rand(3, 2), torch.rand(3, 2)
    out = single({"x": x, "u": u, "unused": torch.zeros(1)})
    assert list(out) == ["y"]
    torch.testing.assert_close(out["y"], x * u)
    pair = Node(lambda x: (x + 1, x - 1), ["x"], ["a", "b"])
    out = pair({"x": x})
    torch.testing.assert_close(out["a"], x + 1)
    torch.testing.assert_close(out["b"], x - 1)


def test_node_with_more_outputs_than_keys_raises_naming_node_and_counts():
    node = Node(lambda x: (x, x), ["x"], ["y"], name="twice")
    with pytest.raises(ValueError, match=r"'twice' has 1 output_keys .* returned 2"):
        node({"x": torch.ones(2)})


def test_node_with_fewer_outputs_than_keys_fills_the_first_keys_and_warns():
    x = torch.arange(3.0)
    node = Node(lambda x: x * 2, ["x"], ["a", "b"], name="once")
    with pytest.warns(UserWarning, match=r"'once' has 2 output_keys .* returned 1.*\['a'\]"):
        out = node({"x": x})
    assert list(out) == ["a"]
    torch.testing.assert_close(out["a"], x * 2)
    pair = Node(lambda x: (x, x + 1), ["x"], ["a", "b", "c"])
    with pytest.warns(UserWarning):
        out = pair({"x": x})
    assert list(out) == ["a", "b"]
    torch.testing.assert_close(out["b"], x + 1)


def test_node_with_one_key_keeps_a_returned_list_whole():
    node = Node(lambda x: [x, x], ["x"], ["pair"])
    out = node({"x": torch.ones(2)})
    assert isinstance(out["pair"], list) and len(out["pair"]) == 2


def test_node_missing_input_raises_keyerror_with_available_keys():
    node = Node(lambda x, u: x + u, ["x", "u"], ["y"], name="add")
    with pytest.raises(KeyError, match=r"'add' needs input key 'u'.*available keys: \['x'\]"):
        node({"x": torch.ones(2)})


def test_node_rejects_non_callable_and_bad_keys():
    with pytest.raises(TypeError, match="callable"):
        Node(3, ["x"], ["y"])
    with pytest.raises(TypeError, match="input_keys"):
        Node(lambda x: x, [1], ["y"])


def test_node_registers_module_and_freeze_unfreeze():
    node = Node(nn.Linear(2, 1), ["x"], ["y"], name="lin")
    assert len(list(node.parameters())) == 2
    node.freeze()
    assert not any(p.requires_grad for p in node.parameters())
    node.unfreeze()
    assert all(p.requires_grad for p in node.parameters())
    assert repr(node) == "lin(x) -> y"


def test_system_rollout_matches_hand_computed_recurrence():
    torch.manual_seed(0)
    batch, nsteps, nx = 3, 5, 2
    x0, u = torch.randn(batch, 1, nx), torch.randn(batch, nsteps, nx)
    observer = Node(lambda x: 2 * x, ["X"], ["Y"], name="obs")
    out = System([euler_node(), observer], nsteps=nsteps)({"X": x0, "U": u})
    states = [x0[:, 0]]
    for k in range(nsteps):
        states.append(states[-1] + u[:, k])
    expected = torch.stack(states, dim=1)
    assert out["X"].shape == (batch, nsteps + 1, nx)
    torch.testing.assert_close(out["X"], expected)
    # the observer at step k reads the state before the update of step k
    assert out["Y"].shape == (batch, nsteps, nx)
    torch.testing.assert_close(out["Y"], 2 * expected[:, :nsteps])
    assert out["U"] is u


def test_system_nsteps_defaults_to_length_of_nstep_key():
    x = torch.randn(2, 3, 1)
    u = torch.randn(2, 3, 1)
    out = System([euler_node()])({"X": x, "U": u})
    # upstream semantics: step i reads X[:, i] and appends its result
    assert out["X"].shape == (2, 6, 1)
    torch.testing.assert_close(out["X"][:, 3:], x + u)
    out = System([Node(lambda r: r + 1, ["R"], ["Z"])], nstep_key="R")({"R": x})
    torch.testing.assert_close(out["Z"], x + 1)


def test_system_init_func_and_cat():
    x0, u = torch.zeros(1, 1, 1), torch.ones(1, 4, 1)
    system = System([euler_node()], nsteps=4, init_func=lambda d: {**d, "X": d["X"] + 10})
    torch.testing.assert_close(system({"X": x0, "U": u})["X"][0, :, 0], torch.tensor([10., 11, 12, 13, 14]))
    data = system.cat({"X": torch.zeros(2, 3, 4)}, {"X": torch.ones(2, 4), "Z": torch.ones(2, 4)})
    assert data["X"].shape == (2, 4, 4) and data["Z"].shape == (2, 1, 4)
    assert torch.equal(data["X"][:, -1], torch.ones(2, 4))
    assert System([euler_node()]).init({"a": 1}) == {"a": 1}


def test_system_errors_name_missing_keys_and_short_inputs():
    with pytest.raises(KeyError, match=r"data\['X'\].*nsteps"):
        System([euler_node()])({"U": torch.ones(1, 2, 1)})
    with pytest.raises(KeyError, match="'euler' needs key 'U'"):
        System([euler_node()], nsteps=2)({"X": torch.ones(1, 1, 1)})
    with pytest.raises(IndexError, match=r"data\['U'\] has 2 time steps"):
        System([euler_node()], nsteps=3)({"X": torch.ones(1, 1, 1), "U": torch.ones(1, 2, 1)})
    with pytest.raises(TypeError, match="Node"):
        System([nn.Linear(1, 1)])


def test_system_gradients_reach_node_parameters_and_freeze():
    linear = nn.Linear(2, 2)
    system = System([Node(linear, ["X"], ["X"], name="lin")], nsteps=3)
    system({"X": torch.randn(4, 1, 2)})["X"].sum().backward()
    assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0
    system.freeze()
    assert not linear.weight.requires_grad
    system.unfreeze()
    assert linear.weight.requires_grad


def test_system_graph_edges():
    pytest.importorskip("pydot")
    system = System([euler_node(), Node(lambda x: x, ["X"], ["Y"], name="obs")], name="sys")
    edges = {(e.get_source(), e.get_destination(), e.get_label()) for e in system.graph().get_edges()}
    assert ("in", "euler", "U") in edges and ("euler", "euler", "X") in edges
    assert ("euler", "obs", "X") in edges and ("obs", "out", "Y") in edges
    with pytest.raises(ValueError, match="extension"):
        system.show("graph.bmp")


def test_moving_horizon_buffers_last_ndelay_steps():
    node = Node(lambda x: x.sum(0), ["x"], ["y"], name="sumdelay")
    mh = MovingHorizon(node, ndelay=3)
    seen = [float(mh({"x": torch.full((1, 2), float(i))})["y"][0, 0]) for i in range(4)]
    # first call fills the buffer with copies of step 0: [0,0,0], then [0,0,1], [0,1,2], [1,2,3]
    assert seen == [0.0, 1.0, 3.0, 6.0]
    assert len(mh.history["x"]) == 3
    pre = MovingHorizon(node, ndelay=2, history={"x": [torch.full((1, 2), 7.)]})
    assert float(pre({"x": torch.full((1, 2), 1.)})["y"][0, 0]) == 8.0
    with pytest.raises(ValueError, match="ndelay"):
        MovingHorizon(node, ndelay=0)
    with pytest.raises(ValueError, match="history lacks"):
        MovingHorizon(node, history={"z": []})
