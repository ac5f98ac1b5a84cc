"""Libraries of candidate functions for sparse identification of nonlinear dynamics (SINDy).

A library evaluates ``m`` candidate functions on a batch of states ``X [batch, n]`` and returns the
matrix ``Theta(X) [batch, m]``; SINDy then learns sparse coefficients ``Xi [m, n]`` with
``dX/dt = Theta(X) Xi``. `FunctionLibrary` takes any list of column functions,
`PolynomialLibrary` builds every monomial up to a total degree and `FourierLibrary` sines and
cosines of each state at integer frequencies. ``library.shape`` is ``(m, n)``, the shape of ``Xi``.
"""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence

import torch

ColumnFunction = Callable[[torch.Tensor], torch.Tensor]


class FunctionLibrary:
    """A list of candidate functions, each mapping ``X [batch, n]`` to one column ``[batch]``.

    :param functions: the candidate functions; each must accept the whole
        ``[batch, n_features]`` tensor and return a ``[batch]`` tensor
    :param n_features: number of state columns ``n``
    :param function_names: one printable name per function (default None: ``f0, f1, ...``)
    :raises TypeError: if ``functions`` is not a list
    :raises ValueError: if ``function_names`` does not have one name per function
    """

    def __init__(self, functions: list[ColumnFunction], n_features: int,
                 function_names: list[str] | None = None) -> None:
        if not isinstance(functions, list):
            raise TypeError(f"functions must be a list of callables, got {type(functions).__name__}")
        if function_names is not None and len(function_names) != len(functions):
            raise ValueError(f"got {len(function_names)} function_names for {len(functions)} functions; "
                             f"give one name per function or None")
        self.library = functions
        self.function_names = function_names
        self.shape: tuple[int, int] = (len(functions), n_features)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate every function on ``x``.

        :param x: [batch, n_features] states
        :return: [batch, number of functions], differentiable in ``x``
        """
        return torch.stack([torch.as_tensor(f(x)).expand(x.shape[0]) for f in self.library], dim=-1)

    def names(self) -> list[str]:
        """The printable name of each function (generic ``f<i>`` where none were given)."""
        return list(self.function_names) if self.function_names is not None else [f"f{i}" for i in range(self.shape[0])]

    def __str__(self) -> str:
        """The function names joined by ``', '``."""
        return ", ".join(self.names())


def _monomial_name(factors: Sequence[int]) -> str:
    """Name the product of state columns ``factors`` (sorted indices), e.g. ``(0, 0, 1) -> 'x0^2*x1'``."""
    counts = Counter(factors)
    return "*".join(f"x{i}" if power == 1 else f"x{i}^{power}" for i, power in sorted(counts.items()))


class PolynomialLibrary(FunctionLibrary):
    """Every monomial of the states of total degree 0 to ``max_degree``.

    The order is the constant ``1`` first, then the monomials of degree 1, 2, ... each listed as
    the combinations with replacement of the state indices (for two states and degree 2:
    ``1, x0, x1, x0^2, x0*x1, x1^2``).

    :param n_features: number of state columns
    :param max_degree: highest total degree, default 2
    :raises ValueError: if ``max_degree`` is negative
    """

    def __init__(self, n_features: int, max_degree: int = 2) -> None:
        if max_degree < 0:
            raise ValueError(f"max_degree={max_degree} must be >= 0")
        self.max_degree = max_degree
        self.monomials: list[tuple[int, ...]] = [()] + [
            combo for degree in range(1, max_degree + 1)
            for combo in itertools.combinations_with_replacement(range(n_features), degree)]
        functions = [self._monomial(combo) for combo in self.monomials]
        names = ["1"] + [_monomial_name(combo) for combo in self.monomials[1:]]
        super().__init__(functions, n_features, names)

    @staticmethod
    def _monomial(factors: tuple[int, ...]) -> ColumnFunction:
        """The function ``X -> prod_i X[:, i]`` over ``factors`` (ones for the empty product)."""
        def monomial(X: torch.Tensor) -> torch.Tensor:
            return X[:, list(factors)].prod(dim=-1) if factors else torch.ones(X.shape[0], dtype=X.dtype,
                                                                              device=X.device)
        return monomial

    def evaluate(self, X: torch.Tensor) -> torch.Tensor:
        """Evaluate every monomial on ``X``.

        :param X: [batch, n_features] states
        :return: [batch, number of monomials]
        """
        return super().evaluate(X)


class FourierLibrary(FunctionLibrary):
    """Sines and cosines of each state at the frequencies ``1 .. max_freq``.

    The order is every sine (state 0 at frequencies 1..max_freq, then state 1, ...) followed by
    every cosine in the same order; names read ``sin(2*x0)``.

    :param n_features: number of state columns
    :param max_freq: highest integer frequency, default 2
    :param include_sin: include the sines, default True
    :param include_cos: include the cosines, default True
    :raises ValueError: if ``max_freq`` is below 1 or both families are excluded
    """

    def __init__(self, n_features: int, max_freq: int = 2, include_sin: bool = True, include_cos: bool = True) -> None:
        if max_freq < 1:
            raise ValueError(f"max_freq={max_freq} must be >= 1")
        if not (include_sin or include_cos):
            raise ValueError("include_sin and include_cos are both False: the library would be empty")
        self.max_freq, self.include_sin, self.include_cos = max_freq, include_sin, include_cos
        families = [(name, fn) for name, fn, keep in (("sin", torch.sin, include_sin), ("cos", torch.cos, include_cos))
                    if keep]
        functions, names = [], []
        for name, fn in families:
            for state in range(n_features):
                for freq in range(1, max_freq + 1):
                    functions.append(self._harmonic(fn, state, freq))
                    names.append(f"{name}({freq}*x{state})")
        super().__init__(functions, n_features, names)

    @staticmethod
    def _harmonic(fn: Callable[[torch.Tensor], torch.Tensor], state: int, freq: int) -> ColumnFunction:
        """The function ``X -> fn(freq * X[:, state])``."""
        return lambda X: fn(freq * X[:, state])
