"""Tests of neuromancer.psl.plot and EmulatorBase.show: figures are written as readable PNG files."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from neuromancer.psl import plot, systems  # noqa: E402


def _assert_png(path):
    assert path.stat().st_size > 1000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_psl_plots_write_png(tmp_path):
    rng = np.random.default_rng(0)
    Y, U, X = rng.random((40, 2)), rng.random((40, 1)), rng.random((40, 3))
    plot.pltOL(Y, Ytrain=Y + 0.1, U=U, X=X, figname=tmp_path / "ol.png")
    plot.pltPhase(X, Xtrain=X * 0.5, figname=tmp_path / "phase.png")
    plot.pltCL(Y, U=U, R=Y * 0.9, Ymin=0.0, Ymax=1.0, Umin=0.0, Umax=1.0, figname=tmp_path / "cl.png")
    for name in ("ol.png", "phase.png", "cl.png"):
        _assert_png(tmp_path / name)


def test_phase_portrait_needs_two_states(tmp_path):
    with pytest.raises(ValueError, match="at least 2 state columns"):
        plot.pltPhase(np.zeros((10, 1)), figname=tmp_path / "x.png")


def test_show_plots_a_simulation(tmp_path):
    system = systems["TwoTank"](set_stats=False)
    figure = system.show(system.simulate(nsim=30), figname=tmp_path / "show.png")
    _assert_png(tmp_path / "show.png")
    assert len(figure.axes) == 3  # outputs, states, inputs
