"""Tests for the classic training loop `neuromancer.trainers.trainer.Trainer`."""
import logging
import math
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from neuromancer.callbacks import Callback
from neuromancer.constraint import Objective, variable
from neuromancer.dataset import DictDataset
from neuromancer.loss import PenaltyLoss
from neuromancer.problem import Problem
from neuromancer.system import Node
from neuromancer.trainer import Trainer, move_batch_to_device

HOOKS = ("begin_train", "begin_epoch", "end_batch", "begin_eval", "end_eval", "end_epoch", "end_train",
         "begin_test", "end_test")


def make_problem(seed=0, grad_inference=False):
    """Fit x = w*p + b to the target x = 2*p + 1 in the mean-squared sense."""
    torch.manual_seed(seed)
    node = Node(torch.nn.Linear(1, 1), ["p"], ["x"], name="line")
    x, p = variable("x"), variable("p")
    objective = Objective((x - 2.0 * p - 1.0) ** 2, name="fit")
    return Problem([node], PenaltyLoss([objective], []), grad_inference=grad_inference)


def make_loader(name, n=12, batch_size=4, seed=1):
    generator = torch.Generator().manual_seed(seed)
    dataset = DictDataset({"p": torch.rand(n, 1, generator=generator)}, name=name)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate_fn)


def loader_mean(problem, loader, metric):
    """The metric averaged over the loader's batches, computed directly with the problem."""
    with torch.no_grad():
        values = [problem(batch)[metric] for batch in loader]
    return float(torch.stack(values).mean())


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder(Callback):
    """Records every hook call, the dev loss and the weights seen at the end of each evaluation."""

    def __init__(self):
        super().__init__()
        self.calls, self.dev_losses, self.states, self.grad_enabled = [], [], [], []

    def begin_train(self, trainer):
        self.calls.append("begin_train")

    def end_batch(self, trainer, output):
        self.calls.append("end_batch")

    def begin_epoch(self, trainer, output):
        self.calls.append("begin_epoch")

    def begin_eval(self, trainer, output):
        self.calls.append("begin_eval")
        self.grad_enabled.append(torch.is_grad_enabled())

    def end_eval(self, trainer, output):
        self.calls.append("end_eval")
        if "dev_loss" in output:
            self.dev_losses.append(float(output["dev_loss"]))
        self.states.append(snapshot(trainer.model))

    def end_epoch(self, trainer, output):
        self.calls.append("end_epoch")

    def end_train(self, trainer, output):
        self.calls.append("end_train")

    def begin_test(self, trainer):
        self.calls.append("begin_test")

    def end_test(self, trainer, output):
        self.calls.append("end_test")


class PerturbFrom(Recorder):
    """Pushes the bias away from the optimum after the training pass of every epoch >= start."""

    def __init__(self, start, amount=1.0):
        super().__init__()
        self.start, self.amount = start, amount

    def begin_epoch(self, trainer, output):
        super().begin_epoch(trainer, output)
        if trainer.current_epoch >= self.start:
            with torch.no_grad():
                trainer.model.nodes[0].callable.bias.add_(self.amount)


def frozen_trainer(**kwargs):
    """A trainer whose optimizer cannot move the weights, so the dev loss is the same every epoch."""
    problem = make_problem()
    optimizer = torch.optim.SGD(problem.parameters(), lr=0.0)
    return Trainer(problem, make_loader("train"), make_loader("dev", seed=2), optimizer=optimizer, **kwargs)


def test_training_reduces_loss_and_returns_the_loaded_best_state():
    problem = make_problem()
    train, dev = make_loader("train"), make_loader("dev", seed=2)
    before = loader_mean(problem, dev, "dev_loss")
    trainer = Trainer(problem, train, dev, epochs=40, patience=40)
    best = trainer.train()
    after = loader_mean(problem, dev, "dev_loss")
    assert after < 0.1 * before
    assert same_state(best, problem.state_dict())
    assert trainer.best_devloss == pytest.approx(after, rel=1e-5)
    assert trainer.stop_reason == "epochs" and trainer.current_epoch == 40


def test_default_optimizer_is_upstream_adam():
    problem = make_problem()
    trainer = Trainer(problem, make_loader("train"), make_loader("dev"))
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    group = trainer.optimizer.param_groups[0]
    assert group["lr"] == 0.01 and group["betas"] == (0.0, 0.9)
    assert {id(p) for p in group["params"]} == {id(p) for p in problem.parameters()}


def test_best_weights_are_restored_when_dev_loss_rises_late():
    recorder = PerturbFrom(start=6, amount=5.0)
    problem = make_problem()
    dev = make_loader("dev", seed=2)
    trainer = Trainer(problem, make_loader("train"), dev, callback=recorder, epochs=10, patience=None)
    trainer.train()
    best_epoch = min(range(len(recorder.dev_losses)), key=recorder.dev_losses.__getitem__)
    assert best_epoch <= 5
    assert recorder.dev_losses[-1] > recorder.dev_losses[best_epoch]
    assert same_state(problem.state_dict(), recorder.states[best_epoch])
    assert loader_mean(problem, dev, "dev_loss") == pytest.approx(recorder.dev_losses[best_epoch], rel=1e-6)


def test_eval_mode_max_keeps_the_highest_metric():
    recorder = Recorder()
    problem = make_problem()
    trainer = Trainer(problem, make_loader("train"), make_loader("dev", seed=2), callback=recorder,
                      epochs=5, patience=None, eval_mode="max")
    trainer.train()
    best_epoch = max(range(5), key=recorder.dev_losses.__getitem__)
    assert trainer.best_devloss == pytest.approx(max(recorder.dev_losses))
    assert same_state(problem.state_dict(), recorder.states[best_epoch])


@pytest.mark.parametrize("patience, warmup", [(0, 0), (2, 0), (2, 3), (1, 5)])
def test_early_stopping_counts_epochs_after_warmup(patience, warmup):
    # With frozen weights epoch 0 is the only improvement; epochs with index > warmup count as
    # bad, and training stops once more than `patience` of them have accumulated.
    expected_epochs = warmup + patience + 2
    recorder = Recorder()
    trainer = frozen_trainer(callback=recorder, epochs=50, patience=patience, warmup=warmup)
    trainer.train()
    assert recorder.calls.count("end_epoch") == expected_epochs
    assert trainer.current_epoch == expected_epochs
    assert trainer.stop_reason == "early_stopping"


def test_patience_none_never_stops_early():
    trainer = frozen_trainer(epochs=12, patience=None)
    trainer.train()
    assert trainer.current_epoch == 12 and trainer.stop_reason == "epochs"


def test_second_train_call_continues_from_current_epoch():
    recorder = Recorder()
    trainer = Trainer(make_problem(), make_loader("train"), make_loader("dev"), callback=recorder,
                      epochs=3, patience=None)
    trainer.train()
    trainer.train()
    assert trainer.current_epoch == 6
    assert recorder.calls.count("end_epoch") == 6


def test_zero_epochs_returns_the_initial_weights():
    problem = make_problem()
    initial = snapshot(problem)
    trainer = Trainer(problem, make_loader("train"), make_loader("dev"), epochs=0)
    assert same_state(trainer.train(), initial)


def one_sgd_step(clip):
    """One SGD step (lr=1) on a single batch; returns the weight change and the raw gradient norm."""
    problem = make_problem()
    batch = next(iter(make_loader("train", batch_size=12)))
    loss = problem(batch)["train_loss"]
    grad_norm = float(torch.linalg.vector_norm(torch.cat(
        [g.flatten() for g in torch.autograd.grad(loss, list(problem.parameters()))])))
    before = torch.cat([p.detach().flatten().clone() for p in problem.parameters()])
    trainer = Trainer(problem, make_loader("train", batch_size=12), make_loader("dev"),
                      optimizer=torch.optim.SGD(problem.parameters(), lr=1.0), epochs=1, clip=clip)
    trainer.train()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    return float(torch.linalg.vector_norm(after - before)), grad_norm, trainer


def test_gradient_norm_is_clipped_at_clip():
    step, grad_norm, _ = one_sgd_step(clip=1e-3)
    assert grad_norm > 1e-2
    assert step == pytest.approx(1e-3, rel=1e-4)


def test_clip_none_takes_the_full_gradient_step():
    step, grad_norm, _ = one_sgd_step(clip=None)
    assert step == pytest.approx(grad_norm, rel=1e-5)


def test_callbacks_run_in_upstream_order_with_counts():
    recorder = Recorder()
    trainer = Trainer(make_problem(), make_loader("train", n=12, batch_size=4), make_loader("dev"),
                      make_loader("test"), callback=recorder, epochs=2, patience=None)
    best = trainer.train()
    epoch = ["end_batch"] * 3 + ["begin_epoch", "begin_eval", "end_eval", "end_epoch"]
    assert recorder.calls == ["begin_train", *epoch, *epoch, "end_train"]
    recorder.calls.clear()
    trainer.test(best)
    assert recorder.calls == ["begin_test", "end_test"]


def test_evaluation_runs_without_gradients_unless_grad_inference():
    for grad_inference in (False, True):
        recorder = Recorder()
        Trainer(make_problem(grad_inference=grad_inference), make_loader("train"), make_loader("dev"),
                callback=recorder, epochs=2).train()
        assert recorder.grad_enabled == [grad_inference, grad_inference]


def test_lr_scheduler_instance_is_stepped_once_per_epoch():
    problem = make_problem()
    optimizer = torch.optim.SGD(problem.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    Trainer(problem, make_loader("train"), make_loader("dev"), optimizer=optimizer, lr_scheduler=scheduler,
            epochs=3, patience=None).train()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)


def test_lr_scheduler_true_builds_upstream_reduce_on_plateau():
    trainer = frozen_trainer(lr_scheduler=True, epochs=1)
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert trainer.lr_scheduler.factor == 0.5 and trainer.lr_scheduler.patience == 100
    assert frozen_trainer().lr_scheduler is None


def test_epoch_output_holds_batch_means_of_train_and_dev_metrics():
    seen = {}

    class Keep(Callback):
        def end_epoch(self, trainer, output):
            seen.update(output)

    problem = make_problem()
    dev = make_loader("dev", n=10, batch_size=3, seed=2)
    optimizer = torch.optim.SGD(problem.parameters(), lr=0.0)
    trainer = Trainer(problem, make_loader("train"), dev, optimizer=optimizer, callback=Keep(), epochs=1)
    trainer.train()
    expected_dev = loader_mean(problem, dev, "dev_loss")
    assert float(seen["dev_loss"]) == pytest.approx(expected_dev, rel=1e-6)
    assert float(seen["mean_dev_loss"]) == pytest.approx(expected_dev, rel=1e-6)
    assert float(seen["mean_train_loss"]) == pytest.approx(loader_mean(problem, make_loader("train"), "train_loss"))


def test_test_returns_mean_metrics_of_every_split():
    problem = make_problem()
    train, dev, test = make_loader("train"), make_loader("dev", seed=2), make_loader("test", n=9, seed=3)
    trainer = Trainer(problem, train, dev, test, epochs=3)
    output = trainer.test(trainer.train())
    for loader, name in ((train, "train"), (dev, "dev"), (test, "test")):
        assert float(output[f"mean_{name}_loss"]) == pytest.approx(loader_mean(problem, loader, f"{name}_loss"))
    assert output["test_x"].shape == list(test)[-1]["p"].shape  # the last batch's outputs are kept


def test_test_skips_missing_loaders_and_evaluate_is_a_deprecated_alias():
    trainer = Trainer(make_problem(), make_loader("train"), make_loader("dev"), epochs=1)
    best = trainer.train()
    assert "mean_test_loss" not in trainer.test(best)
    with pytest.warns(DeprecationWarning, match="Trainer.test"):
        output = trainer.evaluate(best)
    assert {"mean_train_loss", "mean_dev_loss"} <= output.keys()


def test_loss_logger_receives_epoch_metrics_and_best_artifacts(tmp_path):
    from neuromancer.loggers import LossLogger

    recorder = Recorder()
    logger = LossLogger(savedir=str(tmp_path), verbosity=1, stdout=("train_loss", "dev_loss"))
    trainer = Trainer(make_problem(), make_loader("train"), make_loader("dev"), logger=logger,
                      callback=recorder, epochs=4, patience=None)
    trainer.test(trainer.train())
    losses = logger.get_losses()
    assert len(losses["train"]) == 4
    assert losses["dev"] == pytest.approx(recorder.dev_losses)
    assert (tmp_path / "best_model_state_dict.pth").exists()


def test_progress_is_logged_every_epoch_verbose_epochs(caplog):
    trainer = Trainer(make_problem(), make_loader("train"), make_loader("dev"), epochs=5, epoch_verbose=2,
                      patience=None)
    with caplog.at_level(logging.INFO, logger="neuromancer.trainers.trainer"):
        trainer.train()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch:")]
    assert [line.split()[1] for line in lines] == ["0", "2", "4"]
    assert all("train_loss" in line and "dev_loss" in line for line in lines)


def test_non_finite_loss_stops_and_keeps_finite_best_weights(caplog):
    class Poison(Recorder):
        def begin_epoch(self, trainer, output):
            super().begin_epoch(trainer, output)
            if trainer.current_epoch == 2:
                with torch.no_grad():
                    trainer.model.nodes[0].callable.weight.fill_(math.nan)

    recorder = Poison()
    problem = make_problem()
    trainer = Trainer(problem, make_loader("train"), make_loader("dev"), callback=recorder, epochs=10, patience=None)
    with caplog.at_level(logging.WARNING, logger="neuromancer.trainers.trainer"):
        trainer.train()
    assert trainer.stop_reason == "non_finite_loss"
    assert "end_train" in recorder.calls and recorder.calls.count("end_epoch") == 3
    assert all(torch.isfinite(v).all() for v in problem.state_dict().values())
    assert same_state(problem.state_dict(), recorder.states[1])
    assert any("epoch 3, step 0" in r.getMessage() and "train_loss" in r.getMessage() for r in caplog.records)


class AlphaLine(torch.nn.Linear):
    """A linear map carrying a fixed extra penalty, like a multi-fidelity network's alpha loss."""

    def get_alpha_loss(self):
        return torch.tensor(0.5)


def test_multi_fidelity_adds_the_alpha_loss_to_the_training_metric():
    seen = []

    class Keep(Callback):
        def begin_epoch(self, trainer, output):
            seen.append(float(output["mean_train_loss"]))

    torch.manual_seed(0)
    x, p = variable("x"), variable("p")
    problem = Problem([Node(AlphaLine(1, 1), ["p"], ["x"])], PenaltyLoss([Objective((x - p) ** 2)], []))
    train = make_loader("train")
    plain = loader_mean(problem, train, "train_loss")
    Trainer(problem, train, make_loader("dev"), optimizer=torch.optim.SGD(problem.parameters(), lr=0.0),
            callback=Keep(), epochs=1, multi_fidelity=True).train()
    assert seen[0] == pytest.approx(plain + 0.5, rel=1e-6)


def test_multi_fidelity_without_alpha_nodes_is_rejected():
    with pytest.raises(ValueError, match="get_alpha_loss"):
        Trainer(make_problem(), make_loader("train"), make_loader("dev"), multi_fidelity=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"eval_mode": "maximum"}, "eval_mode='maximum'"),
    ({"epochs": -1}, "epochs=-1"),
    ({"patience": 1.5}, "patience=1.5"),
    ({"epoch_verbose": 0}, "epoch_verbose=0"),
    ({"clip": 0.0}, "clip=0.0"),
])
def test_invalid_settings_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(make_problem(), make_loader("train"), make_loader("dev"), **kwargs)


def test_dev_eval_metric_without_dev_data_is_rejected_and_train_metric_works():
    with pytest.raises(ValueError, match="dev_data, which is None.*eval_metric='train_loss'"):
        Trainer(make_problem(), make_loader("train"))
    trainer = Trainer(make_problem(), make_loader("train"), eval_metric="train_loss", epochs=3)
    trainer.train()
    assert math.isfinite(trainer.best_devloss)


def test_without_dev_data_a_dev_metric_named_like_the_train_metric_selects_on_the_train_split():
    # Upstream's PINN tutorials pass dev_metric='train_loss' and eval_metric='train_loss' with no dev_data.
    trainer = Trainer(make_problem(), make_loader("train"), dev_metric="train_loss", eval_metric="train_loss",
                      epochs=2)
    trainer.train()
    assert math.isfinite(trainer.best_devloss)


def test_monitor_metric_is_another_name_for_eval_metric():
    trainer = Trainer(make_problem(), make_loader("train"), monitor_metric="train_loss", epochs=2)
    assert trainer.eval_metric == "train_loss"
    trainer.train()
    assert math.isfinite(trainer.best_devloss)
    same = Trainer(make_problem(), make_loader("train"), eval_metric="train_loss", monitor_metric="train_loss")
    assert same.eval_metric == "train_loss"


@pytest.mark.parametrize("eval_metric", ["dev_loss", "train_loss"])
def test_eval_metric_and_monitor_metric_that_differ_are_rejected(eval_metric):
    with pytest.raises(ValueError, match=f"eval_metric='{eval_metric}' and monitor_metric='mean_dev_loss'"):
        Trainer(make_problem(), make_loader("train"), make_loader("dev"), eval_metric=eval_metric,
                monitor_metric="mean_dev_loss")


def test_unknown_eval_metric_lists_available_metrics():
    trainer = Trainer(make_problem(), make_loader("train"), make_loader("dev"), eval_metric="dev_accuracy")
    with pytest.raises(KeyError, match="eval_metric='dev_accuracy'.*'dev_loss'"):
        trainer.train()


def test_non_scalar_eval_metric_is_rejected():
    trainer = Trainer(make_problem(), make_loader("train"), make_loader("dev"), eval_metric="dev_x")
    with pytest.raises(ValueError, match="eval_metric='dev_x' must be a scalar"):
        trainer.train()


def test_batches_without_the_train_name_raise_key_error():
    dataset = DictDataset({"p": torch.rand(8, 1)}, name="data")
    loader = DataLoader(dataset, batch_size=4, collate_fn=dataset.collate_fn)
    trainer = Trainer(make_problem(), loader, make_loader("dev"))
    with pytest.raises(KeyError, match="train_metric='train_loss'.*'data_loss'.*name='train'"):
        trainer.train()


def test_non_iterable_train_data_raises_type_error():
    with pytest.raises(TypeError, match="train_data must be an iterable"):
        Trainer(make_problem(), 42, make_loader("dev"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_moves_problem_and_batches():
    problem = make_problem()
    trainer = Trainer(problem, make_loader("train"), make_loader("dev"), make_loader("test"), epochs=3, device="cuda")
    best = trainer.train()
    assert all(v.device.type == "cuda" for v in best.values())
    assert next(problem.parameters()).device.type == "cuda"
    assert trainer.test(best)["mean_test_loss"].device.type == "cuda"


def test_move_batch_to_device_moves_tensors_and_keeps_the_rest():
    batch = {"p": torch.ones(2, 1), "name": "train", "sizes": [1, 2]}
    moved = move_batch_to_device(batch, "meta")
    assert moved["p"].device.type == "meta" and batch["p"].device.type == "cpu"
    assert moved["name"] == "train" and moved["sizes"] is batch["sizes"]


def test_import_does_not_load_lightning():
    code = "import sys, neuromancer.trainer, neuromancer.trainers; print('lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_lit_trainer_is_resolved_lazily_from_the_lightning_module():
    import neuromancer.trainer as trainer_module
    from neuromancer.trainers.lightning import LitTrainer

    assert trainer_module.LitTrainer is LitTrainer
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = trainer_module.Nope
