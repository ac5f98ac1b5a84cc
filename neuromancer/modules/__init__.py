"""Neural building blocks: function approximators, activations and helper functions.

Submodules: :mod:`~neuromancer.modules.blocks` (MLPs, ICNNs, RNNs, KANs, ...),
:mod:`~neuromancer.modules.activations` (learnable activations and the ``activations`` registry)
and :mod:`~neuromancer.modules.functions` (bounding helpers).
"""
from neuromancer.modules import activations, blocks, functions

__all__ = ["activations", "blocks", "functions"]
