"""Helpers shared by the LitTrainer test modules: quiet trainer options and a plain-SGD trainer.

The test modules import this file by name from their own folder (which they put on ``sys.path``
for the DDP worker scripts anyway), so it works whatever the working directory or rootdir.
"""
import torch

from neuromancer.trainers.lightning import LitTrainer

QUIET = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False)
"""LitTrainer options for a single-CPU run without progress bar or model summary."""


def sgd_trainer(problem: torch.nn.Module, lr: float = 0.1, **kwargs) -> LitTrainer:
    """A quiet LitTrainer without logger optimising ``problem`` with plain SGD.

    :param problem: (nn.Module) the problem whose parameters SGD updates.
    :param lr: (float, default 0.1) SGD learning rate.
    :param kwargs: further LitTrainer options; they override the quiet defaults.
    """
    options = dict(QUIET, logger=False)
    options.update(kwargs)
    return LitTrainer(custom_optimizer=torch.optim.SGD(problem.parameters(), lr=lr), **options)
