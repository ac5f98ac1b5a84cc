"""Inputs upstream NeuroMANCER 1.5 accepts that the modeling layer once refused (issue 21).

One test per accepted input of the audit on docs/differences.rst ("Inputs upstream 1.5 accepts"):
each checks what the input becomes (values, dtypes, shapes, parameters, as upstream 1.5.6 gives
them) and, where the input is taken leniently, the `LenientInputWarning` that names it and the fix.
"""
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from neuromancer.constraint import Loss, Variable, variable
from neuromancer.dataset import DictDataset, SequenceDataset, StaticDataset, split_sequence_data, split_static_data
from neuromancer.dynamics.interpolation import LinInterp_Offline
from neuromancer.exceptions import LenientInputWarning, NeuromancerError
from neuromancer.loss import BarrierLoss, PenaltyLoss
from neuromancer.modules import activations, blocks, solvers
from neuromancer.problem import Problem
from neuromancer.psl import signals
from neuromancer.psl.autonomous import VanDerPol
from neuromancer.psl.nonautonomous import Actuator
from neuromancer.slim import slim
from neuromancer.system import Node, SystemPreview


def lenient(match):
    """Expect exactly the LenientInputWarning whose message matches ``match``."""
    return pytest.warns(LenientInputWarning, match=match)


def test_the_warning_is_a_neuromancer_user_warning_that_can_be_made_an_error():
    assert issubclass(LenientInputWarning, UserWarning) and issubclass(LenientInputWarning, NeuromancerError)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LenientInputWarning)
        with pytest.raises(LenientInputWarning):
            DictDataset({"x": np.ones((2, 1))})


# ------------------------------------------------------------------------------ datasets
def test_dictdataset_takes_numpy_arrays_as_tensors_of_their_own_dtype():
    arrays = {"f32": np.arange(8, dtype=np.float32).reshape(4, 2), "f64": np.linspace(0, 1, 4).reshape(4, 1),
              "i": np.arange(4), "b": np.array([True, False, True, True])}
    with lenient(r"\['b', 'f32', 'f64', 'i'\] are numpy arrays.*torch.as_tensor\(array, dtype=torch.float32\)") as record:
        dataset = DictDataset(arrays, name="dev")
    assert record[0].filename == __file__  # attributed to the caller, not to the package
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=dataset.collate_fn)))
    assert {key: batch[key].dtype for key in arrays} == {
        "f32": torch.float32, "f64": torch.float64, "i": torch.int64, "b": torch.bool}  # upstream's batch dtypes
    for key, array in arrays.items():
        np.testing.assert_array_equal(batch[key].numpy(), array[:3])
        assert batch[key].device.type == "cpu"
    assert batch["name"] == "dev" and len(dataset) == 4


def test_dictdataset_copies_arrays_torch_cannot_share():
    base = np.arange(10.0).reshape(5, 2)
    read_only = base.copy()
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # torch's own "not writable" warning would fail here
        with pytest.raises(LenientInputWarning):
            DictDataset({"r": read_only})
    with lenient("numpy arrays"):
        dataset = DictDataset({"r": read_only, "reversed": base[::-1], "columns": base[:, ::-1]})
    np.testing.assert_array_equal(dataset[0]["reversed"].numpy(), [8.0, 9.0])
    np.testing.assert_array_equal(dataset[0]["columns"].numpy(), [1.0, 0.0])
    np.testing.assert_array_equal(dataset[4]["r"].numpy(), [8.0, 9.0])


def test_static_dataset_takes_arrays_of_more_than_two_dimensions():
    dataset = StaticDataset({"a": np.ones((5, 2, 3)), "b": np.zeros((5, 4, 3))})
    sample = dataset[1]
    assert sample["a"].shape == (2, 3) and sample["b"].shape == (4, 3)
    assert torch.equal(sample["a"], torch.ones(2, 3)) and torch.equal(sample["b"], torch.zeros(4, 3))
    assert dataset.dims == {"a": (5, 2, 3), "b": (5, 4, 3), "nsamples": 5}
    with pytest.raises(ValueError, match="later sizes must agree"):
        StaticDataset({"a": np.ones((5, 2, 3)), "b": np.zeros((5, 4, 2))})


def test_sequence_dataset_takes_numpy_integer_nsteps():
    dataset = SequenceDataset({"Y": np.arange(40.0).reshape(20, 2)}, nsteps=np.int64(2))
    assert dataset.nsteps == 2 and type(dataset.nsteps) is int
    assert len(dataset) == 9 and dataset[0]["Yp"].shape == (2, 2)


def test_split_ratio_with_a_test_share_reads_train_and_dev_only():
    data = {"Y": np.arange(20.0).reshape(10, 2)}
    with lenient(r"only the first two.*remaining 20%.*split_ratio=\[train, dev\]"):
        parts = split_static_data(data, split_ratio=[50, 30, 20])
    assert [len(part["Y"]) for part in parts] == [5, 3, 2]  # upstream 1.5's sizes
    with lenient("only the first two"):
        parts = split_static_data(data, split_ratio=[50, 30, 10])
    assert [len(part["Y"]) for part in parts] == [5, 3, 2]
    with lenient("only the first two"):
        sequences = split_sequence_data({"Y": np.zeros((30, 2))}, 2, split_ratio=[50, 30, 20])
    assert [len(part["Y"]) for part in sequences] == [15, 9, 6]


# ------------------------------------------------------------------------------ variables and terms
def test_variable_of_a_computed_tensor_is_a_new_parameter_cut_from_its_source():
    torch.manual_seed(0)
    K = slim.linear.SVDLinear(4, 4, sigma_min=0.01, sigma_max=1.0, bias=False)
    reg = K.reg_error()
    with lenient(r"new trainable parameter.*variable\(\[\], K.reg_error\)") as record:
        K_reg_error = variable(reg)
    assert record[0].filename == __file__
    value = K_reg_error.value
    assert isinstance(value, nn.Parameter) and value.is_leaf and value.grad_fn is None
    assert torch.equal(value.detach(), reg.detach()) and value.data_ptr() != reg.data_ptr()
    term = 1.0 * (K_reg_error == 0.0)
    term.name = "SVD_loss"
    problem = Problem([Node(K, ["x"], ["y"], name="K")], PenaltyLoss([term], []))
    parameters = list(problem.parameters())
    assert len(parameters) == 4 and any(p is value for p in parameters)  # K's three and the copy, as upstream
    assert "loss.objectives.0.left._value" in problem.state_dict()
    output = problem({"x": torch.randn(3, 4), "name": "train"})
    assert output["train_loss"].item() == pytest.approx(reg.item())
    output["train_loss"].backward()
    assert value.grad.item() == 1.0 and all(p.grad is None for p in K.parameters())


def test_a_computed_tensor_operand_becomes_a_parameter_too():
    layer = nn.Linear(2, 2)
    with lenient("new trainable parameter") as record:
        expression = variable("x") * (2 * layer.weight)
    assert record[0].filename == __file__
    objective = expression.minimize()
    objective({"x": torch.ones(2, 2)})[objective.name].backward()
    assert layer.weight.grad is None and len(list(objective.parameters())) == 1


def test_the_lenient_fix_trains_the_source_parameters():
    K = slim.linear.SVDLinear(4, 4, sigma_min=0.01, sigma_max=1.0, bias=False)
    term = 1.0 * (variable([], K.reg_error) == 0.0)
    term.name = "SVD_loss"
    problem = Problem([Node(K, ["x"], ["y"], name="K")], PenaltyLoss([term], []))
    problem({"x": torch.randn(3, 4), "name": "train"})["train_loss"].backward()
    assert K.U.grad.abs().sum() > 0 and K.V.grad.abs().sum() > 0


def test_display_name_that_is_not_a_str_is_used_as_its_str():
    with lenient("used as '3'"):
        x = Variable(key="x", display_name=3)
    assert x.display_name == "3" and torch.equal(x({"x": torch.ones(2)}), torch.ones(2))


@pytest.mark.parametrize("flag, value", [(True, 1.0), (False, 0.0)])
def test_bool_weight_is_one_or_zero(flag, value):
    with lenient(f"used as {value}"):
        objective = variable("x").minimize(weight=flag)
    assert objective.weight == value
    assert objective({"x": torch.full((2,), 3.0)})[objective.name].item() == 3.0 * value


def test_update_name_with_a_number_names_the_outputs_by_its_str():
    constraint = variable("x") <= 1
    with lenient("used as '3'"):
        constraint.update_name(3)
    output = Problem([], PenaltyLoss([], [constraint]))({"x": torch.full((2, 1), 2.0), "name": "train"})
    assert {"train_3", "train_3_value", "train_3_violation"} <= set(output)
    assert output["train_3"].item() == 1.0


def test_loss_with_a_one_character_str_reads_that_key():
    with lenient(r"read as the one key \['x'\]"):
        term = Loss("x", lambda x: x.mean(), name="m")
    assert term.input_keys == ["x"] and term({"x": torch.full((2,), 4.0)})["m"].item() == 4.0
    with pytest.raises(TypeError, match="one key per character"):
        Loss("xy", lambda x: x.mean())


def test_variable_of_a_list_shape_is_a_trainable_tensor():
    v = variable([2, 3])
    assert isinstance(v.value, nn.Parameter) and v.value.shape == (2, 3)


def test_system_preview_with_a_one_character_node_name():
    node = Node(lambda x, r: x + r[:, :1], ["x", "r"], ["x"], name="n")
    with lenient(r"read as the one node name \['n'\]"):
        system = SystemPreview([node], preview_keys_map={"r": "n"}, preview_length={"r": 1}, nsteps=2)
    assert system.preview_keys_map == {"r": ["n"]}
    out = system({"x": torch.zeros(1, 1, 1), "r": torch.arange(3.0).reshape(1, 3, 1)})
    torch.testing.assert_close(out["x"][0, :, 0], torch.tensor([0.0, 0.0, 1.0]))


# ------------------------------------------------------------------------------ losses
def test_loss_terms_from_any_iterable():
    objective = (variable("x") ** 2).minimize(name="o")
    constraint = variable("x") <= 0.5
    data = {"x": torch.ones(2, 1)}
    from_generator = PenaltyLoss((term for term in [objective]), (term for term in [constraint]))
    from_values = PenaltyLoss({"o": objective}.values(), [])
    assert from_generator(data)["loss"].item() == pytest.approx(1.5) and from_values(data)["loss"].item() == 1.0
    with lenient("order, which is arbitrary"):
        from_set = PenaltyLoss({objective}, {constraint})
    assert from_set(data)["loss"].item() == pytest.approx(1.5)


def test_penalty_plus_barrier_loss_is_a_penalty_loss_with_both_terms():
    objective = (variable("x") ** 2).minimize(name="o")
    constraint = variable("x") <= 2
    with lenient("PenaltyLoss with the terms of both"):
        combined = PenaltyLoss([objective], []) + BarrierLoss([], [constraint])
    assert type(combined) is PenaltyLoss and len(combined.objectives) == 1 and len(combined.constraints) == 1
    assert combined({"x": torch.full((2, 1), 3.0)})["loss"].item() == pytest.approx(10.0)  # upstream's value


# ------------------------------------------------------------------------------ modules, slim, dynamics
def test_aplu_without_segments_is_a_relu():
    with lenient("plain ReLU"):
        unit = activations.APLU(nsegments=0)
    torch.testing.assert_close(unit(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))
    assert unit.reg_error().item() == 0.0


def test_mlp_dropout_of_one_drops_every_hidden_unit_in_training():
    torch.manual_seed(0)
    with lenient("zeroes every hidden unit"):
        net = blocks.MLPDropout(2, 2, hsizes=[4], dropout=1.0)
    assert torch.equal(net(torch.ones(1, 2)), net(torch.full((1, 2), 5.0)))
    net.eval()
    assert not torch.equal(net(torch.ones(1, 2)), net(torch.full((1, 2), 5.0)))


def test_stacked_mlp_without_stages_is_its_single_fidelity_mlp():
    with lenient("no refinement stages"):
        net = blocks.StackedMLP(2, 2, n_stacked_mf_layers=0)
    x = torch.randn(3, 2)
    torch.testing.assert_close(net(x), net.first_layer(x))
    assert net.get_alpha_loss().item() == 0.0


def test_kan_of_one_size_is_the_identity():
    with lenient("no layers"):
        net = blocks.KAN([2])
    x = torch.tensor([[1.0, -2.0]])
    assert torch.equal(net(x), x) and net.regularization_loss().item() == 0.0


@pytest.mark.parametrize("name", ["linear", "nneg", "softSVD", "spectral"])
def test_slim_maps_of_size_zero(name):
    with lenient("insize=0"):
        from_nothing = slim.maps[name](0, 2)
    assert torch.equal(from_nothing(torch.ones(3, 0)), torch.zeros(3, 2))
    with lenient("outsize=0"):
        to_nothing = slim.maps[name](2, 0)
    assert to_nothing(torch.ones(3, 2)).shape == (3, 0)


def test_trivial_null_space_map_of_rank_zero_keeps_epsilon_identity():
    with lenient("rank=0"):
        layer = slim.linear.TrivialNullSpaceLinear(2, 3, rank=0, epsilon=0.5)
    torch.testing.assert_close(layer.effective_W()[:, :2], 0.5 * torch.eye(2))


def test_gradient_projection_of_step_zero_returns_its_input():
    with lenient("takes no step"):
        projection = solvers.GradientProjection([variable("x") <= 0.5], ["x"], step_size=0.0)
    x = torch.ones(2, 1, requires_grad=True)
    torch.testing.assert_close(projection({"x": x})["x"], x)


def test_interpolation_over_descending_times():
    t = torch.tensor([[4.0], [3.5], [2.0], [0.0]])
    with lenient("t is descending"):
        descending = LinInterp_Offline(t, 2 * t)
    ascending = LinInterp_Offline(t.flip(0), 2 * t.flip(0))
    query = torch.tensor([[1.0], [3.0]])
    torch.testing.assert_close(descending(query), ascending(query))
    torch.testing.assert_close(descending(query), torch.tensor([[3.0], [7.25]]))  # upstream 1.5's values


# ------------------------------------------------------------------------------ psl
def test_signals_of_zero_dimensions_and_steps_are_empty():
    for name, generator in signals.signals.items():
        with lenient("empty"):
            assert generator(10, 0).shape == (10, 0), name
    for generator in (signals.step, signals.prbs, signals.beta):
        with lenient("empty"):
            assert generator(0, 2).shape == (0, 2)


@pytest.mark.parametrize("orders", [dict(p=0), dict(q=0)])
def test_arma_with_one_order_zero(orders):
    values = signals.arma(200, 2, min=-1.0, max=1.0, rng=np.random.default_rng(0), **orders)
    assert values.shape == (200, 2) and np.isfinite(values).all()
    np.testing.assert_allclose(values.min(axis=0), -1.0) and np.testing.assert_allclose(values.max(axis=0), 1.0)


@pytest.mark.parametrize("walk", [signals.beta_walk_mean, signals.beta_walk_max_step, signals.nd_walk])
def test_walks_of_zero_step_are_constant(walk):
    with lenient("never moves"):
        values = walk(20, 2, max_step=0.0, rng=np.random.default_rng(0))
    assert values.shape == (20, 2) and (values == values[0]).all()


def test_set_stats_ignores_an_input_or_disturbance_the_system_lacks():
    system = VanDerPol(set_stats=False)
    with lenient("no control input: set_stats ignores U"):
        system.set_stats(U=np.ones((10, 1)))
    assert sorted(system.stats) == ["X", "Y"]
    plant = Actuator(set_stats=False)
    with lenient("no disturbance input: set_stats ignores D"):
        plant.set_stats(D=np.ones((1001, 1)))
    assert sorted(plant.stats) == ["U", "X", "Y"]


def test_simulations_without_steps_are_empty():
    with lenient("nsim=0"):
        out = Actuator(set_stats=False).simulate(nsim=0)
    assert {key: value.shape for key, value in out.items()} == {"Y": (0, 3), "X": (0, 3), "U": (0, 3), "Time": (0,)}
    with lenient("one time point"):
        out = VanDerPol(set_stats=False).simulate(Time=np.array([0.0]))
    assert {key: value.shape for key, value in out.items()} == {"Y": (0, 2), "X": (0, 2), "Time": (0,)}

