"""Tests of vectorised sweeps (``hyperparameter_sweep(..., sweep_vectorize=K)``): runs trained as populations.

A member of a population is still a run in every record: its own SweepResult row, Optuna trial,
offline wandb run and best checkpoint; and it trains as it would in a one-by-one sweep started from
the same weights and random state.
"""
import copy
import logging
import os
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages.journal import JournalFileBackend

from neuromancer.trainers.lightning import LitTrainer
from neuromancer.trainers.sweep_population import group_by_population, member_settings, population_key
from neuromancer.utils import load_state_dict_lightning

sys.path.insert(0, str(Path(__file__).parent))

from lit_helpers import QUIET  # noqa: E402
from rosenbrock import rosenbrock, rosenbrock_data  # noqa: E402
from wandb_offline import offline_run_config, offline_run_dirs, offline_run_history  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_wandb")

EPOCHS = 4


def trainer(**options):
    return LitTrainer(**{**QUIET, "epochs": EPOCHS, "num_sanity_val_steps": 0, **options})


def grid(*rates, **more):
    return {"method": "grid", "parameters": {"learning_rate": {"values": list(rates)}, **more}}


def sweep(problem, config, vectorize, seed=0, count=None, setup=rosenbrock_data, **options):
    """Run a sweep from the random state ``seed``; return its rows by learning rate, and the result."""
    torch.manual_seed(seed)
    count = count or len(config["parameters"]["learning_rate"].get("values", [None] * 4))
    result = trainer(**options).hyperparameter_sweep(problem, setup, config, count=count,
                                                     project_name=f"vectorised-{vectorize}",
                                                     sweep_vectorize=vectorize, sweep_seed=0)
    return {run.config["learning_rate"]: run for run in result}, result


@pytest.mark.slow
def test_lowest_middle_and_highest_rates_train_as_in_a_one_by_one_sweep():
    problem = rosenbrock()
    initial = copy.deepcopy(problem.state_dict())
    config = grid(1e-4, 3e-3, 3e-2)
    together, _ = sweep(problem, config, vectorize=3)
    problem.load_state_dict(initial)
    one_by_one, _ = sweep(problem, config, vectorize=1)
    for rate in (1e-4, 3e-3, 3e-2):
        assert together[rate].state == one_by_one[rate].state == "finished"
        assert len(together[rate].history) == len(one_by_one[rate].history) == EPOCHS
        torch.testing.assert_close(torch.tensor(together[rate].history), torch.tensor(one_by_one[rate].history),
                                   rtol=1e-5, atol=0)
        assert together[rate].metric == pytest.approx(one_by_one[rate].metric, rel=1e-5)


@pytest.mark.slow
def test_a_diverging_member_is_reported_failed_and_changes_no_other_run(caplog):
    problem = rosenbrock()
    initial = copy.deepcopy(problem.state_dict())
    calm, _ = sweep(problem, grid(1e-3, 1e-2), vectorize=2)
    problem.load_state_dict(initial)
    with caplog.at_level(logging.WARNING, logger="neuromancer.trainers.sweep"):
        mixed, result = sweep(problem, grid(1e-3, 1e4, 1e-2), vectorize=3)
    diverged = mixed[1e4]
    assert diverged.state == "failed" and diverged.metric is None and not diverged.succeeded
    assert "is not finite" in diverged.error and diverged.error.startswith("FloatingPointError: epoch 0")
    assert result[-1] is diverged and f"sweep run {diverged.name} failed" in caplog.text
    for rate in (1e-3, 1e-2):
        assert mixed[rate].history == pytest.approx(calm[rate].history, rel=1e-6)
    assert result.best.metric == min(calm[1e-3].metric, calm[1e-2].metric)


SWEEPS = {
    "grid": grid(1e-3, 3e-3, 1e-2, 3e-2),
    "random": {"method": "random", "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-3, "max": 3e-2},
        "clip": {"values": [0.5, 10.0]}}},
    "bayes": {"method": "bayes", "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-3, "max": 3e-2},
        "patience": {"values": [1, 3]}}},
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(SWEEPS))
def test_every_member_is_a_run_in_every_record(method, tmp_path):
    problem = rosenbrock()
    journal = tmp_path / "study.journal"
    torch.manual_seed(0)
    result = trainer(weight_path=str(tmp_path / "weights")).hyperparameter_sweep(
        problem, rosenbrock_data, SWEEPS[method], count=4, project_name="records", sweep_vectorize=4,
        sweep_storage=journal, sweep_seed=0)
    assert (len(result), result.method, result.mode) == (4, method, "offline")
    assert all(run.state == "finished" for run in result), [run.error for run in result]
    assert sorted(run.name for run in result) == [f"records-{n}" for n in range(4)]

    # the problem holds the best run's weights, which its best checkpoint holds too
    best = copy.deepcopy(problem.state_dict())
    fresh = rosenbrock(seed=7)
    load_state_dict_lightning(fresh, result.best.checkpoint)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, best[key])

    study = optuna.load_study(study_name="records",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    trials = {trial.user_attrs["wandb_run"]: trial for trial in study.trials}
    run_dirs = offline_run_dirs(tmp_path)
    assert sorted(run.wandb_dir for run in result) == run_dirs
    for run in result:
        # its own checkpoint, in its own folder
        assert Path(run.checkpoint).parent == tmp_path / "weights" / run.name
        assert os.listdir(Path(run.checkpoint).parent) == [Path(run.checkpoint).name]
        # its own trial: its sampled values, its metric, its checkpoint
        trial = trials[run.name]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.params == run.config and trial.value == pytest.approx(run.metric)
        assert trial.user_attrs["checkpoint"] == run.checkpoint
        # its own offline wandb run: its config and one history row per epoch it trained
        assert {k: v for k, v in offline_run_config(run.wandb_dir).items() if k in run.config} == run.config
        logged = offline_run_history(run.wandb_dir)
        assert [row["epoch"] for row in logged] == list(range(len(run.history)))
        assert [row["dev_loss"] for row in logged] == pytest.approx(list(run.history))
    if method == "bayes":  # patience is each member's own
        assert {len(run.history) for run in result} <= set(range(1, EPOCHS + 1))


class SetupCalls:
    """rosenbrock_data that remembers the batch size of every call."""

    def __init__(self):
        self.batch_sizes = []

    def __call__(self, nsim=96, batch_size=16):
        self.batch_sizes.append(batch_size)
        return rosenbrock_data(nsim, batch_size)


@pytest.mark.slow
def test_runs_that_differ_in_batch_size_train_in_separate_populations():
    setup = SetupCalls()
    rows, result = sweep(rosenbrock(), grid(1e-3, 1e-2, batch_size={"values": [16, 32]}), vectorize=4, count=4,
                         setup=setup)
    assert len(result) == 4 and all(run.state == "finished" for run in result)
    assert sorted(setup.batch_sizes) == [16, 32]  # one data setup, hence one fit, per population
    assert sorted((run.config["batch_size"], run.config["learning_rate"]) for run in result) == [
        (16, 1e-3), (16, 1e-2), (32, 1e-3), (32, 1e-2)]


@pytest.mark.slow
def test_a_problem_that_cannot_run_under_vmap_trains_one_run_at_a_time(caplog):
    setup = SetupCalls()
    with caplog.at_level(logging.WARNING, logger="neuromancer.trainers.sweep"):
        rows, result = sweep(with_unsafe_module(), grid(1e-3, 1e-2), vectorize=2, setup=setup)
    assert all(run.state == "finished" for run in result)
    assert len(setup.batch_sizes) == 3  # the probe's population, then one setup per run
    assert "train one at a time" in caplog.text and "(ReadsAFloat) cannot run under torch.func.vmap" in caplog.text


class ReadsAFloat(torch.nn.Module):
    """Runs a map, then turns its output into a Python number, which vmap cannot do."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *inputs):
        output = self.inner(*inputs)
        return output * (1.0 + 0.0 * float(output.mean()))


def with_unsafe_module():
    problem = rosenbrock()
    problem.nodes[0].callable = ReadsAFloat(problem.nodes[0].callable)
    return problem


def test_an_online_sweep_cannot_vectorise():
    with pytest.raises(ValueError, match="sweep_mode='offline'"):
        trainer().hyperparameter_sweep(rosenbrock(), rosenbrock_data, grid(1e-3), count=1, sweep_mode="online",
                                       sweep_vectorize=2)


@pytest.mark.parametrize("vectorize", [0, -2, 1.5, True])
def test_sweep_vectorize_must_be_a_positive_int(vectorize):
    with pytest.raises(ValueError, match="sweep_vectorize"):
        trainer().hyperparameter_sweep(rosenbrock(), rosenbrock_data, grid(1e-3), count=1, sweep_vectorize=vectorize)


def test_configs_that_differ_only_in_vectorised_settings_share_a_population():
    configs = [{"learning_rate": 0.1, "clip": 1.0, "net": {"width": 4}}, {"learning_rate": 0.2, "patience": 2,
                                                                          "net": {"width": 4}},
               {"learning_rate": 0.1, "net": {"width": 8}}, {"warmup": 3, "net": {"width": 4}}]
    assert group_by_population(["a", "b", "c", "d"], configs) == [["a", "b", "d"], ["c"]]
    assert population_key({"b": 1, "a": {"y": 2, "x": 1}}) == population_key({"a": {"x": 1, "y": 2}, "b": 1})


def test_member_settings_come_from_the_run_then_from_the_trainer():
    arguments = trainer(clip=5.0, patience=4, warmup=1, hparam_config={"learning_rate": 0.3}).init_arguments
    settings = member_settings({"learning_rate": 0.01, "warmup": 2}, arguments)
    assert (settings.learning_rate, settings.clip, settings.patience, settings.warmup) == (0.01, 5.0, 4, 2)
    assert member_settings({}, arguments).learning_rate == 0.3
    assert member_settings({}, trainer().init_arguments).learning_rate is None


@pytest.mark.slow
def test_hyperband_prunes_members_of_a_population_one_by_one(tmp_path):
    config = {"method": "grid", "early_terminate": {"type": "hyperband", "min_iter": 1, "max_iter": 6, "eta": 2},
              "parameters": {"learning_rate": {"values": [0.0, 1e-5, 1e-4, 3e-3, 1e-2, 2e-2]}}}
    journal = tmp_path / "hyperband.journal"
    torch.manual_seed(0)
    result = trainer(epochs=6).hyperparameter_sweep(rosenbrock(), rosenbrock_data, config, count=6,
                                                   project_name="hyperband", sweep_vectorize=6, sweep_storage=journal)
    pruned = [run for run in result if run.state == "pruned"]
    assert pruned and len(pruned) < len(result)
    assert all(len(run.history) < 6 and run.metric == min(run.history) for run in pruned)
    assert all(len(run.history) == 6 for run in result if run.state == "finished")
    study = optuna.load_study(study_name="hyperband",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    states = {trial.user_attrs["wandb_run"]: trial.state for trial in study.trials}
    assert all(states[run.name] == optuna.trial.TrialState.PRUNED for run in pruned)
