"""Hostile values inside network specs: huge integers and repeat bombs get a clear tool error, never a crash or a hang."""

import anyio
import pytest
from mcp import Client

from server.app import build_server

pytestmark = pytest.mark.anyio

HUGE = 10**5000  # str() refuses ints over 4,300 digits: an error message must never try to print it
CONV = {"type": "conv2d", "out_channels": 8, "kernel_size": 3}


async def _error(client, tool, arguments) -> str:
    with anyio.fail_after(30):
        result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    text = result.content[0].text
    assert not text.rstrip().endswith(f"Error executing tool {tool}"), text  # the SDK's opaque crash text
    assert "Traceback" not in text and len(text) < 2_000
    return text


@pytest.mark.parametrize(
    "field,value",
    [("kernel_size", HUGE), ("out_channels", HUGE), ("padding", HUGE), ("stride", [1, HUGE]), ("out_channels", 10**12)],
    ids=["kernel_size-huge", "out_channels-huge", "padding-huge", "stride-huge", "out_channels-1e12"],
)
async def test_huge_integers_inside_a_layer_are_refused_with_the_bound(field, value):
    async with Client(build_server()) as client:
        text = await _error(client, "shape_calculator", {"input_shape": [3, 32, 32], "layers": [{**CONV, field: value}]})
        assert "layer 0 (conv2d)" in text and field in text
        ok = await client.call_tool("shape_calculator", {"input_shape": [3, 32, 32], "layers": [CONV]})
        assert not ok.is_error


async def test_huge_input_shape_and_output_position_are_refused():
    async with Client(build_server()) as client:
        text = await _error(client, "shape_calculator", {"input_shape": [3, HUGE, 32], "layers": [CONV]})
        assert "1000000000" in text.replace(",", "")
        text = await _error(
            client, "receptive_field", {"input_shape": [3, 32, 32], "layers": [CONV], "output_position": [HUGE, 0]}
        )
        assert "outside the output" in text and "0..29" in text


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("Sequential(\n  (0): 99999999 x Conv2d(3, 3, kernel_size=(3, 3))\n)", "max_layers=100,000"),
        (
            "Sequential(\n  (0): 1000 x Sequential(\n    (0): 1000 x Conv2d(3, 3, kernel_size=(1, 1))\n  )\n)",
            "max_layers=100,000",
        ),
        ("Sequential(\n  (0): " + "9" * 5000 + " x ReLU()\n)", "repeat count must be at most 1,000,000,000"),
        ("conv3-" + "9" * 5000, "width must be at most 1,000,000,000"),
        ("Sequential(\n  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(" + "9" * 5000 + ", 1))\n)", "spec line 2"),
    ],
    ids=["repeat-bomb", "nested-repeat-bomb", "huge-repeat-count", "huge-vgg-width", "huge-printed-argument"],
)
async def test_text_specs_that_would_expand_or_overflow_are_refused_before_any_work(spec, expected):
    async with Client(build_server()) as client:
        text = await _error(client, "shape_calculator", {"input_shape": [3, 32, 32], "spec": spec})
        assert expected in text


async def test_a_repeat_within_the_limit_expands_like_pytorch_prints_it():
    spec = "Sequential(\n  (0): 3 x Conv2d(3, 3, kernel_size=(3, 3), padding=(1, 1))\n)"
    async with Client(build_server()) as client:
        result = await client.call_tool("shape_calculator", {"input_shape": [3, 32, 32], "spec": spec})
    assert [row["receptive_field"] for row in result.structured_content["layers"]] == [[3, 3], [5, 5], [7, 7]]


async def test_huge_groups_and_overlong_guide_arguments_are_refused_with_the_bound():
    async with Client(build_server()) as client:
        text = await _error(client, "conv2d", {"x": [[1.0] * 3] * 3, "weight": [[[[1.0]]]], "groups": HUGE})
        assert "groups" in text and "1000000000" in text
        text = await _error(client, "get_guide", {"name": "cnn-architect", "arguments": {"input_shape": "x" * 200_000}})
        assert "100000 characters" in text
