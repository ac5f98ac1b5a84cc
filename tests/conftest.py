"""Fixtures shared by the whole suite."""
import json
from pathlib import Path

import pytest

# The upstream 1.5 API reference, in ../shared beside the project on developer machines and in CI.
SURFACE = Path(__file__).resolve().parents[2] / "shared" / "api" / "neuromancer-1.5-surface.json"


@pytest.fixture(scope="session")
def upstream_registries():
    """The registry keys of upstream NeuroMANCER 1.5 (``registries`` of the API reference)."""
    if not SURFACE.exists():
        pytest.skip(f"{SURFACE} is not beside this checkout")
    return json.loads(SURFACE.read_text())["registries"]
