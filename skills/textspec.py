"""Text specs: what `print(model)` shows for an nn.Sequential, and the VGG paper's notation, parsed into layer dicts.

* the printed form of a PyTorch `nn.Sequential` (nested Sequentials and ModuleLists flatten into the sequence,
  `(0-2): 3 x ReLU()` repeats), every class the walk knows (`_PRINTED`);
* the VGG paper's compact notation (`conv3-64, conv3-64, maxpool, ..., FC-4096, FC-1000, soft-max`),
  documented in `parse_vgg_notation`.
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import Any

from .arithmetic import MAX_EXTENT
from .errors import SpecError
from .spec import _limit, short

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
_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")
_CONVT = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation")
_NORM = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_PRINTED: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"Conv{n}d": (f"conv{n}d", _CONV) for n in (1, 2, 3)},
    **{f"ConvTranspose{n}d": (f"convtranspose{n}d", _CONVT) for n in (1, 2, 3)},
    **{f"MaxPool{n}d": (f"maxpool{n}d", ("kernel_size", "stride", "padding", "dilation")) for n in (1, 2, 3)},
    **{f"AvgPool{n}d": (f"avgpool{n}d", ("kernel_size", "stride", "padding")) for n in (1, 2, 3)},
    **{f"Adaptive{k}Pool{n}d": (f"adaptive{k.lower()}pool{n}d", ("output_size",)) for k in ("Avg", "Max") for n in (1, 2, 3)},
    **{f"{k}Pad{n}d": (f"{k.lower()}pad{n}d", ("padding", "value") if k == "Constant" else ("padding",))
       for k in ("Zero", "Constant", "Reflection", "Replication", "Circular") for n in (1, 2, 3)},
    **{f"BatchNorm{n}d": (f"batchnorm{n}d", _NORM) for n in (1, 2, 3)},
    **{f"InstanceNorm{n}d": (f"instancenorm{n}d", _NORM) for n in (1, 2, 3)},
    **{f"Dropout{n}d": (f"dropout{n}d", ("p", "inplace")) for n in (1, 2, 3)},
    "GroupNorm": ("groupnorm", ("num_groups", "num_channels", "eps", "affine")),
    "LayerNorm": ("layernorm", ("normalized_shape", "eps", "elementwise_affine", "bias")),
    "Upsample": ("upsample", ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")),
    "UpsamplingNearest2d": ("upsamplingnearest2d", ("size", "scale_factor")),
    "UpsamplingBilinear2d": ("upsamplingbilinear2d", ("size", "scale_factor")),
    "PixelShuffle": ("pixelshuffle", ("upscale_factor",)),
    "PixelUnshuffle": ("pixelunshuffle", ("downscale_factor",)),
    "ChannelShuffle": ("channelshuffle", ("groups",)),
    "Softmax": ("softmax", ("dim",)),
    "LogSoftmax": ("logsoftmax", ("dim",)),
    "Softmin": ("softmin", ("dim",)),
    "PReLU": ("prelu", ("num_parameters", "init")),
    "Unflatten": ("unflatten", ("dim", "unflattened_size")),
    "ReLU": ("relu", ("inplace",)),
    "ReLU6": ("relu6", ("inplace",)),
    "LeakyReLU": ("leakyrelu", ("negative_slope", "inplace")),
    "GELU": ("gelu", ("approximate",)),
    "SiLU": ("silu", ("inplace",)),
    "ELU": ("elu", ("alpha", "inplace")),
    "CELU": ("celu", ("alpha", "inplace")),
    "SELU": ("selu", ("inplace",)),
    "Mish": ("mish", ("inplace",)),
    "Hardsigmoid": ("hardsigmoid", ("inplace",)),
    "Hardtanh": ("hardtanh", ("min_val", "max_val", "inplace")),
    "Softplus": ("softplus", ("beta", "threshold")),
    "Softsign": ("softsign", ()),
    "Tanhshrink": ("tanhshrink", ()),
    "Sigmoid": ("sigmoid", ()),
    "Tanh": ("tanh", ()),
    "Hardswish": ("hardswish", ("inplace",)),
    "Dropout": ("dropout", ("p", "inplace")),
    "AlphaDropout": ("alphadropout", ("p", "inplace")),
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
