"""Tests of neuromancer.trainers.population: stacked members, the population's optimizer, the vectorisability checks.

Every member of a `StackedProblem` must compute what the problem computes with that member's
weights (outputs and gradients), and one optimizer at learning rate 1 with each member's update
scaled must step every member as its own optimizer does. Compared here against plain loops.
"""
import copy
import sys
from pathlib import Path

import pytest
import torch

from neuromancer.constraint import variable
from neuromancer.loss import PenaltyLoss
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainers.population import (
    VECTORISABLE_OPTIMIZERS,
    NotVectorisableError,
    PopulationOptimizer,
    StackedProblem,
    check_vectorisable,
)

sys.path.insert(0, str(Path(__file__).parent))

from rosenbrock import rosenbrock  # noqa: E402


def make_problem(seed=0):
    return rosenbrock(seed, width=8)


def make_batch(size=16, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return {"a": torch.rand(size, 1, generator=generator), "p": 1 + torch.rand(size, 1, generator=generator),
            "name": "train"}


def distinct_members(problem, size):
    """A StackedProblem whose members all have different weights, and those weights as state dicts."""
    stacked = StackedProblem(problem, size)
    states = []
    for member in range(size):
        state = make_problem(seed=10 + member).state_dict()
        stacked.load_member(member, state)
        states.append(state)
    return stacked, states


def test_every_member_computes_what_the_problem_computes_with_its_weights():
    problem, batch = make_problem(), make_batch()
    stacked, states = distinct_members(problem, 3)
    losses = stacked(batch, ["train_loss"])["train_loss"]
    losses.sum().backward()
    assert losses.shape == (3,)
    for member, state in enumerate(states):
        alone = make_problem()
        alone.load_state_dict(state)
        loss = alone(batch)["train_loss"]
        loss.backward()
        torch.testing.assert_close(losses[member], loss, rtol=1e-6, atol=1e-7)
        for stacked_parameter, parameter in zip(stacked.stacked_parameters, alone.parameters(), strict=True):
            torch.testing.assert_close(stacked_parameter.grad[member], parameter.grad, rtol=1e-5, atol=1e-7)


def test_members_start_from_the_problems_weights_and_leave_it_unchanged():
    problem = make_problem()
    before = copy.deepcopy(problem.state_dict())
    stacked = StackedProblem(problem, 4)
    stacked(make_batch(), ["train_loss"])["train_loss"].sum().backward()
    for member in range(4):
        state = stacked.member_state_dict(member)
        assert state.keys() == before.keys()
        for key, value in before.items():
            torch.testing.assert_close(state[key], value)
    for key, value in problem.state_dict().items():
        assert torch.equal(value, before[key])
    assert all(p.grad is None for p in problem.parameters())
    assert len(list(stacked.parameters())) == len(list(problem.parameters()))


class Counter(torch.nn.Module):
    """Scales its input by a weight and counts, in a buffer, the samples it has seen (times the weight)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, data):
        self.seen.add_(data["x"].shape[0] * self.weight.detach().sum())
        return {"out": self.weight * data["x"]}


def test_a_members_in_place_buffer_update_stays_in_its_own_slice():
    counter = Counter()
    stacked = StackedProblem(counter, 3)
    for member, value in enumerate((1.0, 2.0, 3.0)):
        stacked.load_member(member, {"weight": torch.tensor([value]), "seen": torch.zeros(())})
    outputs = stacked({"x": torch.ones(5)}, ["out"])["out"]
    torch.testing.assert_close(outputs, torch.tensor([[1.0] * 5, [2.0] * 5, [3.0] * 5]))
    torch.testing.assert_close(stacked.stacked_buffers()[0], torch.tensor([5.0, 10.0, 15.0]))
    assert float(counter.seen) == 0.0


class Tied(torch.nn.Module):
    """Two names for one linear map: its state dict lists the weights twice."""

    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(2, 2)
        self.second = self.first

    def forward(self, data):
        return {"train_loss": self.second(self.first(data["x"])).pow(2).mean()}


def test_tied_weights_stack_once_and_every_state_dict_key_comes_back():
    model = Tied()
    stacked = StackedProblem(model, 2)
    assert len(stacked.stacked_parameters) == 2
    state = stacked.member_state_dict(1)
    assert state.keys() == model.state_dict().keys()
    fresh = Tied()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.first.weight, model.first.weight)


def test_forward_names_the_missing_metric():
    with pytest.raises(KeyError, match="not among the problem's outputs"):
        StackedProblem(make_problem(), 2)(make_batch(), ["dev_loss"])


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_size_must_be_a_positive_int(size):
    with pytest.raises(ValueError, match="positive int"):
        StackedProblem(make_problem(), size)


OPTIMIZERS = [
    (torch.optim.Adam, {"betas": (0.0, 0.9)}),
    (torch.optim.Adam, {"weight_decay": 0.1, "amsgrad": True}),
    (torch.optim.AdamW, {"weight_decay": 0.1}),
    (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (torch.optim.RMSprop, {"momentum": 0.5, "centered": True}),
    (torch.optim.Adagrad, {"lr_decay": 0.01}),
    (torch.optim.Adadelta, {}),
    (torch.optim.Adamax, {}),
    (torch.optim.NAdam, {}),
    (torch.optim.RAdam, {}),
]


@pytest.mark.parametrize("optimizer_class, settings", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_one_optimizer_with_scaled_updates_steps_every_member_as_its_own_optimizer(optimizer_class, settings):
    problem, rates, steps = make_problem(), [1e-3, 1e-2, 5e-2], 5
    custom = optimizer_class(problem.parameters(), lr=0.5, **settings)
    plan = PopulationOptimizer.from_settings(problem, custom, 1e-3, {})
    stacked = StackedProblem(problem, len(rates))
    optimizer = plan.build(stacked)
    scales = plan.update_scales(stacked, rates)
    parameters = list(stacked.stacked_parameters)
    alone = [copy.deepcopy(problem) for _ in rates]
    own = [optimizer_class(model.parameters(), lr=rate, **settings) for model, rate in zip(alone, rates, strict=True)]
    for step in range(steps):
        batch = make_batch(seed=step)
        optimizer.zero_grad()
        stacked(batch, ["train_loss"])["train_loss"].sum().backward()
        before = [p.detach().clone() for p in parameters]
        optimizer.step()
        with torch.no_grad():
            for parameter, start, scale in zip(parameters, before, scales, strict=True):
                parameter.copy_(start + scale * (parameter - start))
        for model, opt in zip(alone, own, strict=True):
            opt.zero_grad()
            model(batch)["train_loss"].backward()
            opt.step()
    for member, model in enumerate(alone):
        for key, value in model.state_dict().items():
            assert torch.isfinite(value).all()
            torch.testing.assert_close(stacked.member_state_dict(member)[key], value, rtol=1e-4, atol=1e-6)


def test_members_without_a_rate_of_their_own_use_each_groups_rate():
    problem = make_problem()
    first, rest = list(problem.parameters())[:2], list(problem.parameters())[2:]
    custom = torch.optim.SGD([{"params": first, "lr": 0.1}, {"params": rest}], lr=0.01)
    plan = PopulationOptimizer.from_settings(problem, custom, 1e-3, {})
    stacked = StackedProblem(problem, 2)
    scales = plan.update_scales(stacked, [None, 0.5])
    assert [float(scale.flatten()[0]) for scale in scales] == pytest.approx([0.1] * 2 + [0.01] * len(rest))
    assert all(float(scale.flatten()[1]) == 0.5 for scale in scales)
    assert all(group["lr"] == 1.0 for group in plan.build(stacked).param_groups)


class ScaledAdam(torch.optim.Adam):
    """A subclass may use its learning rate otherwise, so it is not vectorisable."""


@pytest.mark.parametrize("optimizer_class", [torch.optim.Rprop, torch.optim.ASGD, torch.optim.LBFGS, ScaledAdam])
def test_optimizers_whose_step_is_not_proportional_to_the_rate_are_refused(optimizer_class):
    problem = make_problem()
    with pytest.raises(NotVectorisableError, match="sweep_vectorize=1"):
        PopulationOptimizer.from_settings(problem, optimizer_class(problem.parameters(), lr=0.1), 1e-3, {})


def test_an_optimizer_that_has_already_stepped_is_refused():
    problem = make_problem()
    optimizer = torch.optim.Adam(problem.parameters())
    problem(make_batch())["train_loss"].backward()
    optimizer.step()
    with pytest.raises(NotVectorisableError, match="already taken steps"):
        PopulationOptimizer.from_settings(problem, optimizer, 1e-3, {})


def test_the_vectorisable_optimizers_are_the_documented_ones():
    assert {c.__name__ for c in VECTORISABLE_OPTIMIZERS} == {
        "Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"}


class ReadsAFloat(torch.nn.Module):
    """Turns a tensor into a Python number, which vmap cannot do."""

    def forward(self, x):
        return x * float(x.mean())


class DeclaredUnsafe(torch.nn.Linear):
    vmap_safe = False


def with_map(module):
    net = Node(module, ["a"], ["x"], name="map")
    return Problem([net], PenaltyLoss([((variable("x") - variable("p")) ** 2).minimize(name="fit")], []))


def test_a_problem_that_runs_under_vmap_passes_the_check_and_keeps_its_random_state():
    state = torch.get_rng_state()
    check_vectorisable(make_problem(), make_batch(), "train_loss")
    assert torch.equal(torch.get_rng_state(), state)


def test_the_check_names_the_module_that_fails_under_vmap():
    problem = with_map(torch.nn.Sequential(torch.nn.Linear(1, 1), ReadsAFloat()))
    with pytest.raises(NotVectorisableError, match=r"nodes\.0\.callable\.1 \(ReadsAFloat\) cannot run under"):
        check_vectorisable(problem, make_batch(), "train_loss")


def test_the_check_names_modules_that_declare_themselves_unsafe():
    problem = with_map(DeclaredUnsafe(1, 1))
    with pytest.raises(NotVectorisableError, match=r"nodes\.0\.callable \(DeclaredUnsafe\): it declares"):
        check_vectorisable(problem, make_batch(), "train_loss")


def test_the_check_refuses_a_loss_that_is_not_one_number_per_member():
    class PerSample(torch.nn.Module):
        def forward(self, data):
            return {"train_loss": data["a"].squeeze(1) * self.weight}

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

    with pytest.raises(NotVectorisableError, match="one number per member"):
        check_vectorisable(PerSample(), make_batch(), "train_loss")
