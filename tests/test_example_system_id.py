"""The neural ODE system identification example runs in quick mode, saves its figure and beats the naive baseline."""
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "neural_ode_system_id.py"


def _printed_mse(stdout: str, label: str) -> float:
    """The number printed after ``open-loop test MSE (<label>):``; fails the test if the line is missing."""
    match = re.search(rf"open-loop test MSE \({re.escape(label)}\): ([0-9.eE+-]+)", stdout)
    assert match, f"no open-loop MSE printed for {label!r}:\n{stdout}"
    return float(match.group(1))


@pytest.mark.slow
def test_neural_ode_example_learns_a_model_that_beats_the_constant_level_baseline(tmp_path):
    env = {**os.environ, "NEUROMANCER_QUICK": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(tmp_path / "out")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"example failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    image = matplotlib.image.imread(tmp_path / "out" / "neural_ode_system_id.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas

    model_mse = _printed_mse(result.stdout, "neural ODE")
    baseline_mse = _printed_mse(result.stdout, "constant-level baseline")
    assert 0 <= model_mse < baseline_mse / 5, (model_mse, baseline_mse)
    assert (tmp_path / "out" / "weights" / "neural_ode.ckpt").stat().st_size > 0
