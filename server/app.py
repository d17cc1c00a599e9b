"""build_server() -> MCPServer: registers the tools, prompts and resources; thin over `skills`."""

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from skills.arithmetic import OutputSizeResult, conv_output_size

from .apps_view import apps_extension
from .argtypes import ConvPaddingAxes, IntOrAxes, NonNegOrAxes
from .completions import register_completions
from .conv_tools import TEMPLATE_COMPLETIONS
from .conv_tools import register as register_conv
from .designer_tools import register as register_designer
from .erf_tools import register as register_erf
from .errors import domain_errors
from .guards import argument_errors, cap_tool_errors, strict_arguments
from .results import READ_ONLY, structured
from .schemas import compact_schemas
from .texts import PROMPT_COMPLETIONS, register_texts
from .walk_tools import register as register_walk

INSTRUCTIONS = """\
Convolution arithmetic and CNN planning, exactly as PyTorch computes it (torch.nn semantics; layout [C, H, W] or \
[N, C, H, W], 1-D [C, L] and 3-D [C, D, H, W] too; every spatial value per axis). Call a tool instead of doing \
conv arithmetic in your head:
- conv_output_size: one conv, pool or transposed conv layer's output size, with the formula.
- shape_calculator: walk a network (JSON layers, a graph of named nodes for U-Nets and other DAGs, print(model) \
text, or an .onnx file): every layer's shape, params, MACs, receptive field, and the memory it needs.
- receptive_field: receptive field, effective stride and padding per layer; output_position gives the exact \
input region one output pixel sees.
- parameter_count: params and buffers per layer with their formulas (any print(model) text, too).
- design_architecture: the provably best conv stack for a parameter budget and a target receptive field.
- effective_receptive_field: how much of its receptive field a pixel really uses (Luo et al. 2016).
- conv2d / conv2d_backward: run a small convolution (or its gradients) in NumPy, e.g. with kernel sobel_x.
- get_guide: the method texts behind the prompts, for clients that only call tools.
Errors name the layer, the field, the rule and the numbers: fix the argument and call again."""


def build_server() -> MCPServer:
    """The MCP server with every tool, prompt and resource registered."""
    server = MCPServer(
        name="conv-arithmetic",
        title="Convolution arithmetic and CNN planning",
        instructions=INSTRUCTIONS,
        version=_version(),
        extensions=[apps_extension()],  # MCP Apps: the ui:// view of the walk tools (server/apps_view.py)
    )
    # A safety net for every tool: the SDK's text for invalid arguments has one paragraph per bad list element.
    server.middleware.append(cap_tool_errors)
    server.middleware.append(argument_errors(server))  # unknown and invalid arguments: one line each, naming them

    @server.tool(name="conv_output_size", title="Output size of one conv, pool or transposed conv", annotations=READ_ONLY)
    @domain_errors
    async def conv_output_size_tool(
        input_size: Annotated[IntOrAxes, Field(description="H (square), [H, W], [L] or [D, H, W]")],
        kernel_size: Annotated[IntOrAxes, Field(description="K or one per axis")],
        stride: Annotated[
            IntOrAxes | None, Field(description="default 1; kernel_size for kind 'pool'")
        ] = None,
        padding: Annotated[
            ConvPaddingAxes,
            Field(description="per side, P or one per axis; 'same'/'valid' for kind 'conv'"),
        ] = 0,
        dilation: Annotated[IntOrAxes, Field(description="D or one per axis")] = 1,
        ceil_mode: Annotated[bool, Field(description="pool only (PyTorch's rule)")] = False,
        output_padding: Annotated[NonNegOrAxes, Field(description="transpose only, < max(stride, dilation)")] = 0,
        kind: Annotated[Literal["conv", "pool", "transpose"], Field(description="nn.ConvNd, MaxPoolNd/AvgPoolNd or ConvTransposeNd")] = "conv",
    ) -> Annotated[CallToolResult, OutputSizeResult]:
        """Output size of one conv, pool or transposed conv layer (1-3 axes; all ints: [h, w]), exactly as PyTorch, with the arithmetic written out."""
        # async on purpose: microseconds of arithmetic, so it runs on the event loop instead of hopping to a thread.
        if kind != "conv" and isinstance(padding, str):
            raise ToolError(f"padding={padding!r} is only for kind 'conv'; kind {kind!r} takes an int or a per-axis list")
        result = conv_output_size(input_size, kernel_size, stride, padding, dilation, ceil_mode, output_padding, kind)
        return structured(result, f"output_size = {result.output_size}  ({result.formula})")

    # Each capability registers itself; the order is the tool list's order.
    register_walk(server)
    register_designer(server)
    register_conv(server)
    register_erf(server)
    register_texts(server)
    register_completions(server, prompts=PROMPT_COMPLETIONS, templates=TEMPLATE_COMPLETIONS)
    strict_arguments(server)  # numbers are JSON numbers in every tool
    compact_schemas(server)  # the tool list a client reads: no titles, null branches or nested $defs
    return server


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("conv-arithmetic-mcp")
    except Exception:  # not installed (running from a checkout)
        return "0.0.0"
