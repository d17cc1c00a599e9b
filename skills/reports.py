"""The walk's results: the report models the tools return (their fields are the contract's), and their rows.

Per-axis values (receptive_field, effective_stride, effective_padding) have one entry per spatial axis: [l] for a
1-D network, [h, w] for 2-D, [d, h, w] for 3-D; empty for a network without spatial axes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from .layers import Rec, text
from .rf import fields as rf_fields

BYTES_PER_ELEMENT = 4  # float32 activations

# ints stay ints in JSON (an effective stride is fractional only after a transposed conv); published as plain numbers
Numbers = Annotated[list[int | float], WithJsonSchema({"type": "array", "items": {"type": "number"}})]


class Region(BaseModel):
    """Inclusive input pixel indices (2-D)."""

    top: int
    left: int
    bottom: int
    right: int


class Region1d(BaseModel):
    """Inclusive input sample indices (1-D)."""

    start: int
    end: int


class Region3d(BaseModel):
    """Inclusive input voxel indices (3-D: depth front..back, rows top..bottom, columns left..right)."""

    front: int
    top: int
    left: int
    back: int
    bottom: int
    right: int


def region(spans: list[tuple[int, int]]) -> Region | Region1d | Region3d:
    """The region model for inclusive (first, last) per axis."""
    if len(spans) == 1:
        return Region1d(start=spans[0][0], end=spans[0][1])
    if len(spans) == 2:
        return Region(top=spans[0][0], left=spans[1][0], bottom=spans[0][1], right=spans[1][1])
    (f, b), (t, bo), (lf, r) = spans
    return Region3d(front=f, top=t, left=lf, back=b, bottom=bo, right=r)


class ShapeRow(BaseModel):
    """One layer of shape_calculator (blocks are one row; their layers are in `block_layers`)."""

    index: int = Field(description="top-level layer index (graph: node index), from 0")
    path: str | None = Field(None, description="index path, e.g. '4' or '4.body.1' inside a block; a graph node's name (the tools leave it out of top-level rows, where it is the index or the name)")
    type: str
    input_shape: list[int]
    output_shape: list[int]
    params: int
    buffers: int
    macs: int
    receptive_field: list[int] = Field(description="per spatial axis ([h, w] in 2-D), in input pixels")
    effective_stride: Numbers = Field(description="per axis, input pixels per output pixel (fractional after upsampling)")
    effective_padding: Numbers = Field(description="per axis; output pixel 0's region starts at -effective_padding")
    activation_bytes: int = Field(description="memory of this layer's output: elements * 4 (float32)")
    name: str | None = Field(None, description="graph node name (graph specs, model files), or the module path print(model) shows")
    op_type: str | None = Field(None, description="the op the node came from (a model file's ONNX op_type)")
    note: str | None = Field(None, description="why an opaque node is not analysed")


# Row lists are published as bare arrays, their fields named in the description. The SDK's client validates
# structured content against the output schema with jsonschema in pure Python: VGG16's 38 fully described rows
# cost ~10 ms there against ~0.5 ms for the walk. The rows stay typed in Python (the pydantic models below),
# and the server validates what it sends against them.
LIGHT_ROWS = WithJsonSchema({"type": "array"})


def _fields(model: type[BaseModel]) -> str:
    """'Rows are objects with: a, b (what b is), ...' for a row model."""
    names = ", ".join(f"{name} ({info.description})" if info.description else name for name, info in model.model_fields.items())
    return f"{model.__doc__} Each row is an object with: {names}"


ShapeRows = Annotated[list[ShapeRow], LIGHT_ROWS]


class Coverage(BaseModel):
    """How far one metric reaches through a model: `complete`, `partial` (known up to the node before `from_node`,
    in topological order), or `unavailable`; `reason` says why."""

    status: Literal["complete", "partial", "unavailable"]
    from_node: str | None = Field(None, description="the first node (topological order) the metric is not known for")
    reason: str | None = None


class Completeness(BaseModel):
    """Per metric, how much of a model file the result covers (only the metrics the tool reports)."""

    shapes: Coverage | None = None
    params: Coverage | None = None
    macs: Coverage | None = None
    receptive_field: Coverage | None = None


COMPLETENESS_HELP = (
    "for model files: per metric (shapes, params, macs, receptive_field) {status: complete | partial | unavailable, "
    "from_node: the first node it is not known for, reason}"
)


class MemoryReport(BaseModel):
    """Memory in a dtype and batch: params, buffers, activations, the inference peak, a training step, torchinfo's figures; `model` says what is counted."""

    dtype: str = Field(description="element type of params, buffers and activations: float32, float16, bfloat16 or int8")
    batch_size: int = Field(description="N the figures are for")
    mode: str = Field(description="inference or training: which estimate total_bytes is")
    optimizer: str = Field(description="the optimizer whose state training_bytes counts (sgd: none)")
    total_bytes: int = Field(description="inference: params + buffers + inference_peak_bytes; training: training_bytes")
    input_bytes: int
    params_bytes: int
    buffers_bytes: int = Field(description="BatchNorm running statistics (num_batches_tracked is int64)")
    activation_bytes: int = Field(description="sum of every layer's output, block layers included (a block's join once), as forward hooks on every layer count them")
    inference_peak_bytes: int = Field(description="most bytes of distinct activation tensors alive at once running the layers in order, the input included; a tensor is freed after its last consumer")
    inference_peak_at: str = Field(description="path (graph: node name) of the layer whose output is allocated at the peak, or 'input'")
    training_bytes: int = Field(description="params + buffers + gradient + optimizer state + saved_for_backward")
    saved_for_backward_bytes: int = Field(description="distinct tensors autograd keeps for the backward pass after a train-mode forward (parameters excluded)")
    gradient_bytes: int = Field(description="one gradient per parameter")
    optimizer_state_bytes: int
    torchinfo_input_mb: float = Field(description="torchinfo's 'Input size (MB)', MB = 1e6 bytes")
    torchinfo_forward_backward_mb: float = Field(description="torchinfo's 'Forward/backward pass size (MB)': 2 x the outputs of the layers that have params")
    torchinfo_params_mb: float = Field(description="torchinfo's 'Params size (MB)' (buffers not counted)")
    torchinfo_total_mb: float = Field(description="torchinfo's 'Estimated Total Size (MB)': the three above summed")
    model: str = Field(description="what the estimate counts and what it leaves out")


# Published, like the rows, as a bare object with its fields named in the description: the client's pure-Python
# validation of 20 typed fields costs as much as the rest of VGG16's result (~0.1 ms).
MemoryBlock = Annotated[MemoryReport | None, WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "null"}]})]


class ShapeReport(BaseModel):
    """Result of shape_calculator: every layer's output shape, params, MACs and receptive field, as PyTorch."""

    input_shape: list[int]
    output_shape: list[int]
    total_params: int = Field(description="trainable parameters (weights, biases, norm affine)")
    total_buffers: int = Field(description="BatchNorm running statistics: running_mean + running_var + num_batches_tracked")
    total_macs: int = Field(description="multiply-accumulates of conv, transposed conv and linear, bias excluded, for the batch")
    total_activation_bytes: int = Field(description="sum of the top-level rows' outputs, float32, at the input's batch (memory.activation_bytes counts every layer)")
    receptive_field: list[int]
    effective_stride: Numbers
    effective_padding: Numbers
    memory: MemoryBlock = Field(None, description=_fields(MemoryReport).replace("Each row is an object with", "An object with"))
    layers: ShapeRows = Field(description="one row per top-level layer or graph node (a residual/concat block is one row). " + _fields(ShapeRow))
    block_layers: ShapeRows = Field(default_factory=list, description="layers inside residual/concat blocks, by path")
    warnings: list[str] = Field(default_factory=list)
    completeness: Completeness | None = Field(None, description=COMPLETENESS_HELP)


class RFRow(BaseModel):
    """One layer of receptive_field."""

    index: int
    path: str | None = None
    type: str
    output_shape: list[int]
    receptive_field: list[int]
    effective_stride: Numbers
    effective_padding: Numbers
    name: str | None = None
    op_type: str | None = None
    note: str | None = None


RFRows = Annotated[list[RFRow], LIGHT_ROWS]
AnyRegion = Region | Region1d | Region3d


class ReceptiveFieldReport(BaseModel):
    """Result of receptive_field: receptive field, effective stride and padding per layer; optionally one pixel's input region."""

    input_shape: list[int]
    output_shape: list[int]
    receptive_field: list[int] = Field(description="per spatial axis ([h, w] in 2-D): input pixels one output pixel sees (the largest over pixels)")
    effective_stride: Numbers = Field(description="per axis: input pixels between neighbouring output pixels")
    effective_padding: Numbers = Field(description="per axis: output pixel 0's region starts at -effective_padding")
    layers: RFRows = Field(description="one row per top-level layer or graph node. " + _fields(RFRow))
    block_layers: RFRows = Field(default_factory=list, description="layers inside residual/concat blocks, by path")
    output_position: list[int] | None = None
    input_region: AnyRegion | None = Field(None, description="inclusive input pixels output_position sees, padding counted")
    input_region_clipped: AnyRegion | None = Field(None, description="the same, restricted to the pixels it really reads inside the image")
    at_layer: str | None = Field(None, description="path of the layer whose output pixel output_position names (the network's output when null)")
    warnings: list[str] = Field(default_factory=list)
    completeness: Completeness | None = Field(None, description=COMPLETENESS_HELP)


class ParamRow(BaseModel):
    """One layer of parameter_count."""

    index: int
    path: str | None = None
    type: str
    params: int
    buffers: int
    formula: str = Field(description="the params arithmetic with the numbers, e.g. '64*3*3*3 + 64 = 1,792'")
    buffers_formula: str | None = None
    name: str | None = None
    op_type: str | None = None
    note: str | None = None


ParamRows = Annotated[list[ParamRow], LIGHT_ROWS]


class ParameterReport(BaseModel):
    """Result of parameter_count: params and buffers per layer with the formula behind each number."""

    total_params: int
    total_buffers: int
    layers: ParamRows = Field(description="one row per top-level layer or graph node. " + _fields(ParamRow))
    block_layers: ParamRows = Field(default_factory=list, description="layers inside residual/concat blocks, by path")
    input_shape: list[int] | None = None
    warnings: list[str] = Field(default_factory=list)
    completeness: Completeness | None = Field(None, description=COMPLETENESS_HELP)


# Results are built from values the walk computed with the right types (ints from skills.arithmetic, exact
# numbers from rf.num), so the models are constructed without a validation pass (pydantic's model_construct,
# minus its per-field loop); the MCP server validates what it sends against these models once.
_new = object.__new__
_setattr = object.__setattr__


def construct(model: type[BaseModel], fields: set[str], values: dict) -> Any:
    """model.model_construct(**values) for `values` holding every field in declaration order."""
    m = _new(model)
    _setattr(m, "__dict__", values)
    _setattr(m, "__pydantic_fields_set__", fields)  # shared: every field is set, so pydantic's add() never changes it
    _setattr(m, "__pydantic_extra__", None)
    _setattr(m, "__pydantic_private__", None)
    return m


SHAPE_ROW_FIELDS = set(ShapeRow.model_fields)
RF_ROW_FIELDS = set(RFRow.model_fields)
PARAM_ROW_FIELDS = set(ParamRow.model_fields)
SHAPE_FIELDS = set(ShapeReport.model_fields)
MEMORY_FIELDS = set(MemoryReport.model_fields)
RF_FIELDS = set(ReceptiveFieldReport.model_fields)
PARAM_FIELDS = set(ParameterReport.model_fields)


def _note(r: Rec) -> str | None:
    """Why a record is not analysed (an opaque node's reason), else None."""
    return r.layer.reason if r.type == "opaque" and r.layer is not None else None


def _dims(t) -> list:
    """A shape's dims, or [] while one is unknown (after a node whose output shape is not known)."""
    dims = t.dims()
    return dims if None not in dims else []


def shape_rows(records: list[Rec], unknown: bool = True) -> list[ShapeRow]:
    """ShapeRows of records; `unknown`: some sizes may be unknown (after an opaque node), shown as [] then."""
    rows = []
    append = rows.append
    last, size, stride, pad = (), None, None, None
    fields = SHAPE_ROW_FIELDS
    for r in records:
        if r.rf is not last:  # layers that keep the receptive field (activations, norms) share their input's maps
            last = r.rf
            size, stride, pad = rf_fields(last)
        y = r.y
        xd, yd = r.x.dims(), y.dims()  # _dims(), inlined
        if unknown:
            if None in xd:
                xd = []
            if None in yd:
                yd = []
        row = _new(ShapeRow)  # construct(), inlined: rows are the walk's other hot loop
        _setattr(row, "__dict__", {
            "index": r.index, "path": r.path, "type": r.type, "input_shape": xd,
            "output_shape": yd, "params": r.params, "buffers": r.buffers, "macs": r.macs, "receptive_field": size,
            "effective_stride": stride, "effective_padding": pad, "activation_bytes": y.elements() * BYTES_PER_ELEMENT,
            "name": r.name, "op_type": r.op_type, "note": _note(r) if r.type == "opaque" else None,
        })
        _setattr(row, "__pydantic_fields_set__", fields)
        _setattr(row, "__pydantic_extra__", None)
        _setattr(row, "__pydantic_private__", None)
        append(row)
    return rows


def rf_rows(records: list[Rec]) -> list[RFRow]:
    rows = []
    append = rows.append
    last, size, stride, pad = (), None, None, None
    for r in records:
        if r.rf is not last:
            last = r.rf
            size, stride, pad = rf_fields(last)
        append(construct(RFRow, RF_ROW_FIELDS, {
            "index": r.index, "path": r.path, "type": r.type, "output_shape": _dims(r.y),
            "receptive_field": size, "effective_stride": stride, "effective_padding": pad, "name": r.name,
            "op_type": r.op_type, "note": _note(r),
        }))
    return rows


def param_rows(records: list[Rec]) -> list[ParamRow]:
    return [
        construct(ParamRow, PARAM_ROW_FIELDS, {
            "index": r.index, "path": r.path, "type": r.type, "params": r.params, "buffers": r.buffers,
            "formula": text(r.formula), "buffers_formula": text(r.buffers_formula), "name": r.name,
            "op_type": r.op_type, "note": _note(r),
        })
        for r in records
    ]


ABSENT_WHEN_NONE = ("name", "op_type", "note")  # row keys report_json leaves out when None (_row, unrolled)


def _row(row: BaseModel) -> dict:
    d = dict(row.__dict__)
    if d.get("name", 0) is None:  # only graph rows carry a name
        del d["name"]
    if d.get("op_type", 0) is None:  # and only a model file's rows an op_type
        del d["op_type"]
    if d.get("note", 0) is None:  # or a note
        del d["note"]
    return d


def report_json(report: ShapeReport | ReceptiveFieldReport | ParameterReport) -> dict:
    """report.model_dump(mode="json") without the serializer's pass over every value (a walk's reports hold only JSON
    values and regions), rows without a graph name leaving `name` out. The value lists are shared with the report."""
    out = dict(report.__dict__)
    out["layers"] = [_row(r) for r in out["layers"]]
    out["block_layers"] = [_row(r) for r in out["block_layers"]]
    memory = out.get("memory")
    if memory is not None:
        out["memory"] = dict(memory.__dict__)
    for key in ("input_region", "input_region_clipped"):
        reg = out.get(key)
        if reg is not None:
            out[key] = dict(reg.__dict__)
    if out.get("completeness") is not None:
        out["completeness"] = out["completeness"].model_dump(mode="json", exclude_none=True)
    else:  # only a model file's results say how complete they are
        out.pop("completeness", None)
    return out
