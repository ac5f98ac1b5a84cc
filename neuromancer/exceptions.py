"""The root of NeuroMANCER's own exceptions.

Every exception class the package defines derives from `NeuromancerError` and also from the
built-in exception it is a case of (``ValueError``, ``TypeError``, ``KeyError``...), so
``except NeuromancerError`` catches anything the package raised on purpose while existing
``except ValueError`` clauses keep working. The classes live next to the code that raises
them; this module holds the bases they share and imports nothing of the package.
"""
from __future__ import annotations

import os
import sys
import warnings

__all__ = ["LenientInputWarning", "NeuromancerError"]


class NeuromancerError(Exception):
    """Base class of the exceptions NeuroMANCER defines; catch it to handle any of them."""


class LenientInputWarning(NeuromancerError, UserWarning):
    """Warns that an input upstream NeuroMANCER 1.5 accepts was taken and converted as upstream does.

    Scripts written for upstream keep running (a numpy array in a `neuromancer.dataset.DictDataset`,
    a tensor computed from parameters given to `neuromancer.constraint.variable`); the message says
    what the input became and what to write instead. Silence it with
    ``warnings.filterwarnings("ignore", category=LenientInputWarning)``, or turn it into an error
    with ``"error"`` to find every such input.
    """


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_lenient_input(message: str) -> None:
    """Issue a `LenientInputWarning` pointing at the first caller outside the package.

    Inputs reach the conversions through different paths (``variable(t)``, ``x + t``,
    ``Constraint(t, ...)``), so a fixed ``stacklevel`` would point into the package on some of them.

    :param message: what the input became and what to write instead.
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, LenientInputWarning, stacklevel=level)
