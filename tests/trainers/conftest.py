"""Fixtures for the trainer tests: ``in_tmp_path`` runs a test in its own working directory.

Modules opt in with ``pytestmark = pytest.mark.usefixtures("in_tmp_path")``; it is not autouse, so
the other trainer tests keep the working directory pytest started in.
"""
import pytest


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch):
    """Run the test in its own directory, where lightning_logs/ and checkpoints land."""
    monkeypatch.chdir(tmp_path)
