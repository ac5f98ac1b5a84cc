"""Check and bind the Lightning hooks a user passes as ``custom_hooks`` (and a ``custom_training_step``).

`validate_custom_hooks` makes sure every entry names a hook that Lightning calls on a
LightningModule and can take the arguments Lightning passes (read from `LitProblem`'s own
signatures, so a wrong hook fails when the trainer is built rather than mid-training), and
`bind_custom_hooks` binds the hooks onto a module as methods: on a `LitProblem` the epoch-end
hooks and ``on_before_optimizer_step`` run after the module's own, every other hook replaces it.
`LitProblem` is looked up when a hook is checked or bound, not at import, because
`neuromancer.trainers.lightning` imports this module.
"""
from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

import lightning.pytorch as pl
from lightning.pytorch.core.hooks import CheckpointHooks, DataHooks, ModelHooks

if TYPE_CHECKING:
    from neuromancer.trainers.lightning import LitProblem

__all__ = ["validate_custom_hooks", "bind_custom_hooks", "BINDABLE_HOOKS", "CHAINED_HOOKS", "EPOCH_END_HOOKS"]

TensorDict = Dict[str, Any]
StepFunction = Callable[["LitProblem", TensorDict], Any]

# Lightning hooks a user may replace through ``custom_hooks``, and the positional arguments
# Lightning passes where the base class only declares ``*args``.
_STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step", "configure_optimizers",
                 "configure_callbacks", "configure_gradient_clipping", "lr_scheduler_step", "optimizer_step",
                 "optimizer_zero_grad", "backward")
BINDABLE_HOOKS = frozenset(
    [name for hooks in (ModelHooks, DataHooks, CheckpointHooks) for name in vars(hooks) if not name.startswith("_")]
    + list(_STEP_METHODS))
_VARARG_HOOK_PARAMETERS = {"predict_step": ("batch", "batch_idx")}
EPOCH_END_HOOKS = ("on_train_epoch_end", "on_validation_epoch_end", "on_test_epoch_end")
# LitProblem's own hooks that a custom hook of the same name runs after, instead of replacing.
CHAINED_HOOKS = EPOCH_END_HOOKS + ("on_before_optimizer_step",)


def _lit_problem_class() -> type:
    """`LitProblem`, imported on first use: its module imports this one."""
    from neuromancer.trainers.lightning import LitProblem

    return LitProblem


def _hook_parameters(name: str) -> Tuple[str, ...]:
    """Names of the positional arguments Lightning passes to hook ``name`` (``self`` excluded)."""
    if name in _VARARG_HOOK_PARAMETERS:
        return _VARARG_HOOK_PARAMETERS[name]
    params = list(inspect.signature(getattr(_lit_problem_class(), name)).parameters.values())[1:]
    return tuple(p.name for p in params
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def _accepts(function: Callable, nargs: int) -> bool:
    """Whether ``function`` can be called with ``nargs`` positional arguments."""
    try:
        inspect.signature(function).bind(*range(nargs))
    except TypeError:
        return False
    return True


def validate_custom_hooks(custom_hooks: Optional[Mapping[str, Callable]]) -> Dict[str, Callable]:
    """Check that every custom hook names a Lightning hook and has that hook's signature.

    :param custom_hooks: (dict | None) hook name -> function taking the LightningModule as ``self``.
    :return: (dict) the hooks (empty for None).
    :raises TypeError: ``custom_hooks`` is not a mapping, or a hook is not callable.
    :raises KeyError: a name is not a Lightning hook (the message lists close matches).
    :raises ValueError: a hook cannot take the arguments Lightning passes; the message gives the
        expected signature.
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
        expected = _hook_parameters(name)
        if not _accepts(function, 1 + len(expected)):
            raise ValueError(f"custom_hooks[{name!r}] must have the signature ({', '.join(('self',) + expected)}); "
                             f"got {function.__name__}{inspect.signature(function)}.")
    return dict(custom_hooks)


def _after_own_hook(name: str, function: Callable) -> Callable:
    """A hook running LitProblem's own hook ``name`` (epoch-end logging, skipping updates) and then ``function``."""
    own = getattr(_lit_problem_class(), name)

    def chained(self: "LitProblem", *args: Any, **kwargs: Any) -> Any:
        own(self, *args, **kwargs)
        return function(self, *args, **kwargs)

    return chained


def bind_custom_hooks(module: pl.LightningModule, custom_hooks: Optional[Mapping[str, Callable]]) -> None:
    """Bind each custom hook onto ``module`` as a method, replacing the Lightning hook of that name.

    On a `LitProblem`, custom epoch-end hooks run after its own (which log the epoch's means),
    so they see this epoch's metrics, and a custom ``on_before_optimizer_step`` runs after its own
    (which drops the gradients of a non-finite step); every other hook is replaced.

    :param module: (LightningModule) the module whose hooks are replaced.
    :param custom_hooks: (dict | None) hook name -> function ``f(self, ...)``; validated first.
    :raises TypeError | KeyError | ValueError: see `validate_custom_hooks`.
    """
    for name, function in validate_custom_hooks(custom_hooks).items():
        if isinstance(module, _lit_problem_class()) and name in CHAINED_HOOKS:
            function = _after_own_hook(name, function)
        setattr(module, name, types.MethodType(function, module))


def _check_training_step(custom_training_step: Optional[StepFunction]) -> None:
    """Raise unless ``custom_training_step`` is None or callable as ``f(model, batch)``."""
    if custom_training_step is None:
        return
    if not callable(custom_training_step) or not _accepts(custom_training_step, 2):
        raise ValueError("custom_training_step must be a function with the signature (model, batch) returning the "
                         f"loss; got {custom_training_step!r}.")
