"""Agents and pairwise couplings, the building blocks of networked ODEs (`ode.GeneralNetworkedODE`).

A networked system is a set of agents (rooms, tanks, masses), each owning some named states, linked
by interactions. An `Agent` maps its own states to their intrinsic rate of change (``RCNode``: a
capacitance scaling; ``SourceSink``: nothing, a holder for external signals). An `Interaction`
takes the two values ``[sender, receiver]`` of one feature (e.g. ``'T'``) of a pair of agents and
returns the flow it adds to the sender (and subtracts from the receiver when symmetric); its
``pins`` list the agent pairs it connects. `map_from_agents` numbers the agents' states into the
state vector. ``agents`` and ``couplings`` map names to classes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

# Signature defaults, as upstream spells them. Instances built with a default get their own copy.
_DEFAULT_C = nn.Parameter(torch.tensor([1.0]))
_DEFAULT_R = nn.Parameter(torch.tensor(1.0))
_DEFAULT_R_SWITCH = nn.Parameter(torch.tensor([1.0]))
_DEFAULT_STATE_NAMES = ["T"]
_NO_PINS: list = []


def _own(value: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    """Return a fresh copy of ``default`` when ``value`` is it, so instances never share a parameter."""
    return nn.Parameter(default.detach().clone()) if value is default else value


class Agent(nn.Module, ABC):
    """A node of a networked system with states ``state_names`` and intrinsic dynamics.

    :param state_names: the names of the agent's states, one per column it receives
    """

    def __init__(self, state_names: Sequence[str]) -> None:
        super().__init__()
        self.state_names = list(state_names)

    @abstractmethod
    def intrinsic(self, x: torch.Tensor) -> torch.Tensor:
        """Return the agent's own contribution for its states ``x [batch, len(state_names)]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Check the width of ``x`` and return :meth:`intrinsic`.

        :raises ValueError: if ``x`` does not have one column per state name
        """
        if x.shape[-1] != len(self.state_names):
            raise ValueError(f"{type(self).__name__} has states {self.state_names} but got {x.shape[-1]} columns")
        return self.intrinsic(x)


class RCNode(Agent):
    """A lumped capacitance (room, volume): scales what it receives by ``max(C, 1e-6) * scaling``.

    :param C: capacitance-like factor, default a fresh learnable 1.0
    :param state_names: state names, default ``['T']``
    :param scaling: constant factor for multi-scale problems, default 1.0
    """

    def __init__(self, C: torch.Tensor = _DEFAULT_C, state_names: list[str] = _DEFAULT_STATE_NAMES,
                 scaling: float = 1.0) -> None:
        super().__init__(state_names=state_names)
        self.C = _own(C, _DEFAULT_C)
        self.scaling = scaling

    def intrinsic(self, x: torch.Tensor) -> torch.Tensor:
        """``max(C, 1e-6) * scaling * x`` (the floor keeps the factor positive while learning)."""
        return torch.clamp(torch.as_tensor(self.C, dtype=x.dtype), min=1e-6) * self.scaling * x


class SourceSink(Agent):
    """An agent without dynamics of its own (zero rate), e.g. an ambient temperature or a heat source.

    :param state_names: state names, default ``['T']``
    """

    def __init__(self, state_names: list[str] = _DEFAULT_STATE_NAMES) -> None:
        super().__init__(state_names=state_names)

    def intrinsic(self, x: torch.Tensor) -> torch.Tensor:
        """Zeros like ``x``."""
        return torch.zeros_like(x)


class Interaction(nn.Module, ABC):
    """A pairwise coupling of one feature between agents.

    :param feature_name: the state name the coupling reads and changes (e.g. ``'T'``)
    :param pins: the (sender, receiver) agent index pairs it connects
    :param symmetric: also subtract the flow from the receiver (conservation)
    """

    def __init__(self, feature_name: str, pins: Sequence[Sequence[int]] | None, symmetric: bool) -> None:
        super().__init__()
        self.feature_name = feature_name
        self.pins = [list(pin) for pin in (pins or [])]
        self.symmetric = symmetric

    @abstractmethod
    def interact(self, x: torch.Tensor) -> torch.Tensor:
        """Return the flow into the sender from ``x = [sender, receiver]`` values ``[batch, 2]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`interact`."""
        return self.interact(x)


class DeltaTemp(Interaction):
    """Conduction: ``max(R, 0.01) * (x_receiver - x_sender)``.

    :param R: conductance, default a fresh learnable 1.0
    :param feature_name: coupled state, default ``'T'``
    :param symmetric: also subtract the flow from the receiver (conservation), default False
    :param pins: connected agent pairs, default none
    """

    def __init__(self, R: torch.Tensor = _DEFAULT_R, feature_name: str = "T", symmetric: bool = False,
                 pins: Sequence[Sequence[int]] = _NO_PINS) -> None:
        super().__init__(feature_name=feature_name, pins=pins, symmetric=symmetric)
        self.R = _own(R, _DEFAULT_R)

    def _conductance(self, x: torch.Tensor) -> torch.Tensor:
        """``R`` floored at 0.01, in the dtype of ``x``."""
        return torch.clamp(torch.as_tensor(self.R, dtype=x.dtype), min=1e-2)

    def interact(self, x: torch.Tensor) -> torch.Tensor:
        """Flow proportional to the difference receiver minus sender, ``[batch, 1]``."""
        return self._conductance(x) * (x[:, [1]] - x[:, [0]])


class DeltaTempSwitch(DeltaTemp):
    """Conduction that is on only while the receiver's value is non-negative (e.g. a switched source).

    :param R: conductance, default a fresh learnable ``[1.0]``
    :param feature_name: coupled state, default ``'T'``
    :param symmetric: also subtract the flow from the receiver (conservation), default False
    :param pins: connected agent pairs, default none
    """

    def __init__(self, R: torch.Tensor = _DEFAULT_R_SWITCH, feature_name: str = "T", symmetric: bool = False,
                 pins: Sequence[Sequence[int]] = _NO_PINS) -> None:
        super().__init__(R=_own(R, _DEFAULT_R_SWITCH), feature_name=feature_name, symmetric=symmetric, pins=pins)

    def interact(self, x: torch.Tensor) -> torch.Tensor:
        """`DeltaTemp`'s flow times ``(x_receiver >= 0)``."""
        return super().interact(x) * (x[:, [1]] >= 0.0)


class HVACConnection(Interaction):
    """An imposed source: the flow into the sender is the receiver's value (e.g. a heat input signal).

    :param feature_name: coupled state, default ``'T'``
    :param symmetric: also subtract the flow from the receiver (conservation), default False
    :param pins: connected agent pairs, default none
    """

    def __init__(self, feature_name: str = "T", symmetric: bool = False,
                 pins: Sequence[Sequence[int]] = _NO_PINS) -> None:
        super().__init__(feature_name=feature_name, pins=pins, symmetric=symmetric)

    def interact(self, x: torch.Tensor) -> torch.Tensor:
        """The receiver's column, ``[batch, 1]``."""
        return x[:, [1]]


def map_from_agents(intrinsic_list: Sequence[Agent]) -> list[OrderedDict[str, int]]:
    """Number the agents' states consecutively into one state vector.

    :param intrinsic_list: the agents in order
    :return: one ``OrderedDict`` per agent mapping each of its state names to its column index
        (for two ``RCNode`` agents: ``[{'T': 0}, {'T': 1}]``)
    """
    maps, offset = [], 0
    for agent in intrinsic_list:
        maps.append(OrderedDict((name, offset + i) for i, name in enumerate(agent.state_names)))
        offset += len(agent.state_names)
    return maps


agents = {"RCNode": RCNode, "SourceSink": SourceSink}
couplings = {"DeltaTemp": DeltaTemp, "DeltaTempSwitch": DeltaTempSwitch, "HVACConnection": HVACConnection}
