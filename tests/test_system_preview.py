"""Tests of neuromancer.system.SystemPreview: preview windows, padding modes and the roll-out."""
import pytest
import torch

from neuromancer.system import Node, System, SystemPreview


def _sequence():
    """[1, 5, 2] signal whose value at step k is [k, 10 k]."""
    steps = torch.arange(5.0)
    return torch.stack([steps, 10 * steps], dim=-1).unsqueeze(0)


@pytest.mark.parametrize("mode, tail", [
    ("circular", [[0.0, 0.0], [1.0, 10.0]]),
    ("replicate", [[4.0, 40.0], [4.0, 40.0]]),
    ("reflect", [[3.0, 30.0], [2.0, 20.0]]),
    ("constant", [[-1.0, -1.0], [-1.0, -1.0]]),
])
def test_windows_are_padded_past_the_end(mode, tail):
    system = SystemPreview([Node(lambda r: r, ["R"], ["Y"], name="n")], preview_keys_map={"R": ["n"]},
                           preview_length={"R": 2}, pad_mode=mode, pad_constant=-1.0)
    data = {"R": _sequence()}
    torch.testing.assert_close(system.get_data_with_preview(data, "R", 1), _sequence()[:, 1:4])
    torch.testing.assert_close(system.get_data_with_preview(data, "R", 3),
                               torch.tensor([[[3.0, 30.0], [4.0, 40.0], *tail[:1]]]))
    torch.testing.assert_close(system.get_data_with_preview(data, "R", 4),
                               torch.tensor([[[4.0, 40.0], *tail]]))


def test_previewing_node_gets_flattened_windows_and_others_the_current_step():
    seen = []

    def policy(x, r):
        seen.append(r.clone())
        return r[:, :1] - x

    policy_node = Node(policy, ["X", "R"], ["U"], name="policy")
    model = Node(lambda x, u: x + u, ["X", "U"], ["X"], name="model")
    monitor = Node(lambda r: 2 * r, ["R"], ["R2"], name="monitor")
    system = SystemPreview([policy_node, model, monitor], preview_keys_map={"R": ["policy"]},
                           preview_length={"R": 1}, pad_mode="replicate", nsteps=5)
    data = {"X": torch.zeros(1, 1, 1), "R": _sequence()}
    out = system(data)
    assert seen[0].tolist() == [[0.0, 0.0, 1.0, 10.0]]  # time-major: r_t then r_{t+1}
    assert seen[-1].tolist() == [[4.0, 40.0, 4.0, 40.0]]
    assert out["X"].shape == (1, 6, 1) and out["U"].shape == (1, 5, 1)
    torch.testing.assert_close(out["R2"], 2 * _sequence())  # the monitor saw one step at a time
    torch.testing.assert_close(out["X"][0, 1:, 0], torch.arange(5.0))
    assert data.keys() == {"X", "R"}


def test_without_previews_it_rolls_out_like_system():
    nodes = [Node(torch.nn.Linear(2, 2), ["X"], ["X"], name="model")]
    data = {"X": torch.randn(3, 4, 2)}
    torch.testing.assert_close(SystemPreview(nodes)(data)["X"], System(nodes)(data)["X"])


def test_default_preview_length_is_the_horizon():
    system = SystemPreview([Node(lambda r: r[:, :1], ["R"], ["Y"], name="n")], preview_keys_map={"R": ["n"]},
                           nsteps=3)
    assert system.preview_length == {"R": 3}
    assert system.get_data_with_preview({"R": _sequence()}, "R", 0).shape == (1, 4, 2)
    unlimited = SystemPreview([Node(lambda r: r[:, :1], ["R"], ["Y"], name="n")], preview_keys_map={"R": ["n"]})
    assert unlimited.get_data_with_preview({"R": _sequence()}, "R", 0).shape == (1, 6, 2)


def test_invalid_configurations_raise():
    node = Node(lambda r: r, ["R"], ["Y"], name="n")
    with pytest.raises(ValueError, match="pad_mode"):
        SystemPreview([node], pad_mode="zeros")
    with pytest.raises(ValueError, match="does not preview"):
        SystemPreview([node], preview_keys_map={"R": ["n"]}, preview_length={"S": 2})
    with pytest.raises(TypeError, match="list of node names"):
        SystemPreview([node], preview_keys_map={"R": "nn"})
    with pytest.raises(KeyError, match="'R'"):
        SystemPreview([node], preview_keys_map={"R": ["n"]}, nsteps=2)({"X": torch.zeros(1, 2, 1)})
