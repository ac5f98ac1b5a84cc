"""Resuming `LitTrainer` runs on clusters: which checkpoint a restarted run continues from, and SLURM's requeue.

A run on a cluster stops without finishing when the scheduler pre-empts it, when it reaches its time
limit or when a node fails; the same command line then starts it again (a requeued SLURM job, a
torchrun agent restarting its workers, a user re-running the script). `latest_checkpoint` picks the
checkpoint such a restart continues from: ``last.ckpt`` of ``weight_path`` or, in a SLURM job, the
newest ``hpc_ckpt_<n>.ckpt`` in the trainer's root directory (the name and place Lightning's own
SLURM support uses), whichever was written last.

`join_restarted_process_group` works around a hang of torchrun's elastic restarts. The workers of
every restart attempt share the rendezvous's TCPStore with the attempts before
(``TORCHELASTIC_USE_AGENT_STORE=True``; checked with torch 2.13) and torch creates the process group
under the same keys every time, so a restarted worker can read the addresses the workers of the
failed attempt published: it connects to a process that no longer exists and, depending on timing,
fails ("connection refused") or waits forever. Before Lightning sets up the process group of a
restarted attempt, it is set up here on a namespace of the store that belongs to that attempt
(``/neuromancer/attempt_<n>/``).

`SlurmRequeue` replaces Lightning's answer to SLURM's requeue signal (SIGUSR1 by default, sent
``--signal=USR1@<seconds>`` before the time limit, or by ``scancel --signal=USR1``). Lightning
saves a checkpoint the moment the signal arrives, which is usually in the middle of an epoch, and
a run resumed from there repeats or skips batches (Lightning warns as much: a plain DataLoader
cannot continue mid-epoch). `SlurmRequeue` instead notes the signal, finishes the epoch, saves the
complete state at the epoch's end as ``hpc_ckpt_<n>.ckpt`` (rank 0 writes it, through the trainer's
CheckpointIO, atomically with `AtomicCheckpointIO`), asks SLURM to requeue the job and ends the
run on every process; the requeued job resumes from that checkpoint and ends exactly as an
uninterrupted run would. The price is that the warning must come at least one epoch (plus a
checkpoint write) before the time limit.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException

from neuromancer.trainers.compat import cluster_environment

logger = logging.getLogger(__name__)

__all__ = ["HPC_CHECKPOINT_PREFIX", "SlurmRequeue", "elastic_restart_attempt", "join_restarted_process_group",
           "latest_checkpoint", "newest_hpc_checkpoint", "next_hpc_checkpoint", "scheduler_signals_kept",
           "slurm_job_id"]

HPC_CHECKPOINT_PREFIX = "hpc_ckpt_"
_HPC_NAME = re.compile(rf"^{HPC_CHECKPOINT_PREFIX}(\d+)\.ckpt$")


def _hpc_versions(directory: str | os.PathLike) -> list[int]:
    """Version numbers ``n`` of the ``hpc_ckpt_<n>.ckpt`` files in ``directory`` (none if it does not exist)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(match.group(1)) for match in map(_HPC_NAME.match, names) if match)


def newest_hpc_checkpoint(directory: str | os.PathLike) -> str | None:
    """The ``hpc_ckpt_<n>.ckpt`` with the largest ``n`` in ``directory``, or None when there is none.

    :param directory: where SLURM requeue checkpoints are written (the trainer's ``default_root_dir``).
    """
    versions = _hpc_versions(directory)
    return os.path.join(os.fspath(directory), f"{HPC_CHECKPOINT_PREFIX}{versions[-1]}.ckpt") if versions else None


def next_hpc_checkpoint(directory: str | os.PathLike) -> str:
    """The path of the next requeue checkpoint in ``directory``: ``hpc_ckpt_<n + 1>.ckpt`` after the newest ``n``.

    :param directory: where SLURM requeue checkpoints are written.
    """
    versions = _hpc_versions(directory)
    return os.path.join(os.fspath(directory), f"{HPC_CHECKPOINT_PREFIX}{(versions[-1] if versions else 0) + 1}.ckpt")


def latest_checkpoint(paths: Iterable[str | os.PathLike | None]) -> str | None:
    """The most recently written of the existing files among ``paths`` (None when none exists).

    Files written at the same time (a file system with coarse timestamps) go to the one listed first.

    :param paths: candidate checkpoint files; None entries and missing files are passed over.
    """
    best: tuple[float, str] | None = None
    for path in paths:
        if path is None:
            continue
        try:
            written = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        if best is None or written > best[0]:
            best = (written, os.fspath(path))
    return None if best is None else best[1]


def slurm_job_id() -> str | None:
    """The SLURM job to requeue: ``<array job>_<task>`` for a job array's task, else ``SLURM_JOB_ID``; None outside SLURM."""
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return os.environ.get("SLURM_JOB_ID") or None


def _requeue(job_id: str) -> bool:
    """Ask SLURM to requeue ``job_id`` (``scontrol requeue``); log and return whether it accepted."""
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.error("Could not requeue SLURM job %s: %s. Resubmit the job to resume it.", job_id, error)
        return False
    if result.returncode != 0:
        logger.error("scontrol requeue %s failed (exit code %d): %s. Resubmit the job to resume it.", job_id,
                     result.returncode, result.stderr.strip())
        return False
    logger.warning("Requeued SLURM job %s; it will resume from the checkpoint of the epoch that just ended.",
                   job_id)
    return True


def elastic_restart_attempt() -> int:
    """How many times torchrun has restarted this worker group (``TORCHELASTIC_RESTART_COUNT``); 0 outside torchrun."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def join_restarted_process_group(strategy: Any) -> bool:
    """Set up the default process group of a restarted torchrun attempt on a store namespace of its own.

    Does nothing (returns False) unless this process is a worker of a torchrun restart (attempt
    ``n > 0``) that shares the agent's store, the strategy is a DDP strategy and no process group
    exists yet. Otherwise it creates the group as Lightning's DDP strategy would (the strategy's
    backend, else NCCL on CUDA devices and Gloo elsewhere; the strategy's timeout; rank and world
    size from torchrun's environment), on a `torch.distributed.PrefixStore` named after the attempt,
    so that no key the failed attempt left in the shared store is read. Lightning then finds the
    group set up and uses it.

    :param strategy: the trainer's strategy (before `fit` sets it up).
    :return: whether the process group was created here.
    """
    attempt = elastic_restart_attempt()
    if (attempt == 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
            or not isinstance(strategy, DDPStrategy) or not torch.distributed.is_available()
            or torch.distributed.is_initialized()):
        return False
    environment = strategy.cluster_environment
    if not isinstance(environment, TorchElasticEnvironment):
        return False
    timeout = getattr(strategy, "_timeout", None) or torch.distributed.constants.default_pg_timeout
    world_size, rank = environment.world_size(), environment.global_rank()
    root_device = strategy.parallel_devices[environment.local_rank()] if strategy.parallel_devices else None
    backend = strategy.process_group_backend or ("nccl" if root_device is not None and root_device.type == "cuda"
                                                 else "gloo")
    shared = torch.distributed.TCPStore(environment.main_address, environment.main_port, world_size,
                                        is_master=False, timeout=timeout)
    store = torch.distributed.PrefixStore(f"/neuromancer/attempt_{attempt}/", shared)
    logger.info("torchrun restart %d: joining the process group (rank %d of %d, %s) on a fresh store namespace.",
                attempt, rank, world_size, backend)
    torch.distributed.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    return True


# The signals a scheduler or launcher uses to warn or stop a job, whose handlers a fit may change.
SCHEDULER_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))


@contextlib.contextmanager
def scheduler_signals_kept() -> Iterator[None]:
    """Run the body, then put back the handlers of SIGTERM, SIGUSR1 and SIGUSR2 it started with.

    Lightning and `SlurmRequeue` handle these signals during a `fit` and give them back when it ends
    normally; when it ends by an exception, Lightning's own restoring re-installs the handler
    `SlurmRequeue` set. This puts every one of them back, whatever the way out. Off the main thread,
    where handlers cannot change, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {each: signal.getsignal(each) for each in SCHEDULER_SIGNALS}
    try:
        yield
    finally:
        for each, handler in handlers.items():
            if handler is not None and signal.getsignal(each) is not handler:
                signal.signal(each, handler)


class SlurmRequeue(Checkpoint):
    """On SLURM's requeue signal, save the state at the end of the current epoch, requeue the job and stop.

    Active only in a SLURM job whose cluster environment has ``auto_requeue`` on (Lightning's
    `SLURMEnvironment` default; pass ``plugins=[SLURMEnvironment(auto_requeue=False)]`` to turn it
    off), for the duration of a `fit`, unless the script installed a handler of its own for the
    signal. It handles the environment's ``requeue_signal`` (SIGUSR1 by
    default) in place of Lightning's handler, which then stays out. The handler only notes the
    signal; at the end of the epoch, after the other checkpointing callbacks (it must come after
    them), the processes agree whether any of them received it, and if so the state of the epoch
    that just ended is saved to `next_hpc_checkpoint` of the trainer's ``default_root_dir``, global
    rank 0 runs ``scontrol requeue`` and every process leaves `fit` by raising Lightning's
    `SIGTERMException` (a SystemExit), as Lightning's own requeue does. The SIGTERM with which SLURM
    then stops the job's steps is ignored for the rest of that `fit`, so that no process is stopped
    half-way through its shutdown (Lightning's SIGTERM handler would start collective operations).

    After `fit`, ``requeued`` says whether this run ended by requeueing its job.
    """

    def __init__(self) -> None:
        self.requeued = False
        self._signal: signal.Signals | None = None
        self._previous: Any = None
        self._requested = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Handle the requeue signal while fitting in a SLURM job with auto-requeue (before Lightning would)."""
        self.requeued, self._requested = False, False
        environment = cluster_environment(trainer)
        if (stage != "fit" or not isinstance(environment, SLURMEnvironment) or not environment.auto_requeue
                or environment.requeue_signal is None or threading.current_thread() is not threading.main_thread()):
            return
        if signal.getsignal(environment.requeue_signal) not in (None, signal.SIG_DFL):
            return  # the script handles the signal itself; Lightning leaves such a handler alone too
        self._signal = environment.requeue_signal
        self._previous = signal.signal(self._signal, self._note_signal)

    def _note_signal(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: only remember the request (the epoch's end acts on it)."""
        self._requested = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """If any process received the requeue signal: save this epoch's state, requeue the job and stop."""
        if self._signal is None or trainer.sanity_checking:
            return
        if not trainer.strategy.reduce_boolean_decision(self._requested, all=False):
            return
        path = trainer.strategy.broadcast(next_hpc_checkpoint(trainer.default_root_dir))
        trainer.save_checkpoint(path, weights_only=False)  # every process takes part; rank 0 writes
        self.requeued = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # SLURM's SIGTERM after the requeue: let the exit finish
        job_id = slurm_job_id()
        if trainer.is_global_zero:
            logger.warning("SLURM asked to requeue (signal %s) during epoch %d; saved its end state to %s.",
                           self._signal.name, trainer.current_epoch, path)
            if job_id is None:
                logger.error("SLURM_JOB_ID is not set, so the job cannot be requeued; resume it with "
                             "fit(..., ckpt_path='last').")
            else:
                _requeue(job_id)
        raise SIGTERMException

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Give the requeue signal back to its previous handler when `fit` ends by an exception."""
        self._release_signal()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Give the requeue signal back to its previous handler when `fit` ends."""
        self._release_signal()

    def _release_signal(self) -> None:
        if self._signal is not None:
            signal.signal(self._signal, self._previous)
            self._signal, self._previous = None, None
