"""MCP features clients use, through the real SDK Client: completions, progress, tool titles and annotations;
and the server package's imports running one way (app -> tool modules -> results)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent.parent / "server"
TOOL_MODULES = ["conv_tools", "designer_tools", "walk_tools", "texts"]


# --- imports run one way ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [*TOOL_MODULES, "results", "app"])
def test_each_server_module_imports_first_and_alone_in_a_fresh_interpreter(module):
    # A cycle through app.py shows only when a tool module is the first one imported: app would then import it
    # back half-initialised. A fresh interpreter per module makes each one first.
    out = subprocess.run([sys.executable, "-c", f"import server.{module}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _package_imports(path: Path) -> set[str]:
    """The server modules `path` imports (relative or absolute, at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("server."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("server."))
    return found


def test_the_server_package_has_no_import_cycle():
    graph = {p.stem: _package_imports(p) & {q.stem for q in SERVER.glob("*.py")} for p in SERVER.glob("*.py")}
    assert graph["results"] == set(), "results.py is the bottom of the package: it imports nothing from it"
    for module in TOOL_MODULES:
        assert "app" not in graph[module], f"{module} imports app, which imports it"

    def visit(node, stack):
        assert node not in stack, "import cycle: " + " -> ".join([*stack, node])
        for child in graph[node]:
            visit(child, [*stack, node])

    for module in graph:
        visit(module, [])
