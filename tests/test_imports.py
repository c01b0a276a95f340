"""The import structure: light entry points, no cycles among the project's modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("moe", "bot", "engine", "export", "trainer", "bench", "testkit")
HEAVY = ("torch", "discord", "onnxruntime", "aiosqlite", "onnx")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("statement", [
    "import moe.cli",
    "from moe.cli import app; app(['--help'], standalone_mode=False)",
    "from moe.cli import app; app(['train', 'gan', '--help'], standalone_mode=False)",
])
def test_the_command_line_loads_no_heavy_package(statement):
    assert _loaded_after(statement).isdisjoint(HEAVY)


def test_engine_schema_and_recipes_load_without_onnxruntime():
    loaded = _loaded_after("import engine.schema, engine.recipe, engine.errors")
    assert loaded.isdisjoint(HEAVY)


def test_serving_never_loads_torch():
    assert "torch" not in _loaded_after("import bot.client, engine.core, engine.cli, bot.cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Project modules that importing `name` imports (not inside functions or TYPE_CHECKING).

    `import a.b.c` imports a, a.b and a.b.c; the packages above `name` itself are already
    being imported, so they count only when a statement names them (`from bot import x`)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    found: set[str] = set()

    def add(target: str) -> None:
        parts = target.split(".")
        found.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p not in ancestors)
        found.add(target)

    def visit(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {name: _top_level_imports(path, name, set(files)) for name, path in files.items()}
    # Tarjan's strongly connected components; any component of more than one module is a cycle.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            connect(v)
    assert cycles == []
