"""Which parts of a model survive ``torch.func.vmap``, so that copies of it can train as one population.

A population is K copies (members) of one model whose parameters and buffers are stacked along a
new leading dimension (``torch.func.stack_module_state``); one ``torch.func.vmap`` over
``torch.func.functional_call`` then evaluates every member on the same batch, and one backward
pass gives each member its own gradients. Inside ``vmap`` a member's tensors are *batched*: code
must not read their values into Python (``float()``, ``.item()``, ``bool()``, ``if tensor:``),
make a shape depend on them, write a batched value in place into an unbatched tensor, call
``torch.autograd.grad`` or an old-style ``torch.autograd.Function`` on them, or keep them after
the call returns (in an attribute or a list).

The modules of NeuroMANCER follow these rules and give, outside ``vmap``, exactly the results and
speed they had before. The few that cannot follow them say so: their class sets
``vmap_safe = False`` and explains why in ``vmap_unsafe_reason`` (a property where it depends on
how the instance is configured, e.g. `neuromancer.dynamics.integrators.DiffEqIntegrator` with the
adjoint method). A module without the attribute is taken to be safe. :func:`unsafe_modules` lists
a model's unsafe submodules by name, so that a trainer can run such a model one copy at a time
and tell the user which module made it; :func:`is_transformed` lets module code keep a fast path
that reads a tensor's value where no transform is active.
"""
from __future__ import annotations

import torch
from torch import nn

from neuromancer.exceptions import NeuromancerError

__all__ = ["VmapUnsupportedError", "is_transformed", "population_values", "transform_active", "unsafe_modules"]


class VmapUnsupportedError(NeuromancerError, ValueError):
    """Raised where a module is asked, inside ``torch.func.vmap``, for something it can only do outside."""


def is_transformed(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is wrapped by a ``torch.func`` transform (``vmap``, ``grad``, ...).

    A wrapped tensor may hold a different value for every member of a population, so its value
    cannot be read into Python; module code checks this to choose between a fast path that branches
    on the value and a branch-free path that computes every case and selects with ``torch.where``.

    :param tensor: any tensor; plain tensors and parameters outside a transform give False.
    :return: True inside a transform for tensors it wraps.
    """
    return torch._C._functorch.is_functorch_wrapped_tensor(tensor)


def population_values(tensor: torch.Tensor) -> torch.Tensor | None:
    """The values of ``tensor`` for every member of the ``vmap`` population it belongs to.

    Outside transforms that is ``tensor`` itself. Inside one ``vmap`` it is the tensor one level
    below the transform, with the members along its batch dimension: module code may read it (for
    instance to see that every member's parameter has the same sign and take one code path for
    all) but must compute its result from ``tensor``. Where the tensor is wrapped more deeply
    (``vmap`` inside ``vmap``, ``grad`` inside ``vmap``) the values cannot be read and the result
    is None.

    :param tensor: any tensor.
    :return: ``tensor``, the population's values, or None.
    """
    if not is_transformed(tensor):
        return tensor
    unwrapped = torch._C._functorch.get_unwrapped(tensor)
    return None if is_transformed(unwrapped) else unwrapped


def transform_active() -> bool:
    """Whether code runs inside a ``torch.func`` transform (``vmap``, ``grad``, ``vjp``, ...).

    There ``torch.autograd.grad`` cannot differentiate the tensors the transform wraps, so code
    that differentiates inside a forward pass uses ``torch.func`` instead.
    """
    return torch._C._functorch.peek_interpreter_stack() is not None


def _foreign_reason(module: nn.Module) -> str | None:
    """Why a ``torch.nn`` module known not to survive ``vmap`` does not, or None."""
    if isinstance(module, nn.RNNBase):
        return "the fused kernels of torch.nn.RNN, LSTM and GRU have no vmap batching rule"
    if isinstance(module, nn.RReLU):
        return "torch.rrelu, behind torch.nn.RReLU, has no vmap batching rule"
    return None


def _reason(module: nn.Module) -> str | None:
    """Why ``module`` is not vmap-safe, or None where it is."""
    declared = getattr(module, "vmap_safe", None)
    if declared is None:
        return _foreign_reason(module)
    if not declared:
        return str(getattr(module, "vmap_unsafe_reason", "it declares vmap_safe = False"))
    return None


def unsafe_modules(module: nn.Module) -> list[str]:
    """Name every submodule of ``module`` (itself included) that does not survive ``vmap``.

    A submodule is unsafe where it (or its class) sets ``vmap_safe`` to False, or where it is a
    ``torch.nn`` module known not to survive ``vmap`` (``RNN``, ``LSTM``, ``GRU`` and ``RReLU``) and
    does not say otherwise. Functions wrapped in a `neuromancer.system.Node`
    cannot be inspected and are taken to be safe.

    :param module: the model, e.g. a `neuromancer.problem.Problem`.
    :return: one line per unsafe submodule, ``'<dotted name> (<class>): <reason>'`` (the dotted name
        is the one ``module.get_submodule`` accepts; the model itself is ``'<root>'``); empty
        when the whole model is vmap-safe.
    """
    found = []
    for name, submodule in module.named_modules(remove_duplicate=True):
        reason = _reason(submodule)
        if reason is not None:
            found.append(f"{name or '<root>'} ({type(submodule).__name__}): {reason}")
    return found
