"""LitTrainer trains what the classic Trainer trains, with the classic settings, to the same numbers.

Problems are trained both ways from the same weights on full-batch data, so the two trainers take
the very same optimizer steps and must end with the same losses and weights: a projected-gradient
problem (autograd in evaluation), an augmented Lagrangian (the batch's epoch), a multi-fidelity
network, and the settings eval_mode, lr_scheduler and a classic logger. Other tests check when
evaluation runs with autograd and under inference mode.
"""
import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader

from neuromancer.callbacks import Callback
from neuromancer.constraint import variable
from neuromancer.dataset import DictDataset
from neuromancer.exceptions import NeuromancerError
from neuromancer.loss import AugmentedLagrangeLoss, PenaltyLoss
from neuromancer.modules import blocks, solvers
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainers.lightning import InferenceModeError, LitTrainer
from neuromancer.trainers.trainer import Trainer

pytestmark = pytest.mark.usefixtures("in_tmp_path")

QUIET = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False, logger=False)
NSIM = 64


def parametric_data(nsim=NSIM):
    """Train, dev and test splits of the parameters ``a`` and ``p`` of a constrained Rosenbrock problem.

    Each sample also carries its position, ``index``, which `AugmentedLagrangeLoss` needs.
    """
    generator = torch.Generator().manual_seed(7)

    def split(name):
        return DictDataset({"a": torch.empty(nsim, 1).uniform_(0.2, 1.2, generator=generator),
                            "p": torch.empty(nsim, 1).uniform_(0.5, 2.0, generator=generator),
                            "index": torch.arange(nsim)}, name=name)

    return split("train"), split("dev"), split("test")


def full_batch_setup(nsim=NSIM):
    """The data setup function LitTrainer takes: the three splits and one batch holding all samples."""
    return (*parametric_data(nsim), nsim)


def rosenbrock_terms():
    """The objective and the three constraints of the parametric Rosenbrock problem."""
    x1, x2 = variable("x")[:, [0]], variable("x")[:, [1]]
    a, p = variable("a"), variable("p")
    objective = ((1 - x1) ** 2 + a * (x2 - x1 ** 2) ** 2).minimize(name="obj")
    inner, outer = (p / 2) ** 2 <= x1 ** 2 + x2 ** 2, x1 ** 2 + x2 ** 2 <= p ** 2
    inner.name, outer.name = "inner", "outer"
    return objective, [x1 >= x2, inner, outer]


def projected_gradient_problem(seed=0):
    """A solution map corrected by a projected-gradient layer; evaluating it differentiates the constraints."""
    torch.manual_seed(seed)
    solution_map = Node(blocks.MLP(2, 2, nonlin=torch.nn.ReLU, hsizes=[16, 16]), ["a", "p"], ["x"], name="map")
    objective, constraints = rosenbrock_terms()
    projection = solvers.GradientProjection(constraints[1:], input_keys=["x"], num_steps=3, step_size=0.1,
                                            name="proj")
    return Problem([solution_map, projection], PenaltyLoss([objective], constraints), grad_inference=True)


def augmented_lagrangian_problem(seed=0):
    """A solution map trained with `AugmentedLagrangeLoss`, whose multipliers change with the batch's epoch."""
    torch.manual_seed(seed)
    solution_map = Node(blocks.MLP(2, 2, nonlin=torch.nn.ReLU, hsizes=[16, 16]), ["a", "p"], ["x"], name="map")
    objective, constraints = rosenbrock_terms()
    loss = AugmentedLagrangeLoss([objective], constraints, NSIM, inner_loop=1, mu_init=1.0)
    return Problem([solution_map], loss)


def train_classic(problem, epochs=1, **options):
    """Train with the classic Trainer on full batches with Adam (lr 0.01); return the trainer.

    :param options: further Trainer arguments (``patience`` defaults to None here).
    """
    loaders = [DataLoader(split, batch_size=NSIM, collate_fn=split.collate_fn) for split in parametric_data()]
    options = {"optimizer": torch.optim.Adam(problem.parameters(), lr=0.01), "patience": None} | options
    trainer = Trainer(problem, *loaders, epochs=epochs, **options)
    trainer.train()
    return trainer


def train_lit(problem, epochs=1, **options):
    """Train with LitTrainer on the same full batches and optimizer as `train_classic`; return the trainer.

    :param options: further LitTrainer arguments.
    """
    options = {"custom_optimizer": torch.optim.Adam(problem.parameters(), lr=0.01), "save_weights": False} | options
    trainer = LitTrainer(epochs=epochs, **QUIET | options)
    trainer.fit(problem, full_batch_setup)
    return trainer


def test_a_projected_gradient_problem_ends_its_first_epoch_with_the_classic_dev_loss():
    classic_problem = projected_gradient_problem()
    lit_problem = copy.deepcopy(classic_problem)

    classic = train_classic(classic_problem)
    lit = train_lit(lit_problem)

    assert float(lit.callback_metrics["dev_loss"]) == pytest.approx(classic.best_devloss, rel=1e-5)
    for name, value in classic_problem.state_dict().items():
        torch.testing.assert_close(lit_problem.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_testing_a_fitted_projected_gradient_problem_gives_the_classic_test_loss():
    classic_problem = projected_gradient_problem()
    lit_problem = copy.deepcopy(classic_problem)
    classic = train_classic(classic_problem, epochs=2)
    lit = train_lit(lit_problem, epochs=2)

    expected = classic.test(classic.best_model)["mean_test_loss"]
    assert lit.test(verbose=False)["test_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_an_augmented_lagrangian_problem_sees_the_epoch_and_updates_its_multipliers_as_classically():
    classic_problem = augmented_lagrangian_problem()
    lit_problem = copy.deepcopy(classic_problem)
    train_classic(classic_problem, epochs=3)
    train_lit(lit_problem, epochs=3)

    multipliers = classic_problem.loss.lm
    assert multipliers.shape == (NSIM, 3) and bool(multipliers.abs().sum() > 0)
    for name, value in classic_problem.state_dict().items():
        torch.testing.assert_close(lit_problem.state_dict()[name], value, rtol=1e-5, atol=1e-6)


class GradModeProbe(torch.nn.Module):
    """A node that records, at every call, whether autograd and inference mode were on."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.calls = []

    def forward(self, p):
        self.calls.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
        return p * self.weight


def probed_problem(grad_inference):
    probe = GradModeProbe()
    x = variable("x")
    problem = Problem([Node(probe, ["p"], ["x"], name="probe")],
                      PenaltyLoss([(x ** 2).minimize(name="obj")], []), grad_inference=grad_inference)
    return problem, probe


@pytest.mark.parametrize("grad_inference", [True, False])
def test_evaluation_runs_with_autograd_only_for_problems_that_ask_for_it(grad_inference):
    problem, probe = probed_problem(grad_inference)
    trainer = train_lit(problem, num_sanity_val_steps=0)
    validated = len(probe.calls)
    trainer.test(verbose=False)
    trainer.validate(trainer.lit_problem, datamodule=trainer.data_module, verbose=False)

    # One training step, one dev pass in fit, then test and validate: autograd in evaluation exactly
    # when the problem asks for it; other problems keep Lightning's inference mode outside fit.
    assert probe.calls[0] == (True, False)
    assert probe.calls[1] == (grad_inference, False)
    assert probe.calls[validated:] == [(grad_inference, not grad_inference)] * 2


def test_one_trainer_evaluates_each_problem_as_it_needs():
    trainer = LitTrainer(epochs=1, save_weights=False, **QUIET)
    plain, plain_probe = probed_problem(grad_inference=False)
    needing, needing_probe = probed_problem(grad_inference=True)
    trainer.test(needing, full_batch_setup)
    trainer.test(plain, full_batch_setup)
    assert needing_probe.calls == [(True, False)] and plain_probe.calls == [(False, True)]


def test_inference_mode_true_with_a_problem_that_needs_autograd_is_refused_before_training():
    problem, probe = probed_problem(grad_inference=True)
    trainer = LitTrainer(epochs=1, inference_mode=True, save_weights=False, **QUIET)
    with pytest.raises(InferenceModeError, match="inference_mode unset") as raised:
        trainer.fit(problem, full_batch_setup)
    assert isinstance(raised.value, NeuromancerError) and isinstance(raised.value, ValueError)
    assert probe.calls == []
    with pytest.raises(InferenceModeError):
        trainer.test(problem, full_batch_setup)


def test_inference_mode_false_evaluates_every_problem_without_inference_mode():
    problem, probe = probed_problem(grad_inference=False)
    trainer = train_lit(problem, inference_mode=False, num_sanity_val_steps=0)
    trainer.test(verbose=False)
    assert probe.calls[-1] == (False, False)


def penalty_problem(seed=0):
    """The parametric Rosenbrock problem with a plain penalty loss."""
    torch.manual_seed(seed)
    solution_map = Node(blocks.MLP(2, 2, nonlin=torch.nn.ReLU, hsizes=[16, 16]), ["a", "p"], ["x"], name="map")
    objective, constraints = rosenbrock_terms()
    return Problem([solution_map], PenaltyLoss([objective], constraints))


def test_a_classic_loss_logger_records_the_same_history_under_both_trainers(tmp_path):
    from neuromancer.loggers import LossLogger

    classic_problem = penalty_problem()
    lit_problem = copy.deepcopy(classic_problem)
    classic_logger = LossLogger(savedir=str(tmp_path / "classic"), stdout=["train_loss", "dev_loss"])
    lit_logger = LossLogger(savedir=str(tmp_path / "lit"), stdout=["train_loss", "dev_loss"])
    classic = train_classic(classic_problem, epochs=3, logger=classic_logger)
    classic.test(classic.best_model)
    lit = train_lit(lit_problem, epochs=3, logger=lit_logger)
    lit.test(verbose=False)

    assert lit.loggers == []  # given only a classic logger, Lightning writes no logs of its own
    classic_losses, lit_losses = classic_logger.get_losses(), lit_logger.get_losses()
    assert sorted(lit_losses) == ["dev", "train"] and len(lit_losses["train"]) == 3
    for split in ("train", "dev"):
        assert lit_losses[split] == pytest.approx(classic_losses[split], rel=1e-5)
    lines = (tmp_path / "lit" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines[:3]] == [0, 1, 2]
    assert json.loads(lines[-1])["best_test_loss"] == pytest.approx(float(lit.callback_metrics["test_loss"]))
    saved = torch.load(tmp_path / "lit" / "best_model_state_dict.pth", weights_only=True)
    for name, value in lit_problem.state_dict().items():
        torch.testing.assert_close(saved[name], value)


def test_classic_and_lightning_loggers_can_be_given_together(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from neuromancer.loggers import BasicLogger

    csv = CSVLogger(str(tmp_path / "csv"))
    classic_logger = BasicLogger(savedir=str(tmp_path / "classic"), stdout=["dev_loss"])
    lit = train_lit(penalty_problem(), epochs=2, logger=[csv, classic_logger])
    assert lit.loggers == [csv]
    assert len((tmp_path / "classic" / "metrics.jsonl").read_text().splitlines()) == 2
    assert list((tmp_path / "csv").rglob("metrics.csv"))


def stacked_problem(seed=0):
    """A multi-fidelity solution map (``StackedMLP``, which has ``get_alpha_loss``) fitted to ``x = (a, p)``."""
    torch.manual_seed(seed)
    net = blocks.StackedMLP(2, 2, nonlin=torch.nn.ReLU, h_sf_size=[8], n_stacked_mf_layers=2,
                            h_linear_sizes=[4], h_nonlinear_sizes=[8])
    x, a, p = variable("x"), variable("a"), variable("p")
    objective = ((x[:, [0]] - a) ** 2 + (x[:, [1]] - p) ** 2).minimize(name="fit")
    return Problem([Node(net, ["a", "p"], ["x"], name="stacked")], PenaltyLoss([objective], []))


def test_multi_fidelity_adds_the_alpha_loss_as_the_classic_trainer_does():
    classic_problem = stacked_problem()
    lit_problem = copy.deepcopy(classic_problem)
    epoch_losses = []

    class Keep(Callback):
        def begin_epoch(self, trainer, output):
            epoch_losses.append(float(output["mean_train_loss"]))

    train_classic(classic_problem, epochs=2, callback=Keep(), multi_fidelity=True)
    lit = train_lit(lit_problem, epochs=2, multi_fidelity=True, callback=Keep())

    classic_losses, lit_losses = epoch_losses[:2], epoch_losses[2:]
    assert lit_losses == pytest.approx(classic_losses, rel=1e-5)
    assert float(lit.callback_metrics["train_loss"]) == pytest.approx(classic_losses[-1], rel=1e-5)
    for name, value in classic_problem.state_dict().items():
        torch.testing.assert_close(lit_problem.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_multi_fidelity_without_a_multi_fidelity_node_is_refused():
    with pytest.raises(ValueError, match="get_alpha_loss"):
        LitTrainer(epochs=1, multi_fidelity=True, **QUIET).fit(penalty_problem(), full_batch_setup)


class EpochCounter(Callback):
    """A classic callback counting the epochs it sees."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def end_epoch(self, trainer, output):
        self.epochs += 1


def test_eval_mode_max_selects_and_stops_on_the_highest_metric_as_the_classic_trainer_does(tmp_path):
    # The dev loss falls every epoch, so with eval_mode='max' the first epoch stays the best and
    # patience ends both runs after the same number of epochs.
    classic_problem = penalty_problem()
    lit_problem = copy.deepcopy(classic_problem)
    classic_counter, lit_counter = EpochCounter(), EpochCounter()
    classic = train_classic(classic_problem, epochs=10, callback=classic_counter, patience=1, warmup=0,
                            eval_mode="max")
    lit = train_lit(lit_problem, epochs=10, callback=lit_counter, patience=2, warmup=1, eval_mode="max",
                    save_weights=True, weight_path=str(tmp_path), weight_name="best")

    assert lit_counter.epochs == classic_counter.epochs == 3
    assert lit.checkpoint_callback.best_model_score == pytest.approx(classic.best_devloss, rel=1e-5)
    assert torch.load(tmp_path / "best.ckpt", weights_only=True)["epoch"] == 0
    for name, value in classic_problem.state_dict().items():
        torch.testing.assert_close(lit_problem.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_an_unknown_eval_mode_is_refused():
    with pytest.raises(ValueError, match="eval_mode must be 'min' or 'max'"):
        LitTrainer(eval_mode="maximum")


@pytest.mark.parametrize("make_scheduler", [
    lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),
    lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=0.2),
], ids=["StepLR", "ReduceLROnPlateau"])
def test_a_learning_rate_scheduler_is_stepped_once_per_epoch_as_the_classic_trainer_steps_it(make_scheduler):
    classic_problem = penalty_problem()
    lit_problem = copy.deepcopy(classic_problem)
    classic_optimizer = torch.optim.Adam(classic_problem.parameters(), lr=0.01)
    lit_optimizer = torch.optim.Adam(lit_problem.parameters(), lr=0.01)
    train_classic(classic_problem, epochs=4, optimizer=classic_optimizer, eval_metric="train_loss",
                  lr_scheduler=make_scheduler(classic_optimizer))
    train_lit(lit_problem, epochs=4, custom_optimizer=lit_optimizer, eval_metric="train_loss",
              lr_scheduler=make_scheduler(lit_optimizer))

    final_lr = classic_optimizer.param_groups[0]["lr"]
    assert final_lr < 0.01 and lit_optimizer.param_groups[0]["lr"] == pytest.approx(final_lr)
    for name, value in classic_problem.state_dict().items():
        torch.testing.assert_close(lit_problem.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_lr_scheduler_true_builds_the_classic_reduce_on_plateau_on_the_trainers_optimizer():
    lit = train_lit(penalty_problem(), epochs=1, lr_scheduler=True)
    config = lit.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (config.scheduler.factor, config.scheduler.patience, config.monitor) == (0.5, 100, "train_loss")
    assert config.scheduler.optimizer is lit.optimizers[0]


def test_a_scheduler_on_another_optimizer_or_beside_a_configure_optimizers_hook_is_refused():
    problem = penalty_problem()
    optimizer = torch.optim.Adam(problem.parameters())
    foreign = torch.optim.lr_scheduler.StepLR(torch.optim.Adam(problem.parameters()), step_size=1)
    with pytest.raises(ValueError, match="built on the custom_optimizer"):
        LitTrainer(custom_optimizer=optimizer, lr_scheduler=foreign)
    with pytest.raises(ValueError, match="built on the custom_optimizer"):
        LitTrainer(lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1))
    with pytest.raises(ValueError, match="configure_optimizers hook"):
        LitTrainer(lr_scheduler=True, custom_hooks={"configure_optimizers": lambda self: optimizer})
