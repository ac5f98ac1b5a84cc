"""Tests of sweep configuration checking and of how each wandb parameter form is drawn."""
import math
import statistics

import numpy as np
import optuna
import pytest

from neuromancer.trainers.sweep_config import (
    MAX_GRID_POINTS,
    SweepConfigError,
    grid_values,
    parse_sweep_config,
    sample_value,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def plan_of(parameters, method="random", **extra):
    return parse_sweep_config({"method": method, "parameters": parameters, **extra}, default_metric="dev_loss")


def only_parameter(spec, method="random"):
    (parameter,) = plan_of({"p": spec}, method).parameters
    return parameter


def draws(spec, n=2000, seed=0):
    parameter = only_parameter(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [sample_value(parameter, study.ask(), grid=False) for _ in range(n)]


@pytest.mark.parametrize("config, match", [
    ({"method": "random"}, "no 'parameters'"),
    ({"method": "hyperopt", "parameters": {"lr": {"value": 1}}}, r"\['method'\] is 'hyperopt'"),
    ({"parameters": {"lr": {"value": 1}}}, r"\['method'\] is None"),
    ({"method": "random", "paramters": {}, "parameters": {"lr": {"value": 1}}}, "unknown key.*paramters"),
    ({"method": "random", "parameters": {}}, "non-empty dict"),
    ({"method": "random", "parameters": {"lr": 0.1}}, "parameter 'lr' must be a dict"),
    ({"method": "random", "parameters": {"lr": {"distribution": "pareto", "min": 1, "max": 2}}},
     "parameter 'lr' has distribution 'pareto'"),
    ({"method": "random", "parameters": {"lr": {"distribution": "beta", "a": 2}}}, r"'lr'.*'beta'.*needs \['b'\]"),
    ({"method": "random", "parameters": {"n": {"distribution": "int_uniform", "min": 1.5, "max": 4}}},
     "'n'.*'int_uniform'.*integers"),
    ({"method": "random", "parameters": {"lr": {"min": 0.5, "max": 0.1}}}, "'lr'.*'min' must be below 'max'"),
    ({"method": "random", "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.0, "max": 1.0}}},
     "'lr'.*must be > 0"),
    ({"method": "random", "parameters": {"lr": {"distribution": "normal", "sigma": -1.0}}},
     "'lr'.*'sigma' must be > 0"),
    ({"method": "random", "parameters": {"lr": {"distribution": "uniform", "min": "0", "max": 1}}},
     "'lr'.*'min' must be a number"),
    ({"method": "random", "parameters": {"lr": {"values": [1, 2], "min": 0}}}, "'lr'.*unknown key.*'min'"),
    ({"method": "random", "parameters": {"lr": {"mu": 0.0}}}, "'lr' has keys \\['mu'\\] and no 'distribution'"),
    ({"method": "random", "parameters": {"lr": {"values": []}}}, "'lr'.*non-empty list"),
    ({"method": "random", "parameters": {"bs": {"values": [16, 64], "probabilities": [0.5, 0.6]}}},
     "'bs'.*'probabilities' must be 2 non-negative numbers"),
    ({"method": "random", "parameters": {"net": {"parameters": {"width": {"values": [1]}}, "values": [2]}}},
     "parameter 'net' \\(nested\\) has unknown key"),
    ({"method": "random", "parameters": {"a.b": {"value": 1}}}, "without '.'"),
    ({"method": "random", "parameters": {"lr": {"value": 1}}, "metric": {"name": "dev_loss", "goal": "lower"}},
     r"\['goal'\] is 'lower'"),
    ({"method": "random", "parameters": {"lr": {"value": 1}}, "metric": "dev_loss"}, "string 'name'"),
    ({"method": "random", "parameters": {"lr": {"value": 1}}, "run_cap": 0}, "'run_cap'.*positive integer"),
])
def test_bad_configs_are_rejected_naming_the_part(config, match):
    with pytest.raises(SweepConfigError, match=match):
        parse_sweep_config(config, default_metric="dev_loss")


def test_a_config_that_is_not_a_dict_is_a_type_error():
    with pytest.raises(TypeError, match="sweep_config must be a dict"):
        parse_sweep_config([("method", "random")], default_metric="dev_loss")


@pytest.mark.parametrize("spec", [
    {"min": 0.001, "max": 0.1},
    {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    {"distribution": "normal", "mu": 0.0, "sigma": 1.0},
    {"distribution": "q_normal", "q": 1},
    {"distribution": "beta", "a": 2, "b": 2},
])
def test_grid_over_a_continuous_or_unbounded_form_is_rejected(spec):
    with pytest.raises(SweepConfigError, match="parameter 'p' uses distribution .*'grid' cannot enumerate"):
        only_parameter(spec, method="grid")


def test_grid_with_too_many_points_is_rejected():
    with pytest.raises(SweepConfigError, match=f"more than {MAX_GRID_POINTS}"):
        only_parameter({"distribution": "q_uniform", "min": 0, "max": 1, "q": 1e-6}, method="grid")


def test_metric_defaults_to_the_trainer_metric_minimized_and_is_given_to_wandb():
    plan = plan_of({"lr": {"value": 1}})
    assert (plan.metric_name, plan.goal, plan.target) == ("dev_loss", "minimize", None)
    assert plan.wandb_config["metric"] == {"name": "dev_loss", "goal": "minimize"}
    plan = plan_of({"lr": {"value": 1}}, metric={"name": "test_loss", "goal": "maximize", "target": 2.0})
    assert (plan.metric_name, plan.goal, plan.target) == ("test_loss", "maximize", 2.0)
    assert plan.better(3.0, 2.0) and not plan.better(1.0, 2.0)


@pytest.mark.parametrize("spec, expected", [
    ({"value": 3}, "constant"),
    ({"values": [1, 2]}, "categorical"),
    ({"min": 1, "max": 5}, "int_uniform"),
    ({"min": 1, "max": 5.0}, "uniform"),
    ({"distribution": "q_log_uniform_values", "min": 1, "max": 100}, "q_log_uniform_values"),
])
def test_distribution_is_inferred_as_wandb_does(spec, expected):
    parameter = only_parameter(spec)
    assert parameter.distribution == expected


def test_wandb_defaults_fill_missing_settings():
    assert dict(only_parameter({"distribution": "q_normal"}).settings) == {"mu": 0.0, "sigma": 1.0, "q": 1}


def test_nested_parameters_flatten_to_dotted_names_under_one_top_level_name():
    nested = {"width": {"values": [8, 16]}, "act": {"parameters": {"slope": {"value": 0.1}}}}
    plan = plan_of({"net": {"parameters": nested}, "lr": {"value": 0.1}})
    assert [p.name for p in plan.parameters] == ["net.width", "net.act.slope", "lr"]
    assert plan.top_level_names == ("net", "lr")


def test_hyperband_schedule_from_min_iter_or_from_max_iter_and_s():
    plan = plan_of({"lr": {"value": 1}}, early_terminate={"type": "hyperband", "min_iter": 2})
    assert (plan.hyperband.min_iter, plan.hyperband.eta, plan.hyperband.max_iter) == (2, 3, None)
    plan = plan_of({"lr": {"value": 1}}, early_terminate={"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3})
    assert (plan.hyperband.min_iter, plan.hyperband.max_iter) == (27 // 3 ** 2, 27)


@pytest.mark.parametrize("early_terminate, match", [
    ({"type": "envelope"}, "hyperband"),
    ({"type": "hyperband", "min_iter": 2, "strict": True}, "'strict'"),
    ({"type": "hyperband", "max_iter": 27}, "needs 'min_iter', or 'max_iter' together with 's'"),
    ({"type": "hyperband", "min_iter": 2, "eta": 1}, r"\['eta'\] must be an integer >= 2"),
    ({"type": "hyperband", "min_iter": 0}, r"\['min_iter'\] must be a positive integer"),
])
def test_bad_early_terminate_is_rejected(early_terminate, match):
    with pytest.raises(SweepConfigError, match=match):
        plan_of({"lr": {"value": 1}}, early_terminate=early_terminate)


@pytest.mark.parametrize("spec, expected", [
    ({"values": [[8, 8], [16]]}, [[8, 8], [16]]),
    ({"values": ["a", "b"], "probabilities": [0.9, 0.1]}, ["a", "b"]),
    ({"min": 2, "max": 5}, [2, 3, 4, 5]),
    ({"distribution": "q_uniform", "min": 16, "max": 64, "q": 16}, [16, 32, 48, 64]),
    ({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25}, [0.0, 0.25, 0.5, 0.75, 1.0]),
    ({"distribution": "q_log_uniform_values", "min": 10, "max": 40, "q": 10}, [10, 20, 30, 40]),
    ({"distribution": "q_beta", "a": 1, "b": 1, "q": 0.5}, [0.0, 0.5, 1.0]),
])
def test_grid_values_enumerate_what_the_form_can_produce(spec, expected):
    values = grid_values(only_parameter(spec, method="grid"))
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


def test_grid_trial_picks_only_grid_points_and_any_objects():
    parameter = only_parameter({"values": [[8, 8], [16]]}, method="grid")
    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"p": [0, 1]}, seed=0))
    picked = [sample_value(parameter, study.ask(), grid=True) for _ in range(2)]
    assert sorted(picked) == [[8, 8], [16]]


def within(samples, low, high):
    return all(low <= s <= high for s in samples)


def test_constant_is_its_value_and_adds_nothing_to_the_search():
    study = optuna.create_study()
    trial = study.ask()
    assert sample_value(only_parameter({"value": [1, 2]}), trial, grid=False) == [1, 2]
    assert trial.params == {}


def test_uniform_and_int_uniform_cover_their_range():
    uniform = draws({"min": 2.0, "max": 4.0})
    assert within(uniform, 2.0, 4.0)
    assert statistics.mean(uniform) == pytest.approx(3.0, abs=4 * (2 / math.sqrt(12)) / math.sqrt(len(uniform)))
    ints = draws({"min": 1, "max": 4}, n=400)
    assert set(ints) == {1, 2, 3, 4} and all(type(v) is int for v in ints)


@pytest.mark.parametrize("spec, low, high", [
    ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}, 1e-4, 1e-1),
    ({"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-1}, 1e-4, 1e-1),
    ({"distribution": "log_uniform", "min": -4.0, "max": 1.0}, math.exp(-4.0), math.exp(1.0)),
    ({"distribution": "inv_log_uniform", "min": -1.0, "max": 4.0}, math.exp(-4.0), math.exp(1.0)),
])
def test_log_forms_are_log_uniform_on_their_interval(spec, low, high):
    samples = draws(spec)
    assert within(samples, low, high)
    logs = np.log(samples)
    width = math.log(high) - math.log(low)
    assert logs.mean() == pytest.approx((math.log(low) + math.log(high)) / 2, abs=4 * width / math.sqrt(12 * len(logs)))
    assert logs.std() == pytest.approx(width / math.sqrt(12), rel=0.05)


@pytest.mark.parametrize("spec, q, integral", [
    ({"distribution": "q_uniform", "min": 16, "max": 128, "q": 16}, 16, True),
    ({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1}, 0.1, False),
    ({"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 5}, 5, True),
    ({"distribution": "q_normal", "mu": 10.0, "sigma": 3.0, "q": 2}, 2, True),
    ({"distribution": "q_log_normal", "mu": 1.0, "sigma": 0.5, "q": 0.5}, 0.5, False),
    ({"distribution": "q_beta", "a": 2, "b": 5, "q": 0.05}, 0.05, False),
])
def test_quantized_forms_give_multiples_of_q(spec, q, integral):
    samples = draws(spec, n=300)
    assert all(abs(s / q - round(s / q)) < 1e-9 for s in samples)
    assert all(isinstance(s, int) == integral for s in samples)


def test_normal_and_log_normal_have_their_mean_and_spread():
    normal = np.array(draws({"distribution": "normal", "mu": 3.0, "sigma": 2.0}))
    assert normal.mean() == pytest.approx(3.0, abs=4 * 2.0 / math.sqrt(len(normal)))
    assert normal.std() == pytest.approx(2.0, rel=0.08)
    log_normal = np.log(draws({"distribution": "log_normal", "mu": -1.0, "sigma": 0.5}))
    assert log_normal.mean() == pytest.approx(-1.0, abs=4 * 0.5 / math.sqrt(len(log_normal)))
    assert log_normal.std() == pytest.approx(0.5, rel=0.08)


def test_beta_has_its_mean_and_inverse_cdf():
    from scipy import stats

    samples = np.array(draws({"distribution": "beta", "a": 2.0, "b": 6.0}))
    assert within(samples, 0.0, 1.0)
    assert samples.mean() == pytest.approx(2 / 8, abs=4 * stats.beta(2, 6).std() / math.sqrt(len(samples)))
    fixed = optuna.trial.FixedTrial({"p:quantile": 0.9})
    assert sample_value(only_parameter({"distribution": "beta", "a": 2.0, "b": 6.0}), fixed, grid=False) == \
        pytest.approx(stats.beta.ppf(0.9, 2, 6))


def test_normal_is_the_inverse_cdf_of_one_quantile():
    from scipy import stats

    fixed = optuna.trial.FixedTrial({"p:quantile": 0.975})
    value = sample_value(only_parameter({"distribution": "normal", "mu": 1.0, "sigma": 2.0}), fixed, grid=False)
    assert value == pytest.approx(1.0 + 2.0 * stats.norm.ppf(0.975))


def test_weighted_values_follow_their_probabilities():
    samples = draws({"values": ["a", "b", "c"], "probabilities": [0.6, 0.3, 0.1]}, n=3000)
    for value, probability in zip("abc", (0.6, 0.3, 0.1), strict=True):
        share = samples.count(value) / len(samples)
        assert share == pytest.approx(probability, abs=4 * math.sqrt(probability * (1 - probability) / len(samples)))


def test_unweighted_values_of_any_kind_are_each_drawn():
    samples = draws({"values": [[64, 64], [32], None]}, n=200)
    assert {repr(s) for s in samples} == {"[64, 64]", "[32]", "None"}
