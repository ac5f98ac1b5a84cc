"""Part 3: train a heavy parametric quadratic program in several processes with ``strategy='ddp'``.

The problem: for every parameter vector ``p`` (30 entries, each in [-1, 1]) find the ``x`` (60
entries) that solves

    minimize    0.5 x' Q x + (c + F p)' x
    subject to  G x <= h + S p                (40 inequalities)

with fixed random matrices ``Q`` (positive definite), ``c``, ``F``, ``G``, ``h``, ``S``. An
MLP (30 -> 60, three hidden layers of 512 units) learns the map ``p -> x`` on the
penalised objective (differentiable parametric programming). The matrices are buffers of the
module that evaluates the objective, so nothing is moved by hand: the same code runs on CPUs and
GPUs.

How the run is split over processes: with ``--devices 2`` Lightning's ``ddp`` strategy runs this
script once more per extra device; every process builds the same problem, reads its share of each
batch, and the gradients are averaged before each step. The script trains twice:

1. with the devices given on the command line (``ddp`` when there are several), then
2. (in the first process, once that run is over) with one device, in a fresh Python process, as
   the reference,

and prints the time per epoch of each, the speed-up, and both best dev losses.

Why both runs end with the same best dev loss: every step uses the whole training set as one
global batch (each of ``n`` processes gets ``1/n`` of it), so the averaged gradient of two
processes is the full-batch gradient one process computes; only the order of floating-point
additions differs. The runs therefore agree up to rounding, which Adam's steps carry forward; we
check the best dev losses agree to a relative tolerance of 1e-3 (in practice they agree to about
1e-6). With mini-batches smaller than the training set they would not: one process and two
processes shuffle with different samplers, so they visit different batches and end at different,
equally good, weights.

On CPUs each process uses one thread, so "one process" is one core and "two processes" two cores
(a single process could also use both cores through intra-op threads; on this problem that is
what the two-process run competes with). On GPUs each process drives one GPU.

Usage::

    python Part_3_multi_GPU_example.py --accelerator cpu --devices 2 [--quick]
    python Part_3_multi_GPU_example.py --accelerator gpu --devices 0 1
    torchrun --nproc_per_node 2 Part_3_multi_GPU_example.py --accelerator cpu --devices 2
    torchrun --standalone --nproc-per-node 2 --max-restarts 3 Part_3_multi_GPU_example.py --devices 2 --resume

On several machines, start it on each (with torchrun, or with ``srun`` under SLURM) and add
``--num-nodes N``; ``--devices`` is then the number of devices per machine. ``Part_3_slurm.sh``
beside this script is the sbatch script for SLURM (``sbatch Part_3_slurm.sh --quick``).

``--resume`` makes one command line serve the first start and every restart: each run continues
from its latest checkpoint in ``--out`` when there is one (a requeued SLURM job, torchrun's
``--max-restarts``, a plain re-run) and starts afresh when there is none; a resumed run ends with
the best dev loss of an uninterrupted one. The docs page "Clusters" says more.

``--quick`` (or ``NEUROMANCER_QUICK=1``) shrinks the data, the network and the epochs to run in
seconds. Checkpoints and logs go to ``--out`` (default ``part3_out``): ``run_<processes>/weights``
holds a run's best checkpoint and ``last.ckpt``, ``run_<processes>`` its logs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.modules import blocks
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainer import LitTrainer

N_PARAMETERS, N_VARIABLES, N_CONSTRAINTS = 30, 60, 40
PENALTY = 20.0
RELATIVE_TOLERANCE = 1e-3
# Variables that torchrun and Lightning's launcher set to place a process in a group; the
# one-process reference run must not inherit them, or it would try to join the group.
PROCESS_GROUP_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                           "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK")


class QuadraticProgram(torch.nn.Module):
    """Objective value and constraint residuals of the parametric QP; the data are buffers.

    Reads ``x`` ``[B, 60]`` and ``p`` ``[B, 30]``; returns the objective ``[B, 1]`` and the
    residuals ``G x - h - S p`` ``[B, 40]`` (feasible where every residual is <= 0).
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        m = rng.standard_normal((N_VARIABLES, N_VARIABLES))
        matrices = {"Q": m @ m.T / N_VARIABLES + 0.1 * np.eye(N_VARIABLES),
                    "c": rng.standard_normal(N_VARIABLES),
                    "F": rng.standard_normal((N_VARIABLES, N_PARAMETERS)),
                    "G": rng.standard_normal((N_CONSTRAINTS, N_VARIABLES)),
                    "h": 1.0 + rng.random(N_CONSTRAINTS),
                    "S": 0.1 * rng.standard_normal((N_CONSTRAINTS, N_PARAMETERS))}
        for name, value in matrices.items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        linear = self.c + p @ self.F.T
        objective = 0.5 * ((x @ self.Q) * x).sum(dim=1, keepdim=True) + (linear * x).sum(dim=1, keepdim=True)
        residual = x @ self.G.T - self.h - p @ self.S.T
        return objective, residual


def build_problem(hidden: Sequence[int]) -> Problem:
    """Solution map ``p -> x`` and the penalised QP; the same initial weights on every process (seeded)."""
    pl.seed_everything(0, verbose=False)
    solution_map = Node(blocks.MLP(N_PARAMETERS, N_VARIABLES, hsizes=list(hidden), nonlin=torch.nn.ReLU),
                        ["p"], ["x"], name="solution_map")
    evaluate = Node(QuadraticProgram(), ["x", "p"], ["qp_objective", "qp_residual"], name="qp")
    objective = variable("qp_objective").minimize(weight=1.0, name="objective")
    feasibility = PENALTY * (variable("qp_residual") <= 0.0)
    feasibility.name = "feasibility"
    return Problem([solution_map, evaluate], PenaltyLoss([objective], [feasibility]))


def sample_parameters(nsim: int, seed: int) -> dict[str, torch.Tensor]:
    """``nsim`` parameter vectors with entries uniform in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return {"p": 2.0 * torch.rand(nsim, N_PARAMETERS, generator=generator) - 1.0}


def data_setup_function(nsim: int, processes: int) -> tuple[DictDataset, DictDataset, None, int]:
    """Train and dev splits of ``nsim`` instances; each of ``processes`` gets 1/processes of the set per step."""
    return (DictDataset(sample_parameters(nsim, 1), name="train"),
            DictDataset(sample_parameters(nsim, 2), name="dev"),
            None,
            nsim // processes)


class EpochTimer(pl.Callback):
    """Wall-clock time of every epoch, training and validation included (start to start)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.starts.append(time.perf_counter())

    def seconds_per_epoch(self) -> float:
        """Median epoch time, leaving out the first epoch (warm-up) when there are others; NaN when no
        epoch ran (a resumed run that had already finished)."""
        durations = np.diff(self.starts).tolist()
        return statistics.median(durations[1:] or durations) if durations else math.nan


def parse_devices(values: Sequence[str]) -> int | list[int]:
    """``['2']`` -> 2 devices; ``['0', '1']`` -> the devices with those indices."""
    numbers = [int(value) for value in values]
    return numbers[0] if len(numbers) == 1 else numbers


def device_count(devices: int | list[int]) -> int:
    """How many processes ``devices`` asks for."""
    return devices if isinstance(devices, int) else len(devices)


def train(accelerator: str, devices: int | list[int], quick: bool, epochs: int | None, out: Path,
          num_nodes: int = 1, profiler: str | None = None, resume: bool = False) -> dict[str, float]:
    """Train once on ``devices`` of each of ``num_nodes`` machines; return the time per epoch, the best
    dev loss, the number of processes and this process's rank.

    The run writes under ``out/run_<processes>``: its checkpoints in ``weights/``, its logs and, in a
    SLURM job that is requeued, the requeue checkpoint. With ``resume`` it continues from the latest
    checkpoint there, or starts afresh (with a warning) when there is none.
    """
    processes = device_count(devices) * num_nodes
    run_directory = out / f"run_{processes}"
    if accelerator == "cpu":
        torch.set_num_threads(1)
    nsim, hidden, default_epochs = (1024, (128, 128), 8) if quick else (8192, (512, 512, 512), 150)
    problem = build_problem(hidden)
    timer = EpochTimer()
    trainer = LitTrainer(epochs=epochs or default_epochs, accelerator=accelerator, devices=devices,
                         strategy="ddp" if processes > 1 else "auto", num_nodes=num_nodes, profiler=profiler,
                         custom_optimizer=torch.optim.Adam(problem.parameters(), lr=1e-3),
                         weight_path=str(run_directory / "weights"), weight_name="best",
                         default_root_dir=str(run_directory), callbacks=[timer], enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(problem, data_setup_function, ckpt_path="last" if resume else None, nsim=nsim, processes=processes)
    return {"processes": processes, "seconds_per_epoch": timer.seconds_per_epoch(),
            "best_dev_loss": float(trainer.checkpoint_callback.best_model_score),
            "epochs": trainer.current_epoch, "rank": trainer.global_rank}


def one_device(accelerator: str, devices: int | list[int]) -> int | list[int]:
    """The single device of the reference run: one CPU process, or the first of the GPUs given."""
    if accelerator == "cpu" or isinstance(devices, int):
        return 1
    return devices[:1]


def reference_run(args: argparse.Namespace) -> dict[str, float]:
    """Run this script on one device in a fresh process (outside any process group); return its result."""
    env = {key: value for key, value in os.environ.items()
           if key not in PROCESS_GROUP_VARIABLES and not key.startswith("TORCHELASTIC_")}
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "reference.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--accelerator", args.accelerator,
                   "--devices", *args.devices, "--out", str(args.out), "--report", str(report)]
        if args.quick:
            command.append("--quick")
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        if args.resume:
            command.append("--resume")
        with requeue_signal_left_to_child():
            subprocess.run(command, env=env, check=True)
        if not report.exists():
            raise SystemExit("the one-process reference run stopped before its end (its SLURM job was requeued); "
                             "run the same command again, with --resume, to continue it.")
        return json.loads(report.read_text())


@contextlib.contextmanager
def requeue_signal_left_to_child() -> Iterator[None]:
    """While the reference run trains in a child process, let SLURM's requeue warning (SIGUSR1) reach only it.

    SLURM signals every process of the job step; without a handler this process would end on
    SIGUSR1. A Python handler is not inherited by the child, which starts with the default and
    whose trainer then saves its state and requeues the job.
    """
    if not hasattr(signal, "SIGUSR1"):
        yield
        return
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def compare(parallel: dict[str, float], reference: dict[str, float]) -> None:
    """Print both runs side by side; raise if their best dev losses differ beyond the tolerance."""
    print(f"{'processes':>9} | {'epochs':>6} | {'s / epoch':>9} | {'best dev loss':>14}")
    for run in (reference, parallel):
        print(f"{run['processes']:>9} | {run['epochs']:>6} | {run['seconds_per_epoch']:>9.4f} | "
              f"{run['best_dev_loss']:>14.6f}")
    speedup = reference["seconds_per_epoch"] / parallel["seconds_per_epoch"]
    print(f"speed-up with {parallel['processes']} processes: {speedup:.2f}x")
    difference = abs(parallel["best_dev_loss"] - reference["best_dev_loss"])
    relative = difference / abs(reference["best_dev_loss"])
    if relative > RELATIVE_TOLERANCE:
        raise RuntimeError(f"the best dev losses differ by {relative:.2e} (relative), more than the tolerance "
                           f"{RELATIVE_TOLERANCE:g}: the runs did not take the same steps.")
    print(f"same best dev loss: relative difference {relative:.1e} <= {RELATIVE_TOLERANCE:g}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu",
                        help="cpu or gpu (default cpu)")
    parser.add_argument("--devices", nargs="+", default=["2"],
                        help="a number of devices (e.g. 2), or GPU indices (e.g. 0 1); default 2")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("NEUROMANCER_QUICK") == "1",
                        help="small data, network and epochs (also NEUROMANCER_QUICK=1)")
    parser.add_argument("--num-nodes", type=int, default=1,
                        help="machines taking part (default 1); each runs --devices processes")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 150, 8 with --quick)")
    parser.add_argument("--profiler", choices=["simple", "advanced", "pytorch"], default=None,
                        help="profile the run on --devices with this Lightning profiler; the report is "
                             "printed when training ends")
    parser.add_argument("--out", type=Path, default=Path("part3_out"), help="checkpoints and logs (default part3_out)")
    parser.add_argument("--resume", action="store_true",
                        help="continue each run from its latest checkpoint in --out when there is one (after a "
                             "pre-emption, a requeue or a restart), start afresh when there is none")
    parser.add_argument("--report", type=Path, default=None,
                        help="internal: train on one device only and write the result to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Train on the devices given, then (first process only) compare with a one-device run."""
    args = build_parser().parse_args(argv)
    devices = parse_devices(args.devices)

    if args.report is not None:
        result = train(args.accelerator, one_device(args.accelerator, devices), args.quick, args.epochs, args.out,
                       resume=args.resume)
        args.report.write_text(json.dumps(result))
        return
    result = train(args.accelerator, devices, args.quick, args.epochs, args.out, args.num_nodes, args.profiler,
                   args.resume)
    if result["rank"] != 0:
        return  # the other processes are done; the first one runs the reference and reports
    if result["processes"] == 1:
        print(f"one process: {result['seconds_per_epoch']:.4f} s per epoch, best dev loss {result['best_dev_loss']:.6f}")
        return
    compare(result, reference_run(args))


if __name__ == "__main__":
    main()
