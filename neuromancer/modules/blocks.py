"""Function approximators ("blocks") with a common interface, the building bricks of NeuroMANCER models.

A block is an ``nn.Module`` whose ``forward`` takes one or more tensors, concatenates them on the
last dimension and maps the result with ``block_eval``. Blocks cover multilayer perceptrons (plain,
with dropout, bounded outputs, residual, multi-fidelity stacks), input-convex networks and the
positive-definite wrapper used for Lyapunov functions, recurrent networks, bilinear and polynomial
feature maps, and Kolmogorov-Arnold networks (KAN) with B-spline edges. Linear layers are taken from
:mod:`neuromancer.slim` so any structured map can be swapped in. ``blocks`` maps short names to classes.
List-valued defaults are copied, never mutated.
"""
from __future__ import annotations

import copy
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from neuromancer import slim
from neuromancer.exceptions import warn_lenient_input
from neuromancer.modules.activations import SmoothedReLU, SoftExponential
from neuromancer.modules.functions import bounds_clamp, bounds_scaling, window_functions
from neuromancer.vmap import VmapUnsupportedError, is_transformed

logger = logging.getLogger(__name__)

__all__ = [
    "Block", "Linear", "MLP", "MLPDropout", "MLP_bounds", "ResMLP", "InputConvexNN", "PosDef", "PytorchRNN",
    "RNN", "BilinearTorch", "Poly2", "BasisLinear", "StackedMLP", "KANLinear", "KAN", "KANBlock", "blocks",
]

Nonlinearity = type | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None


class _Elementwise(nn.Module):
    """Module wrapper around a plain callable nonlinearity such as ``torch.tanh``."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the wrapped callable."""
        return self.function(x)


def _make_nonlinearity(nonlin: Nonlinearity) -> nn.Module:
    """A fresh nonlinearity module from a class (instantiated), a module (deep-copied), a callable or None.

    :raises TypeError: if ``nonlin`` is none of these.
    """
    if nonlin is None:
        return nn.Identity()
    if isinstance(nonlin, type):
        return nonlin()
    if isinstance(nonlin, nn.Module):
        return copy.deepcopy(nonlin)
    if callable(nonlin):
        return _Elementwise(nonlin)
    raise TypeError(f"nonlin must be an activation class (e.g. torch.nn.ReLU), a module or a callable, got {nonlin!r}")


def _hidden_sizes(hsizes: Sequence[int] | None, default: Sequence[int]) -> list[int]:
    """Validated list of hidden-layer sizes (``default`` when ``hsizes`` is None).

    :raises ValueError: if a size is not a positive integer.
    """
    sizes = list(default if hsizes is None else hsizes)
    for size in sizes:
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"hidden sizes must be positive integers, got hsizes={sizes!r}")
    return [int(size) for size in sizes]


def _sum_reg_errors(modules) -> torch.Tensor:
    """Sum of ``reg_error()`` over the modules that define it (zero when none do)."""
    terms = [m.reg_error() for m in modules if hasattr(m, "reg_error")]
    return torch.stack([torch.as_tensor(t).reshape(()) for t in terms]).sum() if terms else torch.zeros(())


class Block(nn.Module, ABC):
    """Abstract function approximator: ``forward(*inputs)`` concatenates inputs on the last dim, then ``block_eval``."""

    def __init__(self):
        super().__init__()

    @abstractmethod
    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Map one (concatenated) input tensor."""

    def reg_error(self) -> torch.Tensor:
        """Sum of the regularisation terms of the block's direct submodules (zero if none)."""
        return _sum_reg_errors(self.children())

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Concatenate ``inputs`` on the last dimension and evaluate the block.

        :raises TypeError: if called without inputs.
        """
        if not inputs:
            raise TypeError(f"{type(self).__name__} needs at least one input tensor")
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
        return self.block_eval(x)


class Linear(Block):
    """A single linear map as a block (the map class is ``linear_map``; ``nonlin`` and ``hsizes`` are ignored).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param linear_map: map class from :mod:`neuromancer.slim`.
    :param nonlin: ignored, accepted for a uniform block interface.
    :param hsizes: ignored, accepted for a uniform block interface.
    :param linargs: extra keyword arguments for ``linear_map``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = None, hsizes: Sequence[int] | None = None, linargs: dict | None = None):
        super().__init__()
        self.in_features, self.out_features = insize, outsize
        self.linear = linear_map(insize, outsize, bias=bias, **(linargs or {}))

    def reg_error(self) -> torch.Tensor:
        """Regularisation term of the linear map."""
        return self.linear.reg_error()

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the linear map."""
        return self.linear(x)


class MLP(Block):
    """Multilayer perceptron: ``hsizes`` hidden layers with ``nonlin``, a linear output layer.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether the layers learn biases.
    :param linear_map: map class used for every layer.
    :param nonlin: hidden activation; a class is
        instantiated and a module deep-copied for each layer, so layers never share parameters.
    :param hsizes: hidden layer sizes (empty: a single linear layer).
    :param linargs: extra keyword arguments for ``linear_map``.
    :raises ValueError: on non-positive hidden sizes.
    :raises TypeError: on an unusable ``nonlin``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None):
        super().__init__()
        self.in_features, self.out_features = insize, outsize
        hidden = _hidden_sizes(hsizes, [64])
        sizes = [insize] + hidden + [outsize]
        self.nhidden = len(hidden)
        self.nonlin = nn.ModuleList([_make_nonlinearity(nonlin) for _ in hidden] + [nn.Identity()])
        self.linear = nn.ModuleList([linear_map(sizes[k], sizes[k + 1], bias=bias, **(linargs or {}))
                                     for k in range(len(sizes) - 1)])

    def reg_error(self) -> torch.Tensor:
        """Sum of the regularisation terms of the layers and activations that define one."""
        return _sum_reg_errors(list(self.linear) + list(self.nonlin))

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Alternate linear layers and activations."""
        for linear, nonlin in zip(self.linear, self.nonlin, strict=True):
            x = nonlin(linear(x))
        return x


class MLPDropout(MLP):
    """:class:`MLP` with dropout (probability ``dropout``) after every hidden activation.

    :param dropout: dropout probability in [0, 1).
    :raises ValueError: if ``dropout`` is outside [0, 1).

    Other parameters as for :class:`MLP`.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None, dropout: float = 0.0):
        super().__init__(insize, outsize, bias=bias, linear_map=linear_map, nonlin=nonlin, hsizes=hsizes,
                         linargs=linargs)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")
        if dropout == 1.0:
            warn_lenient_input("MLPDropout(dropout=1.0) zeroes every hidden unit in training, so the output "
                               "ignores the input until eval(); torch allows it and upstream 1.5 runs it. Use a "
                               "dropout below 1.")
        hidden_dropout = [nn.Dropout(dropout) if dropout > 0 else nn.Identity() for _ in range(self.nhidden)]
        self.dropout = nn.ModuleList(hidden_dropout + [nn.Identity()])

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Alternate linear layers, activations and dropout."""
        for linear, nonlin, drop in zip(self.linear, self.nonlin, self.dropout, strict=True):
            x = drop(nonlin(linear(x)))
        return x


class MLP_bounds(MLP):
    """:class:`MLP` whose outputs are kept inside ``[min, max]``.

    :param min: lower bound (a tensor broadcasts per output).
    :param max: upper bound.
    :param method: ``'sigmoid_scale'`` squashes smoothly
        (:func:`~neuromancer.modules.functions.bounds_scaling`), ``'relu_clamp'`` clips
        (:func:`~neuromancer.modules.functions.bounds_clamp`); a callable ``f(y, min, max)`` is used as is.
    :raises ValueError: on an unknown method name.

    Other parameters as for :class:`MLP`.
    """

    bound_methods = {"sigmoid_scale": bounds_scaling, "relu_clamp": bounds_clamp}

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None, min: float | torch.Tensor = 0.0,
                 max: float | torch.Tensor = 1.0, method: str | Callable = "sigmoid_scale"):
        super().__init__(insize, outsize, bias=bias, linear_map=linear_map, nonlin=nonlin, hsizes=hsizes,
                         linargs=linargs)
        if isinstance(method, str):
            if method not in self.bound_methods:
                raise ValueError(f"method={method!r} is unknown; use one of {sorted(self.bound_methods)} "
                                 "or a callable f(y, min, max)")
            method = self.bound_methods[method]
        elif not callable(method):
            raise ValueError(f"method must be a name in {sorted(self.bound_methods)} or a callable, got {method!r}")
        self.method = method
        self.register_buffer("min", torch.as_tensor(min, dtype=torch.get_default_dtype()).clone())
        self.register_buffer("max", torch.as_tensor(max, dtype=torch.get_default_dtype()).clone())

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """MLP output mapped into the bounds."""
        return self.method(super().block_eval(x), self.min, self.max)


class ResMLP(MLP):
    """:class:`MLP` with residual connections every ``skip`` hidden layers.

    The first hidden layer adds a linear projection of the input (``inmap``); afterwards the hidden
    state ``skip`` layers back is added; the output adds a linear map (``outmap``) of the last
    residual state. All hidden sizes must be equal so the states can be added.

    :param skip: hidden layers between residual connections.
    :raises ValueError: if hidden sizes differ, are empty, or ``skip < 1``.

    Other parameters as for :class:`MLP`.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None, skip: int = 1):
        hidden = _hidden_sizes(hsizes, [64])
        if not hidden or len(set(hidden)) != 1:
            raise ValueError(f"ResMLP needs at least one hidden layer and equal hidden sizes, got hsizes={hidden}")
        if skip < 1:
            raise ValueError(f"skip must be a positive integer, got {skip!r}")
        super().__init__(insize, outsize, bias=bias, linear_map=linear_map, nonlin=nonlin, hsizes=hidden,
                         linargs=linargs)
        self.skip = int(skip)
        self.inmap = linear_map(insize, hidden[0], bias=bias, **(linargs or {}))
        self.outmap = linear_map(hidden[0], outsize, bias=bias, **(linargs or {}))

    def reg_error(self) -> torch.Tensor:
        """Regularisation of the layers, activations and the two projections."""
        return super().reg_error() + _sum_reg_errors([self.inmap, self.outmap])

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden layers with residual additions, then the output layer plus the residual projection."""
        residual = self.inmap(x)
        h = self.nonlin[0](self.linear[0](x)) + residual
        residual = h
        for k in range(1, self.nhidden):
            h = self.nonlin[k](self.linear[k](h))
            if k % self.skip == 0:
                h = h + residual
                residual = h
        return self.linear[-1](h) + self.outmap(residual)


class InputConvexNN(MLP):
    """Input convex neural network (Amos et al.; eq. 11 of https://arxiv.org/abs/2001.06116).

    ``z_1 = s(W_0 x + b_0)``, ``z_{i+1} = s(U_i z_i + W_i x + b_i)`` with non-negative ``U_i``
    (:class:`~neuromancer.slim.linear.NonNegativeLinear`) and a convex, non-decreasing activation
    ``s`` (ReLU by default; also softplus or :class:`~neuromancer.modules.activations.SmoothedReLU`),
    which makes every output convex in ``x``. The output layer applies ``s`` too.

    Parameters as for :class:`MLP` (default ``nonlin`` is ``torch.nn.ReLU``).
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = nn.ReLU, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None):
        hidden = _hidden_sizes(hsizes, [64])
        if not hidden:
            raise ValueError("InputConvexNN needs at least one hidden layer, got hsizes=[]")
        super().__init__(insize, outsize, bias=bias, linear_map=linear_map, nonlin=nonlin, hsizes=hidden,
                         linargs=linargs)
        sizes = hidden + [outsize]
        self.linear = nn.ModuleList([linear_map(insize, sizes[k + 1], bias=bias, **(linargs or {}))
                                     for k in range(len(hidden))])
        self.poslinear = nn.ModuleList([slim.NonNegativeLinear(sizes[k], sizes[k + 1], bias=False)
                                        for k in range(len(hidden))])
        self.nonlin = nn.ModuleList([_make_nonlinearity(nonlin) for _ in range(len(hidden) + 1)])
        self.inmap = linear_map(insize, hidden[0], bias=bias, **(linargs or {}))

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the convex network."""
        z = self.nonlin[0](self.inmap(x))
        for k, (passthrough, positive) in enumerate(zip(self.linear, self.poslinear, strict=True)):
            z = self.nonlin[k + 1](positive(z) + passthrough(x))
        return z


class PosDef(Block):
    """Positive-definite wrapper of a network ``g`` (eq. 12 of https://arxiv.org/abs/2001.06116).

    ``V(x) = smoothed_relu(g(x) - g(0)) + eps * ||x||^2``: zero at the origin, positive elsewhere,
    and convex when ``g`` is an :class:`InputConvexNN`, which makes it a Lyapunov-function candidate.
    With ``max`` given, the output is clipped above at ``max``.

    :param g: network with an ``in_features`` attribute (any block of this module).
    :param max: optional upper clip of the output.
    :param eps: weight of the quadratic term.
    :param d: width parameter of the :class:`~neuromancer.modules.activations.SmoothedReLU`.
    :raises TypeError: if ``g`` has no integer ``in_features``.
    """

    def __init__(self, g: nn.Module, max: float | None = None, eps: float = 0.01, d: float = 1.0, *args):
        super().__init__()
        insize = getattr(g, "in_features", None)
        if not isinstance(insize, int):
            raise TypeError(f"PosDef needs a network g with an integer in_features attribute, got {type(g).__name__}")
        self.g, self.max, self.eps = g, max, eps
        self.in_features, self.out_features = insize, getattr(g, "out_features", None)
        self.smReLU = SmoothedReLU(d)
        self.register_buffer("zero", torch.zeros(1, insize))

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Positive-definite function of ``x``."""
        shifted = self.g(x) - self.g(self.zero)
        out = self.smReLU(shifted) + self.eps * torch.sum(x ** 2, dim=-1, keepdim=True)
        if self.max is not None:
            out = out - F.relu(out - self.max)
        return out


def _as_sequence(x: torch.Tensor) -> torch.Tensor:
    """``[batch, time, features]`` view of an input: 2-D inputs are one time step per sample."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    if x.dim() == 3:
        return x
    raise ValueError(f"recurrent blocks take [batch, features] or [batch, time, features] inputs, got shape {tuple(x.shape)}")


class RNNCell(nn.Module):
    """Elman cell ``h' = nonlin(lin_hidden(h) + lin_in(x))`` built from slim maps."""

    def __init__(self, insize: int, hsize: int, bias: bool, linear_map: type, nonlin: Nonlinearity, linargs: dict):
        super().__init__()
        self.nonlin = _make_nonlinearity(nonlin)
        self.lin_in = linear_map(insize, hsize, bias=bias, **linargs)
        self.lin_hidden = linear_map(hsize, hsize, bias=bias, **linargs)

    def forward(self, input: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One step of the cell."""
        return self.nonlin(self.lin_hidden(hidden) + self.lin_in(input))


class RNNStack(nn.Module):
    """Stack of :class:`RNNCell` layers with learned initial states."""

    def __init__(self, insize: int, hsizes: list[int], bias: bool, linear_map: type, nonlin: Nonlinearity,
                 linargs: dict):
        super().__init__()
        sizes = [insize] + hsizes
        self.rnn_cells = nn.ModuleList([RNNCell(sizes[k], sizes[k + 1], bias, linear_map, nonlin, linargs)
                                        for k in range(len(hsizes))])
        self.init_states = nn.ParameterList([nn.Parameter(torch.zeros(1, size)) for size in hsizes])

    def forward(self, sequence: torch.Tensor, init_states: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Run the stack over ``[batch, time, features]``; return the final state of every layer."""
        states = list(self.init_states) if init_states is None else list(init_states)
        for t in range(sequence.shape[1]):
            layer_input = sequence[:, t]
            for k, cell in enumerate(self.rnn_cells):
                states[k] = cell(layer_input, states[k])
                layer_input = states[k]
        return states


class RNN(Block):
    """Elman recurrent network (stack of slim-map cells) whose output is a linear map of the final top state.

    Inputs are ``[batch, time, features]`` sequences or ``[batch, features]`` single steps. Each call
    starts from the learned initial states unless ``hx`` (``[layers, batch, hidden]`` or a list of
    per-layer states) is given; the final states are kept, detached, in ``self.init_states`` so a
    caller can continue a sequence with ``block_eval(x, hx=rnn.init_states)``; :meth:`reset` clears them.
    Inside ``torch.func.vmap`` the final states differ per member and cannot outlive the call, so
    ``self.init_states`` is then set to None.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether the maps learn biases.
    :param linear_map: map class for the cells and the output.
    :param nonlin: cell activation.
    :param hsizes: hidden size of each layer.
    :param linargs: extra keyword arguments for ``linear_map``.
    :raises ValueError: on empty or non-positive hidden sizes, or inputs that are not 2-D/3-D.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [1],
                 linargs: dict | None = None):
        super().__init__()
        hidden = _hidden_sizes(hsizes, [1])
        if not hidden:
            raise ValueError("RNN needs at least one hidden layer, got hsizes=[]")
        self.in_features, self.out_features = insize, outsize
        self.rnn = RNNStack(insize, hidden, bias, linear_map, nonlin, linargs or {})
        self.output = linear_map(hidden[-1], outsize, bias=bias, **(linargs or {}))
        self.init_states: torch.Tensor | None = None

    def reg_error(self) -> torch.Tensor:
        """Regularisation of the cells' maps and the output map."""
        cell_parts = [part for cell in self.rnn.rnn_cells for part in cell.children()]
        return _sum_reg_errors(cell_parts + [self.output])

    def reset(self) -> None:
        """Forget the final states kept from the last call."""
        self.init_states = None

    def block_eval(self, x: torch.Tensor, hx: torch.Tensor | Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Run the sequence and map the final top-layer state to the output."""
        states = self.rnn(_as_sequence(x), init_states=hx)
        final = torch.stack([s.expand(x.shape[0], -1) for s in states]).detach()
        self.init_states = None if is_transformed(final) else final
        return self.output(states[-1])


class PytorchRNN(Block):
    """``torch.nn.RNN`` (tanh cells, ``len(hsizes)`` layers of size ``hsizes[-1]``) with a linear output map.

    Inputs are ``[batch, time, features]`` (batch first) or ``[batch, features]`` single steps; the
    output maps the final top-layer state to ``[batch, outsize]``, the batch-first convention of
    :class:`RNN`. ``nonlin`` is not used (``torch.nn.RNN`` cells use tanh). The fused kernel of
    ``torch.nn.RNN`` has no ``vmap`` rule, so inside ``torch.func.vmap`` the same recurrence runs
    step by step on its parameters.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn biases.
    :param linear_map: map class for the output layer.
    :param nonlin: ignored, accepted for a uniform block interface.
    :param hsizes: hidden sizes, all equal (one entry per layer).
    :param linargs: extra keyword arguments for ``linear_map``.
    :raises ValueError: if the hidden sizes are empty or differ.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [10],
                 linargs: dict | None = None):
        super().__init__()
        hidden = _hidden_sizes(hsizes, [10])
        if not hidden or len(set(hidden)) != 1:
            raise ValueError(f"PytorchRNN needs equal hidden sizes (one per layer), got hsizes={hidden}")
        self.in_features, self.out_features = insize, outsize
        self.rnn = nn.RNN(insize, hidden[-1], num_layers=len(hidden), bias=bias, batch_first=True)
        self.rnn.vmap_safe = True  # block_eval runs the recurrence itself under vmap
        self.output = linear_map(hidden[-1], outsize, bias=bias, **(linargs or {}))

    def reg_error(self) -> torch.Tensor:
        """Regularisation of the output map."""
        return self.output.reg_error()

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Run the sequence and map the final top-layer state."""
        sequence = _as_sequence(x)
        if is_transformed(sequence) or any(is_transformed(p) for p in self.rnn.parameters()):
            return self.output(self._stepwise_final_state(sequence))
        _, final = self.rnn(sequence)
        return self.output(final[-1])

    def _stepwise_final_state(self, sequence: torch.Tensor) -> torch.Tensor:
        """Final top-layer state of ``self.rnn`` from zero states, one step at a time (no fused kernel)."""
        rnn, layer_input = self.rnn, sequence
        for layer in range(rnn.num_layers):
            bias_ih = getattr(rnn, f"bias_ih_l{layer}") if rnn.bias else None
            bias_hh = getattr(rnn, f"bias_hh_l{layer}") if rnn.bias else None
            projected = F.linear(layer_input, getattr(rnn, f"weight_ih_l{layer}"), bias_ih)
            weight_hh = getattr(rnn, f"weight_hh_l{layer}")
            state = sequence.new_zeros(sequence.shape[0], rnn.hidden_size)
            states = []
            for step in range(sequence.shape[1]):
                state = torch.tanh(projected[:, step] + F.linear(state, weight_hh, bias_hh))
                states.append(state)
            layer_input = torch.stack(states, dim=1)
        return state


class BilinearTorch(Block):
    """Bilinear form of the input with itself, ``y_k = x^T A_k x + b_k`` (wraps ``torch.nn.Bilinear``).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param linear_map: ignored, accepted for a uniform block interface.
    :param nonlin: ignored.
    :param hsizes: ignored.
    :param linargs: ignored.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None):
        super().__init__()
        self.in_features, self.out_features = insize, outsize
        self.f = nn.Bilinear(insize, insize, outsize, bias=bias)

    def reg_error(self) -> torch.Tensor:
        """No regularisation: zero."""
        return torch.zeros((), device=self.f.weight.device)

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """``Bilinear(x, x)``; inside ``torch.func.vmap``, which has no rule for it, the same form by ``einsum``."""
        if is_transformed(x) or is_transformed(self.f.weight):
            out = torch.einsum("...i,oij,...j->...o", x, self.f.weight, x)
            return out + self.f.bias if self.f.bias is not None else out
        return self.f(x, x)


class Poly2(Block):
    """Quadratic feature expansion: ``[x, x_i * x_j for i <= j]`` (``n + n(n+1)/2`` features)."""

    def __init__(self, *args):
        super().__init__()

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Input features followed by the upper triangle (row by row) of the outer product."""
        n = x.shape[-1]
        rows, cols = torch.triu_indices(n, n, device=x.device)
        products = x[..., rows] * x[..., cols]
        return torch.cat([x, products], dim=-1)


class BasisLinear(Block):
    """Linear combination of a feature expansion (a dictionary of lifting functions): ``y = L(expand(x))``.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether the linear map learns a bias.
    :param linear_map: map class for the combination.
    :param nonlin: ignored, accepted for a uniform block interface.
    :param hsizes: ignored.
    :param linargs: extra keyword arguments for ``linear_map``.
    :param expand: feature expansion; its output size is measured on a zero input.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = slim.Linear,
                 nonlin: Nonlinearity = SoftExponential, hsizes: Sequence[int] = [64],
                 linargs: dict | None = None, expand: nn.Module | None = None):
        super().__init__()
        self.in_features, self.out_features = insize, outsize
        self.expand = Poly2() if expand is None else expand
        with torch.no_grad():
            expanded_size = self.expand(torch.zeros(1, insize)).shape[-1]
        self.linear = linear_map(expanded_size, outsize, bias=bias, **(linargs or {}))

    def reg_error(self) -> torch.Tensor:
        """Regularisation of the linear map."""
        return self.linear.reg_error()

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, then combine linearly."""
        return self.linear(self.expand(x))


class StackedMLP(Block):
    """Multi-fidelity stacked MLP (Howard et al., https://arxiv.org/abs/2311.13130).

    A single-fidelity :class:`MLP` gives a first prediction ``y_0``; each of ``n_stacked_mf_layers``
    stages refines it as ``y_{k+1} = alpha_k * N_k([x, y_k]) + (1 - alpha_k) * L_k(y_k)``, blending a
    nonlinear network ``N_k`` with a purely linear one ``L_k`` through a learned ``alpha_k``.
    :meth:`get_alpha_loss` (``sum alpha_k^4``) keeps the nonlinear parts small.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether layers learn biases.
    :param linear_map: layer class of the sub-networks.
    :param nonlin: activation of the nonlinear networks.
    :param h_sf_size: hidden sizes of the single-fidelity MLP.
    :param n_stacked_mf_layers: number of refinement stages.
    :param h_linear_sizes: hidden sizes of each linear network.
    :param h_nonlinear_sizes: hidden sizes of each nonlinear network.
    :param linargs: extra keyword arguments for ``linear_map``.
    :param alpha_init: initial blend weight.
    :param verbose: log each stage's blend weight at INFO level (not inside
        ``torch.func.vmap``, where every member has its own).
    :raises ValueError: if ``n_stacked_mf_layers < 0``; 0 leaves the single-fidelity MLP alone
        (with a `LenientInputWarning`).
    """

    def __init__(self, insize: int, outsize: int, bias: bool = True, linear_map: type = Linear,
                 nonlin: Nonlinearity = nn.Tanh, h_sf_size: Sequence[int] = [20, 20],
                 n_stacked_mf_layers: int = 3, h_linear_sizes: Sequence[int] = [10, 10],
                 h_nonlinear_sizes: Sequence[int] = [20, 20], linargs: dict | None = None,
                 alpha_init: float = 0.1, verbose: bool = False):
        super().__init__()
        if n_stacked_mf_layers < 0:
            raise ValueError(f"n_stacked_mf_layers must be a positive integer, got {n_stacked_mf_layers!r}")
        if n_stacked_mf_layers == 0:
            warn_lenient_input("StackedMLP(n_stacked_mf_layers=0) has no refinement stages: it is its "
                               "single-fidelity MLP, as in upstream 1.5. Use blocks.MLP, or a positive "
                               "n_stacked_mf_layers.")
        self.in_features, self.out_features, self.verbose = insize, outsize, verbose
        common = dict(bias=bias, linear_map=linear_map, linargs=linargs)
        self.alpha = nn.ParameterList([nn.Parameter(torch.tensor(float(alpha_init)))
                                       for _ in range(n_stacked_mf_layers)])
        self.first_layer = MLP(insize, outsize, nonlin=nonlin, hsizes=_hidden_sizes(h_sf_size, [20, 20]), **common)
        self.layers = nn.ModuleList([
            nn.ModuleDict({
                "linear": MLP(outsize, outsize, nonlin=None, hsizes=_hidden_sizes(h_linear_sizes, [10, 10]), **common),
                "nonlinear": MLP(insize + outsize, outsize, nonlin=nonlin,
                                 hsizes=_hidden_sizes(h_nonlinear_sizes, [20, 20]), **common),
            })
            for _ in range(n_stacked_mf_layers)
        ])

    def get_alpha_loss(self) -> torch.Tensor:
        """``sum_k alpha_k ** 4``, a penalty that favours the linear part of each stage."""
        return sum((alpha ** 4 for alpha in self.alpha), torch.zeros(()))

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Single-fidelity prediction refined by every stage."""
        y = self.first_layer(x)
        for k, (alpha, stage) in enumerate(zip(self.alpha, self.layers, strict=True)):
            y = alpha * stage["nonlinear"](x, y) + (1.0 - alpha) * stage["linear"](y)
            if self.verbose and not is_transformed(alpha):
                logger.info("StackedMLP stage %d: alpha=%.4f", k, float(alpha.detach()))
        return y


class KANLinear(nn.Module):
    """Kolmogorov-Arnold layer: every edge ``i -> j`` is a learnable function ``b(x_i) w_ji + spline_ji(x_i)``.

    ``b`` is ``base_activation`` (SiLU) and ``spline_ji`` a B-spline of order ``spline_order`` on a
    grid of ``grid_size`` intervals over ``grid_range`` (extended by ``spline_order`` knots each
    side), following Liu et al., https://arxiv.org/abs/2404.19756. The grid is a buffer that
    :meth:`update_grid` adapts to the data while keeping the layer's function.

    :param in_features: input dimension.
    :param out_features: output dimension.
    :param grid_size: number of grid intervals.
    :param spline_order: B-spline order (3: cubic).
    :param scale_noise: scale of the random initial splines.
    :param scale_base: scale of the initial base weights.
    :param scale_spline: scale of the initial spline scalers (or weights).
    :param enable_standalone_scale_spline: learn a separate scaler per edge.
    :param base_activation: activation class of the base branch.
    :param grid_eps: mix of uniform (1) vs data-quantile (0) grid in :meth:`update_grid`.
    :param grid_range: initial grid interval.
    :raises ValueError: on non-positive sizes or an empty grid range.
    """

    def __init__(self, in_features: int, out_features: int, grid_size: int = 5, spline_order: int = 3,
                 scale_noise: float = 0.1, scale_base: float = 1.0, scale_spline: float = 1.0,
                 enable_standalone_scale_spline: bool = True, base_activation: type = nn.SiLU,
                 grid_eps: float = 0.02, grid_range: Sequence[float] = [-1, 1]):
        super().__init__()
        grid_range = [-1.0, 1.0] if grid_range is None else list(grid_range)
        if grid_size < 1 or spline_order < 0:
            raise ValueError(f"grid_size must be >= 1 and spline_order >= 0, got {grid_size!r}, {spline_order!r}")
        if not grid_range[1] > grid_range[0]:
            raise ValueError(f"grid_range must be increasing [low, high], got {grid_range!r}")
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order = int(grid_size), int(spline_order)
        self.scale_noise, self.scale_base, self.scale_spline = scale_noise, scale_base, scale_spline
        self.enable_standalone_scale_spline = enable_standalone_scale_spline
        self.grid_eps = grid_eps
        self.register_buffer("grid", self._uniform_grid(torch.tensor(grid_range[0]).expand(in_features),
                                                        torch.tensor(grid_range[1]).expand(in_features)))
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, self.grid_size + self.spline_order))
        if enable_standalone_scale_spline:
            self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        self.base_activation = _make_nonlinearity(base_activation)
        self.reset_parameters()

    def _uniform_grid(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """``[in, grid_size + 2 * order + 1]`` evenly spaced knots covering ``[low, high]`` plus extensions."""
        step = (high - low) / self.grid_size
        offsets = torch.arange(-self.spline_order, self.grid_size + self.spline_order + 1,
                               dtype=step.dtype, device=step.device)
        return low.unsqueeze(1) + offsets.unsqueeze(0) * step.unsqueeze(1)

    def reset_parameters(self) -> None:
        """Kaiming-initialise the base weights and fit small random splines to noise on the grid."""
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * self.scale_base)
        with torch.no_grad():
            knots = self.grid.T[self.spline_order:-self.spline_order]
            noise = (torch.rand(knots.shape[0], self.in_features, self.out_features) - 0.5) \
                * self.scale_noise / self.grid_size
            scale = 1.0 if self.enable_standalone_scale_spline else self.scale_spline
            self.spline_weight.copy_(scale * self.curve2coeff(knots, noise))
            if self.enable_standalone_scale_spline:
                nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5) * self.scale_spline)

    def b_splines(self, x: torch.Tensor) -> torch.Tensor:
        """B-spline basis values ``[batch, in, grid_size + order]`` at ``x`` (``[batch, in]``), Cox-de Boor recursion."""
        grid = self.grid
        x = x.unsqueeze(-1)
        bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
        for k in range(1, self.spline_order + 1):
            left = (x - grid[:, :-(k + 1)]) / (grid[:, k:-1] - grid[:, :-(k + 1)]) * bases[..., :-1]
            right = (grid[:, k + 1:] - x) / (grid[:, k + 1:] - grid[:, 1:-k]) * bases[..., 1:]
            bases = left + right
        return bases.contiguous()

    def curve2coeff(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Least-squares spline coefficients ``[out, in, grid_size + order]`` interpolating ``y`` (``[batch, in, out]``) at ``x``."""
        basis = self.b_splines(x).transpose(0, 1)
        targets = y.transpose(0, 1)
        solution = torch.linalg.lstsq(basis, targets).solution
        return solution.permute(2, 0, 1).contiguous()

    @property
    def scaled_spline_weight(self) -> torch.Tensor:
        """Spline coefficients times the per-edge scalers (when enabled)."""
        if self.enable_standalone_scale_spline:
            return self.spline_weight * self.spline_scaler.unsqueeze(-1)
        return self.spline_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to the last dimension of ``x``.

        :raises ValueError: if the last dimension is not ``in_features``.
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(f"KANLinear expects {self.in_features} input features, got shape {tuple(x.shape)}")
        leading = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        base = F.linear(self.base_activation(flat), self.base_weight)
        spline = F.linear(self.b_splines(flat).flatten(1), self.scaled_spline_weight.flatten(1))
        return (base + spline).reshape(*leading, self.out_features)

    @torch.no_grad()
    def update_grid(self, _x: torch.Tensor, margin: float = 0.01, grid_size: int | None = None) -> None:
        """Move the grid to the data in ``_x`` (``[batch, in]``) and refit the splines to keep the function.

        The new knots blend data quantiles with a uniform grid over the data range widened by
        ``margin`` (weight ``grid_eps`` on the uniform part). With ``grid_size`` the number of
        intervals changes too (grid refinement); the spline parameters are then replaced, so an
        optimizer holding the old ones must be rebuilt.

        :raises neuromancer.vmap.VmapUnsupportedError: inside ``torch.func.vmap``, where the new grid
            and weights of a member could not be kept.
        """
        if is_transformed(_x) or is_transformed(self.spline_weight) or is_transformed(self.grid):
            raise VmapUnsupportedError("KANLinear.update_grid cannot run inside torch.func.vmap: it replaces the "
                                       "layer's grid and spline weights, which a vmapped member cannot keep. "
                                       "Update the grids of each copy outside vmap.")
        x = _x.reshape(-1, self.in_features)
        before = torch.einsum("bik,oik->bio", self.b_splines(x), self.scaled_spline_weight)
        if grid_size is not None:
            self.grid_size = int(grid_size)
        sorted_x = torch.sort(x, dim=0)[0]
        quantile_index = torch.linspace(0, x.shape[0] - 1, self.grid_size + 1, device=x.device).long()
        adaptive = sorted_x[quantile_index]
        low, high = sorted_x[0] - margin, sorted_x[-1] + margin
        uniform_inner = self._uniform_grid(low, high)[:, self.spline_order:-self.spline_order].T
        inner = self.grid_eps * uniform_inner + (1.0 - self.grid_eps) * adaptive
        step = (high - low) / self.grid_size
        below = inner[:1] - step * torch.arange(self.spline_order, 0, -1, device=x.device).unsqueeze(1)
        above = inner[-1:] + step * torch.arange(1, self.spline_order + 1, device=x.device).unsqueeze(1)
        self.grid = torch.cat([below, inner, above], dim=0).T.contiguous()
        coefficients = self.curve2coeff(x, before)
        if self.enable_standalone_scale_spline:
            coefficients = coefficients / self.spline_scaler.unsqueeze(-1)
        if coefficients.shape == self.spline_weight.shape:
            self.spline_weight.copy_(coefficients)
        else:
            self.spline_weight = nn.Parameter(coefficients)

    def regularization_loss(self, regularize_activation: float = 1.0, regularize_entropy: float = 1.0) -> torch.Tensor:
        """Sparsity regulariser of the KAN paper: L1 size of the edge functions plus the entropy of their distribution.

        The L1 size of an edge is approximated by the mean absolute spline coefficient.
        """
        l1 = self.spline_weight.abs().mean(-1)
        total = l1.sum()
        p = l1 / (total + 1e-12)
        entropy = -torch.sum(p * torch.log(p + 1e-12))
        return regularize_activation * total + regularize_entropy * entropy


class KAN(nn.Module):
    """Stack of :class:`KANLinear` layers with sizes ``layers_hidden`` (e.g. ``[2, 5, 1]``).

    :param layers_hidden: sizes from input to output; a single size gives no layer, the identity
        (with a `LenientInputWarning`).
    :raises ValueError: if no size is given.

    Other parameters as for :class:`KANLinear`.
    """

    def __init__(self, layers_hidden: Sequence[int], grid_size: int = 5, spline_order: int = 3,
                 scale_noise: float = 0.1, scale_base: float = 1.0, scale_spline: float = 1.0,
                 base_activation: type = nn.SiLU, grid_eps: float = 0.02, grid_range: Sequence[float] = [-1, 1]):
        super().__init__()
        sizes = list(layers_hidden)
        if not sizes:
            raise ValueError(f"layers_hidden needs input and output sizes, got {sizes!r}")
        if len(sizes) == 1:
            warn_lenient_input(f"KAN(layers_hidden={sizes!r}) has no layers: it returns its input, as in upstream "
                               f"1.5. Give input and output sizes, e.g. [{sizes[0]}, {sizes[0]}].")
        self.grid_size, self.spline_order = grid_size, spline_order
        self.layers = nn.ModuleList([
            KANLinear(sizes[k], sizes[k + 1], grid_size=grid_size, spline_order=spline_order,
                      scale_noise=scale_noise, scale_base=scale_base, scale_spline=scale_spline,
                      base_activation=base_activation, grid_eps=grid_eps, grid_range=grid_range)
            for k in range(len(sizes) - 1)
        ])

    def forward(self, x: torch.Tensor, update_grid: bool = False) -> torch.Tensor:
        """Apply the layers; with ``update_grid`` each layer first adapts its grid to its input.

        :raises neuromancer.vmap.VmapUnsupportedError: ``update_grid`` inside ``torch.func.vmap``.
        """
        for layer in self.layers:
            if update_grid:
                layer.update_grid(x)
            x = layer(x)
        return x

    def regularization_loss(self, regularize_activation: float = 1.0, regularize_entropy: float = 1.0) -> torch.Tensor:
        """Sum of the layers' regularisers."""
        return sum((layer.regularization_loss(regularize_activation, regularize_entropy) for layer in self.layers),
                   torch.zeros(()))


class KANBlock(Block):
    """KAN as a block, with optional finite-basis domain decomposition and scheduled grid updates.

    With ``num_domains > 1`` there is one KAN per subdomain and the output is their sum weighted by
    :func:`~neuromancer.modules.functions.window_functions` over ``grid_range`` (a smooth partition
    of unity; ``num_domains`` must be a perfect power of ``insize``). ``grid_sizes`` is a schedule:
    the layers start with ``grid_sizes[0]`` intervals, and at each epoch listed in ``grid_updates``
    :meth:`update_epoch` adapts the grids to the data and moves to the next grid size, if any
    (rebuild the optimizer after a size change: the spline parameters are replaced).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param hsizes: hidden layer sizes.
    :param num_domains: number of subdomains.
    :param grid_sizes: grid-size schedule.
    :param grid_updates: epochs at which :meth:`update_epoch` updates grids.
    :param verbose: log grid updates at INFO level.
    :raises ValueError: on an empty grid-size schedule or an invalid ``num_domains``.

    Other parameters as for :class:`KANLinear`.
    """

    def __init__(self, insize: int, outsize: int, hsizes: Sequence[int] = [64], num_domains: int = 1,
                 grid_sizes: Sequence[int] = [5], spline_order: int = 3, scale_noise: float = 0.1,
                 scale_base: float = 1.0, scale_spline: float = 1.0, enable_standalone_scale_spline: bool = True,
                 base_activation: type = nn.SiLU, grid_eps: float = 0.02, grid_range: Sequence[float] = [-1, 1],
                 grid_updates: Sequence[int] | None = None, verbose: bool = False):
        super().__init__()
        self.grid_sizes = list(grid_sizes) if grid_sizes is not None else [5]
        if not self.grid_sizes:
            raise ValueError("grid_sizes must list at least one grid size, got []")
        self.grid_range = [-1.0, 1.0] if grid_range is None else list(grid_range)
        window_functions(torch.zeros(1, insize), num_domains, lower=self.grid_range[0], upper=self.grid_range[1])
        self.in_features, self.out_features = insize, outsize
        self.num_domains, self.spline_order = num_domains, spline_order
        self.grid_updates = list(grid_updates) if grid_updates is not None else []
        self.current_grid_index, self.verbose = 0, verbose
        sizes = [insize] + _hidden_sizes(hsizes, [64]) + [outsize]
        self.kan_layers = nn.ModuleList([
            nn.ModuleList([
                KANLinear(sizes[k], sizes[k + 1], grid_size=self.grid_sizes[0], spline_order=spline_order,
                          scale_noise=scale_noise, scale_base=scale_base, scale_spline=scale_spline,
                          enable_standalone_scale_spline=enable_standalone_scale_spline,
                          base_activation=base_activation, grid_eps=grid_eps, grid_range=self.grid_range)
                for k in range(len(sizes) - 1)
            ])
            for _ in range(num_domains)
        ])

    @property
    def vmap_safe(self) -> bool:
        """False where ``grid_updates`` schedules grid updates, which change the layers in place."""
        return not self.grid_updates

    vmap_unsafe_reason = ("its scheduled grid updates (grid_updates) replace the layers' grids and spline "
                          "weights between epochs, which a vmapped population cannot do per member")

    def _domain_output(self, layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        """Output of one subdomain's KAN."""
        for layer in layers:
            x = layer(x)
        return x

    def block_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Window-weighted sum of the subdomain KANs (a single KAN when ``num_domains == 1``)."""
        if self.num_domains == 1:
            return self._domain_output(self.kan_layers[0], x)
        windows = window_functions(x, self.num_domains, lower=self.grid_range[0], upper=self.grid_range[1])
        outputs = torch.stack([self._domain_output(layers, x) for layers in self.kan_layers], dim=-1)
        return torch.sum(outputs * windows.unsqueeze(-2), dim=-1)

    def update_grid(self, x: torch.Tensor, margin: float = 0.01) -> None:
        """Adapt every layer's grid to the activations that ``x`` produces, at the current scheduled size."""
        grid_size = self.grid_sizes[self.current_grid_index]
        with torch.no_grad():
            for layers in self.kan_layers:
                h = x
                for layer in layers:
                    layer.update_grid(h, margin=margin, grid_size=grid_size)
                    h = layer(h)

    def update_epoch(self, epoch: int, x: torch.Tensor) -> None:
        """At epochs listed in ``grid_updates``, advance the grid-size schedule and update the grids on ``x``."""
        if epoch not in self.grid_updates:
            return
        if self.current_grid_index + 1 < len(self.grid_sizes):
            self.current_grid_index += 1
        self.update_grid(x)
        if self.verbose:
            logger.info("KANBlock grid updated at epoch %d (grid size %d)", epoch,
                        self.grid_sizes[self.current_grid_index])

    def regularization_loss(self, regularize_activation: float = 1.0, regularize_entropy: float = 1.0) -> torch.Tensor:
        """Sum of the KAN regularisers of every layer of every subdomain."""
        return sum(layer.regularization_loss(regularize_activation, regularize_entropy)
                   for layers in self.kan_layers for layer in layers)


blocks = {
    "mlp": MLP,
    "mlp_dropout": MLPDropout,
    "mlp_bounds": MLP_bounds,
    "rnn": RNN,
    "pytorch_rnn": PytorchRNN,
    "linear": Linear,
    "residual_mlp": ResMLP,
    "basislinear": BasisLinear,
    "poly2": Poly2,
    "bilinear": BilinearTorch,
    "icnn": InputConvexNN,
    "pos_def": PosDef,
    "kan": KANBlock,
    "stacked_mlp": StackedMLP,
}
"""Block classes by short name, for choosing a block from a configuration string."""
