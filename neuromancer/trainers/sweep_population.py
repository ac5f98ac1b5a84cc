"""Vectorised sweeps: which runs of a sweep can train together as one population, and how a population reports.

With ``hyperparameter_sweep(..., sweep_vectorize=K)`` the offline sweep takes up to K runs at a time
from its sampler. Runs whose configurations agree on everything but the `VECTORISED_SETTINGS`
(learning rate, clipping threshold, patience, warmup) form one population
(`group_by_population`) and train in one fit; each keeps its own settings (`member_settings`).
`PopulationReporter` gives each member's epochs to its own wandb run and Optuna trial while the
population trains, and applies hyperband to each member, as `SweepMonitor` does for a single run.
This module imports neither Lightning's training modules nor wandb; the sweep passes it its runs.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from lightning.pytorch.callbacks import Checkpoint

from neuromancer.trainers.common import hparam
from neuromancer.trainers.population import VECTORISED_SETTINGS, MemberSettings

logger = logging.getLogger(__name__)

__all__ = ["population_key", "group_by_population", "member_settings", "PopulationReporter"]

Entry = TypeVar("Entry")


def population_key(config: Mapping[str, Any]) -> str:
    """What must be equal for two runs to train in one population: their config without the vectorised settings.

    :param config: a run's sampled values (nested dicts allowed).
    :return: a canonical text of everything else, equal exactly when the rest of the configs are.
    """
    return repr(sorted((name, _canonical(value)) for name, value in config.items()
                       if name not in VECTORISED_SETTINGS))


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return sorted((key, _canonical(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def group_by_population(entries: Sequence[Entry], configs: Sequence[Mapping[str, Any]]) -> list[list[Entry]]:
    """Split runs into populations of runs whose configs differ only in the vectorised settings.

    :param entries: the runs (any objects), in the order the sampler gave them.
    :param configs: each run's config.
    :return: the groups, each in sampler order, the groups ordered by their first run.
    """
    groups: dict[str, list[Entry]] = {}
    for entry, config in zip(entries, configs, strict=True):
        groups.setdefault(population_key(config), []).append(entry)
    return list(groups.values())


def member_settings(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> MemberSettings:
    """One member's settings: the run's sampled values where it has them, the trainer's arguments otherwise.

    :param config: the run's sampled values.
    :param arguments: the constructor arguments of the trainer the run would use.
    """
    learning_rate = config.get("learning_rate", hparam(arguments.get("hparam_config"), "learning_rate"))
    return MemberSettings(learning_rate=None if learning_rate is None else float(learning_rate),
                          clip=config.get("clip", arguments.get("clip", 100.0)),
                          patience=config.get("patience", arguments.get("patience")),
                          warmup=config.get("warmup", arguments.get("warmup", 0)))


class PopulationReporter(Checkpoint):
    """Report each member's epochs to its own wandb run and Optuna trial; prune members by hyperband.

    After every epoch (as a checkpointing callback, after the population recorded it), each member
    that trained the epoch logs ``<train_metric>_epoch``, the sweep metric and ``epoch`` to its wandb
    run; under hyperband the member's trial gets the metric, and a member the pruner rejects stops
    (keeping its best weights) while the others go on. Runs and trials live in the calling process:
    when the population trains in spawned processes they stay behind (`log_remaining` logs the
    epochs afterwards, and nothing is pruned), as for a single run.

    :param runs: each member's wandb run.
    :param trials: each member's Optuna trial, or None.
    :param metric_name: the sweep metric (the population's ``eval_metric``).
    :param prune: whether hyperband applies (the trials' study has a pruner).
    """

    def __init__(self, runs: Sequence[Any], trials: Sequence[Any], metric_name: str, prune: bool) -> None:
        self.runs = list(runs)
        self.trials = list(trials)
        self.metric_name = metric_name
        self.prune = prune
        self.logged = [0] * len(self.runs)

    def __getstate__(self) -> dict[str, Any]:
        """Leave the runs and trials (bound to this process) behind when pickled for a worker."""
        if self.prune:
            logger.warning("hyperband cannot stop members that train in spawned processes; they train to the end")
        return {**self.__dict__, "runs": [None] * len(self.runs), "trials": [None] * len(self.trials)}

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Log this epoch of every member that trained it; prune under hyperband."""
        if trainer.sanity_checking or self.runs[:1] == [None]:
            return
        epoch = trainer.current_epoch
        train, score = pl_module.history[epoch].tolist()
        for member, trial in enumerate(self.trials):
            if math.isnan(train[member]):
                continue
            self._log(member, pl_module.train_metric, epoch, train[member], score[member], trainer.global_step)
            if self.prune and trial is not None and math.isfinite(score[member]):
                trial.report(score[member], step=epoch + 1)
                if trial.should_prune():
                    pl_module.stop_member(member)

    def log_remaining(self, member: int, train_metric: str, train_history: Sequence[float],
                      history: Sequence[float]) -> None:
        """Log the epochs of ``member`` that were not logged while it trained (it trained in other processes)."""
        for epoch in range(self.logged[member], len(history)):
            self._log(member, train_metric, epoch, train_history[epoch], history[epoch], None)

    def _log(self, member: int, train_metric: str, epoch: int, train: float, score: float,
             global_step: int | None) -> None:
        values = {f"{train_metric}_epoch": train, self.metric_name: score, "epoch": epoch}
        if global_step is not None:
            values["trainer/global_step"] = global_step
        self.runs[member].log(values)
        self.logged[member] = epoch + 1
