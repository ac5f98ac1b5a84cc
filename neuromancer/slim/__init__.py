"""Structured linear maps (SLiM): weights with built-in structure for NeuroMANCER blocks.

Every map class is importable from :mod:`neuromancer.slim.linear` (and from here); ``maps``
gives each map the short name used in configuration code (``maps['spectral']`` is
:class:`~neuromancer.slim.linear.SpectralLinear`).
"""
import sys

from neuromancer.slim import linear
from neuromancer.slim.linear import *  # noqa: F403 - the package re-exports every map and both registries

__all__ = ["linear", "slim", *linear.__all__]

slim = sys.modules[__name__]
"""This package itself, so that ``from neuromancer.slim import slim`` (as older notebooks write it)
gives the same ``slim.maps`` and map classes as ``import neuromancer.slim as slim``."""
