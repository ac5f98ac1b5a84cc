"""Small helpers around devices and checkpoints: operand device placement and loading LitTrainer weights.

`handle_device_placement` decorates binary operations (``f(self, left, right)``) so both
operands sit on one device. `load_state_dict_lightning` loads a checkpoint written by
`LitTrainer` into a plain `Problem`, on any machine (tensors are mapped to the CPU first), with
safe ``weights_only`` unpickling. This module imports torch only, never Lightning.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Dict, Tuple, Union

import torch

__all__ = ["handle_device_placement", "load_state_dict_lightning"]

LIGHTNING_PREFIX = "problem."


def _common_device(left: Any, right: Any) -> Tuple[Any, Any]:
    """Move two tensors onto one device: the accelerator one when only one of them is on the CPU."""
    if not (isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor)) or left.device == right.device:
        return left, right
    target = right.device if left.device.type == "cpu" else left.device
    return left.to(target), right.to(target)


def handle_device_placement(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a method ``func(self, left, right, ...)`` so ``left`` and ``right`` share a device.

    When both operands are tensors on different devices, the one on the CPU moves to the other's
    device (a constraint's constant meets GPU data); with two accelerators, ``right`` follows
    ``left``. Non-tensor operands (Python numbers) pass through unchanged, where upstream 1.5.6
    raised AttributeError.

    :param func: (callable) the method to wrap, e.g. a comparator's ``forward(self, left, right)``.
    :return: (callable) the wrapped method, with ``func``'s name and docstring.
    """
    @functools.wraps(func)
    def wrapper(self: Any, left: Any, right: Any, *args: Any, **kwargs: Any) -> Any:
        left, right = _common_device(left, right)
        return func(self, left, right, *args, **kwargs)

    return wrapper


def _format_keys(keys: set) -> str:
    """Up to ten sorted keys, then a count of the rest."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:10])
    return shown + (f" (+{len(ordered) - 10} more)" if len(ordered) > 10 else "")


def _problem_state(checkpoint: Any, weight_path: Union[str, os.PathLike]) -> Dict[str, torch.Tensor]:
    """The problem's weights from a LitTrainer checkpoint: its ``state_dict`` without the ``problem.`` prefix."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{os.fspath(weight_path)!r} is not a LitTrainer checkpoint: it has no 'state_dict' entry.")
    return {key[len(LIGHTNING_PREFIX):] if key.startswith(LIGHTNING_PREFIX) else key: value
            for key, value in checkpoint["state_dict"].items()}


def load_state_dict_lightning(problem: torch.nn.Module, weight_path: Union[str, os.PathLike]) -> None:
    """Load the weights of a `LitTrainer` checkpoint (``.ckpt``) into ``problem``.

    The file is read with ``torch.load(..., map_location='cpu', weights_only=True)``, so a
    checkpoint trained on a GPU loads on a CPU-only machine (upstream 1.5.6 could not) and no
    arbitrary code is unpickled; the weights are then copied into ``problem`` wherever it lives.
    Keys are LitProblem's (``problem.<name>``) with the prefix removed.

    :param problem: (nn.Module) a `Problem` built like the trained one.
    :param weight_path: (str | PathLike) path of the checkpoint file.
    :raises FileNotFoundError: no file at ``weight_path``.
    :raises ValueError: the file is not a LitTrainer checkpoint, or its weights do not match
        ``problem`` (the message names missing and unexpected keys and mismatched shapes).
    """
    checkpoint = torch.load(weight_path, map_location="cpu", weights_only=True)
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
