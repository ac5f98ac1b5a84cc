"""Tests of neuromancer.dynamics.physics: agents, couplings and the state map of networked ODEs."""
import pytest
import torch

from neuromancer.dynamics import physics


def test_agents_intrinsic_terms():
    node = physics.RCNode(C=torch.nn.Parameter(torch.tensor([2.0])), state_names=["T", "H"], scaling=0.5)
    torch.testing.assert_close(node(torch.tensor([[1.0, 4.0]])), torch.tensor([[1.0, 4.0]]))
    floored = physics.RCNode(C=torch.nn.Parameter(torch.tensor([-3.0])))
    torch.testing.assert_close(floored(torch.tensor([[2.0]])), torch.tensor([[2e-6]]))
    torch.testing.assert_close(physics.SourceSink()(torch.ones(3, 1)), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"states \['T'\]"):
        physics.RCNode()(torch.ones(2, 2))


def test_default_parameters_are_not_shared_between_instances():
    first, second = physics.RCNode(), physics.RCNode()
    assert first.C is not second.C and first.C.item() == 1.0
    with torch.no_grad():
        first.C.fill_(5.0)
    assert second.C.item() == 1.0 and physics.RCNode().C.item() == 1.0
    assert physics.DeltaTemp().R is not physics.DeltaTemp().R


def test_couplings():
    x = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    conduction = physics.DeltaTemp(R=torch.nn.Parameter(torch.tensor(0.5)), pins=[[0, 1]], symmetric=True)
    torch.testing.assert_close(conduction(x), torch.tensor([[1.0], [-1.5]]))
    floor = physics.DeltaTemp(R=torch.nn.Parameter(torch.tensor(0.0)))
    torch.testing.assert_close(floor(x), torch.tensor([[0.02], [-0.03]]))
    switch = physics.DeltaTempSwitch(R=torch.nn.Parameter(torch.tensor([0.5])))
    torch.testing.assert_close(switch(x), torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(physics.HVACConnection()(x), torch.tensor([[3.0], [-1.0]]))
    assert conduction.pins == [[0, 1]] and conduction.symmetric and conduction.feature_name == "T"
    assert physics.HVACConnection().pins == []


def test_gradients_reach_the_coupling_and_agent_parameters():
    conduction = physics.DeltaTemp(pins=[[0, 1]])
    conduction(torch.tensor([[1.0, 3.0]])).sum().backward()
    assert conduction.R.grad.item() == pytest.approx(2.0)


def test_map_from_agents_numbers_states_consecutively():
    agents = [physics.RCNode(state_names=["T", "H"]), physics.SourceSink(), physics.RCNode()]
    maps = physics.map_from_agents(agents)
    assert [dict(m) for m in maps] == [{"T": 0, "H": 1}, {"T": 2}, {"T": 3}]
    assert set(physics.agents) == {"RCNode", "SourceSink"}
    assert set(physics.couplings) == {"DeltaTemp", "DeltaTempSwitch", "HVACConnection"}
