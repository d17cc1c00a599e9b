"""Tools shape_calculator, receptive_field and parameter_count: a thin adapter over skills.walk.

Input schema choice: `layers` is declared as a plain array of objects (`list[dict]`), not as the spec's
discriminated union. The union would publish ~22 `$defs` joined by `oneOf`/`$ref` (recursive through
residual/concat), which some clients reject or flatten badly, and the SDK's own validation errors for it
would not name the layer index the way the contract wants. skills.spec validates each layer instead and
its errors say `layer 4.body.1 (conv2d): kernel_size must be ...`. The layer table is in the description.
"""

from typing import Annotated, Any

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
from .model_files import allowed_roots
from .results import READ_ONLY

TEXT_ROWS = 60  # rows of the readable table; the structured content always has them all
INLINE_LAYERS = 1_000  # walks up to this size (~7 ms) run on the event loop; a thread hop costs more than they do
INLINE_SPEC_CHARS = 50_000
PASS_THROUGH = {"relu", "relu6", "leakyrelu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "dropout", "identity"}

LAYERS_HELP = (
    "the network as a JSON list of layers, each {\"type\": ..., plus PyTorch's constructor arguments and defaults}: "
    "conv2d (out_channels, kernel_size, stride=1, padding=0 | [h,w] | 'same' | 'valid', dilation=1, groups=1, bias=true, "
    "padding_mode='zeros'|'reflect'|'replicate'|'circular'); convtranspose2d (out_channels, kernel_size, stride, padding, "
    "output_padding, dilation, groups, bias); maxpool2d (kernel_size, stride=kernel_size, padding, dilation, ceil_mode); "
    "avgpool2d (kernel_size, stride, padding, ceil_mode, count_include_pad); adaptiveavgpool2d / adaptivemaxpool2d "
    "(output_size); zeropad2d (padding: int or [left, right, top, bottom]); batchnorm2d (affine=true); relu, relu6, "
    "leakyrelu, gelu, silu, sigmoid, tanh, hardswish, dropout, identity; flatten; linear (out_features, bias); "
    "residual (body: [layers], shortcut: [layers], empty = identity); concat (branches: [[layers], ...]). "
    "in_channels / num_features / in_features may be left out (inferred). Per-axis values: int or [h, w]."
)
SPEC_HELP = (
    "the network as text instead of layers: what print(model) shows for an nn.Sequential (nested too), "
    "or VGG paper notation such as 'conv3-64, conv3-64, maxpool, FC-4096, FC-1000'"
)
InputShape = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_EXTENT)]],
    Field(min_length=1, max_length=5, description=(
        "input shape [C, H, W] or [N, C, H, W] (PyTorch layout), e.g. [3, 224, 224] ([C, L] / [C, D, H, W] for 1-D / "
        "3-D); for a model file: all its input's dims, needed only when some are symbolic"
    )),
]
MODEL_HELP = (
    "instead of layers/spec, a real model: the path of an .onnx file (relative to the server's working directory or "
    "a --model-dir; over HTTP only --model-dir). Export one with "
    f"{EXPORT_LINE}; tf2onnx and keras2onnx write the same format"
)
Model = Annotated[str | None, Field(description=MODEL_HELP)]
ModelBase64 = Annotated[str | None, Field(description="the .onnx file's bytes, base64-encoded, for clients that share no filesystem with the server")]
# Validated by skills.spec, not by the SDK: published as an array of objects, accepted as any list, so a list
# of 10,000 bad items gets one short error naming the first bad layer instead of a paragraph per element.
Layers = Annotated[
    list[Any] | None,
    WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}]}),
    Field(description=LAYERS_HELP),
]
Spec = Annotated[str | None, Field(description=SPEC_HELP)]


def _limits() -> dict[str, int]:
    return {"max_layers": LIMITS.max_layers, "max_depth": LIMITS.max_depth, "max_spec_chars": LIMITS.max_spec_chars}


async def _named_limit(call, *, layers=None, spec=None, **kwargs):
    """Run a walk (inline when small, else in a worker thread); a LimitError gets how to raise the limit it names."""
    small = (spec is None or len(spec) <= INLINE_SPEC_CHARS) and (layers is None or _size(layers) <= INLINE_LAYERS)
    try:
        if small:
            return call(layers=layers, spec=spec, **kwargs, **_limits())
        return await anyio.to_thread.run_sync(lambda: call(layers=layers, spec=spec, **kwargs, **_limits()))
    except LimitError as exc:
        name = getattr(exc, "limit", None)
        if name is None:
            raise
        raise LimitError(f"{exc}; {Limits.how_to_raise(name)}") from None


async def _model_walk(tool: str, ctx: Context | None, model, model_base64, *, layers=None, spec=None, **kwargs):
    """A walk tool on a model file, read and walked in a worker thread; errors say how to raise a limit."""
    if layers is not None or spec is not None:
        raise SpecError("give the network one way: `model` / `model_base64` (a model file) or `layers` / `spec`, not both")
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


def _p(v: list) -> str:
    """[h, w] as '3' when square, else '3x5' (any number of axes)."""
    if not v:
        return "-"
    return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))


def _span(region) -> str:
    """An input region as 'top..bottom x left..right' (one range per axis)."""
    d = region.model_dump()
    pairs = [("start", "end")] if "start" in d else [("front", "back"), ("top", "bottom"), ("left", "right")] if "front" in d else [("top", "bottom"), ("left", "right")]
    return " x ".join(f"{d[a]}..{d[b]}" for a, b in pairs)


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
    """The readable summary of a ShapeReport: totals, then one row per top-level layer."""
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
            shown.append((str(x.index), t, str(x.output_shape), f"{x.params:,}", f"{x.macs:,}", _p(x.receptive_field), _p(x.effective_stride)))
    table = _table(["#", "type", "output", "params", "MACs", "RF", "stride"], shown, total)
    note = f"\n({', '.join(sorted(passed))} rows left out of this table: shape unchanged, no params)" if passed else ""
    return head + "\n" + table + note + _warnings(r.warnings)


def rf_text(r: ReceptiveFieldReport) -> str:
    """The readable summary of a ReceptiveFieldReport."""
    head = (
        f"receptive field {_p(r.receptive_field)}, effective stride {_p(r.effective_stride)}, "
        f"effective padding {_p(r.effective_padding)}, output {r.output_shape}"
    )
    if r.output_position is not None:
        g, c = r.input_region, r.input_region_clipped
        head += f"\noutput pixel {r.output_position} sees input rows/cols "
        head += _span(g) if g else "none"
        head += f" (in the image: {_span(c)})" if c else " (no image pixel)"
    shown = [(str(x.index), x.type, str(x.output_shape), _p(x.receptive_field), _p(x.effective_stride), _p(x.effective_padding))
             for x in r.layers[:TEXT_ROWS]]
    return head + "\n" + _table(["#", "type", "output", "RF", "stride", "padding"], shown, len(r.layers)) + _warnings(r.warnings)


def param_text(r: ParameterReport) -> str:
    """The readable summary of a ParameterReport: totals and each layer's formula."""
    head = f"params {r.total_params:,}, buffers {r.total_buffers:,}"
    shown, total = [], 0
    for x in r.layers:
        if x.params or x.buffers:
            total += 1
            if total <= TEXT_ROWS:
                shown.append((str(x.index), x.type, x.formula + (f"; buffers {x.buffers_formula}" if x.buffers_formula else "")))
    return head + "\n" + _table(["#", "type", "params"], shown, total) + _warnings(r.warnings)


def _result(report: ShapeReport | ReceptiveFieldReport | ParameterReport, text: str) -> CallToolResult:
    """app.structured(report, text), with the structured content taken from the report directly (skills.walk.report_json
    gives what model_dump(mode="json") would, without its pass over every value)."""
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=report_json(report))


def register(server: MCPServer) -> None:
    """Add shape_calculator, receptive_field and parameter_count to the server."""

    @server.tool(name="shape_calculator", title="Walk a CNN: shapes, params, MACs, receptive field", annotations=READ_ONLY, meta=view_meta())
    @domain_errors
    async def shape_calculator_tool(
        input_shape: InputShape | None = None,
        layers: Layers = None,
        spec: Spec = None,
        model: Model = None,
        model_base64: ModelBase64 = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ShapeReport]:
        """Walk a whole network layer by layer exactly as PyTorch does and return every layer's output shape, params, buffers, MACs and receptive field, with totals; give the network as `layers` (JSON), `spec` (print(model) text) or `model` (an .onnx file)."""
        if model is not None or model_base64 is not None:
            report = await _model_walk("shape_calculator", ctx, model, model_base64, layers=layers, spec=spec, input_shape=input_shape)
            return _result(report, shape_text(report) + _model_text(report))
        report = await _named_limit(shape_calculator, input_shape=input_shape, layers=layers, spec=spec)
        return _result(report, shape_text(report))

    @server.tool(name="receptive_field", title="Receptive field, effective stride and padding", annotations=READ_ONLY, meta=view_meta())
    @domain_errors
    async def receptive_field_tool(
        input_shape: InputShape | None = None,
        layers: Layers = None,
        spec: Spec = None,
        output_position: Annotated[
            list[int] | None,
            Field(min_length=1, max_length=3, description="[y, x] of one output pixel ([x] / [z, y, x] in 1-D / 3-D): also return the input region it sees"),
        ] = None,
        model: Model = None,
        model_base64: ModelBase64 = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ReceptiveFieldReport]:
        """Receptive field, effective stride and effective padding ([h, w], Araujo et al. 2019) after every layer; with output_position [y, x], the inclusive input region that pixel sees, before and after clipping to the image."""
        if model is not None or model_base64 is not None:
            report = await _model_walk("receptive_field", ctx, model, model_base64, layers=layers, spec=spec,
                                       input_shape=input_shape, output_position=output_position)
            return _result(report, rf_text(report) + _model_text(report))
        report = await _named_limit(receptive_field, input_shape=input_shape, output_position=output_position, layers=layers, spec=spec)
        return _result(report, rf_text(report))

    @server.tool(name="parameter_count", title="Parameters and buffers per layer, with formulas", annotations=READ_ONLY)
    @domain_errors
    async def parameter_count_tool(
        layers: Layers = None,
        spec: Spec = None,
        input_shape: Annotated[
            list[Annotated[int, Field(ge=1)]] | None,
            Field(
                min_length=1,
                max_length=5,
                description="[C, H, W] or [N, C, H, W]; needed only when channels (or a linear's in_features) cannot be inferred from the layers",
            ),
        ] = None,
        model: Model = None,
        model_base64: ModelBase64 = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, ParameterReport]:
        """Trainable params and buffers (BatchNorm running statistics) per layer, each with its formula written out (e.g. '64*3*3*3 + 64 = 1,792'), and the totals; `spec` takes any print(model) text, `model` an .onnx file."""
        if model is not None or model_base64 is not None:
            report = await _model_walk("parameter_count", ctx, model, model_base64, layers=layers, spec=spec, input_shape=input_shape)
            return _result(report, param_text(report) + _model_text(report))
        report = await _named_limit(parameter_count, input_shape=input_shape, layers=layers, spec=spec)
        return _result(report, param_text(report))
