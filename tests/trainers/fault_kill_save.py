"""A process killed while it writes a checkpoint, for `test_lightning_faults`.

Run as ``python fault_kill_save.py PATH``: it writes a small checkpoint to ``PATH`` through
`AtomicCheckpointIO`, prints ``saved`` and then writes a large one (128 MB) to the same path,
over and over, until the test kills it (SIGKILL) in the middle of a write.
"""
from __future__ import annotations

import sys

import torch

from neuromancer.trainers.checkpoint_io import AtomicCheckpointIO

SMALL = {"state_dict": {"problem.w": torch.arange(4.0)}, "epoch": 1}


def main(path: str) -> None:
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint(SMALL, path)
    print("saved", flush=True)
    large = {"state_dict": {"problem.w": torch.ones(32 * 1024 * 1024)}, "epoch": 2}
    while True:
        checkpoint_io.save_checkpoint(large, path)


if __name__ == "__main__":
    main(sys.argv[1])
