"""Tests of neuromancer.modules.functions: bounding helpers and window functions."""
import numpy as np
import pytest
import torch

from neuromancer.modules import functions


def test_bounds_clamp_matches_numpy_clip_with_float_and_tensor_bounds():
    x = torch.linspace(-3, 3, 13)
    np.testing.assert_allclose(functions.bounds_clamp(x, -1.0, 2.0).numpy(), np.clip(x.numpy(), -1.0, 2.0))
    np.testing.assert_allclose(functions.bounds_clamp(x, xmax=2.0).numpy(), np.minimum(x.numpy(), 2.0))
    np.testing.assert_allclose(functions.bounds_clamp(x, xmin=-1.0).numpy(), np.maximum(x.numpy(), -1.0))
    assert torch.equal(functions.bounds_clamp(x), x)
    per_feature = functions.bounds_clamp(torch.full((4, 2), 5.0), torch.zeros(2), torch.tensor([1.0, 3.0]))
    assert torch.equal(per_feature, torch.tensor([[1.0, 3.0]] * 4))


def test_bounds_scaling_is_a_shifted_scaled_sigmoid():
    x = torch.linspace(-3, 3, 7)
    expected = -1.0 + 3.0 / (1.0 + np.exp(-2.0 * x.numpy()))
    np.testing.assert_allclose(functions.bounds_scaling(x, -1.0, 2.0, scaling=2.0).numpy(), expected, rtol=1e-6)
    assert functions.bounds_scaling(torch.zeros(1), -1.0, 2.0).item() == pytest.approx(0.5)


def test_window_functions_form_a_partition_of_unity_on_a_grid():
    x = torch.rand(50, 2) * 2 - 1
    w = functions.window_functions(x, 9, lower=-1.0, upper=1.0)
    assert w.shape == (50, 9)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(50))
    corners = functions.window_functions(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), 4, lower=-1.0, upper=1.0)
    torch.testing.assert_close(corners, torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]), atol=1e-6, rtol=0)


def test_window_functions_rejects_bad_domain_counts_and_overlap():
    with pytest.raises(ValueError, match="num_domains=3"):
        functions.window_functions(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="delta"):
        functions.window_functions(torch.zeros(2, 1), 2, delta=1.0)


def test_functions_registry_names_every_helper():
    assert functions.functions == {"bounds_scaling": functions.bounds_scaling,
                                   "bounds_clamp": functions.bounds_clamp,
                                   "window_functions": functions.window_functions}
