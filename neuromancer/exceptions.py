"""The root of NeuroMANCER's own exceptions.

Every exception class the package defines derives from `NeuromancerError` and also from the
built-in exception it is a case of (``ValueError``, ``TypeError``, ``KeyError``...), so
``except NeuromancerError`` catches anything the package raised on purpose while existing
``except ValueError`` clauses keep working. The classes live next to the code that raises
them; this module only holds the base and imports nothing.
"""
from __future__ import annotations

__all__ = ["NeuromancerError"]


class NeuromancerError(Exception):
    """Base class of the exceptions NeuroMANCER defines; catch it to handle any of them."""
