"""The one copy of each size formula: convolution, pooling and transposed convolution, per axis, as PyTorch.

Everything else (the walk, the designer, the NumPy engine, the tools) calls these.
Pure Python on purpose: importing this module must stay cheap (no numpy).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from .errors import GeometryError

MAX_EXTENT = 1_000_000_000
"""The largest size, kernel, stride, padding, dilation or channel count accepted anywhere (PyTorch stops far below)."""

Pair = tuple[int, int]
PairLike = int | Sequence[int]
Padding = int | Sequence[int] | str
Kind = Literal["conv", "pool", "transpose"]
AXES = ("H", "W")


def pair(value: PairLike, name: str, *, minimum: int | None = None, where: str = "") -> Pair:
    """Turn an int or a 1- or 2-item sequence into (h, w), checking integers and a lower bound."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool):
        raise GeometryError(f"{prefix}{name} must be an int or [h, w], got {value!r}")
    if isinstance(value, int):
        out = (value, value)
    elif isinstance(value, (list, tuple)) and len(value) in (1, 2) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        out = (value[0], value[-1])
    else:
        raise GeometryError(f"{prefix}{name} must be an int or [h, w] of ints, got {value!r}")
    if minimum is not None and min(out) < minimum:
        raise GeometryError(f"{prefix}{name} must be >= {minimum} on every axis, got {list(out)}")
    return out


def per_axis(value: PairLike, n: int, name: str, *, minimum: int | None = None, where: str = "") -> tuple[int, ...]:
    """Turn an int or a list of 1 or n ints into one int per spatial axis (n of them), checking a lower bound."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool):
        raise GeometryError(f"{prefix}{name} must be an int or a list of {n} ints, got {value!r}")
    if isinstance(value, int):
        out = (value,) * n
    elif isinstance(value, (list, tuple)) and len(value) in (1, n) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        out = tuple(value) * (n if len(value) == 1 else 1)
    else:
        raise GeometryError(f"{prefix}{name} must be an int or a list of {n} ints (one per spatial axis), got {value!r}")
    if minimum is not None and min(out) < minimum:
        raise GeometryError(f"{prefix}{name} must be >= {minimum} on every axis, got {list(out)}")
    return out


def axis_names(n: int) -> tuple[str, ...]:
    """Names of n spatial axes: L; H, W; D, H, W."""
    return {1: ("L",), 2: AXES, 3: ("D", "H", "W")}[n]


def effective_kernel(kernel: int, dilation: int) -> int:
    """Span of a dilated kernel in pixels: dilation*(kernel-1) + 1."""
    return dilation * (kernel - 1) + 1


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """PyTorch's padding="same" for stride 1: total dilation*(kernel-1), the extra pixel after (bottom/right)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def resolve_conv_padding(
    padding: Padding, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int], *, where: str = ""
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Padding before and after per axis, ((top, left), (bottom, right)) in 2-D, for int, a per-axis list, "same" or
    "valid"; kernel, stride and dilation have one entry per spatial axis."""
    prefix = f"{where}: " if where else ""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * n, (0,) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise GeometryError(
                    f"{prefix}padding='same' is not supported for strided convolutions (stride={list(stride)}); "
                    "PyTorch refuses it too: use an explicit padding such as dilation*(kernel_size-1)//2"
                )
            sides = [same_padding(k, d) for k, d in zip(kernel, dilation, strict=True)]
            return tuple(b for b, _ in sides), tuple(a for _, a in sides)
        axes = "[h, w]" if n == 2 else "a per-axis list"
        raise GeometryError(f"{prefix}padding must be an int, {axes}, 'same' or 'valid', got {padding!r}")
    p = pair(padding, "padding", minimum=0, where=where) if n == 2 else per_axis(padding, n, "padding", minimum=0, where=where)
    return p, p


def conv_output_length(
    size: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution along one axis: floor((size + pads - dilation*(kernel-1) - 1) / stride) + 1."""
    span = effective_kernel(kernel, dilation)
    padded = size + pad_before + pad_after
    if padded < span:
        raise GeometryError(
            f"kernel spans {span} px (kernel_size={kernel}, dilation={dilation}) "
            f"but the padded input is {padded} px (input {size} + padding {pad_before}+{pad_after})"
        )
    return (padded - span) // stride + 1


def pool_output_length(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False,
    pad_after: int | None = None, convention: str = "pytorch",
) -> int:
    """Output length of max/avg pooling along one axis, with ceil_mode's rule that drops a window starting in the right padding.

    `padding` is the padding before (and after, unless `pad_after` is given). convention="onnx" is ONNX's rule
    (onnx.shape_inference, convPoolShapeInference): no half-kernel limit, and with ceil_mode every window counts,
    even one that starts in the padding."""
    after = padding if pad_after is None else pad_after
    span = effective_kernel(kernel, dilation)
    if convention == "onnx":
        padded = size + padding + after
        if padded < span:
            raise GeometryError(
                f"window spans {span} px (kernel_size={kernel}, dilation={dilation}) "
                f"but the padded input is {padded} px (input {size} + padding {padding}+{after})"
            )
        if not ceil_mode:
            return (padded - span) // stride + 1
        # ONNX computes ceil((padded - span) / float(stride)) in float32: the same rounding, so the same answer
        return math.ceil(_f32(_f32(padded - span) / _f32(stride))) + 1
    if 2 * max(padding, after) > kernel:
        shown = f"padding={padding}" if after == padding else f"padding {padding} before and {after} after"
        raise GeometryError(
            f"pool padding must be at most half the kernel size (padding <= kernel_size//2 = {kernel // 2}), "
            f"got {shown} with kernel_size={kernel}"
        )
    numerator = size + padding + after - span + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1  # floor division rounds toward -inf, as PyTorch's div_rtn
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
    if out < 1:
        pads = f"2*{padding}" if after == padding else f"{padding}+{after}"
        raise GeometryError(
            f"pooling output is {out} px: window spans {span} px (kernel_size={kernel}, dilation={dilation}) "
            f"but the padded input is {size + padding + after} px (input {size} + padding {pads})"
        )
    return out


def _f32(x: float) -> float:
    """x rounded to float32 (IEEE single), as C++ float arithmetic holds it."""
    return struct.unpack("f", struct.pack("f", x))[0]


def transpose_output_length(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1,
    pad_after: int | None = None,
) -> int:
    """Output length of a transposed convolution along one axis: (size-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1
    (`padding` before and `pad_after` after when they differ, as ONNX's pads may)."""
    if output_padding >= max(stride, dilation):
        raise GeometryError(
            f"output_padding must be smaller than either stride or dilation "
            f"(output_padding < max(stride, dilation) = {max(stride, dilation)}), got output_padding={output_padding}"
        )
    after = padding if pad_after is None else pad_after
    out = (size - 1) * stride - padding - after + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        pads = f"2*padding {padding}" if after == padding else f"padding {padding} - padding {after}"
        raise GeometryError(
            f"transposed conv output is {out} px: (input {size} - 1)*stride {stride} - {pads} "
            f"+ dilation {dilation}*(kernel_size {kernel} - 1) + output_padding {output_padding} + 1 < 1"
        )
    return out


def check_padding_mode(size: Sequence[int], pad_before: Sequence[int], pad_after: Sequence[int], mode: str, *, where: str = "") -> None:
    """PyTorch's limits for non-zero padding modes: reflect needs padding < size, circular padding <= size."""
    prefix = f"{where}: " if where else ""
    if mode in ("zeros", "replicate"):
        return
    if mode not in ("reflect", "circular"):
        raise GeometryError(f"{prefix}padding_mode must be zeros, reflect, replicate or circular, got {mode!r}")
    for axis, s, pb, pa in zip(axis_names(len(size)), size, pad_before, pad_after, strict=True):
        p = max(pb, pa)
        if mode == "reflect" and p >= s:
            raise GeometryError(
                f"{prefix}reflect padding must be smaller than the input: padding {p} >= {axis} {s} (need padding < {s})"
            )
        if mode == "circular" and p > s:
            raise GeometryError(
                f"{prefix}circular padding cannot wrap around more than once: padding {p} > {axis} {s} (need padding <= {s})"
            )


@dataclass(frozen=True)
class AxisResult:
    """One axis of a size computation: the output length and the arithmetic written out."""

    output: int
    formula: str


def _floor(numerator: str, stride: int) -> str:
    return f"floor(({numerator}) / {stride}) + 1" if stride != 1 else f"({numerator}) + 1"


def conv_axis(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> AxisResult:
    """Convolution along one axis with the formula spelled out."""
    out = conv_output_length(size, kernel, stride, pad_before, pad_after, dilation)
    pads = f"2*{pad_before}" if pad_before == pad_after else f"{pad_before} + {pad_after}"
    text = _floor(f"{size} + {pads} - {dilation}*({kernel}-1) - 1", stride)
    return AxisResult(out, f"{text} = {out}")


def pool_axis(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> AxisResult:
    """Pooling along one axis with the formula spelled out (ceil_mode shown and its drop rule noted)."""
    out = pool_output_length(size, kernel, stride, padding, dilation, ceil_mode)
    body = f"{size} + 2*{padding} - {dilation}*({kernel}-1) - 1"
    if not ceil_mode:
        return AxisResult(out, f"{_floor(body, stride)} = {out}")
    raw = -((-(size + 2 * padding - effective_kernel(kernel, dilation))) // stride) + 1
    text = f"ceil(({body}) / {stride}) + 1 = {raw}"
    if raw != out:
        text += f"; the last window would start at {(raw - 1) * stride} >= input + left padding ({size + padding}), so it is dropped: {out}"
    return AxisResult(out, text)


def transpose_axis(
    size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> AxisResult:
    """Transposed convolution along one axis with the formula spelled out."""
    out = transpose_output_length(size, kernel, stride, padding, output_padding, dilation)
    text = f"({size}-1)*{stride} - 2*{padding} + {dilation}*({kernel}-1) + {output_padding} + 1 = {out}"
    return AxisResult(out, text)


def _axis_count(*values: object) -> int:
    """How many spatial axes a call has: the longest list among its per-axis values (all ints: 2, as [h, w])."""
    lengths = {len(v) for v in values if isinstance(v, (list, tuple))}
    n = max(lengths, default=2)
    if n > 3 or n < 1:
        raise GeometryError(f"per-axis values take 1, 2 or 3 entries (one per spatial axis: [l], [h, w], [d, h, w]), got {n}")
    bad = sorted(lengths - {1, n})
    if bad:
        raise GeometryError(f"per-axis values disagree on the number of axes: lists of {bad[0]} and {n} entries (give one per axis, or one for all)")
    return n


def output_size(
    input_size: PairLike,
    kernel_size: PairLike,
    stride: PairLike | None = None,
    padding: Padding = 0,
    dilation: PairLike = 1,
    ceil_mode: bool = False,
    output_padding: PairLike = 0,
    kind: Kind = "conv",
) -> tuple[tuple[int, ...], tuple[AxisResult, ...]]:
    """Output size of one conv, pool or transposed conv, per axis (1, 2 or 3 of them), with each axis's arithmetic."""
    n = _axis_count(input_size, kernel_size, stride, padding if not isinstance(padding, str) else 0, dilation, output_padding)
    size = per_axis(input_size, n, "input_size", minimum=1)
    kernel = per_axis(kernel_size, n, "kernel_size", minimum=1)
    strides = per_axis(kernel if stride is None and kind == "pool" else (1 if stride is None else stride), n, "stride", minimum=1)
    dil = per_axis(dilation, n, "dilation", minimum=1)
    if kind == "conv":
        before, after = resolve_conv_padding(padding, kernel, strides, dil)
        axes = tuple(conv_axis(size[i], kernel[i], strides[i], before[i], after[i], dil[i]) for i in range(n))
    elif kind == "pool":
        if isinstance(padding, str):
            raise GeometryError(f"padding={padding!r} is only for kind 'conv'; pooling takes an int or a per-axis list")
        pad = per_axis(padding, n, "padding", minimum=0)
        axes = tuple(pool_axis(size[i], kernel[i], strides[i], pad[i], dil[i], ceil_mode) for i in range(n))
    elif kind == "transpose":
        if isinstance(padding, str):
            raise GeometryError(f"padding={padding!r} is only for kind 'conv'; transposed conv takes an int or a per-axis list")
        pad = per_axis(padding, n, "padding", minimum=0)
        op = per_axis(output_padding, n, "output_padding", minimum=0)
        axes = tuple(transpose_axis(size[i], kernel[i], strides[i], pad[i], op[i], dil[i]) for i in range(n))
    else:
        raise GeometryError(f"kind must be 'conv', 'pool' or 'transpose', got {kind!r}")
    return tuple(a.output for a in axes), axes


def receptive_field_step(
    rf: int, jump: int, start: float, kernel: int, stride: int, pad_before: int, dilation: int
) -> tuple[int, int, float]:
    """Receptive field after one conv/pool layer (Araujo et al., Distill 2019).

    rf grows by (effective kernel - 1) * jump; jump (effective stride) multiplies by stride;
    start, the input coordinate of the first output's centre, moves by ((k_eff - 1)/2 - pad_before) * jump.
    """
    span = effective_kernel(kernel, dilation)
    return rf + (span - 1) * jump, jump * stride, start + ((span - 1) / 2 - pad_before) * jump


class OutputSizeResult(BaseModel):
    """Result of conv_output_size: the output size per axis and the arithmetic that gave it."""

    output_size: list[int] = Field(description="output size per spatial axis ([h, w] in 2-D)")
    formula: str = Field(description="the arithmetic written out with the numbers, per axis")
    kind: Kind
    input_size: list[int]
    kernel_size: list[int]
    stride: list[int]
    padding: list[list[int]] = Field(description="[[before, after], ...] per axis: [[top, bottom], [left, right]] in 2-D")
    dilation: list[int]
    formulas: list[str] = Field(description="one formula per axis ([H formula, W formula] in 2-D)")


def conv_output_size(
    input_size: PairLike,
    kernel_size: PairLike,
    stride: PairLike | None = None,
    padding: Padding = 0,
    dilation: PairLike = 1,
    ceil_mode: bool = False,
    output_padding: PairLike = 0,
    kind: Kind = "conv",
) -> OutputSizeResult:
    """Output size of one Conv1d/2d/3d, MaxPool/AvgPool or ConvTranspose layer, exactly as PyTorch computes it; per-axis
    values are an int or a list of 1, 2 or 3 entries (all ints: 2-D)."""
    out, axes = output_size(input_size, kernel_size, stride, padding, dilation, ceil_mode, output_padding, kind)
    n = len(out)
    kernel = per_axis(kernel_size, n, "kernel_size")
    strides = per_axis(kernel if stride is None and kind == "pool" else (1 if stride is None else stride), n, "stride")
    dil = per_axis(dilation, n, "dilation")
    if kind == "conv":
        before, after = resolve_conv_padding(padding, kernel, strides, dil)
    else:
        before = after = per_axis(padding, n, "padding")  # type: ignore[arg-type]
    formulas = [a.formula for a in axes]
    names = axis_names(n)
    if len(set(formulas)) == 1 and n > 1:
        formula = f"{' = '.join(names)}: {formulas[0]}"
    else:
        formula = "; ".join(f"{name}: {f}" for name, f in zip(names, formulas, strict=True))
    return OutputSizeResult(
        output_size=list(out),
        formula=formula,
        kind=kind,
        input_size=list(per_axis(input_size, n, "input_size")),
        kernel_size=list(kernel),
        stride=list(strides),
        padding=[[b, a] for b, a in zip(before, after, strict=True)],
        dilation=list(dil),
        formulas=formulas,
    )
