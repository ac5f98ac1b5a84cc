"""Tests of neuromancer.modules.activations: formulas, learnable parameters, registry."""
import math

import numpy as np
import pytest
import torch

from neuromancer.modules import activations as A

X = torch.linspace(-3, 3, 13)


def reference_soft_exp(alpha, x):
    if alpha == 0:
        return x
    if alpha < 0:
        return -np.log(1 - alpha * (x + alpha)) / alpha
    return (np.exp(alpha * x) - 1) / alpha + alpha


@pytest.mark.parametrize("alpha", [0.0, 0.5, -0.2])
def test_soft_exp_matches_closed_form(alpha):
    out = A.soft_exp(torch.tensor(alpha), X)
    np.testing.assert_allclose(out.numpy(), reference_soft_exp(alpha, X.numpy()), rtol=1e-5, atol=1e-6)


def test_soft_exponential_alpha_learns_from_zero():
    act = A.SoftExponential()
    torch.testing.assert_close(act(X), X)
    act(X).sum().backward()
    assert act.alpha.grad.item() == pytest.approx(float((1 + X ** 2 / 2).sum()))
    frozen = A.SoftExponential(alpha=0.3, tune_alpha=False)
    assert not frozen.alpha.requires_grad


def test_rectified_soft_exp_stays_finite_where_soft_exp_is_nan():
    act = A.RectifiedSoftExp()
    with torch.no_grad():
        act.alpha.fill_(-0.5)
    assert torch.isnan(A.soft_exp(torch.tensor(-0.5), X)).any()
    assert torch.isfinite(act(X)).all()
    with torch.no_grad():
        act.alpha.fill_(3.0)
    torch.testing.assert_close(act(X), A.soft_exp(torch.tensor(1.0), X))


def test_blu_formula():
    act = A.BLU()
    torch.testing.assert_close(act(X), X)
    with torch.no_grad():
        act.beta.fill_(2.0)
    expected = 2.0 * (np.sqrt(X.numpy() ** 2 + 1.0) - 1.0) + X.numpy()
    np.testing.assert_allclose(act(X).detach().numpy(), expected, rtol=1e-6)
    assert not act.alpha.requires_grad and act.beta.requires_grad


def test_smoothed_relu_is_relu_with_quadratic_knee():
    act = A.SmoothedReLU(d=0.0)
    d = math.log(2.0)  # softplus(0)
    x = X.numpy()
    expected = np.where(x <= 0, 0.0, np.where(x <= d, x ** 2 / (2 * d), x - d / 2))
    np.testing.assert_allclose(act(X).detach().numpy(), expected, rtol=1e-6, atol=1e-7)


def test_aplu_formula_and_reg_error():
    act = A.APLU(nsegments=3, alpha_reg_weight=0.1, beta_reg_weight=0.01)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([1.0, 2.0, 3.0]))
        act.beta.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    x = X.numpy()
    expected = np.maximum(x, 0) + sum(a * np.maximum(-x + b, 0) for a, b in [(1, -1), (2, 0.5), (3, 2)])
    np.testing.assert_allclose(act(X).detach().numpy(), expected, rtol=1e-6)
    assert act(torch.randn(2, 5, 4)).shape == (2, 5, 4)
    assert act.reg_error().item() == pytest.approx(0.1 * math.sqrt(14) + 0.01 * math.sqrt(5.25), rel=1e-5)
    with pytest.raises(ValueError, match="nsegments"):
        A.APLU(nsegments=-1)


def test_prelu_slopes_on_each_side():
    act = A.PReLU()
    x = X.numpy()
    np.testing.assert_allclose(act(X).detach().numpy(), np.where(x > 0, x, 0.25 * x), rtol=1e-6)


def test_pelu_follows_the_paper():
    act = A.PELU()
    with torch.no_grad():
        act.alpha.fill_(2.0)
        act.beta.fill_(0.5)
    x = X.numpy()
    expected = np.where(x >= 0, 4.0 * x, 2.0 * (np.exp(x / 0.5) - 1))
    np.testing.assert_allclose(act(X).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_registry_has_upstream_keys_and_every_entry_constructs(upstream_registries):
    keys = upstream_registries["neuromancer.modules.activations.activations"]["keys"]
    assert set(keys) <= set(A.activations)
    for name, cls in A.activations.items():
        assert cls()(torch.randn(3, 2)).shape == (3, 2), name
