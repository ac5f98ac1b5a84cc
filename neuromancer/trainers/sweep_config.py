"""Read a Weights & Biases sweep configuration and check all of it before any run starts.

``parse_sweep_config`` turns the user's dictionary (``method``, ``metric``, ``parameters``,
``early_terminate``, ``run_cap``, ...) into a :class:`SweepPlan`: every parameter, nested ones
included, becomes a :class:`SweepParameter` with its wandb distribution named and its settings
filled with wandb's defaults. Anything the sweep could not honour (an unknown key, method or
distribution, a bound of the wrong type, a continuous range under ``grid``, a hyperband setting
we cannot reproduce) raises :class:`SweepConfigError` naming the parameter and the form, so a
mistake costs nothing instead of a night of runs. The same module says how each form is drawn
by the local engine (:func:`sample_value`, through an Optuna trial) and enumerated by a grid
sweep (:func:`grid_values`), so the semantics of a form live in one place for both paths.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neuromancer.exceptions import NeuromancerError

if TYPE_CHECKING:
    import optuna

SWEEP_METHODS = ("random", "grid", "bayes")
METRIC_GOALS = ("minimize", "maximize")
_TOP_LEVEL_KEYS = ("method", "metric", "parameters", "early_terminate", "name", "description", "run_cap", "entity")
_METRIC_KEYS = ("name", "goal", "target")
_HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
# A grid over a quantized range lists every multiple of q in it; past this it is not a grid a
# person meant to run, and building it would only exhaust memory.
MAX_GRID_POINTS = 10_000
# Distributions the local engine draws as a quantile u in [0, 1] pushed through the inverse CDF;
# the clamp keeps the inverse CDF finite at the ends.
_QUANTILE_EPS = 1e-12

_REQUIRED = object()
# distribution -> {setting: default}; _REQUIRED marks a setting the user must give. wandb's
# documented defaults: mu=0, sigma=1, q=1.
_FORMS: dict[str, dict[str, Any]] = {
    "constant": {"value": _REQUIRED},
    "categorical": {"values": _REQUIRED, "probabilities": None},
    "categorical_w_probabilities": {"values": _REQUIRED, "probabilities": _REQUIRED},
    "int_uniform": {"min": _REQUIRED, "max": _REQUIRED},
    "uniform": {"min": _REQUIRED, "max": _REQUIRED},
    "q_uniform": {"min": _REQUIRED, "max": _REQUIRED, "q": 1},
    "log_uniform_values": {"min": _REQUIRED, "max": _REQUIRED},
    "q_log_uniform_values": {"min": _REQUIRED, "max": _REQUIRED, "q": 1},
    "inv_log_uniform_values": {"min": _REQUIRED, "max": _REQUIRED},
    "log_uniform": {"min": _REQUIRED, "max": _REQUIRED},
    "q_log_uniform": {"min": _REQUIRED, "max": _REQUIRED, "q": 1},
    "inv_log_uniform": {"min": _REQUIRED, "max": _REQUIRED},
    "normal": {"mu": 0.0, "sigma": 1.0},
    "q_normal": {"mu": 0.0, "sigma": 1.0, "q": 1},
    "log_normal": {"mu": 0.0, "sigma": 1.0},
    "q_log_normal": {"mu": 0.0, "sigma": 1.0, "q": 1},
    "beta": {"a": _REQUIRED, "b": _REQUIRED},
    "q_beta": {"a": _REQUIRED, "b": _REQUIRED, "q": 1},
}
_LOG_RANGES = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values",
               "log_uniform", "q_log_uniform", "inv_log_uniform")
_CATEGORICAL = ("categorical", "categorical_w_probabilities")
_GRID_FORMS = ("constant", "categorical", "categorical_w_probabilities", "int_uniform", "q_uniform",
               "q_log_uniform_values", "q_log_uniform", "q_beta")


class SweepConfigError(NeuromancerError, ValueError):
    """A sweep configuration that cannot be run as written; the message names the part and the fix."""


@dataclass(frozen=True)
class SweepParameter:
    """One swept value: where it goes in the run's config and how it is drawn.

    :param path: keys from the top of the config down, ``('lr',)`` or
        ``('net', 'width')`` for a nested parameter.
    :param distribution: the wandb distribution name, given or inferred.
    :param settings: the distribution's settings with wandb's defaults filled.
    """

    path: tuple[str, ...]
    distribution: str
    settings: Mapping[str, Any]

    @property
    def name(self) -> str:
        """Dotted name, unique within a sweep, used as the search engine's parameter name."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Hyperband:
    """wandb's ``early_terminate: {type: hyperband}`` as an epoch schedule.

    :param min_iter: the first bracket, in epochs.
    :param eta: the factor between brackets and the share of runs kept at each one.
    :param max_iter: the last bracket; ``None`` means the runs' own epoch count.
    """

    min_iter: int
    eta: int
    max_iter: int | None


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep configuration.

    :param method: ``'random'``, ``'grid'`` or ``'bayes'``.
    :param metric_name: the logged metric runs are ranked by.
    :param goal: ``'minimize'`` or ``'maximize'``.
    :param target: stop the sweep once a run reaches this value.
    :param parameters: every swept value, nested ones flattened.
    :param hyperband: early termination of runs, if asked for.
    :param run_cap: most runs the whole sweep makes, all processes together.
    :param name: the sweep's name.
    :param wandb_config: the user's configuration with the metric filled in, for wandb.
    """

    method: str
    metric_name: str
    goal: str
    target: float | None
    parameters: tuple[SweepParameter, ...]
    hyperband: Hyperband | None
    run_cap: int | None
    name: str | None
    wandb_config: dict

    @property
    def top_level_names(self) -> tuple[str, ...]:
        """Names at the top of a run's config, the ones routed to the trainer or the data setup."""
        return tuple(dict.fromkeys(parameter.path[0] for parameter in self.parameters))

    def better(self, value: float, than: float) -> bool:
        """Whether metric ``value`` beats ``than`` under this sweep's goal."""
        return value < than if self.goal == "minimize" else value > than


def parse_sweep_config(sweep_config: Mapping[str, Any], default_metric: str) -> SweepPlan:
    """Check a wandb sweep configuration and return its :class:`SweepPlan`.

    :param sweep_config: wandb's sweep dictionary: ``method`` (``'random'``,
        ``'grid'`` or ``'bayes'``), ``parameters`` (required), and optionally ``metric``
        (``{'name', 'goal', 'target'}``), ``early_terminate`` (hyperband), ``run_cap``, ``name``,
        ``description``, ``entity``.
    :param default_metric: metric name used when ``metric`` is absent (goal ``minimize``).
    :return: the checked plan.
    :raises SweepConfigError: (a ValueError) for anything that cannot be run as written.
    :raises TypeError: when ``sweep_config`` is not a mapping.
    """
    if not isinstance(sweep_config, Mapping):
        raise TypeError(f"sweep_config must be a dict like {{'method': 'random', 'parameters': {{...}}}}, "
                        f"got {type(sweep_config).__name__}")
    _reject_unknown_keys(sweep_config, _TOP_LEVEL_KEYS, "sweep_config")
    method = sweep_config.get("method", None)
    if method not in SWEEP_METHODS:
        raise SweepConfigError(f"sweep_config['method'] is {method!r}; use one of {', '.join(SWEEP_METHODS)}")
    if "parameters" not in sweep_config:
        raise SweepConfigError("sweep_config has no 'parameters'; add e.g. "
                               "{'parameters': {'learning_rate': {'min': 1e-4, 'max': 1e-2}}}")
    parameters = tuple(_parse_parameters(sweep_config["parameters"], ()))
    if method == "grid":
        for parameter in parameters:
            _check_grid_form(parameter)
    metric_name, goal, target = _parse_metric(sweep_config.get("metric"), default_metric)
    metric = {"name": metric_name, "goal": goal, **({} if target is None else {"target": target})}
    return SweepPlan(
        method=method, metric_name=metric_name, goal=goal, target=target, parameters=parameters,
        hyperband=_parse_early_terminate(sweep_config.get("early_terminate")),
        run_cap=_optional_positive_int(sweep_config, "run_cap"),
        name=_optional_string(sweep_config, "name"),
        wandb_config={**sweep_config, "metric": metric},
    )


def _reject_unknown_keys(mapping: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [key for key in mapping if key not in known]
    if unknown:
        raise SweepConfigError(f"{where} has unknown key(s) {unknown}; accepted keys are {', '.join(known)}")


def _optional_string(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    if value is not None and not isinstance(value, str):
        raise SweepConfigError(f"sweep_config[{key!r}] must be a string, got {value!r}")
    return value


def _optional_positive_int(mapping: Mapping[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    if value is not None and (not _is_int(value) or value < 1):
        raise SweepConfigError(f"sweep_config[{key!r}] must be a positive integer, got {value!r}")
    return value


def _parse_metric(metric: Any, default_metric: str) -> tuple[str, str, float | None]:
    if metric is None:
        return default_metric, "minimize", None
    if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str):
        raise SweepConfigError(f"sweep_config['metric'] must be a dict with a string 'name', e.g. "
                               f"{{'name': 'dev_loss', 'goal': 'minimize'}}; got {metric!r}")
    _reject_unknown_keys(metric, _METRIC_KEYS, "sweep_config['metric']")
    goal = metric.get("goal", "minimize")
    if goal not in METRIC_GOALS:
        raise SweepConfigError(f"sweep_config['metric']['goal'] is {goal!r}; use 'minimize' or 'maximize'")
    target = metric.get("target")
    if target is not None and not _is_number(target):
        raise SweepConfigError(f"sweep_config['metric']['target'] must be a number, got {target!r}")
    return metric["name"], goal, target


def _parse_early_terminate(spec: Any) -> Hyperband | None:
    if spec is None:
        return None
    where = "sweep_config['early_terminate']"
    if not isinstance(spec, Mapping) or spec.get("type") != "hyperband":
        raise SweepConfigError(f"{where} must be {{'type': 'hyperband', 'min_iter': ...}} "
                               f"(hyperband is wandb's only early termination); got {spec!r}")
    _reject_unknown_keys(spec, _HYPERBAND_KEYS, where)
    if spec.get("strict", False):
        raise SweepConfigError(f"{where}['strict'] = True is not supported: the local engine's hyperband "
                               f"(Optuna's HyperbandPruner) only has wandb's default, non-strict rule; drop 'strict'")
    eta = spec.get("eta", 3)
    if not _is_int(eta) or eta < 2:
        raise SweepConfigError(f"{where}['eta'] must be an integer >= 2, got {eta!r}")
    for key in ("min_iter", "max_iter", "s"):
        if key in spec and (not _is_int(spec[key]) or spec[key] < 1):
            raise SweepConfigError(f"{where}[{key!r}] must be a positive integer (epochs), got {spec[key]!r}")
    if "min_iter" in spec:
        return Hyperband(min_iter=spec["min_iter"], eta=eta, max_iter=spec.get("max_iter"))
    if "max_iter" in spec and "s" in spec:
        return Hyperband(min_iter=max(1, round(spec["max_iter"] / eta ** spec["s"])), eta=eta,
                         max_iter=spec["max_iter"])
    raise SweepConfigError(f"{where} needs 'min_iter', or 'max_iter' together with 's'; got {dict(spec)!r}")


def _parse_parameters(parameters: Any, prefix: tuple[str, ...]) -> list[SweepParameter]:
    where = _where(prefix, "parameters")
    if not isinstance(parameters, Mapping) or not parameters:
        raise SweepConfigError(f"{where} must be a non-empty dict of parameter name -> spec, got {parameters!r}")
    flat: list[SweepParameter] = []
    for name, spec in parameters.items():
        if not isinstance(name, str) or not name or "." in name:
            raise SweepConfigError(f"{where} has the name {name!r}; parameter names are non-empty strings without '.'")
        path = prefix + (name,)
        if isinstance(spec, Mapping) and "parameters" in spec:
            _reject_unknown_keys(spec, ("parameters",), f"parameter {'.'.join(path)!r} (nested)")
            flat.extend(_parse_parameters(spec["parameters"], path))
        else:
            flat.append(_parse_parameter(path, spec))
    return flat


def _where(prefix: tuple[str, ...], what: str) -> str:
    return f"sweep_config[{what!r}]" if not prefix else f"parameter {'.'.join(prefix)!r}'s {what!r}"


def _parse_parameter(path: tuple[str, ...], spec: Any) -> SweepParameter:
    label = f"parameter {'.'.join(path)!r}"
    if not isinstance(spec, Mapping):
        raise SweepConfigError(f"{label} must be a dict such as {{'values': [...]}} or {{'min': a, 'max': b}}, "
                               f"got {spec!r}")
    distribution = spec.get("distribution") or _infer_distribution(label, spec)
    if distribution not in _FORMS:
        raise SweepConfigError(f"{label} has distribution {distribution!r}, which is not a wandb distribution; "
                               f"use one of {', '.join(_FORMS)}")
    form = _FORMS[distribution]
    _reject_unknown_keys(spec, tuple(form) + ("distribution",), f"{label} (distribution {distribution!r})")
    missing = [key for key, default in form.items() if default is _REQUIRED and key not in spec]
    if missing:
        raise SweepConfigError(f"{label} (distribution {distribution!r}) needs {missing}")
    settings = {key: spec.get(key, default) for key, default in form.items()}
    _check_settings(label, distribution, settings)
    return SweepParameter(path=path, distribution=distribution, settings=settings)


def _infer_distribution(label: str, spec: Mapping[str, Any]) -> str:
    """wandb's rule when ``distribution`` is absent: value, values, or a min/max range."""
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if "min" in spec and "max" in spec:
        return "int_uniform" if _is_int(spec["min"]) and _is_int(spec["max"]) else "uniform"
    raise SweepConfigError(f"{label} has keys {sorted(spec)} and no 'distribution'; give 'value', 'values', "
                           f"'min' and 'max', nested 'parameters', or a 'distribution' with its settings")


def _check_settings(label: str, distribution: str, settings: dict[str, Any]) -> None:
    form = f"{label} (distribution {distribution!r})"
    numbers = [key for key in ("min", "max", "mu", "sigma", "a", "b", "q") if key in settings]
    for key in numbers:
        if not _is_number(settings[key]):
            raise SweepConfigError(f"{form}: {key!r} must be a number, got {settings[key]!r}")
    if distribution in _CATEGORICAL:
        _check_values(form, settings["values"], settings["probabilities"])
    if "min" in settings:
        if distribution == "int_uniform" and not (_is_int(settings["min"]) and _is_int(settings["max"])):
            raise SweepConfigError(f"{form}: 'min' and 'max' must be integers, "
                                   f"got {settings['min']!r}, {settings['max']!r}")
        if not settings["min"] < settings["max"]:
            raise SweepConfigError(f"{form}: 'min' must be below 'max', got {settings['min']!r} and "
                                   f"{settings['max']!r}; use {{'value': v}} for a constant")
        if distribution.endswith("_values") and settings["min"] <= 0:
            raise SweepConfigError(f"{form}: 'min' and 'max' are the values themselves and must be > 0, "
                                   f"got min={settings['min']!r}")
    for key in ("sigma", "a", "b", "q"):
        if key in settings and settings[key] <= 0:
            raise SweepConfigError(f"{form}: {key!r} must be > 0, got {settings[key]!r}")


def _check_values(form: str, values: Any, probabilities: Any) -> None:
    if not isinstance(values, (list, tuple)) or not values:
        raise SweepConfigError(f"{form}: 'values' must be a non-empty list, got {values!r}")
    if probabilities is None:
        return
    if (not isinstance(probabilities, (list, tuple)) or len(probabilities) != len(values)
            or not all(_is_number(p) and p >= 0 for p in probabilities)
            or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6)):
        raise SweepConfigError(f"{form}: 'probabilities' must be {len(values)} non-negative numbers, one per value, "
                               f"summing to 1; got {probabilities!r}")


def _check_grid_form(parameter: SweepParameter) -> None:
    if parameter.distribution not in _GRID_FORMS:
        raise SweepConfigError(
            f"parameter {parameter.name!r} uses distribution {parameter.distribution!r}, a continuous or unbounded "
            f"range that method 'grid' cannot enumerate; give it 'values', integer 'min'/'max', a q_uniform / "
            f"q_log_uniform_values step, or use method 'random' or 'bayes'")
    if parameter.distribution not in ("constant", *_CATEGORICAL, "int_uniform"):
        low, high = _quantized_step_range(parameter)
        if high - low + 1 > MAX_GRID_POINTS:
            raise SweepConfigError(f"parameter {parameter.name!r} ({parameter.distribution}) would put "
                                   f"{high - low + 1} points in the grid (more than {MAX_GRID_POINTS}); raise 'q'")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def grid_values(parameter: SweepParameter) -> list:
    """Every value a grid sweep visits for ``parameter`` (not called for constants).

    Categorical values in order (probabilities play no part in a grid, as in wandb),
    ``min..max`` for ``int_uniform``, and every multiple of ``q`` the quantized form can produce.
    """
    settings = parameter.settings
    if parameter.distribution in _CATEGORICAL:
        return list(settings["values"])
    if parameter.distribution == "int_uniform":
        return list(range(settings["min"], settings["max"] + 1))
    low, high = _quantized_step_range(parameter)
    return [_multiple_of(step, settings["q"]) for step in range(low, high + 1)]


def _quantized_step_range(parameter: SweepParameter) -> tuple[int, int]:
    """First and last multiple of q (as step counts) that a bounded quantized form can produce."""
    if parameter.distribution == "q_beta":
        low, high = 0.0, 1.0
    elif parameter.distribution == "q_uniform":
        low, high = parameter.settings["min"], parameter.settings["max"]
    else:
        low, high = _log_range(parameter)
    q = parameter.settings["q"]
    return round(low / q), round(high / q)


def _log_range(parameter: SweepParameter) -> tuple[float, float]:
    """The [low, high] interval on which a log-uniform form's values lie.

    ``*_values`` forms give the values' bounds; ``log_uniform`` gives exponents, X = exp(U(min, max));
    ``inv_log_uniform`` gives exponents of 1/X, X = exp(-U(min, max)). ``inv_log_uniform_values``
    (1/X log-uniform on [1/max, 1/min]) is the same law as ``log_uniform_values`` on [min, max],
    because the logarithm of 1/X is minus the logarithm of X.
    """
    low, high = parameter.settings["min"], parameter.settings["max"]
    if parameter.distribution.endswith("_values"):
        return low, high
    if parameter.distribution == "inv_log_uniform":
        return math.exp(-high), math.exp(-low)
    return math.exp(low), math.exp(high)


def _multiple_of(steps: int, q: int | float) -> int | float:
    """``steps * q``: an int when q is an int (so ``q_uniform`` batch sizes stay ints), else a float."""
    return steps * q if _is_int(q) else float(steps * q)


def _quantize(value: float, q: int | float) -> int | float:
    return _multiple_of(round(value / q), q)


def optuna_choices(choices: list) -> list:
    """Choices as Optuna can store them: the values if all are scalars, else their indices."""
    storable = all(value is None or isinstance(value, (bool, int, float, str)) for value in choices)
    return list(choices) if storable else list(range(len(choices)))


def suggest_choice(trial: optuna.Trial, name: str, choices: list) -> Any:
    """Let ``trial`` pick one of ``choices`` (any objects) and return the chosen value."""
    encoded = optuna_choices(choices)
    picked = trial.suggest_categorical(name, encoded)
    return choices[encoded.index(picked)]


def sample_value(parameter: SweepParameter, trial: optuna.Trial, grid: bool) -> Any:
    """Draw one value of ``parameter`` through an Optuna ``trial``, with wandb's semantics.

    Forms Optuna has natively (categorical, int and float ranges, log ranges) are suggested as
    such, so Optuna's samplers model them directly and its storage shows real values. Forms it
    lacks (normal, log-normal, beta, weighted categorical) are drawn as a quantile
    ``'<name>:quantile'`` in [0, 1] pushed through the inverse CDF: exact for random search, and
    a smooth, bounded coordinate for Bayesian search. ``q_*`` forms round to a multiple of q.

    :param parameter: what to draw.
    :param trial: the run's trial.
    :param grid: a grid sweep: pick among :func:`grid_values`.
    :return: the value for the run's config.
    """
    settings, distribution, name = parameter.settings, parameter.distribution, parameter.name
    if distribution == "constant":
        return settings["value"]
    if grid:
        return suggest_choice(trial, name, grid_values(parameter))
    if distribution in _CATEGORICAL:
        if settings["probabilities"] is None:
            return suggest_choice(trial, name, list(settings["values"]))
        return _weighted_pick(settings["values"], settings["probabilities"], _suggest_quantile(trial, name))
    if distribution == "int_uniform":
        return trial.suggest_int(name, settings["min"], settings["max"])
    if distribution in ("uniform", "q_uniform"):
        value = trial.suggest_float(name, settings["min"], settings["max"])
    elif distribution in _LOG_RANGES:
        value = trial.suggest_float(name, *_log_range(parameter), log=True)
    else:
        value = _from_quantile(distribution, settings, _suggest_quantile(trial, name))
    return _quantize(value, settings["q"]) if "q" in settings else value


def _suggest_quantile(trial: optuna.Trial, name: str) -> float:
    quantile = trial.suggest_float(f"{name}:quantile", 0.0, 1.0)
    return min(max(quantile, _QUANTILE_EPS), 1.0 - _QUANTILE_EPS)


def _weighted_pick(values: list, probabilities: list, quantile: float) -> Any:
    cumulative = 0.0
    for value, probability in zip(values, probabilities, strict=False):
        cumulative += probability
        if quantile < cumulative:
            return value
    return values[-1]


def _from_quantile(distribution: str, settings: Mapping[str, Any], quantile: float) -> float:
    """Inverse CDF of the normal, log-normal and beta forms at ``quantile``."""
    if distribution in ("beta", "q_beta"):
        from scipy.special import betaincinv

        return float(betaincinv(settings["a"], settings["b"], quantile))
    from statistics import NormalDist

    normal = NormalDist(settings["mu"], settings["sigma"]).inv_cdf(quantile)
    return math.exp(normal) if "log" in distribution else normal
