"""A training that receives a real Ctrl-C (SIGINT) in epoch 3, for `test_lightning_faults`.

Run as ``python fault_interrupt.py OUT.json``: it trains the one-weight problem of `ddp_script`
with SGD for up to 10 epochs, sends itself SIGINT when epoch 3 starts, and, once `fit` has
returned, writes the problem's weight, the best checkpoint's path and whether Ctrl-C works again
(the handler is Python's default again) to ``OUT.json``.

It first makes Ctrl-C raise KeyboardInterrupt, as it does in an interactive session: a process
started in the background by a non-interactive shell (as CI may start the test suite) inherits
SIGINT ignored, and Python then leaves it ignored, so the SIGINT sent below would do nothing.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_script import data_setup, scalar_problem, weight  # noqa: E402

INTERRUPTED_EPOCH = 3


class CtrlC(pl.Callback):
    """Send this process SIGINT, as a terminal's Ctrl-C does, when epoch ``INTERRUPTED_EPOCH`` starts."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == INTERRUPTED_EPOCH:
            os.kill(os.getpid(), signal.SIGINT)


def main(out_path: str) -> None:
    from neuromancer.trainers.lightning import LitTrainer

    signal.signal(signal.SIGINT, signal.default_int_handler)

    problem = scalar_problem(w0=0.5)
    trainer = LitTrainer(epochs=10, accelerator="cpu", devices=1, weight_name="best", logger=False,
                         custom_optimizer=torch.optim.SGD(problem.parameters(), lr=0.1), callbacks=[CtrlC()],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(problem, data_setup)
    with open(out_path, "w") as handle:
        json.dump({"weight": weight(problem), "best_path": trainer.checkpoint_callback.best_model_path,
                   "epoch": trainer.current_epoch,
                   "sigint_is_default": signal.getsignal(signal.SIGINT) is signal.default_int_handler}, handle)


if __name__ == "__main__":
    main(sys.argv[1])
