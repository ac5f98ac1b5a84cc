"""Module attributes resolved on first access (PEP 562), for re-exports that must stay cheap.

Public import paths such as ``neuromancer.problem.LitProblem`` name classes that live in
`neuromancer.trainers.lightning`; importing that module imports Lightning, which the modeling
layer must not do at import time. `lazy_exports` builds the module-level ``__getattr__`` and
``__dir__`` that import the defining module only when such a name is first used.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(module_name: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for module ``module_name`` re-exporting ``exports`` lazily.

    :param module_name: the re-exporting module, usually ``__name__``; it must be imported
        (it is, while its own body runs).
    :param exports: exported name -> dotted name of the module defining it.
    :return: the two functions to assign to the module's ``__getattr__`` and ``__dir__``. A
        resolved name is cached in the module's globals, so later lookups cost nothing.
        ``__getattr__`` raises AttributeError for other names and lets the ImportError of a
        missing dependency (e.g. lightning) through unchanged.
    """
    namespace = sys.modules[module_name].__dict__

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
