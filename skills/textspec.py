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
from .onnx_file import EXPORT_LINE
from .spec import _limit, short

TEXT_MAX_LAYERS = 1_000_000
"""Bound on the layers a text spec may expand to (`N x` repeats multiply) when the caller gives no max_layers."""


class PrintedModuleError(SpecError):
    """print(model) text that is no nn.Sequential of known layers: a custom module hides its forward(), or a leaf
    is a class the walk does not know. parameter_count still reads it (skills.printtree); shapes cannot."""


def parse_spec(text: str, *, max_chars: int | None = None, max_layers: int | None = None) -> tuple[list[dict], list[int]]:
    """Parse a text spec into layer dicts and each layer's source line.

    Text with a line that starts like a call (`Sequential(`, `(0): Conv2d(...)`, `Conv2d(3, 8, ...)`) is read as
    print(model) output (`parse_printed`); anything else as the VGG paper's notation (`parse_vgg_notation`).
    """
    layers, lines, _ = parse_spec_named(text, max_chars=max_chars, max_layers=max_layers)
    return layers, lines


def parse_spec_named(text: str, *, max_chars: int | None = None, max_layers: int | None = None) -> tuple[list[dict], list[int], list[str] | None]:
    """parse_spec, and each layer's module path as print(model) shows it (`features.0`; None for VGG notation)."""
    if not isinstance(text, str):
        raise SpecError(f"spec must be text, got {type(text).__name__}")
    if max_chars is not None and len(text) > max_chars:
        raise _limit("max_spec_chars", f"the spec text has {len(text):,} characters, more than max_spec_chars={max_chars:,}")
    if not text.strip():
        raise SpecError("spec is empty: give the text print(model) shows, or VGG notation such as 'conv3-64, maxpool'")
    if re.search(r"^[^\S\n]*[A-Za-z_][\w.]*[^\S\n]*\(", text, re.M):
        return _parse_printed(text, max_layers=max_layers)
    return (*parse_vgg_notation(text), None)


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
    "NonDynamicallyQuantizableLinear": ("linear", ("in_features", "out_features", "bias")),  # MultiheadAttention's out_proj
}
_CONTAINERS = ("Sequential", "ModuleList")
_LINE = re.compile(r"^\s*(?:\((?P<key>[^)]*)\)\s*:\s*)?(?:(?P<times>\d+)\s+x\s+)?(?P<cls>[A-Za-z_][\w.]*)\s*\((?P<rest>.*)$")


def parse_printed(text: str, *, max_layers: int | None = None) -> tuple[list[dict], list[int]]:
    """Parse what `print(model)` shows for an nn.Sequential (nested Sequential/ModuleList flatten, `3 x` repeats).

    Each leaf line is `(key): ClassName(args)`; args are read as Python literals, bare words
    (`padding=same`, `padding_mode=reflect`) as strings. Not recoverable from the printed form, and so
    not supported: custom modules such as torchvision's BasicBlock/Bottleneck (their forward(), e.g. a
    residual add, is not printed: export the model to ONNX and pass it as `model`, or write them as
    {"type": "residual", ...} in `layers`; parameter_count reads any print, skills.printtree), and AvgPool2d's
    ceil_mode/count_include_pad, which PyTorch does not print (the defaults are assumed).
    Repeats multiply (`1000 x Sequential(... 1000 x Conv2d ...)`), so the expansion is bounded by max_layers
    (TEXT_MAX_LAYERS when not given) and refused before it is built.
    """
    layers, lines, _ = _parse_printed(text, max_layers=max_layers)
    return layers, lines


def repeat_keys(key: str | None, times: int):
    """The module names behind a printed key, one per repeat (a generator: callers bound `times` first):
    `(0-2): 3 x ReLU()` is 0, 1 and 2; no key (the root) is ''."""
    first = None
    if key is not None and times > 1 and re.fullmatch(r"\d{1,10}-\d{1,10}", key):
        a, b = map(int, key.split("-"))
        first = a if b - a + 1 == times else None
    for j in range(times):
        if key is None:
            yield ""
        elif first is not None:
            yield str(first + j)
        else:
            yield key if times == 1 else f"{key}.{j}"


MAX_PATH_CHARS = 200
"""Module paths longer than this (a print nested thousands deep) are shortened in the middle."""


def _join(prefix: str, path: str) -> str:
    joined = f"{prefix}.{path}" if prefix and path else prefix or path
    return joined if len(joined) <= MAX_PATH_CHARS else joined[:60] + "..." + joined[-(MAX_PATH_CHARS - 63):]


class _Group:
    """An open module of a print: its key, repeat count, line, what it holds (groups and leaves) and their number
    once expanded (`size`, repeats inside counted, its own not)."""

    __slots__ = ("key", "times", "line", "items", "size", "path")

    def __init__(self, key: str | None, times: int, line: int, path: str = ""):
        self.key, self.times, self.line, self.items, self.size, self.path = key, times, line, [], 0, path


def read_tree(text: str, limit: int, on_leaf, on_module) -> _Group:
    """The module tree of a print(model), in one pass, its expanded size bounded by `limit` before anything is
    expanded. on_leaf(cls, rest, line) gives what a leaf holds; on_module(cls, line, path) sees each module that is
    no container (it may raise). Linear in the text: nothing is copied when a module closes."""
    root = _Group(None, 1, 0)
    stack = [root]
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped == ")":
            if len(stack) == 1:
                raise SpecError(f"spec line {number}: unbalanced ')' (no container is open)")
            group = stack.pop()
            _add(stack[-1], group, group.size, group.times, number, limit)
            continue
        match = _LINE.match(line)
        if not match:
            raise SpecError(f"spec line {number}: cannot read {short(stripped)}; expected `(key): ClassName(arguments)` as print(model) shows")
        cls = match.group("cls").split(".")[-1]
        times = _int(match.group("times") or "1", f"spec line {number}: the repeat count")
        rest = match.group("rest").rstrip()
        key = match.group("key")
        if rest == "":
            path = _join(stack[-1].path, key or "")
            if cls not in _CONTAINERS:
                on_module(cls, number, path)
            stack.append(_Group(key, times, number, path))
            continue
        _add(stack[-1], (key, times, on_leaf(cls, rest, number), number), 1, times, number, limit)
    if len(stack) > 1:
        raise SpecError(f"spec line {stack[-1].line}: the container opened here is never closed with ')'")
    if not root.size:
        raise SpecError("spec has no layers")
    return root


def _add(parent: _Group, item, size: int, times: int, number: int, limit: int) -> None:
    if parent.size + size * times > limit:
        raise _limit(
            "max_layers",
            f"spec line {number}: the text expands to more than max_layers={limit:,} layers "
            f"({size:,} x {times:,} repeats on top of {parent.size:,})",
        )
    if size:  # `1000000000 x Sequential()` adds nothing: its repeats are never walked
        parent.items.append(item)
        parent.size += size * times


def flatten_tree(root: _Group):
    """(what on_leaf gave, line, module path) of every leaf in print order, repeats expanded lazily (no recursion)."""
    # a frame: [iterator over the items of the current repeat, its path, the group, iterator over the repeats' keys, parent's path]
    stack = [[iter(root.items), "", root, iter(()), ""]]
    while stack:
        frame = stack[-1]
        item = next(frame[0], None)
        if item is None:
            prefix = next(frame[3], None)
            if prefix is None:
                stack.pop()
            else:  # the group's next repeat: its items again, under the next key
                frame[0], frame[1] = iter(frame[2].items), _join(frame[4], prefix)
            continue
        if item.__class__ is _Group:
            keys = repeat_keys(item.key, item.times)
            stack.append([iter(item.items), _join(frame[1], next(keys)), item, keys, frame[1]])
            continue
        key, times, payload, number = item
        for k in repeat_keys(key, times):
            yield payload, number, _join(frame[1], k)


def _parse_printed(text: str, *, max_layers: int | None = None) -> tuple[list[dict], list[int], list[str]]:
    """parse_printed, and each layer's module path (`features.0`, `0` ...)."""
    limit = TEXT_MAX_LAYERS if max_layers is None else max_layers

    def refuse(cls: str, number: int, path: str) -> None:
        raise _hidden_forward(text, number, cls, path)

    root = read_tree(text, limit, _leaf, refuse)
    layers, lines, paths = [], [], []
    for layer, number, path in flatten_tree(root):
        layers.append(dict(layer))
        lines.append(number)
        paths.append(path)
    return layers, lines, paths


_OPENS = re.compile(r"^[^\S\n]*(?:\([^)\n]*\)[^\S\n]*:[^\S\n]*)?(?:\d+[^\S\n]+x[^\S\n]+)?([A-Za-z_][\w.]*)[^\S\n]*\($", re.M)


def _hidden_forward(text: str, number: int, cls: str, path: str) -> PrintedModuleError:
    """The error for a custom module: which one hides its forward, what else does, and the one line that helps."""
    name = cls if len(cls) <= 80 else short(cls)
    where = f"module {path!r}" if path else "the top-level module"
    others: dict[str, int] = {}
    for found in _OPENS.finditer(text):
        other = found.group(1).split(".")[-1]
        if other not in _CONTAINERS and other != cls and len(others) < 50:
            others[other] = others.get(other, 0) + 1
    more = ""
    if others:
        shown = ", ".join(f"{k if len(k) <= 40 else short(k, 40)} x{v}" for k, v in list(others.items())[:5])
        more = f" (other custom modules in this print: {shown}{', ...' if len(others) > 5 else ''})"
    return PrintedModuleError(
        f"spec line {number}: {name}(...) is a custom module ({where}), not nn.Sequential: print(model) does not show its forward(), "
        f"so the order of its children and any residual add, branching or flatten are unknown, and the walk does not "
        f"guess them{more}. For shapes, MACs and receptive fields export the whole graph to ONNX and pass the file as "
        f"`model`: {EXPORT_LINE}. parameter_count reads this text as it is (params do not depend on forward()); or write "
        'the network as JSON layers, e.g. {"type": "residual", "body": [...], "shortcut": [...]}'
    )


def _leaf(cls: str, rest: str, number: int) -> dict:
    if cls not in _PRINTED:
        known = ", ".join(_PRINTED)
        near = difflib.get_close_matches(cls[:40], list(_PRINTED), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        name = cls if len(cls) <= 80 else short(cls)
        raise PrintedModuleError(
            f"spec line {number}: unsupported layer {name}{hint}; the walk knows {known}, and nested Sequential "
            "(parameter_count reads any print(model), counting the layers it knows)"
        )
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
