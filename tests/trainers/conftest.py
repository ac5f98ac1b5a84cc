"""Fixtures for the trainer tests: ``in_tmp_path`` runs a test in its own working directory, ``offline_wandb``
keeps wandb offline and inside the test's folder.

Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``; neither is autouse, so the other
trainer tests keep the working directory pytest started in.
"""
import pytest


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch):
    """Run the test in its own directory, where lightning_logs/ and checkpoints land."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """No network, no credentials, and every file under the test's own folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield
    import wandb

    wandb.teardown()  # wandb keeps process-wide settings; the next test starts it afresh
