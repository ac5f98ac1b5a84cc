"""Fixtures shared by the whole suite."""
import copy
import json
from pathlib import Path

import pytest
import torch

# The upstream 1.5 API reference, a copy of ../shared/api kept in tests/data so it is read everywhere.
SURFACE = Path(__file__).resolve().parent / "data" / "neuromancer-1.5-surface.json"


@pytest.fixture(scope="session")
def upstream_registries():
    """The registry keys of upstream NeuroMANCER 1.5 (``registries`` of the API reference)."""
    return json.loads(SURFACE.read_text())["registries"]


class _Call(torch.nn.Module):
    """``call(module, *inputs)`` as a module's forward, so that ``functional_call`` reaches ``module``."""

    def __init__(self, module, call):
        super().__init__()
        self.module, self.call = module, call

    def forward(self, *inputs):
        return _tensors(self.call(self.module, *inputs))


def _tensors(output):
    """The tensors of an output (a tensor, a tuple or list, or a dict, in sorted key order)."""
    items = [output[key] for key in sorted(output)] if isinstance(output, dict) else \
        list(output) if isinstance(output, (tuple, list)) else [output]
    return tuple(item for item in items if isinstance(item, torch.Tensor))


def _copies_with_different_weights(module, count, generator):
    """``count`` deep copies of ``module``, every floating parameter moved by its own noise."""
    copies = []
    for _ in range(count):
        copy_ = copy.deepcopy(module)
        with torch.no_grad():
            for parameter in copy_.parameters():
                if parameter.is_floating_point():
                    parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
        copies.append(copy_)
    return copies


def _cotangent(output, generator):
    return torch.randn(output.shape, generator=generator, dtype=output.dtype)


def assert_vmap_matches_loop(module, *inputs, call=None, members=3, rtol=1e-6, atol=1e-9):
    """Check that ``torch.func.vmap`` over stacked copies of ``module`` equals a Python loop over them.

    The copies get different weights. The population is evaluated as a population trainer does it
    (``stack_module_state``, one ``vmap`` of ``functional_call`` with the inputs shared); each
    member's outputs, buffers after the call (in-place updates stay per member) and parameter
    gradients (of random, per-member weighted sums of the outputs) must equal those of the same copy
    run alone. A module without parameters or buffers is compared over ``members`` different inputs
    instead. At least one output must differ between members, so the check cannot pass by
    computing one member for all.

    :param call: ``call(module, *inputs)`` giving a tensor, tuple or dict (non-tensors are ignored);
        default ``module(*inputs)``.
    """
    from torch.func import functional_call, stack_module_state, vmap

    generator = torch.Generator().manual_seed(1234)
    wrapped = _Call(module, call or (lambda m, *args: m(*args)))
    copies = _copies_with_different_weights(wrapped, members, generator)
    params, buffers = stack_module_state(copy.deepcopy(copies))
    per_member_inputs = not params and not buffers
    if per_member_inputs:
        stacked = tuple(torch.stack([x + 0.25 * k for k in range(members)]) if torch.is_tensor(x) else x
                        for x in inputs)
        in_dims = (None, None, *(0 if torch.is_tensor(x) else None for x in inputs))
        member_inputs = [tuple(x[k] if torch.is_tensor(x) else x for x in stacked) for k in range(members)]
    else:
        stacked, in_dims = inputs, (0, 0, *(None for _ in inputs))
        member_inputs = [inputs] * members

    def member(p, b, *args):
        return functional_call(wrapped, (p, b), args)

    population = vmap(member, in_dims=in_dims, randomness="different")(params, buffers, *stacked)
    alone = [copy_(*args) for copy_, args in zip(copies, member_inputs, strict=True)]
    assert population and len(population) == len(alone[0])
    for index, output in enumerate(population):
        for k in range(members):
            torch.testing.assert_close(output[k], alone[k][index], rtol=rtol, atol=atol, equal_nan=True)
    assert any(not torch.equal(output[0], output[1]) for output in population), "members gave equal outputs"
    for name, buffer in buffers.items():
        for k, copy_ in enumerate(copies):
            torch.testing.assert_close(buffer[k], copy_.get_buffer(name), rtol=rtol, atol=atol)
    differentiable = [i for i, out in enumerate(population) if out.requires_grad and out.is_floating_point()]
    if not differentiable:
        return
    weights = {i: _cotangent(population[i], generator) for i in differentiable}
    sum((population[i] * weights[i]).sum() for i in differentiable).backward()
    for k in range(members):
        terms = [(alone[k][i] * weights[i][k]).sum() for i in differentiable if alone[k][i].requires_grad]
        if terms:
            sum(terms).backward()
    for name, stacked_parameter in params.items():
        if not stacked_parameter.requires_grad:
            continue
        for k, copy_ in enumerate(copies):
            own = copy_.get_parameter(name).grad
            got = stacked_parameter.grad[k] if stacked_parameter.grad is not None else None
            if own is None:
                assert got is None or not got.any(), f"{name}: member {k} got a gradient it should not have"
            else:
                torch.testing.assert_close(got, own, rtol=rtol, atol=atol, equal_nan=True,
                                           msg=lambda m, n=name: f"grad of {n}: {m}")


@pytest.fixture
def vmap_matches_loop():
    """`assert_vmap_matches_loop`, with float64 as the default dtype so that only real differences show."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    try:
        yield assert_vmap_matches_loop
    finally:
        torch.set_default_dtype(previous)
