"""The data side of Lightning training: `LitDataModule` and the checks on what a data setup function returns.

A NeuroMANCER data setup function returns ``(train_data, dev_data, test_data, batch_size)``;
`validate_data_splits` and `validate_batch_size` check that result (`DictDataset` splits named
after their slot, a positive int batch size) with messages naming the fix, and `LitDataModule`
turns it into Lightning's train/dev/test loaders, with a shuffling generator of its own that is
saved in checkpoints. `hparam` reads one entry (``learning_rate``, ``batch_size``) of a sweep's
hyperparameter config; it lives here, below both this module and `LitProblem`, so either can use it.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from neuromancer.dataset import DictDataset

__all__ = ["LitDataModule", "hparam", "validate_data_splits", "validate_batch_size", "SPLITS"]

SPLITS = ("train", "dev", "test")


def hparam(config: Any, key: str) -> Any:
    """Read ``key`` from a hyperparameter config (a mapping, a wandb config or a namespace).

    :param config: (mapping | object | None) the config; None reads as empty.
    :param key: (str) the entry to read, e.g. ``'learning_rate'`` or ``'batch_size'``.
    :return: the value, or None when the config has no such entry.
    """
    if config is None:
        return None
    if hasattr(config, "keys"):
        return config[key] if key in config else None
    return getattr(config, key, None)


def _split_error(dataset: Any, slot: str) -> Optional[Exception]:
    """The exception that ``dataset`` cannot fill split ``slot``, or None when it can."""
    if dataset is None:
        return ValueError("train_data is None; the train split is required.") if slot == "train" else None
    if not isinstance(dataset, DictDataset):
        return TypeError(f"{slot}_data must be a neuromancer.dataset.DictDataset (or None), "
                         f"got {type(dataset).__name__}.")
    if dataset.name != slot:
        return ValueError(f"the {slot} dataset is named {dataset.name!r}; create it with DictDataset(..., "
                          f"name={slot!r}) so the problem's outputs carry the '{slot}_' prefix the metrics use.")
    if len(dataset) == 0:
        return ValueError(f"the {slot} dataset is empty.")
    return None


def validate_batch_size(batch_size: Any, source: str = "data_setup_function") -> int:
    """Return ``batch_size`` as an int, or raise if it is not a positive integer.

    :param batch_size: the value to check.
    :param source: (str, default 'data_setup_function') where it came from, for the message.
    :raises TypeError: not an integer (booleans included).
    :raises ValueError: not positive.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch size from {source} must be a positive int, got {batch_size!r} "
                        f"({type(batch_size).__name__}).")
    if batch_size <= 0:
        raise ValueError(f"batch size from {source} must be a positive int, got {batch_size}.")
    return int(batch_size)


def validate_data_splits(result: Any) -> Tuple[DictDataset, Optional[DictDataset], Optional[DictDataset], int]:
    """Check what a data setup function returned: ``(train_data, dev_data, test_data, batch_size)``.

    :param result: the function's return value.
    :return: (tuple) the three datasets (dev and test may be None) and the batch size.
    :raises ValueError: not four items, a dataset named other than its slot, an empty dataset, a
        missing train split, or a batch size that is not positive.
    :raises TypeError: a split that is not a `DictDataset`, or a batch size that is not an int.
    """
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        got = f"{len(result)} items" if isinstance(result, (tuple, list)) else type(result).__name__
        raise ValueError("data_setup_function must return (train_data, dev_data, test_data, batch_size); "
                         f"it returned {got}.")
    for dataset, slot in zip(result[:3], SPLITS):
        error = _split_error(dataset, slot)
        if error is not None:
            raise error
    return result[0], result[1], result[2], validate_batch_size(result[3])


class LitDataModule(pl.LightningDataModule):
    """A LightningDataModule built from a NeuroMANCER data setup function.

    ``setup()`` calls ``data_setup_function(**kwargs)`` once per process and checks that it
    returned ``(train_data, dev_data, test_data, batch_size)`` with `DictDataset` splits named
    'train', 'dev', 'test' (dev and test may be None). Loaders fetch a whole batch at once through
    the dataset's ``__getitems__`` and finish it with the dataset's own ``collate_fn``; only the
    train loader shuffles. It shuffles with a generator of its own, seeded from torch's global
    generator when the data is set up (so ``seed_everything`` makes it repeatable) and saved in
    checkpoints (`state_dict`), so a resumed run draws the batches the uninterrupted run would
    have drawn, whatever else consumes random numbers. Unlike upstream 1.5.6, a wrongly named
    dataset raises an exception instead of calling ``sys.exit``.

    :param data_setup_function: (callable) returns ``(train_data, dev_data, test_data, batch_size)``.
    :param hparam_config: (mapping | wandb config | None) a ``batch_size`` entry overrides the
        returned batch size.
    :param num_workers: (int, keyword-only, default 0) loader worker processes.
    :param kwargs: passed to ``data_setup_function``.
    :raises TypeError: ``data_setup_function`` is not callable; see `validate_data_splits` for
        what ``setup`` raises.
    """

    def __init__(self, data_setup_function: Callable[..., Any], hparam_config: Any = None, *,
                 num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__()
        if not callable(data_setup_function):
            raise TypeError(f"data_setup_function must be callable, got {type(data_setup_function).__name__}.")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int, got {num_workers!r}.")
        self.data_setup_function = data_setup_function
        self.hparam_config = hparam_config
        self.num_workers = num_workers
        self.setup_kwargs = kwargs
        self.train_data: Optional[DictDataset] = None
        self.dev_data: Optional[DictDataset] = None
        self.test_data: Optional[DictDataset] = None
        self.batch_size: Optional[int] = None
        self.shuffle_generator: Optional[torch.Generator] = None

    def setup(self, stage: Optional[str] = None) -> None:
        """Call the data setup function (once per process) and validate its result.

        :param stage: (str | None) Lightning's stage; every stage shares the same data.
        """
        if self.train_data is not None:
            return
        train_data, dev_data, test_data, batch_size = validate_data_splits(
            self.data_setup_function(**self.setup_kwargs))
        swept = hparam(self.hparam_config, "batch_size")
        self.batch_size = batch_size if swept is None else validate_batch_size(swept, "hparam_config")
        self.train_data, self.dev_data, self.test_data = train_data, dev_data, test_data
        self.shuffle_generator = torch.Generator()
        self.shuffle_generator.manual_seed(int(torch.randint(0, 2 ** 62, ())))

    def state_dict(self) -> Dict[str, Any]:
        """The shuffling generator's state, for checkpoints (empty before `setup`)."""
        return {} if self.shuffle_generator is None else {"shuffle_generator": self.shuffle_generator.get_state()}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Continue shuffling where the checkpointed run stopped."""
        if "shuffle_generator" in state_dict:
            self.shuffle_generator = self.shuffle_generator or torch.Generator()
            self.shuffle_generator.set_state(state_dict["shuffle_generator"])

    def __getstate__(self) -> Dict[str, Any]:
        """Pickle the shuffling generator as bytes: torch cannot send a Generator to spawned processes."""
        state = self.__dict__.copy()
        generator = state.pop("shuffle_generator", None)
        state["shuffle_generator_bytes"] = None if generator is None else generator.get_state().numpy().tobytes()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Rebuild the shuffling generator from its pickled bytes."""
        state = dict(state)
        saved = state.pop("shuffle_generator_bytes", None)
        self.__dict__.update(state)
        self.shuffle_generator = None
        if saved is not None:
            self.shuffle_generator = torch.Generator()
            self.shuffle_generator.set_state(torch.frombuffer(bytearray(saved), dtype=torch.uint8))

    def train_dataloader(self) -> DataLoader:
        """Shuffled loader over the train split."""
        return self._loader(self.train_data, shuffle=True)

    def val_dataloader(self) -> Union[DataLoader, List[DataLoader]]:
        """Loader over the dev split (an empty list, meaning no validation, when there is none)."""
        return [] if self.dev_data is None else self._loader(self.dev_data, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Loader over the test split.

        :raises ValueError: the data setup function returned no test split.
        """
        if self.test_data is None:
            raise ValueError("data_setup_function returned test_data=None; return a DictDataset named 'test' "
                             "to evaluate the test split.")
        return self._loader(self.test_data, shuffle=False)

    def _loader(self, dataset: DictDataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, collate_fn=dataset.collate_fn,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          generator=self.shuffle_generator if shuffle else None)
