"""The data side of Lightning training: `LitDataModule` and the checks on what a data setup function returns.

A NeuroMANCER data setup function returns ``(train_data, dev_data, test_data, batch_size)``;
`validate_data_splits` and `validate_batch_size` check that result (`DictDataset` splits named
after their slot, a positive int batch size) with messages naming the fix, and `LitDataModule`
turns it into Lightning's train/dev/test loaders; the train loader shuffles with an
`EpochShuffleSampler`, whose order depends only on a seed saved in checkpoints and on the epoch.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, RandomSampler

from neuromancer.dataset import DictDataset
from neuromancer.exceptions import warn_lenient_input
from neuromancer.trainers.common import check_non_negative_int, hparam

__all__ = ["LitDataModule", "EpochShuffleSampler", "validate_data_splits", "validate_batch_size", "SPLITS"]

SPLITS = ("train", "dev", "test")


def _split_error(dataset: Any, slot: str) -> Exception | None:
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
    :param source: where it came from, for the message.
    :raises TypeError: not an integer (booleans included).
    :raises ValueError: not positive.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch size from {source} must be a positive int, got {batch_size!r} "
                        f"({type(batch_size).__name__}).")
    if batch_size <= 0:
        raise ValueError(f"batch size from {source} must be a positive int, got {batch_size}.")
    return int(batch_size)


def validate_data_splits(result: Any) -> tuple[DictDataset, DictDataset | None, DictDataset | None, int]:
    """Check what a data setup function returned: ``(train_data, dev_data, test_data, batch_size)``.

    A test split given as a plain dict (upstream's tutorials return one) is set aside with a
    `neuromancer.exceptions.LenientInputWarning`: fit never reads it, and the split becomes None.

    :param result: the function's return value.
    :return: the three datasets (dev and test may be None) and the batch size.
    :raises ValueError: not four items, a dataset named other than its slot, an empty dataset, a
        missing train split, or a batch size that is not positive.
    :raises TypeError: a split that is not a `DictDataset`, or a batch size that is not an int.
    """
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        got = f"{len(result)} items" if isinstance(result, (tuple, list)) else type(result).__name__
        raise ValueError("data_setup_function must return (train_data, dev_data, test_data, batch_size); "
                         f"it returned {got}.")
    test_data = result[2]
    if isinstance(test_data, Mapping):
        warn_lenient_input("data_setup_function returned test_data as a dict, not a DictDataset; fit does not "
                           "use the test split, so it is set aside, as upstream 1.5 does. Return "
                           "DictDataset(test_dict, name='test') to evaluate it with LitTrainer.test.")
        test_data = None
    for dataset, slot in zip((result[0], result[1], test_data), SPLITS, strict=True):
        error = _split_error(dataset, slot)
        if error is not None:
            raise error
    return result[0], result[1], test_data, validate_batch_size(result[3])


class EpochShuffleSampler(RandomSampler):
    """A `RandomSampler` whose order of epoch ``e`` depends only on its seed and ``e``.

    Lightning calls ``set_epoch`` before every epoch (as it does for a ``DistributedSampler``);
    each iteration then draws its permutation from a generator seeded with ``seed + epoch``. So
    an epoch's order is the same however many times Lightning creates that epoch's iterator
    (versions differ there when a run resumes) and whether the run was resumed from a checkpoint
    or not; nothing else that draws random numbers changes it. Used outside Lightning without
    ``set_epoch``, every epoch has the same order. Being a RandomSampler, Lightning recognises it
    as shuffling and puts its own ``DistributedSampler`` in its place on multi-process strategies.

    :param data_source: the dataset to sample indices of.
    :param seed: the seed of the order of epoch 0.
    """

    def __init__(self, data_source: Any, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator())
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the order of epoch ``epoch`` from the next iteration on."""
        self.epoch = epoch

    def __iter__(self) -> Any:
        self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


class LitDataModule(pl.LightningDataModule):
    """A LightningDataModule built from a NeuroMANCER data setup function.

    ``setup()`` calls ``data_setup_function(**kwargs)`` once per process and checks that it
    returned ``(train_data, dev_data, test_data, batch_size)`` with `DictDataset` splits named
    'train', 'dev', 'test' (dev and test may be None). Loaders fetch a whole batch at once through
    the dataset's ``__getitems__`` and finish it with the dataset's own ``collate_fn``; only the
    train loader shuffles, with an `EpochShuffleSampler` whose seed is drawn from torch's global
    generator when the data is set up (so ``seed_everything`` makes it repeatable) and saved in
    checkpoints (`state_dict`), so a resumed run draws the batches the uninterrupted run would
    have drawn, whatever else consumes random numbers.

    :param data_setup_function: returns ``(train_data, dev_data, test_data, batch_size)``.
    :param hparam_config: a mapping or a wandb config; a ``batch_size`` entry overrides the
        returned batch size.
    :param num_workers: loader worker processes.
    :param kwargs: passed to ``data_setup_function``.
    :raises TypeError: ``data_setup_function`` is not callable; see `validate_data_splits` for
        what ``setup`` raises.
    """

    def __init__(self, data_setup_function: Callable[..., Any], hparam_config: Any = None, *,
                 num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__()
        if not callable(data_setup_function):
            raise TypeError(f"data_setup_function must be callable, got {type(data_setup_function).__name__}.")
        check_non_negative_int(num_workers, "num_workers")
        self.data_setup_function = data_setup_function
        self.hparam_config = hparam_config
        self.num_workers = num_workers
        self.setup_kwargs = kwargs
        self.train_data: DictDataset | None = None
        self.dev_data: DictDataset | None = None
        self.test_data: DictDataset | None = None
        self.batch_size: int | None = None
        self.shuffle_seed: int | None = None

    def setup(self, stage: str | None = None) -> None:
        """Call the data setup function (once per process) and validate its result.

        :param stage: Lightning's stage; every stage shares the same data.
        """
        if self.train_data is not None:
            return
        train_data, dev_data, test_data, batch_size = validate_data_splits(
            self.data_setup_function(**self.setup_kwargs))
        swept = hparam(self.hparam_config, "batch_size")
        self.batch_size = batch_size if swept is None else validate_batch_size(swept, "hparam_config")
        self.train_data, self.dev_data, self.test_data = train_data, dev_data, test_data
        self.shuffle_seed = int(torch.randint(0, 2 ** 62, ()))

    def state_dict(self) -> dict[str, Any]:
        """The shuffling seed, for checkpoints (empty before `setup`)."""
        return {} if self.shuffle_seed is None else {"shuffle_seed": self.shuffle_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Shuffle as the checkpointed run did."""
        if "shuffle_seed" in state_dict:
            self.shuffle_seed = int(state_dict["shuffle_seed"])

    def train_dataloader(self) -> DataLoader:
        """Shuffled loader over the train split.

        :raises RuntimeError: `setup` has not run yet.
        """
        if self.train_data is None:
            raise RuntimeError("the data is not set up yet; call setup() before asking for a loader.")
        return self._loader(self.train_data, shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
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
        # The shuffling sampler's generator also seeds the worker processes, so no loader draws from
        # torch's global generator.
        sampler = EpochShuffleSampler(dataset, self.shuffle_seed or 0) if shuffle else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=dataset.collate_fn,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          generator=None if sampler is None else sampler.generator)
