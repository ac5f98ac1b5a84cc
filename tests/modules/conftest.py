"""Fixtures for the building-block tests."""
import pytest

from neuromancer.modules import blocks as B


def _small_block(name):
    """A tiny instance of the block registered as ``name``: 3 inputs, 2 outputs (pos_def: 1, poly2: its 9)."""
    cls = B.blocks[name]
    if name == "pos_def":
        return cls(B.InputConvexNN(3, 1, hsizes=[4]))
    if name == "poly2":
        return cls()
    if name == "kan":
        return cls(3, 2, hsizes=[4], grid_sizes=[3])
    if name == "stacked_mlp":
        return cls(3, 2, h_sf_size=[4], n_stacked_mf_layers=2, h_linear_sizes=[3], h_nonlinear_sizes=[4])
    return cls(3, 2, hsizes=[4])


@pytest.fixture
def small_block():
    """``small_block(name)``: a tiny instance of every block of the registry, for shape and vmap tests."""
    return _small_block
