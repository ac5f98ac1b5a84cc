"""Tests of fit_population: every member of a population trains exactly as its own LitTrainer run.

Each comparison trains the same problem from the same weights and random state twice: once as one
population, once member by member with ``LitTrainer.fit``, and compares every epoch's dev loss, the
best weights and the stopping epoch.
"""
import copy
import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from neuromancer.callbacks import Callback
from neuromancer.trainers.lightning import LitTrainer
from neuromancer.trainers.lightning_population import (
    LIT_TRAINER_SETTINGS,
    LitPopulation,
    fit_population,
    population_arguments,
)
from neuromancer.trainers.population import MemberSettings, NotVectorisableError, PopulationOptimizer
from neuromancer.utils import load_state_dict_lightning

sys.path.insert(0, str(Path(__file__).parent))

from ddp_script import data_setup, expected_trajectory, scalar_problem  # noqa: E402
from lit_helpers import QUIET  # noqa: E402
from rosenbrock import rosenbrock, rosenbrock_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("in_tmp_path")

EPOCHS = 5
OPTIONS = dict(QUIET, epochs=EPOCHS, logger=False, num_sanity_val_steps=0)


class DevHistory(pl.Callback):
    """The dev loss after every epoch of a single run."""

    def __init__(self):
        self.values = []

    def on_train_epoch_end(self, trainer, pl_module):
        if "dev_loss" in trainer.callback_metrics:
            self.values.append(float(trainer.callback_metrics["dev_loss"]))


def alone(problem, initial, settings, seed, **options):
    """Train one member's run with LitTrainer from ``initial`` and random state ``seed``; its history and weights."""
    problem.load_state_dict(initial)
    torch.manual_seed(seed)
    history = DevHistory()
    trainer = LitTrainer(**{**OPTIONS, **options}, clip=settings.clip, patience=settings.patience,
                         warmup=settings.warmup, hparam_config={"learning_rate": settings.learning_rate},
                         callbacks=[history], save_weights=False)
    trainer.fit(problem, rosenbrock_data)
    return history.values, copy.deepcopy(problem.state_dict()), trainer.stopped_on_nonfinite


def together(problem, initial, members, seed, **options):
    problem.load_state_dict(initial)
    torch.manual_seed(seed)
    return fit_population(problem, rosenbrock_data, members, LitTrainer(**{**OPTIONS, **options}).init_arguments)


def assert_same_run(result, history, weights, rtol=1e-5):
    assert len(result.history) == len(history)
    torch.testing.assert_close(torch.tensor(result.history), torch.tensor(history), rtol=rtol, atol=1e-7)
    for key, value in weights.items():
        torch.testing.assert_close(result.weights[key], value, rtol=1e-4, atol=1e-6)


MEMBERS = [
    MemberSettings(learning_rate=1e-3, clip=None),
    MemberSettings(learning_rate=1e-2, clip=0.05),
    MemberSettings(learning_rate=3e-2, patience=1, warmup=2),
    MemberSettings(learning_rate=3e-1, clip=1.0, patience=2),
]


@pytest.mark.slow
def test_every_member_trains_as_its_own_run():
    problem = rosenbrock()
    initial = copy.deepcopy(problem.state_dict())
    results = together(problem, initial, MEMBERS, seed=3)
    for key, value in problem.state_dict().items():  # the problem keeps the weights it had
        assert torch.equal(value, initial[key])
    for member, result in zip(MEMBERS, results, strict=True):
        history, weights, stopped = alone(problem, initial, member, seed=3)
        assert stopped is None
        assert result.state == "finished" and result.error is None
        assert_same_run(result, history, weights)
        assert result.best_score == pytest.approx(min(history), rel=1e-5)
        assert result.best_epoch == history.index(min(history))
    # patience and warmup are each member's own: the third stops early, the others train every epoch
    assert [len(result.history) for result in results] != [EPOCHS] * len(MEMBERS)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", [
    lambda parameters: torch.optim.SGD(parameters, lr=0.01, momentum=0.9),
    lambda parameters: torch.optim.AdamW(parameters, lr=0.01, weight_decay=0.05),
    lambda parameters: torch.optim.RMSprop(parameters, lr=0.001),
], ids=["SGD-momentum", "AdamW", "RMSprop"])
def test_a_custom_optimizers_class_and_settings_are_reused(optimizer):
    problem = rosenbrock()
    initial = copy.deepcopy(problem.state_dict())
    members = [MemberSettings(learning_rate=None), MemberSettings(learning_rate=0.003)]
    results = together(problem, initial, members, seed=4, custom_optimizer=optimizer(problem.parameters()))
    for member, result in zip(members, results, strict=True):
        custom = optimizer(problem.parameters())
        problem.load_state_dict(initial)
        torch.manual_seed(4)
        history = DevHistory()
        config = None if member.learning_rate is None else {"learning_rate": member.learning_rate}
        LitTrainer(**OPTIONS, custom_optimizer=custom, hparam_config=config, callbacks=[history],
                   save_weights=False).fit(problem, rosenbrock_data)
        assert_same_run(result, history.values, problem.state_dict())


@pytest.mark.slow
def test_a_diverging_member_fails_alone_and_changes_no_other_member():
    problem = rosenbrock()
    initial = copy.deepcopy(problem.state_dict())
    calm = [MemberSettings(learning_rate=1e-3), MemberSettings(learning_rate=1e-2)]
    without = together(problem, initial, calm, seed=5)
    with_diverging = together(problem, initial, [calm[0], MemberSettings(learning_rate=1e4), calm[1]], seed=5)
    failed = with_diverging[1]
    assert failed.state == "failed"
    assert failed.error.startswith("FloatingPointError: epoch 0, batch ") and "train_loss=" in failed.error
    assert "is not finite" in failed.error
    for key, value in failed.weights.items():  # it kept its best (here: initial) weights, finite
        assert torch.isfinite(value).all()
        torch.testing.assert_close(value, initial[key])
    for before, after in zip(without, [with_diverging[0], with_diverging[2]], strict=True):
        assert after.state == "finished"
        assert_same_run(after, list(before.history), before.weights, rtol=1e-6)


@pytest.mark.slow
def test_members_best_checkpoints_load_into_the_plain_problem(tmp_path):
    problem = rosenbrock()
    directories = [str(tmp_path / "runs" / name) for name in ("first", "second")]
    results = fit_population(problem, rosenbrock_data, [MemberSettings(1e-2), MemberSettings(1e-3)],
                             LitTrainer(**OPTIONS).init_arguments, member_directories=directories)
    for directory, result in zip(directories, results, strict=True):
        (name,) = os.listdir(directory)  # the best one only, as save_top_k=1 keeps
        assert result.checkpoint == os.path.join(directory, name)
        assert name == f"epoch={result.best_epoch}-step={(result.best_epoch + 1) * 6}.ckpt"
        fresh = rosenbrock(seed=9)
        load_state_dict_lightning(fresh, result.checkpoint)
        for key, value in fresh.state_dict().items():
            assert torch.equal(value, result.weights[key])


def test_without_save_weights_no_checkpoint_is_written(tmp_path):
    results = fit_population(rosenbrock(), rosenbrock_data, [MemberSettings(1e-2), MemberSettings(1e-3)],
                             LitTrainer(**{**OPTIONS, "epochs": 1}, save_weights=False).init_arguments,
                             member_directories=[str(tmp_path / "a"), str(tmp_path / "b")])
    assert [result.checkpoint for result in results] == [None, None]
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_a_population_trains_data_parallel_under_ddp_spawn():
    # Plain SGD on the one-weight problem has a closed-form trajectory for each learning rate.
    problem = scalar_problem()
    rates = [0.1, 0.05]
    arguments = LitTrainer(**{**OPTIONS, "epochs": 4, "devices": 2}, strategy="ddp_spawn", clip=None,
                           custom_optimizer=torch.optim.SGD(problem.parameters(), lr=0.5)).init_arguments
    results = fit_population(problem, data_setup, [MemberSettings(rate, clip=None) for rate in rates], arguments,
                             data_kwargs={"nsim": 16, "batch_size": 8})
    for rate, result in zip(rates, results, strict=True):
        weights, dev_losses = expected_trajectory(4, steps_per_epoch=1, lr=rate)
        assert result.history == pytest.approx(dev_losses, rel=1e-5)
        best = min(range(4), key=dev_losses.__getitem__)
        assert result.best_epoch == best
        assert float(result.weights["nodes.0.callable.w"]) == pytest.approx(weights[best], rel=1e-5)


@pytest.mark.parametrize("setting", [
    {"custom_training_step": lambda model, batch: model.problem(batch)["train_loss"]},
    {"custom_hooks": {"on_train_epoch_end": lambda self: None}},
    {"nonfinite": "skip"},
    {"callbacks": [DevHistory()]},
    {"callback": Callback()},
])
def test_settings_only_a_single_run_honours_are_refused(setting):
    with pytest.raises(NotVectorisableError, match="one at a time"):
        population_arguments(LitTrainer(**OPTIONS, **setting).init_arguments)


def test_the_population_knows_every_lit_trainer_setting():
    import inspect

    names = set(inspect.signature(LitTrainer.__init__).parameters) - {"self", "kwargs", "monitor_metric"}
    assert LIT_TRAINER_SETTINGS == names
    with pytest.raises(KeyError, match="init_arguments"):
        population_arguments({"epochs": 3})


def test_an_eval_metric_logged_by_custom_code_is_refused():
    arguments = LitTrainer(**OPTIONS, eval_metric="mystery", custom_hooks={
        "on_train_epoch_end": lambda self: self.log("mystery", 1.0)}).init_arguments
    arguments["custom_hooks"] = None
    with pytest.raises(NotVectorisableError, match="mystery"):
        population_arguments(arguments)


def test_stop_member_freezes_one_member_and_the_fit_stops_when_none_is_left():
    problem = rosenbrock()
    module = LitPopulation(problem, [MemberSettings(1e-2), MemberSettings(1e-3)],
                           PopulationOptimizer.from_settings(problem, None, 1e-3, {}), epochs=2)
    module.stop_member(0)
    assert module.training_members() == [1]
    assert module.member_result(0, None).state == "pruned"
