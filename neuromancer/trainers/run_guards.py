"""What keeps a training run from losing work to its surroundings: output directories and Ctrl-C.

`ensure_writable_directory` checks, before the first epoch, that a run can write where its
checkpoints and logs go (`UnwritableDirectoryError` otherwise), so a bad path costs nothing instead
of a night of training. `sigint_handler_kept` puts Ctrl-C back after Lightning's shutdown switched it
off. Both are plain Python (no Lightning), shared by `LitTrainer` and the population trainer.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator

from neuromancer.exceptions import NeuromancerError

__all__ = ["UnwritableDirectoryError", "ensure_writable_directory", "sigint_handler_kept"]


class UnwritableDirectoryError(NeuromancerError, PermissionError, ValueError):
    """A directory `LitTrainer` must write to (``weight_path``, a logger's) cannot be written.

    Raised by `LitTrainer.fit` before the first epoch, so no training is lost; it is both a
    PermissionError and a ValueError (a setting to change). The message names the directory and
    the fix.
    """


def ensure_writable_directory(directory: str | os.PathLike, role: str, fix: str) -> None:
    """Create ``directory`` if needed and check that a file can be written in it (by writing one).

    Writing a probe file, rather than asking ``os.access``, also catches read-only mounts and access rules
    that permission bits do not show, and holds for root, whom permission bits do not stop.

    :param directory: the directory to check.
    :param role: what the directory is for, for the message (e.g. 'weight_path').
    :param fix: what the user can do about it, for the message.
    :raises UnwritableDirectoryError: it cannot be created, is not a directory, or cannot be written.
    """
    path = os.fspath(directory)
    try:
        os.makedirs(path, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=path, prefix=".neuromancer-write-check-")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise UnwritableDirectoryError(
            f"{role} {path!r} is not a writable directory ({error.strerror or error}); checked before training "
            f"so no epoch is lost. Fix: {fix}.") from error


@contextlib.contextmanager
def sigint_handler_kept() -> Iterator[None]:
    """Run the body, then put back the Ctrl-C (SIGINT) handler it started with.

    Lightning answers Ctrl-C in ``fit``, ``validate``, ``test`` and ``predict`` by setting SIGINT
    to 'ignore' for its shutdown and leaves it so. Left like that, the process (a notebook's
    kernel) would ignore every later Ctrl-C, and so would every process it starts afterwards,
    which inherit an ignored signal. Off the main thread, where handlers cannot change, it does
    nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is not handler:
            signal.signal(signal.SIGINT, handler)
