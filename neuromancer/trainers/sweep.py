"""Hyperparameter sweeps for ``LitTrainer``: many short trainings of one problem, ranked by a metric.

:func:`hyperparameter_sweep` takes a Weights & Biases sweep configuration and runs it. With wandb
credentials it creates a real wandb sweep and drives its runs through a wandb agent, so the
sweep shows in the wandb UI and other machines can join it by its id. Without credentials (or
with ``WANDB_MODE=offline``) the same configuration runs locally on Optuna, which samples every
wandb parameter form (see :mod:`neuromancer.trainers.sweep_config`), and wandb logs each run in
offline mode for a later ``wandb sync``. Either way every run starts from the weights the problem
had when the sweep began, trains with a fresh ``LitTrainer`` built from the calling trainer's
arguments plus the sampled values, and the call returns a :class:`SweepResult` (one row per run,
best first) and leaves the best run's weights in the problem. wandb and Optuna are imported only
when a sweep runs.
"""
from __future__ import annotations

import copy
import inspect
import logging
import math
import netrc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from lightning.pytorch import Trainer as LightningTrainer
from lightning.pytorch.callbacks import Callback

from neuromancer.trainers.common import check_positive_int, cpu_state_dict, hparam
from neuromancer.trainers.lightning_callbacks import random_state, set_random_state
from neuromancer.trainers.population import VECTORISED_SETTINGS, NotVectorisableError
from neuromancer.trainers.sweep_config import SweepParameter, SweepPlan, parse_sweep_config, sample_value
from neuromancer.trainers.sweep_driver import SweepDriver, TrialOutcome
from neuromancer.trainers.sweep_population import PopulationReporter, group_by_population, member_settings
from neuromancer.trainers.sweep_storage import HEARTBEAT_INTERVAL, StorageRetry, check_heartbeat_options, open_storage

if TYPE_CHECKING:
    import optuna

    from neuromancer.trainers.lightning import LitTrainer

logger = logging.getLogger(__name__)

SWEEP_MODES = ("auto", "online", "offline")
# Values of WANDB_MODE under which nothing may reach the wandb servers.
_OFFLINE_WANDB_MODES = ("offline", "dryrun", "disabled")
# Trainer arguments a sweep sets for every run itself; sweeping them would be overwritten.
_SET_BY_SWEEP = ("logger", "hparam_config")
# Values read from the run's config by LitProblem / LitDataModule (``hparam_config``).
_HPARAM_NAMES = ("learning_rate", "batch_size")
# Random runs a 'bayes' sweep makes before its Gaussian process proposes values.
BAYES_RANDOM_RUNS = 2


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    :param name: the run's name (wandb's run name; ``'<sweep>-<n>'`` offline).
    :param config: the sampled values, as the run's wandb config holds them.
    :param metric: the best value of the sweep metric the run reached; ``None``
        when it failed before reaching any finite value.
    :param state: ``'finished'``, ``'pruned'`` (stopped early by hyperband, its best
        weights kept) or ``'failed'``.
    :param checkpoint: path of the run's best checkpoint, ``None`` without one.
    :param error: for a failed run, the error that ended it.
    :param wandb_dir: the run's local wandb folder (give it to ``wandb sync``).
    :param history: the sweep metric after each epoch the run trained (a learning curve).
    """

    name: str
    config: dict
    metric: float | None
    state: str
    checkpoint: str | None = None
    error: str | None = None
    wandb_dir: str | None = None
    history: tuple[float, ...] = ()

    @property
    def succeeded(self) -> bool:
        """Whether the run trained to the end or was pruned, so its metric and weights count."""
        return self.state != "failed" and self.metric is not None


@dataclass(frozen=True)
class SweepResult(Sequence[SweepRun]):
    """What a sweep did: its runs, best first, and how to find the sweep again.

    Indexing and iterating give :class:`SweepRun` rows; ``str(result)`` is a table for people.

    :param runs: runs that succeeded, best first, then failed runs.
    :param metric_name: the metric runs were ranked by.
    :param goal: ``'minimize'`` or ``'maximize'``.
    :param method: ``'random'``, ``'grid'`` or ``'bayes'``.
    :param mode: ``'online'`` (a wandb sweep) or ``'offline'`` (the local Optuna engine).
    :param sweep_id: the wandb sweep id online; the Optuna study name offline.
    """

    runs: tuple[SweepRun, ...]
    metric_name: str
    goal: str
    method: str
    mode: str
    sweep_id: str

    def __getitem__(self, index):
        return self.runs[index]

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[SweepRun]:
        return iter(self.runs)

    @property
    def best(self) -> SweepRun | None:
        """The best successful run, or ``None`` when every run failed."""
        return self.runs[0] if self.runs and self.runs[0].succeeded else None

    def __str__(self) -> str:
        header = (f"{self.method} sweep {self.sweep_id!r} ({self.mode}): {len(self.runs)} run(s), "
                  f"{self.metric_name} ({self.goal}), best first")
        return header + "\n" + _format_table(self._table_rows())

    def _table_rows(self) -> list[list[str]]:
        keys = list(dict.fromkeys(key for run in self.runs for key in _flatten(run.config)))
        rows = [["rank", "run", "state", self.metric_name, *keys, "checkpoint / error"]]
        for rank, run in enumerate(self.runs, start=1):
            flat = _flatten(run.config)
            metric = "-" if run.metric is None else f"{run.metric:.6g}"
            last = (run.error or "-").splitlines()[0] if run.state == "failed" else (run.checkpoint or "-")
            rows.append([str(rank), run.name, run.state, metric,
                         *(_short(flat.get(key, "-")) for key in keys), str(last)])
        return rows


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


def hyperparameter_sweep(trainer: LitTrainer, problem: torch.nn.Module, data_setup_function: Callable,
                         sweep_config: Mapping[str, Any], count: int = 10, project_name: str = "run_sweep",
                         *, sweep_mode: str = "auto", sweep_id: str | None = None,
                         sweep_storage: str | os.PathLike | optuna.storages.BaseStorage | None = None,
                         sweep_seed: int | None = None, sweep_heartbeat_interval: int = HEARTBEAT_INTERVAL,
                         sweep_grace_period: int | None = None, sweep_max_retry: int = 3, sweep_vectorize: int = 1,
                         **kwargs: Any) -> SweepResult:
    """Run a wandb-style hyperparameter sweep of ``problem`` with fresh copies of ``trainer``.

    Each run restores the weights ``problem`` had when the sweep began, builds a new
    ``LitTrainer`` from ``trainer``'s constructor arguments with the sampled values applied, and
    calls its ``fit(problem, data_setup_function, **kwargs)``. A sampled ``learning_rate`` sets
    the optimizer's learning rate and ``batch_size`` replaces the batch size the data setup
    function returns (both through the run's wandb config, given to the trainer as
    ``hparam_config``); a name the data setup function takes is passed to it; a
    ``LitTrainer`` (or Lightning ``Trainer``) argument configures the run. Each run logs to a
    ``WandbLogger`` under ``project_name`` with the sampled values as its config, and checkpoints
    on the sweep metric, which is also the run's ``eval_metric``.

    Where the sweep runs (``sweep_mode='auto'``): offline when ``WANDB_MODE`` is ``offline``,
    ``dryrun`` or ``disabled``, or when no wandb API key is found (``WANDB_API_KEY`` or a
    ``~/.netrc`` / ``$NETRC`` entry for the wandb host); online otherwise, falling back to
    offline if the wandb server cannot be reached. Online, ``wandb.sweep`` creates the sweep
    (its id is logged and returned in ``SweepResult.sweep_id``) and ``wandb.agent`` runs
    ``count`` of its runs here; offline, Optuna samples the runs and wandb writes each one to
    ``$WANDB_DIR/wandb/offline-run-*`` (``wandb sync`` uploads them later).

    :param trainer: the trainer whose constructor arguments every run starts from;
        its ``logger`` and ``hparam_config`` are replaced per run.
    :param problem: the problem to train; ends holding the best run's weights.
    :param data_setup_function: as for ``LitTrainer.fit``: returns train, dev and test
        datasets and a batch size.
    :param sweep_config: a wandb sweep configuration: ``method`` (``'random'``,
        ``'grid'``, ``'bayes'``), ``parameters``, optional ``metric`` (default: the trainer's
        ``eval_metric``, minimized), ``early_terminate`` (hyperband), ``run_cap``, ``name``,
        ``description``, ``entity``.
    :param count: runs the sweep makes (fewer when a grid has fewer points, the metric's target
        is reached or ``run_cap`` is lower). Offline, it counts the runs of the whole study, all
        processes sharing its ``sweep_storage`` together, and runs already in the storage; a run
        lost with its worker does not count, since its configuration is run again.
    :param project_name: the wandb project; offline, also the name of
        the Optuna study unless the config has a ``name``.
    :param sweep_mode: ``'auto'``, ``'online'`` or ``'offline'``.
    :param sweep_id: online: join this existing wandb sweep instead of creating one.
    :param sweep_storage: offline: where
        the Optuna study lives. ``None`` keeps it in memory; a database URL
        (``'postgresql://user:password@host/db'``, ``'sqlite:///sweep.db'``), any other path (an
        Optuna journal file) or an Optuna storage lets several processes or machines share one
        sweep (see :mod:`neuromancer.trainers.sweep_driver`).
    :param sweep_seed: offline: seed of the sampler, for a repeatable sweep.
    :param sweep_heartbeat_interval: offline, database URL: seconds between the heartbeats a
        worker records for its running trials.
    :param sweep_grace_period: offline, database URL: seconds without a heartbeat after which
        a run counts as lost with its worker and is run again elsewhere; None: twice the interval.
    :param sweep_max_retry: offline: how many times a lost run's configuration is run again.
    :param sweep_vectorize: offline: train up to this many runs at a time as one population
        (see :mod:`neuromancer.trainers.sweep_population`): runs whose configs differ only in
        ``learning_rate``, ``clip``, ``patience`` and ``warmup`` train together, each exactly as it
        would alone, in one fit. Runs that cannot (other differences, a problem or optimizer that
        cannot be vectorised, a custom training step...) train one at a time, with a warning that
        says why. 1 trains every run alone.
    :param kwargs: keyword arguments for ``data_setup_function`` (sampled values override them).
    :return: one row per run, best first.
    :raises ValueError: for a bad ``sweep_config`` (see
        :func:`~neuromancer.trainers.sweep_config.parse_sweep_config`), a metric goal other than
        ``'minimize'``, ``count < 1``, bad ``sweep_*`` heartbeat or retry options,
        ``sweep_vectorize < 1`` or above 1 for an online sweep, an unknown ``sweep_mode``, a
        ``sweep_id`` for a sweep that
        runs offline, a trainer argument ``LitTrainer`` refuses, or a parameter that is neither a
        data setup keyword, a ``LitTrainer`` argument, ``learning_rate`` nor ``batch_size``; all
        before any training.
    :raises TypeError: when ``count`` is not an integer.
    :raises ImportError: when wandb (or, offline, optuna) is not installed.
    """
    _check_count(count)
    check_heartbeat_options(sweep_heartbeat_interval, sweep_grace_period, sweep_max_retry)
    check_positive_int(sweep_vectorize, "sweep_vectorize")
    mode = resolve_sweep_mode(sweep_mode)
    if sweep_vectorize > 1 and mode == "online":
        raise ValueError(f"sweep_vectorize={sweep_vectorize} trains several runs as one population, but an online "
                         "wandb sweep hands its agent one run at a time; pass sweep_mode='offline' (the runs are "
                         "still logged to wandb, offline) or sweep_vectorize=1")
    if sweep_id is not None and mode == "offline":
        raise ValueError(f"sweep_id={sweep_id!r} joins an online wandb sweep, but this sweep would run offline "
                         f"(WANDB_MODE={os.environ.get('WANDB_MODE')!r}, API key found: {_has_wandb_credentials()}); "
                         f"run `wandb login` or pass sweep_mode='online'")
    arguments = _constructor_arguments(trainer)
    plan = parse_sweep_config(sweep_config, default_metric=arguments.get("eval_metric", "dev_loss"))
    if plan.goal != "minimize":
        raise ValueError(f"sweep_config['metric']['goal'] is {plan.goal!r}, but LitTrainer keeps each run's weights "
                         f"with the lowest eval_metric; sweep a metric to minimize (e.g. the negative of "
                         f"{plan.metric_name!r}, logged from a custom hook)")
    routes = _route_parameters(plan.top_level_names, type(trainer), data_setup_function)
    wandb = _require("wandb")
    runner = _RunTrainer(trainer_class=type(trainer), arguments=arguments, problem=problem,
                         data_setup_function=data_setup_function, data_kwargs=kwargs, plan=plan, routes=routes)
    runner.check_trainer_arguments()
    sweep_name = None
    if mode == "online":
        sweep_name = _run_online(wandb, runner, count, project_name, sweep_id, fallback=sweep_mode == "auto")
    if sweep_name is None:
        mode = "offline"
        sweep_name = _run_offline(wandb, runner, count, project_name, _OfflineOptions(
            storage=sweep_storage, seed=sweep_seed, heartbeat_interval=sweep_heartbeat_interval,
            grace_period=sweep_grace_period, max_retry=sweep_max_retry, vectorize=sweep_vectorize))
    return SweepResult(runs=runner.finish(), metric_name=plan.metric_name, goal=plan.goal, method=plan.method,
                       mode=mode, sweep_id=sweep_name)


def _check_count(count: Any) -> None:
    if not isinstance(count, int) or isinstance(count, bool):
        raise TypeError(f"count must be an integer number of runs, got {count!r}")
    if count < 1:
        raise ValueError(f"count must be at least 1 (the number of runs to make), got {count}")


def _require(module_name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"hyperparameter sweeps need {module_name}: pip install wandb optuna "
                          f"(or pip install 'neuromancer[sweeps]')") from error


def _constructor_arguments(trainer: Any) -> dict[str, Any]:
    """The keyword arguments ``trainer`` was built with, Lightning's extra ones included."""
    arguments = getattr(trainer, "init_arguments", None)
    if not isinstance(arguments, Mapping):
        raise TypeError(f"hyperparameter_sweep needs a LitTrainer (it rebuilds one per run from its "
                        f"constructor arguments); got {type(trainer).__name__}")
    return dict(arguments)


@dataclass(frozen=True)
class _Routes:
    """Where each top-level swept name goes: the trainer's arguments, the data setup call, or both."""

    trainer: frozenset[str]
    data: frozenset[str]


def _route_parameters(names: Sequence[str], trainer_class: type, data_setup_function: Callable) -> _Routes:
    trainer_names, trainer_takes_any = _keyword_names(trainer_class)
    if trainer_takes_any:
        trainer_names |= _keyword_names(LightningTrainer.__init__)[0]
    data_names, data_takes_any = _keyword_names(data_setup_function)
    for_trainer, for_data = set(), set()
    for name in names:
        if name in _SET_BY_SWEEP:
            raise ValueError(f"parameter {name!r} cannot be swept: the sweep sets the trainer's {name} for every run")
        if name in trainer_names:
            for_trainer.add(name)
        if name in data_names or (data_takes_any and name not in trainer_names and name not in _HPARAM_NAMES):
            for_data.add(name)
        if name not in for_trainer | for_data and name not in _HPARAM_NAMES:
            raise ValueError(
                f"parameter {name!r} is neither a keyword of {_callable_name(data_setup_function)}"
                f"{inspect.signature(data_setup_function)}, a LitTrainer argument, 'learning_rate' nor 'batch_size'; "
                f"rename it or add it to the data setup function's parameters")
    return _Routes(trainer=frozenset(for_trainer), data=frozenset(for_data))


def _keyword_names(function: Callable) -> tuple[set[str], bool]:
    """Names ``function`` accepts by keyword, and whether it also takes any keyword (``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


def _callable_name(function: Callable) -> str:
    return getattr(function, "__name__", type(function).__name__)


def resolve_sweep_mode(sweep_mode: str = "auto") -> str:
    """Where a sweep with ``sweep_mode`` runs here: ``'online'`` (a wandb sweep) or ``'offline'`` (Optuna).

    ``'auto'`` picks offline when ``WANDB_MODE`` is ``offline``, ``dryrun`` or ``disabled`` or
    when wandb would find no API key (neither ``WANDB_API_KEY`` nor a netrc entry for the host of
    ``WANDB_BASE_URL``, by default api.wandb.ai, in ``$NETRC`` or ``~/.netrc``), online otherwise.
    No network request is made: an unreachable server is found when the sweep is created.

    :param sweep_mode: ``'auto'``, ``'online'`` or ``'offline'``.
    :return: ``'online'`` or ``'offline'``.
    :raises ValueError: for any other ``sweep_mode``.
    """
    if sweep_mode not in SWEEP_MODES:
        raise ValueError(f"sweep_mode is {sweep_mode!r}; use one of {', '.join(SWEEP_MODES)}")
    if sweep_mode != "auto":
        return sweep_mode
    if os.environ.get("WANDB_MODE", "").lower() in _OFFLINE_WANDB_MODES:
        return "offline"
    return "online" if _has_wandb_credentials() else "offline"


def _has_wandb_credentials() -> bool:
    """Whether wandb would find an API key: ``WANDB_API_KEY`` or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = os.environ.get("NETRC", os.path.join(os.path.expanduser("~"), ".netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _offline_wandb_mode() -> str:
    """``'disabled'`` when the user disabled wandb, else ``'offline'``."""
    return "disabled" if os.environ.get("WANDB_MODE", "").lower() == "disabled" else "offline"


def _run_online(wandb: Any, runner: _RunTrainer, count: int, project_name: str, sweep_id: str | None,
                fallback: bool) -> str | None:
    """Drive ``count`` runs of a wandb sweep through a wandb agent; ``None`` when it fell back to offline."""
    entity = runner.plan.wandb_config.get("entity")
    if sweep_id is None:
        try:
            sweep_id = wandb.sweep(sweep=runner.plan.wandb_config, project=project_name, entity=entity)
        except (wandb.errors.CommError, wandb.errors.AuthenticationError) as error:
            if not fallback:
                raise
            logger.warning("cannot create a wandb sweep (%s); running the sweep offline instead", error)
            return None
    logger.info("wandb sweep %s: other processes and machines join it by running the same sweep with "
                "sweep_id=%r", sweep_id, "/".join(part for part in (entity, project_name, sweep_id) if part))

    def agent_run() -> None:
        run = wandb.init(project=project_name, entity=entity, dir=os.environ.get("WANDB_DIR"), job_type="sweep",
                         reinit="create_new")
        _train_and_finish(runner, run, dict(run.config), trial=None)

    wandb.agent(sweep_id, function=agent_run, count=count, project=project_name, entity=entity)
    return sweep_id


@dataclass(frozen=True)
class _OfflineOptions:
    """The ``sweep_*`` options of an offline sweep (see `hyperparameter_sweep`)."""

    storage: Any
    seed: int | None
    heartbeat_interval: int
    grace_period: int | None
    max_retry: int
    vectorize: int = 1


def _run_offline(wandb: Any, runner: _RunTrainer, count: int, project_name: str, options: _OfflineOptions) -> str:
    """Run this process's share of ``count`` runs sampled by an Optuna study; returns the study's name.

    The driver hands out up to ``options.vectorize`` trials at a time; each is its own offline
    wandb run, and the runner trains them, as populations where they can share a fit.
    """
    optuna = _require("optuna")
    plan = runner.plan
    study_name = plan.name or project_name
    retry = StorageRetry()
    storage = open_storage(optuna, options.storage, options.heartbeat_interval, options.grace_period, retry)
    study = retry.call(optuna.create_study, storage=storage, sampler=_make_sampler(optuna, plan, options.seed),
                       pruner=_make_pruner(optuna, plan), study_name=study_name, direction=plan.goal,
                       load_if_exists=True, what="create or load the sweep's study")
    wandb_mode = _offline_wandb_mode()

    def train(trials: list[Any]) -> list[TrialOutcome]:
        configs = [_sample_config(plan.parameters, trial, grid=plan.method == "grid") for trial in trials]
        runs: list[Any] = []
        rows: list[SweepRun] | None = None
        try:
            for trial, config in zip(trials, configs, strict=True):
                runs.append(wandb.init(project=project_name, config=config, name=f"{study_name}-{trial.number}",
                                       group=study_name, dir=os.environ.get("WANDB_DIR"), job_type="sweep",
                                       mode=wandb_mode, reinit="create_new"))
            rows = runner.train_batch(list(zip(runs, configs, trials, strict=True)))
        finally:  # every wandb run is closed, marked failed (exit code 1) unless it trained
            for index, run in enumerate(runs):
                run.finish(exit_code=1 if rows is None or rows[index].state == "failed" else 0)
        return [TrialOutcome(state=row.state, value=row.metric, checkpoint=row.checkpoint, run_name=row.name,
                             error=row.error) for row in rows]

    driver = SweepDriver(optuna, study, storage, plan, count, max_batch=options.vectorize,
                         max_retry=options.max_retry, seed=options.seed, retry=retry)
    driver.run(train)
    return study_name


def _train_and_finish(runner: _RunTrainer, run: Any, config: dict[str, Any], trial: Any) -> SweepRun:
    """Train one run and close its wandb run, marked failed (exit code 1) unless it trained."""
    row = None
    try:
        row = runner.train(run, config, trial=trial)
    finally:
        run.finish(exit_code=0 if row is not None and row.state != "failed" else 1)
    return row


def _sample_config(parameters: Sequence[SweepParameter], trial: Any, grid: bool) -> dict[str, Any]:
    """The run's (possibly nested) config: each parameter drawn through ``trial``."""
    config: dict[str, Any] = {}
    for parameter in parameters:
        node = config
        for key in parameter.path[:-1]:
            node = node.setdefault(key, {})
        node[parameter.path[-1]] = sample_value(parameter, trial, grid=grid)
    return config


def _make_sampler(optuna: Any, plan: SweepPlan, seed: int | None) -> Any:
    """random: independent uniform draws; bayes: a Gaussian process. A grid's points are queued by
    the sweep driver with their values, so its sampler draws nothing."""
    if plan.method in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=BAYES_RANDOM_RUNS)


def _make_pruner(optuna: Any, plan: SweepPlan) -> Any:
    if plan.hyperband is None:
        return optuna.pruners.NopPruner()
    hyperband = plan.hyperband
    return optuna.pruners.HyperbandPruner(min_resource=hyperband.min_iter,
                                          max_resource=hyperband.max_iter or "auto",
                                          reduction_factor=hyperband.eta)


class _RunTrainer:
    """Trains a sweep's runs, one at a time or as populations, from the same initial weights and random state,
    and keeps the best run's weights."""

    def __init__(self, trainer_class: type, arguments: dict[str, Any], problem: torch.nn.Module,
                 data_setup_function: Callable, data_kwargs: dict[str, Any], plan: SweepPlan, routes: _Routes):
        self.trainer_class = trainer_class
        self.arguments = arguments
        self.problem = problem
        self.data_setup_function = data_setup_function
        self.data_kwargs = data_kwargs
        self.plan = plan
        self.routes = routes
        self.initial_weights = cpu_state_dict(problem)
        self.initial_random_state = random_state()
        optimizer = arguments.get("custom_optimizer")
        self.initial_optimizer_state = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
        self.rows: list[SweepRun] = []
        self.vectorise_error: Exception | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_metric: float | None = None

    def train(self, run: Any, config: dict[str, Any], trial: Any) -> SweepRun:
        """Train one run with ``config`` logged to wandb ``run``; record and return its row."""
        run_name = _run_name(run)
        self._restart()
        monitor = SweepMonitor(self.plan, trial)
        checkpoint, trainer = None, None
        try:
            trainer = self._make_trainer(run, run_name, config, monitor)
            trainer.fit(self.problem, self.data_setup_function, **self._data_kwargs(config))
            if trainer.stopped_on_nonfinite:
                raise FloatingPointError(trainer.stopped_on_nonfinite)
            checkpoint = _best_checkpoint(trainer)
            best, pruned = monitor.outcome(trainer)
            if best is None:
                logged = sorted(name for name in trainer.callback_metrics if not name.startswith(SweepMonitor.PREFIX))
                raise ValueError(f"the sweep metric {self.plan.metric_name!r} was never logged; logged metrics "
                                 f"are {logged}; set sweep_config['metric']['name'] to one of them")
        except Exception as error:  # a failed run is a result of the sweep, not the end of it
            logger.warning("sweep run %s failed: %s", run_name, error, exc_info=True)
            best = None if trainer is None else monitor.outcome(trainer)[0]
            row = SweepRun(name=run_name, config=config, metric=best, state="failed",
                           error=f"{type(error).__name__}: {error}", wandb_dir=_wandb_dir(run))
        else:
            row = SweepRun(name=run_name, config=config, metric=best, state="pruned" if pruned else "finished",
                           checkpoint=checkpoint, wandb_dir=_wandb_dir(run), history=monitor.history_of(trainer))
            self._keep_if_best(row)
        return self._record(run, row)

    def train_batch(self, entries: Sequence[tuple[Any, dict[str, Any], Any]]) -> list[SweepRun]:
        """Train several runs, as populations where they can (see `neuromancer.trainers.sweep_population`).

        :param entries: ``(wandb run, config, trial)`` of each run.
        :return: each run's row, in the order of ``entries``.
        """
        rows: dict[int, SweepRun] = {}
        for group in group_by_population(entries, [config for _, config, _ in entries]):
            if len(group) > 1 and self.vectorise_error is None:
                try:
                    rows.update(zip([id(run) for run, _, _ in group], self.train_population(group), strict=True))
                    continue
                except NotVectorisableError as error:
                    self.vectorise_error = error
                    logger.warning("the sweep's runs train one at a time: %s", error)
            rows.update((id(run), self.train(run, config, trial)) for run, config, trial in group)
        return [rows[id(run)] for run, _, _ in entries]

    def train_population(self, group: Sequence[tuple[Any, dict[str, Any], Any]]) -> list[SweepRun]:
        """Train runs whose configs differ only in vectorised settings as one population; record their rows.

        :param group: ``(wandb run, config, trial)`` of each member.
        :return: each member's row, in order.
        :raises NotVectorisableError: before any training, when these runs cannot train together.
        """
        # lightning_population imports lightning.py, which imports this module: so here, when a population trains.
        from neuromancer.trainers.lightning_population import fit_population

        runs, configs, trials = zip(*group, strict=True)
        shared = configs[0]
        arguments = {**self.arguments, **{name: shared[name] for name in self.routes.trainer
                                          if name not in VECTORISED_SETTINGS}, "eval_metric": self.plan.metric_name}
        for run, config in zip(runs, configs, strict=True):
            self._add_own_hparams(run, config, arguments)
        reporter = PopulationReporter(runs, trials, self.plan.metric_name, prune=self.plan.hyperband is not None)
        self._restart()
        try:
            results = fit_population(
                self.problem, self.data_setup_function, [member_settings(config, arguments) for config in configs],
                arguments, member_directories=[self._run_directory(arguments, _run_name(run)) for run in runs],
                hparam_config=dict(runs[0].config), callbacks=[reporter], data_kwargs=self._data_kwargs(shared))
        except NotVectorisableError:
            raise
        except Exception as error:  # a failed population is a result of the sweep, as a failed run is
            logger.warning("sweep runs %s failed: %s", [_run_name(run) for run in runs], error, exc_info=True)
            return [self._record(run, SweepRun(name=_run_name(run), config=config, metric=None, state="failed",
                                               error=f"{type(error).__name__}: {error}", wandb_dir=_wandb_dir(run)))
                    for run, config in zip(runs, configs, strict=True)]
        rows = []
        for member, (run, config, result) in enumerate(zip(runs, configs, results, strict=True)):
            reporter.log_remaining(member, arguments["train_metric"], result.train_history, result.history)
            row = SweepRun(name=_run_name(run), config=config, metric=result.best_score, state=result.state,
                           checkpoint=result.checkpoint, error=result.error, wandb_dir=_wandb_dir(run),
                           history=result.history)
            if row.succeeded:
                self._keep_if_best(row, result.weights)
            else:
                logger.warning("sweep run %s failed: %s", row.name, row.error)
            rows.append(self._record(run, row))
        return rows

    def _record(self, run: Any, row: SweepRun) -> SweepRun:
        """Put a run's outcome in its wandb summary and in the sweep's rows."""
        run.summary.update({f"best_{self.plan.metric_name}": row.metric, "sweep_state": row.state})
        self.rows.append(row)
        return row

    def _restart(self) -> None:
        """Put back what every run starts from: the initial weights, optimizer state and random state."""
        self.problem.load_state_dict(self.initial_weights)
        self._reset_custom_optimizer()
        set_random_state(self.initial_random_state)

    def finish(self) -> tuple[SweepRun, ...]:
        """Leave the best run's weights in the problem (the initial ones if all failed) and a custom
        optimizer as it was; return the rows, best first."""
        self._reset_custom_optimizer()
        if self.best_weights is None:
            self.problem.load_state_dict(self.initial_weights)
            if self.rows:
                logger.warning("every sweep run failed; the problem keeps its initial weights")
        else:
            self.problem.load_state_dict(self.best_weights)
        succeeded = sorted((row for row in self.rows if row.succeeded), key=_ranked_metric,
                           reverse=self.plan.goal == "maximize")
        return tuple(succeeded) + tuple(row for row in self.rows if not row.succeeded)

    def _keep_if_best(self, row: SweepRun, weights: dict[str, torch.Tensor] | None = None) -> None:
        """Keep ``weights`` (None: a copy of the problem's) if ``row`` is the best run so far."""
        metric = _ranked_metric(row)
        if self.best_metric is None or self.plan.better(metric, self.best_metric):
            self.best_metric = metric
            self.best_weights = cpu_state_dict(self.problem) if weights is None else weights

    def check_trainer_arguments(self) -> None:
        """Build (and drop) one run's trainer without sampled values, so a bad argument or sweep
        metric fails now, in the trainer's own words, instead of in every run."""
        self.trainer_class(**{**self.arguments, "eval_metric": self.plan.metric_name, "logger": False})

    def _reset_custom_optimizer(self) -> None:
        """Give a user's optimizer its initial state back (Adam's moments, step counts, learning rates)."""
        optimizer = self.arguments.get("custom_optimizer")
        if optimizer is not None:
            optimizer.load_state_dict(copy.deepcopy(self.initial_optimizer_state))

    def _make_trainer(self, run: Any, run_name: str, config: dict[str, Any], monitor: SweepMonitor) -> Any:
        """A fresh trainer: the caller's arguments, the sampled ones, and the run's logger and config.

        The run's wandb config is the trainer's ``hparam_config`` (sampled ``learning_rate`` and
        ``batch_size`` reach the optimizer and the loaders through it), passed as a
        plain dict so that it travels to spawned worker processes; entries of the caller's own
        ``hparam_config`` that the sweep does not sample are added to it. Each run checkpoints
        into ``<weight_path>/<run name>`` so runs do not overwrite each other.
        """
        from lightning.pytorch.loggers import WandbLogger

        arguments = {**self.arguments, **{name: config[name] for name in self.routes.trainer}}
        self._add_own_hparams(run, config, arguments)
        arguments.update(logger=WandbLogger(experiment=run), hparam_config=dict(run.config),
                         eval_metric=self.plan.metric_name, weight_path=self._run_directory(arguments, run_name),
                         callbacks=[*(arguments.get("callbacks") or []), monitor])
        return self.trainer_class(**arguments)

    @staticmethod
    def _add_own_hparams(run: Any, config: dict[str, Any], arguments: dict[str, Any]) -> None:
        """Add to the run's config the trainer's own ``learning_rate`` and ``batch_size`` the sweep does not sample."""
        own = {name: hparam(arguments.get("hparam_config"), name) for name in _HPARAM_NAMES if name not in config}
        run.config.update({name: value for name, value in own.items() if value is not None})

    @staticmethod
    def _run_directory(arguments: dict[str, Any], run_name: str) -> str:
        """Where a run's checkpoints go: its own folder under the trainer's ``weight_path``."""
        return os.path.abspath(os.path.join(arguments.get("weight_path", "./"), run_name))

    def _data_kwargs(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**self.data_kwargs, **{name: config[name] for name in self.routes.data}}


def _run_name(run: Any) -> str:
    """A wandb run's name (offline runs started by an agent have no name, only an id)."""
    return run.name or run.id


def _ranked_metric(row: SweepRun) -> float:
    """The metric a succeeded run is ranked by (a run without one, which never succeeds, ranks as NaN)."""
    return math.nan if row.metric is None else row.metric


def _best_checkpoint(trainer: Any) -> str | None:
    """The absolute path of the run's best checkpoint, so that other machines sharing the file
    system find it from the sweep's storage; None without one."""
    callback = getattr(trainer, "checkpoint_callback", None)
    path = getattr(callback, "best_model_path", None)
    return os.path.abspath(path) if path else None


def _wandb_dir(run: Any) -> str | None:
    """The run's own folder (``.../wandb/offline-run-...``): what ``wandb sync`` takes."""
    files = getattr(run, "dir", None)
    return os.path.dirname(files) if files else None


class SweepMonitor(Callback):
    """Track a sweep run's best value of the sweep metric; fail the run on a NaN; apply hyperband.

    After every validation (sanity checks aside) it reads the sweep metric, raises
    FloatingPointError when it is not finite, and keeps the best value; under hyperband it
    reports the value to the Optuna trial and stops the run when the trial should be pruned. The
    best value and the pruned flag are also kept in the trainer's ``callback_metrics`` (under
    names starting with `PREFIX`), which Lightning sends back from spawned worker processes, so
    `outcome` reads the run's result in the calling process on every strategy. The class lives at
    module level so that spawn-based strategies (``ddp_spawn``) can pickle it; the Optuna trial
    stays behind in the calling process, so runs trained in spawned processes are never pruned.

    :param plan: the sweep's plan (metric name and goal, hyperband settings).
    :param trial: the run's Optuna trial (offline sweeps), or None.
    """

    PREFIX = "sweep_monitor/"

    def __init__(self, plan: SweepPlan, trial: Any = None) -> None:
        self.plan = plan
        self.trial = trial if plan.hyperband is not None else None
        self.best: float | None = None
        self.pruned = False
        self.history: list[float] = []

    def __getstate__(self) -> dict[str, Any]:
        """Leave the Optuna trial (bound to this process's study) behind when pickled for a worker."""
        if self.trial is not None:
            logger.warning("hyperband cannot stop a run that trains in spawned processes; this run trains to the end")
        return {**self.__dict__, "trial": None}

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Read the sweep metric of this validation."""
        name = self.plan.metric_name
        if trainer.sanity_checking or name not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[name])
        if not math.isfinite(value):
            raise FloatingPointError(f"{name} became {value} at epoch {trainer.current_epoch}")
        self.history.append(value)
        if self.best is None or self.plan.better(value, self.best):
            self.best = value
        if self.trial is not None:
            self.trial.report(value, step=trainer.current_epoch + 1)
            if self.trial.should_prune():
                self.pruned = True
                trainer.should_stop = True
        trainer.callback_metrics[f"{self.PREFIX}best"] = torch.tensor(self.best, dtype=torch.float64)
        trainer.callback_metrics[f"{self.PREFIX}pruned"] = torch.tensor(self.pruned)
        trainer.callback_metrics[f"{self.PREFIX}history"] = torch.tensor(self.history, dtype=torch.float64)

    def outcome(self, trainer: Any) -> tuple[float | None, bool]:
        """The run's best metric (None if it was never logged) and whether hyperband pruned it."""
        best = trainer.callback_metrics.get(f"{self.PREFIX}best")
        pruned = trainer.callback_metrics.get(f"{self.PREFIX}pruned")
        return (self.best if best is None else float(best)), bool(self.pruned if pruned is None else pruned)

    def history_of(self, trainer: Any) -> tuple[float, ...]:
        """The sweep metric after each epoch of the run (also when it trained in spawned processes)."""
        history = trainer.callback_metrics.get(f"{self.PREFIX}history")
        return tuple(self.history if history is None else history.tolist())
