"""Tools shape_calculator, receptive_field and parameter_count: a thin adapter over skills.walk.

Input schema choice: `layers` is declared as a plain array of objects (`list[dict]`), not as the spec's
discriminated union. The union would publish ~22 `$defs` joined by `oneOf`/`$ref` (recursive through
residual/concat), which some clients reject or flatten badly, and the SDK's own validation errors for it
would not name the layer index the way the contract wants. skills.spec validates each layer instead and
its errors say `layer 4.body.1 (conv2d): kernel_size must be ...`. The layer table is in the description.
"""

from fractions import Fraction
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent
from pydantic import Field, WithJsonSchema

from skills.arithmetic import MAX_EXTENT
from skills.errors import LimitError, SpecError
from skills.onnx_file import EXPORT_LINE
from skills.walk import (
    ParameterReport,
    ReceptiveFieldReport,
    ShapeReport,
    parameter_count,
    receptive_field,
    report_json,
    shape_calculator,
)

from .apps_view import view_meta
from .errors import domain_errors
from .limits import LIMITS, Limits
from .memory_text import memory_line
from .model_files import allowed_roots
from .results import READ_ONLY

TEXT_ROWS = 60  # rows of the readable table; the structured content always has them all
INLINE_LAYERS = 1_000  # walks up to this size (~7 ms) run on the event loop; a thread hop costs more than they do
INLINE_SPEC_CHARS = 50_000
PASS_THROUGH = {"relu", "relu6", "leakyrelu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "dropout", "identity", "elu",
                "celu", "selu", "mish", "hardsigmoid", "hardtanh", "softplus", "softsign", "tanhshrink", "dropout1d",
                "dropout2d", "dropout3d", "alphadropout"}

LAYERS_HELP = (
    "JSON list of layers, each {\"type\": a torch.nn class name (conv2d or Conv2d), ...its constructor arguments, "
    "PyTorch's names and defaults}: conv, convtranspose, maxpool, avgpool, adaptiveavgpool, adaptivemaxpool, "
    "zeropad/constantpad/reflectionpad/replicationpad/circularpad, batchnorm, instancenorm, dropout (each 1d/2d/3d); "
    "groupnorm, layernorm, upsample, pixelshuffle, pixelunshuffle, channelshuffle, flatten, unflatten, linear, prelu, "
    "softmax, logsoftmax, activations (relu, gelu, silu, ...). Blocks: residual {body, shortcut: [layers]; empty = "
    "identity}, concat {branches: [[layers], ...]}. in_channels/num_features/in_features are inferred. Per-axis "
    "values: an int or one per spatial axis"
)
GRAPH_HELP = (
    "a DAG instead of layers (U-Net, DenseNet, FPN): [{\"name\", \"inputs\": [names; \"input\" = the network input; "
    "default the previous node], \"type\", ...layer fields}], merged by add / mul (broadcast) and concat (dim, "
    "default 1 = channels, batch axis counted)"
)
SPEC_HELP = "text instead of layers: print(model) of an nn.Sequential, or VGG notation ('conv3-64, maxpool, FC-10')"
MODEL_HELP = (
    f"an .onnx file's path (under the working directory or a --model-dir; over HTTP only --model-dir), e.g. from {EXPORT_LINE}"
)
SAME = "as in shape_calculator"
InputShape = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_EXTENT)]],
    Field(
        min_length=1,
        max_length=5,
        description="PyTorch layout, batch axis optional: [C, H, W], [C, L] (1-D), [C, D, H, W] (3-D); the first spatial "
        "layer decides it. A model file brings its own (give it only for symbolic dims)",
    ),
]
InputShapeRef = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_EXTENT)]], Field(min_length=1, max_length=5, description=SAME)
]
Model = Annotated[str | None, Field(description=MODEL_HELP)]
ModelBase64 = Annotated[str | None, Field(description="the .onnx file's bytes, base64 (no shared filesystem)")]
ModelRef = Annotated[str | None, Field(description=SAME)]
ModelBase64Ref = Annotated[str | None, Field(description=SAME)]
# Validated by skills.spec, not by the SDK: published as an array of objects, accepted as any list, so a list
# of 10,000 bad items gets one short error naming the first bad layer instead of a paragraph per element.
_OBJECTS = WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}]})  # published as an array
Layers = Annotated[list[Any] | None, _OBJECTS, Field(description=LAYERS_HELP)]
LayersRef = Annotated[list[Any] | None, _OBJECTS, Field(description=SAME)]
Graph = Annotated[list[Any] | None, _OBJECTS, Field(description=GRAPH_HELP)]
GraphRef = Annotated[list[Any] | None, _OBJECTS, Field(description=SAME)]
Output = Annotated[str | None, Field(max_length=200, description="graph: the output node (default the last)")]
OutputRef = Annotated[str | None, Field(max_length=200, description=SAME)]
# The memory block's options (skills.memory); checked again there, with errors that name every choice.
DType = Annotated[Literal["float32", "float16", "bfloat16", "int8"], Field(description="for the memory block")]
BatchSize = Annotated[
    int | None, Field(ge=1, le=MAX_EXTENT, description="memory block's N when input_shape has no batch axis (default 1)")
]
Mode = Annotated[Literal["inference", "training"], Field(description="which estimate memory.total_bytes is")]
Optimizer = Annotated[
    Literal["sgd", "sgd_momentum", "adam", "adamw"] | None, Field(description="training: whose state counts (default sgd)")
]
Spec = Annotated[str | None, Field(description=SPEC_HELP)]
SpecRef = Annotated[str | None, Field(description=SAME)]


def _limits() -> dict[str, int]:
    return {"max_layers": LIMITS.max_layers, "max_depth": LIMITS.max_depth, "max_spec_chars": LIMITS.max_spec_chars}


async def _named_limit(call, *, layers=None, spec=None, graph=None, **kwargs):
    """Run a walk (inline when small, else in a worker thread); a LimitError gets how to raise the limit it names."""
    small = (spec is None or len(spec) <= INLINE_SPEC_CHARS) and all(
        v is None or _size(v) <= INLINE_LAYERS for v in (layers, graph)
    )
    try:
        if small:
            return call(layers=layers, spec=spec, graph=graph, **kwargs, **_limits())
        return await anyio.to_thread.run_sync(lambda: call(layers=layers, spec=spec, graph=graph, **kwargs, **_limits()))
    except LimitError as exc:
        name = getattr(exc, "limit", None)
        if name is None:
            raise
        raise LimitError(f"{exc}; {Limits.how_to_raise(name)}") from None


async def _model_walk(tool: str, ctx: Context | None, model, model_base64, *, layers=None, spec=None, graph=None, output=None, **kwargs):
    """A walk tool on a model file, read and walked in a worker thread; errors say how to raise a limit."""
    if layers is not None or spec is not None or graph is not None:
        raise SpecError("give the network one way: `model` / `model_base64` (a model file) or `layers` / `graph` / `spec`, not both")
    if output is not None:
        raise SpecError("output names a node of a `graph` spec; a model file's results are for its first output")
    from skills import onnx_model  # loads on the first model call, not at start-up

    roots = allowed_roots(ctx)
    try:
        return await anyio.to_thread.run_sync(lambda: onnx_model.analyse(
            tool, model, model_base64, roots=roots, max_bytes=LIMITS.max_model_bytes, max_layers=LIMITS.max_layers,
            max_depth=LIMITS.max_depth, **kwargs))
    except LimitError as exc:
        name = getattr(exc, "limit", None)
        if name is None:
            raise
        raise LimitError(f"{exc}; {Limits.how_to_raise(name)}") from None


def _model_text(report) -> str:
    """The model file's completeness, after the table."""
    from skills.onnx_model import completeness_text

    return "\n" + completeness_text(report.completeness) if report.completeness is not None else ""


def _size(layers: list) -> int:
    """Layers including nested blocks (stops counting past INLINE_LAYERS)."""
    total, stack = 0, [layers]
    while stack and total <= INLINE_LAYERS:
        seq = stack.pop()
        if not isinstance(seq, list):
            continue
        total += len(seq)
        for item in seq:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "residual":
                stack.extend([item.get("body"), item.get("shortcut")])
            elif kind == "concat" and isinstance(item.get("branches"), list):  # anything else fails validation later
                stack.extend(item["branches"])
    return total


def _n(v) -> str:
    """A number for the text: an int, or a float as the fraction it is (77.333... -> 232/3) or rounded."""
    if isinstance(v, float):
        f = Fraction(v).limit_denominator(10_000)
        return f"{f.numerator}/{f.denominator}" if abs(float(f) - v) < 1e-12 else f"{v:.4g}"
    return str(v)


def _p(v: list) -> str:
    """Per-axis values: '3' when all axes agree, else '3x5' ([l], [h, w] or [d, h, w])."""
    if not v:
        return "-"
    if all(x == v[0] for x in v):
        return _n(v[0])
    return "x".join(_n(x) for x in v)


def _table(header: list[str], shown: list[tuple[str, ...]], total: int) -> str:
    """Aligned columns for the first TEXT_ROWS rows (`shown`) of `total`."""
    widths = [max(len(h), *map(len, col)) for h, col in zip(header, zip(*shown, strict=True), strict=True)] if shown else map(len, header)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in shown]
    if total > len(shown):
        lines.append(f"... {total - len(shown)} more rows in the structured content")
    return "\n".join(lines)


def _warnings(warnings: list[str]) -> str:
    return "".join(f"\nwarning: {w}" for w in warnings)


def shape_text(r: ShapeReport) -> str:
    """The readable summary of a ShapeReport: totals, one row per top-level layer, then the memory block."""
    head = (
        f"output {r.output_shape}, params {r.total_params:,}, buffers {r.total_buffers:,}, MACs {r.total_macs:,}, "
        f"receptive field {_p(r.receptive_field)}, effective stride {_p(r.effective_stride)}"
    )
    shown, total, passed = [], 0, set()
    for x in r.layers:  # only the rows the table shows are formatted
        t = x.type
        if t in PASS_THROUGH:
            passed.add(t)
            continue
        total += 1
        if total <= TEXT_ROWS:
            shown.append((x.name or str(x.index), t, str(x.output_shape), f"{x.params:,}", f"{x.macs:,}", _p(x.receptive_field), _p(x.effective_stride)))
    table = _table(["#", "type", "output", "params", "MACs", "RF", "stride"], shown, total)
    note = f"\n({', '.join(sorted(passed))} rows left out of this table: shape unchanged, no params)" if passed else ""
    return head + "\n" + table + note + memory_line(r.memory) + _warnings(r.warnings)


def rf_text(r: ReceptiveFieldReport) -> str:
    """The readable summary of a ReceptiveFieldReport."""
    head = (
        f"receptive field {_p(r.receptive_field)}, effective stride {_p(r.effective_stride)}, "
        f"effective padding {_p(r.effective_padding)}, output {r.output_shape}"
    )
    if r.output_position is not None:
        g, c = r.input_region, r.input_region_clipped
        at = f" of layer {r.at_layer}" if r.at_layer is not None else ""
        head += f"\noutput pixel {r.output_position}{at} sees input {_region_axes(g)}" if g else f"\noutput pixel {r.output_position}{at} sees no input"
        if g:
            head += f" (in the image: {_region_axes(c, words=False)})" if c else " (no image pixel)"
    shown = [(x.name or str(x.index), x.type, str(x.output_shape), _p(x.receptive_field), _p(x.effective_stride), _p(x.effective_padding))
             for x in r.layers[:TEXT_ROWS]]
    return head + "\n" + _table(["#", "type", "output", "RF", "stride", "padding"], shown, len(r.layers)) + _warnings(r.warnings)


def _region_axes(g, words: bool = True) -> str:
    """A region as its inclusive ranges: 'rows/cols 3..9 x 0..6' (2-D), 'samples 3..9' (1-D), 'depth/rows/cols ... x ... x ...' (3-D)."""
    if hasattr(g, "start"):
        text, word = f"{g.start}..{g.end}", "samples"
    elif hasattr(g, "front"):
        text, word = f"{g.front}..{g.back} x {g.top}..{g.bottom} x {g.left}..{g.right}", "depth/rows/cols"
    else:
        text, word = f"{g.top}..{g.bottom} x {g.left}..{g.right}", "rows/cols"
    return f"{word} {text}" if words else text


def param_text(r: ParameterReport) -> str:
    """The readable summary of a ParameterReport: totals and each layer's formula."""
    head = f"params {r.total_params:,}, buffers {r.total_buffers:,}"
    shown, total = [], 0
    for x in r.layers:
        if x.params or x.buffers:
            total += 1
            if total <= TEXT_ROWS:
                shown.append((x.name or str(x.index), x.type, x.formula + (f"; buffers {x.buffers_formula}" if x.buffers_formula else "")))
    return head + "\n" + _table(["#", "type", "params"], shown, total) + _warnings(r.warnings)


DETAIL_HELP = "structured content: summary (no rows), layers (top-level rows), full (+ block_layers)"
Detail = Annotated[Literal["summary", "layers", "full"], Field(description=DETAIL_HELP)]


def _result(report: ShapeReport | ReceptiveFieldReport | ParameterReport, text: str, detail: str = "full") -> CallToolResult:
    """app.structured(report, text), with the structured content taken from the report directly (skills.walk.report_json
    gives what model_dump(mode="json") would, without its pass over every value), cut to `detail`."""
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=project(report_json(report), detail))


def project(content: dict, detail: str) -> dict:
    """A walk's structured content at a level of detail: "full" as walked; "layers" the top-level rows without what
    repeats (a top-level row's path is its index, or its name), no block_layers; "summary" no rows at all."""
    if detail == "full":
        return content
    content["block_layers"] = []
    if detail == "summary":
        content["layers"] = []
        return content
    for row in content["layers"]:
        row.pop("path", None)
    return content


def register(server: MCPServer) -> None:
    """Add shape_calculator, receptive_field and parameter_count to the server."""

    @server.tool(name="shape_calculator", title="Walk a CNN: shapes, params, MACs, receptive field, memory", annotations=READ_ONLY, meta=view_meta())
    @domain_errors
    async def shape_calculator_tool(
        input_shape: InputShape | None = None, layers: Layers = None, spec: Spec = None, graph: Graph = None, output: Output = None,
        detail: Detail = "layers", model: Model = None, model_base64: ModelBase64 = None,
        dtype: DType = "float32", batch_size: BatchSize = None, mode: Mode = "inference", optimizer: Optimizer = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ShapeReport]:
        """Walk a network (1-D, 2-D or 3-D; `layers`, `graph`, `spec` or an .onnx `model`) exactly as PyTorch: every layer's output shape, params, buffers, MACs (conv/linear multiply-accumulates, bias excluded) and receptive field, the totals, and memory (activations, inference peak, training step, torchinfo's figures)."""
        memory = {"dtype": dtype, "batch_size": batch_size, "mode": mode, "optimizer": optimizer}
        if model is not None or model_base64 is not None:
            report = await _model_walk("shape_calculator", ctx, model, model_base64, layers=layers, spec=spec, graph=graph,
                                       output=output, input_shape=input_shape, memory=memory)
            return _result(report, shape_text(report) + _model_text(report), detail)
        report = await _named_limit(shape_calculator, input_shape=input_shape, layers=layers, spec=spec, graph=graph, output=output,
                                    **memory)
        return _result(report, shape_text(report), detail)

    @server.tool(name="receptive_field", title="Receptive field, effective stride and padding", annotations=READ_ONLY, meta=view_meta())
    @domain_errors
    async def receptive_field_tool(
        input_shape: InputShapeRef | None = None,
        layers: LayersRef = None,
        spec: SpecRef = None,
        graph: GraphRef = None,
        output: OutputRef = None,
        output_position: Annotated[
            list[int] | None,
            Field(min_length=1, max_length=3, description="an output pixel, one index per axis: also the input region it sees"),
        ] = None,
        at_layer: Annotated[
            int | str | None,
            Field(description="output_position's layer (index, path '4.body.1' or node name); default the output or the last map"),
        ] = None,
        detail: Detail = "layers",
        model: ModelRef = None,
        model_base64: ModelBase64Ref = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ReceptiveFieldReport]:
        """Receptive field, effective stride and effective padding per axis (Araujo et al. 2019) after every layer; with output_position, the inclusive input region that pixel sees, before and after clipping to the image."""
        if model is not None or model_base64 is not None:
            report = await _model_walk("receptive_field", ctx, model, model_base64, layers=layers, spec=spec, graph=graph, output=output,
                                       input_shape=input_shape, output_position=output_position, at_layer=at_layer)
            return _result(report, rf_text(report) + _model_text(report), detail)
        report = await _named_limit(
            receptive_field, input_shape=input_shape, output_position=output_position, at_layer=at_layer, layers=layers,
            spec=spec, graph=graph, output=output,
        )
        return _result(report, rf_text(report), detail)

    @server.tool(name="parameter_count", title="Parameters and buffers per layer, with formulas", annotations=READ_ONLY)
    @domain_errors
    async def parameter_count_tool(
        layers: LayersRef = None,
        spec: Annotated[str | None, Field(description="print(model) of any module, or as in shape_calculator")] = None,
        graph: GraphRef = None,
        output: OutputRef = None,
        input_shape: Annotated[
            list[Annotated[int, Field(ge=1)]] | None,
            Field(min_length=1, max_length=5, description="only when channels or in_features cannot be inferred"),
        ] = None,
        detail: Detail = "layers",
        model: ModelRef = None,
        model_base64: ModelBase64Ref = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ParameterReport]:
        """Trainable params and buffers (BatchNorm running statistics) per layer with the formula written out ('64*3*3*3 + 64 = 1,792'), and the totals."""
        if model is not None or model_base64 is not None:
            report = await _model_walk("parameter_count", ctx, model, model_base64, layers=layers, spec=spec, graph=graph, output=output,
                                       input_shape=input_shape)
            return _result(report, param_text(report) + _model_text(report), detail)
        report = await _named_limit(parameter_count, input_shape=input_shape, layers=layers, spec=spec, graph=graph, output=output)
        return _result(report, param_text(report), detail)
