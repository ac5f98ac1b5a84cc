"""Docstring conventions that the API docs rely on.

Sphinx renders each parameter's type from the signature (``autodoc_typehints = "description"``), so a
``:param x: (int) ...`` line would show the type twice, and the two copies drift apart. The types
live in the annotations; ``:param`` and ``:return`` lines say what the value means.
"""
import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neuromancer"
TYPE_PREFIX = re.compile(r":(?P<field>param\s+\*{0,2}\w+|returns?):\s*\((?P<inside>[^()]*)\)\s*\S")
TUPLE_OF_NAMES = re.compile(r"[\w ]+(?:,\s*[\w ]+)+")


def typed_field_lines(source: str, filename: str) -> list[str]:
    """``file:line`` of every ``:param``/``:return`` field of ``source`` that opens with a parenthesised type.

    On a ``:return:`` line a parenthesised tuple of names, such as ``(train, dev, test)``, describes
    the value's parts and is allowed; on a ``:param`` line any parenthesised prefix (``(bool, default
    False)``) is a type.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node, clean=False)
        if not docstring:
            continue
        first_line = node.body[0].lineno
        for offset, line in enumerate(docstring.splitlines()):
            match = TYPE_PREFIX.search(line)
            if match is None:
                continue
            parts_of_a_return = match["field"].startswith("return") and TUPLE_OF_NAMES.fullmatch(match["inside"].strip())
            if not parts_of_a_return:
                found.append(f"{filename}:{first_line + offset}: {line.strip()}")
    return found


def test_the_check_flags_a_type_prefix_and_allows_named_parts():
    source = ('def f(x: int, y: bool = False) -> tuple:\n    """Doc.\n\n    :param x: (int) the count\n'
              '    :param y: (bool, default False) a flag\n    :return: (train, dev, test) the splits\n    """\n')
    assert typed_field_lines(source, "m.py") == ["m.py:4: :param x: (int) the count",
                                                 "m.py:5: :param y: (bool, default False) a flag"]


def test_no_docstring_repeats_a_type_in_a_param_or_return_line():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += typed_field_lines(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not found, "move these types into the signature's annotations:\n" + "\n".join(found)
