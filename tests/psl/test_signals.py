"""Tests of neuromancer.psl.signals: shapes, bounds, reproducibility and input validation."""
import numpy as np
import pytest

from neuromancer.psl import signals

GENERATORS = [signals.step, signals.periodic, signals.sines, signals.walk, signals.noise]


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


@pytest.mark.parametrize("generator", [signals.periodic, signals.sines, signals.walk, signals.noise])
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
    assert signals.signals["walk"] is signals.walk
    np.testing.assert_array_equal(signals.signals["square"](10, 1), signals.periodic(10, 1, form="square"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(nsim=0, d=1), "nsim"), (dict(nsim=5, d=0), "d=0"), (dict(nsim=5, d=1, min=2.0, max=1.0), "exceeds max"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        signals.step(**kwargs)


def test_unknown_waveform_raises():
    with pytest.raises(ValueError, match="form='triangle'"):
        signals.periodic(10, 1, form="triangle")
