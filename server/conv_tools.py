"""Tools conv2d and conv2d_backward, and the kernel bank and sample inputs as resources: a thin adapter over skills.conv.

NumPy loads on the first call, not at import (cold start). The work runs in worker threads a few tens of
milliseconds at a time (image by image, row block by row block), reporting progress in between; a cancelled
call stops at the next chunk boundary.
"""

import base64
import json
import time
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, Field

from skills.errors import ArrayError, LimitError
from skills.kernels import KERNELS, SAMPLES, kernel, sample

from .argtypes import ConvPadding, Count, IntOrPair
from .errors import domain_errors
from .limits import LIMITS, Limits
from .results import READ_ONLY

CHUNK_SECONDS = 0.05  # work done per worker-thread hop before progress is reported and cancellation checked
TEXT_VALUES = 1_024
"""Values written into the text content (a compact grid, 4 significant digits): a client that passes only the text
to the model still gives it the answer. Larger arrays: the text says where they are (structured content, or the
summary when they exceed max_output_elements_inline)."""
CORNER = 8

# Arrays are validated by skills (short messages naming the place); a typed list[float] would make the SDK echo
# one validation line per bad item.
NestedList = Annotated[list[Any], Field(description="nested list of numbers")]
PaddingArg = ConvPadding


class ArraySummary(BaseModel):
    """A large array described instead of listed: shape, statistics and its top-left corner."""

    shape: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    corner: list[Any] = Field(description=f"the top-left corner: [0, ..., :{CORNER}, :{CORNER}] of the array")
    note: str


class Conv2dResult(BaseModel):
    """Result of conv2d: the output (or its summary when large) and the geometry that was applied."""

    output: list[Any] | None = Field(description="the output as a nested list; null when summarised (see summary)")
    output_shape: list[int] = Field(
        description="[N, C_out, H_out, W_out], [C_out, H_out, W_out], or [H_out, W_out] for [H, W] x and one output channel"
    )
    method: Literal["naive", "im2col", "both"]
    max_abs_diff: float | None = Field(None, description='with method "both": largest |naive - im2col| over the output')
    summary: ArraySummary | None = Field(
        None, description="present instead of output when it has more than max_output_elements_inline elements"
    )
    kernel: str | None = Field(
        None, description="the kernel bank entry used, applied to each channel on its own (groups = C)"
    )
    sample: str | None = Field(None, description="the sample input used as x")
    weight_shape: list[int] = Field(description="[C_out, C_in/groups, kH, kW]")
    groups: int
    stride: list[int]
    padding: list[list[int]] = Field(description="[[top, bottom], [left, right]] padding applied")
    padding_mode: str
    dilation: list[int]
    macs: int = Field(description="multiply-accumulates of one forward pass, bias excluded")
    columns: list[Any] | None = Field(
        None, description="with show_columns: the im2col matrix of the first image, [C_in*kH*kW, H_out*W_out]"
    )
    columns_shape: list[int] | None = None
    notes: list[str] = Field(default_factory=list)


class Conv2dBackwardResult(BaseModel):
    """Result of conv2d_backward: the gradients (or summaries when large) of sum(grad_output * conv2d(x, weight, bias))."""

    grad_input: list[Any] | None = Field(description="dL/dx, shaped like x; null when summarised")
    grad_weight: list[Any] | None = Field(description="dL/dweight, shaped like weight; null when summarised")
    grad_bias: list[Any] | None = Field(
        description="dL/dbias [C_out]; null when no bias was given (JSON has no inf/nan: those are null)"
    )
    grad_input_shape: list[int]
    grad_weight_shape: list[int]
    output_shape: list[int] = Field(description="shape of the forward output (and of grad_output)")
    grad_output: Literal["given", "ones"] = Field(description='"ones" = the gradient of sum(output)')
    summaries: dict[str, ArraySummary] = Field(
        default_factory=dict, description="grad_input / grad_weight / grad_bias summarised when large"
    )
    kernel: str | None = None
    sample: str | None = None
    macs: int = Field(
        description="multiply-accumulates of the backward pass: 2x the forward (grad_input and grad_weight)"
    )
    notes: list[str] = Field(default_factory=list)


KERNEL_TEMPLATE = "conv://kernels/{name}"
SAMPLE_TEMPLATE = "conv://samples/{name}"
# completion/complete for the templates' one argument: the bank's names (server.completions filters them).
TEMPLATE_COMPLETIONS = {
    KERNEL_TEMPLATE: lambda argument, given: list(KERNELS) if argument == "name" else None,
    SAMPLE_TEMPLATE: lambda argument, given: list(SAMPLES) if argument == "name" else None,
}

# ---------------------------------------------------------------------------------------------------------------


def _limit_error(limit: str, what: str) -> LimitError:
    """'<what>, more than <limit>=<bound>; raise it with ...'."""
    return LimitError(f"{what}, more than {limit}={getattr(LIMITS, limit):,}; {Limits.how_to_raise(limit)}")


def _check_elements(arr: Any, name: str) -> None:
    if arr.size > LIMITS.max_input_elements:
        raise _limit_error("max_input_elements", f"{name} {list(arr.shape)} has {arr.size:,} elements")


def _inputs(x, sample_name, weight, kernel_name, groups):
    """x as [C,H,W]/[N,C,H,W] (and whether it was [H,W]), weight, groups; from arrays or bank names."""
    from skills.conv import as_array
    from skills.kernels import depthwise_weight, sample_array

    if (x is None) == (sample_name is None):
        raise ToolError("give exactly one of x (a nested list) or sample (a name: " + ", ".join(SAMPLES) + ")")
    if (weight is None) == (kernel_name is None):
        raise ToolError(
            "give exactly one of weight (a nested list [C_out, C_in/groups, kH, kW]) or kernel (a name: "
            + ", ".join(KERNELS)
            + ")"
        )
    arr = sample_array(sample_name) if sample_name is not None else as_array(x, "x", (2, 3, 4))
    _check_elements(arr, "x")
    was_2d = arr.ndim == 2
    if was_2d:
        arr = arr[None]
    channels = arr.shape[-3]
    if kernel_name is not None:
        if groups not in (None, channels):
            raise ToolError(
                f"kernel {kernel_name!r} is applied to each of the {channels} input channels on its own, so groups must be "
                f"{channels} (or left out), got groups={groups}; to mix channels give a weight instead"
            )
        w = depthwise_weight(kernel_name, channels)
        groups = channels
    else:
        w = as_array(weight, "weight", (4,))
        _check_elements(w, "weight")
    return arr, was_2d, w, 1 if groups is None else groups


def _check_work(geom, macs: int, what: str) -> None:
    out_elements = 1
    for s in geom.output_shape:
        out_elements *= s
    if out_elements > LIMITS.max_input_elements:
        raise _limit_error(
            "max_input_elements",
            f"the output {list(geom.output_shape)} would have {out_elements:,} elements (bounded like grad_output)",
        )
    if macs > LIMITS.max_macs:
        raise _limit_error("max_macs", f"{what} needs {macs:,} multiply-accumulates")


def _plain(arr) -> list[Any]:
    return arr.tolist()


def _summary(arr, name: str) -> ArraySummary:
    import numpy as np

    finite = arr[np.isfinite(arr)]

    def stat(f):
        if not finite.size:
            return None
        with np.errstate(all="ignore"):  # the std of huge values overflows to inf: say so, don't warn
            value = float(f(finite))
        return value if np.isfinite(value) else None

    corner = arr[(0,) * (arr.ndim - 2)][:CORNER, :CORNER] if arr.ndim >= 2 else arr[: CORNER * CORNER]
    return ArraySummary(
        shape=list(arr.shape),
        min=stat(np.min),
        max=stat(np.max),
        mean=stat(np.mean),
        std=stat(np.std),
        corner=corner.tolist(),
        note=(
            f"{name} has {arr.size:,} elements, more than max_output_elements_inline={LIMITS.max_output_elements_inline:,}, "
            f"so it is summarised; {Limits.how_to_raise('max_output_elements_inline')}, or ask for a smaller input"
        ),
    )


def _inline(arr, name: str) -> tuple[list[Any] | None, ArraySummary | None]:
    if arr.size > LIMITS.max_output_elements_inline:
        return None, _summary(arr, name)
    return _plain(arr), None


async def _run(job, ctx: Context | None, label: str, offset: int = 0, total: int | None = None) -> Any:
    """Run a ConvJob in worker threads, CHUNK_SECONDS at a time, reporting progress and honouring cancellation between hops."""

    def some() -> bool:
        end = time.perf_counter() + CHUNK_SECONDS
        while job.step():
            if time.perf_counter() > end:
                return True
        return False

    total = job.total if total is None else total
    while await anyio.to_thread.run_sync(some):
        if ctx is not None:
            await ctx.report_progress(offset + job.done, total, label)
    if ctx is not None:
        await ctx.report_progress(offset + job.done, total, label)
    return job.result()


def _number(v: float) -> str:
    """A value for the text grid: an int when whole, else 4 significant digits (an overflow as Infinity, as JSON writes it)."""
    if v != v or v in (float("inf"), float("-inf")):
        return "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.4g}"


def grid_text(name: str, arr) -> str:
    """`name` [shape] and its values as aligned rows, one block per leading index ([n, c] of an NCHW array)."""
    values = arr.reshape(1, -1) if arr.ndim < 2 else arr
    head = f"{name} {list(arr.shape)}:"
    if arr.ndim < 2:
        return head + " [" + ", ".join(_number(float(v)) for v in values[0]) + "]"
    planes = values.reshape(-1, *values.shape[-2:])
    cells = [[[_number(float(v)) for v in row] for row in plane] for plane in planes]
    width = max(len(c) for plane in cells for row in plane for c in row)
    lead = values.shape[:-2]
    lines = [head]
    for k, plane in enumerate(cells):
        if lead:
            index = []
            rest = k
            for size in reversed(lead):
                index.append(rest % size)
                rest //= size
            lines.append(f"[{', '.join(map(str, reversed(index)))}]")
        lines.extend(" ".join(c.rjust(width) for c in row) for row in plane)
    return "\n".join(lines)


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _image_block(png: bytes) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")


def register(server: MCPServer) -> None:
    """Add the conv2d and conv2d_backward tools and the kernel/sample resources."""

    @server.tool(name="conv2d", title="Run a 2-D convolution in NumPy (naive loops or im2col)", annotations=READ_ONLY)
    @domain_errors
    async def conv2d_tool(
        x: Annotated[
            NestedList | None,
            Field(description="input [H, W], [C, H, W] or [N, C, H, W] (or sample)"),
        ] = None,
        weight: Annotated[
            NestedList | None, Field(description="[C_out, C_in/groups, kH, kW] (or kernel)")
        ] = None,
        kernel: Annotated[
            str | None,
            Field(
                description="kernel bank name (conv://kernels, e.g. sobel_x) instead of weight, per channel"
            ),
        ] = None,
        bias: Annotated[NestedList | None, Field(description="[C_out]")] = None,
        stride: Annotated[IntOrPair, Field(description="S or [sH, sW]")] = 1,
        padding: Annotated[
            PaddingArg,
            Field(description="P, [pH, pW], 'same' or 'valid'"),
        ] = 0,
        padding_mode: Annotated[
            Literal["zeros", "reflect", "replicate", "circular"],
            Field(
                description="as nn.Conv2d"
            ),
        ] = "zeros",
        dilation: Annotated[IntOrPair, Field(description="D or [dH, dW]")] = 1,
        groups: Annotated[
            Count | None, Field(description="default 1 (with kernel: the channel count)")
        ] = None,
        method: Annotated[
            Literal["naive", "im2col", "both"],
            Field(
                description="naive loops, im2col + one matmul, or both (compared: max_abs_diff)"
            ),
        ] = "im2col",
        sample: Annotated[
            str | None, Field(description="sample input name (conv://samples, e.g. step) instead of x")
        ] = None,
        show_columns: Annotated[
            bool, Field(description="also the im2col matrix (first image)")
        ] = False,
        image: Annotated[
            bool, Field(description="also a PNG of input, kernel, output")
        ] = False,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, Conv2dResult]:
        """Convolve x with a weight (or a named kernel such as sobel_x) exactly as torch.nn.functional.conv2d, in NumPy; optionally the im2col matrix and a picture."""
        from skills.conv import conv2d_job, conv_geometry, im2col
        from skills.picture import render

        # reading a big nested list takes a while: off the event loop too
        arr, was_2d, w, g = await anyio.to_thread.run_sync(_inputs, x, sample, weight, kernel, groups)
        geom = conv_geometry(arr.shape, w.shape, stride, padding, dilation, g, padding_mode)
        runs = ["naive", "im2col"] if method == "both" else [method]
        _check_work(
            geom,
            geom.macs * len(runs),
            f"conv2d {_shape_text(arr.shape)} * {_shape_text(w.shape)}"
            + (" twice (method both)" if len(runs) > 1 else ""),
        )
        jobs = await anyio.to_thread.run_sync(
            lambda: [conv2d_job(arr, w, bias, stride, padding, dilation, g, padding_mode, m) for m in runs]
        )
        total = sum(j.total for j in jobs)
        outs, done = [], 0
        for m, job in zip(runs, jobs, strict=True):
            outs.append(await _run(job, ctx, f"conv2d ({m})", done, total))
            done += job.total
        out = outs[-1]
        notes = []
        max_abs_diff = None
        if len(outs) == 2:
            import numpy as np

            a, b = outs
            with np.errstate(all="ignore"):  # inf - inf where the output overflowed: equal infinities agree
                same = (a == b) | (np.isnan(a) & np.isnan(b))
                max_abs_diff = float(np.max(np.where(same, 0.0, np.abs(a - b))))
        if was_2d and geom.c_out == 1:
            out = out[0]
        output, summary = await anyio.to_thread.run_sync(_inline, out, "output")
        columns = columns_shape = None
        if show_columns:
            first = arr[0] if arr.ndim == 4 else arr
            rows, length = geom.column_rows, geom.h_out * geom.w_out
            columns_shape = [rows, length]
            if rows * length > LIMITS.max_output_elements_inline:
                notes.append(
                    f"columns not shown: the im2col matrix is {rows} x {length} = {rows * length:,} elements, more than "
                    f"max_output_elements_inline={LIMITS.max_output_elements_inline:,}; try a smaller input"
                )
            else:
                columns = im2col(first, (geom.kh, geom.kw), stride, padding, dilation, padding_mode).tolist()
                notes.append(
                    "columns: row (c*kH + i)*kW + j holds input channel c at kernel offset (i, j); column r*W_out + s is output "
                    "pixel (r, s); output = weight.reshape(C_out, -1) @ columns"
                    + (f", one block of C_in/groups*kH*kW rows per group ({g} groups)" if g > 1 else "")
                )
        result = Conv2dResult(
            output=output,
            output_shape=list(out.shape),
            method=method,
            max_abs_diff=max_abs_diff,
            summary=summary,
            kernel=kernel,
            sample=sample,
            weight_shape=list(w.shape),
            groups=g,
            stride=list(geom.stride),
            padding=[[geom.pad_before[0], geom.pad_after[0]], [geom.pad_before[1], geom.pad_after[1]]],
            padding_mode=padding_mode,
            dilation=list(geom.dilation),
            macs=geom.macs,
            columns=columns,
            columns_shape=columns_shape,
            notes=notes,
        )
        text = f"output_shape = {_shape_text(out.shape)} ({method}, {geom.macs:,} MACs)"
        if max_abs_diff is not None:
            text += f"; max_abs_diff naive vs im2col = {max_abs_diff:.3g}"
        if out.size <= TEXT_VALUES:
            text += "\n" + grid_text("output", out)
        elif output is not None:
            text += f"\noutput: {out.size:,} values, more than the text shows ({TEXT_VALUES:,}); all of them are in the structured content's output"
        elif summary is not None:
            text += (
                f"\n{summary.note}; min {summary.min:.6g}, max {summary.max:.6g}, mean {summary.mean:.6g}, std {summary.std:.6g}"
                if summary.min is not None
                else f"\n{summary.note}"
            )
        content: list[Any] = [TextContent(type="text", text=text)]
        if image:
            title = f"conv2d {kernel or 'weight ' + _shape_text(w.shape)} stride {list(geom.stride)} padding {padding} {padding_mode}"
            png = await anyio.to_thread.run_sync(render, arr, w, outs[-1], title)
            content.append(_image_block(png))
        return CallToolResult(content=content, structured_content=result.model_dump(mode="json"))

    @server.tool(name="conv2d_backward", title="Gradients of a 2-D convolution (col2im)", annotations=READ_ONLY)
    @domain_errors
    async def conv2d_backward_tool(
        x: Annotated[
            NestedList | None,
            Field(description="input [H, W], [C, H, W] or [N, C, H, W] (or sample)"),
        ] = None,
        weight: Annotated[
            NestedList | None, Field(description="[C_out, C_in/groups, kH, kW] (or kernel)")
        ] = None,
        kernel: Annotated[
            str | None,
            Field(description="kernel bank name instead of weight (per channel)"),
        ] = None,
        bias: Annotated[NestedList | None, Field(description="[C_out]; gives grad_bias")] = None,
        stride: Annotated[IntOrPair, Field(description="S or [sH, sW]")] = 1,
        padding: Annotated[PaddingArg, Field(description="zero padding: P, [pH, pW], 'same' or 'valid'")] = 0,
        dilation: Annotated[IntOrPair, Field(description="D or [dH, dW]")] = 1,
        groups: Annotated[
            Count | None, Field(description="default 1 (with kernel: the channel count)")
        ] = None,
        grad_output: Annotated[
            NestedList | None,
            Field(description="dL/doutput, output-shaped; default ones (grad of sum(output))"),
        ] = None,
        sample: Annotated[
            str | None, Field(description="sample input name (conv://samples, e.g. step) instead of x")
        ] = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, Conv2dBackwardResult]:
        """Gradients of conv2d (zero padding) with respect to x, weight and bias, as torch autograd gives them (grad_input by col2im)."""
        from skills.conv import as_array, conv2d_backward_job, conv_geometry

        # reading a big nested list takes a while: off the event loop too
        arr, was_2d, w, g = await anyio.to_thread.run_sync(_inputs, x, sample, weight, kernel, groups)
        geom = conv_geometry(arr.shape, w.shape, stride, padding, dilation, g)
        _check_work(
            geom, 2 * geom.macs, f"conv2d_backward {_shape_text(arr.shape)} * {_shape_text(w.shape)} (2 x forward)"
        )
        go = None
        if grad_output is not None:
            go = await anyio.to_thread.run_sync(as_array, grad_output, "grad_output", (2, 3, 4))
            _check_elements(go, "grad_output")
            if was_2d and geom.c_out == 1 and go.ndim == 2:
                go = go[None]  # the output of an [H, W] x with one channel is [H_out, W_out]
        job = await anyio.to_thread.run_sync(conv2d_backward_job, arr, w, go, bias, stride, padding, dilation, g)
        gi, gw, gb = await _run(job, ctx, "conv2d_backward")
        if was_2d:
            gi = gi[0]
        out_shape = list(geom.output_shape)
        if was_2d and geom.c_out == 1:
            out_shape = out_shape[1:]
        summaries = {}
        gi_list, s = await anyio.to_thread.run_sync(_inline, gi, "grad_input")
        if s:
            summaries["grad_input"] = s
        gw_list, s = await anyio.to_thread.run_sync(_inline, gw, "grad_weight")
        if s:
            summaries["grad_weight"] = s
        result = Conv2dBackwardResult(
            grad_input=gi_list,
            grad_weight=gw_list,
            grad_bias=None if gb is None else gb.tolist(),
            grad_input_shape=list(gi.shape),
            grad_weight_shape=list(gw.shape),
            output_shape=out_shape,
            grad_output="ones" if grad_output is None else "given",
            summaries=summaries,
            kernel=kernel,
            sample=sample,
            macs=2 * geom.macs,
        )
        text = f"grad_input {_shape_text(gi.shape)}, grad_weight {_shape_text(gw.shape)}" + (
            "" if gb is None else f", grad_bias [{gb.size}]"
        )
        text += f" (grad_output {'given' if grad_output is not None else 'ones'}, {2 * geom.macs:,} MACs)"
        if summaries:
            text += "; summarised: " + ", ".join(summaries)
        for name, arr in (("grad_input", gi), ("grad_weight", gw), ("grad_bias", gb)):
            if arr is None:
                continue
            if arr.size <= TEXT_VALUES:
                text += "\n" + grid_text(name, arr)
            else:
                where = "a summary in the structured content's summaries" if name in summaries else "all of them in the structured content"
                text += f"\n{name}: {arr.size:,} values, more than the text shows ({TEXT_VALUES:,}); {where}"
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
        )

    @server.resource(
        "conv://kernels",
        name="kernel-bank",
        title="Kernel bank",
        description="Every named kernel for conv2d's `kernel` argument, with a one-line description and its values (JSON).",
        mime_type="application/json",
    )
    def kernel_bank() -> str:
        return json.dumps(
            {
                "note": "a named kernel is applied to each input channel on its own (depthwise: weight [C, 1, kH, kW], groups = C)",
                "kernels": [k.as_dict() for k in KERNELS.values()],
            }
        )

    @server.resource(
        KERNEL_TEMPLATE,
        name="kernel",
        title="One kernel of the bank",
        description="One named kernel: description, shape and values (JSON).",
        mime_type="application/json",
    )
    def kernel_entry(name: str) -> str:
        try:
            return json.dumps(kernel(name).as_dict())
        except ArrayError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    @server.resource(
        "conv://samples",
        name="samples",
        title="Sample inputs",
        description="Named sample inputs [C, H, W] for conv2d's `sample` argument (the lesson's step image, a checkerboard, ...), JSON.",
        mime_type="application/json",
    )
    def samples() -> str:
        return json.dumps({"samples": [s.as_dict() for s in SAMPLES.values()]})

    @server.resource(
        SAMPLE_TEMPLATE,
        name="sample",
        title="One sample input",
        description="One named sample input: description, shape and values (JSON).",
        mime_type="application/json",
    )
    def sample_entry(name: str) -> str:
        try:
            return json.dumps(sample(name).as_dict())
        except ArrayError as exc:
            raise ResourceNotFoundError(str(exc)) from None
