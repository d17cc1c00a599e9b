"""The README tells the truth: its tool table matches the server, and its two commands are what CI runs."""

import re
from pathlib import Path

import anyio
from mcp import Client

from server.app import build_server

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _listed_tools() -> set[str]:
    async def main():
        async with Client(build_server()) as client:
            return {t.name for t in (await client.list_tools()).tools}

    return anyio.run(main)


def test_readme_tool_table_matches_list_tools():
    section = README.split("## Tools", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M))
    assert documented == _listed_tools()


def test_ci_runs_the_readme_test_command_verbatim():
    command = 'pip install ".[test,torch]" && python -m pytest'
    assert command in README
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_install_command_starts_the_server():
    assert "pip install . && python -m server" in README


def test_readme_names_every_limit_with_its_flag_and_variable():
    from dataclasses import fields

    from server.limits import Limits

    for f in fields(Limits):
        assert f"--{f.name.replace('_', '-')}" in README, f.name
        assert f"CONV_MCP_{f.name.upper()}" in README, f.name
