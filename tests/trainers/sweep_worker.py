"""One worker of a sweep shared through a database, as a user would start it on each machine.

Run as ``python sweep_worker.py STORAGE OUT --method grid --count 6 ...``: it trains a tiny linear
problem in a sweep stored at STORAGE and writes its rows to ``OUT/<pid>.json``. While a run
trains, ``OUT/<pid>.training`` exists, so a test can kill the worker mid-run; ``--epoch-sleep``
makes each epoch last long enough for that.
"""
import argparse
import json
import logging
import os
import sys
import time

import lightning.pytorch as pl
import torch

from neuromancer.constraint import Objective, variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainers.lightning import LitTrainer

CONFIGS = {
    # six grid points
    "grid": {"method": "grid", "name": "shared-grid", "parameters": {
        "learning_rate": {"values": [0.01, 0.02, 0.05]}, "nsim": {"values": [32, 64]}}},
    "random": {"method": "random", "name": "shared-random", "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1}}},
}


def data_setup(nsim=32, batch_size=16):
    generator = torch.Generator().manual_seed(nsim)
    x = torch.randn(nsim + 16, 2, generator=generator)
    y = x @ torch.tensor([[1.5], [-2.0]])
    return (DictDataset({"x": x[:nsim], "y": y[:nsim]}, name="train"),
            DictDataset({"x": x[nsim:], "y": y[nsim:]}, name="dev"), None, batch_size)


def problem():
    torch.manual_seed(0)
    net = Node(torch.nn.Linear(2, 1), ["x"], ["y_hat"], name="net")
    return Problem([net], PenaltyLoss([Objective((variable("y_hat") - variable("y")) ** 2, name="fit")], []))


class Pace(pl.Callback):
    """Marks the worker as training (a file) and makes every epoch last at least ``seconds``."""

    def __init__(self, marker, seconds):
        self.marker, self.seconds = marker, seconds

    def on_train_start(self, trainer, pl_module):
        open(self.marker, "w").close()

    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(self.seconds)

    def on_train_end(self, trainer, pl_module):
        os.remove(self.marker)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("out")
    parser.add_argument("--method", choices=sorted(CONFIGS), default="grid")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--epoch-sleep", type=float, default=0.0)
    parser.add_argument("--heartbeat", type=int, default=1)
    parser.add_argument("--grace", type=int, default=20)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    pid = os.getpid()
    trainer = LitTrainer(epochs=arguments.epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
                         callbacks=[Pace(os.path.join(arguments.out, f"{pid}.training"), arguments.epoch_sleep)])
    result = trainer.hyperparameter_sweep(problem(), data_setup, CONFIGS[arguments.method], count=arguments.count,
                                          sweep_storage=arguments.storage, sweep_seed=None,
                                          sweep_heartbeat_interval=arguments.heartbeat,
                                          sweep_grace_period=arguments.grace)
    rows = [{"name": run.name, "state": run.state, "metric": run.metric, "checkpoint": run.checkpoint,
             "config": run.config} for run in result]
    with open(os.path.join(arguments.out, f"{pid}.json"), "w") as file:
        json.dump(rows, file)


if __name__ == "__main__":
    main()
