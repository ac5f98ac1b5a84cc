"""Tests for neuromancer.dataset: DictDataset, StaticDataset, SequenceDataset and the helpers."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neuromancer import dataset as D
from neuromancer.dataset import DictDataset, SequenceDataset, StaticDataset


def test_dictdataset_items_and_len():
    x, p = torch.arange(10.).reshape(5, 2), torch.arange(5.)
    ds = DictDataset({"x": x, "p": p}, name="dev")
    assert len(ds) == 5 and ds.name == "dev"
    sample = ds[3]
    assert torch.equal(sample["x"], x[3]) and torch.equal(sample["p"], p[3])
    batch = ds.__getitems__([4, 0])
    assert torch.equal(batch["x"], x[[4, 0]])


@pytest.mark.parametrize("datadict, error, pattern", [
    ({}, ValueError, "empty"),
    ({"x": torch.ones(5, 1), "y": [[1.0]] * 5}, TypeError, r"'y' is a list"),
    ({"x": np.array([object()] * 5)}, TypeError, r"dtype object"),
    ({"x": torch.ones(5, 1), "y": torch.ones(4, 1)}, ValueError, r"\{'x': 5, 'y': 4\}"),
    ({"x": torch.tensor(1.0)}, ValueError, "0-d"),
])
def test_dictdataset_validation(datadict, error, pattern):
    with pytest.raises(error, match=pattern):
        DictDataset(datadict)


def test_collate_fn_accepts_sample_list_and_batched_dict():
    x = torch.randn(6, 3)
    ds = DictDataset({"x": x}, name="test")
    from_list = ds.collate_fn([ds[1], ds[2]])
    from_dict = ds.collate_fn(ds.__getitems__([1, 2]))
    assert from_list["name"] == from_dict["name"] == "test"
    assert torch.equal(from_list["x"], x[1:3]) and torch.equal(from_dict["x"], x[1:3])


class CountingDictDataset(DictDataset):
    """Counts how the DataLoader fetches, to show it batches through __getitems__."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batched_calls, self.single_calls = 0, 0

    def __getitems__(self, indices):
        self.batched_calls += 1
        return super().__getitems__(indices)

    def __getitem__(self, i):
        self.single_calls += 1
        return super().__getitem__(i)


def test_dataloader_yields_named_batches_via_getitems():
    torch.manual_seed(0)
    x, y = torch.arange(22.).reshape(11, 2), torch.arange(11.)
    ds = CountingDictDataset({"x": x, "y": y}, name="train")
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=ds.collate_fn)
    batches = list(loader)
    assert [len(b["y"]) for b in batches] == [4, 4, 3]
    assert all(b["name"] == "train" for b in batches)
    assert (ds.batched_calls, ds.single_calls) == (3, 0)
    seen = torch.cat([b["y"] for b in batches]).long()
    assert sorted(seen.tolist()) == list(range(11))
    for batch in batches:
        assert torch.equal(batch["x"], x[batch["y"].long()])


def test_static_dataset_matches_arrays():
    rng = np.random.default_rng(0)
    data = {"x": rng.random((6, 3)), "y": torch.rand(6, 2)}
    ds = StaticDataset(data, name="train")
    assert len(ds) == 6 and ds.dims == {"x": (6, 3), "y": (6, 2), "nsamples": 6}
    sample = ds[2]
    np.testing.assert_allclose(sample["x"].numpy(), data["x"][2], rtol=1e-6)
    assert sample["index"] == 2
    full = ds.get_full_batch()
    assert full["name"] == "train" and full["y"].shape == (6, 2)
    batch = ds.collate_fn([ds[0], ds[1]])
    assert batch["x"].shape == (2, 3) and batch["index"].tolist() == [0, 1] and batch["name"] == "train"
    with pytest.raises(ValueError, match="same number of samples"):
        StaticDataset({"x": np.ones((6, 1)), "y": np.ones((5, 1))})
    with pytest.raises(ValueError, match="2-D"):
        StaticDataset({"x": np.ones(6)})


def series(T=20):
    return {"Y": np.arange(T * 2, dtype=float).reshape(T, 2), "U": np.arange(T, dtype=float).reshape(T, 1)}


@pytest.mark.parametrize("moving_horizon", [False, True])
def test_sequence_dataset_windows_match_manual_slicing(moving_horizon):
    data, nsteps = series(), 4
    ds = SequenceDataset(data, nsteps=nsteps, moving_horizon=moving_horizon, name="train")
    stride = 1 if moving_horizon else nsteps
    starts = list(range(0, 20 - nsteps + 1, stride))
    assert len(ds) == len(starts) - 1
    for i in (0, len(ds) - 1):
        sample = ds[i]
        past, future = starts[i], starts[i + 1]
        np.testing.assert_array_equal(sample["Yp"].numpy(), data["Y"][past:past + nsteps])
        np.testing.assert_array_equal(sample["Uf"].numpy(), data["U"][future:future + nsteps])
    full = ds.get_full_batch()
    assert full["name"] == "nstep_train" and full["Yp"].shape == (len(ds), nsteps, 2)
    np.testing.assert_array_equal(full["Uf"][-1].numpy(), data["U"][starts[-1]:starts[-1] + nsteps])
    loop = ds.get_full_sequence()
    assert loop["name"] == "loop_train" and loop["Yp"].shape == (1, 20 - nsteps, 2)
    np.testing.assert_array_equal(loop["Yf"][0].numpy(), data["Y"][nsteps:])
    batch = ds.collate_fn([ds[0], ds[1]])
    assert batch["Yp"].shape == (2, nsteps, 2) and batch["name"] == "nstep_train"
    assert ds.dims["Yp"] == (19, 2) and ds.dims["nsim"] == 20


def test_sequence_dataset_multisequence_pairs_stay_within_sequences():
    first = {"Y": np.zeros((8, 1))}
    second = {"Y": np.ones((12, 1))}
    ds = SequenceDataset([first, second], nsteps=4)
    # 2 windows in the first sequence, 3 in the second: 1 + 2 pairs, none crossing sequences
    assert len(ds) == 3
    for i in range(len(ds)):
        assert torch.equal(ds[i]["Yp"], ds[i]["Yf"])
    loops = ds.get_full_sequence()
    assert [loop["Yp"].shape[1] for loop in loops] == [4, 8]


def test_sequence_dataset_validation():
    with pytest.raises(ValueError, match="at least 8"):
        SequenceDataset({"Y": np.ones((7, 1))}, nsteps=4)
    with pytest.raises(ValueError, match="differ in length"):
        SequenceDataset({"Y": np.ones((10, 1)), "U": np.ones((9, 1))}, nsteps=2)
    with pytest.raises(ValueError, match="keys"):
        SequenceDataset([{"Y": np.ones((10, 1))}, {"U": np.ones((10, 1))}], nsteps=2)
    with pytest.raises(TypeError, match="dict"):
        SequenceDataset(np.ones((10, 1)), nsteps=2)


def test_normalizers_round_trip_and_handle_constant_columns():
    M = np.column_stack([np.linspace(-3, 5, 7), np.full(7, 2.0)])
    z, mean, std = D.standardize(M)
    np.testing.assert_allclose(z[:, 0], (M[:, 0] - M[:, 0].mean()) / M[:, 0].std())
    np.testing.assert_array_equal(z[:, 1], 0.0)
    np.testing.assert_allclose(D.destandardize(z[:, :1], mean[:1], std[:1]), M[:, :1])
    n01, lo, hi = D.normalize_01(M)
    assert n01[:, 0].min() == 0.0 and n01[:, 0].max() == 1.0
    np.testing.assert_allclose(D.denormalize_01(n01[:, :1], lo[:1], hi[:1]), M[:, :1])
    n11, lo, hi = D.normalize_11(M)
    assert n11[:, 0].min() == -1.0 and n11[:, 0].max() == 1.0
    np.testing.assert_array_equal(n01[:, 1], 0.0)
    np.testing.assert_array_equal(n11[:, 1], 0.0)
    np.testing.assert_allclose(D.denormalize_11(n11[:, :1], lo[:1], hi[:1]), M[:, :1])


def test_normalize_data_pools_statistics_and_reuses_them():
    rng = np.random.default_rng(1)
    seqs = [{"Y": rng.random((5, 2))}, {"Y": rng.random((7, 2))}]
    normed, stats = D.normalize_data(seqs, "zero-one")
    pooled = np.concatenate([s["Y"] for s in seqs])
    np.testing.assert_allclose(stats["Y_min"], pooled.min(0))
    np.testing.assert_allclose(normed[1]["Y"], (seqs[1]["Y"] - pooled.min(0)) / (pooled.max(0) - pooled.min(0)))
    again, _ = D.normalize_data(seqs[0], "zero-one", stats=stats)
    np.testing.assert_allclose(again["Y"], normed[0]["Y"])
    with pytest.raises(ValueError, match="norm_type"):
        D.normalize_data(seqs[0], "minmax")


def test_split_helpers_follow_upstream_layout():
    data = {"Y": np.arange(30.).reshape(30, 1)}
    train, dev, test = D.split_sequence_data(data, nsteps=4)
    # thirds of 30 rounded down to a multiple of nsteps (8), train and dev extended by nsteps
    assert [len(p["Y"]) for p in (train, dev, test)] == [12, 12, 14]
    assert dev["Y"][0, 0] == 8 and test["Y"][0, 0] == 16
    train, dev, test = D.split_static_data(data, split_ratio=[60.0, 20.0])
    assert [len(p["Y"]) for p in (train, dev, test)] == [18, 6, 6]
    with pytest.raises(ValueError, match="split_ratio"):
        D.split_static_data(data, split_ratio=[90.0, 20.0])


def test_get_dataloaders():
    rng = np.random.default_rng(2)
    data = {"Y": rng.random((30, 2)), "U": rng.random((30, 1))}
    (train, dev, test), dims = D.get_static_dataloaders(data, norm_type="zscore", batch_size=4)
    assert dims == {"Y": (10, 2), "U": (10, 1), "nsamples": 10}
    batch = next(iter(train))
    assert batch["Y"].shape == (4, 2) and batch["name"] == "train"
    assert (dev.dataset.name, test.dataset.name) == ("dev", "test")
    loaders, loops, dims = D.get_sequence_dataloaders(data, nsteps=4)
    batch = next(iter(loaders[0]))
    assert batch["Yp"].shape == (len(loaders[0].dataset), 4, 2) and batch["name"] == "nstep_train"
    assert [loop["name"] for loop in loops] == ["loop_train", "loop_dev", "loop_test"]
    assert dims["nsim"] == 12


def test_batch_and_unbatch_tensor():
    x = torch.arange(10.).reshape(10, 1)
    windows = D.batch_tensor(x, 3)
    assert windows.shape == (3, 1, 3)
    assert torch.equal(D.unbatch_tensor(windows), x[:9].T)
    moving = D.batch_tensor(x, 3, mh=True)
    assert moving.shape == (8, 1, 3)
    assert torch.equal(D.unbatch_tensor(moving, mh=True), x.T)


def test_lit_datamodule_is_lazy():
    assert "LitDataModule" not in D.__all__
    with pytest.raises(AttributeError, match="nonexistent"):
        D.nonexistent  # noqa: B018
