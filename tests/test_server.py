"""The server through the real SDK Client: in memory (both protocol eras) and over a stdio subprocess."""

import os
import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from server.app import build_server

pytestmark = pytest.mark.anyio

ERAS = ["auto", "legacy"]


@pytest.mark.parametrize("mode", ERAS)
async def test_conv_output_size_returns_structured_content_and_text(mode):
    async with Client(build_server(), mode=mode) as client:
        result = await client.call_tool(
            "conv_output_size", {"input_size": 5, "kernel_size": 2, "stride": 2, "padding": 1, "kind": "pool", "ceil_mode": True}
        )
    assert not result.is_error
    assert result.structured_content["output_size"] == [3, 3]
    assert "dropped" in result.structured_content["formula"]
    assert "[3, 3]" in result.content[0].text


@pytest.mark.parametrize("mode", ERAS)
async def test_every_tool_is_read_only_titled_and_publishes_an_output_schema(mode):
    async with Client(build_server(), mode=mode) as client:
        tools = (await client.list_tools()).tools
    assert "conv_output_size" in {t.name for t in tools}
    for tool in tools:
        assert tool.title, tool.name
        assert tool.description, tool.name
        assert tool.output_schema and tool.output_schema.get("type") == "object", tool.name
        assert tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.idempotent_hint is True, tool.name
        assert tool.annotations.open_world_hint is False, tool.name
        assert tool.input_schema.get("type") == "object", tool.name
        assert "$ref" not in tool.input_schema and "anyOf" not in tool.input_schema, tool.name


@pytest.mark.parametrize("mode", ERAS)
async def test_server_instructions_say_when_to_call_which_tool(mode):
    async with Client(build_server(), mode=mode) as client:
        instructions = client.instructions
    assert "conv_output_size" in instructions and "PyTorch" in instructions


@pytest.mark.parametrize("mode", ERAS)
async def test_bad_geometry_is_a_clear_tool_error_and_the_server_keeps_answering(mode):
    async with Client(build_server(), mode=mode) as client:
        bad = await client.call_tool("conv_output_size", {"input_size": 5, "kernel_size": 7})
        assert bad.is_error
        assert "kernel spans 7 px (kernel_size=7, dilation=1) but the padded input is 5 px" in bad.content[0].text
        same = await client.call_tool("conv_output_size", {"input_size": 32, "kernel_size": 3, "stride": 2, "padding": "same"})
        assert same.is_error and "strided" in same.content[0].text
        negative = await client.call_tool("conv_output_size", {"input_size": -5, "kernel_size": 3})
        assert negative.is_error and "input_size" in negative.content[0].text
        pool_same = await client.call_tool("conv_output_size", {"input_size": 8, "kernel_size": 2, "padding": "same", "kind": "pool"})
        assert pool_same.is_error and "only for kind 'conv'" in pool_same.content[0].text
        good = await client.call_tool("conv_output_size", {"input_size": 32, "kernel_size": 3, "padding": 1})
        assert not good.is_error and good.structured_content["output_size"] == [32, 32]


@pytest.mark.parametrize("mode", ERAS)
async def test_prompts_are_listed_with_the_contract_arguments(mode):
    async with Client(build_server(), mode=mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert {a.name: a.required for a in prompts["cnn-architect"].arguments} == {
        "input_shape": True,
        "param_budget": True,
        "target_receptive_field": True,
        "output_size": False,
    }
    assert {a.name: a.required for a in prompts["conv-shape-calculator"].arguments} == {"network": True, "input_shape": True}


@pytest.mark.parametrize("mode", ERAS)
async def test_prompts_fill_in_their_arguments(mode):
    async with Client(build_server(), mode=mode) as client:
        architect = await client.get_prompt(
            "cnn-architect", {"input_shape": "[3, 64, 64]", "param_budget": "123456", "target_receptive_field": "77"}
        )
        calculator = await client.get_prompt(
            "conv-shape-calculator", {"network": '[{"type": "conv2d", "out_channels": 8, "kernel_size": 3}]', "input_shape": "[1, 28, 28]"}
        )
    text = architect.messages[0].content.text
    assert "[3, 64, 64]" in text and "123456" in text and "77" in text and "{{" not in text
    assert not text.startswith("---")
    text = calculator.messages[0].content.text
    assert '"out_channels": 8' in text and "[1, 28, 28]" in text


@pytest.mark.parametrize("mode", ERAS)
async def test_both_texts_are_resources_in_markdown(mode):
    async with Client(build_server(), mode=mode) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        for uri in ("conv://prompts/cnn-architect", "conv://skills/conv-shape-calculator"):
            assert listed[uri].mime_type == "text/markdown"
            contents = (await client.read_resource(uri)).contents[0]
            assert contents.mime_type == "text/markdown"
            assert contents.text.startswith("---\nname: ")


def _stdio_params(cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_")}
    return StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(cwd), env=env)


async def test_stdio_subprocess_serves_tools_prompts_and_resources_from_another_directory(tmp_path):
    # Run from an empty directory: the texts must come from the installed package, not the checkout's cwd.
    with anyio.fail_after(60):
        async with Client(_stdio_params(tmp_path)) as client:
            result = await client.call_tool("conv_output_size", {"input_size": [224, 224], "kernel_size": 7, "stride": 2, "padding": 3})
            assert result.structured_content["output_size"] == [112, 112]
            bad = await client.call_tool("conv_output_size", {"input_size": 5, "kernel_size": 7})
            assert bad.is_error
            again = await client.call_tool("conv_output_size", {"input_size": 5, "kernel_size": 3})
            assert again.structured_content["output_size"] == [3, 3]
            text = (await client.read_resource("conv://skills/conv-shape-calculator")).contents[0].text
            assert "conv-shape-calculator" in text


def test_help_documents_every_flag():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "server", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--transport", "--host", "--port", "--log-level"):
        assert flag in out.stdout


@pytest.mark.parametrize("mode", ERAS)
async def test_get_guide_gives_tools_only_clients_the_same_texts_as_the_prompts(mode):
    arguments = {"input_shape": "[3, 64, 64]", "param_budget": "123456", "target_receptive_field": "77"}
    async with Client(build_server(), mode=mode) as client:
        prompt = await client.get_prompt("cnn-architect", arguments)
        tool = await client.call_tool("get_guide", {"name": "cnn-architect", "arguments": arguments})
        partial = await client.call_tool("get_guide", {"name": "cnn-architect", "arguments": {"input_shape": "[1, 8, 8]"}})
        skill = await client.call_tool("get_guide", {"name": "conv-shape-calculator"})
        unknown = await client.call_tool("get_guide", {"name": "cnn-architect", "arguments": {"budget": "1"}})
    assert tool.content[0].text == prompt.messages[0].content.text  # the text once: not again in the structured content
    assert "text" not in tool.structured_content and tool.structured_content["chars"] == len(tool.content[0].text)
    assert tool.structured_content["missing"] == []
    assert tool.structured_content["uri"] == "conv://prompts/cnn-architect"
    assert partial.structured_content["missing"] == ["param_budget", "target_receptive_field"]
    assert "## Your task" not in skill.content[0].text and "receptive field" in skill.content[0].text
    assert unknown.is_error and "budget" in unknown.content[0].text and "param_budget" in unknown.content[0].text
