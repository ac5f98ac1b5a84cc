"""ODE right-hand sides: the ``ODESystem`` base, ready-made parametric, hybrid and networked systems, SINDy and SSM.

Subclass :class:`ODESystem`, declare parameters (e.g. ``nn.Parameter``) in ``__init__`` and write
``ode_equations(x, *args)``; wrap the instance in an integrator (``RK4(MyODE(), h=0.1)``) to get a
differentiable one-step model for system identification. The ready-made systems (`LorenzParam`,
`TwoTankParam`, `CSTR_Param`, ...) have learnable physical constants for parameter estimation; the
hybrid ones (`BrusselatorHybrid`, `LotkaVolterraHybrid`) learn one term with a neural ``block``
(universal differential equations); `GeneralNetworkedODE` assembles agents and couplings from
`neuromancer.dynamics.physics`; `SINDy` fits sparse coefficients over a function library. The
registries ``ode_param_systems_auto``, ``ode_param_systems_nonauto``, ``ode_hybrid_systems_auto``,
``ode_networked_systems`` and ``odes`` map names to classes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import nn

from neuromancer.dynamics.library import FunctionLibrary


class ODESystem(nn.Module, ABC):
    """Right-hand side ``dx/dt = ode_equations(x, *args)`` of an ODE with ``outsize`` states.

    :param insize: total width of the inputs: states plus the extra arguments (e.g. ``nx + nu``)
    :param outsize: number of states ``nx``; the derivative has this width
    :raises ValueError: if the sizes are not positive or ``insize < outsize``

    Attributes ``in_features``/``out_features`` mirror the sizes, ``nx = outsize`` and ``nu = insize - outsize``.
    """

    def __init__(self, insize: int, outsize: int) -> None:
        super().__init__()
        if outsize < 1 or insize < outsize:
            raise ValueError(f"need 1 <= outsize <= insize, got insize={insize}, outsize={outsize}")
        self.in_features, self.out_features = insize, outsize
        self.nx, self.nu = outsize, insize - outsize

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Check the input widths and return ``ode_equations(x, *args)``.

        :param x: [..., nx] states
        :param args: extra tensors [..., n_i] (inputs, disturbances) whose widths add up to ``nu``
        :return: [..., nx] time derivative
        :raises ValueError: if ``x`` is not ``nx`` wide or the arguments are not ``nu`` wide in total
        """
        if x.shape[-1] != self.nx:
            raise ValueError(f"x has {x.shape[-1]} columns; {type(self).__name__} has nx={self.nx} states")
        extra = sum(arg.shape[-1] for arg in args)
        if extra != self.nu:
            raise ValueError(f"extra arguments have {extra} columns in total; {type(self).__name__} expects "
                             f"nu = insize - outsize = {self.nu}")
        return self.ode_equations(x, *args)

    @abstractmethod
    def ode_equations(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Compute ``dx/dt`` from the states and the extra arguments."""


def _parameter(value: float, trainable: bool = True) -> nn.Parameter:
    """A one-element ``nn.Parameter`` holding ``value``, learnable where ``trainable``."""
    return nn.Parameter(torch.tensor([float(value)]), requires_grad=trainable)


def _check_hybrid_block(block: Callable, owner: str) -> None:
    """Check that the learned term of a hybrid model maps the 2 states to 1 value.

    :raises ValueError: if ``block`` declares other ``in_features``/``out_features``
    """
    sizes = (getattr(block, "in_features", None), getattr(block, "out_features", None))
    if sizes != (2, 1):
        raise ValueError(f"{owner} needs a block with in_features=2 and out_features=1 (it replaces the "
                         f"nonlinear term of the two states); got in_features, out_features = {sizes}")


class SSM(nn.Module):
    """Discrete-time state-space model ``x_{k+1} = fx(x_k) + fu(u_k) [+ fd(d_k)]``.

    :param fx: state map ``[batch, nx] -> [batch, nx]``
    :param fu: input map ``[batch, nu] -> [batch, nx]``
    :param nx: number of states
    :param nu: number of inputs
    :param fd: disturbance map ``[batch, nd] -> [batch, nx]``, default None
    :param nd: number of disturbances, default 0
    """

    def __init__(self, fx: nn.Module, fu: nn.Module, nx: int, nu: int, fd: nn.Module | None = None,
                 nd: int = 0) -> None:
        super().__init__()
        self.fx, self.fu, self.fd = fx, fu, fd
        self.nx, self.nu, self.nd = nx, nu, nd
        self.in_features, self.out_features = nx + nu + nd, nx

    def forward(self, x: torch.Tensor, u: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
        """Return the next state; the disturbance term is added where both ``fd`` and ``d`` are given.

        :param x: [batch, nx]
        :param u: [batch, nu]
        :param d: [batch, nd]
        :return: [batch, nx]
        :raises ValueError: if ``x``, ``u`` or ``d`` is not 2-D
        """
        for name, value in (("x", x), ("u", u), ("d", d)):
            if value is not None and value.dim() != 2:
                raise ValueError(f"SSM takes 2-D [batch, features] tensors; {name} has shape {tuple(value.shape)}")
        x_next = self.fx(x) + self.fu(u)
        if self.fd is not None and d is not None:
            x_next = x_next + self.fd(d)
        return x_next


class GeneralNetworkedODE(ODESystem):
    """A networked ODE: agents with intrinsic dynamics coupled by pairwise interactions.

    ``map[i]`` maps agent ``i``'s state names to columns of the feature vector ``[x, *args]``
    (see `physics.map_from_agents`). Each agent reads its columns; each coupling, for each of its
    ``pins = [sender, receiver]``, reads the ``feature_name`` columns of the two agents and adds its
    output to the sender's column (and subtracts it from the receiver's when symmetric).

    :param map: the state columns of each agent, one dict per agent
    :param agents: the agents, in the order of ``map``
    :param couplings: the interactions
    :param insize: width of ``[x, *args]``, default None: the number of mapped states
    :param outsize: number of states ``nx`` returned, default None: ``insize``
    :param inductive_bias: ``'additive'`` (default): ``dx = intrinsic(x) + coupling(x)``;
        ``'compositional'``: ``dx = intrinsic(coupling(x))``
    :raises ValueError: if ``map`` and ``agents`` differ in length or ``inductive_bias`` is unknown
    """

    INDUCTIVE_BIASES = ("additive", "compositional")

    def __init__(self, map: Sequence[dict[str, int]] | None = None, agents: Sequence[nn.Module] | None = None,
                 couplings: Sequence[nn.Module] | None = None, insize: int | None = None,
                 outsize: int | None = None, inductive_bias: str = "additive") -> None:
        state_map = list(map or [])
        agent_list, coupling_list = list(agents or []), list(couplings or [])
        if len(state_map) != len(agent_list):
            raise ValueError(f"map has {len(state_map)} entries but there are {len(agent_list)} agents; "
                             f"give one state map per agent (physics.map_from_agents(agents))")
        if inductive_bias not in self.INDUCTIVE_BIASES:
            raise ValueError(f"inductive_bias={inductive_bias!r}; use one of {self.INDUCTIVE_BIASES}")
        if insize is None:
            insize = sum(len(states) for states in state_map)
        if outsize is None:
            outsize = insize
        super().__init__(insize=insize, outsize=outsize)
        self.map = state_map
        self.agents = nn.ModuleList(agent_list)
        self.couplings = nn.ModuleList(coupling_list)
        self.insize, self.outsize = insize, outsize
        self.inductive_bias = inductive_bias

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Return :meth:`ode_equations`; ``x`` may hold more columns than ``outsize`` (all mapped states).

        :raises ValueError: if ``x`` is not 2-D ``[batch, states]``
        """
        if x.dim() != 2:
            raise ValueError(f"GeneralNetworkedODE takes 2-D [batch, states] tensors, got shape {tuple(x.shape)}")
        return self.ode_equations(x, *args)

    def ode_equations(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Combine intrinsic and coupling physics per ``inductive_bias``; returns ``[batch, outsize]``."""
        if self.inductive_bias == "additive":
            dx = self.intrinsic_physics(x, *args) + self.coupling_physics(x, *args)
        else:
            dx = self.intrinsic_physics(self.coupling_physics(x, *args), *args)
        return dx[:, :self.outsize]

    def intrinsic_physics(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Each agent's intrinsic term on its own columns of ``[x, *args]``, concatenated in agent order."""
        features = torch.cat([x, *args], dim=-1)
        return torch.cat([agent(features[:, list(states.values())])
                          for agent, states in zip(self.agents, self.map, strict=True)], dim=-1)

    def coupling_physics(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Every coupling's flows ``[batch, x columns]``: added at senders, taken from receivers if symmetric."""
        features = torch.cat([x, *args], dim=-1)
        dx = torch.zeros_like(x)
        for physics in self.couplings:
            for sender, receiver in physics.pins:
                send = self.map[sender][physics.feature_name]
                receive = self.map[receiver][physics.feature_name]
                flow = physics(features[:, [send, receive]])
                dx = dx.index_add(1, torch.tensor([send], device=x.device), flow.to(dx.dtype))
                if physics.symmetric:
                    dx = dx.index_add(1, torch.tensor([receive], device=x.device), -flow.to(dx.dtype))
        return dx


class SINDy(ODESystem):
    """Sparse identification of nonlinear dynamics: ``dx/dt = library(x) @ coef`` (Brunton et al. 2016).

    :param library: the candidate functions; ``coef`` has its shape
        ``[number of functions, number of states]`` and starts uniform in [0, 1)
    :param threshold: coefficients below this magnitude are left out of ``str(model)``,
        default 0.01 (prune them in training with an L1 penalty on ``coef``)
    :raises TypeError: if ``library`` is not a FunctionLibrary
    """

    def __init__(self, library: FunctionLibrary, threshold: float = 1e-2) -> None:
        if not isinstance(library, FunctionLibrary):
            raise TypeError(f"library must be a neuromancer.dynamics.library.FunctionLibrary, "
                            f"got {type(library).__name__}")
        n_states = library.shape[1]
        super().__init__(n_states, n_states)
        self.library = library
        self.threshold = threshold
        self.coef = nn.Parameter(torch.rand(library.shape))

    def ode_equations(self, x: torch.Tensor) -> torch.Tensor:
        """``library.evaluate(x) @ coef``: ``[batch, n states]``."""
        return self.library.evaluate(x) @ self.coef.to(x.dtype)

    def __str__(self) -> str:
        """The identified equations, one line ``dx<i>/dt = c*f + ...`` per state, small terms left out."""
        names = self.library.names()
        lines = []
        for state in range(self.library.shape[1]):
            terms = [f"{coef:.3f}*{name}" for name, coef in zip(names, self.coef[:, state].tolist(), strict=True)
                     if abs(coef) > self.threshold]
            lines.append((f"dx{state}/dt = " + "".join(f"{term} + " for term in terms))[:-2])
        return "".join(line + "\n" for line in lines)


class TwoTankParam(ODESystem):
    """Two coupled tanks (states: levels ``h1, h2``; inputs: pump, valve) with learnable ``c1``, ``c2``.

    Levels and inputs are clipped to [0, 1]; ``h1' = c1 (1 - valve) pump - c2 sqrt(h1)``,
    ``h2' = c1 valve pump + c2 sqrt(h1) - c2 sqrt(h2)``; ``c1 = c2 = 0.1`` initially.
    """

    def __init__(self, insize: int = 4, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.c1 = _parameter(0.1)
        self.c2 = _parameter(0.1)

    def ode_equations(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Level rates ``[batch, 2]`` from levels ``x`` and ``u = [pump, valve]``."""
        h1, h2 = (torch.clip(x[:, [i]], 0.0, 1.0) for i in range(2))
        pump, valve = (torch.clip(u[:, [i]], 0.0, 1.0) for i in range(2))
        outflow1, outflow2 = self.c2 * torch.sqrt(h1), self.c2 * torch.sqrt(h2)
        return torch.cat([self.c1 * (1.0 - valve) * pump - outflow1,
                          self.c1 * valve * pump + outflow1 - outflow2], dim=-1)


class DuffingParam(ODESystem):
    """Forced Duffing oscillator ``x'' + delta x' + alpha x + beta x^3 = gamma cos(omega t)``.

    The extra argument is the time ``t`` ``[batch, 1]``. Only ``omega`` (0.5) is learnable; ``alpha=1``,
    ``beta=5``, ``delta=0.02``, ``gamma=8`` are fixed parameters.
    """

    def __init__(self, insize: int = 3, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.alpha = _parameter(1.0, trainable=False)
        self.beta = _parameter(5.0, trainable=False)
        self.delta = _parameter(0.02, trainable=False)
        self.gamma = _parameter(8.0, trainable=False)
        self.omega = _parameter(0.5)

    def ode_equations(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``[x1, -delta x1 - alpha x0 - beta x0^3 + gamma cos(omega t)]`` with ``u = t``."""
        position, velocity = x[:, [0]], x[:, [1]]
        acceleration = (-self.delta * velocity - self.alpha * position - self.beta * position ** 3
                        + self.gamma * torch.cos(self.omega * u))
        return torch.cat([velocity, acceleration], dim=-1)


class BrusselatorParam(ODESystem):
    """Brusselator reaction ``x1' = a + x1^2 x2 - (b + 1) x1``, ``x2' = b x1 - x1^2 x2``.

    ``alpha = a`` and ``beta = b`` start at 5 and are learnable.
    """

    def __init__(self, insize: int = 2, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.alpha = _parameter(5.0)
        self.beta = _parameter(5.0)

    def ode_equations(self, x: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 2]``."""
        x1, x2 = x[:, [0]], x[:, [1]]
        autocatalysis = x1 ** 2 * x2
        return torch.cat([self.alpha + autocatalysis - self.beta * x1 - x1, self.beta * x1 - autocatalysis], dim=-1)


class BrusselatorHybrid(ODESystem):
    """Brusselator whose autocatalytic term ``x1^2 x2`` is learned by ``block`` (a universal ODE).

    :param block: maps the two states to one value (``in_features=2``, ``out_features=1``)
    :raises ValueError: if ``block`` has other sizes
    """

    def __init__(self, block: nn.Module, insize: int = 2, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        _check_hybrid_block(block, "BrusselatorHybrid")
        self.block = block
        self.alpha = _parameter(5.0)
        self.beta = _parameter(5.0)

    def ode_equations(self, x: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 2]`` with ``block(x)`` in place of ``x1^2 x2``."""
        x1, _ = x[:, [0]], x[:, [1]]
        learned = self.block(x)
        return torch.cat([self.alpha + learned - self.beta * x1 - x1, self.beta * x1 - learned], dim=-1)


class LotkaVolterraParam(ODESystem):
    """Predator-prey ``x1' = alpha x1 - 0.4 x1 x2``, ``x2' = 0.1 x1 x2 - 0.4 x2`` with learnable ``alpha`` (1.0)."""

    def __init__(self, insize: int = 2, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.alpha = _parameter(1.0)

    def ode_equations(self, x: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 2]``."""
        prey, predator = x[:, [0]], x[:, [1]]
        encounters = prey * predator
        return torch.cat([self.alpha * prey - 0.4 * encounters, 0.1 * encounters - 0.4 * predator], dim=-1)


class LotkaVolterraHybrid(ODESystem):
    """Predator-prey whose interaction term ``x1 x2`` is learned by ``block``.

    ``x1' = alpha x1 - beta block(x)``, ``x2' = delta block(x) - gamma x2``; the four rates start at 0.1
    and are learnable.

    :param block: maps the two states to one value (``in_features=2``, ``out_features=1``)
    :raises ValueError: if ``block`` has other sizes
    """

    def __init__(self, block: nn.Module, insize: int = 2, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        _check_hybrid_block(block, "LotkaVolterraHybrid")
        self.block = block
        self.alpha = _parameter(0.1)
        self.beta = _parameter(0.1)
        self.delta = _parameter(0.1)
        self.gamma = _parameter(0.1)

    def ode_equations(self, x: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 2]``."""
        prey, predator = x[:, [0]], x[:, [1]]
        learned = self.block(x)
        return torch.cat([self.alpha * prey - self.beta * learned, self.delta * learned - self.gamma * predator],
                         dim=-1)


class VanDerPolControl(ODESystem):
    """Controlled Van der Pol oscillator ``x1' = x2``, ``x2' = mu (1 - x1^2) x2 - x1 + u``; learnable ``mu`` (1.0)."""

    def __init__(self, insize: int = 3, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.mu = _parameter(1.0)

    def ode_equations(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 2]`` from the states and the input ``u [batch, 1]``."""
        x1, x2 = x[:, [0]], x[:, [1]]
        return torch.cat([x2, self.mu * (1 - x1 ** 2) * x2 - x1 + u], dim=-1)


class LorenzParam(ODESystem):
    """Lorenz system ``x' = sigma (y - x)``, ``y' = x (rho - z) - y``, ``z' = x y - beta z``.

    ``rho``, ``sigma`` and ``beta`` start at 5 and are learnable.
    """

    def __init__(self, insize: int = 3, outsize: int = 3) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.rho = _parameter(5.0)
        self.sigma = _parameter(5.0)
        self.beta = _parameter(5.0)

    def ode_equations(self, x: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 3]``."""
        x1, x2, x3 = x[:, [0]], x[:, [1]], x[:, [2]]
        return torch.cat([self.sigma * (x2 - x1), x1 * (self.rho - x3) - x2, x1 * x2 - self.beta * x3], dim=-1)


class LorenzControl(ODESystem):
    """Controlled Lorenz system: `LorenzParam`'s equations plus ``u1`` on ``x'`` and minus ``u2`` on ``z'``.

    Classic chaotic parameters ``rho=28``, ``sigma=10``, ``beta=2.66667``, all learnable.
    """

    def __init__(self, insize: int = 5, outsize: int = 3) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.rho = _parameter(28.0)
        self.sigma = _parameter(10.0)
        self.beta = _parameter(2.66667)

    def ode_equations(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 3]`` from the states and ``u = [u1, u2]``."""
        x1, x2, x3 = x[:, [0]], x[:, [1]], x[:, [2]]
        u1, u2 = u[:, [0]], u[:, [1]]
        return torch.cat([self.sigma * (x2 - x1) + u1, x1 * (self.rho - x3) - x2, x1 * x2 - self.beta * x3 - u2],
                         dim=-1)


class CSTR_Param(ODESystem):
    """Continuous stirred-tank reactor with an exothermic first-order reaction A -> B.

    States: concentration ``Ca`` (mol/m^3) and temperature ``T`` (K); input: coolant temperature ``Tc``
    (K). Reaction rate ``rA = k0 exp(-E/R / T) Ca``;
    ``Ca' = q/V (Caf - Ca) - rA`` and
    ``T' = q/V (Tf - T) + mdelH/(rho Cp) rA + UA/(V rho Cp) (Tc - T)``.
    Flow ``q=100``, volume ``V=100``, density ``rho=1000``, heat capacity ``Cp=0.239``, heat of reaction
    ``mdelH=5e4``, ``EoverR=8750``, ``k0=7.2e10``, ``UA=5e4`` and the feed ``Tf=350``, ``Caf=1`` are all
    learnable parameters; freeze those to keep fixed with ``requires_grad_(False)``.
    """

    def __init__(self, insize: int = 3, outsize: int = 2) -> None:
        super().__init__(insize=insize, outsize=outsize)
        self.q = _parameter(100.0)
        self.V = _parameter(100.0)
        self.rho = _parameter(1000.0)
        self.Cp = _parameter(0.239)
        self.mdelH = _parameter(5e4)
        self.EoverR = _parameter(8750.0)
        self.k0 = _parameter(7.2e10)
        self.UA = _parameter(5e4)
        self.Tf = _parameter(350.0)
        self.Caf = _parameter(1.0)

    def ode_equations(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Rates ``[batch, 2]`` from ``x = [Ca, T]`` and ``u = Tc``."""
        concentration, temperature = x[:, [0]], x[:, [1]]
        rate = self.k0 * torch.exp(-self.EoverR / temperature) * concentration
        dilution = self.q / self.V
        heat_capacity = self.rho * self.Cp
        d_concentration = dilution * (self.Caf - concentration) - rate
        d_temperature = (dilution * (self.Tf - temperature) + self.mdelH / heat_capacity * rate
                         + self.UA / (self.V * heat_capacity) * (u - temperature))
        return torch.cat([d_concentration, d_temperature], dim=-1)


ode_param_systems_auto = {"LorenzParam": LorenzParam, "LotkaVolterraParam": LotkaVolterraParam,
                          "BrusselatorParam": BrusselatorParam}
ode_param_systems_nonauto = {"DuffingParam": DuffingParam, "TwoTankParam": TwoTankParam,
                             "LorenzControl": LorenzControl, "CSTR_Param": CSTR_Param,
                             "VanDerPolControl": VanDerPolControl}
ode_hybrid_systems_auto = {"LotkaVolterraHybrid": LotkaVolterraHybrid, "BrusselatorHybrid": BrusselatorHybrid}
ode_networked_systems = {"GeneralNetworkedODE": GeneralNetworkedODE}
odes = {**ode_param_systems_auto, **ode_param_systems_nonauto, **ode_hybrid_systems_auto, **ode_networked_systems}
