"""Check and bind the Lightning hooks a user passes as ``custom_hooks`` (and a ``custom_training_step``).

`validate_custom_hooks` makes sure every entry names a hook that Lightning calls on a
LightningModule and has the signature of that hook (read from Lightning's own hook signatures,
so a wrong hook fails when the trainer is built rather than mid-training), and
`bind_custom_hooks` binds the hooks onto a module as methods, either replacing the module's hook
of that name or, for the names given as ``chained``, running after it. This module knows nothing
of `LitProblem`, which uses it with ``chained=CHAINED_HOOKS``.
"""
from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Callable, Collection, Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.core.hooks import CheckpointHooks, DataHooks, ModelHooks

__all__ = ["validate_custom_hooks", "bind_custom_hooks", "check_training_step", "BINDABLE_HOOKS", "CHAINED_HOOKS",
           "EPOCH_END_HOOKS", "StepFunction", "TensorDict"]

TensorDict = dict[str, Any]
StepFunction = Callable[[pl.LightningModule, TensorDict], Any]

# Lightning hooks a user may replace through ``custom_hooks``, and the positional arguments
# Lightning passes where the base class only declares ``*args``.
_STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step", "configure_optimizers",
                 "configure_callbacks", "configure_gradient_clipping", "lr_scheduler_step", "optimizer_step",
                 "optimizer_zero_grad", "backward")
BINDABLE_HOOKS = frozenset(
    [name for hooks in (ModelHooks, DataHooks, CheckpointHooks) for name in vars(hooks) if not name.startswith("_")]
    + list(_STEP_METHODS))
_VARARG_HOOK_PARAMETERS = {name: ("batch", "batch_idx")
                           for name in ("training_step", "validation_step", "test_step", "predict_step")}
EPOCH_END_HOOKS = ("on_train_epoch_end", "on_validation_epoch_end", "on_test_epoch_end")
# LitProblem's own hooks that a custom hook of the same name runs after, instead of replacing:
# the epoch-start hooks empty the step-output lists, the epoch-end hooks log the epoch's means,
# on_before_optimizer_step drops the gradients of a non-finite step.
CHAINED_HOOKS = ("on_train_epoch_start", "on_validation_epoch_start") + EPOCH_END_HOOKS + ("on_before_optimizer_step",)


def _hook_parameters(name: str) -> tuple[str, ...]:
    """Names of the positional arguments Lightning passes to hook ``name`` (``self`` excluded)."""
    if name in _VARARG_HOOK_PARAMETERS:
        return _VARARG_HOOK_PARAMETERS[name]
    params = list(inspect.signature(getattr(pl.LightningModule, name)).parameters.values())[1:]
    return tuple(p.name for p in params
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def _accepts(function: Callable, nargs: int) -> bool:
    """Whether ``function`` can be called with ``nargs`` positional arguments."""
    try:
        inspect.signature(function).bind(*range(nargs))
    except TypeError:
        return False
    return True


def _has_signature(function: Callable, names: tuple[str, ...]) -> bool:
    """Whether ``function`` takes ``len(names)`` positional arguments, its named ones called as in ``names``."""
    if not _accepts(function, len(names)):
        return False
    positional = [p.name for p in inspect.signature(function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return all(ours == expected for ours, expected in zip(positional, names, strict=False))


def validate_custom_hooks(custom_hooks: Mapping[str, Callable] | None) -> dict[str, Callable]:
    """Check that every custom hook names a Lightning hook and has that hook's signature.

    :param custom_hooks: hook name -> function taking the LightningModule as ``self``.
    :return: the hooks (empty for None).
    :raises TypeError: ``custom_hooks`` is not a mapping, or a hook is not callable.
    :raises KeyError: a name is not a Lightning hook (the message lists close matches).
    :raises ValueError: a hook's signature is not the hook's: it cannot take the arguments Lightning
        passes, or names them otherwise (the first one ``self``); the message gives the expected signature.
    """
    if custom_hooks is None:
        return {}
    if not isinstance(custom_hooks, Mapping):
        raise TypeError(f"custom_hooks must be a dict of hook name -> function, got {type(custom_hooks).__name__}.")
    for name, function in custom_hooks.items():
        if name not in BINDABLE_HOOKS:
            close = difflib.get_close_matches(str(name), sorted(BINDABLE_HOOKS), n=3)
            raise KeyError(f"custom_hooks key {name!r} is not a Lightning hook"
                           + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "."))
        if not callable(function):
            raise TypeError(f"custom_hooks[{name!r}] must be callable, got {type(function).__name__}.")
        expected = ("self",) + _hook_parameters(name)
        if not _has_signature(function, expected):
            raise ValueError(f"custom_hooks[{name!r}] must have the signature ({', '.join(expected)}); "
                             f"got {getattr(function, '__name__', 'the hook')}{inspect.signature(function)}.")
    return dict(custom_hooks)


def _after_own_hook(own: Callable, function: Callable) -> Callable:
    """A hook running the class's own hook ``own`` and then ``function``."""

    def chained(self: pl.LightningModule, *args: Any, **kwargs: Any) -> Any:
        own(self, *args, **kwargs)
        return function(self, *args, **kwargs)

    return chained


def bind_custom_hooks(module: pl.LightningModule, custom_hooks: Mapping[str, Callable] | None,
                      chained: Collection[str] = ()) -> None:
    """Bind each custom hook onto ``module`` as a method, replacing the Lightning hook of that name.

    A hook whose name is in ``chained`` runs after the hook of that name that ``module``'s class
    defines, instead of replacing it: `LitProblem` passes `CHAINED_HOOKS`, so custom epoch-end
    hooks see the epoch's logged means and step losses, and its own bookkeeping (emptying the
    step-output lists, dropping the gradients of a non-finite step) still happens.

    :param module: the module whose hooks are replaced.
    :param custom_hooks: hook name -> function ``f(self, ...)``; validated first.
    :param chained: names of the hooks that run after the class's own.
    :raises TypeError | KeyError | ValueError: see `validate_custom_hooks`.
    """
    for name, function in validate_custom_hooks(custom_hooks).items():
        if name in chained:
            function = _after_own_hook(getattr(type(module), name), function)
        setattr(module, name, types.MethodType(function, module))


def check_training_step(custom_training_step: StepFunction | None) -> None:
    """Raise unless ``custom_training_step`` is None or callable as ``f(model, batch)``."""
    if custom_training_step is None:
        return
    if not callable(custom_training_step) or not _accepts(custom_training_step, 2):
        raise ValueError("custom_training_step must be a function with the signature (model, batch) returning the "
                         f"loss; got {custom_training_step!r}.")
