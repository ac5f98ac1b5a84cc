"""LitTrainer on clusters: which checkpoint a restart resumes from, SLURM requeue, torchrun restarts.

The fast tests check `neuromancer.trainers.lightning_cluster` and ``fit(ckpt_path='last')`` in
this process. The slow ones run Part 3 (``examples/lightning_integration_examples``) in quick mode
on a real one-node SLURM cluster (started by ``.ci/services``; see ``.ci/services.d/slurm.sh``) and
under real torchrun agents, stop it the way a cluster does (a requeue signal, a SIGKILLed worker, a
job killed mid-write) and check that the resumed run ends with the best dev loss of the
uninterrupted one. The uninterrupted reference is the sbatch job of the first test (module
fixture); two processes resumed from a checkpoint repeat its arithmetic, so the losses agree to
round-off (in practice to every printed digit).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest

from neuromancer.trainers.checkpoint_io import save_atomically
from neuromancer.trainers.lightning_cluster import (
    latest_checkpoint,
    newest_hpc_checkpoint,
    next_hpc_checkpoint,
    slurm_job_id,
)
from neuromancer.utils import read_checkpoint

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from ddp_script import data_setup, scalar_problem  # noqa: E402
from lit_helpers import sgd_trainer  # noqa: E402

ROOT = HERE.parents[1]
TUTORIALS = ROOT / "examples" / "lightning_integration_examples"
PART3 = TUTORIALS / "Part_3_multi_GPU_example.py"
PART3_SLURM = TUTORIALS / "Part_3_slurm.sh"
# Long enough that a signal sent after the first checkpoint reaches a run still training.
EPOCHS = 120
JOB_TIMEOUT = 600
# One process and two take the same full-batch steps up to float32 round-off (Part 3's own check).
ONE_PROCESS_TOLERANCE = 1e-3
# A resumed two-process run repeats the uninterrupted two-process run's arithmetic.
RESUME_TOLERANCE = 1e-6

pytestmark = pytest.mark.usefixtures("in_tmp_path")


# --- which checkpoint a restart resumes from ------------------------------------------------------

def test_latest_checkpoint_is_the_most_recently_written_existing_file(tmp_path):
    older, newer = tmp_path / "last.ckpt", tmp_path / "hpc_ckpt_1.ckpt"
    older.write_bytes(b"a")
    newer.write_bytes(b"b")
    os.utime(older, (1000, 1000))
    os.utime(newer, (2000, 2000))
    assert latest_checkpoint([older, None, tmp_path / "missing.ckpt", newer]) == str(newer)
    os.utime(newer, (1000, 1000))
    assert latest_checkpoint([older, newer]) == str(older)  # a tie goes to the first listed
    assert latest_checkpoint([None, tmp_path / "missing.ckpt"]) is None


def test_requeue_checkpoints_are_numbered_like_lightnings(tmp_path):
    assert newest_hpc_checkpoint(tmp_path / "absent") is None
    assert next_hpc_checkpoint(tmp_path) == str(tmp_path / "hpc_ckpt_1.ckpt")
    for name in ("hpc_ckpt_2.ckpt", "hpc_ckpt_10.ckpt", "hpc_ckpt_x.ckpt", "last.ckpt"):
        (tmp_path / name).write_bytes(b"")
    assert newest_hpc_checkpoint(tmp_path) == str(tmp_path / "hpc_ckpt_10.ckpt")
    assert next_hpc_checkpoint(tmp_path) == str(tmp_path / "hpc_ckpt_11.ckpt")


def test_the_job_to_requeue_is_the_array_task_or_the_job(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    assert slurm_job_id() is None
    monkeypatch.setenv("SLURM_JOB_ID", "812")
    assert slurm_job_id() == "812"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "800")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    assert slurm_job_id() == "800_12"


class Record(pl.Callback):
    """Record the epochs that ran."""

    def __init__(self):
        self.epochs = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(trainer.current_epoch)


def recorded_epochs(problem, epochs, **fit_options):
    """Train the scalar problem with SGD (lr 0.1, one step an epoch) in ./weights; return the epochs that ran."""
    record = Record()
    sgd_trainer(problem, epochs=epochs, weight_path="weights", callbacks=[record]).fit(problem, data_setup,
                                                                                       **fit_options)
    return record.epochs


def test_in_a_slurm_job_a_restart_resumes_from_the_newer_of_last_ckpt_and_the_requeue_checkpoint(tmp_path,
                                                                                                  monkeypatch):
    # What srun sets for a one-task job: Lightning then detects a SLURM environment.
    for name, value in {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "resume-test",
                        "SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
                        "SLURM_NNODES": "1", "SLURM_NODELIST": "localhost"}.items():
        monkeypatch.setenv(name, value)
    last, requeue = tmp_path / "weights" / "last.ckpt", tmp_path / "hpc_ckpt_1.ckpt"
    recorded_epochs(scalar_problem(), 2)
    shutil.copy(last, tmp_path / "after_epoch_1.ckpt")
    recorded_epochs(scalar_problem(), 4, ckpt_path="last")
    shutil.move(last, requeue)  # the state after epoch 3, as a requeue saves it
    shutil.copy(tmp_path / "after_epoch_1.ckpt", last)

    os.utime(last, (1000, 1000))  # the requeue checkpoint is the newer one
    assert recorded_epochs(scalar_problem(), 6, ckpt_path="last") == [4, 5]
    os.utime(requeue, (1000, 1000))
    shutil.copy(tmp_path / "after_epoch_1.ckpt", last)  # now last.ckpt is
    assert recorded_epochs(scalar_problem(), 6, ckpt_path="last") == [2, 3, 4, 5]
    # Lightning's own convention: in a SLURM job, fit without ckpt_path resumes from the requeue checkpoint
    assert recorded_epochs(scalar_problem(), 6) == [4, 5]


# --- real clusters --------------------------------------------------------------------------------

def losses_by_processes(output):
    """Part 3's result table as {number of processes: best dev loss}."""
    rows = re.findall(r"^\s+(\d+) \|\s+\d+ \|\s+[.\w]+ \|\s+([-.\d]+)$", output, re.M)
    return {int(processes): float(loss) for processes, loss in rows}


def wait_until(condition, timeout, what, alive=lambda: True):
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds or once ``alive()`` is false."""
    deadline = time.monotonic() + timeout
    while not condition():
        if not alive():
            pytest.fail(f"gave up waiting for {what}: the process or job ended first")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def slurm():
    """The one-node SLURM cluster `.ci/services` starts; fail (never skip) when it is not running."""
    try:
        state = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("SLURM is not installed: run `bash .ci/services` (as root) first, as .ci/run does.")
    if state.returncode != 0 or not re.search(r"idle|mixed|allocated", state.stdout):
        pytest.fail(f"the SLURM cluster does not take jobs ({state.stdout.strip()} {state.stderr.strip()}): run "
                    "`bash .ci/services` first, as .ci/run does.")


def job_state(job):
    """``JobState`` and ``Restarts`` of a SLURM job, as `scontrol` reports them."""
    shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job], capture_output=True, text=True,
                           timeout=60).stdout
    fields = dict(re.findall(r"(\w+)=(\S*)", shown))
    return fields.get("JobState", "UNKNOWN"), int(fields.get("Restarts", "0"))


def submit(directory, *arguments):
    """Submit Part_3_slurm.sh from ``directory`` with these arguments; return the job id and its output file."""
    environment = dict(os.environ, PYTHON=sys.executable, NEUROMANCER_QUICK="1", CUDA_VISIBLE_DEVICES="")
    submitted = subprocess.run(["sbatch", "--parsable", "--chdir", str(directory), "--output",
                                str(directory / "slurm-%j.out"), "--ntasks-per-node=2", str(PART3_SLURM),
                                "--accelerator", "cpu", "--devices", "2", "--quick", "--out", str(directory / "out"),
                                *arguments], capture_output=True, text=True, timeout=60, env=environment)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    return job, directory / f"slurm-{job}.out"


def finished_job(job, output):
    """Wait until the job has ended; return its output, failing unless it COMPLETED."""
    def ended():
        return job_state(job)[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")

    try:
        wait_until(ended, JOB_TIMEOUT, f"SLURM job {job} to end")
    finally:
        if not ended():
            subprocess.run(["scancel", job], timeout=60)
    text = output.read_text() if output.exists() else ""
    assert job_state(job)[0] == "COMPLETED", text[-4000:]
    return text


@pytest.fixture(scope="module")
def uninterrupted(slurm, tmp_path_factory):
    """Part 3's sbatch script on 2 tasks, run to the end: its output and its best dev losses by process count."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    job, output = submit(directory, "--epochs", str(EPOCHS))
    text = finished_job(job, output)
    return text, losses_by_processes(text)


@pytest.mark.slow
def test_the_sbatch_script_on_two_tasks_ends_with_the_one_process_best_dev_loss(uninterrupted):
    text, losses = uninterrupted
    assert set(losses) == {1, 2}, text[-4000:]
    assert losses[2] == pytest.approx(losses[1], rel=ONE_PROCESS_TOLERANCE)
    assert "same best dev loss" in text and "job " in text and ", start 1," in text
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in text  # two SLURM tasks, one group


@pytest.mark.slow
def test_a_requeued_slurm_job_resumes_and_ends_with_the_uninterrupted_best_dev_loss(uninterrupted, tmp_path):
    job, output = submit(tmp_path, "--epochs", str(EPOCHS))
    first_checkpoint = tmp_path / "out" / "run_2" / "weights" / "last.ckpt"
    wait_until(first_checkpoint.exists, JOB_TIMEOUT, "the first checkpoint",
               alive=lambda: job_state(job)[0] in ("PENDING", "RUNNING", "CONFIGURING"))
    subprocess.run(["scancel", "--signal=USR1", job], check=True, timeout=60)

    text = finished_job(job, output)
    requeue_checkpoint = tmp_path / "out" / "run_2" / "hpc_ckpt_1.ckpt"
    assert job_state(job)[1] == 1, text[-4000:]  # requeued once
    assert ", start 2," in text and requeue_checkpoint.exists()
    assert f"Restoring states from the checkpoint path at {requeue_checkpoint}" in text
    # rank 0 alone wrote, atomically: no second copy, no temporary file left behind
    assert sorted(os.listdir(tmp_path / "out" / "run_2" / "weights")) == ["best.ckpt", "last.ckpt"]
    saved_epoch = read_checkpoint(requeue_checkpoint)["epoch"]
    assert 0 <= saved_epoch < EPOCHS - 1  # saved at the end of an epoch, before the run was over
    losses = losses_by_processes(text)
    assert losses[2] == pytest.approx(uninterrupted[1][2], rel=RESUME_TOLERANCE)
    assert losses[1] == pytest.approx(uninterrupted[1][1], rel=RESUME_TOLERANCE)


def worker_pids(agent):
    """Process ids of the workers a torchrun agent started (its child processes)."""
    path = Path(f"/proc/{agent}/task/{agent}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_the_group_resumes_to_the_uninterrupted_result(uninterrupted,
                                                                                          tmp_path):
    out = tmp_path / "out"
    log = (tmp_path / "torchrun.log").open("w")
    agent = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                              "--max-restarts", "1", str(PART3), "--accelerator", "cpu", "--devices", "2", "--quick",
                              "--epochs", str(EPOCHS), "--out", str(out), "--resume"],
                             cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, NEUROMANCER_QUICK="1", CUDA_VISIBLE_DEVICES=""))
    try:
        wait_until((out / "run_2" / "weights" / "last.ckpt").exists, JOB_TIMEOUT, "the first checkpoint",
                   alive=lambda: agent.poll() is None)
        workers = worker_pids(agent.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # rank 0, the one that writes the checkpoints
        returncode = agent.wait(timeout=JOB_TIMEOUT)
    finally:
        if agent.poll() is None:
            for pid in worker_pids(agent.pid):
                os.kill(pid, signal.SIGKILL)
            agent.kill()
            agent.wait(timeout=60)
        log.close()
    text = (tmp_path / "torchrun.log").read_text()
    assert returncode == 0, text[-4000:]
    assert f"Restoring states from the checkpoint path at {out / 'run_2' / 'weights' / 'last.ckpt'}" in text
    losses = losses_by_processes(text)
    assert losses[2] == pytest.approx(uninterrupted[1][2], rel=RESUME_TOLERANCE)
    assert "same best dev loss" in text


def free_port():
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_agents_as_two_nodes_end_with_the_one_process_best_dev_loss(tmp_path):
    port = free_port()
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
                                "1", "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port",
                                str(port), str(PART3), "--accelerator", "cpu", "--devices", "1", "--num-nodes", "2",
                                "--quick", "--out", str(tmp_path / "out")],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, NEUROMANCER_QUICK="1", CUDA_VISIBLE_DEVICES=""))
              for rank in (0, 1)]
    try:
        outputs = [agent.communicate(timeout=JOB_TIMEOUT)[0] for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
            agent.wait(timeout=60)
    assert [agent.returncode for agent in agents] == [0, 0], "\n".join(text[-3000:] for text in outputs)
    losses = losses_by_processes(outputs[0])  # global rank 0 (node 0) runs the reference and reports
    assert set(losses) == {1, 2}, outputs[0][-4000:]
    assert losses[2] == pytest.approx(losses[1], rel=ONE_PROCESS_TOLERANCE)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]


@pytest.mark.slow
def test_a_slurm_job_killed_while_writing_a_checkpoint_leaves_the_previous_one_loadable(slurm, tmp_path):
    target = tmp_path / "last.ckpt"
    output = tmp_path / "writer.out"
    job = subprocess.run(["sbatch", "--parsable", "--chdir", str(tmp_path), "--output", str(output), "--ntasks=1",
                          f"--wrap=srun {sys.executable} {HERE / 'fault_kill_save.py'} {target}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip().split(";")[0]
    try:
        wait_until(lambda: output.exists() and "saved" in output.read_text(), JOB_TIMEOUT, "the first checkpoint",
                   alive=lambda: job_state(job)[0] in ("PENDING", "RUNNING", "CONFIGURING"))
        small_size = target.stat().st_size
        # Kill the job as soon as a write of the large checkpoint is under way.
        wait_until(lambda: any(p.name.endswith(".partial") and p.stat().st_size > 0 for p in tmp_path.iterdir())
                   or target.stat().st_size != small_size, JOB_TIMEOUT, "a large checkpoint write")
    finally:
        subprocess.run(["scancel", "--signal=KILL", "--full", job], timeout=60)
        subprocess.run(["scancel", job], timeout=60)
    wait_until(lambda: job_state(job)[0] not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"), JOB_TIMEOUT,
               f"SLURM job {job} to end")

    checkpoint = read_checkpoint(target)  # complete: the first checkpoint or, had a rename won the race, a later one
    assert checkpoint["epoch"] in (1, 2)
    assert checkpoint["state_dict"]["problem.w"].numel() == (4 if checkpoint["epoch"] == 1 else 32 * 1024 * 1024)
    save_atomically({"epoch": 3}, target)  # the next save clears what the killed one left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "writer.out"]
    assert read_checkpoint(target) == {"epoch": 3}
