"""Checkpoint files for `LitTrainer`: written atomically, read with ``weights_only`` unpickling.

`AtomicCheckpointIO` is the Lightning CheckpointIO plugin `LitTrainer` installs (unless the user
passes one of their own in ``plugins``). It writes each checkpoint to a temporary file in the
target's own directory and renames it over the target with ``os.replace``, so a run killed
mid-write (pre-emption, out of memory, Ctrl-C twice) leaves the previous complete checkpoint,
never a half-written one. With ``durable=True`` it also forces the file and the rename to disk
(fsync), which protects against an operating-system crash or power loss too, at the price of
waiting for the disk at every save. It reads every checkpoint, including the one Lightning loads
to resume a run, through `neuromancer.utils.read_checkpoint`, so an untrusted file can run no code
and a corrupt one raises an error that names it.
"""
from __future__ import annotations

import glob
import logging
import os
import secrets
from collections.abc import Callable
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.plugins.io import CheckpointIO

from neuromancer.utils import read_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["AtomicCheckpointIO", "save_atomically", "link_atomically", "with_checkpoint_io"]

PathLike = str | os.PathLike


def _partial_prefix(path: str) -> str:
    """Name prefix of the temporary files that become ``path``: hidden, and next to it."""
    return f".{os.path.basename(path)}."


def save_atomically(obj: Any, path: PathLike, durable: bool = False) -> None:
    """``torch.save(obj, path)`` such that ``path`` only ever holds a complete file.

    The data goes to a hidden temporary file in the same directory (so the final rename never
    crosses file systems) and then replaces ``path`` in one ``os.replace``. Should the process
    die before the rename, ``path`` keeps its previous content and only the temporary file is
    left; the next successful save of ``path`` removes such leftovers. The rename is atomic for
    every other process at once; surviving a crash of the operating system or a power loss as
    well takes ``durable=True``.

    :param obj: what to save (a checkpoint dict).
    :param path: the target file; its directory is created if missing.
    :param durable: fsync the file before the rename and the directory
        after it, so the new content is on disk when the call returns. Each fsync waits for the
        disk (milliseconds on a local SSD, more on a busy or network file system), which is why
        it is not the default for checkpoints written every epoch.
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
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    if durable:
        _sync_directory(directory)
    _remove_leftovers(target)


def link_atomically(source: PathLike, path: PathLike, durable: bool = False) -> bool:
    """Make ``path`` a hard link to the complete file ``source``, replacing ``path`` in one ``os.replace``.

    This gives ``path`` the content of ``source`` without writing it again (two names, one file;
    a later atomic save of either name replaces that name only). Like `save_atomically`,
    ``path`` only ever holds a complete file.

    :param source: an existing file in the same file system as ``path``.
    :param path: the name to (re)point at it.
    :param durable: fsync the directory after the rename.
    :return: True when linked; False when the file system cannot link ``source`` there
        (no hard links, another device, ``source`` missing), in which case nothing changed.
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    partial = os.path.join(directory, f"{_partial_prefix(target)}{secrets.token_hex(8)}.partial")
    try:
        os.link(os.fspath(source), partial)
    except OSError:
        return False
    try:
        os.replace(partial, target)
    except BaseException:
        os.remove(partial)
        raise
    if durable:
        _sync_directory(directory)
    return True


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
    too; `LitTrainer` installs it by itself unless ``plugins`` already holds a CheckpointIO (pass
    ``plugins=[AtomicCheckpointIO(durable=True)]`` for checkpoints that survive a power loss).
    Loading always uses ``weights_only=True``, whatever Lightning asks for: every checkpoint
    `LitTrainer` writes loads that way, and a checkpoint that does not is refused unread
    (`neuromancer.utils.UnsafeCheckpointError`).

    :param durable: fsync every checkpoint before and after its rename (see
        `save_atomically`); without it a write is atomic against a killed process but may be lost
        if the operating system crashes before flushing it.
    :raises TypeError: ``durable`` is not a bool.
    """

    def __init__(self, durable: bool = False) -> None:
        super().__init__()
        if not isinstance(durable, bool):
            raise TypeError(f"durable must be True or False, got {durable!r}.")
        self.durable = durable

    def save_checkpoint(self, checkpoint: dict[str, Any], path: PathLike,
                        storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically, and durably if so configured (see `save_atomically`).

        :param checkpoint: the checkpoint Lightning assembled.
        :param path: the target file.
        :param storage_options: must be None (there are no options for local files).
        :raises TypeError: ``storage_options`` is given.
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r}); "
                            "write a CheckpointIO of your own for remote storage.")
        save_atomically(checkpoint, path, durable=self.durable)

    def load_checkpoint(self, path: PathLike, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Read the checkpoint at ``path`` with ``weights_only=True`` (see `neuromancer.utils.read_checkpoint`).

        :param path: the checkpoint file.
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


def with_checkpoint_io(plugins: Any) -> list[Any]:
    """The user's Lightning plugins plus an `AtomicCheckpointIO`, unless they already hold a CheckpointIO."""
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins
