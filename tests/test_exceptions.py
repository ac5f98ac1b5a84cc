"""Every exception class the package defines is a NeuromancerError and still the built-in it extends.

(tests/trainers/test_exceptions.py checks the trainers the same way, with their own cases.)
"""
import importlib
import inspect
from pathlib import Path

import pytest

import neuromancer
from neuromancer.exceptions import NeuromancerError
from neuromancer.graphs import DuplicateNameError
from neuromancer.psl.base import SimulationError

PACKAGE = Path(neuromancer.__file__).parent
MODULES = sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                 for path in PACKAGE.rglob("*.py")
                 if path.name != "__init__.py" and "trainers" not in path.parts)


@pytest.mark.parametrize("name", MODULES)
def test_every_exception_class_outside_the_trainers_is_a_neuromancer_error(name):
    module = importlib.import_module(name)
    own = [value for value in vars(module).values()
           if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name]
    assert [cls.__name__ for cls in own if not issubclass(cls, NeuromancerError)] == []


def test_the_errors_keep_their_builtin_bases():
    assert issubclass(SimulationError, RuntimeError)
    assert issubclass(DuplicateNameError, ValueError) and issubclass(DuplicateNameError, AssertionError)
