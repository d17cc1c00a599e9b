"""shape_calculator, receptive_field and parameter_count through the real SDK Client, in both protocol eras."""

import json

import pytest
from mcp import Client

from server.app import build_server
from server.limits import LIMITS
from skills import zoo
from skills.reports import ABSENT_WHEN_NONE
from skills.walk import parameter_count, receptive_field, report_json, shape_calculator

pytestmark = pytest.mark.anyio

ERAS = ["auto", "legacy"]
WALK_TOOLS = {  # the contract's arguments, the graph form and model files every walk tool takes
    "shape_calculator": {"input_shape", "layers", "spec", "graph", "output", "model", "model_base64"},
    "receptive_field": {"input_shape", "layers", "spec", "output_position", "graph", "output", "at_layer", "model", "model_base64"},
    "parameter_count": {"input_shape", "layers", "spec", "graph", "output", "model", "model_base64"},
}


@pytest.mark.parametrize("mode", ERAS)
async def test_the_walk_tools_are_listed_with_the_contracts_arguments_and_output_schemas(mode):
    async with Client(build_server(), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name, arguments in WALK_TOOLS.items():
        tool = tools[name]
        assert arguments <= set(tool.input_schema["properties"])
        assert tool.annotations.read_only_hint is True and tool.title and tool.description
        assert "$ref" not in str(tool.input_schema)  # flat: layers is an array of objects, validated by skills.spec
    assert tools["shape_calculator"].input_schema.get("required", []) == []  # a model file brings its own input shape
    assert {"output_shape", "total_params", "total_buffers", "total_macs", "receptive_field", "layers"} <= set(
        tools["shape_calculator"].output_schema["properties"]
    )
    assert {"receptive_field", "effective_stride", "effective_padding", "input_region", "input_region_clipped"} <= set(
        tools["receptive_field"].output_schema["properties"]
    )
    assert {"total_params", "total_buffers", "layers"} <= set(tools["parameter_count"].output_schema["properties"])


@pytest.mark.parametrize("mode", ERAS)
async def test_shape_calculator_on_vgg16_gives_torchvisions_numbers_and_a_table(mode):
    async with Client(build_server(), mode=mode) as client:
        result = await client.call_tool("shape_calculator", {"input_shape": [3, 224, 224], "layers": zoo.vgg16()})
    assert not result.is_error
    data = result.structured_content
    # torchvision.models docs: VGG16 138,357,544 params, 15.47 GFLOPS (MACs)
    assert (data["total_params"], data["total_macs"], data["output_shape"]) == (138_357_544, 15_470_264_320, [1000])
    row = data["layers"][0]
    assert {k: row[k] for k in ("index", "type", "input_shape", "output_shape", "params", "macs", "receptive_field", "effective_stride")} == {
        "index": 0, "type": "conv2d", "input_shape": [3, 224, 224], "output_shape": [64, 224, 224], "params": 1792,
        "macs": 86_704_128, "receptive_field": [3, 3], "effective_stride": [1, 1],
    }
    text = result.content[0].text
    assert "params 138,357,544" in text and "MACs 15,470,264,320" in text
    assert "conv2d" in text.splitlines()[2]


@pytest.mark.parametrize("mode", ERAS)
async def test_receptive_field_with_an_output_position_gives_the_region_before_and_after_clipping(mode):
    async with Client(build_server(), mode=mode) as client:
        result = await client.call_tool(
            "receptive_field", {"input_shape": [3, 224, 224], "layers": zoo.vgg16_features(), "output_position": [0, 6]}
        )
    data = result.structured_content
    # Araujo et al. 2019: VGG16 r = 212, S = 32, P = 90; pixel x=6 starts at 6*32 - 90 = 102
    assert (data["receptive_field"], data["effective_stride"], data["effective_padding"]) == ([212, 212], [32, 32], [90, 90])
    assert data["input_region"] == {"top": -90, "left": 102, "bottom": 121, "right": 313}
    assert data["input_region_clipped"] == {"top": 0, "left": 102, "bottom": 121, "right": 223}
    assert "output pixel [0, 6]" in result.content[0].text


@pytest.mark.parametrize("mode", ERAS)
async def test_parameter_count_writes_each_formula(mode):
    async with Client(build_server(), mode=mode) as client:
        result = await client.call_tool("parameter_count", {"spec": "conv3-64, conv3-64, maxpool", "input_shape": [3, 32, 32]})
        by_text = await client.call_tool(
            "parameter_count",
            {"layers": [{"type": "conv2d", "in_channels": 3, "out_channels": 64, "kernel_size": 3}, {"type": "batchnorm2d"}]},
        )
    assert result.structured_content["layers"][0]["formula"] == "64*3*3*3 + 64 = 1,792"
    assert result.structured_content["total_params"] == 1792 + 36928
    assert "64*64*3*3 + 64 = 36,928" in result.content[0].text
    assert by_text.structured_content["total_buffers"] == 129
    assert "buffers 2*64 + 1 = 129" in by_text.content[0].text


async def test_a_printed_sequential_is_accepted_as_spec():
    spec = "Sequential(\n  (0): Conv2d(1, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))\n  (1): ReLU(inplace=True)\n)"
    async with Client(build_server()) as client:
        result = await client.call_tool("shape_calculator", {"input_shape": [1, 128, 128], "spec": spec})
    assert result.structured_content["output_shape"] == [16, 64, 64]


@pytest.mark.parametrize("mode", ERAS)
async def test_bad_networks_are_tool_errors_that_name_layer_field_and_numbers_and_the_server_keeps_answering(mode):
    async with Client(build_server(), mode=mode) as client:
        vanish = await client.call_tool("shape_calculator", {"input_shape": [3, 5, 5], "layers": [
            {"type": "relu"}, {"type": "relu"}, {"type": "relu"}, {"type": "conv2d", "out_channels": 8, "kernel_size": 7}]})
        assert vanish.is_error
        assert "layer 3 (conv2d): kernel spans 7 px (kernel_size=7, dilation=1) but the padded input is 5 px" in vanish.content[0].text
        unknown = await client.call_tool("shape_calculator", {"input_shape": [3, 8, 8], "layers": [{"type": "conv4d"}]})
        assert unknown.is_error and "layer 0: unknown type 'conv4d'" in unknown.content[0].text
        outside = await client.call_tool("receptive_field", {"input_shape": [1, 8, 8], "layers": [{"type": "maxpool2d", "kernel_size": 2}],
                                                              "output_position": [0, 9]})
        assert outside.is_error and "output_position [0, 9] is outside the output" in outside.content[0].text
        no_shape = await client.call_tool("parameter_count", {"layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3}]})
        assert no_shape.is_error and "give input_shape or in_channels" in no_shape.content[0].text
        neither = await client.call_tool("shape_calculator", {"input_shape": [3, 8, 8]})
        assert neither.is_error and "`layers`" in neither.content[0].text
        good = await client.call_tool("shape_calculator", {"input_shape": [1, 128, 128], "layers": zoo.lesson_exercise()})
        assert not good.is_error and good.structured_content["receptive_field"] == [13, 13]


async def test_limits_are_named_with_how_to_raise_them(monkeypatch):
    monkeypatch.setattr(LIMITS, "max_layers", 10)
    monkeypatch.setattr(LIMITS, "max_spec_chars", 20)
    async with Client(build_server()) as client:
        many = await client.call_tool("shape_calculator", {"input_shape": [3, 8, 8], "layers": zoo.deep_stack(11)})
        long = await client.call_tool("parameter_count", {"spec": "conv3-64, " * 5, "input_shape": [3, 8, 8]})
    assert many.is_error and "max_layers=10" in many.content[0].text
    assert "--max-layers" in many.content[0].text and "CONV_MCP_MAX_LAYERS" in many.content[0].text
    assert long.is_error and "max_spec_chars=20" in long.content[0].text and "--max-spec-chars" in long.content[0].text


@pytest.mark.parametrize("mode", ERAS)
async def test_detail_sets_how_much_structured_content_a_walk_sends(mode):
    args = {"input_shape": [3, 224, 224], "layers": zoo.resnet50()}
    async with Client(build_server(), mode=mode) as client:
        default = await client.call_tool("shape_calculator", args)
        full = await client.call_tool("shape_calculator", {**args, "detail": "full"})
        summary = await client.call_tool("shape_calculator", {**args, "detail": "summary"})
        params = await client.call_tool("parameter_count", {**args, "detail": "summary"})
    sizes = {name: len(json.dumps(r.structured_content, separators=(",", ":"))) for name, r in
             (("default", default), ("full", full), ("summary", summary))}
    assert sizes["default"] <= 20_000 < sizes["full"] and sizes["summary"] < 2_000  # the goal: ResNet-50 <= 20 KB; summary: totals and memory
    d, f = default.structured_content, full.structured_content
    assert d["total_params"] == f["total_params"] == summary.structured_content["total_params"] == 25_557_032
    assert len(d["layers"]) == len(f["layers"]) and d["block_layers"] == [] and len(f["block_layers"]) == 136
    assert all("path" not in row for row in d["layers"]) and f["layers"][4]["path"] == "4"  # a top-level path is its index
    assert {"index", "type", "input_shape", "output_shape", "params", "macs", "receptive_field", "effective_stride"} <= set(d["layers"][4])
    assert summary.structured_content["layers"] == [] and params.structured_content["total_params"] == 25_557_032
    assert default.content[0].text == full.content[0].text == summary.content[0].text


REPORT_CASES = {
    "2-D stack without memory": lambda: shape_calculator([3, 224, 224], zoo.vgg16(), memory=False),
    "2-D stack with memory": lambda: shape_calculator([3, 224, 224], zoo.resnet50()),
    "graph": lambda: shape_calculator([1, 8, 32], graph=[
        {"name": "a", "inputs": ["input"], "type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "b", "inputs": ["a", "input"], "type": "concat"}]),
    "receptive field": lambda: receptive_field([3, 224, 224], zoo.vgg16()[:10], output_position=[5, 5]),
    "parameter count": lambda: parameter_count(zoo.mobilenet_v2(), input_shape=[3, 224, 224]),
}


@pytest.mark.parametrize("case", REPORT_CASES)
def test_the_structured_answer_is_the_reports_model_dump_less_the_absent_keys(case):
    """report_json is the server's shortcut for model_dump: the same values, with a row's name, op_type and note and
    the report's completeness left out when None, and it parses back to the same report."""
    report = REPORT_CASES[case]()
    fast = report_json(report)
    full = report.model_dump(mode="json")
    for key in ("layers", "block_layers"):
        full[key] = [{k: v for k, v in row.items() if not (k in ABSENT_WHEN_NONE and v is None)} for row in full[key]]
    if full.get("completeness") is None:
        full.pop("completeness", None)
    assert json.loads(json.dumps(fast)) == full
    assert type(report).model_validate(json.loads(json.dumps(fast))) == report
