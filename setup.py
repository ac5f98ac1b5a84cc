"""Packaging for neuromancer. Dependency ranges admit the CPU build of torch 2.13.0."""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "neuromancer" / "version.py").read_text()).group(1)

# Why each dependency is here:
#   torch       - tensors, autograd and the nn.Module base of every NeuroMANCER object
#   numpy       - data generation and the psl emulators' state arrays
#   scipy       - accurate ODE integration in psl (solve_ivp) and reference solvers in tests
#   matplotlib  - the plotting helpers (imported only when a plot is drawn)
#   lightning   - LitTrainer: devices, DDP, checkpoints, early stopping, logging, profiling
#   tensorboard - the default logger of LitTrainer writes TensorBoard event files
INSTALL_REQUIRES = [
    "torch>=2.1,<3",
    "numpy>=1.24",
    "scipy>=1.10",
    "matplotlib>=3.7",
    # 2.5.3: earlier releases answer Ctrl-C with the site builtin exit(), which Jupyter kernels lack
    # (a NameError instead of a clean stop in notebooks). .ci/constraints-oldest.txt tests the floor.
    "lightning>=2.5.3,<3",
    "tensorboard>=2.14",
    "torchdiffeq>=0.2.3",  # adaptive and adjoint ODE solvers behind dynamics.integrators.DiffEqIntegrator
]

SWEEPS = [
    # sweep runs are wandb runs: online sweeps in the wandb UI, offline runs synced later;
    # 0.19.10 is the first with wandb.init(reinit="create_new"), which sweeps use.
    "wandb>=0.19.10",
    "optuna>=4",    # the search engine of offline sweeps (random, grid, Gaussian-process bayes, hyperband)
]

# Sweeps shared across machines on PostgreSQL (sweep_storage='postgresql://...'): psycopg 3 is the
# driver, with its compiled libpq; SQLAlchemy 2.0 is the first with a psycopg 3 dialect.
POSTGRESQL = ["psycopg[binary]>=3.1", "sqlalchemy>=2.0"]

# cvxpylayers (it brings cvxpy) is the differentiable projection of the cvxpy-layers tutorial.
TUTORIALS = ["cvxpylayers>=0.1.6"]
# nbclient, nbformat and ipykernel execute the tutorial notebooks in the tests.
NOTEBOOK_RUNNER = ["nbclient>=0.7", "nbformat>=5.7", "ipykernel>=6.17"]  # ipykernel 6.0's metadata breaks pip
# Sphinx builds the documentation site; MyST-NB reads its Markdown pages and shows the tutorial
# notebooks with the outputs they were saved with (it brings myst-parser); sphinx-mathjax-offline
# serves MathJax with the site, so formulas render without a network (CI has none, nor do many clusters).
DOCS = ["sphinx>=7.1", "sphinx-rtd-theme>=2", "myst-nb>=1", "sphinx-mathjax-offline>=0.0.2"]
# Playwright drives a real Chromium (Debian's, which .ci/services installs) through the built site.
SITE_TEST = ["playwright>=1.40"]

EXTRAS = {
    "sweeps": SWEEPS,
    "postgresql": [*SWEEPS, *POSTGRESQL],
    # pytest runs the suite; pydot draws Problem/System graphs; the sweep tests need the sweep extras
    # and the PostgreSQL driver (tests/trainers/test_sweep_postgres.py); tests/docs builds the
    # documentation site and reads it in a browser.
    "tests": ["pytest>=7.4", "pydot>=1.4", *SWEEPS, *POSTGRESQL, *TUTORIALS, *NOTEBOOK_RUNNER, *DOCS, *SITE_TEST],
    # pydot draws graphs in the tutorials.
    "examples": ["pydot>=1.4", *SWEEPS, *TUTORIALS],
    "docs": DOCS,
    # The lint checks of .ci/run and pre-commit; pinned because each release finds new things.
    "dev": ["ruff==0.17.6", "mypy==2.4.1", "pre-commit>=3"],
}

setup(
    name="neuromancer",
    version=VERSION,
    description="Differentiable constrained optimization, modeling and control, trained with PyTorch Lightning",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["neuromancer", "neuromancer.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Mathematics",
    ],
)
