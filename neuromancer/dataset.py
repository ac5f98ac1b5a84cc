"""Datasets that turn tensors into the named batch dictionaries NeuroMANCER problems consume.

`DictDataset` holds equally long tensors under names and batches them into ``{key: tensor,
'name': split}`` dictionaries; the ``name`` ('train', 'dev', 'test') is what `Problem` prefixes its
outputs with. It fetches whole batches by tensor indexing (``__getitems__``), which torch's
DataLoader uses automatically, instead of stacking one sample at a time. `StaticDataset` and
`SequenceDataset` take numpy data (or tensors): the latter cuts time series into
``nsteps``-long past/future windows (``Yp``/``Yf`` for a series ``Y``) for system identification.
The normalisation, split and dataloader helpers prepare such data for training.
``neuromancer.dataset.LitDataModule`` resolves lazily to `neuromancer.trainers.lightning`, so
importing this module never imports Lightning.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate

from neuromancer._lazy import lazy_exports
from neuromancer.exceptions import warn_lenient_input

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

ArrayDict = dict[str, Any]
SequenceData = ArrayDict | list[ArrayDict]

__all__ = [
    "DictDataset", "SequenceDataset", "StaticDataset", "batch_tensor",
    "denormalize_01", "denormalize_11", "destandardize", "get_sequence_dataloaders",
    "get_static_dataloaders", "normalize_01", "normalize_11", "normalize_data",
    "split_sequence_data", "split_static_data", "standardize", "unbatch_tensor",
]


__getattr__, __dir__ = lazy_exports(__name__, {"LitDataModule": "neuromancer.trainers.lightning"})


class DictDataset(Dataset):
    """A dataset of named tensors sharing their first (sample) dimension.

    ``DictDataset({'x': x, 'p': p}, name='train')`` yields samples ``{'x': x[i], 'p': p[i]}``; used
    with ``DataLoader(ds, batch_size=..., collate_fn=ds.collate_fn)`` it yields batches
    ``{'x': x[idx], 'p': p[idx], 'name': 'train'}``.

    Numpy arrays are accepted, as upstream 1.5 accepts them: each becomes a tensor of the array's
    own dtype on the CPU (a float64 array gives float64 batches, as upstream's did), sharing the
    array's memory where torch can, and a `LenientInputWarning` names the keys converted. Pass
    tensors (``torch.as_tensor(array, dtype=torch.float32)``) to choose the dtype yourself.

    :param datadict: the data; every value a tensor (or numpy array) with the same first dim.
    :param name: the split's name, added to every batch as ``'name'``.
    :raises ValueError: ``datadict`` is empty or its tensors differ in length.
    :raises TypeError: a value is neither a torch.Tensor nor a numeric numpy array (the message
        names the key and its type).
    """

    def __init__(self, datadict: dict[str, torch.Tensor], name: str = "train") -> None:
        super().__init__()
        self.datadict = _tensors_from_arrays(dict(datadict), name)
        self.name = name
        self.length = self._validated_length(self.datadict)

    @staticmethod
    def _validated_length(datadict: dict[str, Any]) -> int:
        """Check the values and return the common number of samples."""
        if not datadict:
            raise ValueError("DictDataset needs at least one tensor, got an empty dict; pass e.g. "
                             "DictDataset({'x': torch.rand(100, 2)}).")
        for key, value in datadict.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"DictDataset value for key {key!r} is a {type(value).__name__}, not a "
                                f"torch.Tensor or numpy array; convert it, e.g. torch.as_tensor(value, "
                                f"dtype=torch.float32).")
            if value.dim() == 0:
                raise ValueError(f"DictDataset value for key {key!r} is a 0-d tensor; give one row "
                                 f"per sample (shape [nsamples, ...]).")
        lengths = {key: value.shape[0] for key, value in datadict.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"DictDataset tensors must have the same number of samples (first "
                             f"dimension); got {lengths}.")
        return next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Return sample ``i`` as ``{key: tensor[i]}``."""
        return {key: value[i] for key, value in self.datadict.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Return the samples at ``indices`` in one indexing per tensor: ``{key: tensor[indices]}``.

        torch's DataLoader calls this (when defined) instead of ``__getitem__`` once per sample, and
        passes the result to `collate_fn`; batching then costs one gather per key.
        """
        index = torch.as_tensor(indices, dtype=torch.long)
        return {key: value[index] for key, value in self.datadict.items()}

    def collate_fn(self, batch: Sequence[Mapping[str, torch.Tensor]] | Mapping[str, torch.Tensor]
                   ) -> dict[str, Any]:
        """Finish a batch: stack a list of samples (or take the dict `__getitems__` built) and add ``name``.

        :param batch: samples from ``__getitem__``, or an already batched dict from ``__getitems__``.
        :return: batched tensors plus ``'name': self.name``.
        """
        if isinstance(batch, Mapping):
            collated = dict(batch)
        else:
            collated = {key: torch.stack([sample[key] for sample in batch]) for key in batch[0]}
        collated["name"] = self.name
        return collated

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.datadict.items())
        return f"DictDataset(name={self.name!r}, nsamples={self.length}, {shapes})"


def _tensors_from_arrays(datadict: dict[str, Any], name: str) -> dict[str, Any]:
    """Replace the numpy arrays among ``datadict``'s values by tensors of the same dtype, warning once.

    Upstream 1.5 keeps the arrays and turns each batch into tensors in ``default_collate``, which
    keeps the dtype; converting once here gives the same batches. Memory is shared with the array
    unless torch cannot share it (read-only or negatively strided arrays are copied).

    :raises TypeError: an array of a dtype torch has no tensor for (strings, objects).
    """
    converted = {}
    for key, value in datadict.items():
        if not isinstance(value, np.ndarray):
            continue
        array = value if value.flags.writeable and min(value.strides, default=0) >= 0 else value.copy()
        try:
            datadict[key] = torch.from_numpy(array)
        except TypeError:
            raise TypeError(f"DictDataset value for key {key!r} is a numpy array of dtype {value.dtype}, "
                            f"which has no torch dtype; give numbers, e.g. torch.as_tensor(value, "
                            f"dtype=torch.float32).") from None
        converted[key] = str(value.dtype)
    if converted:
        warn_lenient_input(f"DictDataset {name!r}: the values of {sorted(converted)} are numpy arrays; they are "
                           f"used as tensors of the same dtype ({converted}), on the CPU, as upstream 1.5 "
                           f"batches them. Pass tensors to choose the dtype yourself, e.g. "
                           f"torch.as_tensor(array, dtype=torch.float32).")
    return datadict


def _as_float_tensor(value: Any, key: str, dataset: str, more_dims: bool = False) -> torch.Tensor:
    """Convert a 2-D array-like (at least 2-D with ``more_dims``) to a float32 tensor.

    :raises ValueError: the array has another number of dimensions (the message names ``key``).
    """
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value,
                             dtype=torch.float32)
    if tensor.dim() != 2 and not (more_dims and tensor.dim() > 2):
        expected = "at least 2-D [samples, dim, ...]" if more_dims else "2-D [samples, dim]"
        raise ValueError(f"{dataset}: data[{key!r}] has shape {tuple(tensor.shape)}; expected {expected} "
                         f"(reshape 1-D data with x.reshape(-1, 1)).")
    return tensor


def _column_slices(dims: Mapping[str, int]) -> dict[str, slice]:
    """Map each variable to its columns in the side-by-side concatenation of all variables."""
    slices, start = {}, 0
    for key, width in dims.items():
        slices[key] = slice(start, start + width)
        start += width
    return slices


class StaticDataset(Dataset):
    """A dataset of static (non-sequential) samples from a dict of 2-D (or higher) arrays.

    :param data: ``[nsamples, dim]`` numpy arrays or tensors, stored as float32; arrays of more
        dimensions, ``[nsamples, dim, ...]``, need the same sizes after ``dim`` as every other.
    :param name: the split's name, added to batches as ``'name'``.
    :raises ValueError: empty ``data``, a value of fewer than 2 dimensions, arrays of different
        lengths, or arrays that differ in a size after ``dim``.

    Samples are ``{key: row, 'index': i}``; use ``collate_fn`` with a DataLoader.
    """

    def __init__(self, data: ArrayDict, name: str = "data") -> None:
        super().__init__()
        if not data:
            raise ValueError("StaticDataset needs at least one array, got an empty dict.")
        self.name = name
        self.variables = list(data.keys())
        tensors = {k: _as_float_tensor(data[k], k, "StaticDataset", more_dims=True) for k in self.variables}
        lengths = {k: t.shape[0] for k, t in tensors.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"StaticDataset arrays must have the same number of samples; got {lengths}.")
        trailing = {k: tuple(t.shape[2:]) for k, t in tensors.items()}
        if len(set(trailing.values())) > 1:
            raise ValueError(f"StaticDataset arrays are joined along their second dimension, so their "
                             f"later sizes must agree; got shapes {({k: tuple(t.shape) for k, t in tensors.items()})}.")
        self.full_data = torch.cat([tensors[k] for k in self.variables], dim=1)
        self.nsamples = self.full_data.shape[0]
        self._vslices = _column_slices({k: t.shape[1] for k, t in tensors.items()})
        self.dims = {**{k: tuple(t.shape) for k, t in tensors.items()}, "nsamples": self.nsamples}

    def __len__(self) -> int:
        return self.nsamples

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Return sample ``i``: each variable's row plus ``'index': i``."""
        sample: dict[str, Any] = {k: self.full_data[i, self._vslices[k]] for k in self.variables}
        sample["index"] = i
        return sample

    def get_full_batch(self) -> dict[str, Any]:
        """Return the whole dataset as one batch ``{key: [nsamples, dim], 'name': name}``."""
        batch: dict[str, Any] = {k: self.full_data[:, self._vslices[k]] for k in self.variables}
        batch["name"] = self.name
        return batch

    def collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack samples with torch's default collation and add ``'name'``."""
        collated = default_collate(batch)
        collated["name"] = self.name
        return collated

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {d}" for k, d in self.dims.items() if k != "nsamples")
        return f"StaticDataset(name={self.name!r}, nsamples={self.nsamples}, {shapes})"


def batch_tensor(x: torch.Tensor, steps: int, mh: bool = False) -> torch.Tensor:
    """Cut a ``[time, ...]`` tensor into ``steps``-long windows along dim 0.

    :param x: time series, time first.
    :param steps: window length.
    :param mh: moving horizon: stride 1 (overlapping windows) instead of ``steps``.
    :return: ``[nwindows, ..., steps]``, time last (torch ``unfold`` layout).
    """
    return x.unfold(0, steps, 1 if mh else steps)


def unbatch_tensor(x: torch.Tensor, mh: bool = False) -> torch.Tensor:
    """Join the windows of `batch_tensor` back into one series, time on the last dim.

    :param x: ``[nwindows, ..., steps]`` windows.
    :param mh: the windows overlap with stride 1 (moving horizon).
    :return: ``[..., time]``; ``mh=True`` also works for 3-D windows (the layout
        `batch_tensor` produces from a ``[time, dim]`` series).
    """
    if not mh:
        return torch.cat(torch.unbind(x, 0), dim=-1)
    firsts = torch.movedim(x[..., 0], 0, -1)
    return torch.cat([firsts, x[-1, ..., 1:]], dim=-1)


def _sequence_list(data: SequenceData, caller: str) -> list[ArrayDict]:
    """Return ``data`` (a dict, or a list of dicts, of time series) as a validated list of dicts."""
    sequences = [data] if isinstance(data, Mapping) else data
    if not isinstance(sequences, list) or not sequences or not all(isinstance(d, Mapping) for d in sequences):
        raise TypeError(f"{caller}: data must be a dict of [time, dim] arrays or a non-empty list of "
                        f"such dicts, got {type(data).__name__}.")
    keys = set(sequences[0])
    for index, sequence in enumerate(sequences):
        if set(sequence) != keys:
            raise ValueError(f"{caller}: sequence {index} has keys {sorted(sequence)} but sequence 0 "
                             f"has {sorted(keys)}; every sequence needs the same variables.")
        lengths = {k: np.shape(v)[0] for k, v in sequence.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{caller}: the time series of sequence {index} differ in length: "
                             f"{lengths}; every variable needs one row per time step.")
    return list(sequences)


class SequenceDataset(Dataset):
    """A dataset of ``nsteps``-long past/future windows cut from time series.

    For each variable ``Y`` a sample holds ``Yp`` (a window of ``nsteps`` steps) and ``Yf`` (the next
    window: the following ``nsteps`` steps, or, with ``moving_horizon``, the window shifted by one
    step), each ``[nsteps, dim]``, plus ``'index'``. Batches are named ``nstep_<name>``,
    the whole sequence from `get_full_sequence` ``loop_<name>``. Windows of a multi-sequence
    dataset are paired only within their own sequence.

    :param data: ``[time, dim]`` arrays or tensors, one dict per independent sequence.
    :param nsteps: window length.
    :param moving_horizon: windows with stride 1 instead of ``nsteps``.
    :param name: the split's name.
    :raises TypeError: ``data`` is neither a dict nor a list of dicts.
    :raises ValueError: mismatched keys or lengths, non-2-D arrays, or sequences too short to give
        one past/future pair (``2 * nsteps`` steps; ``nsteps + 1`` with moving_horizon).
    """

    def __init__(self, data: SequenceData, nsteps: int = 1, moving_horizon: bool = False,
                 name: str = "data") -> None:
        super().__init__()
        if isinstance(nsteps, bool) or not isinstance(nsteps, numbers.Integral) or nsteps < 1:
            raise ValueError(f"SequenceDataset nsteps must be a positive int, got {nsteps!r}.")
        nsteps = int(nsteps)
        self.name = name
        self.multisequence = isinstance(data, list)
        sequences = _sequence_list(data, "SequenceDataset")
        self.nsteps = nsteps
        self.moving_horizon = moving_horizon
        self.variables = list(sequences[0].keys())
        tensors = [torch.cat([_as_float_tensor(s[k], k, "SequenceDataset") for k in self.variables], 1)
                   for s in sequences]
        self._check_lengths([len(t) for t in tensors])
        self.full_data = torch.cat(tensors, dim=0)
        self.nsim = self.full_data.shape[0]
        self._sslices = self._sequence_slices([len(t) for t in tensors])
        widths = {k: int(np.shape(sequences[0][k])[1]) for k in self.variables}
        self._vslices = _column_slices(widths)
        self.dims = {
            **{k: (self.nsim, w) for k, w in widths.items()},
            **{k + "p": (self.nsim - 1, w) for k, w in widths.items()},
            **{k + "f": (self.nsim - 1, w) for k, w in widths.items()},
            "nsim": self.nsim, "nsteps": nsteps,
        }
        windows = [batch_tensor(t, nsteps, mh=moving_horizon).permute(0, 2, 1) for t in tensors]
        self.batched_data = torch.cat(windows, dim=0)
        self._past_index = self._pair_indices([len(w) for w in windows])

    def _check_lengths(self, lengths: list[int]) -> None:
        """Raise a ValueError where a sequence cannot give one past/future window pair."""
        needed = self.nsteps + 1 if self.moving_horizon else 2 * self.nsteps
        short = [i for i, n in enumerate(lengths) if n < needed]
        if short:
            raise ValueError(f"SequenceDataset: sequence(s) {short} have {[lengths[i] for i in short]} "
                             f"time steps; nsteps={self.nsteps} needs at least {needed} for one "
                             f"past/future window pair. Lower nsteps or give longer series.")

    @staticmethod
    def _sequence_slices(lengths: list[int]) -> list[slice]:
        """The rows of ``full_data`` belonging to each sequence."""
        starts = np.cumsum([0, *lengths])
        return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]

    @staticmethod
    def _pair_indices(window_counts: list[int]) -> torch.Tensor:
        """Indices of windows whose successor belongs to the same sequence."""
        starts = np.cumsum([0, *window_counts])
        return torch.cat([torch.arange(int(a), int(b) - 1) for a, b in zip(starts[:-1], starts[1:], strict=True)])

    def __len__(self) -> int:
        """The number of past/future window pairs."""
        return len(self._past_index)

    def _windows(self, index: Any, offset: int) -> dict[str, torch.Tensor]:
        """Slice every variable out of the windows at ``index + offset``."""
        rows = self.batched_data[index + offset]
        suffix = "p" if offset == 0 else "f"
        return {k + suffix: rows[..., self._vslices[k]] for k in self.variables}

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Return pair ``i``: ``{Yp: [nsteps, dim], Yf: [nsteps, dim], ..., 'index': i}``."""
        past = int(self._past_index[i])
        sample: dict[str, Any] = {**self._windows(past, 0), **self._windows(past, 1)}
        sample["index"] = i
        return sample

    def get_full_batch(self) -> dict[str, Any]:
        """Return all pairs as one batch ``{Yp: [npairs, nsteps, dim], ..., 'name': 'nstep_<name>'}``."""
        batch: dict[str, Any] = {**self._windows(self._past_index, 0), **self._windows(self._past_index, 1)}
        batch["name"] = "nstep_" + self.name
        return batch

    def _full_sequence(self, rows: slice) -> dict[str, Any]:
        """One sequence as ``Yp`` (all but the last nsteps steps) and ``Yf`` (all but the first)."""
        series = self.full_data[rows]
        out: dict[str, Any] = {}
        for k in self.variables:
            out[k + "p"] = series[: len(series) - self.nsteps, self._vslices[k]].unsqueeze(0)
        for k in self.variables:
            out[k + "f"] = series[self.nsteps:, self._vslices[k]].unsqueeze(0)
        out["name"] = "loop_" + self.name
        return out

    def get_full_sequence(self) -> dict[str, Any] | list[dict[str, Any]]:
        """Return the whole series for open-loop evaluation: ``Yp``/``Yf`` of shape ``[1, T - nsteps, dim]``.

        :return: one dict, or one per sequence for a multi-sequence dataset.
        """
        if self.multisequence:
            return [self._full_sequence(rows) for rows in self._sslices]
        return self._full_sequence(slice(0, self.nsim))

    def collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack samples with torch's default collation and add ``'name': 'nstep_<name>'``."""
        collated = default_collate(batch)
        collated["name"] = "nstep_" + self.name
        return collated

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {d}" for k, d in self.dims.items() if k not in ("nsim", "nsteps"))
        return (f"SequenceDataset(name={self.name!r}, nsequences={len(self._sslices)}, nsim={self.nsim}, "
                f"nsteps={self.nsteps}, nsamples={len(self)}, {shapes})")


def _scale(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Divide elementwise, giving 0 where the denominator is 0 (constant columns)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(numerator / denominator)


def _row(stat: Any) -> np.ndarray:
    """A statistic as a broadcastable ``[1, dim]`` row."""
    return np.asarray(stat).reshape(1, -1)


def standardize(M: ArrayLike, mean: ArrayLike | None = None, std: ArrayLike | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score the columns of ``M``: ``(M - mean) / std`` (constant columns give 0).

    :param M: 2-D data, one row per sample.
    :param mean: column means to use; None computes them from ``M``.
    :param std: column standard deviations; None computes them from ``M``.
    :return: (normalised M, mean, std), the statistics as 1-D arrays.
    """
    M = np.asarray(M)
    mean = M.mean(axis=0) if mean is None else mean
    std = M.std(axis=0) if std is None else std
    return _scale(M - _row(mean), _row(std)), _flat(mean), _flat(std)


def _flat(stat: Any) -> np.ndarray:
    """A statistic as a 1-D array, the form the normalisers return it in."""
    return np.asarray(stat).reshape(-1)


def _min_max_scale(M: Any, Mmin: Any, Mmax: Any, numerator: Callable[[np.ndarray, np.ndarray], np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide ``numerator(M - Mmin, Mmax - Mmin)`` by the column ranges ``Mmax - Mmin`` (0 where a range is 0).

    Column minima and maxima not given are computed from ``M``; returns (scaled M, Mmin, Mmax),
    the statistics as 1-D arrays.
    """
    M = np.asarray(M)
    Mmin = M.min(axis=0) if Mmin is None else Mmin
    Mmax = M.max(axis=0) if Mmax is None else Mmax
    spread = _row(Mmax) - _row(Mmin)
    return _scale(numerator(M - _row(Mmin), spread), spread), _flat(Mmin), _flat(Mmax)


def normalize_01(M: ArrayLike, Mmin: ArrayLike | None = None, Mmax: ArrayLike | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-max scale the columns of ``M`` to [0, 1] (constant columns give 0).

    :param M: 2-D data, one row per sample.
    :param Mmin: column minima; None computes them from ``M``.
    :param Mmax: column maxima; None computes them from ``M``.
    :return: (normalised M, Mmin, Mmax), the statistics as 1-D arrays.
    """
    return _min_max_scale(M, Mmin, Mmax, lambda offset, spread: offset)


def normalize_11(M: ArrayLike, Mmin: ArrayLike | None = None, Mmax: ArrayLike | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-max scale the columns of ``M`` to [-1, 1] (constant columns give 0).

    :param M: 2-D data, one row per sample.
    :param Mmin: column minima; None computes them from ``M``.
    :param Mmax: column maxima; None computes them from ``M``.
    :return: (normalised M, Mmin, Mmax), the statistics as 1-D arrays.
    """
    return _min_max_scale(M, Mmin, Mmax, lambda offset, spread: 2 * offset - spread)


def denormalize_01(M: Any, Mmin: Any, Mmax: Any) -> Any:
    """Undo `normalize_01`: ``M * (Mmax - Mmin) + Mmin``."""
    return M * (Mmax - Mmin) + Mmin


def denormalize_11(M: Any, Mmin: Any, Mmax: Any) -> Any:
    """Undo `normalize_11`: ``(M + 1) / 2 * (Mmax - Mmin) + Mmin``."""
    return (M + 1) / 2 * (Mmax - Mmin) + Mmin


def destandardize(M: Any, mean: Any, std: Any) -> Any:
    """Undo `standardize`: ``M * std + mean``."""
    return M * std + mean


_NORMALIZERS = {"zscore": standardize, "zero-one": normalize_01, "one-one": normalize_11}


def normalize_data(data: SequenceData, norm_type: str, stats: dict[str, np.ndarray] | None = None
                   ) -> tuple[SequenceData, dict[str, np.ndarray]]:
    """Normalise every variable of a dataset with statistics pooled over all its sequences.

    :param data: ``[samples, dim]`` arrays.
    :param norm_type: 'zero-one' (`normalize_01`), 'one-one' (`normalize_11`) or 'zscore' (`standardize`).
    :param stats: statistics to reuse (e.g. from the train split),
        as returned by a previous call; None computes them from ``data``.
    :return: (normalised data in the same structure, stats). The stats are keyed
        ``'<key>_min'``/``'<key>_max'`` for every norm_type; for 'zscore' those keys hold the mean and
        std, so one stats layout serves every norm_type.
    :raises ValueError: unknown ``norm_type``.
    :raises KeyError: ``stats`` lacks a variable's entries.
    """
    if norm_type not in _NORMALIZERS:
        raise ValueError(f"normalize_data: unknown norm_type {norm_type!r}; use one of {sorted(_NORMALIZERS)}.")
    sequences = _sequence_list(data, "normalize_data")
    lengths = [len(next(iter(s.values()))) for s in sequences]
    bounds = np.cumsum([0, *lengths])
    normalized: list[ArrayDict] = [{} for _ in sequences]
    new_stats: dict[str, np.ndarray] = {}
    for key in sequences[0]:
        pooled = np.concatenate([np.asarray(s[key]) for s in sequences], axis=0)
        if stats is None:
            values, first, second = _NORMALIZERS[norm_type](pooled)
        else:
            missing = [f"{key}_{s}" for s in ("min", "max") if f"{key}_{s}" not in stats]
            if missing:
                raise KeyError(f"normalize_data: stats lack {missing}; pass the stats returned by "
                               f"normalize_data on data with the same keys.")
            values, first, second = _NORMALIZERS[norm_type](pooled, _row(stats[f"{key}_min"]),
                                                            _row(stats[f"{key}_max"]))
        new_stats[f"{key}_min"], new_stats[f"{key}_max"] = first, second
        for index, sequence_out in enumerate(normalized):
            sequence_out[key] = values[bounds[index]:bounds[index + 1]]
    return (normalized if isinstance(data, list) else normalized[0]), new_stats


def _ratio_slices(n: int, split_ratio: Sequence[float]) -> tuple[slice, slice, slice]:
    """Train/dev/test slices from percentages of ``n`` (train and dev rounded up).

    Items after the first two are ignored, as upstream 1.5 ignores them (with a
    `LenientInputWarning`): the test part is always what train and dev leave.
    """
    if len(split_ratio) < 2 or sum(split_ratio[:2]) > 100:
        raise ValueError(f"split_ratio must be two percentages (train, dev) summing to at most 100, "
                         f"got {split_ratio!r}.")
    if len(split_ratio) > 2:
        warn_lenient_input(f"split_ratio {list(split_ratio)!r} has {len(split_ratio)} items; only the first two "
                           f"(train {split_ratio[0]}%, dev {split_ratio[1]}%) are read, as upstream 1.5 reads "
                           f"them, and the test part is the remaining {100 - sum(split_ratio[:2])}%. Pass "
                           f"split_ratio=[train, dev].")
    dev_start = math.ceil(split_ratio[0] * n / 100.0)
    test_start = dev_start + math.ceil(split_ratio[1] * n / 100.0)
    return slice(0, dev_start), slice(dev_start, test_start), slice(test_start, n)


def split_sequence_data(data: SequenceData, nsteps: int, moving_horizon: bool = False,
                        split_ratio: Sequence[float] | None = None
                        ) -> tuple[SequenceData, SequenceData, SequenceData]:
    """Split time series into train, dev and test parts (thirds by default).

    A single sequence is split in time: by default into thirds whose lengths are multiples of
    ``nsteps``, train and dev each extended by ``nsteps`` steps into the next part so that their
    last window has a future window. A list of sequences is split by sequence.

    :param data: ``[time, dim]`` arrays.
    :param nsteps: window length the parts will be cut into.
    :param moving_horizon: accepted and ignored: the split does not depend on it.
    :param split_ratio: percentages of train and dev; None gives thirds.
    :return: (train, dev, test) in the structure of ``data``.
    :raises ValueError: malformed ``split_ratio`` or inconsistent data.
    """
    sequences = _sequence_list(data, "split_sequence_data")
    multisequence = isinstance(data, list)
    n = len(sequences) if multisequence else len(next(iter(data.values())))
    if split_ratio is not None:
        parts = _ratio_slices(n, split_ratio)
    else:
        third = n // 3
        if not multisequence:
            third -= third % nsteps
        overlap = 0 if multisequence else nsteps
        parts = (slice(0, third + overlap), slice(third, 2 * third + overlap), slice(2 * third, n))
    if multisequence:
        return tuple(sequences[part] for part in parts)
    return tuple({k: v[part] for k, v in data.items()} for part in parts)


def split_static_data(data: ArrayDict, split_ratio: Sequence[float] | None = None
                      ) -> tuple[ArrayDict, ArrayDict, ArrayDict]:
    """Split a dict of equally long arrays into train, dev and test rows (thirds by default).

    :param data: ``[samples, dim]`` arrays.
    :param split_ratio: percentages of train and dev; None gives thirds.
    :return: (train, dev, test) dicts.
    :raises ValueError: malformed ``split_ratio``.
    """
    n = min(np.shape(v)[0] for v in data.values())
    if split_ratio is not None:
        parts = _ratio_slices(n, split_ratio)
    else:
        third = n // 3
        parts = (slice(0, third), slice(third, 2 * third), slice(2 * third, n))
    return tuple({k: v[part] for k, v in data.items()} for part in parts)


def get_static_dataloaders(data: ArrayDict, norm_type: str | None = None,
                           split_ratio: Sequence[float] | None = None, num_workers: int = 0,
                           batch_size: int = 32) -> tuple[tuple[DataLoader, DataLoader, DataLoader], dict[str, Any]]:
    """Normalise (optionally), split and wrap static data into train/dev/test DataLoaders.

    :param data: ``[samples, dim]`` arrays.
    :param norm_type: see `normalize_data`; None leaves the data as is.
    :param split_ratio: see `split_static_data`.
    :param num_workers: DataLoader worker processes.
    :param batch_size: samples per batch.
    :return: ((train, dev, test) DataLoaders over `StaticDataset` named 'train', 'dev', 'test'; the
        train loader shuffles), and the train dataset's ``dims``.
    """
    if norm_type is not None:
        data, _ = normalize_data(data, norm_type)
    splits = [StaticDataset(part, name=name)
              for part, name in zip(split_static_data(data, split_ratio), ("train", "dev", "test"), strict=True)]
    loaders = tuple(DataLoader(ds, batch_size=batch_size, shuffle=ds.name == "train",
                               collate_fn=ds.collate_fn, num_workers=num_workers) for ds in splits)
    return loaders, splits[0].dims


def get_sequence_dataloaders(data: SequenceData, nsteps: int, moving_horizon: bool = False,
                             norm_type: str | None = None, split_ratio: Sequence[float] | None = None,
                             num_workers: int = 0, batch_size: int | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Normalise (optionally), split and window time series into train/dev/test DataLoaders.

    :param data: ``[time, dim]`` arrays.
    :param nsteps: window length.
    :param moving_horizon: stride-1 windows.
    :param norm_type: see `normalize_data`.
    :param split_ratio: see `split_sequence_data`.
    :param num_workers: DataLoader worker processes.
    :param batch_size: windows per batch; None gives full-batch loaders.
    :return: ((train, dev, test) DataLoaders over `SequenceDataset` named 'train', 'dev', 'test'
        (not shuffled), (train, dev, test) `SequenceDataset.get_full_sequence` dicts for open-loop
        evaluation, the train dataset's ``dims``).
    """
    if norm_type is not None:
        data, _ = normalize_data(data, norm_type)
    parts = split_sequence_data(data, nsteps, moving_horizon, split_ratio)
    splits = [SequenceDataset(part, nsteps=nsteps, moving_horizon=moving_horizon, name=name)
              for part, name in zip(parts, ("train", "dev", "test"), strict=True)]
    loops = tuple(ds.get_full_sequence() for ds in splits)
    loaders = tuple(DataLoader(ds, batch_size=batch_size if batch_size is not None else len(ds),
                               shuffle=False, collate_fn=ds.collate_fn, num_workers=num_workers)
                    for ds in splits)
    return loaders, loops, splits[0].dims
