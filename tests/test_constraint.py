"""Tests of neuromancer.constraint: variables, expression algebra, objectives, constraints, Loss."""
import operator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuromancer.constraint import GT, LT, Constraint, Eq, Loss, Objective, Variable, variable


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(0)
    return {"x": torch.randn(4, 3, generator=generator), "y": torch.randn(4, 3, generator=generator)}


# ------------------------------------------------------------------------------ variable forms
def test_data_variable_reads_its_key(data):
    x = variable("x")
    assert x.key == "x" and x.display_name == "x" and x.keys == ["x"]
    assert x(data) is data["x"]
    assert x.forward(data) is data["x"]


def test_constant_tensor_variable_is_a_buffer_that_follows_dtype_moves():
    c = variable(torch.tensor([1.0, 2.0]))
    assert c.keys == [] and list(c.parameters()) == []
    torch.testing.assert_close(c(), torch.tensor([1.0, 2.0]))
    objective = (variable("x") * c).minimize()
    objective.double()
    out = objective({"x": torch.ones(2, 2, dtype=torch.float64)})
    assert out[objective.name].dtype == torch.float64


def test_numpy_array_becomes_constant_of_default_dtype():
    c = variable(np.array([1.0, 2.0]))
    assert c().dtype == torch.get_default_dtype()


def test_tensor_requiring_grad_becomes_trainable_and_visible_to_containers():
    p = variable(torch.tensor([1.0, 2.0], requires_grad=True), display_name="p")
    assert isinstance(p.value, nn.Parameter) and p.display_name == "p"
    x = variable("x")
    objective = ((x - p) ** 2).minimize()
    constraint = (x + p) <= 3
    assert [id(t) for t in objective.parameters()] == [id(p.value)]
    assert [id(t) for t in constraint.parameters()] == [id(p.value)]
    assert list(objective.state_dict()) == ["var.leaves.0._value"]


def test_nn_parameter_is_registered_as_is():
    weight = nn.Parameter(torch.ones(3))
    w = variable(weight)
    assert w.value is weight
    assert list((variable("x") @ w).minimize().parameters())[0] is weight


def test_parameters_of_several_trainable_leaves_are_all_registered_once():
    a = variable(torch.ones(1, requires_grad=True))
    b = variable(torch.ones(1, requires_grad=True))
    expression = a * variable("x") + b * a
    assert {id(t) for t in expression.parameters()} == {id(a.value), id(b.value)}
    assert len(list(expression.parameters())) == 2


def test_computed_tensor_cannot_be_a_value_but_its_parameter_can():
    layer = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="grad_fn"):
        variable(layer.weight[0, 1])
    with pytest.raises(ValueError, match="grad_fn"):
        layer.weight[0, 1] * variable("x")
    expression = (variable(layer.weight)[0, 1] * variable("x")).minimize()
    expression({"x": torch.ones(3)})[expression.name].backward()
    assert layer.weight.grad[0, 1].item() == pytest.approx(1.0)


def test_list_and_callable_form(data):
    x, y = variable("x"), variable("y")
    xy = variable([x, y], lambda a, b: a * b, display_name="xy")
    assert xy.display_name == "xy" and xy.keys == ["x", "y"]
    torch.testing.assert_close(xy(data), data["x"] * data["y"])
    positional = variable([x], torch.sin, "s")
    assert positional.display_name == "s"


def test_bare_variable_is_a_trainable_scalar():
    v = variable()
    assert isinstance(v.value, nn.Parameter) and v.value.shape == (1,)
    assert list(v.parameters())[0] is v.value


@pytest.mark.parametrize("args, shape", [((2, 3), (2, 3)), (((2, 3),), (2, 3)),
                                         ((torch.Size([4]),), (4,)), ((5,), (5,))])
def test_shape_forms_make_trainable_tensors(args, shape):
    v = variable(*args)
    assert isinstance(v.value, nn.Parameter) and tuple(v.value.shape) == shape


def test_placeholder_has_no_value():
    placeholder = variable(None)
    assert placeholder.value is None
    with pytest.raises(ValueError, match="placeholder without a value"):
        placeholder({})


def test_unsupported_variable_arguments_raise():
    with pytest.raises(TypeError, match="unsupported arguments"):
        variable({"a": 1}, 3.5)


def test_derived_variable_with_repeated_key_raises():
    x = variable("x")
    with pytest.raises(ValueError, match="'x'"):
        Variable([x], func=torch.sin, key="x")
    with pytest.raises(ValueError, match="repeats"):
        x.check_keys("x")
    x.check_keys("fresh")


def test_inputs_without_func_raise():
    with pytest.raises(ValueError, match="no func"):
        Variable([variable("x")])


# ------------------------------------------------------------------------------------ algebra
BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("other_kind", ["number", "numpy_scalar", "numpy", "tensor", "scalar_tensor",
                                        "variable"])
def test_binary_operators_both_ways(op, other_kind, data):
    x = variable("x")
    positive = {"x": data["x"].abs() + 0.5, "y": data["y"].abs() + 0.5}
    others = {"number": 1.5, "numpy_scalar": np.float64(1.5), "numpy": np.full(3, 1.5),
              "tensor": torch.full((3,), 1.5), "scalar_tensor": torch.tensor(1.5), "variable": variable("y")}
    other = others[other_kind]
    other_value = positive["y"] if other_kind == "variable" else torch.as_tensor(np.asarray(other, dtype=np.float32))
    forward = op(x, other)
    reflected = op(other, x)
    assert isinstance(forward, Variable) and isinstance(reflected, Variable)
    torch.testing.assert_close(forward(positive), op(positive["x"], other_value))
    torch.testing.assert_close(reflected(positive), op(other_value, positive["x"]))


def test_matmul_both_ways(data):
    x = variable("x")
    matrix = torch.randn(3, 2)
    torch.testing.assert_close((x @ matrix)(data), data["x"] @ matrix)
    torch.testing.assert_close((matrix.T @ x.T)(data), matrix.T @ data["x"].T)
    torch.testing.assert_close((np.ones((2, 4), dtype=np.float32) @ x)(data), torch.ones(2, 4) @ data["x"])
    torch.testing.assert_close((x @ variable("y").mT)(data), data["x"] @ data["y"].mT)


def test_unary_operators_indexing_and_transposes(data):
    x = variable("x")
    cases = [(-x, -data["x"]), (abs(x), data["x"].abs()), (+x, data["x"]),
             (x[:, [0]], data["x"][:, [0]]), (x[:, 1], data["x"][:, 1]), (x[1:3, ...], data["x"][1:3]),
             (x.T, data["x"].T), (x.mT, data["x"].mT)]
    for expression, expected in cases:
        torch.testing.assert_close(expression(data), expected)
    assert x[:, [0]](data).shape == (4, 1)


def test_torch_functions_on_variables(data):
    x, y = variable("x"), variable("y")
    cases = [(torch.sin(x), torch.sin(data["x"])), (torch.sum(x, dim=1), data["x"].sum(dim=1)),
             (torch.cat([x, y], dim=1), torch.cat([data["x"], data["y"]], dim=1)),
             (torch.stack((x, y)), torch.stack((data["x"], data["y"]))),
             (F.relu(x - 0.1), F.relu(data["x"] - 0.1)), (torch.maximum(x, y), torch.maximum(data["x"], data["y"])),
             (torch.norm(x, dim=-1, keepdim=True), data["x"].norm(dim=-1, keepdim=True))]
    for expression, expected in cases:
        assert isinstance(expression, Variable)
        torch.testing.assert_close(expression(data), expected)
    assert torch.cat([x, y], dim=1).keys == ["x", "y"]


def test_numpy_array_on_the_left_builds_a_variable():
    assert isinstance(np.ones(3) + variable("x"), Variable)


@pytest.mark.parametrize("bad", ["a", {"a": 1}, [1, 2], None])
def test_operators_with_unsupported_types_raise_type_error(bad):
    x = variable("x")
    with pytest.raises(TypeError, match=f"'{type(bad).__name__}'.*supported operands"):
        x + bad
    for compare in (operator.le, operator.ge, operator.lt, operator.gt, operator.eq):
        with pytest.raises(TypeError, match=f"'{type(bad).__name__}'.*supported operands"):
            compare(x, bad)


def test_variables_are_not_iterable():
    with pytest.raises(TypeError, match="not iterable"):
        list(variable("x"))


def test_missing_key_names_the_key_and_those_available():
    expression = variable("x") + variable("y")
    with pytest.raises(KeyError, match=r"'y'.*available keys: \['x', 'z'\]"):
        expression({"x": torch.ones(1), "z": torch.ones(1)})


def test_derived_keys_are_unique_and_readable():
    x = variable("x")
    first, second = x + 1, x + 1
    assert first.key != second.key and first.key.startswith("add_") and first.display_name == "add"


def test_evaluation_does_not_write_into_the_data(data):
    before = set(data)
    (variable("x") * 2 + 1)(data)
    assert set(data) == before


def test_shared_subexpression_is_computed_once_per_call():
    calls = []

    def counted(value):
        calls.append(1)
        return value * 2

    x = variable("x")
    shared = variable([x], counted)
    expression = shared + shared * shared - torch.sin(shared)
    value = expression({"x": torch.tensor([1.0])})
    torch.testing.assert_close(value, torch.tensor([2.0 + 4.0 - np.sin(2.0)], dtype=torch.float32))
    assert len(calls) == 1
    calls.clear()
    (shared <= shared * 3)({"x": torch.tensor([1.0])})
    assert len(calls) == 1


def test_deep_sum_of_2000_terms_evaluates_without_recursion_limits():
    rng = np.random.default_rng(0)
    coefficients = rng.normal(size=2000)
    x = variable("x")
    expression = sum(float(c) * x[:, i % 5] for i, c in enumerate(coefficients))
    x_value = rng.normal(size=(3, 5))
    expected = sum(c * x_value[:, i % 5] for i, c in enumerate(coefficients))
    np.testing.assert_allclose(expression({"x": torch.tensor(x_value)}).numpy(), expected, rtol=1e-10)
    assert expression.keys == ["x"]
    objective = expression.minimize()
    assert list(objective.parameters()) == []
    assert objective({"x": torch.tensor(x_value)})[objective.name].item() == pytest.approx(expected.mean())



def test_random_functions_built_twice_give_independent_samples():
    x = variable("x")
    difference = torch.rand_like(x) - torch.rand_like(x)
    assert difference({"x": torch.zeros(50)}).abs().max().item() > 0.0


def test_equal_looking_constants_of_different_types_stay_apart():
    x = variable("x")
    dtypes = variable([x ** 2, x ** 2.0], lambda whole, real: (whole.dtype, real.dtype))
    assert dtypes({"x": torch.tensor([1, 2, 3])}) == (torch.int64, torch.float32)
    signs = variable([x * 0.0, x * -0.0], lambda plus, minus: (torch.signbit(plus), torch.signbit(minus)))
    plus, minus = signs({"x": torch.tensor([1.0])})
    assert not plus.item() and minus.item()


def test_derivative_with_respect_to_a_slice_built_twice_is_not_merged():
    x = variable("x")
    squared = x[:, [0]] ** 2
    data = {"x": torch.tensor([[3.0, 1.0]], requires_grad=True)}
    # the second slice is another node, absent from squared's graph: its derivative is 0, as without plans
    torch.testing.assert_close(squared.grad(x[:, [0]])(data), torch.zeros(1, 1))
    torch.testing.assert_close(squared.grad(x)(data), torch.tensor([[6.0, 0.0]]))


def test_evaluated_expressions_copy_and_pickle_with_their_own_parameters():
    import copy
    import io

    weight = variable(torch.tensor([2.0], requires_grad=True))
    expression = variable("x") * weight + 1.0
    data = {"x": torch.tensor([1.0, 2.0])}
    torch.testing.assert_close(expression(data), torch.tensor([3.0, 5.0]))
    buffer = io.BytesIO()
    torch.save(expression, buffer)
    buffer.seek(0)
    for twin in (copy.deepcopy(expression), torch.load(buffer, weights_only=False)):
        own = next(twin.parameters())
        with torch.no_grad():
            own.fill_(3.0)
        torch.testing.assert_close(twin(data), torch.tensor([4.0, 7.0]))
    torch.testing.assert_close(expression(data), torch.tensor([3.0, 5.0]))


def test_value_property():
    assert variable("x").value is None
    assert (variable("x") + 1).value is None
    torch.testing.assert_close(variable(torch.ones(2)).value, torch.ones(2))


def test_grad_of_variable_is_a_variable():
    x = variable("x")
    derivative = (x ** 3).grad(x)
    assert isinstance(derivative, Variable) and derivative.display_name == "dpow/dx"
    x_value = torch.tensor([1.0, 2.0], requires_grad=True)
    torch.testing.assert_close(derivative({"x": x_value}), 3 * x_value.detach() ** 2)
    with pytest.raises(ValueError, match="requires_grad=True"):
        derivative({"x": torch.tensor([1.0])})
    with pytest.raises(TypeError, match="Variable"):
        x.grad("x")


def test_unpack_splits_tuple_results():
    matrix = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    u, s, vh = torch.linalg.svd(variable("A")).unpack(3)
    torch.testing.assert_close(s({"A": matrix}), torch.linalg.svdvals(matrix))
    torch.testing.assert_close((u * s @ vh)({"A": matrix}), matrix, atol=1e-5, rtol=1e-5)
    named = torch.linalg.svd(variable("A")).unpack(["U", "S", "V"])
    assert [part.display_name for part in named] == ["U", "S", "V"]


def test_get_value_and_make_graph(data):
    x = variable("x")
    middle = x * 2
    top = middle + x
    torch.testing.assert_close(top.get_value(middle, data), data["x"] * 2)
    graph = top.make_graph([middle, x])
    assert graph[-1] is top and set(map(id, graph)) == {id(x), id(middle), id(top)}
    positions = [id(node) for node in graph]
    assert positions.index(id(x)) < positions.index(id(middle))


def test_show_writes_a_dot_file(tmp_path):
    pytest.importorskip("pydot")
    x = variable("x")
    (torch.sin(x) + variable(torch.ones(1), display_name="bias")).show(str(tmp_path / "graph.dot"))
    text = (tmp_path / "graph.dot").read_text()
    assert '"sin"' in text and '"bias"' in text and '"x"' in text


def test_trainable_variable_receives_gradients():
    p = variable(torch.tensor([1.0, 2.0], requires_grad=True))
    x = variable("x")
    objective = ((x - p) ** 2).minimize(metric=torch.sum)
    x_value = torch.tensor([[0.5, 0.5], [1.5, 3.5]])
    objective({"x": x_value})[objective.name].backward()
    expected = (2 * (p.value.detach() - x_value)).sum(dim=0)
    torch.testing.assert_close(p.value.grad, expected)


# --------------------------------------------------------------------------------- objectives
def test_objective_default_and_custom_names(data):
    x = variable("x")
    objective = x.minimize()
    assert objective.name == "x_mean"
    torch.testing.assert_close(objective(data)["x_mean"], data["x"].mean())
    named = (x ** 2).minimize(metric=torch.sum, weight=2.0, name="obj")
    assert list(named(data)) == ["obj"]
    torch.testing.assert_close(named(data)["obj"], 2.0 * (data["x"] ** 2).sum())
    named.name = "renamed"
    assert list(named(data)) == ["renamed"] and named.output_keys == ["renamed"]
    assert Objective(x, name="foo").input_keys == ["x"]


def test_objective_weight_multiplication_and_gradient():
    x = variable("x")
    objective = 3 * (2.0 * x.minimize())
    assert objective.weight == 6.0
    x_value = torch.tensor([1.0, 3.0], requires_grad=True)
    torch.testing.assert_close(objective.grad({"x": x_value}), torch.full((2,), 3.0))


def test_objective_rejects_non_variables():
    with pytest.raises(TypeError, match="needs a Variable"):
        Objective(torch.ones(2))


# -------------------------------------------------------------------------------- constraints
LEFT = np.array([[1.0], [4.0], [-2.0]])
RIGHT = np.array([[2.0], [1.0], [1.0]])


@pytest.mark.parametrize("comparator, value", [(Eq, LEFT - RIGHT), (LT, LEFT - RIGHT), (GT, RIGHT - LEFT)])
@pytest.mark.parametrize("norm", [1, 2])
def test_comparators_by_hand(comparator, value, norm):
    violation = np.abs(value) if comparator is Eq else np.maximum(value, 0.0)
    violation = violation ** norm
    loss, got_value, got_violation = comparator(norm=norm)(torch.tensor(LEFT), torch.tensor(RIGHT))
    np.testing.assert_allclose(got_value.numpy(), value)
    np.testing.assert_allclose(got_violation.numpy(), violation)
    assert loss.item() == pytest.approx(violation.mean())


def test_comparator_rejects_other_norms():
    with pytest.raises(ValueError, match="norm must be 1"):
        LT(norm=3)


@pytest.mark.parametrize("build, comparator, name", [
    (lambda x, y: x <= 1, LT, "x_lt_1"), (lambda x, y: x < 1, LT, "x_lt_1"),
    (lambda x, y: x >= y, GT, "x_gt_y"), (lambda x, y: x > y, GT, "x_gt_y"),
    (lambda x, y: x == 0.5, Eq, "x_eq_0.5"), (lambda x, y: 1 <= x, GT, "x_gt_1"),
    (lambda x, y: torch.zeros(3) >= x, LT, None)])
def test_comparisons_build_constraints(build, comparator, name, data):
    constraint = build(variable("x"), variable("y"))
    assert isinstance(constraint, Constraint) and type(constraint.comparator) is comparator
    if name is not None:
        assert constraint.name == name
    out = constraint(data)
    assert list(out) == constraint.output_keys
    loss, value, violation = comparator()(constraint.left(data), constraint.right(data))
    torch.testing.assert_close(out[constraint.name], loss)
    torch.testing.assert_close(out[f"{constraint.name}_value"], value)
    torch.testing.assert_close(out[f"{constraint.name}_violation"], violation)


def test_constraint_names_use_display_names():
    p = variable(torch.ones(3), display_name="p")
    assert (variable("y") >= p).name == "y_gt_p"
    assert (variable("x")[:, [0]] <= 1).name.startswith("slice_")


def test_constraint_weights_and_squared_penalty():
    x = variable("x")
    data = {"x": torch.tensor([[1.0], [3.0]])}
    base = x <= 1
    assert (5.0 * base).weight == 5.0 and (base * 3).weight == 3.0 and (2 * (3 * base)).weight == 6.0
    squared = 2.0 * (base ^ 2)
    assert squared.comparator.norm == 2 and squared.name == base.name
    out = squared(data)
    torch.testing.assert_close(out[squared.name], torch.tensor(2.0 * np.mean([0.0, 4.0]), dtype=torch.float32))
    torch.testing.assert_close(out[f"{squared.name}_violation"], torch.tensor([[0.0], [4.0]]))
    with pytest.raises(TypeError, match="real number"):
        "w" * base


def test_constraint_rename_changes_output_keys(data):
    constraint = variable("x") <= 1
    constraint.name = "c1"
    assert set(constraint(data)) == {"c1", "c1_value", "c1_violation"}
    constraint.update_name("c2")
    assert set(constraint(data)) == {"c2", "c2_value", "c2_violation"}
    assert constraint.variable_names == ["x", "1"]


def test_constraint_grad():
    x = variable("x")
    constraint = x ** 2 <= 1
    x_value = torch.tensor([[1.0], [2.0]], requires_grad=True)
    # d/dx mean(relu(x^2 - 1)) = 2x/2 where x^2 > 1
    torch.testing.assert_close(constraint.grad({"x": x_value}, "x"), torch.tensor([[0.0], [2.0]]))
    with pytest.raises(ValueError, match="input_key"):
        (x <= variable("y")).grad({"x": x_value, "y": x_value})


def test_constraint_has_no_truth_value():
    with pytest.raises(TypeError, match="no truth value"):
        bool(variable("x") <= 1)


def test_constraints_move_with_module_dtype():
    constraint = variable("x") <= variable(np.ones((1, 2)))
    constraint.double()
    out = constraint({"x": torch.zeros(3, 2, dtype=torch.float64)})
    assert out[f"{constraint.name}_value"].dtype == torch.float64


# ---------------------------------------------------------------------------------------- Loss
def test_loss_term(data):
    term = Loss(["x", "y"], lambda x, y: (x * y).sum(), weight=2.0, name="xy")
    out = term(data)
    torch.testing.assert_close(out["xy"], 2.0 * (data["x"] * data["y"]).sum())
    assert term.output_keys == ["xy"] and term.input_keys == ["x", "y"]
    x_value = data["x"].clone().requires_grad_(True)
    torch.testing.assert_close(term.grad({"x": x_value, "y": data["y"]}, "x"), 2.0 * data["y"])
    with pytest.raises(KeyError, match=r"\['y'\]"):
        term({"x": data["x"]})
    with pytest.raises(TypeError, match="list of str"):
        Loss("xy", torch.sum)
