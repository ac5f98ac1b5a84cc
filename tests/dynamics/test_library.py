"""Tests of neuromancer.dynamics.library: the SINDy candidate-function libraries."""
import pytest
import torch

from neuromancer.dynamics.library import FourierLibrary, FunctionLibrary, PolynomialLibrary


def test_polynomial_library_lists_every_monomial_in_order():
    library = PolynomialLibrary(2, max_degree=3)
    assert str(library) == "1, x0, x1, x0^2, x0*x1, x1^2, x0^3, x0^2*x1, x0*x1^2, x1^3"
    assert library.shape == (10, 2)
    X = torch.tensor([[2.0, 3.0], [-1.0, 0.5]])
    x0, x1 = X[:, 0], X[:, 1]
    expected = torch.stack([torch.ones(2), x0, x1, x0 ** 2, x0 * x1, x1 ** 2, x0 ** 3, x0 ** 2 * x1, x0 * x1 ** 2,
                            x1 ** 3], dim=-1)
    torch.testing.assert_close(library.evaluate(X), expected)


def test_polynomial_library_sizes_are_binomial():
    # monomials of degree <= d in n variables: C(n + d, d)
    assert PolynomialLibrary(3, max_degree=2).shape == (10, 3)
    assert PolynomialLibrary(4, max_degree=0).shape == (1, 4)
    with pytest.raises(ValueError, match="max_degree"):
        PolynomialLibrary(2, max_degree=-1)


def test_fourier_library_orders_sines_then_cosines():
    library = FourierLibrary(2, max_freq=2)
    assert str(library) == ("sin(1*x0), sin(2*x0), sin(1*x1), sin(2*x1), "
                            "cos(1*x0), cos(2*x0), cos(1*x1), cos(2*x1)")
    X = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    a, b = X[0, 0], X[0, 1]
    expected = torch.stack([a.sin(), (2 * a).sin(), b.sin(), (2 * b).sin(), a.cos(), (2 * a).cos(), b.cos(),
                            (2 * b).cos()])
    torch.testing.assert_close(library.evaluate(X)[0], expected)
    assert str(FourierLibrary(1, max_freq=1, include_sin=False)) == "cos(1*x0)"
    with pytest.raises(ValueError, match="both False"):
        FourierLibrary(1, include_sin=False, include_cos=False)


def test_function_library_takes_any_columns_and_is_differentiable():
    library = FunctionLibrary([lambda X: X[:, 0] * X[:, 1], lambda X: torch.exp(X[:, 1])], 2, ["x0*x1", "exp(x1)"])
    X = torch.tensor([[1.0, 0.0], [2.0, 1.0]], requires_grad=True)
    values = library.evaluate(X)
    torch.testing.assert_close(values, torch.tensor([[0.0, 1.0], [2.0, torch.e]]))
    values.sum().backward()
    torch.testing.assert_close(X.grad, torch.tensor([[0.0, 2.0], [1.0, 2.0 + torch.e]]))
    assert str(FunctionLibrary([torch.sin], 1)) == "f0"
    with pytest.raises(ValueError, match="one name per function"):
        FunctionLibrary([torch.sin], 1, ["a", "b"])
    with pytest.raises(TypeError, match="list"):
        FunctionLibrary((torch.sin,), 1)
