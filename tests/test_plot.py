"""Tests of neuromancer.plot: every plot is written as a non-empty, readable PNG; bad input raises."""
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from neuromancer import plot  # noqa: E402


def _assert_png(path):
    assert path.stat().st_size > 1000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_open_loop_plot(tmp_path):
    rng = np.random.default_rng(0)
    figure = plot.pltOL(rng.random((50, 2)), Ytrain=rng.random((50, 2)), U=torch.rand(50, 1), D=rng.random(50),
                        X=rng.random((50, 3)), figname=tmp_path / "ol.png")
    _assert_png(tmp_path / "ol.png")
    assert [axis.get_title() for axis in figure.axes] == ["Outputs", "States", "Inputs", "Disturbances"]


def test_closed_loop_plot_with_references_and_bounds(tmp_path):
    rng = np.random.default_rng(1)
    Y = rng.random((1, 60, 3))  # leading dimensions are flattened into time
    figure = plot.pltCL(Y, R=rng.random((60, 1)), U=rng.random((60, 2)), ctrl_outputs=[1], Ymin=0.0, Ymax=1.0,
                        Umin=[0.0, -1.0], Umax=np.ones((60, 2)), figname=tmp_path / "cl.png")
    _assert_png(tmp_path / "cl.png")
    outputs = figure.axes[0]
    assert len(outputs.lines) == 1 + 1 + 2  # controlled output, reference, two bounds
    with pytest.raises(ValueError, match="ctrl_outputs"):
        plot.pltCL(Y, ctrl_outputs=[5], figname=tmp_path / "bad.png")


def test_phase_portraits_2d_and_3d(tmp_path):
    t = np.linspace(0, 6, 100)
    plot.pltPhase(np.stack([np.sin(t), np.cos(t)], 1), figname=tmp_path / "p2.png")
    plot.pltPhase(np.stack([np.sin(t), np.cos(t), t], 1), figname=tmp_path / "p3.png")
    _assert_png(tmp_path / "p2.png")
    _assert_png(tmp_path / "p3.png")
    with pytest.raises(ValueError, match="cannot plot a scalar"):
        plot.pltPhase(np.float64(1.0))


def test_import_does_not_load_matplotlib_or_scipy():
    import subprocess

    code = ("import sys, neuromancer.plot, neuromancer.psl, neuromancer.dynamics, neuromancer.modules.solvers; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'scipy'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
