"""LitTrainer overhead: time per epoch over a hand-written PyTorch loop, and memory across epochs.

Run ``python benchmarks/lightning_overhead.py`` from the repository root. On the parametric
Rosenbrock problem (MLP 2 -> 2 with four hidden layers of 80 ReLU units, 5000 train and 5000 dev
samples, batch 64) it times, in interleaved rounds:

- the hand-written PyTorch loop of ``benchmarks/core.py`` (shuffled batches, Adam, clipping and
  a dev pass per epoch, on a loss written directly in torch),
- the same loop calling the symbolic NeuroMANCER `Problem` (the modeling layer's share),
- a bare LightningModule running that same `Problem` under a plain Lightning ``Trainer`` (same
  optimizer and clipping, no logger, no checkpoints): Lightning's own share, and
- `LitTrainer` on that same `Problem`, with the progress bar off and default logging
  (TensorBoard files, best checkpoint and ``last.ckpt`` on disk, best weights kept).

The Lightning runs' time per epoch is measured from the start of one epoch to the start of the
next (checkpointing and logging included; the first epoch, which also holds Lightning's start-up,
is left out). The resident memory of the process is read at the end of every LitTrainer epoch; it
must stay flat (no autograd graph or logged tensor accumulates). The table is printed and
written to ``benchmarks/results/lightning.md`` for the docs.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from core import (
    Row,
    batch_loss_by_hand,
    batch_loss_by_problem,
    plain_loop_seconds_per_epoch,
    report,
    rosenbrock_data,
    rosenbrock_mlp,
    rosenbrock_problem,
)

RESULTS = Path(__file__).resolve().parent / "results" / "lightning.md"
BATCH_SIZE = 64
CONSTRAINT_WEIGHT = 100.0
RATIO_GOAL = 1.5
MEMORY_GROWTH_GOAL_MIB = 5.0


def resident_mib() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc``; peak RSS elsewhere)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    import resource
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20


def epoch_clock():
    """A Lightning callback recording when every epoch starts, when training ends, and RSS per epoch."""
    import lightning.pytorch as pl

    class EpochClock(pl.Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.memory: list[float] = []

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.marks.append(time.perf_counter())

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.memory.append(resident_mib())

        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.marks.append(time.perf_counter())

        def seconds_per_epoch(self) -> list[float]:
            return [end - start for start, end in itertools.pairwise(self.marks)]

    return EpochClock()


def lit_trainer_epochs(mlp: torch.nn.Module, train: dict[str, torch.Tensor], dev: dict[str, torch.Tensor],
                       epochs: int) -> tuple[list[float], list[float]]:
    """Train with `LitTrainer` in a scratch directory; return seconds and resident MiB per epoch."""
    from neuromancer.dataset import DictDataset
    from neuromancer.trainers.lightning import LitTrainer

    def data_setup():
        return DictDataset(train, name="train"), DictDataset(dev, name="dev"), None, BATCH_SIZE

    problem = rosenbrock_problem(mlp, CONSTRAINT_WEIGHT)
    clock = epoch_clock()
    with tempfile.TemporaryDirectory() as scratch:
        here = os.getcwd()
        os.chdir(scratch)
        try:
            trainer = LitTrainer(epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                                 enable_model_summary=False, callbacks=[clock])
            trainer.fit(problem, data_setup)
        finally:
            os.chdir(here)
    return clock.seconds_per_epoch(), clock.memory


def bare_lightning_module(problem: torch.nn.Module):
    """A minimal LightningModule around ``problem``: the loss to optimise and the dev loss, nothing else."""
    import lightning.pytorch as pl

    class BareModule(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.problem = problem

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            return self.problem(batch)["train_loss"]

        def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            return self.problem(batch)["dev_loss"]

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.problem.parameters(), lr=0.001, betas=(0.0, 0.9))

    return BareModule()


def bare_lightning_epochs(mlp: torch.nn.Module, train: dict[str, torch.Tensor], dev: dict[str, torch.Tensor],
                          epochs: int) -> list[float]:
    """Train the `Problem` in a bare LightningModule (no logger, no checkpoints); return seconds per epoch."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from neuromancer.dataset import DictDataset

    train_set, dev_set = DictDataset(train, name="train"), DictDataset(dev, name="dev")
    clock = epoch_clock()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                         enable_model_summary=False, logger=False, enable_checkpointing=False,
                         gradient_clip_val=100.0, gradient_clip_algorithm="norm", callbacks=[clock])
    trainer.fit(bare_lightning_module(rosenbrock_problem(mlp, CONSTRAINT_WEIGHT)),
                DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, collate_fn=train_set.collate_fn),
                DataLoader(dev_set, batch_size=BATCH_SIZE, collate_fn=dev_set.collate_fn))
    return clock.seconds_per_epoch()


def overhead_rows(n_samples: int, epochs: int, rounds: int) -> list[Row]:
    """Interleave the hand-written loops, the bare LightningModule and LitTrainer for ``rounds`` rounds."""
    train, dev = rosenbrock_data(n_samples, seed=0), rosenbrock_data(n_samples, seed=1)
    initial = rosenbrock_mlp()
    hand_samples, problem_samples, bare_samples, lit_samples, memory = [], [], [], [], []
    for _ in range(rounds):
        hand_samples.append(plain_loop_seconds_per_epoch(batch_loss_by_hand(CONSTRAINT_WEIGHT), copy.deepcopy(initial),
                                                         train, dev, BATCH_SIZE, epochs))
        problem_samples.append(plain_loop_seconds_per_epoch(batch_loss_by_problem(CONSTRAINT_WEIGHT),
                                                            copy.deepcopy(initial), train, dev, BATCH_SIZE, epochs))
        bare_samples.extend(bare_lightning_epochs(copy.deepcopy(initial), train, dev, epochs + 1)[1:])
        seconds, memory = lit_trainer_epochs(copy.deepcopy(initial), train, dev, epochs + 1)
        lit_samples.extend(seconds[1:])
    hand, plain, bare, lit = (statistics.median(samples)
                              for samples in (hand_samples, problem_samples, bare_samples, lit_samples))
    growth = max(memory[1:]) - memory[1]
    steps = -(-n_samples // BATCH_SIZE)
    return [
        Row(f"hand-written PyTorch loop, s/epoch ({steps} steps + dev pass)", f"{hand:.3f}", "-", True),
        Row("the same loop calling the symbolic `Problem`, s/epoch", f"{plain:.3f}", "-", True),
        Row("bare LightningModule running the same `Problem`, s/epoch (no logging, no checkpoints)", f"{bare:.3f}",
            "-", True),
        Row("`LitTrainer`, s/epoch (progress bar off, default logging)", f"{lit:.3f}", "-", True),
        Row("`LitTrainer` / hand-written loop", f"{lit / hand:.2f}", f"<= {RATIO_GOAL}", lit / hand <= RATIO_GOAL),
        Row("(breakdown) `Problem` loop / hand-written loop: modeling-layer cost", f"{plain / hand:.2f}", "-", True),
        Row("(breakdown) `LitTrainer` / `Problem` loop: the trainer's own cost", f"{lit / plain:.2f}", "-", True),
        Row("(breakdown) bare LightningModule running the same `Problem` (no logging, no checkpoints) / "
            "hand-written loop: Lightning's own share", f"{bare / hand:.2f}", "-", True),
        Row("(breakdown) `LitTrainer` / bare LightningModule: LitTrainer's layer on top of Lightning (logging, "
            "checkpoints, best weights, checks)", f"{lit / bare:.2f}", "-", True),
        Row("`LitTrainer` resident memory per epoch end, MiB", " ".join(f"{m:.0f}" for m in memory), "flat", True),
        Row("memory growth after the second epoch, MiB", f"{growth:.1f}", f"<= {MEMORY_GROWTH_GOAL_MIB}",
            growth <= MEMORY_GROWTH_GOAL_MIB),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, write benchmarks/results/lightning.md; 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000, help="train and dev samples each")
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    rows = overhead_rows(args.samples, args.epochs, args.rounds)
    return report(rows, "LitTrainer overhead",
                  f"Measured in one run of `python benchmarks/lightning_overhead.py` (torch {torch.__version__}, "
                  f"{args.threads} thread(s), batch {BATCH_SIZE}, {args.samples} train + {args.samples} dev "
                  f"samples, {args.rounds} rounds of {args.epochs} epochs).", RESULTS)


if __name__ == "__main__":
    sys.exit(main())
