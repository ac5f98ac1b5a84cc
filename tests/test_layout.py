"""The package's layout: no import cycles among the modules of `neuromancer`, and no module reaching
into another's private names.

Two views of the same property, each cheap:

- a static scan of every ``import`` statement in ``neuromancer/`` (module level and inside functions,
  except under ``if TYPE_CHECKING:``) builds the import graph, which must have no cycle. An import
  inside a function still ties the two modules together; it only hides the cycle until that
  function runs;
- one child interpreter imports each module as if it were the first one a user imports: it forgets
  every ``neuromancer`` module before each import, so an order-dependent cycle ("partially
  initialized module") fails there. Third-party packages stay loaded between imports, which keeps
  the test to one interpreter start.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neuromancer"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by the name of its ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _under_type_checking(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skipped.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return skipped


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """``(target module, imported name or '', line)`` for each package-internal import of ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _under_type_checking(tree)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod.
                sub = f"{base}.{alias.name}"
                found.append((sub, "", node.lineno) if sub in modules else (base, alias.name, node.lineno))
    resolved = []
    for target, name, line in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != module:
            resolved.append((target, name, line))
    return resolved


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line importing it}}`` for the modules of the package."""
    modules = module_files()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for target, _, line in _imports(module, path, modules):
            edges.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """The import statements that tie a cycle's modules together, one per line."""
    members = set(component)
    return "\n".join(f"  {module} imports {target} (line {line})"
                     for module in component for target, line in sorted(graph[module].items())
                     if target in members)


def test_the_scan_sees_imports_inside_functions_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\n"
                                  "from pkg.a import f as g\n")
    modules = {"pkg": package / "__init__.py", "pkg.a": package / "a.py", "pkg.b": package / "b.py"}
    graph = {module: {target: line for target, _, line in _imports(module, path, modules)}
             for module, path in modules.items()}
    assert graph == {"pkg": {"pkg.a": 1}, "pkg.a": {"pkg.b": 2}, "pkg.b": {"pkg.a": 4}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def private_imports() -> dict[tuple[str, str], list[str]]:
    """``{(importer, imported module): ['name (line N)', ...]}`` for private names imported across modules."""
    modules = module_files()
    found: dict[tuple[str, str], list[str]] = {}
    for module, path in modules.items():
        for target, name, line in _imports(module, path, modules):
            if name.startswith("_") and not name.startswith("__"):
                found.setdefault((module, target), []).append(f"{name} (line {line})")
    return found


def test_no_import_cycle_among_the_modules():
    graph = import_graph()
    assert "neuromancer.trainers.lightning" in graph and "neuromancer.constraint" in graph
    new = cycles(graph)
    assert new == [], "import cycles in neuromancer/:\n" + "\n".join(describe(c, graph) for c in new)


def test_no_module_imports_another_modules_private_names():
    new = private_imports()
    assert new == {}, "private names imported across modules:\n" + "\n".join(
        f"  {importer} imports {', '.join(names)} from {target}" for (importer, target), names in new.items())


CHILD = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "neuromancer" or m.startswith("neuromancer.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


def test_each_module_imports_first_in_a_fresh_package():
    names = sorted(module_files())
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(names)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    failures = json.loads(result.stdout.splitlines()[-1])
    assert failures == {}, "\n".join(f"{name}:\n{trace}" for name, trace in failures.items())
