"""The two markdown texts, served as MCP prompts (filled in), as resources (raw) and by the get_guide tool."""

import re
from functools import cache
from importlib.resources import files
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

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


def shape_calculator_task(network: str, input_shape: str) -> str:
    """The skill's body followed by a task section naming the network and the input shape."""
    task = (
        "\n\n## Your task\n\n"
        f"Input shape: {input_shape}\n\nNetwork:\n\n```\n{network}\n```\n\n"
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


class GuideResult(BaseModel):
    """One of the server's two texts, for clients that call tools but cannot read prompts or resources."""

    name: str
    uri: str = Field(description="the same text as a resource (raw markdown)")
    text: str = Field(description="the text, filled in with the arguments given")
    arguments: list[str] = Field(description="the arguments this text takes")
    missing: list[str] = Field(description="required arguments not given (their placeholders say 'not given')")


def guide(name: str, arguments: dict[str, str]) -> GuideResult:
    """The named text filled in with whatever arguments were given; unknown argument names are an error."""
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
    return GuideResult(name=name, uri=RESOURCE_URIS[name], text=text, arguments=list(accepted), missing=missing)


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
        network: Annotated[str, Field(description="the network: JSON layers, or the text print(model) shows")],
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
                description="the prompt's arguments as strings: cnn-architect takes input_shape, param_budget, "
                "target_receptive_field, output_size; conv-shape-calculator takes network, input_shape"
            ),
        ] = None,
    ) -> Annotated[CallToolResult, GuideResult]:
        """The method texts this server teaches (the same as its prompts), for clients that only call tools: read one before designing or walking a network by hand."""
        result = guide(name, arguments or {})
        return structured(result, result.text)
