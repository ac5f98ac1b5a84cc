"""Linear maps with a controlled spectrum, built from orthogonal factors.

Orthogonal factors come either from products of Householder reflections (always exactly
orthogonal: ``OrthogonalLinear``, ``SpectralLinear``, ``SymmetricSpectralLinear``,
``SchurDecompositionLinear``) or from free matrices kept close to orthogonal by a penalty
(``SVDLinear`` and its variants). Between the orthogonal factors sits a diagonal (or block
triangular) factor whose entries are squashed into user-given bounds, which bounds the singular
values or eigenvalues of the map. All classes are re-exported by :mod:`neuromancer.slim.linear`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from neuromancer.slim.base import LinearBase, SquareLinear

__all__ = [
    "Hprod", "OrthogonalLinear", "SVDLinear", "SVDLinearLearnBounds", "SymmetricSVDLinear",
    "SpectralLinear", "SymmetricSpectralLinear", "SchurDecompositionLinear",
]


def _check_bounds(sigma_min: float, sigma_max: float) -> None:
    """Raise ``ValueError`` unless ``sigma_min <= sigma_max``."""
    if float(sigma_min) > float(sigma_max):
        raise ValueError(f"sigma_min={sigma_min} exceeds sigma_max={sigma_max}; pass sigma_min <= sigma_max")


def Hprod(x: torch.Tensor, u: torch.Tensor, k: int) -> torch.Tensor:
    """Apply the Householder reflection defined by ``u`` to the rows of ``x``.

    The reflection ``v -> v - 2 u (u . v) / (u . u)`` acts on the last ``k`` components of each row
    (all components when ``k = 0``) and leaves the others unchanged, so it is orthogonal and its own inverse.

    :param x: ``[..., n]`` rows to reflect.
    :param u: ``[n]`` reflector; only its last ``k`` entries are used when ``k > 0``.
    :param k: number of trailing components the reflection acts on, 0 for all.
    :return: reflected rows, same shape as ``x``.
    """
    if k == 0:
        return x - 2.0 * (x @ u).unsqueeze(-1) * u / torch.dot(u, u)
    head, tail = x[..., :-k], x[..., -k:]
    u_tail = u[-k:]
    reflected = tail - 2.0 * (tail @ u_tail).unsqueeze(-1) * u_tail / torch.dot(u_tail, u_tail)
    return torch.cat([head, reflected], dim=-1)


def _reflect_all(x: torch.Tensor, reflectors: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Multiply rows of ``x`` by the product of the Householder reflections in ``reflectors``' rows."""
    order = range(reflectors.shape[0] - 1, -1, -1) if reverse else range(reflectors.shape[0])
    for i in order:
        x = Hprod(x, reflectors[i], 0)
    return x


def _reflector_count(n: int | None, size: int, name: str) -> int:
    """Validate a number of reflectors (default: ``size``, enough for any orthogonal matrix)."""
    if n is None:
        return size
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= size:
        raise ValueError(f"{name} must be an integer in [1, {size}], got {n!r}")
    return int(n)


def _bounded(raw: torch.Tensor, low, high) -> torch.Tensor:
    """Squash ``raw`` into ``[low, high]`` with a sigmoid."""
    return low + (high - low) * torch.sigmoid(raw)


class OrthogonalLinear(SquareLinear):
    """Orthogonal map ``W`` (``W^T W = I``) as a product of ``insize`` Householder reflections.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :raises ValueError: if the map is not square.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        self.U = nn.Parameter(torch.triu(torch.randn(insize, insize)))

    def effective_W(self) -> torch.Tensor:
        """Product of the reflections, built by reflecting the identity."""
        return _reflect_all(torch.eye(self.in_features, device=self.U.device, dtype=self.U.dtype), self.U)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect ``x`` directly (cheaper than forming ``W`` for small batches)."""
        out = _reflect_all(x, self.U)
        return out + self.bias if self.use_bias else out


class SVDLinear(LinearBase):
    """``W = U diag(s) V`` with singular values ``s`` squashed into ``[sigma_min, sigma_max]``.

    ``U`` and ``V`` are free square matrices initialised orthogonal; :meth:`reg_error` penalises
    their distance from orthogonality, so add it to the loss: the singular values of ``W`` equal
    ``s`` exactly while ``U`` and ``V`` stay orthogonal. Only the first ``min(insize, outsize)``
    columns of ``U`` and rows of ``V`` are used.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param sigma_min: lower bound of the singular values.
    :param sigma_max: upper bound of the singular values.
    :raises ValueError: if ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.1,
                 sigma_max: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        _check_bounds(sigma_min, sigma_max)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.rank = min(insize, outsize)
        self.U = nn.Parameter(torch.linalg.qr(torch.randn(insize, insize))[0])
        self.V = nn.Parameter(torch.linalg.qr(torch.randn(outsize, outsize))[0])
        self.sigma = nn.Parameter(torch.randn(self.rank, 1) * 0.1)

    def singular_values(self) -> torch.Tensor:
        """The bounded singular values ``s`` (shape ``[rank]``)."""
        return _bounded(self.sigma.flatten(), self.sigma_min, self.sigma_max)

    def orthogonal_error(self, weight: torch.Tensor) -> torch.Tensor:
        """Frobenius norm of ``weight @ weight^T - I``: zero exactly when ``weight`` is orthogonal."""
        eye = torch.eye(weight.shape[0], device=weight.device, dtype=weight.dtype)
        return torch.linalg.matrix_norm(weight @ weight.T - eye)

    def reg_error(self) -> torch.Tensor:
        """Orthogonality penalty of both factors."""
        return self.orthogonal_error(self.U) + self.orthogonal_error(self.V)

    def effective_W(self) -> torch.Tensor:
        """``U[:, :rank] diag(s) V[:rank, :]``."""
        return (self.U[:, :self.rank] * self.singular_values()) @ self.V[:self.rank, :]


class SVDLinearLearnBounds(SVDLinear):
    """:class:`SVDLinear` whose singular-value bounds are themselves trained.

    ``sigma_min`` and ``sigma_max`` become parameters initialised at the given values.

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param sigma_min: initial lower bound.
    :param sigma_max: initial upper bound.
    :raises ValueError: if ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.1,
                 sigma_max: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias, sigma_min=sigma_min, sigma_max=sigma_max)
        self.sigma_min = nn.Parameter(torch.tensor(float(sigma_min)))
        self.sigma_max = nn.Parameter(torch.tensor(float(sigma_max)))


class SymmetricSVDLinear(SVDLinear):
    """Symmetric ``W = U diag(s) U^T`` with eigenvalues ``s`` in ``[sigma_min, sigma_max]``.

    As in :class:`SVDLinear`, ``U`` is kept orthogonal by :meth:`reg_error`; the ``V`` factor is not used.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :param sigma_min: lower bound of the eigenvalues.
    :param sigma_max: upper bound of the eigenvalues.
    :raises ValueError: if the map is not square or ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, sigma_min: float = 0.1,
                 sigma_max: float = 1.0, **kwargs):
        if insize != outsize:
            raise ValueError(f"SymmetricSVDLinear needs a square map, got insize={insize} and outsize={outsize}")
        super().__init__(insize, outsize, bias=bias, sigma_min=sigma_min, sigma_max=sigma_max)
        del self.V

    def reg_error(self) -> torch.Tensor:
        """Orthogonality penalty of ``U``."""
        return self.orthogonal_error(self.U)

    def effective_W(self) -> torch.Tensor:
        """``U diag(s) U^T``."""
        return (self.U * self.singular_values()) @ self.U.T


class SpectralLinear(LinearBase):
    """``W = U Sigma V`` with ``U``, ``V`` products of Householder reflections, https://arxiv.org/abs/1803.09327.

    The orthogonal factors are exact, so the singular values of ``W`` are exactly the diagonal of
    ``Sigma``, squashed into ``[sigma_min, sigma_max]`` (they start at the midpoint).

    :param insize: input dimension.
    :param outsize: output dimension.
    :param bias: whether to learn a bias.
    :param n_U_reflectors: reflections forming ``U`` (``insize`` if None).
    :param n_V_reflectors: reflections forming ``V`` (``outsize`` if None).
    :param sigma_min: lower bound of the singular values.
    :param sigma_max: upper bound of the singular values.
    :raises ValueError: on a bad number of reflectors or ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, n_U_reflectors: int | None = None,
                 n_V_reflectors: int | None = None, sigma_min: float = 0.1, sigma_max: float = 1.0, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        _check_bounds(sigma_min, sigma_max)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.rank = min(insize, outsize)
        n_u = _reflector_count(n_U_reflectors, insize, "n_U_reflectors")
        n_v = _reflector_count(n_V_reflectors, outsize, "n_V_reflectors")
        self.U = nn.Parameter(torch.randn(n_u, insize))
        self.V = nn.Parameter(torch.randn(n_v, outsize))
        self.p = nn.Parameter(torch.zeros(self.rank))

    def Sigma(self) -> torch.Tensor:
        """The ``rank`` singular values, in ``[sigma_min, sigma_max]``."""
        return _bounded(self.p, self.sigma_min, self.sigma_max)

    def Umultiply(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ U`` for rows ``x`` of size ``insize``."""
        return _reflect_all(x, self.U)

    def Vmultiply(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ V`` for rows ``x`` of size ``outsize``."""
        return _reflect_all(x, self.V)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        """Multiply by the ``[insize, outsize]`` diagonal ``Sigma`` (truncating or zero-padding)."""
        scaled = x[..., :self.rank] * self.Sigma()
        pad = self.out_features - self.rank
        if pad:
            scaled = torch.cat([scaled, scaled.new_zeros(*scaled.shape[:-1], pad)], dim=-1)
        return scaled

    def effective_W(self) -> torch.Tensor:
        """``U Sigma V`` formed by pushing the identity through the factors."""
        eye = torch.eye(self.in_features, device=self.U.device, dtype=self.U.dtype)
        return self.Vmultiply(self._scale(self.Umultiply(eye)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the factors to ``x`` in turn (no ``W`` is formed)."""
        out = self.Vmultiply(self._scale(self.Umultiply(x)))
        return out + self.bias if self.use_bias else out


class SymmetricSpectralLinear(SpectralLinear):
    """Symmetric ``W = U Sigma U^T`` with ``U`` a product of Householder reflections.

    The eigenvalues of ``W`` are exactly the diagonal of ``Sigma``, in ``[sigma_min, sigma_max]``.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :param n_reflectors: reflections forming ``U`` (``insize`` if None).
    :param sigma_min: lower bound of the eigenvalues.
    :param sigma_max: upper bound of the eigenvalues.
    :raises ValueError: if the map is not square, on a bad ``n_reflectors`` or ``sigma_min > sigma_max``.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, n_reflectors: int | None = None,
                 sigma_min: float = 0.1, sigma_max: float = 1.0, **kwargs):
        if insize != outsize:
            raise ValueError(f"SymmetricSpectralLinear needs a square map, got insize={insize} and outsize={outsize}")
        super().__init__(insize, outsize, bias=bias, n_U_reflectors=n_reflectors, n_V_reflectors=n_reflectors,
                         sigma_min=sigma_min, sigma_max=sigma_max)
        del self.V

    def Vmultiply(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ U^T``: the reflections of ``U`` applied in reverse order."""
        return _reflect_all(x, self.U, reverse=True)


class SchurDecompositionLinear(SquareLinear):
    """``W = Q T Q^T`` from a real Schur form with designed eigenvalues inside the unit disc.

    ``Q`` is a product of Householder reflections (exactly orthogonal). ``T`` is block upper
    triangular: each 2x2 diagonal block ``r [[cos t, sin t], [-sin t, cos t]]`` contributes the
    complex pair ``r exp(+-i t)`` with ``r = sigmoid(.)`` in (0, 1), and an odd size adds one real
    eigenvalue ``tanh(.)`` in (-1, 1). So the map is the state matrix of a stable discrete-time system.
    The entries above the blocks are free; :meth:`reg_error` is ``l2`` times their squared norm.

    :param insize: input dimension.
    :param outsize: output dimension, must equal ``insize``.
    :param bias: whether to learn a bias.
    :param l2: weight of the penalty on the off-block entries of ``T``.
    :raises ValueError: if the map is not square.
    """

    def __init__(self, insize: int, outsize: int, bias: bool = False, l2: float = 1e-2, **kwargs):
        super().__init__(insize, outsize, bias=bias, provide_weights=False)
        self.l2 = l2
        self.T = nn.Parameter(torch.randn(insize, insize) * 0.1)
        self.U = nn.Parameter(torch.randn(insize, insize))
        block_of = torch.arange(insize) // 2
        self.register_buffer("upper_mask", (block_of.unsqueeze(1) < block_of.unsqueeze(0)).to(torch.float32),
                             persistent=False)

    def block_eigenvalues(self) -> torch.Tensor:
        """The eigenvalues the map is built to have (complex tensor of length ``insize``)."""
        T, n = self.T, self.in_features
        radius = torch.sigmoid(T.diagonal()[0:n - 1:2])
        angle = T.diagonal(1)[0:n - 1:2]
        pairs = torch.polar(radius, angle)
        values = torch.stack([pairs, pairs.conj()], dim=1).flatten()
        if n % 2:
            values = torch.cat([values, torch.tanh(T[-1, -1:]).to(values.dtype)])
        return values

    def build_T(self, T: torch.Tensor) -> torch.Tensor:
        """Real Schur factor from the raw parameter ``T``: rotation-scaling blocks plus free upper part."""
        n = self.in_features
        blocks = []
        for k in range(0, n - 1, 2):
            radius, angle = torch.sigmoid(T[k, k]), T[k, k + 1]
            cos, sin = radius * torch.cos(angle), radius * torch.sin(angle)
            blocks.append(torch.stack([torch.stack([cos, sin]), torch.stack([-sin, cos])]))
        if n % 2:
            blocks.append(torch.tanh(T[-1:, -1:]))
        return torch.block_diag(*blocks) + T * self.upper_mask

    def reg_error(self) -> torch.Tensor:
        """``l2`` times the squared norm of the free entries above the diagonal blocks."""
        return self.l2 * torch.sum((self.T * self.upper_mask) ** 2)

    def effective_W(self) -> torch.Tensor:
        """``Q T Q^T`` with ``Q`` the product of the reflections."""
        eye = torch.eye(self.in_features, device=self.T.device, dtype=self.T.dtype)
        Q = _reflect_all(eye, self.U)
        return Q @ self.build_T(self.T) @ Q.T
