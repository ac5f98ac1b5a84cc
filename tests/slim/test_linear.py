"""Tests of neuromancer.slim: every structured map's constraint, the weight layout and the registries."""
import math

import numpy as np
import pytest
import torch

from neuromancer import slim
from neuromancer.slim import linear as L


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def randomise(module, scale=1.0):
    """Move every parameter to a random point so constraints are checked away from the initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return module


def W_of(module):
    return module.effective_W().detach().double()


def test_maps_registry_and_square_maps_match_upstream_keys(upstream_registries):
    assert set(upstream_registries["neuromancer.slim.maps"]["keys"]) == set(slim.maps)
    assert {c.__name__ for c in L.square_maps} == set(upstream_registries["neuromancer.slim.linear.square_maps"]["keys"])


@pytest.mark.parametrize("name", sorted(slim.maps))
def test_every_map_applies_x_at_W_plus_bias(name):
    cls = slim.maps[name]
    insize, outsize = (4, 4) if cls in L.square_maps else (3, 5)
    bias = name != "trivial_nullspace"
    m = cls(insize, outsize, bias=bias).eval()
    x = torch.randn(6, insize)
    W = m.effective_W()
    assert W.shape == (insize, outsize)
    expected = x @ W + (m.bias if bias else 0)
    torch.testing.assert_close(m(x), expected, atol=1e-5, rtol=1e-5)
    assert m(torch.randn(2, 6, insize)).shape == (2, 6, outsize)
    assert m.reg_error().dim() == 0
    assert m.device == torch.device("cpu")


@pytest.mark.parametrize("cls", sorted(L.square_maps, key=lambda c: c.__name__))
def test_square_maps_reject_rectangular_sizes(cls):
    with pytest.raises(ValueError, match="insize=3"):
        cls(3, 5)


def test_linear_stores_nn_linear_weight_and_eig_needs_square():
    m = L.Linear(3, 5, bias=True)
    torch.testing.assert_close(m.effective_W(), m.linear.weight.T)
    assert m.weight is m.linear.weight and m.bias is m.linear.bias
    with pytest.raises(ValueError, match="square"):
        m.eig()
    values, _ = L.Linear(4, 4).eig()
    assert values.shape == (4,)


def test_identity_maps():
    torch.testing.assert_close(L.IdentityInitLinear(3, 5).effective_W(), torch.eye(3, 5))
    fixed = L.IdentityLinear(4, 4, bias=True)
    assert not fixed.linear.weight.requires_grad and fixed.bias.requires_grad


def test_nonnegative_and_stochastic_maps():
    assert (W_of(randomise(L.NonNegativeLinear(3, 5))) >= 0).all()
    left = W_of(randomise(L.LeftStochasticLinear(3, 5)))
    right = W_of(randomise(L.RightStochasticLinear(3, 5)))
    assert (left >= 0).all() and (right >= 0).all()
    np.testing.assert_allclose(left.sum(0), np.ones(5), rtol=1e-6)
    np.testing.assert_allclose(right.sum(1), np.ones(3), rtol=1e-6)


def test_perron_frobenius_dominant_eigenvalue_within_bounds():
    m = randomise(L.PerronFrobeniusLinear(5, 5, sigma_min=0.5, sigma_max=0.9))
    W = W_of(m).numpy()
    assert (W >= 0).all()
    rho = np.abs(np.linalg.eigvals(W)).max()
    assert 0.5 - 1e-9 <= rho <= 0.9 + 1e-9
    with pytest.raises(ValueError, match="sigma_min"):
        L.PerronFrobeniusLinear(3, 3, sigma_min=2.0, sigma_max=1.0)


def test_symmetric_skew_and_damped_skew_structure():
    S = W_of(randomise(L.SymmetricLinear(4, 4)))
    K = W_of(randomise(L.SkewSymmetricLinear(4, 4)))
    torch.testing.assert_close(S, S.T)
    torch.testing.assert_close(K, -K.T)
    damped = randomise(L.DampedSkewSymmetricLinear(4, 4, sigma_min=0.2, sigma_max=0.4))
    real_parts = np.linalg.eigvals(W_of(damped).numpy()).real
    gamma = damped.damping().item()
    assert 0.2 <= gamma <= 0.4
    np.testing.assert_allclose(real_parts, -gamma * np.ones(4), atol=1e-6)


def test_split_maps():
    split = randomise(L.SplitLinear(3, 5))
    torch.testing.assert_close(split.effective_W(), split.B.effective_W() - split.C.effective_W())
    stable = randomise(L.StableSplitLinear(5, 5, sigma_max=0.8), scale=3.0)
    W = W_of(stable).numpy()
    assert np.abs(W).sum(1).max() <= 0.8 + 1e-9
    assert np.abs(np.linalg.eigvals(W)).max() <= 0.8 + 1e-9


def test_orthogonal_map_is_orthogonal():
    m = L.OrthogonalLinear(5, 5)
    W = W_of(m)
    torch.testing.assert_close(W.T @ W, torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)


def test_hprod_reflects_trailing_components():
    x, u = torch.randn(3, 4), torch.randn(4)
    full = x - 2 * torch.outer(x @ u, u) / (u @ u)
    torch.testing.assert_close(L.Hprod(x, u, 0), full)
    tail = x[:, 2:] - 2 * torch.outer(x[:, 2:] @ u[2:], u[2:]) / (u[2:] @ u[2:])
    torch.testing.assert_close(L.Hprod(x, u, 2), torch.cat([x[:, :2], tail], 1))


def test_psd_eigenvalues_nonnegative():
    W = W_of(randomise(L.PSDLinear(4, 4)))
    torch.testing.assert_close(W, W.T)
    assert torch.linalg.eigvalsh(W).min() >= -1e-9


@pytest.mark.parametrize("insize,outsize", [(3, 5), (5, 3), (4, 4)])
def test_spectral_singular_values_within_bounds(insize, outsize):
    m = randomise(L.SpectralLinear(insize, outsize, sigma_min=0.3, sigma_max=0.7), scale=3.0)
    sv = torch.linalg.svdvals(W_of(m))
    assert sv.min() >= 0.3 - 1e-6 and sv.max() <= 0.7 + 1e-6
    torch.testing.assert_close(torch.sort(sv).values, torch.sort(m.Sigma().detach().double()).values)


def test_symmetric_spectral_eigenvalues_within_bounds():
    m = randomise(L.SymmetricSpectralLinear(4, 4, sigma_min=0.2, sigma_max=0.6), scale=3.0)
    W = W_of(m)
    torch.testing.assert_close(W, W.T, atol=1e-6, rtol=0)
    eigenvalues = torch.linalg.eigvalsh(W)
    assert eigenvalues.min() >= 0.2 - 1e-6 and eigenvalues.max() <= 0.6 + 1e-6


def test_svd_singular_values_within_bounds_while_factors_orthogonal():
    m = L.SVDLinear(3, 5, sigma_min=0.4, sigma_max=0.6)
    with torch.no_grad():
        m.sigma.copy_(torch.randn_like(m.sigma) * 5)
    assert m.reg_error().item() < 1e-5
    sv = torch.linalg.svdvals(W_of(m))
    assert sv.min() >= 0.4 - 1e-5 and sv.max() <= 0.6 + 1e-5
    eye = torch.eye(3)
    assert m.orthogonal_error(eye).item() == 0.0
    assert m.orthogonal_error(2 * eye).item() == pytest.approx(3 * math.sqrt(3))


def test_svd_reg_error_pulls_factors_back_to_orthogonal():
    m = L.SVDLinear(4, 4, sigma_min=0.4, sigma_max=0.6)
    with torch.no_grad():
        m.U.add_(0.2 * torch.randn_like(m.U))
    start = m.reg_error().item()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        m.reg_error().backward()
        opt.step()
    assert m.reg_error().item() < 0.1 * start
    sv = torch.linalg.svdvals(W_of(m))
    assert sv.min() >= 0.38 and sv.max() <= 0.62


def test_svd_variants():
    learn = L.SVDLinearLearnBounds(3, 3)
    assert isinstance(learn.sigma_min, torch.nn.Parameter) and learn.sigma_max.item() == 1.0
    sym = L.SymmetricSVDLinear(4, 4, sigma_min=0.2, sigma_max=0.5)
    W = W_of(sym)
    torch.testing.assert_close(W, W.T, atol=1e-6, rtol=0)
    eigenvalues = torch.linalg.eigvalsh(W)
    assert eigenvalues.min() >= 0.2 - 1e-5 and eigenvalues.max() <= 0.5 + 1e-5


@pytest.mark.parametrize("n", [4, 5])
def test_schur_eigenvalues_are_the_designed_ones(n):
    m = randomise(L.SchurDecompositionLinear(n, n))
    eigenvalues = np.linalg.eigvals(W_of(m).numpy())
    designed = m.block_eigenvalues().detach().numpy()
    np.testing.assert_allclose(np.sort_complex(eigenvalues), np.sort_complex(designed.astype(complex)), atol=1e-5)
    assert np.abs(eigenvalues).max() < 1.0
    upper = (m.T * m.upper_mask).detach()
    assert m.reg_error().item() == pytest.approx(0.01 * float((upper ** 2).sum()), rel=1e-5)


@pytest.mark.parametrize("real", [True, False])
def test_gershgorin_discs_within_bounds(real):
    m = randomise(L.GershgorinLinear(5, 5, sigma_min=0.2, sigma_max=0.9, real=real))
    W = W_of(m).numpy()
    centres = np.diag(W)
    radii = np.abs(W).sum(1) - np.abs(centres)
    assert (centres - radii >= 0.2 - 1e-9).all() and (centres + radii <= 0.9 + 1e-9).all()
    eigenvalues = np.linalg.eigvals(W)
    assert (eigenvalues.real >= 0.2 - 1e-9).all() and (eigenvalues.real <= 0.9 + 1e-9).all()
    if real:
        np.testing.assert_allclose(W, W.T)


def test_bounded_norm_reg_error_measures_distance_to_bounds():
    m = L.BoundedNormLinear(3, 4, sigma_min=0.5, sigma_max=1.0, p=2)
    with torch.no_grad():
        m.linear.weight.copy_(torch.eye(4, 3) * 3.0)
    assert m.reg_error().item() == pytest.approx(2.0)
    with torch.no_grad():
        m.linear.weight.copy_(torch.eye(4, 3) * 0.1)
    assert m.reg_error().item() == pytest.approx(0.4)
    with torch.no_grad():
        m.linear.weight.copy_(torch.eye(4, 3) * 0.7)
    assert m.reg_error().item() == 0.0
    one_norm = L.BoundedNormLinear(3, 3, sigma_min=0.0, sigma_max=1.0, p=1)
    with torch.no_grad():
        one_norm.linear.weight.fill_(1.0)
    assert one_norm.reg_error().item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="p=7"):
        L.BoundedNormLinear(3, 3, p=7)


def test_symplectic_structure():
    m = randomise(L.SymplecticLinear(6, 6))
    W = W_of(m)
    eye, zero = torch.eye(3, dtype=W.dtype), torch.zeros(3, 3, dtype=W.dtype)
    J = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)
    torch.testing.assert_close(W.T @ J @ W, J, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="even"):
        L.SymplecticLinear(3, 3)


def test_trivial_null_space_full_rank():
    m = randomise(L.TrivialNullSpaceLinear(3, 5, rank=1, epsilon=0.1))
    sv = torch.linalg.svdvals(W_of(m))
    assert sv.min() >= 0.1 - 1e-9 and torch.linalg.matrix_rank(W_of(m)) == 3
    with pytest.raises(ValueError, match="bias"):
        L.TrivialNullSpaceLinear(3, 5, bias=True)
    with pytest.raises(ValueError, match="insize=5 > outsize=3"):
        L.TrivialNullSpaceLinear(5, 3)


def test_power_bound_limits_spectral_norm():
    m = L.PowerBoundLinear(4, 4, max_p=0.5)
    with torch.no_grad():
        m.W.copy_(torch.randn(4, 4) * 3)
    true_norm = torch.linalg.matrix_norm(m.W.detach(), ord=2).item()
    assert m.eig_v_estimate().item() == pytest.approx(true_norm, rel=1e-4)
    assert torch.linalg.matrix_norm(W_of(m), ord=2).item() <= 0.5 + 1e-4
    assert m.reg_error().item() == pytest.approx(true_norm - 0.5, rel=1e-4)


def test_lasso_reg_errors():
    m = randomise(L.LassoLinear(3, 5, gamma=0.3))
    assert m.reg_error().item() == pytest.approx(0.3 * m.effective_W().abs().sum().item(), rel=1e-6)
    relu = randomise(L.LassoLinearRELU(3, 4, gamma=0.5))
    u, v = relu.u_param.detach(), relu.v_param.detach()
    torch.testing.assert_close(relu.effective_W(), u.clamp(min=0) - v.clamp(min=0))
    assert relu.reg_error().item() == pytest.approx(0.5 * float(u.clamp(min=0).sum() + v.clamp(min=0).sum()), rel=1e-6)


def test_identity_grad_relu_passes_gradient_through():
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    y = L.IdentityGradReLU.apply(x)
    y.sum().backward()
    assert torch.equal(y, torch.tensor([0.0, 2.0])) and torch.equal(x.grad, torch.ones(2))


def test_l0_gates_sample_in_training_and_are_deterministic_in_eval():
    m = L.L0Linear(4, 6, bias=False)
    with torch.no_grad():
        m.qz_loga.copy_(torch.tensor([-8.0, 8.0]).repeat(12).view(4, 6))
    m.eval()
    W_eval = m.effective_W()
    torch.testing.assert_close(W_eval, m.effective_W())
    closed = m.qz_loga < 0
    assert torch.all(W_eval[closed] == 0) and torch.equal(W_eval[~closed], m.weight[~closed])
    m.train()
    with torch.no_grad():
        m.qz_loga.zero_()
    samples = torch.stack([m.effective_W() / m.weight for _ in range(20)])
    assert samples.std(0).mean() > 0.05
    assert ((samples == 0) | (samples == 1)).any()
    reg = m.reg_error()
    assert reg.item() > 0 and torch.isfinite(reg)
