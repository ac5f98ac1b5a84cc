"""The offline sweep's driver: an ask/tell loop over an Optuna study that any number of workers share.

Each worker (a process, on any machine) runs the same loop against the same study: it asks the
study for up to ``max_batch`` trials, has them trained by the sweep's ``train_batch`` function,
and tells the study each outcome, keeping a heartbeat for every trial while it runs. The loop
makes the shared sweep exact:

* **Configurations.** A configuration is a grid point (``method: grid``) or one random or
  Bayesian draw and its reruns. The sweep owns ``min(count, run_cap)`` configurations, ranked by
  the trial that first held them; a worker that asks for a trial beyond them, or for a
  configuration that a lower-numbered trial already runs or ran, marks its trial skipped
  (state FAIL, system attribute ``neuromancer:skipped``) and never trains it. Optuna numbers trials in
  the order it creates them and a configuration is known when its trial is created, so every
  worker takes the same decision.
* **Grid points** are queued as WAITING trials with their parameters, and workers pop them
  (Optuna hands a waiting trial to exactly one worker). A worker that finds no unqueued point but
  a running one waits until it ends, since it may have to run it again. A grid sweep is done when
  every point has a COMPLETE or PRUNED trial, or a FAIL one whose training raised (its user
  attribute ``'error'`` says why).
* **Lost runs.** A run whose worker died (its heartbeat stopped for the storage's grace period)
  or was interrupted ends FAIL without an ``'error'``; its configuration is queued again, up to
  ``max_retry`` times, with Optuna's retry attributes (``failed_trial``: the first trial of the
  configuration, ``retry_history``), so
  ``optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number`` reads them.
* **Outages.** Every storage call is repeated with back-off while the database is away
  (:class:`~neuromancer.trainers.sweep_storage.StorageRetry`), heartbeats included, so a server
  restart shorter than the grace period costs nothing.

Heartbeats need a storage that keeps them (an ``RDBStorage`` with a heartbeat interval, which
:func:`~neuromancer.trainers.sweep_storage.open_storage` makes from a URL). With other storages
(a journal file, memory) a worker cannot tell a dead worker's run from a slow one: it leaves such
runs to their worker and ends once nothing else is left to do.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from neuromancer.exceptions import NeuromancerError
from neuromancer.trainers.sweep_config import SweepPlan, grid_values, optuna_choices
from neuromancer.trainers.sweep_storage import RetryingProxy, StorageRetry, grace_period_of, heartbeat_interval_of

logger = logging.getLogger(__name__)

# System attribute of a trial that was never trained, and why.
SKIPPED = "neuromancer:skipped"
# System attribute naming the worker (host:pid) that trains a trial.
WORKER = "neuromancer:worker"
# Optuna's names (RetryHeartbeatStaleTrialCallback) for the first trial of a rerun configuration and
# the trials it was lost in.
FAILED_TRIAL = "failed_trial"
RETRY_HISTORY = "retry_history"
# User attributes a trained trial records.
RUN_ATTR, CHECKPOINT_ATTR, ERROR_ATTR = "wandb_run", "checkpoint", "error"
OUTCOME_STATES = ("finished", "pruned", "failed")


class SweepDriverError(NeuromancerError, ValueError):
    """The driver was called with values it cannot run (a bad count, an outcome of an unknown state)."""


@dataclass(frozen=True)
class TrialOutcome:
    """How one trained trial ended, as ``train_batch`` reports it.

    :param state: ``'finished'``, ``'pruned'`` (stopped early, its best value kept) or ``'failed'``
        (training raised; the configuration is not run again).
    :param value: the run's best metric; required when finished.
    :param checkpoint: path of the run's best checkpoint, already on disk.
    :param run_name: the run's name (its wandb run).
    :param error: for a failed run, the error that ended it.
    """

    state: str
    value: float | None
    checkpoint: str | None = None
    run_name: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state not in OUTCOME_STATES:
            raise SweepDriverError(f"TrialOutcome.state is {self.state!r}; use one of {', '.join(OUTCOME_STATES)}")
        if self.state == "finished" and (self.value is None or not math.isfinite(self.value)):
            raise SweepDriverError(f"a finished TrialOutcome needs a finite value, got {self.value!r}")


@dataclass(frozen=True)
class SweepProgress:
    """Where the shared sweep stood when this worker left it.

    :param configurations: how many configurations the sweep owns (``min(count, run_cap)``, at
        most the grid's size).
    :param done: configurations with a result (COMPLETE, PRUNED, or FAIL with an error).
    :param abandoned: first trial numbers of configurations lost more than ``max_retry`` times.
    :param running_elsewhere: trials other workers still run (only left behind by a worker whose
        storage keeps no heartbeats).
    :param target_reached: whether a run reached the metric's target, which ends the sweep early.
    """

    configurations: int
    done: int
    abandoned: tuple[int, ...] = ()
    running_elsewhere: int = 0
    target_reached: bool = False


@dataclass
class _Configuration:
    """The trials of one configuration, lowest number first."""

    key: Hashable
    trials: list[Any] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.trials[0].number

    @property
    def done(self) -> bool:
        return any(_has_result(trial) for trial in self.trials)

    @property
    def live(self) -> bool:
        return any(not trial.state.is_finished() for trial in self.trials)

    @property
    def lost(self) -> list[Any]:
        return [trial for trial in self.trials if trial.state.is_finished() and not _has_result(trial)]


def _has_result(trial: Any) -> bool:
    """COMPLETE, PRUNED, or FAIL because training raised (not because its worker went away)."""
    name = trial.state.name
    return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and ERROR_ATTR in trial.user_attrs)


@dataclass
class _View:
    """The study as one read of its trials shows it."""

    trials: dict[int, Any]
    configurations: list[_Configuration]
    by_key: dict[Hashable, _Configuration]
    waiting: int
    running: list[Any]
    target_reached: bool

    def rank(self, key: Hashable) -> int:
        return self.configurations.index(self.by_key[key])


class SweepDriver:
    """Run this worker's share of an Optuna study: ask, train, tell, until the sweep is done.

    :param optuna: the imported ``optuna`` module.
    :param study: the shared study (its sampler draws random and Bayesian configurations).
    :param storage: the storage object the study was created on (for heartbeats and attributes).
    :param plan: the checked sweep configuration.
    :param count: configurations the whole sweep runs, all workers together (``run_cap`` and the
        grid's size may lower it).
    :param max_batch: trials asked at a time and handed to ``train_batch`` together.
    :param max_retry: how often a configuration lost with its worker is run again.
    :param seed: shuffles the order in which this worker queues grid points.
    :param retry: the retry policy of storage calls; None makes a default one.
    :param poll_seconds: pause between two looks at the study while waiting for other workers;
        None: the heartbeat interval, at most 5 seconds.
    :raises SweepDriverError: when ``count``, ``max_batch`` or ``max_retry`` is out of range.
    """

    def __init__(self, optuna: Any, study: Any, storage: Any, plan: SweepPlan, count: int, *, max_batch: int = 1,
                 max_retry: int = 3, seed: int | None = None, retry: StorageRetry | None = None,
                 poll_seconds: float | None = None) -> None:
        if count < 1 or max_batch < 1 or max_retry < 0:
            raise SweepDriverError(f"count ({count}) and max_batch ({max_batch}) must be >= 1, max_retry ({max_retry}) >= 0")
        self.optuna, self.study, self.storage, self.plan = optuna, study, storage, plan
        self.max_batch, self.max_retry = max_batch, max_retry
        self.retry = retry or StorageRetry()
        self.budget = count if plan.run_cap is None else min(count, plan.run_cap)
        self.grid = _GridPoints(optuna, plan, seed) if plan.method == "grid" else None
        if self.grid is not None:
            self.budget = min(self.budget, len(self.grid.points))
        self.interval = heartbeat_interval_of(storage)
        self.grace = grace_period_of(storage)
        self.poll = poll_seconds if poll_seconds is not None else min(self.interval or 1, 5)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.study_id = self._call(storage.get_study_id_from_name, study.study_name, what="find the study")

    def run(self, train_batch: Callable[[list[Any]], Sequence[TrialOutcome]]) -> SweepProgress:
        """Train trials until the sweep is done; return where it stands.

        :param train_batch: trains the trials it is given (Optuna trials whose storage calls are
            retried during outages) and returns one outcome per trial, in order.
        :return: the sweep's progress when this worker leaves it.
        """
        while True:
            self._expire_dead_runs()
            view = self._view()
            if view.target_reached:
                break
            if self._queue_work(view):
                view = self._view()
            batch, skipped = self._claim(view)
            if batch:
                self._train(batch, train_batch)
            elif not skipped and not self._wait_for_others(view):
                break
        return self._progress(self._view())

    # ------------------------------------------------------------------ reading the study
    def _view(self) -> _View:
        trials = self._call(self.study.get_trials, deepcopy=False, what="read the study's trials")
        configurations: dict[Hashable, _Configuration] = {}
        waiting, running, by_number = 0, [], {}
        for trial in trials:
            if SKIPPED in trial.system_attrs:
                continue
            by_number[trial.number] = trial
            waiting += trial.state.name == "WAITING"
            if trial.state.name == "RUNNING":
                running.append(trial)
            key = self._key(trial)
            if key is not None:
                configurations.setdefault(key, _Configuration(key)).trials.append(trial)
        ordered = sorted(configurations.values(), key=lambda configuration: configuration.first)
        return _View(by_number, ordered, configurations, waiting, running, self._target_reached(trials))

    def _key(self, trial: Any) -> Hashable | None:
        """The configuration a trial belongs to; None for a grid trial without a point."""
        if self.grid is not None:
            return self.grid.key(trial.params)
        return trial.system_attrs.get(FAILED_TRIAL, trial.number)

    def _target_reached(self, trials: Sequence[Any]) -> bool:
        target = self.plan.target
        return target is not None and any(trial.state.name == "COMPLETE" and not self.plan.better(target, trial.value)
                                          for trial in trials)

    # ------------------------------------------------------------------ queueing and claiming work
    def _queue_work(self, view: _View) -> int:
        """Queue again the configurations lost with their workers, and the next unvisited grid points;
        return how many trials were queued."""
        queued = 0
        for configuration in view.configurations[:self.budget]:
            lost = configuration.lost
            if configuration.done or configuration.live or not lost or len(lost) > self.max_retry:
                continue
            last = lost[-1]
            logger.warning("run %d of configuration %d was lost (its worker died or was stopped); running it again "
                           "(retry %d of %d)", last.number, configuration.first, len(lost), self.max_retry)
            self._enqueue(last.params, last.distributions,
                          {FAILED_TRIAL: configuration.first, RETRY_HISTORY: [trial.number for trial in lost]})
            queued += 1
        if self.grid is not None:
            free = min(self.budget - len(view.configurations), self.max_batch - view.waiting - queued)
            for params in self.grid.unvisited(view.by_key)[:max(free, 0)]:
                self._enqueue(params, self.grid.distributions, {})
                queued += 1
        return queued

    def _enqueue(self, params: dict[str, Any], distributions: dict[str, Any], system_attrs: dict[str, Any]) -> None:
        trial = self.optuna.trial.create_trial(state=self.optuna.trial.TrialState.WAITING, params=params,
                                               distributions=distributions, system_attrs=system_attrs)
        self._call(self.study.add_trial, trial, what="queue a configuration")

    def _claim(self, view: _View) -> tuple[list[Any], int]:
        """Ask for up to ``max_batch`` trials; return those this worker trains and how many it skipped."""
        batch: list[Any] = []
        skipped = 0
        free = self.budget - len(view.configurations) if self.grid is None else 0
        for _ in range(self.max_batch):
            if view.waiting + free <= 0:
                break
            trial = self._ask()
            view = self._view()
            reason = self._skip_reason(trial, view)
            if reason is None:
                batch.append(trial)
            else:
                self._skip(trial, reason)
                skipped += 1
            free = self.budget - len(view.configurations) if self.grid is None else 0
        return batch, skipped

    def _ask(self) -> Any:
        with warnings.catch_warnings():
            # This loop keeps the heartbeats that Study.optimize would keep.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = self._call(self.study.ask, what="ask the study for a trial")
        trial_id = self._trial_id(trial.number)
        if self.interval is not None:
            self._call(self.storage.record_heartbeat, trial_id, what=f"record the heartbeat of trial {trial.number}")
        self._call(self.storage.set_trial_system_attr, trial_id, WORKER, self.worker, what="claim a trial")
        return trial

    def _skip_reason(self, trial: Any, view: _View) -> str | None:
        """Why this worker must not train ``trial`` (every worker reaches the same answer from a view
        read after the trial was created), or None."""
        frozen = view.trials.get(trial.number)
        key = None if frozen is None else self._key(frozen)
        if key is None:
            return "no grid point was queued for it"
        if view.target_reached:
            return f"a run reached the target {self.plan.metric_name}={self.plan.target}"
        if view.rank(key) >= self.budget:
            return f"the sweep already has its {self.budget} configuration(s)"
        earlier = [t.number for t in view.by_key[key].trials
                   if t.number < trial.number and (_has_result(t) or not t.state.is_finished())]
        if earlier:
            return f"trial {earlier[0]} runs the same configuration"
        return None

    def _skip(self, trial: Any, reason: str) -> None:
        logger.info("trial %d is not trained: %s", trial.number, reason)
        self._call(self.storage.set_trial_system_attr, self._trial_id(trial.number), SKIPPED, reason,
                   what="mark a trial skipped")
        self._call(self.study.tell, trial, state=self.optuna.trial.TrialState.FAIL, skip_if_finished=True,
                   what=f"tell trial {trial.number}")

    # ------------------------------------------------------------------ training and telling
    def _train(self, batch: list[Any], train_batch: Callable[[list[Any]], Sequence[TrialOutcome]]) -> None:
        trial_ids = [self._trial_id(trial.number) for trial in batch]
        with _Heartbeats(self.storage, trial_ids, self.interval):
            try:
                outcomes = list(train_batch([RetryingProxy(trial, self.retry) for trial in batch]))
                if len(outcomes) != len(batch):
                    raise SweepDriverError(f"train_batch returned {len(outcomes)} outcome(s) for {len(batch)} trial(s)")
            except BaseException:
                self._give_back(batch)
                raise
            for trial, outcome in zip(batch, outcomes, strict=True):
                self._tell(trial, outcome)

    def _tell(self, trial: Any, outcome: TrialOutcome) -> None:
        """Record the run's attributes, then its state: a COMPLETE trial's checkpoint is already on disk."""
        state = self.optuna.trial.TrialState
        expected = {"finished": state.COMPLETE, "pruned": state.PRUNED, "failed": state.FAIL}[outcome.state]
        attrs = {RUN_ATTR: outcome.run_name, CHECKPOINT_ATTR: _absolute(outcome.checkpoint)}
        if outcome.state == "failed":
            attrs[ERROR_ATTR] = outcome.error or "unknown error"
        try:
            for key, value in attrs.items():
                self._call(trial.set_user_attr, key, value, what=f"record {key} of trial {trial.number}")
            told = self._call(self.study.tell, trial, outcome.value if outcome.state == "finished" else None,
                              state=expected, skip_if_finished=True, what=f"tell trial {trial.number}")
        except self.optuna.exceptions.UpdateFinishedTrialError:
            told = None
        if told is None or told.state != expected:
            logger.warning("trial %d was declared lost while this worker trained it (no heartbeat reached the storage "
                           "for its grace period); its configuration is run again by a live worker", trial.number)
        elif outcome.state == "finished" and self.plan.target is not None \
                and not self.plan.better(self.plan.target, told.value):
            logger.info("run %d reached the target %s=%s; stopping the sweep", trial.number, self.plan.metric_name,
                        told.value)

    def _give_back(self, batch: list[Any]) -> None:
        """Mark an interrupted batch lost (FAIL without an error), so another worker runs it again."""
        for trial in batch:
            try:
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL, skip_if_finished=True)
            except Exception as error:  # the interruption matters more; the heartbeat expiry catches these
                logger.warning("could not mark interrupted trial %d lost: %s", trial.number, error)

    # ------------------------------------------------------------------ other workers
    def _expire_dead_runs(self) -> None:
        """Fail the runs of workers that stopped sending heartbeats, and runs no worker ever claimed."""
        if self.interval is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
            self._call(self.optuna.storages.fail_stale_trials, self.study, what="look for dead runs")
        # A worker that died between creating a trial and its first heartbeat leaves a RUNNING trial
        # without either; after twice the grace period (clocks of machines may differ a little) it is lost.
        limit = datetime.now() - timedelta(seconds=2 * (self.grace or 0))
        for trial in self._call(self.study.get_trials, deepcopy=False, what="read the study's trials"):
            if trial.state.name == "RUNNING" and WORKER not in trial.system_attrs \
                    and trial.datetime_start is not None and trial.datetime_start < limit:
                logger.warning("trial %d was never claimed by a worker; marking it lost", trial.number)
                try:
                    self._call(self.storage.set_trial_state_values, self._trial_id(trial.number),
                               self.optuna.trial.TrialState.FAIL, what=f"fail trial {trial.number}")
                except self.optuna.exceptions.UpdateFinishedTrialError:
                    pass  # another worker got there first

    def _wait_for_others(self, view: _View) -> bool:
        """Whether to look again later: other workers run trials that may die and need running again."""
        if self.interval is None or not view.running:
            return False
        logger.debug("waiting for %d run(s) of other workers", len(view.running))
        time.sleep(self.poll)
        return True

    def _progress(self, view: _View) -> SweepProgress:
        owned, configurations = view.configurations[:self.budget], self.budget
        abandoned = tuple(c.first for c in owned if not c.done and not c.live and len(c.lost) > self.max_retry)
        progress = SweepProgress(configurations=configurations, done=sum(c.done for c in owned), abandoned=abandoned,
                                 running_elsewhere=len(view.running), target_reached=view.target_reached)
        what = "grid points" if self.grid is not None else "configurations"
        if progress.done == configurations or progress.target_reached:
            logger.info("sweep %r: %d of %d %s done", self.study.study_name, progress.done, configurations, what)
        else:
            logger.warning("sweep %r: %d of %d %s done; lost more than %d times: trials %s; still running in other "
                           "workers: %d", self.study.study_name, progress.done, configurations, what, self.max_retry,
                           list(abandoned), progress.running_elsewhere)
        return progress

    # ------------------------------------------------------------------ storage plumbing
    def _trial_id(self, number: int) -> int:
        return self._call(self.storage.get_trial_id_from_study_id_trial_number, self.study_id, number,
                          what=f"find trial {number}")

    def _call(self, function: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
        return self.retry.call(function, *args, what=what, **kwargs)


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(path)


class _GridPoints:
    """Every point of a grid sweep, in an order shuffled by the seed, as Optuna parameters."""

    def __init__(self, optuna: Any, plan: SweepPlan, seed: int | None) -> None:
        swept = [parameter for parameter in plan.parameters if parameter.distribution != "constant"]
        self.names = [parameter.name for parameter in swept]
        choices = [optuna_choices(grid_values(parameter)) for parameter in swept]
        self.distributions = {name: optuna.distributions.CategoricalDistribution(values)
                              for name, values in zip(self.names, choices, strict=True)}
        self.points = [dict(zip(self.names, values, strict=True)) for values in itertools.product(*choices)]
        random.Random(seed).shuffle(self.points)

    def key(self, params: dict[str, Any]) -> Hashable | None:
        """The point ``params`` stand for; None when they do not name a whole point."""
        if any(name not in params for name in self.names):
            return None
        return tuple(params[name] for name in self.names)

    def unvisited(self, visited: dict[Hashable, Any]) -> list[dict[str, Any]]:
        return [point for point in self.points if self.key(point) not in visited]


class _Heartbeats:
    """Record a heartbeat for each trial every ``interval`` seconds while the batch trains.

    Optuna's own heartbeat thread stops at the first failed call; this one logs the failure and
    tries again at the next beat, so a database restart does not get a live worker's runs
    declared dead.
    """

    def __init__(self, storage: Any, trial_ids: list[int], interval: int | None) -> None:
        self.storage, self.trial_ids, self.interval = storage, trial_ids, interval
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeats:
        if self.interval is not None:
            self.thread = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _beat(self) -> None:
        failing = False
        while not self.stop.wait(self.interval):
            try:
                for trial_id in self.trial_ids:
                    self.storage.record_heartbeat(trial_id)
            except Exception as error:
                if not failing:
                    logger.warning("cannot record heartbeats (%s); trying again every %s s", error, self.interval)
                failing = True
            else:
                if failing:
                    logger.warning("heartbeats recorded again")
                failing = False
