"""The network spec: pydantic models (a discriminated union on `type`) and the text forms that parse into them.

A spec is a list of layers, each a dict with `type` plus PyTorch's constructor arguments and defaults
(see the contract's table). Per-axis values are an int (square) or [h, w]. `residual` and `concat`
hold nested layer lists. Two text forms parse into the same dicts:

* the printed form of a PyTorch `nn.Sequential`, as `print(model)` shows it (nested Sequentials and
  ModuleLists flatten into the sequence, `(0-2): 3 x ReLU()` repeats);
* the VGG paper's compact notation (`conv3-64, conv3-64, maxpool, ..., FC-4096, FC-1000, soft-max`),
  documented in `parse_vgg_notation`.

Errors are SpecError messages that name the layer by index (and path inside blocks, e.g. `layer 4.body.1`),
the field, the rule and the value.
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .arithmetic import MAX_EXTENT
from .errors import LimitError, SpecError

PosInt = Annotated[int, Field(ge=1, le=MAX_EXTENT)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_EXTENT)]
PosPair = PosInt | Annotated[list[PosInt], Field(min_length=1, max_length=2)]
NonNegPair = NonNegInt | Annotated[list[NonNegInt], Field(min_length=1, max_length=2)]
ConvPadding = NonNegInt | Annotated[list[NonNegInt], Field(min_length=1, max_length=2)] | Literal["same", "valid"]
SignedInt = Annotated[int, Field(ge=-MAX_EXTENT, le=MAX_EXTENT)]
OutputSize = PosInt | Annotated[list[PosInt | None], Field(min_length=1, max_length=2)]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Conv2d(_Layer):
    """nn.Conv2d: weight [out_channels, in_channels/groups, kH, kW]."""

    type: Literal["conv2d"] = "conv2d"
    in_channels: PosInt | None = None
    out_channels: PosInt
    kernel_size: PosPair
    stride: PosPair = 1
    padding: ConvPadding = 0
    dilation: PosPair = 1
    groups: PosInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"


class ConvTranspose2d(_Layer):
    """nn.ConvTranspose2d: weight [in_channels, out_channels/groups, kH, kW]."""

    type: Literal["convtranspose2d"] = "convtranspose2d"
    in_channels: PosInt | None = None
    out_channels: PosInt
    kernel_size: PosPair
    stride: PosPair = 1
    padding: NonNegPair = 0
    output_padding: NonNegPair = 0
    dilation: PosPair = 1
    groups: PosInt = 1
    bias: bool = True
    padding_mode: Literal["zeros"] = "zeros"


class MaxPool2d(_Layer):
    """nn.MaxPool2d; stride defaults to kernel_size."""

    type: Literal["maxpool2d"] = "maxpool2d"
    kernel_size: PosPair
    stride: PosPair | None = None
    padding: NonNegPair = 0
    dilation: PosPair = 1
    ceil_mode: bool = False
    return_indices: Literal[False] = False


class AvgPool2d(_Layer):
    """nn.AvgPool2d; stride defaults to kernel_size."""

    type: Literal["avgpool2d"] = "avgpool2d"
    kernel_size: PosPair
    stride: PosPair | None = None
    padding: NonNegPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: PosInt | None = None


class AdaptiveAvgPool2d(_Layer):
    """nn.AdaptiveAvgPool2d; a None axis keeps the input size."""

    type: Literal["adaptiveavgpool2d"] = "adaptiveavgpool2d"
    output_size: OutputSize


class AdaptiveMaxPool2d(_Layer):
    """nn.AdaptiveMaxPool2d; a None axis keeps the input size."""

    type: Literal["adaptivemaxpool2d"] = "adaptivemaxpool2d"
    output_size: OutputSize
    return_indices: Literal[False] = False


class ZeroPad2d(_Layer):
    """nn.ZeroPad2d: padding int or [left, right, top, bottom] (negative crops, as in PyTorch)."""

    type: Literal["zeropad2d"] = "zeropad2d"
    padding: SignedInt | Annotated[list[SignedInt], Field(min_length=4, max_length=4)]


class BatchNorm2d(_Layer):
    """nn.BatchNorm2d: params weight (+ bias) when affine; buffers running_mean, running_var, num_batches_tracked."""

    type: Literal["batchnorm2d"] = "batchnorm2d"
    num_features: PosInt | None = None
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    bias: bool = True


class ReLU(_Layer):
    type: Literal["relu"] = "relu"
    inplace: bool = False


class ReLU6(_Layer):
    type: Literal["relu6"] = "relu6"
    inplace: bool = False


class LeakyReLU(_Layer):
    type: Literal["leakyrelu"] = "leakyrelu"
    negative_slope: float = 0.01
    inplace: bool = False


class GELU(_Layer):
    type: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"


class SiLU(_Layer):
    type: Literal["silu"] = "silu"
    inplace: bool = False


class Sigmoid(_Layer):
    type: Literal["sigmoid"] = "sigmoid"


class Tanh(_Layer):
    type: Literal["tanh"] = "tanh"


class Hardswish(_Layer):
    type: Literal["hardswish"] = "hardswish"
    inplace: bool = False


class Dropout(_Layer):
    type: Literal["dropout"] = "dropout"
    p: Annotated[float, Field(ge=0, le=1)] = 0.5
    inplace: bool = False


class Identity(_Layer):
    type: Literal["identity"] = "identity"


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


Layer = Annotated[
    Conv2d | ConvTranspose2d | MaxPool2d | AvgPool2d | AdaptiveAvgPool2d | AdaptiveMaxPool2d | ZeroPad2d | BatchNorm2d | ReLU | ReLU6 | LeakyReLU | GELU | SiLU | Sigmoid | Tanh | Hardswish | Dropout | Identity | Flatten | Linear | Residual | Concat,
    Field(discriminator="type"),
]
Residual.model_rebuild()
Concat.model_rebuild()

MODELS: dict[str, type[_Layer]] = {
    m.model_fields["type"].default: m
    for m in (
        Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, ZeroPad2d, BatchNorm2d,
        ReLU, ReLU6, LeakyReLU, GELU, SiLU, Sigmoid, Tanh, Hardswish, Dropout, Identity, Flatten, Linear,
        Residual, Concat,
    )
}
LAYER_TYPES = tuple(MODELS)
_LAYERS = TypeAdapter(list[Layer])

# What a field accepts, for messages that replace pydantic's per-union-member errors.
_FIELD_HELP = {
    "kernel_size": "an int >= 1 or [h, w] of ints >= 1",
    "stride": "an int >= 1 or [h, w] of ints >= 1",
    "dilation": "an int >= 1 or [h, w] of ints >= 1",
    "output_padding": "an int >= 0 or [h, w] of ints >= 0",
    "output_size": "an int >= 1 or [h, w] (ints >= 1, or null to keep that axis)",
    "in_channels": "an int >= 1", "out_channels": "an int >= 1", "groups": "an int >= 1",
    "num_features": "an int >= 1", "in_features": "an int >= 1", "out_features": "an int >= 1",
}
_PADDING_HELP = {
    "conv2d": "an int >= 0, [h, w] of ints >= 0, 'same' or 'valid'",
    "zeropad2d": f"an int or [left, right, top, bottom] of ints from {-MAX_EXTENT:,} to {MAX_EXTENT:,} (negative crops)",
}


# ---------------------------------------------------------------- validation of JSON layers


def count_layers(items: Any, *, max_layers: int | None = None, max_depth: int | None = None) -> int:
    """Layers in a raw spec, nested blocks included; raises LimitError past max_layers or max_depth (no recursion)."""
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


def validate_layers(items: Any) -> list[Any]:
    """Validate a JSON layer list into spec models; a bad layer is a SpecError naming its index, field and value."""
    if not isinstance(items, (list, tuple)):
        raise SpecError(f"layers must be a list of layer objects, each with a 'type', got {type(items).__name__}")
    _check_tags(items)
    try:
        return _LAYERS.validate_python(items)
    except ValidationError as exc:
        raise SpecError(_describe(exc, items)) from None


def _check_tags(items: list) -> None:
    """Refuse a 'type' that is not text before pydantic sees it: pydantic reprs the tag for its error, and a repr
    that fails (an int over 4,300 digits) is printed to stderr as an ignored exception."""
    stack: list[tuple[Any, str]] = [(items, "")]
    while stack:
        seq, prefix = stack.pop()
        if not isinstance(seq, (list, tuple)):
            continue
        for i, item in reversed(list(enumerate(seq))):
            if not isinstance(item, dict):
                continue
            path = f"{prefix}{i}"
            tag = item.get("type", "")
            if not isinstance(tag, str):
                raise SpecError(f"layer {path}: type must be a string, one of: {', '.join(LAYER_TYPES)}; got {short(tag)}")
            if tag == "residual":
                stack.extend([(item.get("shortcut"), f"{path}.shortcut."), (item.get("body"), f"{path}.body.")])
            elif tag == "concat" and isinstance(item.get("branches"), (list, tuple)):
                stack.extend((b, f"{path}.branches.{j}.") for j, b in reversed(list(enumerate(item["branches"]))))


def _describe(exc: ValidationError, items: Any) -> str:
    """The first broken layer in the contract's words (`layer 4.body.1 (conv2d): kernel_size must be ..., got 0`),
    up to three of its fields, and how many other layers are broken too."""
    messages: list[str] = []
    seen: set[tuple[str, str]] = set()
    first = None
    others: set[str] = set()
    for error in exc.errors():
        path, ltype, field, raw = _locate(error["loc"], items)
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


def _locate(loc: tuple, items: Any) -> tuple[str, str | None, str, Any]:
    """(layer path, layer type, field, the field's raw value) for a pydantic error location."""
    parts: list[str] = []
    node: Any = items
    ltype: str | None = None
    field = ""
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, int) and isinstance(node, (list, tuple)) and part < len(node):
            parts.append(str(part))
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


def _message(error: dict, path: str, ltype: str | None, field: str, raw: Any) -> str:
    where = f"layer {path}" + (f" ({ltype})" if ltype else "")
    kind = error["type"]
    if kind == "union_tag_not_found":
        return f"{where}: missing 'type'; one of: {', '.join(LAYER_TYPES)}"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        near = difflib.get_close_matches(tag[:40].lower(), LAYER_TYPES, n=1, cutoff=0.6) if isinstance(tag, str) else []
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"layer {path}: unknown type {short(tag)}{hint} Known types: {', '.join(LAYER_TYPES)}"
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
    help_text = _PADDING_HELP.get(ltype or "", "an int >= 0 or [h, w] of ints >= 0") if field == "padding" else _FIELD_HELP.get(field)
    if help_text:
        return f"{where}: {field} must be {help_text}, got {short(got)}"
    return f"{where}: {field}: {error['msg']}, got {short(got)}"


# ---------------------------------------------------------------- text specs


TEXT_MAX_LAYERS = 1_000_000
"""Bound on the layers a text spec may expand to (`N x` repeats multiply) when the caller gives no max_layers."""


def parse_spec(text: str, *, max_chars: int | None = None, max_layers: int | None = None) -> tuple[list[dict], list[int]]:
    """Parse a text spec into layer dicts and each layer's source line.

    Text with a line that starts like a call (`Sequential(`, `(0): Conv2d(...)`, `Conv2d(3, 8, ...)`) is read as
    print(model) output (`parse_printed`); anything else as the VGG paper's notation (`parse_vgg_notation`).
    """
    if not isinstance(text, str):
        raise SpecError(f"spec must be text, got {type(text).__name__}")
    if max_chars is not None and len(text) > max_chars:
        raise _limit("max_spec_chars", f"the spec text has {len(text):,} characters, more than max_spec_chars={max_chars:,}")
    if not text.strip():
        raise SpecError("spec is empty: give the text print(model) shows, or VGG notation such as 'conv3-64, maxpool'")
    if re.search(r"^[^\S\n]*[A-Za-z_][\w.]*[^\S\n]*\(", text, re.M):
        return parse_printed(text, max_layers=max_layers)
    return parse_vgg_notation(text)


def _int(digits: str, what: str) -> int:
    """A count written in a text spec, refused past MAX_EXTENT before int() (which refuses over 4,300 digits)."""
    if len(digits) > len(str(MAX_EXTENT)) or int(digits) > MAX_EXTENT:
        raise SpecError(f"{what} must be at most {MAX_EXTENT:,}, got {short(digits)}")
    return int(digits)


# print(model) class name -> (type, positional argument names)
_PRINTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "Conv2d": ("conv2d", ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")),
    "ConvTranspose2d": ("convtranspose2d", ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation")),
    "MaxPool2d": ("maxpool2d", ("kernel_size", "stride", "padding", "dilation")),
    "AvgPool2d": ("avgpool2d", ("kernel_size", "stride", "padding")),
    "AdaptiveAvgPool2d": ("adaptiveavgpool2d", ("output_size",)),
    "AdaptiveMaxPool2d": ("adaptivemaxpool2d", ("output_size",)),
    "ZeroPad2d": ("zeropad2d", ("padding",)),
    "BatchNorm2d": ("batchnorm2d", ("num_features", "eps", "momentum", "affine", "track_running_stats")),
    "ReLU": ("relu", ("inplace",)),
    "ReLU6": ("relu6", ("inplace",)),
    "LeakyReLU": ("leakyrelu", ("negative_slope", "inplace")),
    "GELU": ("gelu", ("approximate",)),
    "SiLU": ("silu", ("inplace",)),
    "Sigmoid": ("sigmoid", ()),
    "Tanh": ("tanh", ()),
    "Hardswish": ("hardswish", ("inplace",)),
    "Dropout": ("dropout", ("p", "inplace")),
    "Dropout2d": ("dropout", ("p", "inplace")),
    "Identity": ("identity", ()),
    "Flatten": ("flatten", ("start_dim", "end_dim")),
    "Linear": ("linear", ("in_features", "out_features", "bias")),
}
_CONTAINERS = ("Sequential", "ModuleList")
_LINE = re.compile(r"^\s*(?:\((?P<key>[^)]*)\)\s*:\s*)?(?:(?P<times>\d+)\s+x\s+)?(?P<cls>[A-Za-z_][\w.]*)\s*\((?P<rest>.*)$")


def parse_printed(text: str, *, max_layers: int | None = None) -> tuple[list[dict], list[int]]:
    """Parse what `print(model)` shows for an nn.Sequential (nested Sequential/ModuleList flatten, `3 x` repeats).

    Each leaf line is `(key): ClassName(args)`; args are read as Python literals, bare words
    (`padding=same`, `padding_mode=reflect`) as strings. Not recoverable from the printed form, and so
    not supported: custom modules such as torchvision's BasicBlock/Bottleneck (their forward(), e.g. a
    residual add, is not printed: write them as {"type": "residual", ...} in `layers`), and AvgPool2d's
    ceil_mode/count_include_pad, which PyTorch does not print (the defaults are assumed).
    Repeats multiply (`1000 x Sequential(... 1000 x Conv2d ...)`), so the expansion is bounded by max_layers
    (TEXT_MAX_LAYERS when not given) and refused before it is built.
    """
    limit = TEXT_MAX_LAYERS if max_layers is None else max_layers

    def grow(items: list, new: list, times: int, number: int) -> None:
        if len(items) + len(new) * times > limit:
            raise _limit(
                "max_layers",
                f"spec line {number}: the text expands to more than max_layers={limit:,} layers "
                f"({len(new):,} x {times:,} repeats on top of {len(items):,})",
            )
        items.extend(new * times)

    # each open container: (its parent's items so far as (layer, line) pairs, repeat count, line where it opened)
    stack: list[tuple[list[tuple[dict, int]], int, int]] = []
    current: list[tuple[dict, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped == ")":
            if not stack:
                raise SpecError(f"spec line {number}: unbalanced ')' (no container is open)")
            parent, times, _ = stack.pop()
            grow(parent, current, times, number)
            current = parent
            continue
        match = _LINE.match(line)
        if not match:
            raise SpecError(f"spec line {number}: cannot read {short(stripped)}; expected `(key): ClassName(arguments)` as print(model) shows")
        cls = match.group("cls").split(".")[-1]
        times = _int(match.group("times") or "1", f"spec line {number}: the repeat count")
        rest = match.group("rest").rstrip()
        if rest == "":
            if cls not in _CONTAINERS:
                raise SpecError(
                    f"spec line {number}: {cls if len(cls) <= 80 else short(cls)}(...) is a custom module, not nn.Sequential: print(model) does not show its "
                    "forward(), so the order of its children and any residual add or branching are unknown. Write it as "
                    'JSON layers, e.g. {"type": "residual", "body": [...], "shortcut": [...]} or {"type": "concat", "branches": [...]}'
                )
            stack.append((current, times, number))
            current = []
            continue
        layer = _leaf(cls, rest, number)
        grow(current, [(layer, number)], times, number)
    if stack:
        raise SpecError(f"spec line {stack[-1][2]}: the container opened here is never closed with ')'")
    if not current:
        raise SpecError("spec has no layers")
    return [dict(layer) for layer, _ in current], [number for _, number in current]


def _leaf(cls: str, rest: str, number: int) -> dict:
    if cls not in _PRINTED:
        known = ", ".join(_PRINTED)
        near = difflib.get_close_matches(cls[:40], list(_PRINTED), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        name = cls if len(cls) <= 80 else short(cls)
        raise SpecError(f"spec line {number}: unsupported layer {name}{hint}; the walk knows {known}, and nested Sequential")
    ltype, positional = _PRINTED[cls]
    if not rest.endswith(")"):
        raise SpecError(f"spec line {number}: {cls}({short(rest)} is missing its closing ')'")
    try:
        call = ast.parse(f"f({rest}", mode="eval").body
    except SyntaxError:
        raise SpecError(f"spec line {number}: cannot read the arguments of {cls}({short(rest)}") from None
    assert isinstance(call, ast.Call)
    if len(call.args) > len(positional):
        raise SpecError(f"spec line {number}: {cls} takes at most {len(positional)} positional arguments, got {len(call.args)}")
    layer: dict[str, Any] = {"type": ltype}
    for name, node in zip(positional, call.args, strict=False):
        layer[name] = _literal(node, number)
    for kw in call.keywords:
        if kw.arg is None:
            raise SpecError(f"spec line {number}: cannot read **arguments in {cls}(...)")
        layer[kw.arg] = _literal(kw.value, number)
    return layer


def _literal(node: ast.AST, number: int) -> Any:
    """A printed argument: Python literal, tuple -> list, bare word (padding=same) -> string."""
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, node.id)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_literal(e, number) for e in node.elts]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise SpecError(f"spec line {number}: cannot read the value {short(ast.unparse(node))}") from None


_VGG_TOKEN = re.compile(r"^(?:conv(?P<k>\d+)-(?P<c>\d+)|fc-(?P<f>\d+)|(?P<pool>maxpool)|(?P<soft>soft-?max)|(?P<lrn>lrn))$")


def parse_vgg_notation(text: str) -> tuple[list[dict], list[int]]:
    """Parse the VGG paper's notation (Simonyan & Zisserman 2015, Table 1), tokens separated by commas or whitespace.

    Accepted tokens (case-insensitive):
    * `convK-C`: Conv2d(out_channels=C, kernel_size=K, stride=1, padding=(K-1)//2) followed by ReLU
      (the paper: stride 1, padding 1 for 3x3, "all hidden layers are equipped with ReLU");
    * `maxpool`: MaxPool2d(kernel_size=2, stride=2);
    * `FC-N`: Linear(out_features=N); the first FC is preceded by Flatten, every FC but the last is followed by ReLU;
    * `soft-max` / `softmax` and `LRN`: shape-preserving and parameter-free, so they add nothing and are skipped.
    torchvision's VGG also has AdaptiveAvgPool2d((7, 7)) and Dropout, which change nothing at 224x224.
    """
    layers: list[dict] = []
    where: list[int] = []
    fc_positions: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in re.split(r"[,\s]+", line.strip()):
            if not token:
                continue
            match = _VGG_TOKEN.match(token.lower())
            if not match:
                raise SpecError(
                    f"spec line {number}: cannot read {short(token)}; VGG notation takes convK-C (e.g. conv3-64), maxpool, "
                    "FC-N, soft-max and LRN; anything else: give the printed nn.Sequential or JSON layers"
                )
            if match.group("k"):
                k = _int(match.group("k"), f"{short(token)}: the kernel size")
                layers += [
                    {"type": "conv2d", "out_channels": _int(match.group("c"), f"{short(token)}: the width"), "kernel_size": k, "padding": (k - 1) // 2},
                    {"type": "relu", "inplace": True},
                ]
                where += [number, number]
            elif match.group("f"):
                if not fc_positions:
                    layers.append({"type": "flatten"})
                    where.append(number)
                fc_positions.append(len(layers))
                layers += [{"type": "linear", "out_features": _int(match.group("f"), f"{short(token)}: the width")}, {"type": "relu", "inplace": True}]
                where += [number, number]
            elif match.group("pool"):
                layers.append({"type": "maxpool2d", "kernel_size": 2, "stride": 2})
                where.append(number)
    if fc_positions and fc_positions[-1] == len(layers) - 2:
        layers.pop()  # no ReLU after the last FC (the classifier's logits)
        where.pop()
    if not layers:
        raise SpecError("spec has no layers")
    return layers, where
