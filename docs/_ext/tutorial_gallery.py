"""Sphinx extension: cards for the tutorials' index, each with a thumbnail of the tutorial's own figure.

``.. tutorial-card:: DOCUMENT`` renders one card: a thumbnail linked to the document, the document's
title as a link, and the directive's content (a line saying what the tutorial shows). ``DOCUMENT`` is
a document name relative to the current one, as in a toctree.

For a notebook, the thumbnail is made from a figure the notebook already holds among its committed
outputs (``:figure: N``, the N-th figure, 1 by default): the index cannot drift from the notebooks,
and the build runs nothing. A tutorial that draws no figure names a picture instead
(``:image: path``, relative to the current document). A card whose document does not exist, or
whose notebook lacks the figure asked for, is an error of the build that names both.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

THUMBNAIL_SIZE = (480, 300)  # the largest width and height of a thumbnail, in pixels
THUMBNAIL_FOLDER = "tutorial_thumbnails"  # under the build's doctree folder, never in the sources


class tutorial_card(nodes.General, nodes.Element):  # lower case, as docutils names its node classes
    """A card waiting for its link and title, which are known only once every document has been read."""


class TutorialCard(SphinxDirective):
    """``.. tutorial-card:: DOCUMENT``, with ``:figure: N`` or ``:image: path`` and one line of content."""

    required_arguments = 1
    has_content = True
    option_spec = {"figure": directives.positive_int, "image": directives.uri}

    def run(self) -> list[nodes.Node]:
        """Check the document exists, make its thumbnail and return the pending card."""
        target = self._target_document()
        if "image" in self.options:
            uri = self.options["image"]
        else:
            uri = self._notebook_thumbnail(target, self.options.get("figure", 1))
        card = tutorial_card(target=target)
        card += nodes.image(uri=uri, alt="")
        description = nodes.paragraph()
        self.state.nested_parse(self.content, self.content_offset, description)
        card += description.children
        self.set_source_info(card)
        return [card]

    def _target_document(self) -> str:
        """The argument as a document name; an error names it when no such document exists."""
        current = Path(self.env.docname).parent
        target = (current / self.arguments[0]).as_posix()
        if target not in self.env.found_docs:
            raise self.error(f"tutorial-card: there is no document {target!r}; give a document name "
                             f"relative to {self.env.docname!r}, without its suffix.")
        return target

    def _notebook_thumbnail(self, target: str, figure: int) -> str:
        """Write a thumbnail of the notebook's ``figure``-th PNG output; return its URI for an image node."""
        notebook = Path(self.env.doc2path(target))
        if notebook.suffix != ".ipynb":
            raise self.error(f"tutorial-card: {target!r} is not a notebook ({notebook.name}); give the "
                             f"picture of its card with the :image: option.")
        self.env.note_dependency(str(notebook))
        figures = notebook_figures(notebook)
        if figure > len(figures):
            raise self.error(f"tutorial-card: {notebook.name} holds {len(figures)} figure(s) among its saved "
                             f"outputs, so it has no figure {figure}; run the notebook and save it with its "
                             f"outputs, or choose another :figure:.")
        path = write_thumbnail(figures[figure - 1], Path(self.env.doctreedir) / THUMBNAIL_FOLDER)
        # Sphinx reads an image URI that starts with "/" as relative to the source folder.
        return "/" + Path(os.path.relpath(path, self.env.srcdir)).as_posix()


def notebook_figures(path: Path) -> list[bytes]:
    """The PNG images among the saved outputs of the notebook at ``path``, in the order of its cells."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    images = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                images.append(base64.b64decode("".join(data) if isinstance(data, list) else data))
    return images


def write_thumbnail(png: bytes, folder: Path) -> Path:
    """Write ``png`` shrunk to fit ``THUMBNAIL_SIZE`` into ``folder``, named by its content; return the path.

    The name is the image's hash and the file is renamed into place once complete, so builds that
    run at the same time never read a half-written thumbnail.
    """
    from PIL import Image  # Pillow comes with matplotlib; imported here so the extension loads without it

    image = Image.open(io.BytesIO(png))
    image.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    content = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(content).hexdigest()[:16]}.png"
    if not path.exists():
        partial = folder / f".{path.name}.{os.getpid()}.tmp"
        partial.write_bytes(content)
        os.replace(partial, path)
    return path


def resolve_cards(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Turn each pending card into plain nodes: the linked thumbnail, the linked title, the description."""
    for card in list(doctree.findall(tutorial_card)):
        target = card["target"]
        title = app.env.titles[target].astext()
        uri = app.builder.get_relative_uri(docname, target)
        image, *description = card.children
        image["alt"] = f"A figure from {title}"
        box = nodes.container(classes=["tutorial-card"])
        box += nodes.reference("", "", image.deepcopy(), refuri=uri, internal=True, classes=["tutorial-thumbnail"])
        heading = nodes.paragraph(classes=["tutorial-title"])
        heading += nodes.reference(title, title, refuri=uri, internal=True)
        box += heading
        box.extend(node.deepcopy() for node in description)
        card.replace_self(box)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and the step that completes the cards."""
    app.add_node(tutorial_card)
    app.add_directive("tutorial-card", TutorialCard)
    app.connect("doctree-resolved", resolve_cards)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
