"""The map registries as upstream notebooks reach them: ``linear.maps``, ``square_maps``, ``slim.slim``."""
import pytest
import torch

import neuromancer.slim as slim_package
from neuromancer.slim import linear, slim


def test_linear_module_holds_the_registry_the_package_exports():
    assert linear.maps is slim_package.maps
    assert {"linear", "softSVD", "spectral", "psd", "Power_bound"} <= set(linear.maps)
    assert linear.maps["softSVD"] is linear.SVDLinear


def test_square_maps_are_registered_classes_or_spectral_variants():
    registered = set(linear.maps.values())
    assert linear.PSDLinear in linear.square_maps and linear.PSDLinear in registered
    assert linear.Linear not in linear.square_maps


def test_from_slim_import_slim_gives_the_package():
    assert slim is slim_package
    layer = slim.maps["linear"](3, 2)
    assert layer(torch.ones(4, 3)).shape == (4, 2)


@pytest.mark.parametrize("name", sorted(linear.maps))
def test_every_registered_map_builds_a_square_layer(name):
    layer = linear.maps[name](4, 4)
    assert layer(torch.randn(5, 4)).shape == (5, 4)
