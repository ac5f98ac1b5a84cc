"""LitProblem on its own: outside a fit, on any callable problem, and its per-epoch step-output lists."""
import math
import pickle
import sys
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import torch

from neuromancer.trainers.lightning import LitProblem

sys.path.insert(0, str(Path(__file__).parent))
from ddp_script import data_setup, expected_trajectory, scalar_problem  # noqa: E402
from lit_helpers import sgd_trainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("in_tmp_path")


class Doubling:
    """A problem that is not an nn.Module: ``train_loss = mean(w * a)`` with one weight ``w = 2``."""

    def __init__(self):
        self.w = torch.nn.Parameter(torch.tensor(2.0))

    def parameters(self):
        return iter([self.w])

    def __call__(self, batch):
        return {"train_loss": (self.w * batch["a"]).mean()}


def test_training_step_outside_a_fit_returns_the_loss_of_any_callable_problem():
    lit_problem = LitProblem(Doubling())
    loss = lit_problem.training_step({"a": torch.tensor([[1.0], [2.0]]), "name": "train"}, 0)
    assert float(loss.detach()) == 3.0 and loss.grad_fn is not None
    assert len(lit_problem.training_step_outputs) == 1
    assert float(lit_problem.training_step_outputs[0]) == 3.0
    assert lit_problem.training_step_outputs[0].grad_fn is None


def test_learning_rate_is_0_001_unless_the_configuration_sets_it():
    problem = Doubling()
    lit_problem = LitProblem(problem)
    assert lit_problem.lr == 0.001
    optimizer = lit_problem.configure_optimizers()
    assert optimizer.param_groups[0]["lr"] == 0.001 and optimizer.param_groups[0]["params"] == [problem.w]
    assert LitProblem(problem, hparam_config={"learning_rate": 0.05}).lr == 0.05


def test_a_custom_optimizer_keeps_its_learning_rate_unless_the_configuration_sets_it():
    problem = Doubling()
    optimizer = torch.optim.SGD(problem.parameters(), lr=0.3)
    assert LitProblem(problem, custom_optimizer=optimizer).configure_optimizers().param_groups[0]["lr"] == 0.3
    LitProblem(problem, custom_optimizer=optimizer, hparam_config={"learning_rate": 0.02}).configure_optimizers()
    assert optimizer.param_groups[0]["lr"] == 0.02


def test_upstreams_mock_problem_is_accepted():
    # Upstream's own tests build LitProblem on a MagicMock problem and call training_step on a mock batch.
    problem = MagicMock()
    problem.return_value = {"train_loss": torch.tensor(1.0)}
    lit_problem = LitProblem(problem)
    assert lit_problem.problem is problem and lit_problem.lr == 0.001
    loss = lit_problem.training_step(MagicMock(), 0)
    assert loss == torch.tensor(1.0) and loss in lit_problem.training_step_outputs


def test_a_problem_that_is_not_callable_or_has_no_parameters_is_rejected():
    with pytest.raises(TypeError, match="callable with parameters"):
        LitProblem(lambda batch: batch)
    with pytest.raises(TypeError, match="callable with parameters"):
        LitProblem(torch.ones(2))


def epoch_average(self):
    """An upstream-style custom epoch-end hook: the mean of this epoch's step losses."""
    self.epoch_averages = getattr(self, "epoch_averages", [])
    self.epoch_averages.append((len(self.training_step_outputs), float(torch.stack(self.training_step_outputs).mean())))


def dev_average(self):
    self.dev_averages = getattr(self, "dev_averages", [])
    self.dev_averages.append((len(self.validation_step_outputs), float(torch.stack(self.validation_step_outputs).mean())))


def test_epoch_end_hook_reads_step_outputs_filled_by_hand():
    lit_problem = LitProblem(Doubling(), custom_hooks={"on_train_epoch_end": epoch_average})
    lit_problem.training_step_outputs = [torch.tensor(1.0), torch.tensor(2.0)]
    lit_problem.on_train_epoch_end()
    assert lit_problem.epoch_averages == [(2, 1.5)]


def test_step_outputs_hold_each_epochs_losses_during_a_fit():
    # SGD on the scalar problem, two batches of 4 per epoch: every step's train loss is (w - 1)^2 taken
    # before its update, and the dev loss of the epoch is (w - 0.5)^2 after the epoch's two steps.
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=3, num_sanity_val_steps=0,
                          custom_hooks={"on_train_epoch_end": epoch_average, "on_validation_epoch_end": dev_average})
    trainer.fit(problem, data_setup, nsim=8, batch_size=4)
    lit_problem = trainer.lit_problem
    weights = [0.0] + expected_trajectory(6, steps_per_epoch=1, lr=0.1)[0]
    train_means = [((weights[2 * e] - 1) ** 2 + (weights[2 * e + 1] - 1) ** 2) / 2 for e in range(3)]
    assert [count for count, _ in lit_problem.epoch_averages] == [2, 2, 2]
    assert [mean for _, mean in lit_problem.epoch_averages] == pytest.approx(train_means, rel=1e-5)
    assert lit_problem.dev_averages == [(2, pytest.approx((weights[2 * e + 2] - 0.5) ** 2, rel=1e-5))
                                        for e in range(3)]
    assert all(loss.grad_fn is None for loss in lit_problem.training_step_outputs)


def test_a_custom_epoch_start_hook_does_not_keep_the_lists_from_being_emptied():
    starts = []
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=2, custom_hooks={"on_train_epoch_end": epoch_average,
                                                           "on_train_epoch_start": lambda self: starts.append(1)})
    trainer.fit(problem, data_setup, nsim=8, batch_size=4)
    assert starts == [1, 1]
    assert [count for count, _ in trainer.lit_problem.epoch_averages] == [2, 2]


@pytest.mark.parametrize("name, hook", [
    ("on_train_epoch_end", lambda x: None),
    ("on_train_batch_start", lambda self, batch, idx: None),
])
def test_a_hook_whose_parameters_are_named_otherwise_is_rejected(name, hook):
    with pytest.raises(ValueError, match="must have the signature"):
        LitProblem(Doubling(), custom_hooks={name: hook})


def test_a_nonfinite_loss_outside_a_fit_is_reported_and_not_returned(caplog):
    class Nan(Doubling):
        def __call__(self, batch):
            return {"train_loss": self.w * math.nan}

    lit_problem = LitProblem(Nan())
    assert lit_problem.training_step({"a": torch.ones(1, 1), "name": "train"}, 3) is None
    assert lit_problem.nonfinite_stop == "epoch 0, batch 3 (global step 0): train_loss=nan is not finite"
    assert lit_problem.training_step_outputs == []


def test_custom_hooks_survive_pickling_as_for_a_spawned_worker():
    lit_problem = LitProblem(scalar_problem(), custom_hooks={"on_train_epoch_end": epoch_average})
    copy = pickle.loads(pickle.dumps(lit_problem))
    copy.training_step_outputs = [torch.tensor(1.0), torch.tensor(3.0)]
    copy.on_train_epoch_end()  # the module's own epoch-end hook, then the custom one
    assert copy.epoch_averages == [(2, 2.0)]
