"""Existing NeuroMANCER 1.5 scripts run unchanged: every upstream name, parameter and default matches.

The reference surface and its checker are kept in ``tests/data/`` (copies of ``../shared/api`` and
``../shared/tools/api_check.py``), so the check runs, and can fail, wherever the repository is
checked out, GitHub's runners included. Where ``../shared`` is beside the checkout, a second test
checks that the copies have not drifted from it.
"""
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
CHECKER = DATA / "api_check.py"
SURFACES = ("neuromancer-1.5-surface.json", "neuromancer-1.5-surface-next.json")
SHARED_API = Path(__file__).resolve().parents[2] / "shared" / "api"


@pytest.mark.parametrize("name", SURFACES)
def test_every_upstream_name_matches_the_reference_surface(name):
    """Both surfaces, every scope: the core and examples names, and the compat and tutorials ones."""
    result = subprocess.run([sys.executable, str(CHECKER), "--scope", "all", "--surface", str(DATA / name)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert result.stdout.splitlines()[-1].startswith("api: ")


@pytest.mark.parametrize("name", SURFACES)
def test_the_kept_surface_is_the_shared_one(name):
    if not (SHARED_API / name).exists():
        pytest.skip(f"{SHARED_API / name} is not beside this checkout; tests/data/{name} is the reference here")
    assert (DATA / name).read_bytes() == (SHARED_API / name).read_bytes(), (
        f"tests/data/{name} differs from ../shared/api/{name}; copy the shared file over it")
