"""Checkpoint files for `LitTrainer`: written atomically, read with ``weights_only`` unpickling.

`AtomicCheckpointIO` is the Lightning CheckpointIO plugin `LitTrainer` installs (unless the user
passes one of their own in ``plugins``). It writes each checkpoint to a temporary file in the
target's own directory, flushes it to disk and renames it over the target with ``os.replace``, so a
run killed mid-write (pre-emption, out of memory, Ctrl-C twice) leaves the previous complete
checkpoint, never a half-written one. It reads every checkpoint, including the one Lightning loads
to resume a run, through `neuromancer.utils.read_checkpoint`, so an untrusted file can run no code
and a corrupt one raises an error that names it.
"""
from __future__ import annotations

import glob
import logging
import os
import secrets
from typing import Any, Callable, Dict, Optional, Union

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from neuromancer.utils import read_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["AtomicCheckpointIO", "save_atomically"]

PathLike = Union[str, os.PathLike]


def _partial_prefix(path: str) -> str:
    """Name prefix of the temporary files that become ``path``: hidden, and next to it."""
    return f".{os.path.basename(path)}."


def save_atomically(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)`` such that ``path`` only ever holds a complete file.

    The data goes to a hidden temporary file in the same directory (so the final rename never
    crosses file systems), is flushed and fsync'ed, and then replaces ``path`` in one
    ``os.replace``. Should the process die before the rename, ``path`` keeps its previous
    content and only the temporary file is left; the next successful save of ``path`` removes
    such leftovers.

    :param obj: what to save (a checkpoint dict).
    :param path: (str | PathLike) the target file; its directory is created if missing.
    :raises OSError: the directory cannot be created or written (the temporary file is removed).
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f"{_partial_prefix(target)}{secrets.token_hex(8)}.partial")
    # Created like any file the user writes (mode 0o666 less the umask), not private as mkstemp's are.
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    _sync_directory(directory)
    _remove_leftovers(target)


def _sync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows opening a directory (POSIX)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        logger.debug("could not fsync directory %s", directory)
    finally:
        os.close(descriptor)


def _remove_leftovers(target: str) -> None:
    """Delete temporary files an earlier, killed save of ``target`` left behind."""
    pattern = os.path.join(glob.escape(os.path.dirname(target)), glob.escape(_partial_prefix(target)) + "*.partial")
    for leftover in glob.glob(pattern):
        try:
            os.remove(leftover)
        except FileNotFoundError:
            continue


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO that writes checkpoints atomically and reads them with ``weights_only=True``.

    Pass it as ``LitTrainer(..., plugins=[AtomicCheckpointIO()])`` to a plain Lightning ``Trainer``
    too; `LitTrainer` installs it by itself unless ``plugins`` already holds a CheckpointIO.
    Loading always uses ``weights_only=True``, whatever Lightning asks for: every checkpoint
    `LitTrainer` writes loads that way, and a checkpoint that does not is refused unread
    (`neuromancer.utils.UnsafeCheckpointError`).
    """

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: PathLike,
                        storage_options: Optional[Any] = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically (see `save_atomically`).

        :param checkpoint: (dict) the checkpoint Lightning assembled.
        :param path: (str | PathLike) the target file.
        :param storage_options: must be None (there are no options for local files).
        :raises TypeError: ``storage_options`` is given.
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r}); "
                            "write a CheckpointIO of your own for remote storage.")
        save_atomically(checkpoint, path)

    def load_checkpoint(self, path: PathLike, map_location: Optional[Callable] = None,
                        weights_only: Optional[bool] = None) -> Dict[str, Any]:
        """Read the checkpoint at ``path`` with ``weights_only=True`` (see `neuromancer.utils.read_checkpoint`).

        :param path: (str | PathLike) the checkpoint file.
        :param map_location: torch's ``map_location``; None loads every tensor onto the CPU (as
            Lightning's own loader does), so a GPU checkpoint resumes on a CPU-only machine.
        :param weights_only: ignored: loading is always weights-only, the only safe way for files
            of unknown origin.
        :raises FileNotFoundError | UnsafeCheckpointError | CorruptCheckpointError: see `read_checkpoint`.
        """
        if weights_only is False:
            logger.warning("AtomicCheckpointIO loads %s with weights_only=True although weights_only=False was "
                           "asked for: LitTrainer never unpickles arbitrary objects.", os.fspath(path))
        return read_checkpoint(path, map_location="cpu" if map_location is None else map_location)
