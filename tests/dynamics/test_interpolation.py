"""Tests of neuromancer.dynamics.interpolation: offline and online linear interpolation."""
import pytest
import torch

from neuromancer.dynamics.interpolation import Interpolation, LinInterp_Offline, LinInterp_Online


def test_offline_interpolation_is_exact_for_linear_signals_and_extrapolates():
    t = torch.arange(0.0, 5.0, 0.5).unsqueeze(1)
    u = torch.cat([2.0 * t + 1.0, -t], dim=1)
    interp = LinInterp_Offline(t, u)
    tq = torch.tensor([[-1.0], [0.0], [0.7], [2.25], [4.5], [6.0]])
    torch.testing.assert_close(interp(tq), torch.cat([2.0 * tq + 1.0, -tq], dim=1))
    assert isinstance(interp, Interpolation) and interp(tq).dtype == torch.float32


def test_offline_interpolation_between_samples_of_a_nonlinear_signal():
    t = torch.tensor([[0.0], [1.0], [2.0]])
    u = torch.tensor([[0.0], [1.0], [4.0]])
    torch.testing.assert_close(LinInterp_Offline(t, u)(torch.tensor([0.5, 1.25, 2.0])),
                               torch.tensor([[0.5], [1.75], [4.0]]))


def test_offline_interpolation_validates_its_samples():
    with pytest.raises(ValueError, match="2-D"):
        LinInterp_Offline(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="at least two"):
        LinInterp_Offline(torch.zeros(1, 1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="ascending"):
        LinInterp_Offline(torch.tensor([[0.0], [2.0], [1.0]]), torch.zeros(3, 1))


def test_online_interpolation_per_batch_element():
    t = torch.tensor([[[0.0], [1.0]], [[2.0], [4.0]]])
    u = torch.tensor([[[0.0, 10.0], [1.0, 20.0]], [[5.0, 0.0], [7.0, 2.0]]])
    tq = torch.tensor([[[0.25], [9.0]], [[3.0], [9.0]]])
    torch.testing.assert_close(LinInterp_Online()(tq, t, u), torch.tensor([[0.25, 12.5], [6.0, 1.0]]))
    with pytest.raises(ValueError, match="needs the sample times"):
        LinInterp_Online()(tq)
