"""Every Python code block of the documentation runs as written, so the docs cannot drift from the code.

Checked files: the ``.. code-block:: python`` blocks of ``docs/**/*.rst``, and the ```` ```python ````
blocks of ``docs/**/*.md``, ``README.md`` and ``examples/lightning_integration_examples/README.md``
(files that do not exist yet are picked up once they do). A file's blocks run in order in one
namespace, as a reader pasting them into one session would run them, in a scratch directory, offline
(``WANDB_MODE=offline``) and in quick mode: ``NEUROMANCER_QUICK=1``, and every literal ``epochs=N``
is run as ``epochs=min(N, QUICK_EPOCHS)``.

A block that is deliberately not runnable here (GPU-only, several machines, a wandb account) says so
in its first line, the comment ``# not-run: <reason>``; such blocks are compiled, not run.
"""
from __future__ import annotations

import re
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_FILES = [ROOT / "README.md", ROOT / "examples" / "lightning_integration_examples" / "README.md"]
QUICK_EPOCHS = 3

NOT_RUN = re.compile(r"#\s*not-run\b:?\s*(.*)")
RST_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*python3?\s*$")
RST_OPTION = re.compile(r"^\s+:[\w-]+:")
MD_FENCE_OPEN = re.compile(r"^(\s*)```\s*(?:python3?|py)\s*$")
MD_FENCE_CLOSE = re.compile(r"^\s*```\s*$")
EPOCHS = re.compile(r"(?<![\w.])epochs=(\d+)")


@dataclass(frozen=True)
class Block:
    """One Python code block: its file, the file's line number of its first code line, its dedented code."""

    path: Path
    line: int
    code: str

    @property
    def location(self) -> str:
        """``file:line`` of the block's first code line, relative to the project root when inside it."""
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        """The reason given by a leading ``# not-run: <reason>`` comment, None for a block that runs."""
        match = NOT_RUN.fullmatch(self.code.splitlines()[0].strip())
        return match.group(1).strip() if match else None

    def compiled(self, code: str | None = None):
        """Compile ``code`` (default: the block's) so that tracebacks name the documentation file's lines."""
        return compile("\n" * (self.line - 1) + (self.code if code is None else code), str(self.path), "exec")


class DocBlockError(AssertionError):
    """A documentation block raised; the message names the block's file and line and shows the traceback."""


def _block(path: Path, start: int, lines: list[str]) -> Block | None:
    """A Block from the raw ``lines`` that begin at 0-based line ``start``; None when they hold no code."""
    while lines and not lines[0].strip():
        lines, start = lines[1:], start + 1
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if not lines:
        return None
    return Block(path, start + 1, textwrap.dedent("\n".join(lines)) + "\n")


def rst_blocks(path: Path, text: str) -> Iterator[Block]:
    """The ``.. code-block:: python`` blocks of reStructuredText ``text``, in order."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        directive = RST_DIRECTIVE.match(lines[index])
        index += 1
        if not directive:
            continue
        indent = len(directive.group(1))
        while index < len(lines) and RST_OPTION.match(lines[index]):
            index += 1
        start = index
        while index < len(lines) and (not lines[index].strip()
                                      or len(lines[index]) - len(lines[index].lstrip()) > indent):
            index += 1
        block = _block(path, start, lines[start:index])
        if block is not None:
            yield block


def markdown_blocks(path: Path, text: str) -> Iterator[Block]:
    """The ```` ```python ```` fenced blocks of Markdown ``text``, in order."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not MD_FENCE_OPEN.match(lines[index]):
            index += 1
            continue
        start = index = index + 1
        while index < len(lines) and not MD_FENCE_CLOSE.match(lines[index]):
            index += 1
        block = _block(path, start, lines[start:index])
        index += 1
        if block is not None:
            yield block


def blocks_of(path: Path) -> list[Block]:
    """The Python blocks of one documentation file (reStructuredText or Markdown), in order."""
    text = path.read_text(encoding="utf-8")
    return list(rst_blocks(path, text) if path.suffix == ".rst" else markdown_blocks(path, text))


def documentation_files() -> list[Path]:
    """Every checked documentation file that exists and holds at least one Python block."""
    docs = ROOT / "docs"
    candidates = sorted(p for p in docs.rglob("*") if p.suffix in (".rst", ".md") and "_build" not in p.parts)
    candidates += [p for p in MARKDOWN_FILES if p.exists()]
    return [p for p in candidates if blocks_of(p)]


def quick(code: str) -> str:
    """``code`` with every literal ``epochs=N`` capped at QUICK_EPOCHS (line numbers unchanged)."""
    return EPOCHS.sub(lambda m: f"epochs={min(int(m.group(1)), QUICK_EPOCHS)}", code)


def run_blocks(blocks: list[Block], namespace: dict[str, object]) -> list[Block]:
    """Compile every block, then run the runnable ones in order in ``namespace``; return those that ran.

    :raises SyntaxError: a block does not compile (the error names the file and line).
    :raises DocBlockError: a block raised; the message names it and carries the traceback.
    """
    for block in blocks:
        block.compiled()
    ran = []
    for block in blocks:
        if block.not_run_reason is not None:
            continue
        try:
            exec(block.compiled(quick(block.code)), namespace)
        except Exception as error:
            raise DocBlockError(f"the code block at {block.location} raised {type(error).__name__}: {error}\n"
                                f"{traceback.format_exc()}") from error
        ran.append(block)
    return ran


DOC_FILES = documentation_files()
DOC_IDS = [str(p.relative_to(ROOT)) for p in DOC_FILES]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch working directory with quick mode, offline wandb, a plain ``sys.argv`` and one torch thread.

    The documented models are tiny: a second intra-op thread buys nothing, and on a busy machine
    its synchronisation made every step of the README's example 20 times slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEUROMANCER_QUICK", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "docs_snippet.py")])
    yield tmp_path
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("path", DOC_FILES, ids=DOC_IDS)
def test_every_python_block_of_the_file_runs_in_order(path, scratch):
    blocks = blocks_of(path)
    namespace = {"__name__": "__main__", "__file__": str(scratch / "docs_snippet.py")}
    try:
        ran = run_blocks(blocks, namespace)
    except DocBlockError as error:
        pytest.fail(str(error), pytrace=False)
    assert ran, f"{path} has Python blocks but all of them are marked not-run"


@pytest.mark.parametrize("path", DOC_FILES, ids=DOC_IDS)
def test_not_run_markers_give_a_reason(path):
    for block in blocks_of(path):
        first = block.code.splitlines()[0].strip()
        if first.startswith("# not-run"):
            assert block.not_run_reason, f"{block.location}: write the reason, '# not-run: <reason>'"


def test_the_checked_files_include_the_guides():
    checked = set(DOC_IDS)
    assert {"README.md", "docs/lightning.rst", "docs/migration.rst", "docs/sweeps.rst"} <= checked
    tutorials = ROOT / "examples" / "lightning_integration_examples" / "README.md"
    if tutorials.exists() and blocks_of(tutorials):
        assert str(tutorials.relative_to(ROOT)) in checked


RST_SAMPLE = """Title
=====

.. code-block:: python
   :caption: first

   x = 1
   if x:

       y = x + 1

Text between.

.. code-block:: bash

   echo not python

* a list item

  .. code-block:: python

     # not-run: needs a GPU
     z = torch.zeros(1, device="cuda")
"""


def test_rst_blocks_are_found_with_their_lines_options_and_markers(tmp_path):
    path = tmp_path / "sample.rst"
    path.write_text(RST_SAMPLE)
    first, second = blocks_of(path)
    assert (first.line, first.code) == (7, "x = 1\nif x:\n\n    y = x + 1\n")
    assert first.not_run_reason is None
    assert second.line == 22 and second.code.startswith("# not-run: needs a GPU\nz = ")
    assert second.not_run_reason == "needs a GPU"


def test_markdown_blocks_are_found_and_other_languages_skipped(tmp_path):
    path = tmp_path / "sample.md"
    path.write_text("# T\n\n```bash\nls\n```\n\n```python\na = 2\nb = a * 3\n```\n")
    (block,) = blocks_of(path)
    assert (block.line, block.code) == (8, "a = 2\nb = a * 3\n")


def test_blocks_share_one_namespace_and_marked_blocks_only_compile(tmp_path):
    path = tmp_path / "sample.md"
    path.write_text("```python\na = 2\n```\n\n```python\n# not-run: demo\nraise SystemExit\n```\n\n"
                    "```python\nb = a * 3\nmodel = dict(epochs=500, max_epochs=7)\n```\n")
    namespace: dict[str, object] = {}
    ran = run_blocks(blocks_of(path), namespace)
    assert [b.line for b in ran] == [2, 11]
    assert namespace["b"] == 6
    assert namespace["model"] == {"epochs": QUICK_EPOCHS, "max_epochs": 7}


def test_a_raising_block_fails_with_its_file_and_line(tmp_path):
    path = tmp_path / "sample.rst"
    path.write_text(".. code-block:: python\n\n   a = 1\n\nProse.\n\n.. code-block:: python\n\n"
                    "   b = a + 1\n   c = b / 0\n")
    with pytest.raises(DocBlockError, match=r"sample\.rst:9 raised ZeroDivisionError") as raised:
        run_blocks(blocks_of(path), {})
    assert f'File "{path}", line 10' in str(raised.value)


def test_a_marked_block_that_does_not_compile_is_reported(tmp_path):
    path = tmp_path / "sample.md"
    path.write_text("```python\n# not-run: multi-node\nLitTrainer(num_nodes=2\n```\n")
    with pytest.raises(SyntaxError) as raised:
        run_blocks(blocks_of(path), {})
    assert raised.value.filename == str(path) and raised.value.lineno >= 2
