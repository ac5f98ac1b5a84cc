"""Tests of neuromancer.modules.blocks: interface, structure-specific guarantees, KAN and RNN behaviour."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from neuromancer import slim
from neuromancer.modules import activations
from neuromancer.modules import blocks as B


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def test_registry_has_upstream_keys(upstream_registries):
    keys = upstream_registries["neuromancer.modules.blocks.blocks"]["keys"]
    assert set(keys) == set(B.blocks)


@pytest.mark.parametrize("name", sorted(B.blocks))
def test_blocks_concatenate_multiple_inputs(small_block, name):
    block = small_block(name)
    x = torch.randn(5, 3)
    out = block(x)
    torch.testing.assert_close(block(x[:, :1], x[:, 1:]), out)
    expected_width = 9 if name == "poly2" else 1 if name == "pos_def" else 2
    assert out.shape == (5, expected_width)


@pytest.mark.parametrize("name", ["linear", "mlp", "mlp_dropout", "mlp_bounds", "residual_mlp", "icnn", "bilinear",
                                  "basislinear", "stacked_mlp", "kan", "poly2"])
def test_feedforward_blocks_accept_extra_leading_dims(small_block, name):
    block = small_block(name)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(block(x)[1], block(x[1]))


def test_block_without_inputs_raises():
    with pytest.raises(TypeError, match="at least one input"):
        B.MLP(3, 2)()


def test_mlp_structure_nonlin_forms_and_reg_error():
    mlp = B.MLP(3, 2, hsizes=[4, 5])
    assert [type(m) for m in mlp.nonlin] == [activations.SoftExponential] * 2 + [nn.Identity]
    assert mlp.nonlin[0] is not mlp.nonlin[1]
    assert [tuple(l.effective_W().shape) for l in mlp.linear] == [(3, 4), (4, 5), (5, 2)]
    relu_instance = B.MLP(3, 2, nonlin=nn.ReLU(), hsizes=[4, 4])
    assert isinstance(relu_instance.nonlin[1], nn.ReLU) and relu_instance.nonlin[0] is not relu_instance.nonlin[1]
    assert B.MLP(3, 2, nonlin=torch.tanh, hsizes=[4])(torch.randn(2, 3)).shape == (2, 2)
    lasso = B.MLP(3, 2, linear_map=slim.LassoLinear, linargs={"gamma": 2.0}, hsizes=[4])
    expected = sum(2.0 * l.weight.abs().sum() for l in lasso.linear)
    assert lasso.reg_error().item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(TypeError, match="nonlin"):
        B.MLP(3, 2, nonlin=3)
    with pytest.raises(ValueError, match="hsizes"):
        B.MLP(3, 2, hsizes=[0])


def test_mlp_manual_forward_matches():
    mlp = B.MLP(3, 2, hsizes=[4], nonlin=nn.Tanh)
    x = torch.randn(6, 3)
    lin0, lin1 = mlp.linear
    torch.testing.assert_close(mlp(x), lin1(torch.tanh(lin0(x))))


def test_mlp_dropout_is_active_only_in_training():
    block = B.MLPDropout(3, 2, hsizes=[64], dropout=0.5)
    x = torch.randn(8, 3)
    block.eval()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))
    with pytest.raises(ValueError, match="dropout"):
        B.MLPDropout(3, 2, dropout=1.5)


@pytest.mark.parametrize("method", ["sigmoid_scale", "relu_clamp"])
def test_mlp_bounds_outputs_within_bounds(method):
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([0.0, 5.0])
    block = B.MLP_bounds(3, 2, hsizes=[8], min=low, max=high, method=method)
    y = block(torch.randn(200, 3) * 20)
    assert torch.all(y >= low) and torch.all(y <= high)


def test_mlp_bounds_rejects_unknown_method():
    with pytest.raises(ValueError, match="'tanh'"):
        B.MLP_bounds(3, 2, method="tanh")


def test_resmlp_requires_equal_hidden_sizes():
    assert B.ResMLP(3, 2, hsizes=[4, 4, 4], skip=2)(torch.randn(5, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match="equal hidden sizes"):
        B.ResMLP(3, 2, hsizes=[4, 5])


def test_icnn_is_convex_along_random_segments():
    icnn = B.InputConvexNN(3, 2, hsizes=[16, 16])
    for layer in icnn.poslinear:
        assert torch.all(layer.effective_W() >= 0)
    a, b = torch.randn(100, 3) * 3, torch.randn(100, 3) * 3
    t = torch.rand(100, 1)
    with torch.no_grad():
        mid = icnn(t * a + (1 - t) * b)
        chord = t * icnn(a) + (1 - t) * icnn(b)
    assert torch.all(mid <= chord + 1e-5)


def test_posdef_is_zero_at_origin_positive_elsewhere_and_capped():
    v = B.PosDef(B.InputConvexNN(3, 1, hsizes=[8]), eps=0.01)
    torch.testing.assert_close(v(torch.zeros(4, 3)), torch.zeros(4, 1))
    x = torch.randn(100, 3)
    assert torch.all(v(x) >= 0.01 * (x ** 2).sum(1, keepdim=True) - 1e-6)
    capped = B.PosDef(B.InputConvexNN(3, 1, hsizes=[8]), max=0.05)
    assert torch.all(capped(x * 10) <= 0.05 + 1e-6)
    with pytest.raises(TypeError, match="in_features"):
        B.PosDef(nn.Tanh())


def test_rnn_runs_batch_first_sequences_and_keeps_final_states():
    rnn = B.RNN(3, 2, hsizes=[4, 4])
    x = torch.randn(5, 6, 3)
    y = rnn(x)
    assert y.shape == (5, 2) and rnn.init_states.shape == (2, 5, 4)
    torch.testing.assert_close(rnn(x), y)
    first, second = x[:, :3], x[:, 3:]
    rnn(first)
    continued = rnn.block_eval(second, hx=list(rnn.init_states))
    torch.testing.assert_close(continued, y)
    rnn.reset()
    assert rnn.init_states is None
    cell = rnn.rnn.rnn_cells[0]
    h0 = rnn.rnn.init_states[0]
    step = torch.randn(5, 3)
    h1 = cell(step, h0)
    torch.testing.assert_close(h1, cell.nonlin(cell.lin_hidden(h0) + cell.lin_in(step)))
    with pytest.raises(ValueError, match="shape"):
        rnn(torch.randn(3))


def test_pytorch_rnn_uses_final_state_of_batch_first_sequence():
    block = B.PytorchRNN(3, 2, hsizes=[4, 4])
    x = torch.randn(5, 6, 3)
    _, h = block.rnn(x)
    torch.testing.assert_close(block(x), block.output(h[-1]))
    assert block(torch.randn(7, 3)).shape == (7, 2)
    with pytest.raises(ValueError, match="equal hidden sizes"):
        B.PytorchRNN(3, 2, hsizes=[4, 5])


def test_poly2_and_basis_linear_features():
    torch.testing.assert_close(B.Poly2()(torch.tensor([[1.0, 2.0, 3.0]])),
                               torch.tensor([[1.0, 2, 3, 1, 2, 3, 4, 6, 9]]))
    basis = B.BasisLinear(3, 2)
    x = torch.randn(4, 3)
    torch.testing.assert_close(basis(x), basis.linear(B.Poly2()(x)))


def test_bilinear_matches_quadratic_form():
    block = B.BilinearTorch(3, 2)
    x = torch.randn(4, 3)
    expected = torch.einsum("bi,kij,bj->bk", x, block.f.weight, x) + block.f.bias
    torch.testing.assert_close(block(x), expected)


def test_stacked_mlp_alpha_loss_and_blend():
    block = B.StackedMLP(3, 2, n_stacked_mf_layers=2, alpha_init=0.2)
    assert block.get_alpha_loss().item() == pytest.approx(2 * 0.2 ** 4)
    x = torch.randn(4, 3)
    y = block.first_layer(x)
    for alpha, stage in zip(block.alpha, block.layers, strict=True):
        y = alpha * stage["nonlinear"](torch.cat([x, y], -1)) + (1 - alpha) * stage["linear"](y)
    torch.testing.assert_close(block(x), y)


def test_kan_b_splines_form_partition_of_unity_inside_grid():
    layer = B.KANLinear(2, 3, grid_size=4)
    x = torch.rand(20, 2) * 1.8 - 0.9
    bases = layer.b_splines(x)
    assert bases.shape == (20, 2, 7)
    torch.testing.assert_close(bases.sum(-1), torch.ones(20, 2))
    y = torch.randn(20, 2, 3)
    assert layer.curve2coeff(x, y).shape == (3, 2, 7)


def test_kan_fits_a_one_dimensional_function_and_regularises():
    kan = B.KAN([1, 4, 1], grid_size=5)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    target = torch.sin(3 * x)
    opt = torch.optim.Adam(kan.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = torch.mean((kan(x) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    reg = kan.regularization_loss()
    assert reg.dim() == 0 and torch.isfinite(reg)


def test_kan_grid_update_keeps_the_function():
    layer = B.KANLinear(2, 2, grid_size=5)
    x = torch.rand(64, 2) * 1.6 - 0.8
    before = layer(x).detach()
    layer.update_grid(x)
    torch.testing.assert_close(layer(x), before, atol=1e-3, rtol=1e-3)
    assert layer.grid[:, layer.spline_order].max() <= x.min(0).values.max()


def test_kan_block_domains_schedule_and_regularisation():
    block = B.KANBlock(2, 1, hsizes=[3], num_domains=4, grid_sizes=[3, 6], grid_updates=[2])
    x = torch.rand(32, 2) * 2 - 1
    assert block(x).shape == (32, 1)
    before = block(x).detach()
    block.update_epoch(1, x)
    assert block.current_grid_index == 0
    block.update_epoch(2, x)
    assert block.current_grid_index == 1
    assert block.kan_layers[0][0].spline_weight.shape[-1] == 6 + 3
    torch.testing.assert_close(block(x), before, atol=5e-2, rtol=5e-2)
    assert torch.isfinite(block.regularization_loss())
    with pytest.raises(ValueError, match="num_domains=3"):
        B.KANBlock(2, 1, num_domains=3)


def test_importing_blocks_does_not_import_heavy_packages():
    code = ("import sys, neuromancer.modules.blocks; "
            "print([m for m in ('scipy', 'matplotlib', 'lightning') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
