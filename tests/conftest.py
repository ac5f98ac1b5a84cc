"""Fixtures shared by the whole suite."""
import json
from pathlib import Path

import pytest

# The upstream 1.5 API reference, a copy of ../shared/api kept in tests/data so it is read everywhere.
SURFACE = Path(__file__).resolve().parent / "data" / "neuromancer-1.5-surface.json"


@pytest.fixture(scope="session")
def upstream_registries():
    """The registry keys of upstream NeuroMANCER 1.5 (``registries`` of the API reference)."""
    return json.loads(SURFACE.read_text())["registries"]
