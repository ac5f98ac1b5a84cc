"""K copies of one problem as one module: weights stacked along a leading dimension, evaluated by one ``vmap``.

A NeuroMANCER problem is small, so one training step is mostly Python and kernel-launch overhead.
Runs of a sweep that differ only in how far the optimizer steps can share that overhead: every
parameter and buffer of the problem gets a leading dimension of size K, one slice per member, and
one `torch.func.vmap` over the problem, run with each member's tensors in place of its own (what
`torch.func.functional_call` does), evaluates all K members on the same batch.
Members never mix: each slice's gradient is the gradient its run would get alone, and a member's
in-place buffer updates stay in its own slice.

`StackedProblem` is that module; `member_state_dict` gives a member back as a plain state dict of
the problem. `check_vectorisable` says, before any training, whether a problem and an optimizer can
train this way (`NotVectorisableError` names the module or setting that cannot, and the fix), and
`PopulationOptimizer` says how one optimizer over the stacked weights reproduces each member's own
optimizer. This module knows nothing of Lightning or sweeps.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import vmap

from neuromancer.exceptions import NeuromancerError
from neuromancer.vmap import unsafe_modules

__all__ = ["StackedProblem", "MemberSettings", "PopulationOptimizer", "NotVectorisableError", "check_vectorisable",
           "VECTORISABLE_OPTIMIZERS", "VECTORISED_SETTINGS"]

# Optimizers whose update is the learning rate times a quantity that does not depend on it (their
# state -- moments, momentum buffers, step counts -- is built from gradients and weights only). One
# such optimizer at learning rate 1 over the stacked weights, with each member's update then scaled
# by its own rate, steps every member exactly as its own optimizer would. Subclasses are not
# included: their step may use the learning rate otherwise.
VECTORISABLE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.RMSprop, torch.optim.Adagrad,
    torch.optim.Adadelta, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam)


# The settings members of one population may differ in: they only scale or stop the optimizer step.
VECTORISED_SETTINGS = ("learning_rate", "clip", "patience", "warmup")


class NotVectorisableError(NeuromancerError, ValueError):
    """A problem, optimizer or setting that cannot train as a population; the message names it and the fix."""


def _stacked(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` detached copies of ``tensor`` along a new leading dimension."""
    return tensor.detach().unsqueeze(0).repeat(size, *([1] * tensor.dim())).clone()


class StackedProblem(nn.Module):
    """``size`` members of one problem, their parameters and buffers stacked along a leading dimension.

    Every member starts from the problem's current weights. ``forward(batch, keys)`` evaluates all
    members on one batch and returns, for each output key asked for, a tensor whose leading
    dimension indexes the members (a scalar loss becomes a vector of ``size`` losses). The problem
    itself is kept as the template that runs with each member's tensors in place of its own; it is not a
    registered submodule, so ``parameters()`` are only the stacked ones, but it moves with this module
    (``.to(device)``), so tensors it holds outside its parameters and buffers stay on the right device.

    :param problem: the module to stack (a `Problem`); left unchanged except for its device.
    :param size: number of members, at least 1.
    :raises ValueError: ``size`` is not a positive int.
    """

    def __init__(self, problem: nn.Module, size: int) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int (the number of members), got {size!r}.")
        self.size = size
        self._template = (problem,)  # in a tuple, so nn.Module does not register it as a submodule
        parameters = list(problem.parameters())
        buffers = list(problem.buffers())
        self.stacked_parameters = nn.ParameterList(
            [nn.Parameter(_stacked(p, size), requires_grad=p.requires_grad) for p in parameters])
        for index, buffer in enumerate(buffers):
            self.register_buffer(f"stacked_buffer_{index}", _stacked(buffer, size))
        self._buffer_count = len(buffers)
        # Where each tensor of the problem is stacked: its index in `stacked_tensors` (tied tensors share one).
        index_of = {id(tensor): index for index, tensor in enumerate([*parameters, *buffers])}
        self._state_sources = _state_sources(problem, index_of)
        self._locations = _tensor_locations(problem, index_of)

    @property
    def problem(self) -> nn.Module:
        """The stacked problem (the template every member is evaluated with)."""
        return self._template[0]

    def stacked_buffers(self) -> list[torch.Tensor]:
        """The stacked buffers, in the order of the problem's ``buffers()``."""
        return [getattr(self, f"stacked_buffer_{index}") for index in range(self._buffer_count)]

    def stacked_tensors(self) -> list[torch.Tensor]:
        """Every stacked tensor: the parameters, then the buffers (a member's whole state)."""
        return [*self.stacked_parameters, *self.stacked_buffers()]

    def _apply(self, fn: Any, recurse: bool = True) -> StackedProblem:
        self.problem._apply(fn)
        return super()._apply(fn, recurse)

    def forward(self, batch: Mapping[str, Any], keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """Evaluate every member on ``batch``; return ``keys`` of the outputs, each with a leading member dimension.

        :param batch: a batch dict as the problem takes it (tensors, plus entries such as its ``name``).
        :param keys: output keys to return (e.g. ``['train_loss']``).
        :return: key -> tensor of shape ``[size, *shape of the member's output]``.
        :raises KeyError: a key is not among the problem's outputs (the message lists them).
        """
        tensors = {key: value for key, value in batch.items() if isinstance(value, torch.Tensor)}
        others = {key: value for key, value in batch.items() if not isinstance(value, torch.Tensor)}
        members = vmap(self._member_outputs, in_dims=(0, None, None), randomness="different")
        return members(tuple(self.stacked_tensors()), tensors, (others, tuple(keys)))

    def _member_outputs(self, state: tuple[torch.Tensor, ...], tensors: dict[str, torch.Tensor],
                        fixed: tuple[dict[str, Any], tuple[str, ...]]) -> dict[str, torch.Tensor]:
        """One member's outputs: the problem run with ``state`` (its parameters, then buffers) in place of its own.

        Like `torch.func.functional_call`, it puts the member's tensors where the problem keeps its
        parameters and buffers (every name of a tied tensor included) for the call and puts the
        problem's own back afterwards; the places are found once, when the population is made,
        which spares the per-call module walk of ``functional_call`` on this hot path.
        """
        others, keys = fixed
        originals = [store[name] for store, name, _ in self._locations]
        for store, name, index in self._locations:
            store[name] = state[index]
        try:
            output = self.problem({**tensors, **others})
        finally:
            for (store, name, _), original in zip(self._locations, originals, strict=True):
                store[name] = original
        missing = [key for key in keys if key not in output]
        if missing:
            raise KeyError(f"metric(s) {missing} are not among the problem's outputs {sorted(output)}; outputs are "
                           "prefixed with the dataset name, so set the metric to one of them.")
        return {key: output[key] for key in keys}

    def member_state_dict(self, member: int, tensors: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One member's weights as a CPU state dict of the problem (every key ``problem.state_dict()`` has).

        :param member: index of the member.
        :param tensors: stacked tensors to read, in the order of `stacked_tensors` (e.g. a copy of
            the best weights); None reads the current ones.
        """
        tensors = self.stacked_tensors() if tensors is None else tensors
        return {key: tensors[source][member].detach().to("cpu", copy=True) for key, source in self._state_sources}

    def load_member(self, member: int, state: Mapping[str, torch.Tensor]) -> None:
        """Write a state dict of the problem into one member's slice.

        :param member: index of the member.
        :param state: a state dict of the problem (e.g. from `member_state_dict`).
        """
        tensors = self.stacked_tensors()
        with torch.no_grad():
            for key, source in self._state_sources:
                tensors[source][member].copy_(state[key])


def _tensor_locations(problem: nn.Module, index_of: Mapping[int, int]) -> tuple[tuple[dict, str, int], ...]:
    """Every place ``problem`` holds a stacked tensor: (a module's ``_parameters`` or ``_buffers``, the name,
    the tensor's index), tied tensors at each of their names; ``index_of`` maps a tensor's ``id`` to its index."""
    locations: list[tuple[dict, str, int]] = []
    for module in problem.modules():
        for store in (module._parameters, module._buffers):
            locations.extend((store, name, index_of[id(value)]) for name, value in store.items()
                             if value is not None and id(value) in index_of)
    return tuple(locations)


def _state_sources(problem: nn.Module, index_of: Mapping[int, int]) -> tuple[tuple[str, int], ...]:
    """For every key of ``problem.state_dict()``, the index of its stacked tensor (``index_of`` maps ids to indices).

    :raises NotVectorisableError: the state dict holds an entry that is neither a parameter nor a
        buffer (a module's extra state), which a stacked copy cannot carry.
    """
    sources = []
    for key, tensor in problem.state_dict(keep_vars=True).items():
        if not isinstance(tensor, torch.Tensor) or id(tensor) not in index_of:
            raise NotVectorisableError(f"state dict entry {key!r} of the problem is neither a parameter nor a buffer, "
                                       "so members cannot be stacked; train one run at a time (sweep_vectorize=1).")
        sources.append((key, index_of[id(tensor)]))
    return tuple(sources)


@dataclass(frozen=True)
class MemberSettings:
    """What may differ between the members of one population: settings that only scale or stop the optimizer step.

    :param learning_rate: the member's learning rate; None for the optimizer's own (0.001 for the
        default Adam, a custom optimizer's groups' rates).
    :param clip: gradient-norm clipping threshold of the member's own gradients; None disables it.
    :param patience: epochs without improvement (after warmup) before the member stops; None: never.
    :param warmup: leading epochs that never count against ``patience``.
    """

    learning_rate: float | None = None
    clip: float | None = 100.0
    patience: int | None = None
    warmup: int = 0


@dataclass(frozen=True)
class PopulationOptimizer:
    """How one optimizer over the stacked weights steps every member as its own optimizer would.

    The population's optimizer is the members' optimizer class with their settings, at learning
    rate 1, over the stacked parameters (one parameter group per group of the original
    optimizer). After each step, every member's update is multiplied by its own learning rate:
    `update_scales` gives, per stacked trainable parameter, the learning rate of each member.

    :param optimizer_class: one of `VECTORISABLE_OPTIMIZERS`.
    :param groups: settings of each parameter group (learning rate excluded) and the indices,
        into the problem's parameters, of the group's parameters.
    :param group_learning_rates: each group's own learning rate, used by members without a
        learning rate of their own.
    :param default: whether this is `LitTrainer`'s default optimizer (not a user's), whose kernel
        may be chosen for speed.
    """

    optimizer_class: type[torch.optim.Optimizer]
    groups: tuple[tuple[dict[str, Any], tuple[int, ...]], ...]
    group_learning_rates: tuple[float, ...] = field(default=())
    default: bool = False

    @classmethod
    def from_settings(cls, problem: nn.Module, custom_optimizer: torch.optim.Optimizer | None,
                      default_learning_rate: float, default_settings: Mapping[str, Any]) -> PopulationOptimizer:
        """The plan for the default optimizer (Adam with ``default_settings``) or for ``custom_optimizer``.

        :param problem: the problem the optimizer updates.
        :param custom_optimizer: an optimizer built on ``problem.parameters()``, or None.
        :param default_learning_rate: the default optimizer's learning rate.
        :param default_settings: the default Adam's other settings (e.g. ``betas``).
        :raises NotVectorisableError: the optimizer's class is not one of `VECTORISABLE_OPTIMIZERS`,
            or it has already stepped (its state would have to be split between members).
        """
        indices = {id(p): index for index, p in enumerate(problem.parameters())}
        if custom_optimizer is None:
            every = tuple(indices.values())
            return cls(torch.optim.Adam, ((dict(default_settings), every),), (default_learning_rate,), default=True)
        optimizer_class = type(custom_optimizer)
        if optimizer_class not in VECTORISABLE_OPTIMIZERS:
            raise NotVectorisableError(
                f"{optimizer_class.__name__} cannot train a population: its step is not proportional to its learning "
                f"rate (vectorised sweeps support {', '.join(c.__name__ for c in VECTORISABLE_OPTIMIZERS)}); "
                "pass sweep_vectorize=1 to train one run at a time.")
        if _has_stepped(custom_optimizer):
            raise NotVectorisableError(
                "custom_optimizer has already taken steps (it holds state), which cannot be split between members; "
                "build a fresh optimizer, or pass sweep_vectorize=1 to train one run at a time.")
        groups, rates = [], []
        for group in custom_optimizer.param_groups:
            settings = {key: value for key, value in group.items() if key not in ("params", "lr")}
            groups.append((settings, tuple(indices[id(p)] for p in group["params"])))
            rates.append(float(group["lr"]))
        return cls(optimizer_class, tuple(groups), tuple(rates))

    def build(self, stacked: StackedProblem) -> torch.optim.Optimizer:
        """The population's optimizer: this class and these settings, at learning rate 1, over the stacked weights.

        The default Adam runs its fused kernel where torch has one for the device (one pass over
        each stacked tensor instead of one per operation), its multi-tensor one otherwise; both
        compute Adam's step, so members still step as their runs do, to rounding.
        """
        parameters = list(stacked.stacked_parameters)
        groups = [{"params": [parameters[index] for index in indices], **settings, "lr": 1.0}
                  for settings, indices in self.groups]
        if not self.default:
            return self.optimizer_class(groups)  # type: ignore[call-arg]  # the groups carry every setting
        try:
            return self.optimizer_class(groups, fused=True)  # type: ignore[call-arg]
        except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
            return self.optimizer_class(groups, foreach=True)  # type: ignore[call-arg]

    def update_scales(self, stacked: StackedProblem, member_learning_rates: Sequence[float | None]
                      ) -> list[torch.Tensor]:
        """Each stacked parameter's per-member learning rate, shaped to broadcast against the parameter.

        :param stacked: the population.
        :param member_learning_rates: each member's learning rate; None for a member that uses the
            optimizer's own (per group).
        :return: one tensor per stacked parameter of the optimizer's groups, in group order.
        """
        parameters = list(stacked.stacked_parameters)
        scales = []
        for (_, indices), group_rate in zip(self.groups, self.group_learning_rates, strict=True):
            rates = torch.tensor([group_rate if rate is None else rate for rate in member_learning_rates],
                                 dtype=torch.float64)
            for index in indices:
                parameter = parameters[index]
                shape = (stacked.size,) + (1,) * (parameter.dim() - 1)
                scales.append(rates.to(parameter.dtype).reshape(shape).to(parameter.device))
        return scales


def _has_stepped(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` holds state from a step (a step count above 0, or state without a count, e.g. momentum)."""
    for state in optimizer.state.values():
        step = state.get("step")
        if (float(step) > 0) if step is not None else bool(state):
            return True
    return False


def check_vectorisable(problem: nn.Module, batch: Mapping[str, Any], train_metric: str, size: int = 2) -> None:
    """Raise unless ``problem`` can train as a population: declared safe, and one vmapped step on ``batch`` works.

    The probe stacks ``size`` members, evaluates ``train_metric`` on the batch and back-propagates
    it, leaving the problem and the random number generators as they were. When it fails, the
    error names the innermost module that was running, found with forward hooks during the probe.

    :param problem: the problem to train.
    :param batch: one training batch (as the train loader gives it).
    :param train_metric: the output key training minimises.
    :param size: members in the probe.
    :raises NotVectorisableError: a submodule is not vmap-safe (`neuromancer.vmap.unsafe_modules`),
        the metric is not one number per member, or the probe fails (the message names the module
        and the cause).
    """
    declared = unsafe_modules(problem)
    if declared:
        raise NotVectorisableError(f"{'; '.join(declared)}: so the runs of this problem cannot train as one "
                                   "population under torch.func.vmap; they train one at a time.")
    probe = copy.deepcopy(problem)
    running: list[str] = []
    with torch.random.fork_rng(devices=[]), _module_trace(probe, running):
        try:
            loss = StackedProblem(probe, size)(batch, (train_metric,))[train_metric]
            if loss.shape != (size,):
                raise NotVectorisableError(
                    f"{train_metric!r} has shape {tuple(loss.shape[1:])} per member; a population needs one number "
                    "per member (a scalar loss)")
            loss.sum().backward()
        except (NotVectorisableError, KeyError):
            raise
        except Exception as error:
            where = running[-1] if running else "the problem"
            raise NotVectorisableError(f"{where} cannot run under torch.func.vmap ({type(error).__name__}: "
                                       f"{str(error).splitlines()[0] if str(error) else ''}), so the runs of this "
                                       "problem cannot train as one population; they train one at a time.") from error


@contextlib.contextmanager
def _module_trace(problem: nn.Module, running: list[str]) -> Iterator[None]:
    """Keep in ``running`` the names of the submodules whose ``forward`` has started and not returned."""
    def leave(*_: Any) -> None:
        running.pop()

    handles = []
    for name, module in problem.named_modules():
        label = f"{name or 'the problem'} ({type(module).__name__})"
        handles.append(module.register_forward_pre_hook(lambda *_, label=label: running.append(label)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
