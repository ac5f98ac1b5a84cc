"""Small helpers around devices and checkpoints: operand device placement and loading LitTrainer weights.

`handle_device_placement` decorates binary operations (``f(self, left, right)``) so both
operands sit on one device. `read_checkpoint` is the one place checkpoint files are read: with
``weights_only`` unpickling, so a file from an untrusted source can hold tensors and plain
containers but can run no code, and with errors that name the file when it is unsafe, truncated or
corrupt. `load_state_dict_lightning` uses it to load a checkpoint written by `LitTrainer` into a
plain `Problem`, on any machine (tensors are mapped to the CPU first). This module imports torch
only, never Lightning.
"""
from __future__ import annotations

import functools
import os
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

import torch

from neuromancer.exceptions import NeuromancerError

__all__ = ["handle_device_placement", "load_state_dict_lightning", "read_checkpoint", "CheckpointError",
           "UnsafeCheckpointError", "CorruptCheckpointError"]

LIGHTNING_PREFIX = "problem."


def _common_device(left: Any, right: Any) -> tuple[Any, Any]:
    """Move two tensors onto one device: the accelerator one when only one of them is on the CPU."""
    if not (isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor)) or left.device == right.device:
        return left, right
    target = right.device if left.device.type == "cpu" else left.device
    return left.to(target), right.to(target)


def handle_device_placement(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a method ``func(self, left, right, ...)`` so ``left`` and ``right`` share a device.

    When both operands are tensors on different devices, the one on the CPU moves to the other's
    device (a constraint's constant meets GPU data); with two accelerators, ``right`` follows
    ``left``. Non-tensor operands (Python numbers) pass through unchanged.

    :param func: the method to wrap, e.g. a comparator's ``forward(self, left, right)``.
    :return: the wrapped method, with ``func``'s name and docstring.
    """
    @functools.wraps(func)
    def wrapper(self: Any, left: Any, right: Any, *args: Any, **kwargs: Any) -> Any:
        left, right = _common_device(left, right)
        return func(self, left, right, *args, **kwargs)

    return wrapper


class CheckpointError(NeuromancerError, ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and what to do."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding objects other than tensors and plain containers, refused unread.

    Unpickling such objects can run arbitrary code, so nothing in the file is executed.
    """


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that is truncated, empty or not a torch checkpoint at all."""


# torch's weights-only unpickler says one of these when a file asks for a global (a class or a
# function) it does not allow ("Unsupported class" up to torch 2.3); its other complaints are about
# bytes that are no pickle at all.
_UNSAFE_MARKERS = ("Unsupported global", "unsupported GLOBAL", "Unsupported class")


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint file safely: ``torch.load(path, map_location, weights_only=True)`` with clear errors.

    Only tensors, numbers, strings and plain containers (dicts, lists, tuples) are unpickled, so a
    file crafted to run code when loaded (a ``__reduce__`` calling ``os.system``, say) runs none
    and is refused. Every checkpoint `LitTrainer` writes (weights, optimizer state, loop,
    early-stopping and best-weights state) is made of those, so nothing legitimate is lost.

    :param path: the checkpoint file.
    :param map_location: torch's ``map_location``: where tensors are loaded.
    :return: the checkpoint's contents.
    :raises FileNotFoundError: no file at ``path``.
    :raises UnsafeCheckpointError: (a ValueError) the file holds other objects; it was not loaded.
    :raises CorruptCheckpointError: (a ValueError) the file is truncated, empty or not a checkpoint.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"no checkpoint file at {name!r}; check the path (and weight_path / weight_name).")
    try:
        return torch.load(name, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        marker = next((marker for marker in _UNSAFE_MARKERS if marker in str(error)), None)
        if marker is not None:
            raise UnsafeCheckpointError(
                f"refused to load checkpoint {name!r}: it holds objects other than tensors and plain containers, "
                "and unpickling them could run arbitrary code (it was read with weights_only=True and nothing in "
                "it was executed). Only checkpoints written by LitTrainer or torch.save of state dicts load here; "
                f"if you wrote this file yourself and trust it, convert it to a plain state dict. Details: "
                f"{_cause_line(error, containing=marker)}") from None
        raise _corrupt(name, error) from error
    except (RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile, OSError) as error:
        raise _corrupt(name, error) from error


def _cause_line(error: BaseException, containing: str = "") -> str:
    """The line of a torch loading error that names the cause (torch surrounds it with advice)."""
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip() and containing in line and not line.strip().startswith("Check the documentation")]
    cause = lines[-1] if lines else type(error).__name__
    return cause.split(" Please use")[0].removeprefix("WeightsUnpickler error: ")


def _corrupt(name: str, error: BaseException) -> CorruptCheckpointError:
    """The error for a checkpoint file that torch cannot read at all."""
    return CorruptCheckpointError(
        f"checkpoint {name!r} is truncated or corrupt ({type(error).__name__}: {_cause_line(error)[:200]}); it "
        "may have been cut off while being written or copied. Use another checkpoint (e.g. the best one next to "
        "last.ckpt) or retrain.")


def _format_keys(keys: set) -> str:
    """Up to ten sorted keys, then a count of the rest."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:10])
    return shown + (f" (+{len(ordered) - 10} more)" if len(ordered) > 10 else "")


def _problem_state(checkpoint: Any, weight_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The problem's weights from a LitTrainer checkpoint: its ``state_dict`` without the ``problem.`` prefix."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{os.fspath(weight_path)!r} is not a LitTrainer checkpoint: it has no 'state_dict' entry.")
    return {key[len(LIGHTNING_PREFIX):] if key.startswith(LIGHTNING_PREFIX) else key: value
            for key, value in checkpoint["state_dict"].items()}


def load_state_dict_lightning(problem: torch.nn.Module, weight_path: str | os.PathLike) -> None:
    """Load the weights of a `LitTrainer` checkpoint (``.ckpt``) into ``problem``.

    The file is read with ``torch.load(..., map_location='cpu', weights_only=True)``, so a
    checkpoint trained on a GPU loads on a CPU-only machine and no arbitrary code is unpickled; the weights are then copied into ``problem`` wherever it lives.
    Keys are LitProblem's (``problem.<name>``) with the prefix removed.

    :param problem: a `Problem` built like the trained one.
    :param weight_path: path of the checkpoint file.
    :raises FileNotFoundError: no file at ``weight_path``.
    :raises UnsafeCheckpointError | CorruptCheckpointError: (ValueErrors) see `read_checkpoint`.
    :raises ValueError: the file is not a LitTrainer checkpoint, or its weights do not match
        ``problem`` (the message names missing and unexpected keys and mismatched shapes).
    """
    checkpoint = read_checkpoint(weight_path)
    state = _problem_state(checkpoint, weight_path)
    expected = problem.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    reshaped = {k for k in set(expected) & set(state) if expected[k].shape != state[k].shape}
    if missing or unexpected or reshaped:
        details = [f"missing keys: {_format_keys(missing)}" if missing else "",
                   f"unexpected keys: {_format_keys(unexpected)}" if unexpected else "",
                   "shape mismatch: " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                                                  for k in sorted(reshaped)) if reshaped else ""]
        raise ValueError(f"checkpoint {os.fspath(weight_path)!r} does not match the problem; "
                         + "; ".join(d for d in details if d) + ". Build the problem exactly as it was trained.")
    problem.load_state_dict(state)
