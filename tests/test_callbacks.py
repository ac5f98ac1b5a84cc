"""Tests for neuromancer.callbacks.Callback: the hooks exist, accept the Trainer's arguments, do nothing."""
import inspect

from neuromancer.callbacks import Callback

HOOKS_WITH_OUTPUT = ["end_batch", "begin_epoch", "begin_eval", "end_eval", "end_epoch", "end_train", "end_test"]
HOOKS_WITHOUT_OUTPUT = ["begin_train", "begin_test"]


def test_hooks_are_noops_that_leave_output_untouched():
    callback = Callback()
    output = {"train_loss": 1.0}
    for hook in HOOKS_WITH_OUTPUT:
        assert getattr(callback, hook)(object(), output) is None
        assert list(inspect.signature(getattr(callback, hook)).parameters) == ["trainer", "output"]
    for hook in HOOKS_WITHOUT_OUTPUT:
        assert getattr(callback, hook)(object()) is None
        assert list(inspect.signature(getattr(callback, hook)).parameters) == ["trainer"]
    assert output == {"train_loss": 1.0}


def test_subclass_overrides_only_what_it_needs():
    class Recorder(Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def end_epoch(self, trainer, output):
            self.epochs.append(output["epoch"])

    recorder = Recorder()
    for epoch in range(3):
        recorder.begin_epoch(None, {"epoch": epoch})
        recorder.end_epoch(None, {"epoch": epoch})
    assert recorder.epochs == [0, 1, 2]
