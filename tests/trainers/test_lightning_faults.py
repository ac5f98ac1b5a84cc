"""LitTrainer under faults: Ctrl-C, resuming, non-finite losses, reproducibility, DDP, untrusted checkpoints, disks.

Most tests train the one-weight problem of `ddp_script`, whose SGD trajectory is known in closed
form; resuming and reproducibility use a small regression with Adam and shuffled mini-batches,
where any lost state (optimizer moments, random generators, counters) changes the weights.
Scenarios that could hang or that need a real signal or a killed process run in subprocesses
(`fault_ddp`, `fault_interrupt`, `fault_kill_save`), each bounded by a timeout.
"""
import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from neuromancer.trainers.checkpoint_io import AtomicCheckpointIO, save_atomically
from neuromancer.trainers.lightning import LitTrainer, UnwritableDirectoryError
from neuromancer.utils import CorruptCheckpointError, UnsafeCheckpointError, load_state_dict_lightning, read_checkpoint

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from ddp_script import data_setup, expected_trajectory, scalar_problem, weight  # noqa: E402
from fault_ddp import FAILURE_MESSAGE, regression_problem, regression_setup  # noqa: E402
from lit_helpers import QUIET, sgd_trainer  # noqa: E402

# Every test runs in its own directory, where lightning_logs/ and checkpoints land.
pytestmark = pytest.mark.usefixtures("in_tmp_path")

SUBPROCESS_TIMEOUT = 150
# Two processes each summing half of the gradient (then averaging) round differently from one
# process summing all of it: float32 round-off, far below this bound, separates the two runs.
DDP_TOLERANCE = 1e-6
# A resumed run repeats the uninterrupted run's arithmetic; on the CPU in deterministic mode the
# results agree to round-off (in practice bit for bit).
RESUME_TOLERANCE = 1e-6


class EpochRecorder(pl.Callback):
    """Record the epochs that ran and the weight at the end of each."""

    def __init__(self):
        self.epochs, self.weights = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(trainer.current_epoch)
        self.weights.append(weight(pl_module.problem))


class InterruptAt(pl.Callback):
    """Raise KeyboardInterrupt (what Ctrl-C raises) when epoch ``epoch`` starts."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def states_close(first, second, tolerance):
    """Whether two state dicts have the same keys and values within ``tolerance``."""
    return first.keys() == second.keys() and all(
        torch.allclose(first[k], second[k], rtol=0, atol=tolerance) for k in first)


# --- Ctrl-C -------------------------------------------------------------------------------------

def test_ctrl_c_ends_fit_cleanly_with_the_best_weights_in_the_problem_and_on_disk(tmp_path, caplog):
    # From w = 0.5 the dev loss rises every epoch, so epoch 0 holds the best weights.
    problem, recorder = scalar_problem(w0=0.5), EpochRecorder()
    handler = signal.getsignal(signal.SIGINT)
    trainer = sgd_trainer(problem, epochs=10, weight_name="best", callbacks=[recorder, InterruptAt(3)])
    with caplog.at_level(logging.WARNING):
        trainer.fit(problem, data_setup)

    best = expected_trajectory(1, 1, 0.1, w0=0.5)[0][0]
    assert recorder.epochs == [0, 1, 2]
    assert weight(problem) == pytest.approx(best)
    assert trainer.get_weights()["nodes.0.callable.w"].item() == pytest.approx(best)
    saved = scalar_problem(w0=9.0)
    load_state_dict_lightning(saved, tmp_path / "best.ckpt")
    assert weight(saved) == pytest.approx(best)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C works again afterwards
    message = caplog.text
    assert "interrupted by Ctrl-C at epoch 3" in message and "from epoch 0" in message
    assert str(tmp_path / "best.ckpt") in message and "ckpt_path='last'" in message


class InterruptTest(pl.Callback):
    """Raise KeyboardInterrupt (what Ctrl-C raises) when the test loop starts."""

    def on_test_start(self, trainer, pl_module):
        raise KeyboardInterrupt


def test_ctrl_c_in_test_raises_keyboard_interrupt_and_leaves_ctrl_c_working():
    # Lightning answers Ctrl-C by ignoring SIGINT from then on: the process (a notebook's kernel),
    # and every process it started afterwards, would ignore the next Ctrl-C.
    handler = signal.getsignal(signal.SIGINT)
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=1, save_weights=False, callbacks=[InterruptTest()])
    trainer.fit(problem, data_setup)
    with pytest.raises(KeyboardInterrupt):
        trainer.test(verbose=False)
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.slow
@pytest.mark.parametrize("parent_sigint", [signal.default_int_handler, signal.SIG_IGN], ids=["default", "ignored"])
def test_a_real_sigint_ends_fit_cleanly(parent_sigint, tmp_path):
    # A child inherits an ignored SIGINT: CI may start the suite in the background from a
    # non-interactive shell, which ignores SIGINT (the child then once trained all 10 epochs).
    handler = signal.signal(signal.SIGINT, parent_sigint)
    try:
        run = subprocess.run([sys.executable, str(HERE / "fault_interrupt.py"), str(tmp_path / "out.json")],
                             cwd=tmp_path, timeout=SUBPROCESS_TIMEOUT, capture_output=True, text=True)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["weight"] == pytest.approx(expected_trajectory(1, 1, 0.1, w0=0.5)[0][0])
    assert result["sigint_is_default"] and result["epoch"] == 3
    assert Path(result["best_path"]) == tmp_path / "best.ckpt"


def test_an_error_other_than_ctrl_c_still_propagates_with_the_best_weights_restored():
    class Explode(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise RuntimeError("disk on fire")

    problem = scalar_problem(w0=0.5)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sgd_trainer(problem, epochs=5, callbacks=[Explode()]).fit(problem, data_setup)
    assert weight(problem) == pytest.approx(expected_trajectory(1, 1, 0.1, w0=0.5)[0][0])


# --- resuming -----------------------------------------------------------------------------------

def test_resuming_from_last_keeps_early_stopping_and_best_weight_state(tmp_path):
    # SGD from w = 0: the dev loss is lowest after epoch 2 and rises afterwards, so with patience 3
    # an uninterrupted run trains epochs 0-5 and ends with the weights of epoch 2.
    weights, dev_losses = expected_trajectory(10, 1, 0.1)
    assert min(range(10), key=dev_losses.__getitem__) == 2
    received = {}

    def setup(**kwargs):
        received.update(kwargs)
        return data_setup(**kwargs)

    first = scalar_problem()
    sgd_trainer(first, epochs=10, patience=3, weight_name="best", callbacks=[InterruptAt(4)]).fit(first, setup)
    assert weight(first) == pytest.approx(weights[2], rel=1e-5)

    resumed, recorder = scalar_problem(w0=7.0), EpochRecorder()
    trainer = sgd_trainer(resumed, epochs=10, patience=3, weight_name="best", callbacks=[recorder])
    trainer.fit(resumed, setup, ckpt_path="last", nsim=8)
    assert received == {"nsim": 8}  # ckpt_path is fit's own keyword
    assert recorder.epochs == [4, 5]  # patience counted across the interruption
    assert recorder.weights == pytest.approx(weights[4:6], rel=1e-5)  # continued from epoch 3's weights
    assert weight(resumed) == pytest.approx(weights[2], rel=1e-5)  # epoch 2 is still the best
    assert Path(trainer.checkpoint_callback.best_model_path) == tmp_path / "best.ckpt"


def regression_run(epochs, seed=0, callbacks=(), **fit_options):
    """Seed, build the regression problem with random initial weights, and train it with Adam on
    shuffled mini-batches of 4 (deterministic mode); return the problem and its trainer."""
    pl.seed_everything(seed)
    problem = regression_problem()
    with torch.no_grad():
        for parameter in problem.parameters():
            parameter.normal_()
    trainer = LitTrainer(epochs=epochs, weight_path="weights", deterministic=True, logger=False,
                         callbacks=list(callbacks), **QUIET)
    trainer.fit(problem, regression_setup, batch_size=4, **fit_options)
    return problem, trainer


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    whole, _ = regression_run(epochs=6)
    uninterrupted = {k: v.clone() for k, v in whole.state_dict().items()}
    last_of_whole = read_checkpoint(tmp_path / "weights" / "last.ckpt")

    regression_run(epochs=6, callbacks=[InterruptAt(3)])
    resumed, _ = regression_run(epochs=6, ckpt_path=tmp_path / "weights" / "last.ckpt")

    assert states_close(resumed.state_dict(), uninterrupted, RESUME_TOLERANCE)
    last = read_checkpoint(tmp_path / "weights" / "last.ckpt")
    assert last["epoch"] == last_of_whole["epoch"]
    assert states_close(last["state_dict"], last_of_whole["state_dict"], RESUME_TOLERANCE)
    optimizer_state = last["optimizer_states"][0]["state"]
    expected_state = last_of_whole["optimizer_states"][0]["state"]
    assert all(states_close(optimizer_state[i], expected_state[i], RESUME_TOLERANCE) for i in expected_state)
    # the whole training state travels in the (weights-only loadable) checkpoint
    assert {"RandomState", "BestWeights[monitor=dev_loss]"} <= set(last["callbacks"])


def test_ckpt_path_last_without_a_checkpoint_starts_afresh_with_a_warning_and_then_resumes(tmp_path, caplog):
    # One command line for the first start and every restart, as in Lightning: no last.ckpt yet is no error.
    weights = expected_trajectory(5, 1, 0.1)[0]
    first, recorder = scalar_problem(), EpochRecorder()
    with caplog.at_level(logging.WARNING):
        sgd_trainer(first, epochs=3, weight_path=str(tmp_path / "nowhere"), callbacks=[recorder]).fit(
            first, data_setup, ckpt_path="last")
    assert recorder.epochs == [0, 1, 2] and recorder.weights == pytest.approx(weights[:3], rel=1e-5)
    missing = tmp_path / "nowhere" / "last.ckpt"
    assert f"ckpt_path='last': there is no {missing} yet, so training starts afresh" in caplog.text

    again, recorder = scalar_problem(w0=5.0), EpochRecorder()
    sgd_trainer(again, epochs=5, weight_path=str(tmp_path / "nowhere"), callbacks=[recorder]).fit(
        again, data_setup, ckpt_path="last")
    assert recorder.epochs == [3, 4] and recorder.weights == pytest.approx(weights[3:], rel=1e-5)


def test_ckpt_path_naming_a_missing_file_raises(tmp_path):
    trainer = sgd_trainer(scalar_problem(), epochs=1)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.ckpt"))):
        trainer.fit(scalar_problem(), data_setup, ckpt_path=tmp_path / "missing.ckpt")


def test_last_checkpoint_name_is_reserved():
    with pytest.raises(ValueError, match="weight_name 'last' is reserved"):
        LitTrainer(weight_name="last")


# --- non-finite losses --------------------------------------------------------------------------

def nonfinite_on_calls(bad_calls, value):
    """A custom training step returning the problem's loss, except ``value`` on the given (1-based) calls."""
    calls = []

    def step(model, batch):
        calls.append(len(calls) + 1)
        loss = model.problem(batch)["train_loss"]
        return loss * value if calls[-1] in bad_calls else loss

    return step, calls


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_training_stops_at_the_first_nonfinite_step_and_names_epoch_step_and_metric(value, shown, caplog):
    # 4 batches per epoch: call 10 is epoch 2, batch 1, after 9 SGD steps.
    step, calls = nonfinite_on_calls({10}, value)
    problem, recorder = scalar_problem(), EpochRecorder()
    trainer = sgd_trainer(problem, epochs=5, custom_training_step=step, callbacks=[recorder])
    with caplog.at_level(logging.WARNING):
        trainer.fit(problem, data_setup, nsim=8, batch_size=2)

    assert calls == list(range(1, 11))  # nothing ran after the bad step
    assert recorder.epochs == [0, 1, 2]
    assert recorder.weights[-1] == pytest.approx(1.0 - 0.8 ** 9, rel=1e-5)  # its update was not applied
    assert f"Stopping at epoch 2, batch 1 (global step 9): train_loss={shown} is not finite" in caplog.text
    assert trainer.stopped_on_nonfinite == f"epoch 2, batch 1 (global step 9): train_loss={shown} is not finite"
    weights, dev_losses = expected_trajectory(2, steps_per_epoch=4, lr=0.1)
    assert weight(problem) == pytest.approx(weights[min(range(2), key=dev_losses.__getitem__)], rel=1e-5)


def test_skip_mode_skips_nonfinite_steps_and_trains_on(caplog):
    step, calls = nonfinite_on_calls({2, 3}, float("nan"))
    problem, recorder = scalar_problem(), EpochRecorder()
    trainer = sgd_trainer(problem, lr=0.05, epochs=2, custom_training_step=step, nonfinite="skip",
                          callbacks=[recorder])
    with caplog.at_level(logging.WARNING):
        trainer.fit(problem, data_setup, nsim=8, batch_size=2)

    assert len(calls) == 8 and trainer.lightning_module.skipped_steps == 2
    assert trainer.stopped_on_nonfinite is None
    assert recorder.weights == pytest.approx([1.0 - 0.9 ** 2, 1.0 - 0.9 ** 6], rel=1e-5)
    assert "Skipping the step at epoch 0, batch 1 (global step 1): train_loss=nan" in caplog.text
    assert "Skipped 2 steps of epoch 0" in caplog.text
    assert weight(problem) == pytest.approx(1.0 - 0.9 ** 6, rel=1e-5)  # the best: after the six finite steps


def test_nonfinite_mode_must_be_stop_or_skip():
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        LitTrainer(nonfinite="ignore")


# --- reproducibility ----------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_weights_twice():
    first = regression_run(epochs=3, seed=5)[0].state_dict()
    second = regression_run(epochs=3, seed=5)[0].state_dict()
    other = regression_run(epochs=3, seed=6)[0].state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_sweep_twice(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    pytest.importorskip("optuna")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("DIR", "CONFIG_DIR", "CACHE_DIR", "DATA_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / name.lower()))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    config = {"method": "random", "parameters": {"learning_rate": {"min": 0.001, "max": 0.1},
                                                 "batch_size": {"values": [2, 4, 8]}}}

    def sweep():
        pl.seed_everything(3)
        problem = regression_problem()
        trainer = LitTrainer(epochs=2, deterministic=True, num_sanity_val_steps=0, **QUIET)
        result = trainer.hyperparameter_sweep(problem, regression_setup, config, count=2, project_name="seeded",
                                              sweep_seed=0)
        wandb.teardown()
        return [run.config for run in result], problem.state_dict()

    try:
        (configs, first), (configs_again, second) = sweep(), sweep()
    finally:
        wandb.teardown()
    assert configs == configs_again
    assert all(torch.equal(first[k], second[k]) for k in first)


# --- multi-process runs -------------------------------------------------------------------------

def free_port():
    """A TCP port no one listens on now, for one run's MASTER_PORT."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ddp_script(tmp_path, strategy, mode):
    """Run `fault_ddp` on two CPU processes; return the finished process (bounded by a timeout)."""
    environment = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    return subprocess.run([sys.executable, str(HERE / "fault_ddp.py"), strategy, mode, str(tmp_path / "out.json")],
                          cwd=tmp_path, env=environment, timeout=SUBPROCESS_TIMEOUT, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_two_processes_agree_with_one_process_on_the_same_global_batch(strategy, tmp_path):
    from fault_ddp import train

    reference = train(regression_problem())
    run = run_ddp_script(tmp_path, strategy, "train")
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["dev_loss"] == pytest.approx(reference["dev_loss"], rel=DDP_TOLERANCE)
    assert result["weights"].keys() == reference["weights"].keys()
    for key, value in reference["weights"].items():
        assert torch.allclose(torch.tensor(result["weights"][key]), torch.tensor(value), rtol=0, atol=DDP_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_a_failing_worker_ends_the_whole_run_with_its_error(strategy, tmp_path):
    started = time.monotonic()
    run = run_ddp_script(tmp_path, strategy, "fail")  # a hang would raise TimeoutExpired here
    assert run.returncode != 0
    assert f"WorkerFailure: {FAILURE_MESSAGE}" in run.stderr
    assert not (tmp_path / "out.json").exists()
    assert time.monotonic() - started < SUBPROCESS_TIMEOUT


@pytest.mark.slow
def test_a_nonfinite_loss_on_one_process_stops_every_process_at_that_step(tmp_path):
    run = run_ddp_script(tmp_path, "ddp", "nan")  # processes that disagreed would wait for each other forever
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["stopped_on_nonfinite"].startswith("epoch 1, batch 0 (global step 1): train_loss=")
    assert result["epoch"] <= 2


# --- untrusted and damaged checkpoints ----------------------------------------------------------

class RunsCodeWhenUnpickled:
    """Unpickling this creates the file ``marker``: stands in for any code an attacker could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_malicious(path, marker, layout):
    """A file that looks like a LitTrainer checkpoint but runs code when fully unpickled."""
    content = {"state_dict": {"problem.nodes.0.callable.w": torch.zeros(1)}, "epoch": 1,
               "hyper_parameters": RunsCodeWhenUnpickled(marker)}
    if layout == "zip":
        torch.save(content, path)
    elif layout == "legacy":
        torch.save(content, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as handle:
            pickle.dump(content, handle)


def load_with_trainer(path):
    problem = scalar_problem()
    sgd_trainer(problem, epochs=1).fit(problem, data_setup, ckpt_path=path)


LOADERS = {
    "load_state_dict_lightning": lambda path: load_state_dict_lightning(scalar_problem(), path),
    "fit_ckpt_path": load_with_trainer,
    "checkpoint_io": lambda path: AtomicCheckpointIO().load_checkpoint(path),
}


def load_unsafely(path, layout):
    """What an unsafe loader does: unpickle everything."""
    if layout == "pickle":
        with open(path, "rb") as handle:
            return pickle.load(handle)
    return torch.load(path, weights_only=False)


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("layout, error, match", [
    # torch 2.15 names the function by its module's C name: "GLOBAL _io.open".
    ("zip", UnsafeCheckpointError, r"could run arbitrary code.*(GLOBAL|class) _?io\.open"),
    ("legacy", UnsafeCheckpointError, r"could run arbitrary code.*(GLOBAL|class) _?io\.open"),
    ("pickle", CorruptCheckpointError, "truncated or corrupt"),  # a bare pickle is no torch file at all
])
def test_a_checkpoint_crafted_to_run_code_runs_none_and_is_refused(loader, layout, error, match, tmp_path):
    path, marker = tmp_path / "crafted.ckpt", tmp_path / "code-ran"
    write_malicious(path, marker, layout)
    with pytest.raises(error, match=re.escape(str(path)) + ".*" + match):
        LOADERS[loader](path)
    assert not marker.exists()
    load_unsafely(path, layout)  # the file is a loaded gun: an unsafe load fires it
    assert marker.exists()


def truncated(data):
    return data[:len(data) // 2]


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("damage", [truncated, lambda data: b"", lambda data: b"not a checkpoint" * 64])
def test_a_truncated_or_corrupt_checkpoint_raises_an_error_naming_the_file(loader, damage, tmp_path):
    problem = scalar_problem()
    sgd_trainer(problem, epochs=1, weight_name="best").fit(problem, data_setup)
    path = tmp_path / "damaged.ckpt"
    path.write_bytes(damage((tmp_path / "best.ckpt").read_bytes()))
    with pytest.raises(CorruptCheckpointError, match=re.escape(str(path)) + ".* truncated or corrupt"):
        LOADERS[loader](path)


# --- disks --------------------------------------------------------------------------------------

class EpochStarts(pl.Callback):
    def __init__(self):
        self.count = 0

    def on_train_epoch_start(self, trainer, pl_module):
        self.count += 1


def test_an_unwritable_weight_path_is_reported_before_the_first_epoch(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    problem, starts = scalar_problem(), EpochStarts()
    trainer = sgd_trainer(problem, epochs=2, weight_path=str(tmp_path / "a_file" / "weights"), callbacks=[starts])
    with pytest.raises(UnwritableDirectoryError, match=r"weight_path '.*a_file/weights' is not a writable") as error:
        trainer.fit(problem, data_setup)
    assert isinstance(error.value, PermissionError) and isinstance(error.value, ValueError)
    assert starts.count == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="permission bits do not stop root")
def test_a_read_only_weight_path_is_reported_before_the_first_epoch(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        problem = scalar_problem()
        with pytest.raises(UnwritableDirectoryError, match="locked"):
            sgd_trainer(problem, epochs=1, weight_path=str(locked)).fit(problem, data_setup)
    finally:
        locked.chmod(0o700)


def test_an_unwritable_default_log_directory_is_reported_before_the_first_epoch(tmp_path):
    (tmp_path / "lightning_logs").write_text("a file where TensorBoard wants its directory")
    starts = EpochStarts()
    trainer = LitTrainer(epochs=2, save_weights=False, callbacks=[starts], **QUIET)
    with pytest.raises(UnwritableDirectoryError, match="log directory of TensorBoardLogger .*lightning_logs"):
        trainer.fit(scalar_problem(), data_setup)
    assert starts.count == 0


@pytest.mark.slow
def test_a_checkpoint_write_killed_midway_leaves_the_previous_file_whole(tmp_path):
    target = tmp_path / "last.ckpt"
    child = subprocess.Popen([sys.executable, str(HERE / "fault_kill_save.py"), str(target)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "saved", child.stderr.read()[-3000:]
        small_size = target.stat().st_size
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        # Kill the writer as soon as a write of the large checkpoint is under way.
        while not any(p.stat().st_size > 0 for p in tmp_path.iterdir() if p != target) \
                and target.stat().st_size == small_size:
            assert time.monotonic() < deadline, "the large checkpoint was never written"
            time.sleep(0.001)
        child.kill()
    finally:
        child.kill()
        child.wait(timeout=SUBPROCESS_TIMEOUT)

    checkpoint = read_checkpoint(target)  # complete: the old checkpoint or, had the rename won the race, the new
    assert checkpoint["epoch"] in (1, 2)
    assert checkpoint["state_dict"]["problem.w"].numel() == (4 if checkpoint["epoch"] == 1 else 32 * 1024 * 1024)
    save_atomically({"epoch": 3}, target)  # the next save clears what the killed one left behind
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert read_checkpoint(target) == {"epoch": 3}


def test_checkpoints_are_written_with_the_usual_permissions(tmp_path):
    save_atomically({"epoch": 1}, tmp_path / "new" / "file.ckpt")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "new" / "file.ckpt").stat().st_mode & 0o777 == 0o666 & ~umask


def _assert_same_state(saved, fresh, where="checkpoint"):
    """Assert two checkpoint dicts hold equal values (tensors compared exactly)."""
    if isinstance(saved, dict):
        assert saved.keys() == fresh.keys(), where
        for key in saved:
            _assert_same_state(saved[key], fresh[key], f"{where}[{key!r}]")
    elif isinstance(saved, (list, tuple)):
        assert len(saved) == len(fresh), where
        for index, (a, b) in enumerate(zip(saved, fresh, strict=True)):
            _assert_same_state(a, b, f"{where}[{index}]")
    elif isinstance(saved, torch.Tensor):
        assert torch.equal(saved, fresh), where
    else:
        assert saved == fresh, where


class CompareLastWithFreshSave(pl.callbacks.Checkpoint):
    """After LitTrainer's own checkpoints, save the state afresh and compare last.ckpt with it."""

    def __init__(self, weight_path):
        self.weight_path, self.epochs = weight_path, []

    def on_train_epoch_end(self, trainer, pl_module):
        fresh = self.weight_path / "fresh.ckpt"
        trainer.save_checkpoint(fresh)
        _assert_same_state(read_checkpoint(self.weight_path / "last.ckpt"), read_checkpoint(fresh))
        self.epochs.append(trainer.current_epoch)


@pytest.mark.parametrize("weight_name", ["best", None])
@pytest.mark.parametrize("lr", [0.1, 1.05])  # the dev loss improves every epoch / only in the first
def test_last_checkpoint_holds_the_epochs_full_state_whether_or_not_the_best_was_just_written(tmp_path, weight_name,
                                                                                                lr):
    compare = CompareLastWithFreshSave(tmp_path)
    problem = scalar_problem()
    sgd_trainer(problem, lr=lr, epochs=4, weight_path=str(tmp_path), weight_name=weight_name,
                callbacks=[compare]).fit(problem, data_setup)
    assert compare.epochs == [0, 1, 2, 3]


def test_durable_checkpoints_are_written_whole(tmp_path):
    AtomicCheckpointIO(durable=True).save_checkpoint({"epoch": 4}, tmp_path / "durable.ckpt")
    assert read_checkpoint(tmp_path / "durable.ckpt") == {"epoch": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["durable.ckpt"]
    with pytest.raises(TypeError, match="durable must be True or False"):
        AtomicCheckpointIO(durable="yes")
