"""MCP features clients use, through the real SDK Client: completions, progress, tool titles and annotations;
and the server package's imports running one way (app -> tool modules -> results)."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from server.app import build_server
from skills import zoo
from skills.kernels import KERNELS, SAMPLES

pytestmark = pytest.mark.anyio

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


# --- completions -----------------------------------------------------------------------------------------------

ERAS = ["auto", "legacy"]


def _prompt(name):
    return PromptReference(type="ref/prompt", name=name)


def _template(uri):
    return ResourceTemplateReference(type="ref/resource", uri=uri)


async def _complete(client, ref, argument, typed="", given=None):
    return (await client.complete(ref, {"name": argument, "value": typed}, given)).completion


@pytest.mark.parametrize("mode", ERAS)
async def test_the_server_advertises_completions_and_every_prompt_and_template_argument_has_some(mode):
    async with Client(build_server(), mode=mode) as client:
        assert client.server_capabilities.completions is not None
        prompts = (await client.list_prompts()).prompts
        templates = (await client.list_resource_templates()).resource_templates
        assert {p.name for p in prompts} >= {"cnn-architect", "conv-shape-calculator"}
        assert {t.uri_template for t in templates} >= {"conv://kernels/{name}", "conv://samples/{name}"}
        for prompt in prompts:
            for argument in prompt.arguments:
                found = await _complete(client, _prompt(prompt.name), argument.name)
                assert found.values, (prompt.name, argument.name)
                assert found.total == len(found.values) and found.has_more is False
        for template in templates:
            for variable in re.findall(r"\{(\w+)\}", template.uri_template):
                assert (await _complete(client, _template(template.uri_template), variable)).values, template


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize(
    "prompt, argument, typed, expected",
    [
        # common input shapes: ImageNet, CIFAR, MNIST; spaces, case and the opening bracket do not matter
        ("cnn-architect", "input_shape", "", ["[3, 224, 224]", "[3, 32, 32]", "[1, 28, 28]"]),
        ("cnn-architect", "input_shape", "[3, 2", ["[3, 224, 224]", "[3, 256, 256]", "[3, 299, 299]"]),
        ("cnn-architect", "input_shape", "1,28", ["[1, 28, 28]"]),
        ("cnn-architect", "param_budget", "5", ["50000", "500000", "5000000"]),
        ("cnn-architect", "target_receptive_field", "2", ["200", "224", "299"]),
        ("conv-shape-calculator", "network", "res", ["resnet50", "resnet50_features"]),
        ("conv-shape-calculator", "network", "conv3-64", [zoo.VGG16_NOTATION, "conv3-64, conv3-64, maxpool, conv3-128, conv3-128, maxpool"]),
        ("conv-shape-calculator", "input_shape", "[1, 3", ["[1, 3, 224, 224]"]),
    ],
)
async def test_prompt_arguments_complete_to_useful_values_that_begin_with_what_was_typed(mode, prompt, argument, typed, expected):
    async with Client(build_server(), mode=mode) as client:
        found = await _complete(client, _prompt(prompt), argument, typed)
    # with nothing typed, the most common values come first; with a prefix, exactly the values it begins
    assert (found.values[: len(expected)] if not typed else found.values) == expected


async def test_completions_build_on_the_arguments_already_given():
    async with Client(build_server()) as client:
        cnn = _prompt("cnn-architect")
        # output sizes a stack of stride-1/2 'same' convs reaches from 224 (ceil halving), and only those
        sizes = await _complete(client, cnn, "output_size", given={"input_shape": "[3, 224, 224]"})
        assert sizes.values == ["[224, 224]", "[112, 112]", "[56, 56]", "[28, 28]", "[14, 14]", "[7, 7]", "[4, 4]", "[2, 2]", "[1, 1]"]
        odd = await _complete(client, cnn, "output_size", "[4", given={"input_shape": "3x30x60"})
        assert odd.values == ["[4, 8]"]  # 30 -> 15 -> 8 -> 4 and 60 -> 30 -> 15 -> 8
        # the receptive field that covers the whole input comes first
        square = await _complete(client, cnn, "target_receptive_field", given={"input_shape": "[1, 3, 32, 32]"})
        assert square.values[0] == "32"
        wide = await _complete(client, cnn, "target_receptive_field", given={"input_shape": "[3, 32, 48]"})
        assert wide.values[0] == "[32, 48]"
        # without a readable input shape: generic values, no error
        generic = await _complete(client, cnn, "output_size", given={"input_shape": "a big image"})
        assert "[7, 7]" in generic.values
        # a named reference network proposes the input it was built for first
        shapes = await _complete(client, _prompt("conv-shape-calculator"), "input_shape", given={"network": "lesson_exercise"})
        assert shapes.values[0] == "[1, 128, 128]"


async def test_every_proposed_output_size_is_one_the_designer_reaches():
    async with Client(build_server()) as client:
        sizes = await _complete(client, _prompt("cnn-architect"), "output_size", given={"input_shape": "[3, 32, 32]"})
        assert len(sizes.values) == 6
        for size in sizes.values:
            result = await client.call_tool(
                "design_architecture",
                {"input_shape": [3, 32, 32], "param_budget": 10**6, "target_receptive_field": 3, "output_size": json.loads(size),
                 "widths": [16], "top_k": 1, "pareto_front": False},
            )
            assert not result.is_error, (size, result.content[0].text)
            assert result.structured_content["designs"][0]["output_shape"][1:] == json.loads(size)


@pytest.mark.parametrize("mode", ERAS)
async def test_every_proposed_network_walks_through_shape_calculator(mode):
    async with Client(build_server(), mode=mode) as client:
        networks = (await _complete(client, _prompt("conv-shape-calculator"), "network")).values
        assert set(networks) >= {"vgg16", "resnet50", "mobilenet_v2", "lesson_exercise", zoo.VGG16_NOTATION}
        for network in networks:
            if network.startswith("["):
                arguments = {"layers": json.loads(network)}
            elif " " in network:
                arguments = {"spec": network}
            else:  # a reference name: the prompt writes its layers out
                prompt = await client.get_prompt("conv-shape-calculator", {"network": network, "input_shape": "[3, 224, 224]"})
                text = prompt.messages[0].content.text
                arguments = {"layers": json.loads(text.split("```\n")[-2])}
            shapes = (await _complete(client, _prompt("conv-shape-calculator"), "input_shape", given={"network": network})).values
            shape = json.loads(shapes[0])
            result = await client.call_tool("shape_calculator", {"input_shape": shape, **arguments})
            assert not result.is_error, (network, result.content[0].text[:300])


async def test_a_reference_network_named_in_the_prompt_is_written_out_as_torchvisions_layers():
    async with Client(build_server()) as client:
        prompt = await client.get_prompt("conv-shape-calculator", {"network": " ResNet50 ", "input_shape": "[3, 224, 224]"})
        text = prompt.messages[0].content.text
        assert "torchvision resnet50()" in text
        layers = json.loads(text.split("```\n")[-2])
        walked = await client.call_tool("shape_calculator", {"input_shape": [3, 224, 224], "layers": layers})
        guide = await client.call_tool("get_guide", {"name": "conv-shape-calculator", "arguments": {"network": "resnet50"}})
        own = await client.get_prompt("conv-shape-calculator", {"network": "[{\"type\": \"relu\"}]", "input_shape": "[3, 8, 8]"})
    # torchvision's model docs: ResNet-50 has 25,557,032 params and 4.09 GMACs ("GFLOPS") at 224
    assert walked.structured_content["total_params"] == 25_557_032
    assert walked.structured_content["total_macs"] == 4_089_184_256
    assert guide.content[0].text == text.replace("Input shape: [3, 224, 224]", "Input shape: not given")
    assert '[{"type": "relu"}]' in own.messages[0].content.text  # anything else is passed through as given


@pytest.mark.parametrize("mode", ERAS)
async def test_template_names_complete_from_the_kernel_bank_and_the_samples_by_prefix(mode):
    banks = {"conv://kernels/{name}": KERNELS, "conv://samples/{name}": SAMPLES}
    async with Client(build_server(), mode=mode) as client:
        for uri, bank in banks.items():
            everything = await _complete(client, _template(uri), "name")
            assert everything.values == list(bank)
            for name in bank:
                for end in range(1, len(name) + 1):
                    found = (await _complete(client, _template(uri), "name", name[:end].upper())).values
                    assert name in found and set(found) <= set(bank), (name[:end], found)
                    assert all(v.lower().startswith(name[:end].lower()) for v in found[: found.index(name)]), found
            first = everything.values[0]
            read = await client.read_resource(uri.replace("{name}", first))
            assert json.loads(read.contents[0].text)["name"] == first
        sobel = await _complete(client, _template("conv://kernels/{name}"), "name", "sob")
        assert sobel.values == ["sobel_x", "sobel_y"]
        # a word inside a name matches after the names that begin with it
        assert (await _complete(client, _template("conv://kernels/{name}"), "name", "3x3")).values == ["blur_3x3", "gaussian_3x3"]
        assert (await _complete(client, _template("conv://kernels/{name}"), "name", "zzz")).values == []


@pytest.mark.parametrize("mode", ERAS)
async def test_completing_an_unknown_prompt_template_or_argument_is_an_invalid_params_error(mode):
    async with Client(build_server(), mode=mode) as client:
        for ref, argument, says in [
            (_prompt("no-such-prompt"), "input_shape", "cnn-architect, conv-shape-calculator"),
            (_template("conv://nothing/{name}"), "name", "conv://kernels/{name}"),
            (_prompt("cnn-architect"), "network", "no argument 'network'"),
        ]:
            with pytest.raises(MCPError, match=re.escape(says)) as caught:
                await _complete(client, ref, argument)
            assert caught.value.code == INVALID_PARAMS
        # the session goes on
        assert (await _complete(client, _prompt("cnn-architect"), "param_budget", "1000000")).values == ["1000000"]


@pytest.mark.parametrize("mode", ERAS)
async def test_get_guide_lists_the_names_it_takes_in_its_input_schema(mode):
    async with Client(build_server(), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert set(tools["get_guide"].input_schema["properties"]["name"]["enum"]) == prompts


# --- progress --------------------------------------------------------------------------------------------------

# A search of about 1.5 s (proven optimal in the end) and a naive conv2d of about 0.3 s: both long enough for
# several progress reports (the designer reports every 0.25 s, conv2d every 50 ms of work).
SLOW_DESIGN = {
    "input_shape": [3, 224, 224], "param_budget": 500_000, "target_receptive_field": 200, "max_layers": 12,
    "kernel_sizes": [1, 3, 5, 7], "dilations": [1, 2], "widths": [16, 32, 48, 64, 96, 128], "reject_gridding": True,
}
SLOW_CONV = {
    "x": [[[float((i + j + c) % 5) for j in range(96)] for i in range(96)] for c in range(3)],
    "weight": [[[[1.0] * 5] * 5] * 3] * 8,
    "method": "naive",
}


def _stdio():
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_")}
    return StdioServerParameters(command=sys.executable, args=["-m", "server"], env=env)


async def _progress_of(client, name, arguments):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    result = await client.call_tool(name, arguments, progress_callback=on_progress)
    assert not result.is_error, result.content[0].text[:300]
    return result, seen


def _assert_increasing(seen):
    progress = [p for p, _, _ in seen]
    assert len(progress) >= 3, seen
    assert all(a < b for a, b in zip(progress, progress[1:], strict=False)), f"progress must increase: {progress}"
    assert seen[-1][0] == seen[-1][1], f"the last report is the whole: {seen[-1]}"


@pytest.mark.parametrize("transport", ["memory", "stdio"])
@pytest.mark.parametrize("mode", ERAS)
async def test_a_progress_token_yields_increasing_progress_for_a_design_and_a_long_conv2d(transport, mode):
    with anyio.fail_after(120):
        async with Client(build_server() if transport == "memory" else _stdio(), mode=mode) as client:
            design, design_seen = await _progress_of(client, "design_architecture", SLOW_DESIGN)
            conv, conv_seen = await _progress_of(client, "conv2d", SLOW_CONV)
            quiet = await client.call_tool("conv2d", SLOW_CONV)  # without a progress token: the same answer
    _assert_increasing(design_seen)
    assert design_seen[0][2] == "searching" and "states" in design_seen[1][2] and design_seen[-1][2].startswith("done")
    assert design_seen[-1][0] == design.structured_content["explored"]
    _assert_increasing(conv_seen)
    assert {total for _, total, _ in conv_seen} == {conv_seen[-1][1]}  # the total is known from the start
    assert conv.structured_content["output_shape"] == [8, 92, 92]
    assert quiet.structured_content["output"] == conv.structured_content["output"]


# --- tool titles and annotations -------------------------------------------------------------------------------

CONTRACT_TOOLS = {
    "conv_output_size", "shape_calculator", "receptive_field", "parameter_count", "design_architecture",
    "conv2d", "conv2d_backward", "get_guide",
}


async def test_every_tool_reaches_a_stdio_client_with_a_title_and_all_four_hints():
    with anyio.fail_after(60):
        async with Client(_stdio()) as client:
            tools = (await client.list_tools()).tools
    assert {t.name for t in tools} >= CONTRACT_TOOLS
    titles = [t.title for t in tools]
    assert all(titles) and len(set(titles)) == len(titles), titles
    for tool in tools:
        wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert wire["annotations"] == {
            "readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False,
        }, tool.name
