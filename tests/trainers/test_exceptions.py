"""The trainers' exceptions derive from NeuromancerError and from the built-in they derived from before.

(Import cycles and private-name imports across the whole package are checked in tests/test_layout.py.)
"""
import importlib
import inspect
from pathlib import Path

import pytest

import neuromancer
from neuromancer.exceptions import NeuromancerError

PACKAGE = Path(neuromancer.__file__).parent
TRAINER_FILES = sorted((PACKAGE / "trainers").glob("*.py")) + [PACKAGE / "trainer.py"]


def module_name(path):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


@pytest.mark.parametrize("path", [path for path in TRAINER_FILES if path.name != "__init__.py"],
                         ids=lambda path: path.name)
def test_every_exception_class_is_a_neuromancer_error(path):
    module = importlib.import_module(module_name(path))
    own = [value for value in vars(module).values()
           if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__]
    assert [cls.__name__ for cls in own if not issubclass(cls, NeuromancerError)] == []


def test_exceptions_keep_the_builtin_they_derived_from():
    from neuromancer.trainers.lightning import UnwritableDirectoryError
    from neuromancer.trainers.sweep_config import SweepConfigError, parse_sweep_config
    from neuromancer.utils import CheckpointError, CorruptCheckpointError, UnsafeCheckpointError

    assert issubclass(UnwritableDirectoryError, PermissionError) and issubclass(UnwritableDirectoryError, ValueError)
    for cls in (SweepConfigError, CheckpointError, UnsafeCheckpointError, CorruptCheckpointError):
        assert issubclass(cls, NeuromancerError) and issubclass(cls, ValueError)
    with pytest.raises(NeuromancerError):
        parse_sweep_config({"method": "random"}, default_metric="dev_loss")
