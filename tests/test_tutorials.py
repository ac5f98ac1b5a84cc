"""The Lightning tutorials in examples/lightning_integration_examples run top to bottom in quick mode.

Each notebook is executed with nbclient in a scratch directory (the committed files are only
read), with ``NEUROMANCER_QUICK=1`` so that data and epochs shrink, and must raise no error and
print the numbers it promises. Part 3 runs on two CPU processes with ``ddp`` and must report equal
best dev losses. The README's Python blocks compile here; `test_docs_snippets` runs them.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "examples" / "lightning_integration_examples"


@pytest.fixture
def quick_environment(tmp_path, monkeypatch):
    """Quick mode, offline wandb writing into the scratch directory, no GPUs."""
    for name, value in {"NEUROMANCER_QUICK": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                        "WANDB_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def execute_notebook(relative_path: str, workdir: Path) -> str:
    """Execute a tutorial notebook in ``workdir``; return all its stdout text (a cell error fails the test)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(TUTORIALS / relative_path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("image/png" in output.get("data", {}) for output in outputs), "the notebook shows no plot"
    return "".join(output.get("text", "") for output in outputs if output.get("name") == "stdout")


def printed_number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in the output:\n{text[-3000:]}"
    return float(match.group(1))


@pytest.mark.slow
def test_part_1_compares_both_trainers_with_scipy(quick_environment):
    text = execute_notebook("Part_1_lightning_basics_tutorial.ipynb", quick_environment)
    assert text.count("objective gap mean") == 2  # the classic Trainer and LitTrainer
    assert printed_number(r"SciPy SLSQP: violation max ([-+.e\d]+)", text) < 1e-4
    assert (quick_environment / "part1_weights" / "himmelblau.ckpt").stat().st_size > 0


@pytest.mark.slow
def test_part_2_saves_loads_and_resumes_exactly(quick_environment):
    text = execute_notebook("Part_2_lightning_advanced_and_gpu_tutorial.ipynb", quick_environment)
    assert "No GPU on this machine" in text and "two cpu processes" in text  # the fallbacks of the GPU cells
    assert printed_number(r"after loading ([-+.e\d]+)", text) == 0.0
    assert printed_number(r"largest weight difference from the uninterrupted run: ([-+.e\d]+)", text) < 1e-6
    assert (quick_environment / "part2_resume" / "last.ckpt").stat().st_size > 0
    # the learning-rate sweep trained as one population gives every run its one-at-a-time result
    assert "the same runs succeeded: True" in text
    assert printed_number(r"best dev loss between the two sweeps: ([-+.e\d]+)", text) < 1e-5


@pytest.mark.slow
def test_deep_koopman_logs_reads_back_and_keeps_the_operator_stable(quick_environment):
    text = execute_notebook("other_examples/lightning_nonauto_DeepKoopman.ipynb", quick_environment)
    assert "'dev_loss'" in text and "'train_loss_epoch'" in text  # scalars read back from the event files
    assert printed_number(r"largest \|eigenvalue\| ([.\d]+)", text) <= 1.0
    assert printed_number(r"prediction error over \d+ steps: MSE ([-+.e\d]+)", text) >= 0.0
    assert list((quick_environment / "koopman_logs" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_cvxpy_layers_projection_is_feasible(quick_environment):
    pytest.importorskip("cvxpylayers")
    text = execute_notebook("other_examples/lightning_cvxpy_layers.ipynb", quick_environment)
    assert printed_number(r"projected ([-+.e\d]+)\n", text) < 1e-4
    assert printed_number(r"optimality gap f\(x\) - f\(x\*\): mean ([-+.e\d]+)", text) > -1e-4


@pytest.mark.slow
def test_custom_training_steps_hooks_and_classic_callback(quick_environment):
    text = execute_notebook("other_examples/lightning_custom_training_example.ipynb", quick_environment)
    weights = re.search(r"penalty weight used in each epoch: \[([^\]]*)\]", text)
    assert weights, text[-3000:]
    weights = [float(value) for value in weights.group(1).split(",")]
    assert len(weights) == 3 and weights[0] < weights[-1] == 50.0  # the step's schedule, as the callback saw it
    # the classic callback ran under both trainers: hooks called, one row per epoch, every batch counted
    assert "classic Trainer, callback record: 3 epochs, 12 batches, events ['begin_train', 'end_train']" in text
    assert "LitTrainer, callback record: 3 epochs, 12 batches, events ['begin_train', 'end_train']" in text
    assert re.search(r"multipliers \(disc, parabola\) after each epoch: \[\[[-.\d, ]+\](, \[[-.\d, ]+\]){2}\]", text)
    assert printed_number(r"feasibility updates taken: (\d+) of 12 batches", text) >= 0
    for run in ("fixed penalty", "scheduled weight", "multipliers \\+ hooks", "manual, two updates"):
        assert printed_number(rf"\n{run} +([.\d]+) ", text) > 0.0  # each run's best dev loss in the table


@pytest.mark.slow
def test_part_3_two_cpu_processes_match_one(quick_environment):
    out = quick_environment / "part3"
    run = subprocess.run([sys.executable, str(TUTORIALS / "Part_3_multi_GPU_example.py"), "--quick",
                          "--accelerator", "cpu", "--devices", "2", "--out", str(out)],
                         cwd=quick_environment, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    losses = [float(value) for value in re.findall(r"^\s+[12] \|\s+\d+ \|\s+[.\d]+ \|\s+([-.\d]+)$",
                                                   run.stdout, re.M)]
    assert len(losses) == 2, run.stdout
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)
    assert "same best dev loss" in run.stdout and "speed-up with 2 processes" in run.stdout


def readme_blocks():
    return re.findall(r"```python\n(.*?)```", (TUTORIALS / "README.md").read_text(), re.S)


def test_readme_blocks_compile():
    blocks = readme_blocks()
    assert len(blocks) >= 6
    for number, block in enumerate(blocks):
        compile(block, f"README.md python block {number}", "exec")
