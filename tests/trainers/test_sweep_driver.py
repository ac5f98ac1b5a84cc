"""Tests of the sweep driver's ask/tell loop on real Optuna storages, in one process.

Several drivers on one storage stand for several workers; a worker that died is a trial left
RUNNING with a heartbeat that stops (SQLite keeps heartbeats like PostgreSQL does). The
multi-process tests against PostgreSQL are in test_sweep_postgres.py.
"""
import logging

import optuna
import pytest

from neuromancer.exceptions import NeuromancerError
from neuromancer.trainers.sweep_config import parse_sweep_config, sample_value
from neuromancer.trainers.sweep_driver import (
    ERROR_ATTR,
    FAILED_TRIAL,
    SKIPPED,
    WORKER,
    SweepDriver,
    SweepDriverError,
    TrialOutcome,
)
from neuromancer.trainers.sweep_storage import open_storage

GRID = {"method": "grid", "parameters": {"learning_rate": {"values": [0.1, 0.2]}}}
RANDOM = {"method": "random", "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}


def plan_of(config):
    return parse_sweep_config(config, default_metric="dev_loss")


def new_study(storage, name="s"):
    return optuna.create_study(storage=storage, study_name=name, load_if_exists=True)


def driver(study, storage, config, count, **options):
    return SweepDriver(optuna, study, storage, plan_of(config), count, poll_seconds=0.2, **options)


class Trainer:
    """A train_batch that samples each trial's configuration and reports its learning rate as the metric."""

    def __init__(self, config, outcome="finished"):
        self.plan, self.outcome, self.trained = plan_of(config), outcome, []

    def __call__(self, trials):
        outcomes = []
        for trial in trials:
            value = sample_value(self.plan.parameters[0], trial, grid=self.plan.method == "grid")
            self.trained.append((trial.number, value))
            error = "FloatingPointError: nan" if self.outcome == "failed" else None
            outcomes.append(TrialOutcome(self.outcome, value, run_name=f"s-{trial.number}", error=error))
        return outcomes


def interrupted(trials):
    raise KeyboardInterrupt


def by_number(study):
    return {trial.number: trial for trial in study.get_trials()}


def test_a_grid_runs_each_point_once_and_records_the_runs():
    storage = open_storage(optuna, None)
    study = new_study(storage)
    trainer = Trainer(GRID)
    progress = driver(study, storage, GRID, count=10).run(trainer)
    assert sorted(value for _, value in trainer.trained) == [0.1, 0.2]
    assert (progress.configurations, progress.done, progress.abandoned) == (2, 2, ())
    for trial in study.get_trials():
        assert trial.state.name == "COMPLETE" and trial.value == trial.params["learning_rate"]
        assert trial.user_attrs == {"wandb_run": f"s-{trial.number}", "checkpoint": None}
        assert WORKER in trial.system_attrs


def test_count_is_the_number_of_runs_of_the_whole_study():
    storage = open_storage(optuna, None)
    study = new_study(storage)
    first, second, third = Trainer(RANDOM), Trainer(RANDOM), Trainer(RANDOM)
    driver(study, storage, RANDOM, count=2).run(first)
    driver(study, storage, RANDOM, count=3).run(second)
    driver(study, storage, RANDOM, count=3).run(third)
    assert (len(first.trained), len(second.trained), len(third.trained)) == (2, 1, 0)
    assert [trial.state.name for trial in study.get_trials()] == ["COMPLETE"] * 3


def test_an_interrupted_run_is_given_back_and_run_again_by_the_next_worker(caplog):
    storage = open_storage(optuna, None)
    study = new_study(storage)
    with pytest.raises(KeyboardInterrupt):
        driver(study, storage, GRID, count=2).run(interrupted)
    (lost,) = study.get_trials()
    assert lost.state.name == "FAIL" and ERROR_ATTR not in lost.user_attrs

    trainer = Trainer(GRID)
    caplog.set_level(logging.WARNING, logger="neuromancer.trainers.sweep_driver")
    progress = driver(study, storage, GRID, count=2).run(trainer)
    trials = by_number(study)
    (rerun,) = [trial for trial in trials.values() if trial.system_attrs.get(FAILED_TRIAL) == lost.number]
    assert rerun.state.name == "COMPLETE" and rerun.params == lost.params
    assert rerun.system_attrs["retry_history"] == [lost.number]
    assert progress.done == 2 and len(trainer.trained) == 2
    assert f"run {lost.number} of configuration {lost.number} was lost" in caplog.text


def test_a_configuration_lost_more_than_max_retry_times_is_abandoned_and_reported(caplog):
    storage = open_storage(optuna, None)
    study = new_study(storage)
    for _ in range(2):  # lost once, then lost again on its single retry
        with pytest.raises(KeyboardInterrupt):
            driver(study, storage, RANDOM, count=1, max_retry=1).run(interrupted)
    caplog.set_level(logging.WARNING, logger="neuromancer.trainers.sweep_driver")
    trainer = Trainer(RANDOM)
    progress = driver(study, storage, RANDOM, count=1, max_retry=1).run(trainer)
    assert trainer.trained == []
    assert (progress.done, progress.abandoned) == (0, (0,))
    assert "0 of 1 configurations done; lost more than 1 times: trials [0]" in caplog.text


def test_a_run_whose_training_failed_is_a_result_and_not_run_again():
    storage = open_storage(optuna, None)
    study = new_study(storage)
    failing = Trainer(GRID, outcome="failed")
    assert driver(study, storage, GRID, count=2).run(failing).done == 2
    assert all(trial.state.name == "FAIL" and trial.user_attrs[ERROR_ATTR].startswith("FloatingPointError")
               for trial in study.get_trials())
    again = Trainer(GRID)
    driver(study, storage, GRID, count=2).run(again)
    assert again.trained == []


def test_a_point_queued_twice_by_racing_workers_is_trained_once():
    storage = open_storage(optuna, None)
    study = new_study(storage)
    point = optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params={"learning_rate": 0.1},
                                      distributions={"learning_rate": optuna.distributions.CategoricalDistribution(
                                          [0.1, 0.2])})
    study.add_trial(point)
    study.add_trial(point)
    trainer = Trainer(GRID)
    driver(study, storage, GRID, count=2).run(trainer)
    assert sorted(value for _, value in trainer.trained) == [0.1, 0.2]
    trials = by_number(study)
    assert trials[1].state.name == "FAIL" and trials[1].system_attrs[SKIPPED] == "trial 0 runs the same configuration"


def test_a_reached_target_stops_every_worker():
    config = {**RANDOM, "metric": {"name": "dev_loss", "goal": "minimize", "target": 1.0}}
    storage = open_storage(optuna, None)
    study = new_study(storage)
    first, second = Trainer(config), Trainer(config)
    assert driver(study, storage, config, count=5).run(first).target_reached
    driver(study, storage, config, count=5).run(second)
    assert (len(first.trained), len(second.trained)) == (1, 0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the dead worker below asks outside Study.optimize
def test_a_grid_worker_waits_for_a_dead_workers_point_and_runs_it_again(tmp_path):
    storage = open_storage(optuna, f"sqlite:///{tmp_path / 'sweep.db'}", heartbeat_interval=1, grace_period=2)
    study = new_study(storage)
    config = {"method": "grid", "parameters": {"learning_rate": {"values": [0.1]}}}
    # a worker takes the only point, sends one heartbeat and dies
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params={"learning_rate": 0.1},
        distributions={"learning_rate": optuna.distributions.CategoricalDistribution([0.1])}))
    dead = study.ask()
    dead_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), dead.number)
    storage.record_heartbeat(dead_id)
    storage.set_trial_system_attr(dead_id, WORKER, "elsewhere:1")

    trainer = Trainer(config)
    progress = driver(study, storage, config, count=1).run(trainer)
    trials = by_number(study)
    assert trials[0].state.name == "FAIL" and ERROR_ATTR not in trials[0].user_attrs
    assert trials[1].state.name == "COMPLETE" and trials[1].system_attrs[FAILED_TRIAL] == 0
    assert trainer.trained == [(1, 0.1)] and progress.done == 1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_that_no_worker_claimed_is_marked_lost_and_its_place_run(tmp_path):
    storage = open_storage(optuna, f"sqlite:///{tmp_path / 'sweep.db'}", heartbeat_interval=1, grace_period=2)
    study = new_study(storage)
    study.ask()  # created by a worker that died before its first heartbeat
    trainer = Trainer(RANDOM)
    driver(study, storage, RANDOM, count=1).run(trainer)
    trials = by_number(study)
    assert trials[0].state.name == "FAIL"
    assert trials[1].state.name == "COMPLETE" and trials[1].system_attrs[FAILED_TRIAL] == 0
    assert [number for number, _ in trainer.trained] == [1]


@pytest.mark.parametrize("arguments, match", [
    ({"state": "done", "value": 1.0}, "TrialOutcome.state is 'done'"),
    ({"state": "finished", "value": None}, "finished TrialOutcome needs a finite value"),
    ({"state": "finished", "value": float("nan")}, "finished TrialOutcome needs a finite value"),
])
def test_an_outcome_is_checked(arguments, match):
    with pytest.raises(SweepDriverError, match=match) as raised:
        TrialOutcome(**arguments)
    assert isinstance(raised.value, NeuromancerError) and isinstance(raised.value, ValueError)


def test_a_train_batch_must_return_one_outcome_per_trial():
    storage = open_storage(optuna, None)
    study = new_study(storage)
    with pytest.raises(SweepDriverError, match="returned 0 outcome"):
        driver(study, storage, RANDOM, count=1).run(lambda trials: [])
    (trial,) = study.get_trials()
    assert trial.state.name == "FAIL"  # given back, so another worker runs it
