"""Tests for neuromancer.loggers: files written into savedir, metric reporting, loss histories."""
import argparse
import json
import logging

import pytest
import torch
from torch import nn

from neuromancer.loggers import BasicLogger, LossLogger


def read_metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_basic_logger_writes_args_metrics_and_artifacts(tmp_path, caplog):
    savedir = tmp_path / "run"
    args = argparse.Namespace(lr=0.01, epochs=3)
    caplog.set_level(logging.INFO, logger="neuromancer.loggers")
    logger = BasicLogger(args=args, savedir=str(savedir), verbosity=2, stdout=["dev_loss"])
    assert json.loads((savedir / "args.json").read_text()) == {"epochs": 3, "lr": 0.01}
    for step in range(3):
        logger.log_metrics({"dev_loss": torch.tensor(float(step)), "train_loss": 1.5,
                            "vector": torch.ones(3), "name": "dev"}, step=step)
    rows = read_metrics(savedir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[2]["dev_loss"] == 2.0 and rows[2]["train_loss"] == 1.5
    assert "vector" not in rows[0] and "name" not in rows[0]
    reported = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch:")]
    assert len(reported) == 2 and "dev_loss: 2.00000" in reported[1] and "train_loss" not in reported[1]
    model = nn.Linear(2, 1)
    assert logger.log_weights(model) == 3
    logger.log_artifacts({"state.pth": model.state_dict()})
    loaded = torch.load(savedir / "state.pth")
    assert torch.equal(loaded["weight"], model.weight)
    logger.clean_up()
    assert (savedir / "metrics.jsonl").exists()


def test_unpicklable_module_artifact_falls_back_to_state_dict(tmp_path):
    model = nn.Linear(2, 1)
    model.hook = lambda x: x  # lambdas do not pickle with the standard pickle
    logger = BasicLogger(savedir=str(tmp_path))
    logger.log_artifacts({"model.pth": model})
    loaded = torch.load(tmp_path / "model.pth", weights_only=False)
    state = loaded if isinstance(loaded, dict) else loaded.state_dict()
    assert torch.equal(state["weight"], model.weight)


def test_step_defaults_to_last_step_and_bad_verbosity(tmp_path):
    logger = BasicLogger(savedir=str(tmp_path))
    logger.log_metrics({"loss": 1.0}, step=7)
    logger.log_metrics({"best_loss": 0.5})
    assert [row["step"] for row in read_metrics(tmp_path)] == [7, 7]
    with pytest.raises(ValueError, match="verbosity"):
        BasicLogger(savedir=str(tmp_path / "unused"), verbosity=0)
    assert not (tmp_path / "unused").exists()


def test_loss_logger_keeps_per_epoch_histories(tmp_path):
    logger = LossLogger(savedir=str(tmp_path), verbosity=5, stdout=["train_loss", "dev_loss", "dev_other"])
    for epoch in range(4):
        logger.log_metrics({"train_loss": torch.tensor(1.0 / (epoch + 1)), "dev_loss": 2.0 * epoch,
                            "dev_other": 7.0, "test_loss": 9.0}, step=epoch)
    losses = logger.get_losses()
    assert losses == {"train": [1.0, 0.5, pytest.approx(1 / 3), 0.25], "dev": [0.0, 2.0, 4.0, 6.0]}
    assert len(read_metrics(tmp_path)) == 4
