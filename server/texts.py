"""The two markdown texts, served as MCP prompts (filled in), as resources (raw) and by the get_guide tool."""

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from skills import zoo

from .results import READ_ONLY, structured

# (package, file) of each text; package data, so a non-editable install finds them too.
TEXTS = {
    "cnn-architect": ("prompts", "prompt-cnn-architect.md"),
    "conv-shape-calculator": ("skills", "skill-conv-shape-calculator.md"),
}
RESOURCE_URIS = {
    "cnn-architect": "conv://prompts/cnn-architect",
    "conv-shape-calculator": "conv://skills/conv-shape-calculator",
}
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


@cache
def raw_text(name: str) -> str:
    """The markdown file as shipped, front matter included."""
    package, filename = TEXTS[name]
    return files(package).joinpath(filename).read_text(encoding="utf-8")


def split_front_matter(text: str) -> tuple[str, str]:
    """(front matter, body) of a markdown text; front matter is '' when absent."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return "", text
    return match.group(1), text[match.end() :]


def fill(name: str, **values: str) -> str:
    """The body of a text with each {{placeholder}} replaced by its value ('not given' for empty optionals)."""
    _, body = split_front_matter(raw_text(name))
    for key, value in values.items():
        body = body.replace("{{" + key + "}}", value if value else "not given")
    return body


# Reference networks a prompt may name instead of giving layers: name -> (builder, the input it was built for).
REFERENCE_NETWORKS = {
    "vgg16": (zoo.vgg16, "[3, 224, 224]"),
    "vgg16_features": (zoo.vgg16_features, "[3, 224, 224]"),
    "resnet50": (zoo.resnet50, "[3, 224, 224]"),
    "resnet50_features": (zoo.resnet50_features, "[3, 224, 224]"),
    "mobilenet_v2": (zoo.mobilenet_v2, "[3, 224, 224]"),
    "mobilenet_v2_features": (zoo.mobilenet_v2_features, "[3, 224, 224]"),
    "lesson_exercise": (zoo.lesson_exercise, "[1, 128, 128]"),
}


def shape_calculator_task(network: str, input_shape: str) -> str:
    """The skill's body followed by a task section naming the network (a reference name becomes its layers) and the input shape."""
    name = network.strip().lower()
    if name in REFERENCE_NETWORKS:
        build, _ = REFERENCE_NETWORKS[name]
        network = json.dumps(build())
        what = f" `{name}`, {build.__doc__.rstrip('.')}; as JSON layers (shape_calculator's `layers`)"
    else:
        what = ""
    task = (
        "\n\n## Your task\n\n"
        f"Input shape: {input_shape}\n\nNetwork{what}:\n\n```\n{network}\n```\n\n"
        "Walk it layer by layer as above and give the table; check it with shape_calculator."
    )
    return fill("conv-shape-calculator") + task


PROMPT_ARGUMENTS = {
    "cnn-architect": ("input_shape", "param_budget", "target_receptive_field", "output_size"),
    "conv-shape-calculator": ("network", "input_shape"),
}
REQUIRED_ARGUMENTS = {
    "cnn-architect": ("input_shape", "param_budget", "target_receptive_field"),
    "conv-shape-calculator": ("network", "input_shape"),
}


# Values proposed by completion/complete (server.completions filters them by what was typed), best first.
INPUT_SHAPES = [
    "[3, 224, 224]",  # ImageNet (torchvision's classifiers)
    "[3, 32, 32]",  # CIFAR-10/100
    "[1, 28, 28]",  # MNIST, Fashion-MNIST
    "[3, 64, 64]",  # Tiny ImageNet
    "[3, 96, 96]",  # STL-10
    "[1, 128, 128]",  # the lesson's exercise
    "[3, 128, 128]",
    "[3, 256, 256]",
    "[3, 299, 299]",  # Inception v3
    "[3, 384, 384]",
    "[3, 512, 512]",
]
PARAM_BUDGETS = ["10000", "50000", "100000", "250000", "500000", "1000000", "5000000", "25000000"]
RECEPTIVE_FIELDS = ["7", "15", "32", "64", "100", "128", "200", "224", "299", "400"]
OUTPUT_SIZES = ["[1, 1]", "[7, 7]", "[8, 8]", "[14, 14]", "[16, 16]", "[28, 28]", "[32, 32]", "[56, 56]"]
NETWORK_EXAMPLES = [
    *REFERENCE_NETWORKS,
    zoo.VGG16_NOTATION,  # the VGG paper's notation, which shape_calculator's `spec` reads
    "conv3-64, conv3-64, maxpool, conv3-128, conv3-128, maxpool",
    json.dumps(zoo.lesson_exercise()),
]
_MAX_SIDE = 1_000_000


def _spatial(shape: str) -> tuple[int, int] | None:
    """(H, W) of a shape typed as text ('[3, 224, 224]', '3x224x224', '[1, 3, 32, 32]'); None if it is not one."""
    numbers = re.findall(r"\d+", shape[:200])
    if len(numbers) not in (3, 4) or any(len(n) > 7 for n in numbers):
        return None
    h, w = int(numbers[-2]), int(numbers[-1])
    return (h, w) if 1 <= h <= _MAX_SIDE and 1 <= w <= _MAX_SIDE else None


def _pair(h: int, w: int) -> str:
    return f"[{h}, {w}]"


def _halvings(h: int, w: int) -> list[str]:
    """The sizes a stack of 'same'-padded stride-1/2 convs reaches from [h, w]: [h, w], then ceil halves down to [1, 1]."""
    sizes = [_pair(h, w)]
    while (h, w) != (1, 1):
        h, w = -(-h // 2), -(-w // 2)
        sizes.append(_pair(h, w))
    return sizes


def _suggest_cnn_architect(argument: str, given: Mapping[str, str]) -> list[str] | None:
    hw = _spatial(given.get("input_shape", ""))
    if argument == "input_shape":
        return INPUT_SHAPES
    if argument == "param_budget":
        return PARAM_BUDGETS
    if argument == "target_receptive_field":  # the whole input first, when it is known
        whole = ([str(hw[0]) if hw[0] == hw[1] else _pair(*hw)]) if hw else []
        return whole + RECEPTIVE_FIELDS
    if argument == "output_size":
        return _halvings(*hw) if hw else OUTPUT_SIZES
    return None


def _suggest_conv_shape_calculator(argument: str, given: Mapping[str, str]) -> list[str] | None:
    if argument == "network":
        return NETWORK_EXAMPLES
    if argument == "input_shape":  # a named reference network's own input first
        reference = REFERENCE_NETWORKS.get(given.get("network", "").strip().lower())
        return ([reference[1]] if reference else []) + INPUT_SHAPES + ["[1, 3, 224, 224]", "[8, 3, 224, 224]"]
    return None


PROMPT_COMPLETIONS = {"cnn-architect": _suggest_cnn_architect, "conv-shape-calculator": _suggest_conv_shape_calculator}


class GuideResult(BaseModel):
    """One of the server's two texts, for clients that call tools but cannot read prompts or resources. The text itself
    is the result's text content (sent once, not again in the structured content)."""

    name: str
    uri: str = Field(description="the same text as a resource (raw markdown)")
    arguments: list[str] = Field(description="the arguments this text takes")
    missing: list[str] = Field(description="required arguments not given (their placeholders say 'not given')")
    chars: int = Field(description="length of the text")


def guide(name: str, arguments: dict[str, str]) -> tuple[GuideResult, str]:
    """The named text filled in with whatever arguments were given, and what it is; unknown argument names are an error."""
    accepted = PROMPT_ARGUMENTS[name]
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise ToolError(f"get_guide {name!r} takes arguments {list(accepted)}, got unknown {unknown}")
    missing = [a for a in REQUIRED_ARGUMENTS[name] if not arguments.get(a)]
    if name == "conv-shape-calculator":
        if arguments.get("network") or arguments.get("input_shape"):
            text = shape_calculator_task(arguments.get("network", "not given"), arguments.get("input_shape", "not given"))
        else:
            text = fill(name)
    else:
        text = fill(name, **{a: arguments.get(a, "") for a in accepted})
    return GuideResult(name=name, uri=RESOURCE_URIS[name], arguments=list(accepted), missing=missing, chars=len(text)), text


def register_texts(server: MCPServer) -> None:
    """Register both texts as prompts and as text/markdown resources."""

    @server.prompt(name="cnn-architect", title="Design a CNN stack under a budget")
    def cnn_architect(
        input_shape: Annotated[str, Field(description="input shape [C, H, W], e.g. [3, 224, 224]")],
        param_budget: Annotated[str, Field(description="maximum trainable parameters, e.g. 500000")],
        target_receptive_field: Annotated[str, Field(description="receptive field to reach in pixels, e.g. 200 or [200, 200]")],
        output_size: Annotated[str, Field(description="required final spatial size [h, w] (optional)")] = "",
    ) -> str:
        """Design a stack of Conv2d layers (kernel, stride, padding per layer) for an input shape, a parameter budget and a target receptive field."""
        return fill(
            "cnn-architect",
            input_shape=input_shape,
            param_budget=param_budget,
            target_receptive_field=target_receptive_field,
            output_size=output_size,
        )

    @server.prompt(name="conv-shape-calculator", title="Walk a network layer by layer")
    def conv_shape_calculator(
        network: Annotated[
            str,
            Field(
                description="the network: JSON layers, the text print(model) shows, or a reference network's name ("
                + ", ".join(REFERENCE_NETWORKS)
                + ")"
            ),
        ],
        input_shape: Annotated[str, Field(description="input shape [C, H, W] or [N, C, H, W]")],
    ) -> str:
        """Walk a network spec layer by layer: output shape, receptive field and parameter count for every block."""
        return shape_calculator_task(network, input_shape)

    @server.resource(
        RESOURCE_URIS["cnn-architect"],
        name="prompt-cnn-architect",
        title="Prompt: CNN architect",
        description="The cnn-architect prompt as raw markdown (front matter declares its arguments).",
        mime_type="text/markdown",
    )
    def cnn_architect_resource() -> str:
        return raw_text("cnn-architect")

    @server.resource(
        RESOURCE_URIS["conv-shape-calculator"],
        name="skill-conv-shape-calculator",
        title="Skill: conv shape calculator",
        description="The conv-shape-calculator skill (Agent Skills format) as raw markdown.",
        mime_type="text/markdown",
    )
    def conv_shape_calculator_resource() -> str:
        return raw_text("conv-shape-calculator")

    @server.tool(
        name="get_guide",
        title="Read the cnn-architect prompt or the conv-shape-calculator skill",
        annotations=READ_ONLY,
    )
    async def get_guide(
        name: Annotated[
            Literal["cnn-architect", "conv-shape-calculator"],
            Field(description="cnn-architect (design a stack) or conv-shape-calculator (walk a network)"),
        ],
        arguments: Annotated[
            dict[str, Annotated[str, Field(max_length=100_000)]] | None,
            Field(
                description="as strings: cnn-architect takes input_shape, param_budget, target_receptive_field, "
                "output_size; conv-shape-calculator takes network, input_shape"
            ),
        ] = None,
    ) -> Annotated[CallToolResult, GuideResult]:
        """The method texts this server teaches (its prompts), for clients that only call tools: read one before designing or walking a network by hand."""
        result, text = guide(name, arguments or {})
        return structured(result, text)
