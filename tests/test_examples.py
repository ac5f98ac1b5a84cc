"""The shipped examples and the README's code run end to end in quick mode and write what they promise."""
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(args, cwd, timeout=600):
    """Run a Python script in ``cwd`` in quick mode and offline; fail with its output on error."""
    env = {**os.environ, "NEUROMANCER_QUICK": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_DIR": str(cwd), "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_lightning_rosenbrock_example_writes_its_plot_and_checkpoint(tmp_path):
    _run([str(EXAMPLES / "lightning_rosenbrock.py"), "--out", str(tmp_path / "out")], cwd=tmp_path)
    figure = tmp_path / "out" / "lightning_rosenbrock.png"
    image = matplotlib.image.imread(figure)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas
    assert (tmp_path / "out" / "weights" / "rosenbrock.ckpt").stat().st_size > 0


@pytest.mark.slow
def test_lightning_sweep_example_runs_offline_and_reports_the_best_run(tmp_path):
    result = _run([str(EXAMPLES / "lightning_sweep.py")], cwd=tmp_path)
    assert "best run" in result.stdout
    assert list((tmp_path / "wandb").glob("offline-run-*")), "each sweep run leaves an offline wandb folder"
    assert list((tmp_path / "sweep_weights").rglob("*.ckpt")), "each sweep run checkpoints its best weights"


@pytest.mark.slow
def test_readme_training_snippet_runs_and_leaves_best_weights(tmp_path):
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    script = tmp_path / "readme_snippet.py"
    script.write_text(snippet + "\nimport math\n"
                      "_, dev, _, _ = data_setup_function(nsim=256)\n"
                      "out = problem(dev.collate_fn(dev.__getitems__(list(range(len(dev))))))\n"
                      "assert math.isfinite(out['dev_loss'].item())\n"
                      "print('README_OK', out['dev_loss'].item())\n")
    result = _run([str(script)], cwd=tmp_path)
    assert "README_OK" in result.stdout
    assert list(tmp_path.glob("*.ckpt")), "LitTrainer saves the best weights to weight_path ('./') by default"
