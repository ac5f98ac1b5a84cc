"""Sphinx configuration for the NeuroMANCER documentation.

Build it as CI does, with warnings as errors: ``sphinx-build -W docs docs/_build/html``; every
cross-reference must resolve (``nitpicky``, below). The tutorials are the executed notebooks of
``examples/lightning_integration_examples`` (``docs/tutorials`` links to them), shown with the outputs
they were saved with: the build runs no notebook.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

from neuromancer.version import __version__  # noqa: E402

project = "NeuroMANCER"
author = "NeuroMANCER developers"
copyright = "2026, the NeuroMANCER-Lightning authors"  # as in LICENSE
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_nb",  # Markdown pages and notebooks (it brings myst_parser)
    "sphinx-mathjax-offline",  # MathJax served with the site, so formulas render without a network
    "tutorial_gallery",  # docs/_ext: the cards of the tutorials' index
    "symlinked_sources",  # docs/_ext: links to the tutorials (docs/tutorials links to them) reach their pages
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
# MyST-NB writes the notebooks' images next to the output folder (``<outdir>/../jupyter_execute``);
# a build into docs/_build keeps them out of the sources, and this keeps them from being read as pages.
exclude_patterns = ["_build", "jupyter_execute", "_ext"]

myst_enable_extensions = ["dollarmath", "amsmath"]  # the notebooks write formulas as $...$ and $$...$$

# Notebooks are committed executed, with their figures: show those outputs, run nothing.
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell for the lines a training prints, not one per write

autodoc_typehints = "signature"
maximum_signature_line_length = 100
autodoc_member_order = "bysource"

# Every reference to a name of this project must resolve, in every build (Read the Docs included).
nitpicky = True
# Names of other projects are shown as code, without a link: the build runs offline (CI has no
# network), so there are no intersphinx inventories to link them to. The short names are imported
# only for type checking (off the import path), so autodoc shows them as written.
nitpick_ignore_regex = [
    ("py:.*", r"(torch|numpy|lightning|optuna|pydot|collections|argparse|os|types|numbers)\..+"),
    ("py:class", r"ArrayLike|DataLoader|Dataset|LRScheduler|ReduceLROnPlateau"),
    # Type variables of generic helpers (e.g. the result type of a retried call) have no page.
    ("py:class", r"neuromancer\.[\w.]+\.(T|Entry)"),
]

html_theme = "sphinx_rtd_theme"
html_static_path = ["_static"]
html_css_files = ["neuromancer.css"]
