"""Sweeps shared by several worker processes through a real PostgreSQL server.

Each test starts its own server (``postgres_server.PostgresServer``: a cluster in a temporary
folder on a free port) and real worker processes (``sweep_worker.py``), kills workers with
SIGKILL and stops the server as a cluster would, then reads the study back from the database.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from neuromancer.trainers.sweep_driver import ERROR_ATTR, FAILED_TRIAL, SKIPPED, WORKER

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from postgres_server import PostgresServer  # noqa: E402

WORKER_SCRIPT = HERE / "sweep_worker.py"
GRID_POINTS = {(lr, nsim) for lr in (0.01, 0.02, 0.05) for nsim in (32, 64)}
pytestmark = pytest.mark.slow


@pytest.fixture
def postgres():
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


class Workers:
    """Worker processes of one sweep, each logging to its own file under ``out``."""

    def __init__(self, storage, out):
        self.storage, self.out, self.processes = storage, out, []

    def start(self, *arguments):
        env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "WANDB_DIR": str(self.out),
               "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        log = open(self.out / f"worker-{len(self.processes)}.log", "w")
        process = subprocess.Popen([sys.executable, str(WORKER_SCRIPT), self.storage, str(self.out), *arguments],
                                   cwd=self.out, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def wait_until_training(self, process, timeout=180):
        """Wait until ``process`` is in the middle of a run."""
        marker = self.out / f"{process.pid}.training"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert process.poll() is None, f"the worker ended before training:\n{self.logs()}"
            assert time.monotonic() < deadline, f"the worker never started training:\n{self.logs()}"
            time.sleep(0.05)

    def finish(self, timeout=300):
        """Wait for every worker still alive; each must exit cleanly."""
        for process in self.processes:
            if process.returncode is None:
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    pytest.fail(f"a worker did not finish within {timeout} s:\n{self.logs()}")
                assert process.returncode == 0, f"worker {process.pid} failed:\n{self.logs()}"

    def rows(self):
        return [row for path in sorted(self.out.glob("*.json")) for row in json.loads(path.read_text())]

    def logs(self):
        return "\n".join(f"--- {path.name}\n{path.read_text()[-4000:]}" for path in sorted(self.out.glob("*.log")))

    def kill_all(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def workers(postgres, tmp_path):
    group = Workers(postgres.url, tmp_path)
    yield group
    group.kill_all()


def trained_trials(url, study_name):
    """The study's trials that a worker trained or is training (skipped ones never trained)."""
    study = optuna.load_study(study_name=study_name, storage=url)
    return [trial for trial in study.get_trials() if SKIPPED not in trial.system_attrs]


def assert_each_point_complete_once(trials, rows):
    complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
    points = collections.Counter((trial.params["learning_rate"], trial.params["nsim"]) for trial in complete)
    assert set(points) == GRID_POINTS and set(points.values()) == {1}, points
    assert not [trial.number for trial in trials if not trial.state.is_finished()]
    for trial in complete:  # the best weights can be found from the storage alone
        assert os.path.isabs(trial.user_attrs["checkpoint"]) and os.path.isfile(trial.user_attrs["checkpoint"])
    # every COMPLETE trial is a row of the worker that trained it, with the same checkpoint
    finished = {row["name"]: row["checkpoint"] for row in rows if row["state"] == "finished"}
    assert finished == {trial.user_attrs["wandb_run"]: trial.user_attrs["checkpoint"] for trial in complete}


def test_three_workers_share_a_grid_and_run_each_point_once(postgres, workers):
    for _ in range(3):
        workers.start("--method", "grid", "--count", "6")
    workers.finish()
    trials = trained_trials(postgres.url, "shared-grid")
    assert_each_point_complete_once(trials, workers.rows())
    assert len(trials) == 6, [(t.number, t.state.name) for t in trials]


def test_a_killed_workers_run_is_marked_failed_and_run_again(postgres, workers):
    options = ("--method", "grid", "--count", "6", "--epochs", "2", "--epoch-sleep", "0.5", "--grace", "5")
    victim = workers.start(*options)
    workers.start(*options)
    workers.wait_until_training(victim)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers.finish()

    trials = trained_trials(postgres.url, "shared-grid")
    assert_each_point_complete_once(trials, workers.rows())
    killed = [trial for trial in trials if trial.system_attrs[WORKER].endswith(f":{victim.pid}")
              and trial.state.name != "COMPLETE"]
    assert len(killed) == 1, [(t.number, t.state.name, t.system_attrs) for t in trials]
    (lost,) = killed
    assert lost.state.name == "FAIL" and ERROR_ATTR not in lost.user_attrs
    rerun = [trial for trial in trials if trial.system_attrs.get(FAILED_TRIAL) == lost.number]
    assert [trial.state.name for trial in rerun] == ["COMPLETE"]
    assert rerun[0].params == lost.params


def test_a_database_restart_mid_sweep_loses_nothing(postgres, workers):
    for _ in range(2):
        workers.start("--method", "grid", "--count", "6", "--epochs", "2", "--epoch-sleep", "0.5", "--grace", "30")
    workers.wait_until_training(workers.processes[0])
    postgres.stop()
    time.sleep(5)
    postgres.start()
    workers.finish()

    trials = trained_trials(postgres.url, "shared-grid")
    assert_each_point_complete_once(trials, workers.rows())
    assert len(trials) == 6, [(t.number, t.state.name) for t in trials]  # nothing lost, nothing run twice
    assert "cannot record heartbeats" in workers.logs()  # the outage was felt, and outlived


def test_a_random_sweep_shared_by_two_workers_makes_count_runs_in_all(postgres, workers):
    for _ in range(2):
        workers.start("--method", "random", "--count", "4")
    workers.finish()
    trials = trained_trials(postgres.url, "shared-random")
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 4
    rows = workers.rows()
    assert sorted(row["name"] for row in rows) == sorted(trial.user_attrs["wandb_run"] for trial in trials)
