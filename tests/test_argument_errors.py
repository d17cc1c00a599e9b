"""Argument errors through the real client: one line naming the argument and the rule, the same rule in every tool."""

import pytest
from mcp import Client

from server.app import build_server

pytestmark = pytest.mark.anyio

ERAS = ["auto", "legacy"]
CONV = {"type": "conv2d", "out_channels": 4, "kernel_size": 3}
IMAGE = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


async def _error(client, tool, arguments) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    text = result.content[0].text
    assert text.startswith(f"Error executing tool {tool}: ")
    assert "\n" not in text and "pydantic.dev" not in text and "validation error for" not in text, text
    return text.removeprefix(f"Error executing tool {tool}: ")


@pytest.mark.parametrize("mode", ERAS)
async def test_a_number_sent_as_a_string_is_refused_by_every_tool_naming_the_argument(mode):
    async with Client(build_server(), mode=mode) as client:
        assert "stride" in await _error(client, "conv_output_size", {"input_size": 32, "kernel_size": 3, "stride": "2"})
        assert "stride" in await _error(client, "conv2d", {"x": IMAGE, "kernel": "identity", "stride": "2"})
        text = await _error(client, "shape_calculator", {"input_shape": [3, 8, 8], "layers": [{**CONV, "stride": "2"}]})
        assert text.startswith("layer 0 (conv2d): stride must be") and "'2'" in text
        text = await _error(client, "design_architecture", {"input_shape": [3, 32, 32], "param_budget": 10_000,
                                                            "target_receptive_field": 7, "strides": ["2"]})
        assert text == "argument strides[0]: input should be a valid integer, got '2'"
        ok = await client.call_tool("conv_output_size", {"input_size": 32, "kernel_size": 3, "stride": 2})
        assert not ok.is_error and ok.structured_content["output_size"] == [15, 15]


@pytest.mark.parametrize("mode", ERAS)
async def test_an_unknown_argument_is_an_error_with_the_nearest_name(mode):
    async with Client(build_server(), mode=mode) as client:
        text = await _error(client, "conv_output_size", {"input_size": 32, "kernel_size": 3, "strid": 2})
        assert text.startswith("unknown argument 'strid'; did you mean 'stride'? (conv_output_size takes: input_size, kernel_size, stride")
        text = await _error(client, "shape_calculator", {"input_shape": [3, 8, 8], "layer": [CONV]})
        assert text.startswith("unknown argument 'layer'; did you mean 'layers'?")


@pytest.mark.parametrize("mode", ERAS)
async def test_range_and_missing_arguments_are_one_line_each(mode):
    async with Client(build_server(), mode=mode) as client:
        text = await _error(client, "shape_calculator", {"input_shape": [3, 0, 8], "layers": [CONV]})
        assert text == "argument input_shape[1]: input should be greater than or equal to 1, got 0"
        assert await _error(client, "conv_output_size", {"input_size": 32}) == "missing required argument 'kernel_size'"
        # input_shape is optional in the schema (a model file brings its own); without a model the walk requires it
        assert (await _error(client, "shape_calculator", {"layers": [CONV]})).startswith("input_shape is required: [C, H, W]")
        text = await _error(client, "design_architecture", {"input_shape": [3, 32, 32], "param_budget": "10000",
                                                            "target_receptive_field": 7.5})
        assert text.count("argument ") == 2 and "param_budget" in text and "target_receptive_field" in text


@pytest.mark.parametrize("mode", ERAS)
async def test_nan_in_weights_is_an_error_naming_its_position(mode):
    # JSON has no NaN: the client sends it as null, and the error says where and why
    async with Client(build_server(), mode=mode) as client:
        text = await _error(client, "conv2d", {"x": IMAGE, "weight": [[[[1, float("nan")], [0, 1]]]]})
        assert text.startswith("weight[0][0][0][1] is null, not a number (NaN and infinity")
        text = await _error(client, "conv2d", {"x": [[1, 2], [3, "4"]], "kernel": "identity"})
        assert text.startswith("x[1][1] is '4', not a number")
