"""Sphinx extension: Markdown links to a page whose source is a symbolic link reach that page.

The tutorials' notebooks live in ``examples/lightning_integration_examples``; ``docs/tutorials``
holds symbolic links to them, so the site shows them without a second copy. MyST resolves a
Markdown link such as ``[Part 1](Part_1_lightning_basics_tutorial.ipynb)`` to the file's real path,
outside the documentation's sources, and then finds no page there. This extension maps such a
target back to the page whose source links to that file, before MyST reports it missing; any other
unknown target is left alone, for MyST to report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def linked_pages(env: BuildEnvironment) -> dict[str, str]:
    """``{real path of a linked source, without its suffix: page name}`` for the pages whose source is a link."""
    pages = {}
    for docname in env.found_docs:
        source = Path(env.doc2path(docname))
        if source.is_symlink():
            pages[str(source.resolve().with_suffix(""))] = docname
    return pages


def retarget_links(app: Sphinx, doctree: nodes.document) -> None:
    """Point the MyST page links of ``doctree`` that name a linked source's real path at its page."""
    env = app.env
    pages = None
    for node in doctree.findall(addnodes.pending_xref):
        if node.get("reftype") != "myst" or node.get("refdomain") != "doc" or node["reftarget"] in env.found_docs:
            continue
        if pages is None:
            pages = linked_pages(env)
        page = pages.get(node["reftarget"])
        if page is not None:
            node["reftarget"] = page


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the step that retargets the links, run on each page once it is read."""
    app.connect("doctree-read", retarget_links)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
