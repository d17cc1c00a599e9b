"""Tool effective_receptive_field: a thin adapter over skills.erf (NumPy loads on the first call, not at import).

The network arguments are the walk tools' (server.walk_tools). The work runs in worker threads a chunk at a time
(a layer, or a block of a conv's output rows), reporting progress in between; a cancelled call stops at the next
chunk boundary. Its multiply-accumulates (forward + backward, every sample) are counted against max_macs and every
map it holds against max_input_elements before anything runs.
"""

from typing import Annotated, Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent
from pydantic import Field, WithJsonSchema

from skills.erf_report import ErfReport
from skills.errors import LimitError

from .conv_tools import _image_block, _run
from .errors import domain_errors
from .limits import LIMITS, Limits
from .results import READ_ONLY
from .walk_tools import GraphRef, InputShapeRef, LayersRef, OutputRef, SpecRef, _limits, _p

WEIGHTS_HELP = (
    "'uniform' (all 1, biases 0), 'random' (PyTorch's default init, seeded), or a state_dict-like object "
    "('0.weight': nested list, '3.body.1.bias', graph nodes by name); BatchNorm in eval mode"
)
# Validated by skills.erf (a message with the choices and a suggestion), so published as string-or-object only.
Weights = Annotated[
    str | dict[str, Any],
    WithJsonSchema({"anyOf": [{"type": "string", "enum": ["uniform", "random"]}, {"type": "object"}]}),
    Field(description=WEIGHTS_HELP),
]


def erf_text(r: ErfReport) -> str:
    """The readable summary: the probed pixel, the ERF's size per axis against the theoretical receptive field."""
    where = f"layer {r.at_layer} ({r.layer_type})" if r.at_layer is not None else f"the output ({r.layer_type})"

    def axis(values, fmt="{:.3g}"):
        shown = ["-" if v is None else fmt.format(v) for v in values]
        return shown[0] if len(set(shown)) == 1 else "x".join(shown)

    lines = [f"ERF of pixel {r.output_position} of {where} {r.output_shape}, {r.weights} weights, {r.samples} sample{'s' if r.samples > 1 else ''}:"]
    if r.erf_std[0] is None:
        lines.append("the gradient is zero (or overflowed): no ERF to measure; see the warnings")
    else:
        lines.append(
            f"std {axis(r.erf_std)} px; 95% of the gradient mass within {_p(r.mass_width_95)} px, 50% within "
            f"{_p(r.mass_width_50)} px; theoretical receptive field {_p(r.receptive_field)} "
            f"(95% width = {axis(r.rf_fraction_95, '{:.2f}')} of it)"
        )
    g = r.gradient
    lines.append(
        f"gradient {g.shape}: min {g.min:.4g}, max {g.max:.4g}, {g.nonzero_pixels:,} input pixels reached"
        if g.min is not None else f"gradient {g.shape}: not finite"
    )
    lines.append(f"{r.macs:,} MACs ({'forward + backward' if r.forward_pass else 'backward only: linear in the input'})")
    return "\n".join(lines) + "".join(f"\nwarning: {w}" for w in r.warnings)


def register(server: MCPServer) -> None:
    """Add the effective_receptive_field tool."""

    @server.tool(
        name="effective_receptive_field",
        title="Effective receptive field (Luo et al. 2016)",
        annotations=READ_ONLY,
    )
    @domain_errors
    async def effective_receptive_field_tool(
        input_shape: InputShapeRef,
        layers: LayersRef = None,
        spec: SpecRef = None,
        graph: GraphRef = None,
        output: OutputRef = None,
        weights: Weights = "uniform",
        seed: Annotated[int, Field(ge=0, le=2**63 - 1, description="sample i uses seed + i")] = 0,
        samples: Annotated[
            int,
            Field(ge=1, le=10_000, description="draws of random weights and N(0,1) inputs to average (the paper: 20)"),
        ] = 1,
        output_position: Annotated[
            list[int] | None,
            Field(min_length=1, max_length=3, description="probed output pixel per axis; default the centre"),
        ] = None,
        output_channel: Annotated[
            int | None, Field(ge=0, description="one output channel; default the sum over channels")
        ] = None,
        at_layer: Annotated[
            int | str | None,
            Field(description="probe this layer (index, path or node name); default the output, or the last spatial layer"),
        ] = None,
        image: Annotated[
            bool, Field(description="also a PNG heatmap (2-D) or profile (1-D)")
        ] = False,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ErfReport]:
        """Effective receptive field (Luo et al. 2016): the exact input gradient of one output pixel (the sum over its channels; NumPy backprop) for uniform, random or given weights; per axis its std and the widths holding 50%/95% of the gradient mass, against the theoretical receptive field."""
        from skills.erf import erf_job

        def setup():
            return erf_job(
                input_shape, layers, spec, graph=graph, output=output, weights=weights, seed=seed, samples=samples,
                output_position=output_position, output_channel=output_channel, at_layer=at_layer,
                max_macs=LIMITS.max_macs, max_elements=LIMITS.max_input_elements,
                inline_elements=LIMITS.max_output_elements_inline, **_limits(),
            )

        try:
            job = await anyio.to_thread.run_sync(setup)  # the walk and given weights can be large: off the event loop
        except LimitError as exc:
            name = getattr(exc, "limit", None)
            if name is None:
                raise
            raise LimitError(f"{exc}; {Limits.how_to_raise(name)}") from None
        outcome = await _run(job, ctx, "effective_receptive_field")
        report = outcome.report
        text = erf_text(report)
        content: list[Any] = [TextContent(type="text", text=text)]
        if image:
            if outcome.map.ndim in (1, 2):
                from skills.erf_picture import render

                where = f"layer {report.at_layer}" if report.at_layer is not None else "output"
                title = f"ERF of {where} pixel {report.output_position}, {report.weights} weights, {report.samples} sample(s)"
                png = await anyio.to_thread.run_sync(render, outcome.map, report, title)
                content.append(_image_block(png))
            else:
                content[0] = TextContent(type="text", text=text + "\n(no picture for a 3-D network: the numbers above and gradient.map describe it)")
        return CallToolResult(content=content, structured_content=report.model_dump(mode="json"))
