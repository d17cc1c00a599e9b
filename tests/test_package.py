"""The Python API: `skills` works without MCP and loads its heavy parts only when used."""

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout


def test_skills_imports_neither_mcp_nor_numpy_until_used():
    out = _run("import sys, skills; print('mcp' in sys.modules, 'numpy' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_the_contract_python_api_is_reachable_from_skills():
    code = (
        "import skills\n"
        "for name in ['conv2d', 'conv2d_naive', 'conv2d_backward', 'shape_calculator', 'receptive_field',"
        " 'parameter_count', 'design_architecture', 'conv_output_size']:\n"
        "    assert callable(getattr(skills, name)), name\n"
        "print('ok')"
    )
    assert _run(code).strip() == "ok"


def test_server_start_up_does_not_import_numpy():
    # numpy loads on the first conv2d call, not at start-up: cold start stays close to a bare MCPServer.
    out = _run("import sys; from server.app import build_server; build_server(); print('numpy' in sys.modules)")
    assert out.strip() == "False"
