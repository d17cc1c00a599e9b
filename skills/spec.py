"""The network spec: pydantic models (a discriminated union on `type`), and the graph form's nodes.

A spec is a list of layers, each a dict with `type` plus PyTorch's constructor arguments and defaults
(see the contract's table); PyTorch's class spelling (`Conv2d`, `BatchNorm2d`) is accepted too. One model class
serves each family of layers across dimensionalities (conv1d, conv2d and conv3d are `Conv`), its per-axis values an
int or a list with one entry per spatial axis. `residual` and `concat` hold nested layer lists. A `graph` is a list of
named nodes, each a layer with `inputs`, plus the merge nodes `add`, `mul` and `concat` (`dim`).
The text forms (print(model), the VGG paper's notation) are in skills.textspec and parse into the same dicts.

Errors are SpecError messages that name the layer by index (and path inside blocks, e.g. `layer 4.body.1`) or the
graph node by name, the field, the rule and the value.
"""

from __future__ import annotations

import difflib
import heapq
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .arithmetic import MAX_EXTENT
from .errors import LimitError, SpecError

PosInt = Annotated[int, Field(ge=1, le=MAX_EXTENT)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_EXTENT)]
SignedInt = Annotated[int, Field(ge=-MAX_EXTENT, le=MAX_EXTENT)]
PosAxes = PosInt | Annotated[list[PosInt], Field(min_length=1, max_length=3)]
NonNegAxes = NonNegInt | Annotated[list[NonNegInt], Field(min_length=1, max_length=3)]
ConvPadding = NonNegInt | Annotated[list[NonNegInt], Field(min_length=1, max_length=3)] | Literal["same", "valid"]
OutputSize = PosInt | Annotated[list[PosInt | None], Field(min_length=1, max_length=3)]
Scale = Annotated[float, Field(gt=0, le=MAX_EXTENT, allow_inf_nan=False)]
Dim = Annotated[int, Field(ge=-8, le=8)]
# ONNX's `pads`: [begin per spatial axis..., end per spatial axis...], e.g. [top, left, bottom, right] in 2-D
Pads = Annotated[list[NonNegInt], Field(min_length=2, max_length=6)]
PoolConvention = Literal["pytorch", "onnx"]
# kept for callers of the 2-D names
PosPair = PosAxes
NonNegPair = NonNegAxes

_ND = {"1d": 1, "2d": 2, "3d": 3}
AXIS_HELP = {1: "[l]", 2: "[h, w]", 3: "[d, h, w]"}


def nd_of(ltype: str) -> int | None:
    """The spatial dimensionality a layer type is written for (conv3d: 3), or None (any)."""
    if ltype in ("pixelshuffle", "pixelunshuffle"):
        return 2
    return _ND.get(ltype[-2:])


def field_help(field: str, ltype: str | None) -> str | None:
    """What a layer field accepts, in the words of the error messages."""
    return _field_help(field, ltype)


class _Layer(BaseModel):
    # strict: a number must be a number ("2" is refused, as every tool's arguments refuse it); lists stay lists
    model_config = ConfigDict(extra="forbid", strict=True)


class _PerAxis(_Layer):
    """A layer with per-axis values: a list has one entry per spatial axis of its type (or one for all). The walk's
    rules check the length (skills.layers.axes): a validator here would run on the walk's hot path for every layer."""


class Conv(_PerAxis):
    """nn.Conv1d/2d/3d: weight [out_channels, in_channels/groups, *kernel_size]."""

    type: Literal["conv1d", "conv2d", "conv3d"] = "conv2d"
    in_channels: PosInt | None = None
    out_channels: PosInt
    kernel_size: PosAxes
    stride: PosAxes = 1
    padding: ConvPadding = 0
    dilation: PosAxes = 1
    groups: PosInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    pads: Pads | None = None  # per-side padding as ONNX writes it (instead of padding), may be asymmetric


class ConvTranspose(_PerAxis):
    """nn.ConvTranspose1d/2d/3d: weight [in_channels, out_channels/groups, *kernel_size]."""

    type: Literal["convtranspose1d", "convtranspose2d", "convtranspose3d"] = "convtranspose2d"
    in_channels: PosInt | None = None
    out_channels: PosInt
    kernel_size: PosAxes
    stride: PosAxes = 1
    padding: NonNegAxes = 0
    output_padding: NonNegAxes = 0
    dilation: PosAxes = 1
    groups: PosInt = 1
    bias: bool = True
    padding_mode: Literal["zeros"] = "zeros"
    pads: Pads | None = None  # per-side padding as ONNX writes it (instead of padding), may be asymmetric


class MaxPool(_PerAxis):
    """nn.MaxPool1d/2d/3d; stride defaults to kernel_size."""

    type: Literal["maxpool1d", "maxpool2d", "maxpool3d"] = "maxpool2d"
    kernel_size: PosAxes
    stride: PosAxes | None = None
    padding: NonNegAxes = 0
    dilation: PosAxes = 1
    ceil_mode: bool = False
    return_indices: Literal[False] = False
    pads: Pads | None = None  # per-side padding as ONNX writes it (instead of padding), may be asymmetric
    convention: PoolConvention = "pytorch"  # "onnx": ONNX's size rule (no half-kernel limit, ceil keeps every window)


class AvgPool(_PerAxis):
    """nn.AvgPool1d/2d/3d; stride defaults to kernel_size (divisor_override: 2-D and 3-D only, as in PyTorch)."""

    type: Literal["avgpool1d", "avgpool2d", "avgpool3d"] = "avgpool2d"
    kernel_size: PosAxes
    stride: PosAxes | None = None
    padding: NonNegAxes = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: PosInt | None = None
    pads: Pads | None = None  # per-side padding as ONNX writes it (instead of padding), may be asymmetric
    convention: PoolConvention = "pytorch"  # "onnx": ONNX's size rule (no half-kernel limit, ceil keeps every window)


class AdaptiveAvgPool(_PerAxis):
    """nn.AdaptiveAvgPool1d/2d/3d; a None axis keeps the input size."""

    type: Literal["adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d"] = "adaptiveavgpool2d"
    output_size: OutputSize


class AdaptiveMaxPool(_PerAxis):
    """nn.AdaptiveMaxPool1d/2d/3d; a None axis keeps the input size."""

    type: Literal["adaptivemaxpool1d", "adaptivemaxpool2d", "adaptivemaxpool3d"] = "adaptivemaxpool2d"
    output_size: OutputSize
    return_indices: Literal[False] = False


PAD_TYPES = tuple(f"{kind}pad{n}d" for kind in ("zero", "constant", "reflection", "replication", "circular") for n in (1, 2, 3))


class Pad(_Layer):
    """nn.ZeroPad*, ConstantPad*, ReflectionPad*, ReplicationPad*, CircularPad* (1d/2d/3d): padding int or
    [left, right], [left, right, top, bottom], [left, right, top, bottom, front, back] (negative crops, as in PyTorch)."""

    type: Literal[PAD_TYPES] = "zeropad2d"  # type: ignore[valid-type]
    padding: SignedInt | Annotated[list[SignedInt], Field(min_length=2, max_length=6)]
    value: float = 0.0



class BatchNorm(_Layer):
    """nn.BatchNorm1d/2d/3d: params weight (+ bias) when affine; buffers running_mean, running_var, num_batches_tracked."""

    type: Literal["batchnorm1d", "batchnorm2d", "batchnorm3d"] = "batchnorm2d"
    num_features: PosInt | None = None
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    bias: bool = True


class InstanceNorm(_Layer):
    """nn.InstanceNorm1d/2d/3d: params only when affine, buffers only when track_running_stats (both off by default)."""

    type: Literal["instancenorm1d", "instancenorm2d", "instancenorm3d"] = "instancenorm2d"
    num_features: PosInt | None = None
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = False
    track_running_stats: bool = False
    bias: bool = True


class GroupNorm(_Layer):
    """nn.GroupNorm(num_groups, num_channels): weight and bias of num_channels when affine; no buffers."""

    type: Literal["groupnorm"] = "groupnorm"
    num_groups: PosInt
    num_channels: PosInt | None = None
    eps: float = 1e-5
    affine: bool = True
    bias: bool = True


class LayerNorm(_Layer):
    """nn.LayerNorm(normalized_shape): normalises over the trailing dims; weight and bias of that shape."""

    type: Literal["layernorm"] = "layernorm"
    normalized_shape: PosInt | Annotated[list[PosInt], Field(min_length=1, max_length=5)]
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True


UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


class Upsample(_Layer):
    """nn.Upsample / F.interpolate: `size` or `scale_factor`; output floor(input * scale_factor) per axis."""

    type: Literal["upsample"] = "upsample"
    size: PosInt | Annotated[list[PosInt], Field(min_length=1, max_length=3)] | None = None
    scale_factor: Scale | Annotated[list[Scale], Field(min_length=1, max_length=3)] | None = None
    mode: Literal[UPSAMPLE_MODES] = "nearest"  # type: ignore[valid-type]
    align_corners: bool | None = None
    recompute_scale_factor: bool | None = None


class PixelShuffle(_Layer):
    """nn.PixelShuffle(r): [C*r^2, H, W] -> [C, H*r, W*r]."""

    type: Literal["pixelshuffle"] = "pixelshuffle"
    upscale_factor: PosInt


class PixelUnshuffle(_Layer):
    """nn.PixelUnshuffle(r): [C, H*r, W*r] -> [C*r^2, H, W]."""

    type: Literal["pixelunshuffle"] = "pixelunshuffle"
    downscale_factor: PosInt


class ChannelShuffle(_Layer):
    """nn.ChannelShuffle(groups): channels regrouped, shape unchanged."""

    type: Literal["channelshuffle"] = "channelshuffle"
    groups: PosInt


class Softmax(_Layer):
    """nn.Softmax / LogSoftmax / Softmin over `dim` (counted with the batch axis, as in PyTorch)."""

    type: Literal["softmax", "logsoftmax", "softmin"] = "softmax"
    dim: Dim | None = None


class PReLU(_Layer):
    """nn.PReLU: num_parameters slopes (1, or the channel count)."""

    type: Literal["prelu"] = "prelu"
    num_parameters: PosInt = 1
    init: float = 0.25


class Unflatten(_Layer):
    """nn.Unflatten(dim, unflattened_size) of a flattened input: [N, F] -> [N, C, *spatial]."""

    type: Literal["unflatten"] = "unflatten"
    dim: Dim = 1
    unflattened_size: Annotated[list[Annotated[int, Field(ge=-1, le=MAX_EXTENT)]], Field(min_length=1, max_length=4)]


class Inplace(_Layer):
    """Activations whose only argument is inplace (shape unchanged, no params)."""

    type: Literal["relu", "relu6", "silu", "hardswish", "hardsigmoid", "mish", "selu"] = "relu"
    inplace: bool = False


class Plain(_Layer):
    """Shape-preserving layers without arguments (`pointwise`: an elementwise op with no PyTorch module of its own,
    e.g. ONNX's Erf or Sqrt)."""

    type: Literal["sigmoid", "tanh", "identity", "softsign", "tanhshrink", "pointwise"] = "identity"


class LeakyReLU(_Layer):
    type: Literal["leakyrelu"] = "leakyrelu"
    negative_slope: float = 0.01
    inplace: bool = False


class GELU(_Layer):
    type: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"


class ELU(_Layer):
    type: Literal["elu", "celu"] = "elu"
    alpha: float = 1.0
    inplace: bool = False


class Softplus(_Layer):
    type: Literal["softplus"] = "softplus"
    beta: float = 1.0
    threshold: float = 20.0


class Hardtanh(_Layer):
    type: Literal["hardtanh"] = "hardtanh"
    min_val: float = -1.0
    max_val: float = 1.0
    inplace: bool = False


class Dropout(_Layer):
    """nn.Dropout, Dropout1d/2d/3d, AlphaDropout: the identity in eval mode."""

    type: Literal["dropout", "dropout1d", "dropout2d", "dropout3d", "alphadropout"] = "dropout"
    p: Annotated[float, Field(ge=0, le=1)] = 0.5
    inplace: bool = False


class Flatten(_Layer):
    """nn.Flatten(): all but the batch axis; other start/end dims are not supported by the walk."""

    type: Literal["flatten"] = "flatten"
    start_dim: Literal[1] = 1
    end_dim: Literal[-1] = -1


class Linear(_Layer):
    """nn.Linear on a flattened input [F] or [N, F]: weight [out_features, in_features]."""

    type: Literal["linear"] = "linear"
    in_features: PosInt | None = None
    out_features: PosInt
    bias: bool = True


class Residual(_Layer):
    """output = body(x) + shortcut(x); an absent or empty shortcut is the identity."""

    type: Literal["residual"] = "residual"
    body: list[Layer]
    shortcut: list[Layer] = []


class Concat(_Layer):
    """output = torch.cat([branch(x) for branch in branches], dim=channels)."""

    type: Literal["concat"] = "concat"
    branches: Annotated[list[list[Layer]], Field(min_length=1)]


# 2-D names of the families, kept for callers of the earlier per-class API
Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d = Conv, ConvTranspose, MaxPool, AvgPool
AdaptiveAvgPool2d, AdaptiveMaxPool2d, ZeroPad2d, BatchNorm2d = AdaptiveAvgPool, AdaptiveMaxPool, Pad, BatchNorm

_CLASSES = (
    Conv, ConvTranspose, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool, Pad, BatchNorm, InstanceNorm, GroupNorm,
    LayerNorm, Upsample, PixelShuffle, PixelUnshuffle, ChannelShuffle, Softmax, PReLU, Unflatten, Inplace, Plain,
    LeakyReLU, GELU, ELU, Softplus, Hardtanh, Dropout, Flatten, Linear, Residual, Concat,
)
Layer = Annotated[
    Conv | ConvTranspose | MaxPool | AvgPool | AdaptiveAvgPool | AdaptiveMaxPool | Pad | BatchNorm | InstanceNorm
    | GroupNorm | LayerNorm | Upsample | PixelShuffle | PixelUnshuffle | ChannelShuffle | Softmax | PReLU | Unflatten
    | Inplace | Plain | LeakyReLU | GELU | ELU | Softplus | Hardtanh | Dropout | Flatten | Linear | Residual | Concat,
    Field(discriminator="type"),
]
Residual.model_rebuild()
Concat.model_rebuild()

MODELS: dict[str, type[_Layer]] = {t: m for m in _CLASSES for t in m.model_fields["type"].annotation.__args__}
LAYER_TYPES = tuple(MODELS)
ND_OF: dict[str, int | None] = {t: nd_of(t) for t in LAYER_TYPES}
"""nd_of for every layer type, looked up once per layer on the walk's hot path."""
_LAYERS = TypeAdapter(list[Layer])

# PyTorch modules that are another layer with fixed arguments
_ALIASES = {
    "upsamplingnearest2d": {"type": "upsample", "mode": "nearest"},
    "upsamplingbilinear2d": {"type": "upsample", "mode": "bilinear", "align_corners": True},
}
MERGE_TYPES = ("add", "mul", "concat")


# ---------------------------------------------------------------- graph nodes


class Add(_Layer):
    """Graph merge: the sum of its inputs (shapes equal or broadcastable, as torch)."""

    type: Literal["add"] = "add"


class Mul(_Layer):
    """Graph merge: the elementwise product of its inputs (shapes equal or broadcastable, as torch)."""

    type: Literal["mul"] = "mul"


class Cat(_Layer):
    """Graph merge: torch.cat of its inputs along dim (counted with the batch axis; 1 = channels)."""

    type: Literal["concat"] = "concat"
    dim: Dim = 1


class Opaque(_Layer):
    """Graph node whose op the walk does not analyse (an ONNX op without a rule here): it reads any number of inputs,
    its output shape is given (dims with the batch axis when the network has one; null = unknown) and its MACs when
    known (null = unknown); the receptive field is unknown past it."""

    type: Literal["opaque"] = "opaque"
    output_shape: Annotated[list[PosInt], Field(max_length=8)] | None = None
    macs: Annotated[int, Field(ge=0)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None  # why it is not analysed: its rows' `note`


_MERGES = TypeAdapter(Annotated[Add | Mul | Cat | Opaque, Field(discriminator="type")])
MAX_NAME_CHARS = 200


class Weight(BaseModel):
    """A tensor a model file stores for a graph node: its size replaces the rule's params (or buffers)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=MAX_NAME_CHARS)]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=MAX_EXTENT)]], Field(max_length=8)]
    buffer: bool = False
    shared_with: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None


_NODE_EXTRAS = TypeAdapter(tuple[Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None, Annotated[list[Weight], Field(max_length=64)] | None])


class Node:
    """One graph node: its name, the names of its inputs, and its layer (a spec model, or Add/Mul/Cat/Opaque); a node
    from a model file also carries its `op_type` and the `weights` the file stores for it."""

    __slots__ = ("name", "inputs", "layer", "index", "op_type", "weights")

    def __init__(self, name: str, inputs: tuple[str, ...], layer: Any, index: int, op_type: str | None = None,
                 weights: list[Weight] | None = None):
        self.name, self.inputs, self.layer, self.index = name, inputs, layer, index
        self.op_type, self.weights = op_type, weights


def validate_graph(items: Any, output: Any = None) -> tuple[list[Node], str]:
    """Validate a graph spec into nodes in a topological order, and the output node's name.

    Each item is {"name": ..., "inputs": [...], "type": ..., ...layer fields}; `inputs` left out means the previous
    node (or "input" for the first). Optional per node: `op_type` (a label its row carries, e.g. the ONNX op) and
    `weights` ([{"name", "shape", "buffer", "shared_with"}], the tensors a model file stores for it: their sizes
    replace the rule's params and buffers). Errors name the node: a name used twice, an input that is no node, a
    cycle, an output that is no node, a layer that is invalid."""
    if not isinstance(items, (list, tuple)):
        raise SpecError(f"graph must be a list of node objects, each with a 'name' and a 'type', got {type(items).__name__}")
    if not items:
        raise SpecError("graph has no nodes")
    names: dict[str, int] = {}
    inputs: list[tuple[str, ...]] = []
    layers: list[Any] = []
    merges: dict[int, Any] = {}
    extras: dict[int, tuple] = {}
    prev = "input"
    for i, item in enumerate(items):
        if item.__class__ is not dict:
            raise SpecError(f"graph node {i}: a node must be an object with 'name', 'inputs' and 'type', got {short(item)}")
        name = item.get("name")
        if name.__class__ is not str or not name or len(name) > MAX_NAME_CHARS:
            raise SpecError(f"graph node {i}: 'name' must be a non-empty string of at most {MAX_NAME_CHARS} characters, got {short(name)}")
        if name == "input":
            raise SpecError(f"graph node {i}: the name 'input' is reserved for the network input; choose another name")
        if name in names:
            raise SpecError(f"node {name!r}: the name is used twice (graph nodes {names[name]} and {i}); names must be unique")
        names[name] = i
        raw = item.get("inputs", _MISSING)
        if raw is _MISSING:
            ins: tuple[str, ...] = (prev,)
        elif raw.__class__ is list and raw and all(n.__class__ is str for n in raw):
            ins = tuple(raw)
        elif isinstance(raw, str):
            ins = (raw,)
        else:
            raise SpecError(f"node {name!r}: 'inputs' must be a non-empty list of node names (or \"input\"), got {short(raw)}")
        inputs.append(ins)
        prev = name
        if "op_type" in item or "weights" in item:
            try:
                extras[i] = _NODE_EXTRAS.validate_python((item.get("op_type"), item.get("weights")))
            except ValidationError as exc:
                error = exc.errors()[0]
                field = "op_type" if error["loc"][0] == 0 else "weights" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"][1:])
                raise SpecError(f"node {name!r}: {field}: {error['msg']}, got {short(error.get('input'))}") from None
            item = {k: v for k, v in item.items() if k not in ("op_type", "weights")}
        tag = item.get("type")
        low = tag.lower() if tag.__class__ is str else None
        if (low in MERGE_TYPES or low == "opaque") and not (low == "concat" and "branches" in item):
            merges[i] = _merge(item, low, name)
            need = 1 if low in ("concat", "opaque") else 2
            if len(ins) < need:
                raise SpecError(f"node {name!r} ({low}): needs at least {need} inputs, got {len(ins)} ({', '.join(ins)})")
            layers.append(None)
        else:
            if len(ins) != 1:
                raise SpecError(
                    f"node {name!r} ({short(tag)}): a layer takes one input, got {len(ins)} ({', '.join(map(short, ins))}); "
                    "join several inputs with an 'add', 'mul' or 'concat' node first"
                )
            layer = item.copy()
            del layer["name"]
            layer.pop("inputs", None)
            layers.append(layer)
    ordered = True
    for i, ins in enumerate(inputs):
        for n in ins:
            if n == "input":
                continue
            j = names.get(n)
            if j is None:
                near = difflib.get_close_matches(n[:MAX_NAME_CHARS], list(names), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise SpecError(f"node {items[i]['name']!r}: input {short(n)} is not a node of the graph{hint} (or \"input\" for the network input)")
            if j >= i:
                ordered = False
    plain = [k for k, layer in enumerate(layers) if layer is not None]
    labels = {j: f"node {items[k]['name']!r}" for j, k in enumerate(plain)}
    models = validate_layers([layers[k] for k in plain], labels=labels.__getitem__) if plain else []
    for k, model in zip(plain, models, strict=True):
        merges[k] = model
    order = list(range(len(items))) if ordered else _topological(items, inputs, names)
    nodes = [Node(items[i]["name"], inputs[i], merges[i], i, *extras.get(i, ())) for i in order]
    if output is None:
        out = items[-1]["name"]
    elif not isinstance(output, str) or output not in names:
        near = difflib.get_close_matches(output[:MAX_NAME_CHARS], list(names), n=1) if isinstance(output, str) else []
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise SpecError(f"output {short(output)} is not a node of the graph{hint}")
    else:
        out = output
    return nodes, out


_ADD, _MUL = Add(), Mul()


def _merge(item: dict, low: str, name: str) -> Any:
    """The merge model of a graph node (the common forms built directly, anything else validated)."""
    extra = len(item) - 2 - ("inputs" in item)  # keys besides name, inputs and type
    if extra == 0 and low != "concat":
        return _ADD if low == "add" else _MUL
    dim = item.get("dim", 1)
    if low == "concat" and extra <= 1 and dim.__class__ is int and -8 <= dim <= 8 and (extra == 0 or "dim" in item):
        return Cat.model_construct(type="concat", dim=dim)
    layer = {k: v for k, v in item.items() if k not in ("name", "inputs")}
    layer["type"] = low
    try:
        return _MERGES.validate_python(layer)
    except ValidationError as exc:
        raise SpecError(_describe(exc, [layer], lambda _: f"node {name!r}")) from None


def _topological(items: list, inputs: list[tuple[str, ...]], names: dict[str, int]) -> list[int]:
    """Node indices in an order where every node comes after its inputs, as close to the given order as can be;
    a cycle is an error that names its nodes."""
    pending = [sum(1 for n in ins if n != "input") for ins in inputs]
    users: dict[int, list[int]] = {}
    for i, ins in enumerate(inputs):
        for n in ins:
            if n != "input":
                users.setdefault(names[n], []).append(i)
    ready = [i for i, p in enumerate(pending) if p == 0]  # a heap: the earliest ready node first, so the order stays close to the given one
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users.get(i, ()):
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(items):
        stuck = {i for i, p in enumerate(pending) if p}
        start = min(stuck)
        cycle, seen, i = [], set(), start
        while i not in seen:  # follow inputs that are stuck too until one repeats: that loop is a cycle
            seen.add(i)
            cycle.append(i)
            i = next(names[n] for n in inputs[i] if n != "input" and names[n] in stuck)
        loop = cycle[cycle.index(i):] + [i]
        path = " -> ".join(repr(items[k]["name"]) for k in reversed(loop))
        raise SpecError(f"node {items[i]['name']!r}: the graph has a cycle ({path}); a node's inputs must not depend on it")
    return order


# ---------------------------------------------------------------- validation of JSON layers


def count_layers(items: Any, *, max_layers: int | None = None, max_depth: int | None = None) -> int:
    """Layers in a raw spec (or graph), nested blocks included; raises LimitError past max_layers or max_depth (no recursion)."""
    total = 0
    stack: list[tuple[Any, int]] = [(items, 0)]
    while stack:
        seq, depth = stack.pop()
        if max_depth is not None and depth > max_depth:
            raise _limit("max_depth", f"the spec nests residual/concat blocks {depth} deep, more than max_depth={max_depth}")
        if not isinstance(seq, (list, tuple)):
            continue
        total += len(seq)
        if max_layers is not None and total > max_layers:
            raise _limit("max_layers", f"the spec has more than max_layers={max_layers} layers (nested blocks included)")
        for item in seq:
            if isinstance(item, dict):
                t = item.get("type")
                if t == "residual":
                    stack.append((item.get("body"), depth + 1))
                    stack.append((item.get("shortcut"), depth + 1))
                elif t == "concat" and isinstance(item.get("branches"), (list, tuple)):
                    for branch in item["branches"]:
                        stack.append((branch, depth + 1))
            elif isinstance(item, (Residual, Concat)):
                for sub in ([item.body, item.shortcut] if isinstance(item, Residual) else item.branches):
                    stack.append((sub, depth + 1))
    return total


def _limit(name: str, message: str) -> LimitError:
    err = LimitError(message)
    err.limit = name  # type: ignore[attr-defined]  # the adapter appends how to raise it
    return err


def _layer_label(i: int) -> str:
    return f"layer {i}"


def validate_layers(items: Any, *, labels=_layer_label) -> list[Any]:
    """Validate a JSON layer list into spec models; a bad layer is a SpecError naming its index (`labels(i)`), field and value."""
    if not isinstance(items, (list, tuple)):
        raise SpecError(f"layers must be a list of layer objects, each with a 'type', got {type(items).__name__}")
    items = _normalise(items, labels)
    try:
        return _LAYERS.validate_python(items)
    except ValidationError as exc:
        raise SpecError(_describe(exc, items, labels)) from None


def _normalise(items: list, labels) -> list:
    """The layer list with PyTorch's class spelling ('Conv2d') and aliases turned into the spec's types, copying only
    what changes. Refuses a 'type' that is not text or not known before pydantic sees it: pydantic reprs the tag for
    its error, and a repr that fails (an int over 4,300 digits) is printed to stderr as an ignored exception."""
    out = None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        tag = item.get("type", "")
        new = item
        if tag.__class__ is not str:
            raise SpecError(f"{_path(labels, '', i)}: type must be a string, one of: {', '.join(LAYER_TYPES)}; got {short(tag)}")
        if tag not in MODELS and tag:
            low = tag.lower()
            if low in MODELS:
                new = {**item, "type": low}
            elif low in _ALIASES:
                new = {**item, **_ALIASES[low]}
            else:
                raise SpecError(_unknown(tag, _path(labels, "", i)))
        kind = new["type"] if tag else ""
        if kind == "residual":
            for key in ("body", "shortcut"):
                seq = new.get(key)
                if isinstance(seq, (list, tuple)):
                    sub = _normalise(seq, _nested(labels, i, f"{key}."))
                    if sub is not seq:
                        new = {**new, key: sub}
        elif kind == "concat" and isinstance(new.get("branches"), (list, tuple)):
            branches = list(new["branches"])
            changed = False
            for j, seq in enumerate(branches):
                if isinstance(seq, (list, tuple)):
                    sub = _normalise(seq, _nested(labels, i, f"branches.{j}."))
                    if sub is not seq:
                        branches[j], changed = sub, True
            if changed:
                new = {**new, "branches": branches}
        if new is not item:
            if out is None:
                out = list(items)
            out[i] = new
    return items if out is None else out


def _path(labels, prefix: str, i: int) -> str:
    return labels(i) if not prefix else f"{prefix}{i}"


def _nested(labels, i: int, key: str):
    head = labels(i)
    return lambda j: f"{head}.{key}{j}"


def _unknown(tag: str, where: str) -> str:
    low = tag[:40].lower()
    if low in ("add", "mul"):
        return f"{where}: {tag!r} is a merge node of the graph form: give the network as `graph` (named nodes with inputs)"
    near = difflib.get_close_matches(low, LAYER_TYPES, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"{where}: unknown type {short(tag)}{hint} Known types: {', '.join(LAYER_TYPES)}"


def _describe(exc: ValidationError, items: Any, labels=_layer_label) -> str:
    """The first broken layer in the contract's words (`layer 4.body.1 (conv2d): kernel_size must be ..., got 0`),
    up to three of its fields, and how many other layers are broken too."""
    messages: list[str] = []
    seen: set[tuple[str, str]] = set()
    first = None
    others: set[str] = set()
    for error in exc.errors():
        path, ltype, field, raw = _locate(error["loc"], items, labels)
        if first is None:
            first = path
        if path != first:
            others.add(path)
            continue
        if (path, field) not in seen and len(messages) < 3:
            seen.add((path, field))
            messages.append(_message(error, path, ltype, field, raw))
    text = "; ".join(messages)
    if others:
        text += f" (and {len(others):,} more layer{'s' if len(others) > 1 else ''} with errors)"
    return text


def _locate(loc: tuple, items: Any, labels=_layer_label) -> tuple[str, str | None, str, Any]:
    """(layer label, layer type, field, the field's raw value) for a pydantic error location."""
    parts: list[str] = []
    node: Any = items
    ltype: str | None = None
    field = ""
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, int) and isinstance(node, (list, tuple)) and part < len(node):
            parts.append(labels(part) if not parts else str(part))
            node = node[part]
            ltype = node.get("type") if isinstance(node, dict) else None
            ltype = ltype if isinstance(ltype, str) and ltype in MODELS else None  # an unknown tag is never echoed raw
            field = ""
            i += 1
            if i < len(loc) and isinstance(loc[i], str) and loc[i] == ltype:
                i += 1  # the discriminator tag pydantic inserts
            continue
        if isinstance(part, str) and isinstance(node, dict):
            if part in ("body", "shortcut") and i + 1 < len(loc) and isinstance(loc[i + 1], int):
                parts.append(part)
                node = node.get(part)
                i += 1
                continue
            if part == "branches" and i + 2 < len(loc) and isinstance(loc[i + 1], int) and isinstance(loc[i + 2], int):
                parts.extend([part, str(loc[i + 1])])
                node = (node.get(part) or [])[loc[i + 1]]
                i += 2
                continue
            field = part
            return ".".join(parts), ltype, field, node.get(part, _MISSING)
        break
    return ".".join(parts), ltype, field, _MISSING


_MISSING = object()


def short(value: Any, limit: int = 80) -> str:
    """repr(value), cut to about `limit` characters so an error never echoes a huge input back."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > limit:
        return f"<{type(value).__name__} of {len(value):,} items>"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<int of ~{int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]
    try:
        text = repr(value)
    except ValueError:  # e.g. an int too long for str() inside a container
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _axes_help(ltype: str | None, minimum: int) -> str:
    nd = nd_of(ltype or "") or 2
    if nd == 1:
        return f"an int >= {minimum} (or a one-item list)"
    return f"an int >= {minimum} or {AXIS_HELP[nd]} of ints >= {minimum}"


def _field_help(field: str, ltype: str | None) -> str | None:
    """What a field accepts, for messages that replace pydantic's per-union-member errors."""
    if field in ("kernel_size", "stride", "dilation"):
        return _axes_help(ltype, 1)
    if field == "output_padding":
        return _axes_help(ltype, 0)
    if field == "padding":
        if ltype in ("conv1d", "conv2d", "conv3d"):
            nd = nd_of(ltype) or 2
            return "an int >= 0, " + ("" if nd == 1 else f"{AXIS_HELP[nd]} of ints >= 0, ") + "'same' or 'valid'"
        if ltype in PAD_TYPES:
            nd = nd_of(ltype) or 2
            sides = ["left", "right", "top", "bottom", "front", "back"][: 2 * nd]
            return f"an int or [{', '.join(sides)}] of ints from {-MAX_EXTENT:,} to {MAX_EXTENT:,} (negative crops)"
        return _axes_help(ltype, 0)
    if field == "pads":
        nd = nd_of(ltype or "") or 2
        return f"{2 * nd} ints >= 0, [begin per spatial axis..., end per spatial axis...] as ONNX writes them"
    if field == "output_size":
        nd = nd_of(ltype or "") or 2
        return f"an int >= 1 or {AXIS_HELP[nd]} (ints >= 1, or null to keep that axis)"
    if field in ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features", "num_groups",
                 "num_channels", "upscale_factor", "downscale_factor", "num_parameters"):
        return "an int >= 1"
    return None


def _message(error: dict, path: str, ltype: str | None, field: str, raw: Any) -> str:
    where = path + (f" ({ltype})" if ltype else "")
    kind = error["type"]
    if kind == "union_tag_not_found":
        return f"{where}: missing 'type'; one of: {', '.join(LAYER_TYPES)}"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return _unknown(tag, path) if isinstance(tag, str) else f"{path}: unknown type {short(tag)}"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return f"{where}: a layer must be an object with a 'type' and its arguments, got {short(error.get('input'))}"
    model = MODELS.get(ltype or "")
    if kind == "missing":
        return f"{where}: missing required field {field!r}"
    if kind == "extra_forbidden":
        allowed = [f for f in (model.model_fields if model else ()) if f != "type"]
        near = difflib.get_close_matches(field, allowed, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"{where}: unknown field {short(field)}{hint} ({ltype} takes: {', '.join(allowed)})"
    got = error.get("input") if raw is _MISSING else raw
    help_text = _field_help(field, ltype)
    if help_text:
        return f"{where}: {field} must be {help_text}, got {short(got)}"
    return f"{where}: {field}: {error['msg']}, got {short(got)}"


def parse_spec(*args: Any, **kwargs: Any) -> tuple[list[dict], list[int]]:
    """skills.textspec.parse_spec (print(model) text or VGG notation -> layer dicts and their source lines)."""
    from .textspec import parse_spec as parse

    return parse(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("parse_printed", "parse_vgg_notation", "TEXT_MAX_LAYERS"):
        from . import textspec

        return getattr(textspec, name)
    raise AttributeError(f"module 'skills.spec' has no attribute {name!r}")
