"""Tests of neuromancer.psl.signals: shapes, bounds, reproducibility and input validation."""
import numpy as np
import pytest

from neuromancer.psl import signals

GENERATORS = [signals.step, signals.periodic, signals.sines, signals.walk, signals.noise, signals.spline, signals.arma,
              signals.prbs, signals.beta, signals.beta_walk_mean, signals.beta_walk_max_step, signals.nd_walk]


@pytest.mark.parametrize("generator", GENERATORS)
def test_signal_shape_and_bounds(generator):
    low, high = np.array([-2.0, 1.0, 0.0]), np.array([3.0, 1.5, 10.0])
    values = generator(200, 3, min=low, max=high, rng=np.random.default_rng(0))
    assert values.shape == (200, 3)
    assert np.all(values >= low - 1e-12) and np.all(values <= high + 1e-12)


@pytest.mark.parametrize("generator", GENERATORS)
def test_signal_reproducible_with_seeded_rng(generator):
    first = generator(100, 2, rng=np.random.default_rng(7))
    again = generator(100, 2, rng=np.random.default_rng(7))
    other = generator(100, 2, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    if generator is not signals.periodic:  # periodic without phase offset is deterministic
        assert not np.array_equal(first, other)


@pytest.mark.parametrize("generator", [signals.periodic, signals.sines, signals.walk, signals.noise, signals.arma])
def test_rescaled_signals_span_the_whole_range(generator):
    values = generator(300, 2, min=-1.0, max=4.0, rng=np.random.default_rng(1))
    np.testing.assert_allclose(values.min(axis=0), [-1.0, -1.0])
    np.testing.assert_allclose(values.max(axis=0), [4.0, 4.0])


def test_step_holds_each_level_for_equal_segments():
    values = signals.step(20, 1, randsteps=3, rng=np.random.default_rng(0))
    assert len(np.unique(values[:7])) == 1 and len(np.unique(values[7:14])) == 1 and len(np.unique(values[14:])) == 1
    assert len(np.unique(values)) == 3


def test_step_draws_levels_from_given_values():
    values = signals.step(50, 2, randsteps=10, values=[0.1, 0.5, 0.9], rng=np.random.default_rng(0))
    assert set(np.unique(values)) <= {0.1, 0.5, 0.9}


def test_periodic_has_the_requested_number_of_periods():
    values = signals.periodic(1001, 1, min=-1.0, max=1.0, periods=4)[:, 0]
    np.testing.assert_allclose(values[:751], values[250:], atol=1e-12)  # 1000 intervals / 4 periods
    assert np.corrcoef(values, np.sin(np.linspace(0, 8 * np.pi, 1001)))[0, 1] > 0.99999


def test_square_wave_takes_only_the_bounds():
    values = signals.periodic(100, 2, min=2.0, max=5.0, periods=3, form="square")
    assert set(np.unique(values)) == {2.0, 5.0}


def test_unbounded_walk_starts_at_min_and_has_sigma_steps():
    values = signals.walk(20001, 1, min=3.0, max=5.0, sigma=0.2, bound=False, rng=np.random.default_rng(0))
    assert values[0, 0] == 3.0
    assert np.diff(values[:, 0]).std() == pytest.approx(0.2, rel=0.03)


def test_registry_names_generators():
    assert set(signals.signals) == {"arma", "beta", "beta_walk_max_step", "beta_walk_mean", "noise", "prbs", "sawtooth",
                                    "sin", "sines", "spline", "square", "step", "walk"}  # upstream 1.5's keys
    assert signals.signals["walk"] is signals.walk and signals.signals["spline"] is signals.spline
    np.testing.assert_array_equal(signals.signals["square"](10, 1), signals.periodic(10, 1, form="square"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(nsim=0, d=1), "nsim"), (dict(nsim=5, d=-1), "d=-1"), (dict(nsim=5, d=1, min=2.0, max=1.0), "exceeds max"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        signals.walk(**kwargs)


def test_unknown_waveform_raises():
    with pytest.raises(ValueError, match="form='triangle'"):
        signals.periodic(10, 1, form="triangle")


def test_np_softmax_normalizes_along_the_axis():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]])
    weights = signals.np_softmax(x, dim=-1)
    np.testing.assert_allclose(weights[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    np.testing.assert_allclose(weights[1], [1 / 3] * 3)  # no overflow for large scores
    np.testing.assert_allclose(signals.np_softmax(x, dim=0).sum(axis=0), 1.0)


def test_spline_passes_through_given_knots_and_is_smooth():
    knots = np.array([[0.0], [1.0], [0.5], [0.8]])
    values = signals.spline(301, 1, min=-1.0, max=2.0, values=knots)
    np.testing.assert_allclose(values[[0, 100, 200, 300], 0], knots[:, 0], atol=0.02)  # knots at t = 0, 100, 200, 300
    assert np.abs(np.diff(values[:, 0], 2)).max() < 1e-3
    random = signals.spline(500, 2, min=3.0, max=4.0, n_interpolants=10, rng=np.random.default_rng(0))
    assert random.shape == (500, 2) and np.all((random >= 3.0) & (random <= 4.0))
    with pytest.raises(ValueError, match="at least two knots"):
        signals.spline(10, 2, values=np.ones((4, 3)))


def test_arma_unbounded_is_a_weighted_running_average_plus_filtered_noise():
    values = signals.arma(2000, 2, q=5, p=3, bound=False, rng=np.random.default_rng(0))
    assert values.shape == (2000, 2)
    late = values[1000:]  # the AR part has settled; what is left is noise filtered by positive weights summing to one
    assert 0.2 < late.std(axis=0).min() and late.std(axis=0).max() < 1.0
    lag_one = [np.corrcoef(late[1:, k], late[:-1, k])[0, 1] for k in range(2)]
    assert min(lag_one) > 0.3  # the moving average correlates neighbouring samples
    with pytest.raises(ValueError, match="p=0 and q=0"):
        signals.arma(10, 1, p=0, q=0)
    with pytest.raises(ValueError, match="q=-1"):
        signals.arma(10, 1, q=-1)


def test_prbs_switches_between_the_two_levels_at_rate_one_minus_p():
    values = signals.prbs(20000, 2, min=[-1.0, 2.0], max=[1.0, 5.0], p=0.8, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(values[0], [-1.0, 2.0])
    assert set(np.unique(values[:, 0])) == {-1.0, 1.0} and set(np.unique(values[:, 1])) == {2.0, 5.0}
    switch_rate = (np.diff(values, axis=0) != 0).mean()
    assert switch_rate == pytest.approx(0.2, abs=0.01)
    with pytest.raises(ValueError, match="probability"):
        signals.prbs(10, 1, p=1.5)


def test_beta_samples_have_the_beta_mean():
    values = signals.beta(20000, 1, min=2.0, max=4.0, alpha=2.0, beta=6.0, rng=np.random.default_rng(0))
    assert values.mean() == pytest.approx(2.0 + 2.0 * 2.0 / 8.0, abs=0.01)
    with pytest.raises(ValueError, match="alpha"):
        signals.beta(10, 1, alpha=0.0)


def test_beta_walk_max_step_moves_rarely_and_by_at_most_max_step():
    values = signals.beta_walk_max_step(5000, 2, min=0.0, max=10.0, max_step=0.5, x0=5.0, p=0.3,
                                        rng=np.random.default_rng(0))
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values[0], [5.0, 5.0])
    steps = np.abs(np.diff(values, axis=0))
    assert steps.max() <= 0.5 + 1e-5
    assert (steps[:, 0] > 0).mean() == pytest.approx(0.3, abs=0.03)


def test_beta_walk_mean_moves_with_probability_p_times_q():
    values = signals.beta_walk_mean(10000, 1, min=-1.0, max=1.0, p=0.5, q=0.4, rng=np.random.default_rng(0))
    assert (np.diff(values[:, 0]) != 0).mean() == pytest.approx(0.2, abs=0.02)
    limited = signals.beta_walk_mean(2000, 1, max_step=0.01, rng=np.random.default_rng(1))
    assert np.abs(np.diff(limited[:, 0])).max() <= 0.01 + 1e-6


def test_nd_walk_step_lengths_follow_the_granularity():
    values = signals.nd_walk(3000, 2, min=0.0, max=1.0, x0=0.5, max_step=0.1, p=1.0, granularity=1,
                             rng=np.random.default_rng(0))
    steps = np.abs(np.diff(values, axis=0))
    at_edge = (values[1:] == 0.0) | (values[1:] == 1.0)
    np.testing.assert_allclose(steps[~at_edge], 0.1, atol=1e-6)  # full steps except where clipped at a bound
    coarse = signals.nd_walk(3000, 1, max_step=0.1, p=1.0, granularity=4, rng=np.random.default_rng(0))[:, 0]
    unclipped = np.abs(np.diff(coarse))[(coarse[1:] > 0.0) & (coarse[1:] < 1.0)]
    multiples = unclipped / 0.025  # n * max_step / granularity with n in 1..4
    np.testing.assert_allclose(multiples, np.clip(np.round(multiples), 1, 4), atol=1e-4)


def test_nd_walk_avoiding_edges_stays_nearer_the_middle():
    kwargs = dict(min=0.0, max=1.0, x0=0.5, max_step=0.05, p=1.0, rng=np.random.default_rng(0))
    centred = signals.nd_walk(20000, 1, avoid_edge=True, **kwargs)
    assert np.abs(centred - 0.5).mean() < 0.15


@pytest.mark.parametrize("generator", [signals.beta_walk_mean, signals.beta_walk_max_step, signals.nd_walk])
def test_bounded_walks_reject_bad_arguments(generator):
    with pytest.raises(ValueError, match="x0="):
        generator(10, 1, min=0.0, max=1.0, x0=2.0)
    with pytest.raises(ValueError, match="max_step"):
        generator(10, 1, max_step=-1.0)
    with pytest.raises(ValueError, match="p="):
        generator(10, 1, p=-0.1)
