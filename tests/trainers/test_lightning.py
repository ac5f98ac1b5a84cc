"""LitTrainer: best weights, checkpoints, early stopping, optimisers, clipping and multi-process runs.

Most tests train the one-weight problem of `ddp_script` whose SGD trajectory is known in closed
form, so the weights a run must end with are computed independently of the trainer.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from neuromancer.dataset import DictDataset
from neuromancer.exceptions import LenientInputWarning
from neuromancer.trainers.lightning import LitTrainer

# The helpers live beside this file in modules that spawned DDP workers must import by name.
sys.path.insert(0, str(Path(__file__).parent))
from ddp_script import data_setup, expected_trajectory, scalar_problem, split, weight  # noqa: E402
from lit_helpers import QUIET, sgd_trainer  # noqa: E402

# Every test runs in its own directory, where lightning_logs/ and checkpoints land.
pytestmark = pytest.mark.usefixtures("in_tmp_path")


class EpochRecorder(pl.Callback):
    """Record the weight and the dev loss at the end of every training epoch."""

    def __init__(self):
        self.weights, self.dev_losses = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights.append(weight(pl_module.problem))
        self.dev_losses.append(float(trainer.callback_metrics.get("dev_loss", math.nan)))


def test_problem_holds_best_weights_when_dev_loss_rises_at_the_end(tmp_path):
    problem, recorder = scalar_problem(), EpochRecorder()
    trainer = sgd_trainer(problem, epochs=6, callbacks=[recorder])
    trainer.fit(problem, data_setup, nsim=8, batch_size=8)

    weights, dev_losses = expected_trajectory(epochs=6, steps_per_epoch=1, lr=0.1)
    best = min(range(6), key=dev_losses.__getitem__)
    assert dev_losses[-1] > dev_losses[best]
    assert recorder.weights == pytest.approx(weights, rel=1e-5)
    assert weight(problem) == pytest.approx(weights[best], rel=1e-5)
    assert trainer.get_weights()["nodes.0.callable.w"].item() == pytest.approx(weights[best], rel=1e-5)
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == [f"epoch={best}-step={best + 1}.ckpt", "last.ckpt"]


def test_best_weights_are_restored_without_saving_weights(tmp_path):
    problem = scalar_problem()
    sgd_trainer(problem, epochs=5, save_weights=False).fit(problem, data_setup)
    weights, dev_losses = expected_trajectory(epochs=5, steps_per_epoch=1, lr=0.1)
    assert weight(problem) == pytest.approx(weights[min(range(5), key=dev_losses.__getitem__)], rel=1e-5)
    assert list(tmp_path.glob("**/*.ckpt")) == []


def test_weight_name_and_path_name_the_checkpoint_which_loads_into_a_fresh_problem(tmp_path):
    from neuromancer.utils import load_state_dict_lightning

    problem = scalar_problem()
    sgd_trainer(problem, epochs=4, weight_path=str(tmp_path / "weights"), weight_name="best").fit(problem, data_setup)
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["best.ckpt", "last.ckpt"]

    fresh = scalar_problem(w0=5.0)
    load_state_dict_lightning(fresh, tmp_path / "weights" / "best.ckpt")
    assert weight(fresh) == weight(problem)


def test_the_guides_save_and_load_snippet_runs_as_written(tmp_path):
    from neuromancer.constraint import variable
    from neuromancer.loss import PenaltyLoss
    from neuromancer.modules import blocks
    from neuromancer.problem import Problem
    from neuromancer.system import Node
    from neuromancer.utils import load_state_dict_lightning

    def data_setup_function(nsim=64, batch_size=16):
        def sample(name):
            return DictDataset({"a": torch.rand(nsim, 1), "p": torch.rand(nsim, 1)}, name=name)
        return sample("train"), sample("dev"), None, batch_size

    def build():
        x, p = variable("x"), variable("p")
        loss = PenaltyLoss([((x - p) ** 2).minimize(name="obj")], [10.0 * (x >= 0.0)])
        return Problem([Node(blocks.MLP(2, 1, hsizes=[8]), ["a", "p"], ["x"], name="map")], loss)

    torch.manual_seed(0)
    problem = build()
    optimizer = torch.optim.AdamW(problem.parameters(), lr=0.01)
    # The guide's line, with fewer epochs.
    trainer = LitTrainer(epochs=3, accelerator='cpu', custom_optimizer=optimizer, monitor_metric='dev_loss',
                         weight_name='test_weights')
    trainer.fit(problem, data_setup_function)
    assert (tmp_path / "test_weights.ckpt").is_file()

    loaded = build()
    load_state_dict_lightning(loaded, 'test_weights.ckpt')
    batch = {"a": torch.rand(5, 1), "p": torch.rand(5, 1), "name": "test"}
    trained_output, loaded_output = problem(batch), loaded(batch)
    assert torch.equal(trained_output["test_x"], loaded_output["test_x"])
    assert torch.equal(trained_output["test_loss"], loaded_output["test_loss"])
    assert not torch.equal(build()(batch)["test_x"], trained_output["test_x"])


def test_monitor_metric_is_another_name_for_eval_metric():
    # Without dev data only the train metric can select the weights: monitor_metric must be what counts.
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=3, monitor_metric="train_loss")
    trainer.fit(problem, train_only)
    assert trainer.eval_metric == "train_loss"
    assert weight(problem) == pytest.approx(expected_trajectory(3, 1, 0.1)[0][-1])
    # A sweep rebuilds trainers from init_arguments, where the metric has its one name.
    assert trainer.init_arguments["eval_metric"] == "train_loss" and "monitor_metric" not in trainer.init_arguments
    assert LitTrainer(eval_metric="train_loss", monitor_metric="train_loss").eval_metric == "train_loss"


@pytest.mark.parametrize("eval_metric", ["dev_loss", "train_loss"])
def test_eval_metric_and_monitor_metric_that_differ_are_rejected(eval_metric):
    with pytest.raises(ValueError, match=f"eval_metric='{eval_metric}' and monitor_metric='dev_rmse'"):
        LitTrainer(eval_metric=eval_metric, monitor_metric="dev_rmse")
    with pytest.raises(TypeError, match="monitor_metric must be a str"):
        LitTrainer(monitor_metric=1)


def test_get_weights_before_fit_raises():
    with pytest.raises(RuntimeError, match="after fit"):
        LitTrainer(**QUIET, logger=False).get_weights()


def epochs_run(patience, warmup):
    """Number of epochs a run makes when the dev loss rises from the first epoch on."""
    problem, recorder = scalar_problem(w0=0.5), EpochRecorder()
    sgd_trainer(problem, epochs=10, patience=patience, warmup=warmup, callbacks=[recorder]).fit(problem, data_setup)
    return len(recorder.weights), weight(problem)


def test_early_stopping_waits_patience_epochs_after_warmup():
    # From w = 0.5 the dev loss rises every epoch: epoch 0 is the best, every later epoch counts
    # against patience, except those inside the warmup.
    assert epochs_run(patience=2, warmup=0) == (1 + 2, pytest.approx(expected_trajectory(1, 1, 0.1, w0=0.5)[0][0]))
    count, w = epochs_run(patience=2, warmup=4)
    assert count == 4 + 2
    assert w == pytest.approx(expected_trajectory(1, 1, 0.1, w0=0.5)[0][0])


def test_custom_optimizer_is_used():
    problem = scalar_problem()
    optimizer = torch.optim.SGD(problem.parameters(), lr=0.25)
    trainer = LitTrainer(epochs=1, custom_optimizer=optimizer, logger=False, **QUIET)
    trainer.fit(problem, data_setup)
    assert trainer.optimizers == [optimizer]
    assert weight(problem) == pytest.approx(expected_trajectory(1, 1, 0.25)[0][0])


def test_default_optimizer_is_adam_with_upstream_settings():
    problem = scalar_problem()
    trainer = LitTrainer(epochs=1, logger=False, **QUIET)
    trainer.fit(problem, data_setup)
    (optimizer,) = trainer.optimizers
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 0.001 and optimizer.defaults["betas"] == (0.0, 0.9)
    # Adam's first step moves every weight by lr in the direction of descent.
    assert weight(problem) == pytest.approx(0.001, rel=1e-3)


def test_custom_optimizer_on_other_parameters_is_rejected():
    problem = scalar_problem()
    optimizer = torch.optim.SGD(scalar_problem().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not parameters of the problem"):
        LitTrainer(epochs=1, custom_optimizer=optimizer, logger=False, **QUIET).fit(problem, data_setup)


@pytest.mark.parametrize("clip, expected", [(0.01, 0.01), (None, 2.0)])
def test_gradients_are_clipped_by_norm(clip, expected):
    # SGD with lr=1 from w=0: the gradient is 2 (w - 1) = -2, so one step lands on w = 2 unless
    # its norm is clipped to `clip`.
    problem = scalar_problem()
    sgd_trainer(problem, lr=1.0, epochs=1, clip=clip).fit(problem, data_setup)
    assert weight(problem) == pytest.approx(expected)


def test_custom_training_step_replaces_the_default_step():
    calls = []

    def toward_three(model, batch):
        calls.append(batch["name"])
        return ((model.problem(batch)["train_x"] - 3.0) ** 2).mean()

    problem = scalar_problem()
    sgd_trainer(problem, epochs=1, custom_training_step=toward_three, eval_metric="train_loss").fit(problem, data_setup)
    assert calls == ["train"]
    assert weight(problem) == pytest.approx(0.0 - 0.1 * 2 * (0.0 - 3.0))


def manual_step(model, batch):
    """Manual optimisation: one SGD step on the train loss, with the gradient norm clipped at 0.01."""
    optimizer = model.optimizers()
    loss = model.problem(batch)["train_loss"]
    optimizer.zero_grad()
    model.manual_backward(loss)
    model.clip_gradients(optimizer, gradient_clip_val=0.01, gradient_clip_algorithm="norm")
    optimizer.step()
    return loss


def test_manual_optimisation_leaves_stepping_and_clipping_to_the_custom_step():
    problem = scalar_problem()
    trainer = sgd_trainer(problem, lr=1.0, epochs=1, automatic_optimization=False, custom_training_step=manual_step)
    trainer.fit(problem, data_setup)
    assert trainer.gradient_clip_val is None
    assert weight(problem) == pytest.approx(0.01)


def test_manual_optimisation_needs_a_custom_step():
    with pytest.raises(ValueError, match="custom_training_step"):
        LitTrainer(automatic_optimization=False)


def test_custom_hooks_are_bound_and_configure_optimizers_result_is_used():
    epochs_seen, train_means = [], []

    def on_train_epoch_end(self):
        epochs_seen.append(self.current_epoch)
        train_means.append(float(self.trainer.callback_metrics["train_loss"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)

    def validation_step(self, batch, batch_idx):
        self.log("dev_loss", self.problem(batch)["dev_loss"] * 10.0, batch_size=len(batch["a"]))

    problem = scalar_problem()
    trainer = LitTrainer(epochs=2, logger=False, **QUIET, custom_hooks={
        "on_train_epoch_end": on_train_epoch_end, "configure_optimizers": configure_optimizers,
        "validation_step": validation_step})
    trainer.fit(problem, data_setup)
    weights, dev_losses = expected_trajectory(2, 1, 0.2)
    assert epochs_seen == [0, 1]
    # A custom epoch-end hook runs after LitProblem has logged the epoch's mean (taken before each step).
    assert train_means == pytest.approx([1.0, (weights[0] - 1.0) ** 2])
    assert isinstance(trainer.optimizers[0], torch.optim.SGD)
    assert weight(problem) == pytest.approx(weights[min(range(2), key=dev_losses.__getitem__)])
    assert float(trainer.callback_metrics["dev_loss"]) == pytest.approx(10.0 * dev_losses[1], rel=1e-5)


def test_apply_custom_hooks_binds_onto_a_module():
    from neuromancer.trainers.lightning import LitProblem

    def on_fit_start(self):
        return "bound"

    module = LitProblem(scalar_problem())
    LitTrainer(custom_hooks={"on_fit_start": on_fit_start}, logger=False, **QUIET).apply_custom_hooks(module)
    assert module.on_fit_start() == "bound"


def test_custom_hook_with_the_wrong_signature_names_the_expected_one():
    with pytest.raises(ValueError, match=r"signature \(self, batch, batch_idx\)"):
        LitTrainer(custom_hooks={"validation_step": lambda self, batch: None})
    with pytest.raises(ValueError, match=r"signature \(self\)"):
        LitTrainer(custom_hooks={"on_train_epoch_end": lambda: None})


def test_unknown_hook_name_is_rejected_with_a_suggestion():
    with pytest.raises(KeyError, match="on_train_epoch_end"):
        LitTrainer(custom_hooks={"on_train_epoch_ends": lambda self: None})


def test_fit_then_test_returns_the_test_metrics_of_the_best_weights():
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=5)
    trainer.fit(problem, data_setup)
    weights, dev_losses = expected_trajectory(5, 1, 0.1)
    best = weights[min(range(5), key=dev_losses.__getitem__)]
    assert trainer.test(verbose=False) == {"test_loss": pytest.approx((best - 0.25) ** 2, rel=1e-5)}


def test_test_takes_a_problem_and_data_without_fit():
    trainer = LitTrainer(logger=False, test_metric="test_loss", **QUIET)
    assert trainer.test(scalar_problem(w0=1.0), data_setup, verbose=False) == {"test_loss": pytest.approx(0.5625)}


def test_test_without_a_test_split_or_a_fit_raises():
    trainer = LitTrainer(logger=False, **QUIET)
    with pytest.raises(ValueError, match="call fit first"):
        trainer.test()
    with pytest.raises(ValueError, match="test_data=None"):
        trainer.test(scalar_problem(), data_setup, with_test=False)


def test_hparam_config_sets_learning_rate_and_batch_size():
    problem, recorder = scalar_problem(), EpochRecorder()
    trainer = sgd_trainer(problem, lr=0.1, epochs=1, hparam_config={"learning_rate": 0.05, "batch_size": 2},
                          callbacks=[recorder])
    trainer.fit(problem, data_setup, nsim=8, batch_size=8)
    assert trainer.datamodule.batch_size == 2
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.05
    assert weight(problem) == pytest.approx(expected_trajectory(1, steps_per_epoch=4, lr=0.05)[0][0])


def test_epoch_means_are_weighted_by_batch_size():
    # 10 samples in batches of 4, 4 and 2: each step's loss (w - 1)^2 is taken before its update.
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=1)
    trainer.fit(problem, data_setup, nsim=10, batch_size=4)
    before = [0.0] + expected_trajectory(3, 1, 0.1)[0]
    expected = (4 * (before[0] - 1) ** 2 + 4 * (before[1] - 1) ** 2 + 2 * (before[2] - 1) ** 2) / 10
    assert float(trainer.callback_metrics["train_loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(trainer.callback_metrics["dev_loss"]) == pytest.approx((before[3] - 0.5) ** 2, rel=1e-5)


def test_fit_passes_kwargs_to_the_data_setup_function():
    received = {}

    def setup(**kwargs):
        received.update(kwargs)
        return data_setup(nsim=kwargs["nsim"])

    trainer = LitTrainer(epochs=1, logger=False, **QUIET)
    trainer.fit(scalar_problem(), setup, nsim=12, extra="value")
    assert received == {"nsim": 12, "extra": "value"}
    assert len(trainer.datamodule.train_data) == 12


def train_only():
    return split("train", 8), None, None, 8


def test_training_without_dev_data_selects_on_the_train_metric():
    # The logged train loss of an epoch is taken before its step, so it falls every epoch.
    problem = scalar_problem()
    sgd_trainer(problem, epochs=3, eval_metric="train_loss").fit(problem, train_only)
    assert weight(problem) == pytest.approx(expected_trajectory(3, 1, 0.1)[0][-1])


def test_dev_eval_metric_without_dev_data_raises():
    with pytest.raises(ValueError, match="dev_data=None"):
        LitTrainer(epochs=1, logger=False, **QUIET).fit(scalar_problem(), train_only)


def test_without_dev_data_a_dev_metric_named_like_the_train_metric_selects_on_the_train_metric():
    problem = scalar_problem()
    sgd_trainer(problem, epochs=3, dev_metric="train_loss", eval_metric="train_loss").fit(problem, train_only)
    assert weight(problem) == pytest.approx(expected_trajectory(3, 1, 0.1)[0][-1])


def test_non_finite_loss_stops_training_and_keeps_the_best_weights(caplog):
    # The train loss turns NaN once w exceeds 0.55: in the 5th epoch (w = 0.59 after the 4th).
    def nan_past(model, batch):
        loss = model.problem(batch)["train_loss"]
        return loss + torch.where(model.problem(batch)["train_x"] > 0.55, math.nan, 0.0).mean()

    problem, recorder = scalar_problem(), EpochRecorder()
    sgd_trainer(problem, epochs=10, custom_training_step=nan_past, callbacks=[recorder]).fit(problem, data_setup)
    weights, _ = expected_trajectory(3, 1, 0.1)
    assert len(recorder.weights) == 5
    assert weight(problem) == pytest.approx(weights[2], rel=1e-5)
    assert "not finite" in caplog.text


def test_metrics_are_logged_under_the_chosen_names_with_tensorboard_by_default(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    problem = scalar_problem()
    trainer = LitTrainer(epochs=2, dev_metric="dev_rmse", eval_metric="dev_rmse", log_every_n_steps=1, **QUIET)
    trainer.fit(problem, data_setup, nsim=8, batch_size=4)
    (events,) = (tmp_path / "lightning_logs" / "version_0").glob("events.out.tfevents.*")
    tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"train_loss_step", "train_loss_epoch", "dev_rmse", "epoch"} <= set(tags)
    assert "dev_loss" not in tags


def test_a_logger_of_the_users_choice_receives_the_metrics(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    trainer = LitTrainer(epochs=2, logger=CSVLogger(tmp_path / "csv", name="run"), log_every_n_steps=1, **QUIET)
    trainer.fit(scalar_problem(), data_setup, nsim=8, batch_size=4)
    header = (tmp_path / "csv" / "run" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_step", "train_loss_epoch", "dev_loss"} <= set(header)


def test_profiler_writes_a_report(tmp_path):
    from lightning.pytorch.profilers import SimpleProfiler

    profiler = SimpleProfiler(dirpath=tmp_path, filename="report")
    LitTrainer(epochs=1, profiler=profiler, logger=False, **QUIET).fit(scalar_problem(), data_setup)
    (report,) = tmp_path.glob("*report*.txt")
    assert "training_step" in report.read_text()


def test_profiler_names_are_checked():
    from lightning.pytorch.profilers import SimpleProfiler

    assert isinstance(LitTrainer(profiler="simple", logger=False, **QUIET).profiler, SimpleProfiler)
    with pytest.raises(ValueError, match="profiler 'fast'"):
        LitTrainer(profiler="fast")


def test_no_autograd_graph_survives_a_step():
    from neuromancer.callbacks import Callback

    graphs = []

    class Inspect(Callback):
        def end_batch(self, trainer, output):
            graphs.append([k for k, v in output.items() if isinstance(v, torch.Tensor) and v.grad_fn is not None])
            graphs.append([k for k, v in trainer.callback_metrics.items() if v.grad_fn is not None])

    LitTrainer(epochs=1, callback=Inspect(), logger=False, **QUIET).fit(scalar_problem(), data_setup, batch_size=4)
    assert graphs == [[], [], [], []]


def test_neuromancer_callback_hooks_run_in_order_with_outputs():
    from neuromancer.callbacks import Callback

    calls = []

    class Record(Callback):
        def begin_train(self, trainer):
            calls.append(("begin_train",))

        def end_batch(self, trainer, output):
            calls.append(("end_batch", float(output["train_loss"]), "mean_train_loss" in output))

        def begin_epoch(self, trainer, output):
            calls.append(("begin_epoch", float(output["mean_train_loss"]), "dev_loss" in output))

        def begin_eval(self, trainer, output):
            calls.append(("begin_eval", float(output["mean_dev_loss"]), float(output["train_x"][0])))

        def end_eval(self, trainer, output):
            calls.append(("end_eval", "dev_x" in output))

        def end_epoch(self, trainer, output):
            calls.append(("end_epoch", trainer.current_epoch))

        def end_train(self, trainer, output):
            calls.append(("end_train", float(output["mean_dev_loss"])))

        def begin_test(self, trainer):
            calls.append(("begin_test",))

        def end_test(self, trainer, output):
            calls.append(("end_test", float(output["mean_test_loss"])))

    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=2, callback=Record())
    trainer.fit(problem, data_setup)
    trainer.test(verbose=False)
    weights, dev_losses = expected_trajectory(2, 1, 0.1)
    train_losses = [(0.0 - 1.0) ** 2, (weights[0] - 1.0) ** 2]  # each computed before its step
    approx = pytest.approx
    assert calls == [
        ("begin_train",),
        ("end_batch", approx(train_losses[0]), False), ("begin_epoch", approx(train_losses[0]), False),
        ("begin_eval", approx(dev_losses[0]), approx(0.0)), ("end_eval", True), ("end_epoch", 0),
        ("end_batch", approx(train_losses[1]), False), ("begin_epoch", approx(train_losses[1]), False),
        ("begin_eval", approx(dev_losses[1]), approx(weights[0])), ("end_eval", True), ("end_epoch", 1),
        ("end_train", approx(dev_losses[1])), ("begin_test",),
        ("end_test", approx((weights[min(range(2), key=dev_losses.__getitem__)] - 0.25) ** 2)),
    ]


def test_callback_must_be_a_neuromancer_callback():
    with pytest.raises(TypeError, match="neuromancer.callbacks.Callback"):
        LitTrainer(callback=pl.Callback())


@pytest.mark.parametrize("result, error, match", [
    ((1, 2, 3), ValueError, "returned 3 items"),
    ((torch.ones(3), None, None, 2), TypeError, "DictDataset"),
    ((split("dev", 4), None, None, 2), ValueError, "train dataset is named 'dev'"),
    ((split("train", 4), split("test", 4), None, 2), ValueError, "name='dev'"),
    ((split("train", 4), None, None, 0), ValueError, "positive int, got 0"),
    ((split("train", 4), None, None, 2.5), TypeError, "positive int"),
    ((split("train", 4), None, None, True), TypeError, "positive int"),
])
def test_bad_data_setup_results_raise_clear_errors(result, error, match):
    trainer = LitTrainer(epochs=1, eval_metric="train_loss", logger=False, **QUIET)
    with pytest.raises(error, match=match):
        trainer.fit(scalar_problem(), lambda: result)


def test_a_test_split_given_as_a_dict_is_set_aside():
    def setup():
        return split("train", 4), split("dev", 4), {"a": torch.ones(1, 1), "name": "test"}, 4
    trainer = LitTrainer(epochs=1, logger=False, **QUIET)
    with pytest.warns(LenientInputWarning, match="test_data as a dict"):
        trainer.fit(scalar_problem(), setup)
    assert trainer.data_module.test_data is None
    with pytest.raises(ValueError, match="test_data=None"):
        trainer.test()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(eval_metric="val_loss"), ValueError, "eval_metric 'val_loss'"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(patience=-1), ValueError, "patience"),
    (dict(warmup=1.5), ValueError, "warmup"),
    (dict(clip=-1.0), ValueError, "clip"),
    (dict(custom_training_step=lambda batch: batch), ValueError, r"\(model, batch\)"),
    (dict(custom_hooks=[("on_fit_start", print)]), TypeError, "dict"),
])
def test_bad_trainer_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        LitTrainer(**kwargs)


def test_wrong_problem_and_missing_metric_raise_clear_errors():
    with pytest.raises(TypeError, match="nn.Module"):
        LitTrainer(epochs=1, logger=False, **QUIET).fit(lambda batch: batch, data_setup)
    with pytest.raises(KeyError, match="train_objective"):
        LitTrainer(epochs=1, train_metric="train_objective", eval_metric="dev_loss", logger=False,
                   **QUIET).fit(scalar_problem(), data_setup)


def test_grad_inference_problems_train_unless_inference_mode_is_forced_on():
    problem = scalar_problem()
    problem.grad_inference = True
    with pytest.raises(ValueError, match="inference_mode unset"):
        LitTrainer(epochs=1, logger=False, inference_mode=True, **QUIET).fit(problem, data_setup)
    LitTrainer(epochs=1, logger=False, **QUIET).fit(problem, data_setup)
    LitTrainer(epochs=1, logger=False, inference_mode=False, **QUIET).fit(problem, data_setup)


def test_extra_keywords_reach_the_lightning_trainer():
    trainer = LitTrainer(epochs=3, logger=False, num_sanity_val_steps=0, precision="64-true", **QUIET)
    assert trainer.max_epochs == 3 and trainer.precision == "64-true" and trainer.num_sanity_val_steps == 0


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes_ends_with_best_weights(tmp_path):
    problem = scalar_problem()
    trainer = sgd_trainer(problem, epochs=6, devices=2, strategy="ddp_spawn", weight_name="best")
    trainer.fit(problem, data_setup, nsim=16, batch_size=8)
    weights, dev_losses = expected_trajectory(6, steps_per_epoch=1, lr=0.1)
    assert weight(problem) == pytest.approx(weights[min(range(6), key=dev_losses.__getitem__)], rel=1e-5)
    assert trainer.get_weights()["nodes.0.callable.w"].item() == pytest.approx(weight(problem))
    assert Path(trainer.checkpoint_callback.best_model_path) == tmp_path / "best.ckpt"
    assert trainer.checkpoint_callback.best_model_score.item() == pytest.approx(min(dev_losses), rel=1e-5)


@pytest.mark.slow
def test_ddp_script_on_two_cpu_processes_ends_with_best_weights(tmp_path):
    script = Path(__file__).with_name("ddp_script.py")
    run = subprocess.run([sys.executable, str(script), "ddp", str(tmp_path / "out.json")], cwd=tmp_path,
                         timeout=240, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    weights, dev_losses = expected_trajectory(6, steps_per_epoch=1, lr=0.1)
    assert result["weight"] == pytest.approx(weights[min(range(6), key=dev_losses.__getitem__)], rel=1e-5)
    assert Path(result["best_path"]) == tmp_path / "best.ckpt"
    assert "sync_dist=True" not in run.stderr, "the epoch means are reduced across processes, so Lightning must not ask"


def test_the_shuffling_order_of_an_epoch_depends_only_on_the_seed_and_the_epoch():
    from neuromancer.trainers.lightning_data import EpochShuffleSampler

    sampler = EpochShuffleSampler(range(20), seed=7)
    first = list(sampler)
    torch.rand(5)  # other draws from torch's generator change nothing
    assert list(sampler) == first and sorted(first) == list(range(20))
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(20))
    resumed = EpochShuffleSampler(range(20), seed=7)
    resumed.set_epoch(1)
    assert list(resumed) == second
