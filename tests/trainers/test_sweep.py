"""Tests of LitTrainer.hyperparameter_sweep: offline (Optuna + offline wandb runs) and online (wandb agent).

Everything runs without a network: ``WANDB_MODE=offline`` and ``WANDB_DIR`` point wandb at the
test's folder; the online path replaces only ``wandb.sweep`` and ``wandb.agent``.
"""
import glob
import math
import os
import pickle
import sys

import lightning.pytorch as pl
import pytest
import torch
import wandb

from neuromancer.constraint import Objective, variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainers.lightning import LitTrainer
from neuromancer.trainers.sweep import SweepResult, resolve_sweep_mode

sys.path.insert(0, os.path.dirname(__file__))

from wandb_offline import offline_run_config, offline_run_dirs  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_wandb")

TRUE_WEIGHTS = torch.tensor([[1.5], [-2.0]])
DEV_SIZE = 32  # every swept batch size is >= DEV_SIZE, so the dev loss is one batch's loss


def dataset(n, name, seed, poison=False):
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    y = x @ TRUE_WEIGHTS
    if poison:
        y[0] = math.nan
    return DictDataset({"x": x, "y": y}, name=name)


def dev_batch():
    dev = dataset(DEV_SIZE, "dev", seed=2)
    return dev.collate_fn([dev[i] for i in range(len(dev))])


def dev_loss(problem):
    with torch.no_grad():
        return problem(dev_batch())["dev_loss"].item()


class DataSetup:
    """A data setup function taking any keyword, which remembers what each call received."""

    def __init__(self):
        self.calls = []

    def __call__(self, nsim=64, batch_size=32, poison=False, **options):
        self.calls.append({"nsim": nsim, "batch_size": batch_size, "poison": poison, **options})
        return dataset(nsim, "train", seed=1, poison=poison), dataset(DEV_SIZE, "dev", seed=2), None, batch_size


def strict_setup(nsim=64, batch_size=32):
    return dataset(nsim, "train", seed=1), dataset(DEV_SIZE, "dev", seed=2), None, batch_size


class Recorder(pl.Callback):
    """What every run's trainer really used: starting weights, optimizer, loaders, clipping, logger."""

    def __init__(self):
        self.starts = []

    def on_train_start(self, trainer, pl_module):
        self.starts.append({
            "weights": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "learning_rate": trainer.optimizers[0].param_groups[0]["lr"],
            "batch_size": trainer.train_dataloader.batch_size,
            "nsim": len(trainer.train_dataloader.dataset),
            "clip": trainer.gradient_clip_val,
            "max_epochs": trainer.max_epochs,
            "logger": type(trainer.logger).__name__,
            "run_config": dict(trainer.logger.experiment.config),
        })

    def on_train_end(self, trainer, pl_module):
        self.starts[-1]["epochs_trained"] = trainer.current_epoch


def make_problem():
    torch.manual_seed(0)
    net = Node(torch.nn.Linear(2, 1), ["x"], ["y_hat"], name="net")
    fit = Objective((variable("y_hat") - variable("y")) ** 2, name="fit")
    return Problem([net], PenaltyLoss([fit], []))


def make_trainer(recorder=None, **overrides):
    arguments = dict(epochs=2, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                     log_every_n_steps=1, num_sanity_val_steps=0, callbacks=[recorder] if recorder else [])
    return LitTrainer(**{**arguments, **overrides})


def in_run_order(result):
    return sorted(result, key=lambda run: int(run.name.rsplit("-", 1)[1]))


def assert_best_first_and_problem_holds_best(result, problem):
    metrics = [run.metric for run in result if run.succeeded]
    assert metrics == sorted(metrics)
    assert result.best is result[0]
    assert dev_loss(problem) == pytest.approx(result.best.metric, rel=1e-5)
    saved = torch.load(result.best.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    for key, value in problem.state_dict().items():
        torch.testing.assert_close(saved[f"problem.{key}"], value)


SWEEPS = {
    "random": {"method": "random", "parameters": {
        "learning_rate": {"min": 0.01, "max": 0.1},
        "batch_size": {"values": [32, 64]},
        "nsim": {"values": [64, 128]},
        "clip": {"value": 10.0},
        "options": {"parameters": {"width": {"values": [4, 8]}}},
    }},
    "grid": {"method": "grid", "parameters": {
        "learning_rate": {"values": [0.0, 0.05, 0.1]},
        "batch_size": {"value": 64},
        "clip": {"value": 10.0},
    }},
    "bayes": {"method": "bayes", "metric": {"name": "dev_loss", "goal": "minimize"}, "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.1},
        "batch_size": {"distribution": "q_uniform", "min": 32, "max": 64, "q": 32},
        "nsim": {"values": [64, 128]},
        "clip": {"value": 10.0},
    }},
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(SWEEPS))
def test_offline_sweep_runs_three_runs_and_leaves_the_best_weights(method, tmp_path):
    problem, recorder, setup = make_problem(), Recorder(), DataSetup()
    initial = {k: v.clone() for k, v in problem.state_dict().items()}
    initial_dev_loss = dev_loss(problem)
    result = make_trainer(recorder).hyperparameter_sweep(problem, setup, SWEEPS[method], count=3,
                                                         project_name="tiny", sweep_seed=0)

    assert isinstance(result, SweepResult)
    assert (result.mode, result.method, result.sweep_id, result.metric_name) == ("offline", method, "tiny", "dev_loss")
    assert len(result) == 3 and all(run.state == "finished" for run in result)
    assert_best_first_and_problem_holds_best(result, problem)

    # every run started from the weights the problem had when the sweep began
    assert len(recorder.starts) == 3
    for start in recorder.starts:
        for key, value in initial.items():
            torch.testing.assert_close(start["weights"][f"problem.{key}"], value)

    runs = in_run_order(result)
    for run, start, call in zip(runs, recorder.starts, setup.calls, strict=True):
        config = run.config
        assert start["learning_rate"] == pytest.approx(config["learning_rate"])
        assert start["batch_size"] == config["batch_size"] == call["batch_size"]
        assert start["nsim"] == config.get("nsim", 64) == call["nsim"]
        assert start["clip"] == 10.0
        assert start["logger"] == "WandbLogger"
        assert {k: start["run_config"][k] for k in config} == config
        assert call.get("options") == config.get("options")
        assert os.path.isfile(run.checkpoint)
        assert os.path.dirname(os.path.abspath(run.checkpoint)) == str(tmp_path / run.name)

    # wandb kept each run offline under WANDB_DIR, with the sampled values as its config
    run_dirs = offline_run_dirs(tmp_path)
    assert sorted(run.wandb_dir for run in result) == run_dirs
    for run in result:
        recorded = offline_run_config(run.wandb_dir)
        assert {k: recorded[k] for k in run.config} == run.config

    if method == "grid":
        assert sorted(run.config["learning_rate"] for run in result) == [0.0, 0.05, 0.1]
        (frozen,) = [run for run in result if run.config["learning_rate"] == 0.0]
        assert frozen.metric == pytest.approx(initial_dev_loss, rel=1e-5)
    text = str(result)
    assert "learning_rate" in text and all(run.name in text for run in result)


def fake_agent(configs, calls, tmp_path, monkeypatch):
    """Stand-in for wandb.agent: hands each run its values the way the real agent does (a
    parameter file named by WANDB_SWEEP_PARAM_PATH, a fresh wandb setup), then calls the run function."""
    def agent(sweep_id, function=None, entity=None, project=None, count=None, **rest):
        calls.append({"sweep_id": sweep_id, "entity": entity, "project": project, "count": count})
        import yaml

        for index, config in enumerate(configs[:count]):
            path = tmp_path / "agent" / f"config-agentrun{index}.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(yaml.safe_dump({key: {"value": value} for key, value in config.items()}))
            monkeypatch.setenv("WANDB_SWEEP_ID", sweep_id)
            monkeypatch.setenv("WANDB_RUN_ID", f"agentrun{index}")
            monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(path))
            wandb.teardown()  # as the real agent does, so the next wandb.init reads the new values
            function()

    return agent


@pytest.mark.slow
def test_online_sweep_creates_a_wandb_sweep_and_runs_it_through_an_agent(tmp_path, monkeypatch, caplog):
    sweeps, agents = [], []
    configs = [{"learning_rate": 0.05, "batch_size": 32}, {"learning_rate": 0.0, "batch_size": 64}]
    monkeypatch.setattr(wandb, "sweep", lambda sweep, entity=None, project=None, **rest:
                        sweeps.append({"sweep": sweep, "entity": entity, "project": project}) or "sw3ep")
    monkeypatch.setattr(wandb, "agent", fake_agent(configs, agents, tmp_path, monkeypatch))
    config = {"method": "bayes", "parameters": {"learning_rate": {"min": 0.0, "max": 0.1},
                                                 "batch_size": {"values": [32, 64]}}}
    problem, recorder = make_problem(), Recorder()
    initial_dev_loss = dev_loss(problem)
    caplog.set_level("INFO", logger="neuromancer.trainers.sweep")
    result = make_trainer(recorder).hyperparameter_sweep(problem, DataSetup(), config, count=2,
                                                         project_name="proj", sweep_mode="online")

    assert sweeps == [{"sweep": {**config, "metric": {"name": "dev_loss", "goal": "minimize"}},
                       "entity": None, "project": "proj"}]
    assert agents == [{"sweep_id": "sw3ep", "entity": None, "project": "proj", "count": 2}]
    assert "sweep_id='proj/sw3ep'" in caplog.text
    assert (result.mode, result.sweep_id) == ("online", "sw3ep")
    assert sorted(run.config["learning_rate"] for run in result) == [0.0, 0.05]
    assert [(s["learning_rate"], s["batch_size"]) for s in recorder.starts] == [(0.05, 32), (0.0, 64)]
    assert_best_first_and_problem_holds_best(result, problem)
    (frozen,) = [run for run in result if run.config["learning_rate"] == 0.0]
    assert frozen.metric == pytest.approx(initial_dev_loss, rel=1e-5)
    for index, run_config in enumerate(configs):
        (run_dir,) = glob.glob(str(tmp_path / "wandb" / f"offline-run-*-agentrun{index}"))
        assert {k: v for k, v in offline_run_config(run_dir).items() if k in run_config} == run_config


@pytest.mark.slow
def test_an_existing_wandb_sweep_is_joined_not_created(tmp_path, monkeypatch):
    agents = []
    monkeypatch.setattr(wandb, "sweep", lambda *a, **k: pytest.fail("a joined sweep must not be created again"))
    monkeypatch.setattr(wandb, "agent", fake_agent([{"learning_rate": 0.05}], agents, tmp_path, monkeypatch))
    config = {"method": "random", "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}
    result = make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=1, project_name="proj",
                                                 sweep_mode="online", sweep_id="team/proj/abc")
    assert agents[0]["sweep_id"] == "team/proj/abc"
    assert result.sweep_id == "team/proj/abc" and len(result) == 1


@pytest.mark.slow
def test_auto_mode_falls_back_to_offline_when_wandb_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)

    def unreachable(*args, **kwargs):
        raise wandb.errors.CommError("Network error (ConnectionError), entering retry loop")

    monkeypatch.setattr(wandb, "sweep", unreachable)
    monkeypatch.setattr(wandb, "agent", lambda *a, **k: pytest.fail("no agent without a sweep"))
    config = {"method": "random", "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}
    result = make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=1)
    assert result.mode == "offline" and len(result) == 1
    assert offline_run_dirs(tmp_path) == [result[0].wandb_dir]


def test_mode_detection_follows_wandb_mode_and_credentials(tmp_path, monkeypatch):
    assert resolve_sweep_mode() == "offline"  # WANDB_MODE=offline
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_sweep_mode() == "offline"  # no key anywhere
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_sweep_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_sweep_mode() == "offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY")
    (tmp_path / "no-netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    assert resolve_sweep_mode() == "online"
    assert resolve_sweep_mode("offline") == "offline"
    with pytest.raises(ValueError, match="sweep_mode is 'cloud'"):
        resolve_sweep_mode("cloud")


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    problem, setup = make_problem(), DataSetup()
    config = {"method": "grid", "parameters": {"poison": {"values": [True, False]}, "learning_rate": {"value": 0.05}}}
    result = make_trainer().hyperparameter_sweep(problem, setup, config, count=2, sweep_seed=0)
    assert [run.state for run in result] == ["finished", "failed"]
    assert result[0].config["poison"] is False and result[1].config["poison"] is True
    assert result[1].error.startswith("FloatingPointError:")
    assert "train_loss=nan is not finite" in result[1].error
    assert len(setup.calls) == 2
    assert dev_loss(problem) == pytest.approx(result.best.metric, rel=1e-5)
    assert "FloatingPointError" in str(result)


@pytest.mark.slow
def test_reaching_the_metric_target_stops_the_sweep():
    config = {"method": "random", "metric": {"name": "dev_loss", "goal": "minimize", "target": 1e9},
              "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}
    result = make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=3)
    assert len(result) == 1


@pytest.mark.slow
def test_hyperband_stops_runs_that_fall_behind_and_keeps_their_best_weights():
    recorder = Recorder()
    config = {"method": "random", "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2},
              "parameters": {"learning_rate": {"values": [0.0, 0.001, 0.1]}}}
    result = make_trainer(recorder, epochs=4).hyperparameter_sweep(make_problem(), DataSetup(), config, count=6,
                                                                   sweep_seed=0)
    pruned = [run for run in in_run_order(result) if run.state == "pruned"]
    assert pruned and all(run.metric is not None and os.path.isfile(run.checkpoint) for run in pruned)
    epochs = {run.name: start["epochs_trained"] for run, start in zip(in_run_order(result), recorder.starts, strict=True)}
    assert all(epochs[run.name] < 4 for run in pruned)
    assert result.best.state == "finished" and epochs[result.best.name] == 4


@pytest.mark.slow
def test_processes_sharing_a_journal_file_share_one_grid(tmp_path):
    journal = tmp_path / "sweep.journal"
    config = {"method": "grid", "name": "shared", "parameters": {"learning_rate": {"values": [0.0, 0.1]}}}
    first = make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=1, sweep_storage=journal)
    second = make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=5,
                                                 sweep_storage=str(journal))
    assert [run.name for run in first] == ["shared-0"] and [run.name for run in second] == ["shared-1"]
    assert {first[0].config["learning_rate"], second[0].config["learning_rate"]} == {0.0, 0.1}
    # the shared study knows the best run of all processes and where its weights are
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="shared", storage=storage)
    best = min([*first, *second], key=lambda run: run.metric)
    assert study.best_trial.user_attrs == {"wandb_run": best.name, "checkpoint": best.checkpoint}
    assert study.best_value == pytest.approx(best.metric)


@pytest.mark.slow
def test_a_sweep_runs_under_ddp_spawn(tmp_path):
    # Spawned workers unpickle the trainer with its callbacks (the sweep's monitor among them) and the
    # data setup function, so both come from importable modules; the best metric comes back from rank 0.
    sys.path.insert(0, os.path.dirname(__file__))
    from ddp_script import data_setup, scalar_problem, weight

    problem = scalar_problem()
    config = {"method": "grid", "parameters": {"learning_rate": {"values": [0.1]}}}
    trainer = make_trainer(devices=2, strategy="ddp_spawn", epochs=2)
    (run,) = trainer.hyperparameter_sweep(problem, data_setup, config, count=1, project_name="spawned")
    assert run.state == "finished", run.error
    # The weight starts at 0, where the dev loss is (0 - 0.5)^2; the problem holds the run's best weights.
    assert 0 < weight(problem) < 0.5 and run.metric < 0.25
    assert (weight(problem) - 0.5) ** 2 == pytest.approx(run.metric, rel=1e-5)


def test_a_sweep_monitor_pickles_without_its_trial():
    from neuromancer.trainers.sweep import SweepMonitor
    from neuromancer.trainers.sweep_config import parse_sweep_config

    plan = parse_sweep_config({"method": "random", "early_terminate": {"type": "hyperband", "min_iter": 1},
                               "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}, default_metric="dev_loss")
    monitor = SweepMonitor(plan, trial=object())
    copy = pickle.loads(pickle.dumps(monitor))
    assert copy.plan == plan and copy.trial is None and monitor.trial is not None


def test_run_cap_counts_the_runs_already_in_a_shared_sweep(tmp_path):
    journal = tmp_path / "capped.journal"
    config = {"method": "random", "run_cap": 1, "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}
    make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=1, sweep_storage=journal)
    again = make_trainer().hyperparameter_sweep(make_problem(), DataSetup(), config, count=3, sweep_storage=journal)
    assert len(again) == 0 and again.best is None
    assert "0 run(s)" in str(again)


GOOD = {"method": "random", "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}


@pytest.mark.parametrize("change, error, match", [
    ({"sweep_config": {"method": "random"}}, ValueError, "no 'parameters'"),
    ({"sweep_config": {**GOOD, "method": "evolution"}}, ValueError, r"\['method'\] is 'evolution'"),
    ({"sweep_config": {**GOOD, "parameters": {"dropout": {"values": [0.1]}}}}, ValueError,
     r"parameter 'dropout' is neither a keyword of strict_setup\(nsim=64, batch_size=32\), a LitTrainer argument"),
    ({"sweep_config": {**GOOD, "parameters": {"logger": {"value": None}}}}, ValueError, "'logger' cannot be swept"),
    ({"sweep_config": {"method": "grid", "parameters": {"learning_rate": {"min": 0.01, "max": 0.1}}}}, ValueError,
     "'learning_rate' uses distribution 'uniform'.*'grid' cannot enumerate"),
    ({"sweep_config": {**GOOD, "metric": {"name": "dev_loss", "goal": "maximize"}}}, ValueError, "lowest eval_metric"),
    ({"sweep_config": {**GOOD, "metric": {"name": "test_loss"}}}, ValueError,
     "eval_metric 'test_loss' is never logged"),
    ({"sweep_config": {**GOOD, "early_terminate": {"type": "hyperband", "min_iter": 1, "strict": True}}}, ValueError,
     "'strict'"),
    ({"count": 0}, ValueError, "count must be at least 1"),
    ({"count": 2.5}, TypeError, "count must be an integer"),
    ({"sweep_mode": "cloud"}, ValueError, "sweep_mode is 'cloud'"),
    ({"sweep_id": "abc"}, ValueError, "sweep_id='abc' joins an online wandb sweep, but this sweep would run offline"),
    ({"sweep_grace_period": 30, "sweep_heartbeat_interval": 60}, ValueError, "sweep_grace_period=30 must be longer"),
])
def test_bad_input_is_rejected_before_any_training(change, error, match, tmp_path):
    calls = []

    def recorded_setup(nsim=64, batch_size=32):
        calls.append(nsim)
        return strict_setup(nsim, batch_size)

    recorded_setup.__name__ = "strict_setup"
    arguments = {"sweep_config": GOOD, "count": 2, **change}
    with pytest.raises(error, match=match):
        make_trainer().hyperparameter_sweep(make_problem(), recorded_setup, **arguments)
    assert calls == [] and offline_run_dirs(tmp_path) == []


def test_a_parameter_may_go_to_a_data_setup_function_that_takes_any_keyword():
    config = {"method": "random", "parameters": {"dropout": {"values": [0.1]}}}
    setup = DataSetup()
    result = make_trainer(epochs=1).hyperparameter_sweep(make_problem(), setup, config, count=1)
    assert setup.calls[0]["dropout"] == 0.1 and result[0].state == "finished"


def test_an_object_without_constructor_arguments_is_refused():
    from neuromancer.trainers.sweep import hyperparameter_sweep

    with pytest.raises(TypeError, match="needs a LitTrainer"):
        hyperparameter_sweep(object(), make_problem(), strict_setup, GOOD)
