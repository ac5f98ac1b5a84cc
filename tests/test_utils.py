"""neuromancer.utils: operand device placement and loading LitTrainer checkpoints into a Problem."""
import pickle
import subprocess
import sys

import pytest
import torch

from neuromancer.utils import handle_device_placement, load_state_dict_lightning


class Pair(torch.nn.Module):
    """A module with two weights, standing in for a trained problem."""

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.first = torch.nn.Parameter(torch.full((2,), value))
        self.second = torch.nn.Parameter(torch.full((3,), value))


class Devices:
    @handle_device_placement
    def forward(self, left, right, scale=1.0):
        """Return the operands' devices and the extra argument."""
        return getattr(left, "device", None), getattr(right, "device", None), scale


def test_handle_device_placement_moves_the_cpu_operand_to_the_other_device():
    # 'meta' stands in for an accelerator: it is a non-CPU device every build of torch has.
    on_meta, on_cpu = torch.ones(2, device="meta"), torch.ones(2)
    meta = torch.device("meta")
    assert Devices().forward(on_cpu, on_meta) == (meta, meta, 1.0)
    assert Devices().forward(on_meta, on_cpu, scale=2.0) == (meta, meta, 2.0)


def test_handle_device_placement_leaves_matching_devices_and_numbers_alone():
    left, right = torch.ones(2), torch.zeros(2)
    cpu = torch.device("cpu")
    assert Devices().forward(left, right) == (cpu, cpu, 1.0)
    assert Devices().forward(left, 3.0) == (cpu, None, 1.0)
    assert Devices.forward.__name__ == "forward" and "operands' devices" in Devices.forward.__doc__


def save_checkpoint(path, state_dict, **extra):
    """Write a file laid out like a Lightning checkpoint of a LitProblem."""
    torch.save({"state_dict": {f"problem.{k}": v for k, v in state_dict.items()}, "epoch": 3, **extra}, path)


def test_round_trip_into_a_fresh_problem(tmp_path):
    trained = Pair(0.0)
    with torch.no_grad():
        trained.first.copy_(torch.tensor([1.0, 2.0]))
        trained.second.copy_(torch.tensor([3.0, 4.0, 5.0]))
    save_checkpoint(tmp_path / "best.ckpt", trained.state_dict())
    fresh = Pair(-1.0)
    load_state_dict_lightning(fresh, str(tmp_path / "best.ckpt"))
    assert torch.equal(fresh.first, trained.first) and torch.equal(fresh.second, trained.second)


def test_mismatched_problem_names_missing_unexpected_and_reshaped_keys(tmp_path):
    state = Pair().state_dict()
    state["third"] = torch.zeros(1)
    del state["first"]
    state["second"] = torch.zeros(4)
    save_checkpoint(tmp_path / "other.ckpt", state)
    with pytest.raises(ValueError, match=r"missing keys: first; unexpected keys: third; shape mismatch: second"):
        load_state_dict_lightning(Pair(), tmp_path / "other.ckpt")


def test_a_file_that_is_not_a_checkpoint_is_rejected(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="no 'state_dict' entry"):
        load_state_dict_lightning(Pair(), tmp_path / "plain.pt")


def test_loading_is_weights_only(tmp_path):
    save_checkpoint(tmp_path / "unsafe.ckpt", Pair().state_dict(), payload=Pair())
    with pytest.raises(Exception, match="weights_only"):
        load_state_dict_lightning(Pair(), tmp_path / "unsafe.ckpt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_checkpoint_saved_from_a_gpu_loads_on_a_cpu_only_machine(tmp_path, monkeypatch):
    # Tag every stored tensor as living on cuda:0, as a checkpoint written on a GPU machine is.
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    trained = Pair(7.0)
    save_checkpoint(tmp_path / "gpu.ckpt", trained.state_dict())
    monkeypatch.undo()
    # A plain load fails (torch before 2.4 wraps the RuntimeError in an UnpicklingError).
    with pytest.raises((RuntimeError, pickle.UnpicklingError), match="CUDA"):
        torch.load(tmp_path / "gpu.ckpt", weights_only=True)
    fresh = Pair()
    load_state_dict_lightning(fresh, tmp_path / "gpu.ckpt")
    assert torch.equal(fresh.first, trained.first)


def test_utils_does_not_import_lightning():
    code = "import sys, neuromancer.utils; print('lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
