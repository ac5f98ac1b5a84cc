"""Structured linear maps (SLiM): weights with built-in structure for NeuroMANCER blocks.

Every map class is importable from :mod:`neuromancer.slim.linear` (and from here); ``maps``
gives each map the short name used in configuration code (``maps['spectral']`` is
:class:`~neuromancer.slim.linear.SpectralLinear`).
"""
from neuromancer.slim import linear
from neuromancer.slim.linear import *  # noqa: F401,F403 - the package re-exports every map
from neuromancer.slim.linear import (
    BoundedNormLinear, DampedSkewSymmetricLinear, GershgorinLinear, IdentityLinear, L0Linear, LassoLinear,
    LeftStochasticLinear, Linear, NonNegativeLinear, OrthogonalLinear, PerronFrobeniusLinear, PowerBoundLinear,
    PSDLinear, RightStochasticLinear, SchurDecompositionLinear, SkewSymmetricLinear, SpectralLinear,
    SplitLinear, StableSplitLinear, SVDLinear, SVDLinearLearnBounds, SymmetricLinear, SymplecticLinear,
    TrivialNullSpaceLinear,
)

maps = {
    "l0": L0Linear,
    "linear": Linear,
    "nneg": NonNegativeLinear,
    "lasso": LassoLinear,
    "lstochastic": LeftStochasticLinear,
    "rstochastic": RightStochasticLinear,
    "pf": PerronFrobeniusLinear,
    "symmetric": SymmetricLinear,
    "skew_symetric": SkewSymmetricLinear,
    "damp_skew_symmetric": DampedSkewSymmetricLinear,
    "split": SplitLinear,
    "stable_split": StableSplitLinear,
    "spectral": SpectralLinear,
    "softSVD": SVDLinear,
    "learnSVD": SVDLinearLearnBounds,
    "orthogonal": OrthogonalLinear,
    "psd": PSDLinear,
    "symplectic": SymplecticLinear,
    "schur": SchurDecompositionLinear,
    "identity": IdentityLinear,
    "gershgorin": GershgorinLinear,
    "bounded_Lp_norm": BoundedNormLinear,
    "trivial_nullspace": TrivialNullSpaceLinear,
    "Power_bound": PowerBoundLinear,
}
"""Map classes by short name (the keys of upstream NeuroMANCER 1.5, without the butterfly maps)."""
