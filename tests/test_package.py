"""Package-level promises: cheap imports and the upstream import paths."""
import subprocess
import sys

import pytest

HEAVY = ("lightning", "wandb", "cvxpy", "optuna", "scipy", "matplotlib")


def _modules_loaded_after(statement: str) -> set[str]:
    """Run ``statement`` in a fresh interpreter and return the heavy top-level modules it loaded."""
    code = f"import sys; {statement}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split()) & set(HEAVY)


@pytest.mark.parametrize("statement", [
    "import neuromancer",
    "import neuromancer.constraint, neuromancer.loss, neuromancer.system",
    "import neuromancer.problem, neuromancer.dataset, neuromancer.callbacks, neuromancer.loggers",
    "import neuromancer.trainer, neuromancer.utils",
    "import neuromancer.modules.blocks, neuromancer.slim",
    "import neuromancer.psl, neuromancer.dynamics, neuromancer.plot",
])
def test_modeling_layer_imports_no_heavy_dependency(statement):
    assert _modules_loaded_after(statement) == set()


def test_submodules_load_on_attribute_access():
    import neuromancer

    assert neuromancer.constraint.variable is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        neuromancer.not_a_module  # noqa: B018


def test_upstream_import_paths_resolve_to_the_lightning_classes():
    from neuromancer.dataset import LitDataModule
    from neuromancer.problem import LitProblem
    from neuromancer.trainer import LitTrainer, Trainer
    from neuromancer.trainers import lightning
    from neuromancer.trainers.trainer import Trainer as ClassicTrainer
    from neuromancer.utils import load_state_dict_lightning

    assert LitTrainer is lightning.LitTrainer
    assert LitProblem is lightning.LitProblem
    assert LitDataModule is lightning.LitDataModule
    assert Trainer is ClassicTrainer
    assert callable(load_state_dict_lightning)
