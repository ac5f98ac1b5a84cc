"""Existing NeuroMANCER 1.5 scripts run unchanged: every upstream name, parameter and default matches.

The reference surface and its checker live in ``../shared`` beside the project (as on every
developer machine and in CI); the test is skipped only where that folder is absent, e.g. in an
sdist unpacked elsewhere.
"""
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "api_check.py"


@pytest.mark.skipif(not CHECKER.exists(), reason="../shared/tools/api_check.py is not beside this checkout")
def test_every_upstream_name_matches_the_reference_surface():
    result = subprocess.run([sys.executable, str(CHECKER), "--scope", "all"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "api: " in result.stdout.splitlines()[-1]
