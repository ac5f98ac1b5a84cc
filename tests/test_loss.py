"""Tests of neuromancer.loss: PenaltyLoss, BarrierLoss, AugmentedLagrangeLoss, checked by hand."""
import numpy as np
import pytest
import torch

from neuromancer.constraint import Loss, variable
from neuromancer.loss import AggregateLoss, AugmentedLagrangeLoss, BarrierLoss, PenaltyLoss

X = np.array([[0.2, 0.9], [2.0, -1.0], [0.0, 0.5], [-0.3, 0.1]])
Y = np.array([[1.0, 0.1], [1.0, 1.0], [1.0, -2.0], [0.0, 0.0]])


def make_terms():
    """Objective mean(x^2); c1: x <= 1 (2 columns); c2: 3 * (x0 >= y1)^2; c3: x1 == y0 (equality)."""
    x, y = variable("x"), variable("y")
    objective = (x ** 2).minimize(name="obj")
    c1 = x <= 1
    c1.name = "c1"
    c2 = 3.0 * ((x[:, [0]] >= y[:, [1]]) ^ 2)
    c2.name = "c2"
    c3 = x[:, [1]] == y[:, [0]]
    c3.name = "c3"
    return [objective], [c1, c2, c3]


def batch(**extra):
    return {"x": torch.tensor(X, dtype=torch.float32), "y": torch.tensor(Y, dtype=torch.float32), **extra}


def by_hand():
    """Values and violations per constraint, computed with numpy."""
    v1 = X - 1.0
    v2 = Y[:, [1]] - X[:, [0]]
    v3 = X[:, [1]] - Y[:, [0]]
    return {"c1": (v1, np.maximum(v1, 0), 1.0), "c2": (v2, np.maximum(v2, 0) ** 2, 3.0),
            "c3": (v3, np.abs(v3), 1.0)}


def test_penalty_loss_by_hand():
    out = PenaltyLoss(*make_terms())(batch())
    hand = by_hand()
    objective = np.mean(X ** 2)
    penalty = sum(weight * violation.mean() for _, violation, weight in hand.values())
    assert out["objective_loss"].item() == pytest.approx(objective)
    assert out["penalty_loss"].item() == pytest.approx(penalty)
    assert out["loss"].item() == pytest.approx(objective + penalty)
    assert out["obj"].item() == pytest.approx(objective)
    values = np.concatenate([hand[name][0] for name in ("c1", "c2", "c3")], axis=1)
    violations = np.concatenate([hand[name][1] for name in ("c1", "c2", "c3")], axis=1)
    np.testing.assert_allclose(out["C_values"].numpy(), values, rtol=1e-6)
    np.testing.assert_allclose(out["C_violations"].numpy(), violations, rtol=1e-6)
    np.testing.assert_allclose(out["C_eq_values"].numpy(), values[:, 3:], rtol=1e-6)
    np.testing.assert_allclose(out["C_ineq_values"].numpy(), values[:, :3], rtol=1e-6)
    np.testing.assert_allclose(out["C_eq_violations"].numpy(), violations[:, 3:], rtol=1e-6)
    np.testing.assert_allclose(out["C_ineq_violations"].numpy(), violations[:, :3], rtol=1e-6)
    for name in ("c1", "c2", "c3"):
        assert {name, f"{name}_value", f"{name}_violation"} <= set(out)


def test_penalty_loss_keeps_inputs_and_does_not_mutate_them():
    data = batch()
    out = PenaltyLoss(*make_terms())(data)
    assert set(data) == {"x", "y"} and out["x"] is data["x"]


def test_empty_term_lists():
    objectives, constraints = make_terms()
    only_objective = PenaltyLoss(objectives, [])(batch())
    assert only_objective["penalty_loss"].item() == 0.0
    assert not any(key.startswith("C_") for key in only_objective)
    only_constraints = PenaltyLoss([], constraints)(batch())
    assert only_constraints["objective_loss"].item() == 0.0
    assert only_constraints["loss"].item() == pytest.approx(only_constraints["penalty_loss"].item())


def test_loss_terms_as_objectives_and_keys():
    term = Loss(["x"], lambda x: x.abs().sum(), weight=0.5, name="l1")
    loss = PenaltyLoss([term], make_terms()[1])
    out = loss(batch())
    assert out["l1"].item() == pytest.approx(0.5 * np.abs(X).sum())
    assert set(loss.input_keys) == {"x", "y"}
    assert loss.output_keys[:3] == ["loss", "objective_loss", "penalty_loss"]


def test_bad_terms_raise_type_errors_naming_the_item():
    objectives, constraints = make_terms()
    with pytest.raises(TypeError, match=r"constraints\[1\] is a str"):
        PenaltyLoss(objectives, [constraints[0], "foo"])
    with pytest.raises(TypeError, match=r"objectives\[0\] is a str"):
        PenaltyLoss(["foo"], [])
    with pytest.raises(TypeError, match="single Objective"):
        PenaltyLoss(objectives[0], constraints)


def test_a_constraint_among_the_objectives_adds_its_penalty_to_the_objective_loss():
    # Upstream system-identification scripts minimise tracking terms written as (xhat == x)^2.
    _, (c1, c2, c3) = make_terms()
    out = PenaltyLoss([c2, c3], [c1])(batch())
    expected = by_hand()
    objective = sum(weight * violation.mean() for _, violation, weight in (expected["c2"], expected["c3"]))
    assert out["objective_loss"].item() == pytest.approx(objective, rel=1e-6)
    assert out["penalty_loss"].item() == pytest.approx(expected["c1"][1].mean(), rel=1e-6)
    assert out["C_values"].shape == (len(X), 2), "only the constraints list feeds the C_* summaries"
    torch.testing.assert_close(out["c3_violation"], torch.tensor(expected["c3"][1], dtype=torch.float32))


def test_same_named_terms_are_all_penalised_under_distinct_keys():
    x = variable("x")
    out = PenaltyLoss([], [x <= 1, 2.0 * (x <= 1)])(batch())
    violation = torch.relu(torch.tensor(X, dtype=torch.float32) - 1).mean()
    torch.testing.assert_close(out["x_lt_1"], violation)
    torch.testing.assert_close(out["x_lt_1_1"], 2 * violation)
    torch.testing.assert_close(out["penalty_loss"], 3 * violation)


def test_aggregate_loss_is_abstract():
    with pytest.raises(TypeError):
        AggregateLoss([], [])


def test_adding_and_scaling_losses():
    objectives, constraints = make_terms()
    first = PenaltyLoss(objectives, constraints[:1])
    second = PenaltyLoss([], constraints[1:])
    combined = first + second
    assert len(combined.constraints) == 3
    scaled = 2 * PenaltyLoss(*make_terms())
    assert scaled(batch())["loss"].item() == pytest.approx(2 * PenaltyLoss(*make_terms())(batch())["loss"].item())
    with pytest.raises(TypeError, match="same kind"):
        BarrierLoss([], []) + first
    augmented = 0.5 * AugmentedLagrangeLoss(*make_terms(), train_data=4, inner_loop=3)
    assert isinstance(augmented, AugmentedLagrangeLoss) and augmented.inner_loop == 3
    assert int(augmented.nsamples) == 4 and augmented.constraints[0].weight == 0.5


def test_penalty_loss_trains_a_trainable_variable():
    p = variable(torch.zeros(1, requires_grad=True))
    loss = PenaltyLoss([(p - 3.0).minimize(metric=lambda v: (v ** 2).sum())], [2.0 * (p <= 1.0)])
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        loss({})["loss"].backward()
        optimizer.step()
    # minimiser of (p - 3)^2 + 2 relu(p - 1): 2(p - 3) + 2 = 0 -> p = 2
    assert p.value.item() == pytest.approx(2.0, abs=1e-3)


BARRIERS = {
    "log10": lambda v, alpha, shift: -np.log10(-v),
    "log": lambda v, alpha, shift: -np.log(-v),
    "inverse": lambda v, alpha, shift: -1.0 / v,
    "softexp": lambda v, alpha, shift: (np.exp(alpha * v) - 1) / alpha + alpha,
    "softlog": lambda v, alpha, shift: -np.log(1 + alpha * (-v - alpha)) / alpha,
    "expshift": lambda v, alpha, shift: np.exp(v + shift),
}


@pytest.mark.parametrize("name", sorted(BARRIERS))
def test_barrier_loss_by_hand(name):
    alpha, shift, upper = 0.4, 0.7, 1.5
    out = BarrierLoss(*make_terms(), barrier=name, upper_bound=upper, shift=shift, alpha=alpha)(batch())
    hand = by_hand()
    penalty, barrier_total = 0.0, 0.0
    for constraint, (value, violation, weight) in hand.items():
        if constraint == "c3":  # equality: plain penalty
            penalty += weight * violation.mean()
            continue
        active = value >= 0
        with np.errstate(all="ignore"):
            raw = BARRIERS[name](np.where(active, -1.0, value), alpha, shift)
        barrier = np.where(active, 0.0, np.clip(np.nan_to_num(raw, nan=0, posinf=0, neginf=0), 0, upper))
        np.testing.assert_allclose(out[f"{constraint}_barrier"].numpy(), barrier, rtol=1e-5, atol=1e-7)
        penalty += weight * np.mean(active * violation)
        part = weight * np.mean(~active * barrier)
        barrier_total += part
        penalty += part
    assert out["barrier_loss"].item() == pytest.approx(barrier_total, rel=1e-5)
    assert out["penalty_loss"].item() == pytest.approx(penalty, rel=1e-5)
    assert out["loss"].item() == pytest.approx(np.mean(X ** 2) + penalty, rel=1e-5)


def test_barrier_accepts_callables_and_rejects_unknown_names():
    loss = BarrierLoss(*make_terms(), barrier=lambda v: -v)
    out = loss(batch())
    value = by_hand()["c1"][0]
    np.testing.assert_allclose(out["c1_barrier"].numpy(), np.where(value < 0, np.minimum(-value, 1.0), 0.0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown barrier 'nope'"):
        BarrierLoss([], [], barrier="nope")


def test_barrier_gradients_are_finite_at_infeasible_points():
    x = variable("x")
    constraint = x <= 1
    constraint.name = "c"
    x_value = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    BarrierLoss([], [constraint], barrier="log")({"x": x_value})["loss"].backward()
    assert torch.isfinite(x_value.grad).all()


def reference_augmented_lagrangian(epochs, inner_loop, sigma, mu_max, mu_init, eta):
    """Independent numpy re-statement of the documented update rules (full batch)."""
    hand = by_hand()
    values = np.concatenate([hand[name][0] for name in ("c1", "c2", "c3")], axis=1)
    violations = np.concatenate([hand[name][1] for name in ("c1", "c2", "c3")], axis=1)
    equality = np.array([False, False, False, True])
    n = X.shape[0]
    lm = np.zeros((n, 4))
    mu = np.full((n, 1), mu_init)
    best = np.full((n, 1), np.finfo(np.float32).max, dtype=np.float64)
    norms_sq = (violations ** 2).sum(axis=1, keepdims=True)
    norms = np.sqrt(norms_sq)
    losses = []
    for epoch in range(epochs):
        if epoch % inner_loop == 0 and epoch != 0:
            improved = norms < eta * best
            step = lm + mu * values * improved
            lm = np.where(equality, step, np.maximum(step, 0))
            best = np.where(improved, norms, best)
            mu = np.minimum(np.where(improved, mu, sigma * mu), mu_max)
        lagrangian = np.mean((lm * np.where(equality, values, np.maximum(values, 0))).sum(axis=1))
        losses.append((np.mean(X ** 2) + lagrangian + np.mean(mu * norms_sq), lagrangian, mu.mean()))
    return losses


def test_augmented_lagrangian_by_hand():
    settings = dict(inner_loop=2, sigma=3.0, mu_max=5.0, mu_init=0.5, eta=0.9)
    loss = AugmentedLagrangeLoss(*make_terms(), train_data=torch.utils.data.TensorDataset(torch.zeros(4)),
                                 **settings)
    expected = reference_augmented_lagrangian(epochs=7, **settings)
    for epoch, (total, lagrangian, mean_mu) in enumerate(expected):
        # two equal batches per epoch exercise the per-sample indexing; their mean is the full-batch value
        outs = [loss({"x": batch()["x"][index], "y": batch()["y"][index], "epoch": epoch, "index": index})
                for index in (torch.tensor([0, 2]), torch.tensor([1, 3]))]
        assert np.mean([o["loss"].item() for o in outs]) == pytest.approx(total, rel=1e-5)
        assert np.mean([o["con_lagrangian"].item() for o in outs]) == pytest.approx(lagrangian, rel=1e-5, abs=1e-7)
        assert outs[-1]["mu"].item() == pytest.approx(mean_mu, rel=1e-6)
    out = loss(batch(epoch=7, index=torch.arange(4)))
    violations = np.concatenate([v[1] for v in by_hand().values()], axis=1)
    assert out["unscaled_penalty_loss"].item() == pytest.approx(np.mean((violations ** 2).sum(axis=1)), rel=1e-5)
    loss.eval()
    evaluated = loss(batch())
    assert evaluated["loss"].item() == pytest.approx(evaluated["objective_loss"].item()
                                                     + evaluated["penalty_loss"].item())


def test_augmented_lagrangian_needs_index_and_restores_state():
    loss = AugmentedLagrangeLoss(*make_terms(), train_data=4, inner_loop=1)
    with pytest.raises(KeyError, match="'index'"):
        loss(batch(epoch=0))
    with pytest.raises(KeyError, match="'epoch'"):
        loss(batch(index=torch.arange(4)))
    loss(batch(epoch=1, index=torch.arange(4)))
    fresh = AugmentedLagrangeLoss(*make_terms(), train_data=4, inner_loop=1)
    fresh.load_state_dict(loss.state_dict())
    torch.testing.assert_close(fresh.lm, loss.lm)
    assert not fresh.init
    with pytest.raises(TypeError, match="train_data"):
        AugmentedLagrangeLoss([], [], train_data=object())


def test_expression_shared_by_several_terms_is_evaluated_once_per_forward():
    calls = []

    def counted(value):
        calls.append(1)
        return value * 2.0

    x = variable("x")
    doubled = variable([x], counted)
    objective = (doubled ** 2).minimize(name="obj")
    upper, lower = doubled <= 1.0, doubled >= -1.0
    upper.name, lower.name = "upper", "lower"
    loss = PenaltyLoss([objective], [upper, lower])
    for _ in range(2):
        calls.clear()
        out = loss(batch())
        assert len(calls) == 1
    doubled_x = 2.0 * X
    expected = np.mean(doubled_x ** 2) + np.maximum(doubled_x - 1, 0).mean() + np.maximum(-1 - doubled_x, 0).mean()
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)


class PowCounter(torch.overrides.TorchFunctionMode):
    """Counts the power operations torch executes inside the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if "pow" in getattr(func, "__name__", ""):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_equal_pure_subexpressions_built_separately_are_computed_once():
    x = variable("x")

    def radius():
        return x[:, [0]] ** 2 + x[:, [1]] ** 2

    inner, outer = radius() >= 0.25, radius() <= 4.0
    inner.name, outer.name = "inner", "outer"
    loss = PenaltyLoss([], [inner, outer])
    with PowCounter() as counter:
        out = loss(batch())
    assert counter.count == 2
    squared = (X ** 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["inner_value"].numpy(), 0.25 - squared, rtol=1e-6)
    np.testing.assert_allclose(out["outer_value"].numpy(), squared - 4.0, rtol=1e-6)


def test_objectives_and_constraints_can_be_calculated_separately():
    x, y = variable("x"), variable("y")
    objective = (x ** 2).minimize(name="obj")
    constraint = y <= 0.5
    constraint.name = "c"
    loss = PenaltyLoss([objective], [constraint])
    only_x = {"x": torch.tensor(X, dtype=torch.float32)}
    only_y = {"y": torch.tensor(Y, dtype=torch.float32)}
    assert loss.calculate_objectives(only_x)["objective_loss"].item() == pytest.approx(np.mean(X ** 2))
    assert loss.calculate_constraints(only_y)["penalty_loss"].item() == \
        pytest.approx(np.maximum(Y - 0.5, 0).mean())
    with pytest.raises(KeyError, match="'y' is not in the data"):
        loss(only_x)


def test_loss_follows_terms_changed_after_a_forward():
    objectives, constraints = make_terms()
    loss = PenaltyLoss(objectives, constraints)
    loss(batch())
    constraints[0].right = variable("y")
    constraints[0].name = "x_below_y"
    extra = variable("x") >= -1.0
    extra.name = "extra"
    loss.constraints.append(extra)
    out = loss(batch())
    np.testing.assert_allclose(out["x_below_y_value"].numpy(), X - Y, rtol=1e-6)
    np.testing.assert_allclose(out["extra_violation"].numpy(), np.maximum(-1.0 - X, 0), rtol=1e-6)
    assert "c1" not in out and out["C_values"].shape == (4, 6)


def test_forward_hooks_on_terms_still_run():
    objectives, constraints = make_terms()
    seen = []
    objectives[0].register_forward_hook(lambda module, inputs, output: {module.name: 10 * output[module.name]})
    constraints[0].register_forward_pre_hook(lambda module, inputs: seen.append(module.name))
    out = PenaltyLoss(objectives, constraints)(batch())
    assert seen == ["c1"]
    assert out["obj"].item() == pytest.approx(10 * np.mean(X ** 2))
    assert out["objective_loss"].item() == pytest.approx(10 * np.mean(X ** 2))


def test_subclass_overriding_calculate_constraints_is_used_by_forward():
    class NoPenalty(PenaltyLoss):
        def calculate_constraints(self, input_dict):
            output = super().calculate_constraints(input_dict)
            output["penalty_loss"] = torch.zeros(())
            return output

    out = NoPenalty(*make_terms())(batch())
    assert out["penalty_loss"].item() == 0.0
    assert out["loss"].item() == pytest.approx(np.mean(X ** 2))


def test_only_equality_or_only_inequality_constraints_split_into_full_and_empty():
    x, y = variable("x"), variable("y")
    equality, inequality = x == y, x <= y
    equality.name, inequality.name = "eq", "ineq"
    for constraint, full, empty in ((equality, "C_eq", "C_ineq"), (inequality, "C_ineq", "C_eq")):
        out = PenaltyLoss([], [constraint])(batch())
        np.testing.assert_allclose(out[f"{full}_values"].numpy(), X - Y, rtol=1e-6)
        np.testing.assert_allclose(out[f"{full}_violations"].numpy(), out["C_violations"].numpy())
        assert out[f"{empty}_values"].shape == (4, 0) and out[f"{empty}_violations"].shape == (4, 0)


def test_constraints_with_different_batch_sizes_raise():
    x, y = variable("x"), variable("y")
    first, second = x <= 1.0, y <= 1.0
    first.name, second.name = "first", "second"
    data = {"x": torch.zeros(4, 2), "y": torch.zeros(3, 2)}
    with pytest.raises(ValueError, match=r"different batch sizes \[3, 4\]"):
        PenaltyLoss([], [first, second])(data)


def test_copies_and_pickles_of_a_used_loss_evaluate_their_own_variables():
    import copy
    import io

    weight = variable(torch.tensor([[1.0, -1.0]], requires_grad=True), display_name="w")
    x = variable("x")
    objective = ((x * weight) ** 2).minimize(name="obj")
    constraint = x * weight <= torch.tensor([[0.5, 0.5]])
    constraint.name = "c"
    loss = PenaltyLoss([objective], [constraint])
    expected = loss(batch())["loss"].item()
    buffer = io.BytesIO()
    torch.save(loss, buffer)
    buffer.seek(0)
    for twin in (copy.deepcopy(loss), torch.load(buffer, weights_only=False)):
        assert twin(batch())["loss"].item() == pytest.approx(expected)
        twin(batch())["loss"].backward()
        own = next(twin.parameters())
        assert own is not weight.value and own.grad is not None and weight.value.grad is None
    doubled = loss.to(torch.float64)(batch())
    assert doubled["c_value"].dtype == torch.float64  # the plan reads the moved parameter and buffer
    assert doubled["loss"].item() == pytest.approx(expected, rel=1e-6)
