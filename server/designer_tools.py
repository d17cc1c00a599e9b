"""Tool design_architecture: a thin async adapter over skills.designer.

The search runs in a worker thread; the event loop reports its progress to the client every few tenths of a
second, and a cancelled call sets the flag the search polls, so the thread stops within milliseconds.
"""

import threading
from typing import Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from skills.designer import DesignReport, design_architecture
from skills.errors import LimitError

from .errors import domain_errors
from .limits import LIMITS, Limits
from .results import READ_ONLY, structured

PROGRESS_EVERY_S = 0.25
DEFAULT_TIME_LIMIT_S = 10.0

Dim = Annotated[int, Field(ge=1, le=1_000_000)]
Px = Annotated[int, Field(ge=1, le=1_000_000_000)]
PxOrPair = Px | Annotated[list[Px], Field(min_length=1, max_length=2)]
SmallList = Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=1, max_length=16)]
Amount = Annotated[int, Field(ge=1, le=10**24)]


def _table(report: DesignReport) -> str:
    """The best design as a markdown table, then one line per runner-up."""
    if not report.designs:
        return "no design found"
    best = report.designs[0]
    head = (
        f"Best of {len(report.designs)} ({'proven optimal' if report.optimal else 'NOT proven: ' + str(report.stopped_by)}, "
        f"{report.explored:,} states, {report.elapsed_s:.2f} s): {best.params:,} params, {best.macs:,} MACs, "
        f"{best.activation_bytes:,} activation bytes, RF {best.receptive_field[0]} px, output {best.output_shape}\n"
        f"Objective: {report.objective_statement}."
    )
    rows = [
        "| # | kernel | stride | dilation | padding | out_channels | output | RF | conv params | why |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in best.convs:
        rows.append(
            f"| {c.index} | {c.kernel_size} | {c.stride} | {c.dilation} | {c.padding} | {c.out_channels} | "
            f"{'x'.join(map(str, c.output_shape))} | {c.receptive_field[0]} | {c.params:,} | {c.why} |"
        )
    rest = [
        f"#{d.rank}: {d.params:,} params, {d.macs:,} MACs, {d.depth} convs, RF {d.receptive_field[0]}: {d.summary}"
        for d in report.designs[1:]
    ]
    front = (
        [f"Pareto front (params, MACs, depth){'' if report.pareto_complete else ', partial'}: "
         + "; ".join(f"({p.params:,}, {p.macs:,}, {p.depth})" for p in report.pareto_front)]
        if report.pareto_front
        else []
    )
    return "\n".join([head, "", *rows, *best.warnings, "", *rest, *front, *report.notes])


def register(server: MCPServer) -> None:
    """Add the design_architecture tool to `server`."""

    @server.tool(name="design_architecture", title="Provably best conv stack under a parameter budget", annotations=READ_ONLY)
    @domain_errors
    async def design_architecture_tool(
        input_shape: Annotated[list[Dim], Field(min_length=3, max_length=4, description="[C, H, W] or [N, C, H, W]")],
        param_budget: Annotated[int, Field(ge=1, le=10**15, description="max trainable params")],
        target_receptive_field: Annotated[PxOrPair, Field(description="min receptive field, px: R or [h, w]")],
        ctx: Context,
        output_size: Annotated[PxOrPair | None, Field(description="exact final spatial size")] = None,
        max_layers: Annotated[int, Field(ge=1, le=32, description="max convs")] = 8,
        kernel_sizes: Annotated[SmallList, Field(description="kernel sizes to try")] = [3, 5, 7],  # noqa: B006
        strides: Annotated[SmallList, Field(description="strides to try")] = [1, 2],  # noqa: B006
        dilations: Annotated[SmallList, Field(description="dilations to try")] = [1],  # noqa: B006
        widths: Annotated[SmallList, Field(description="out_channels to try")] = [16, 32, 64, 128],  # noqa: B006
        objective: Annotated[
            Literal["params", "macs", "layers", "capacity"],
            Field(description="least params, macs or layers (ties: fewer layers, then MACs); capacity: most params within the budget (ties: fewer MACs)"),
        ] = "params",
        top_k: Annotated[int, Field(ge=1, le=50, description="designs to return, best first")] = 3,
        time_limit_s: Annotated[
            float | None,
            Field(gt=0, description=f"stop with the best so far after this long (default {DEFAULT_TIME_LIMIT_S:g} s)"),
        ] = None,
        batch_norm: Annotated[bool, Field(description="BatchNorm2d after each conv")] = False,
        activation: Annotated[Literal["relu", "none"], Field(description="ReLU after each conv in the returned spec")] = "relu",
        monotone_widths: Annotated[bool, Field(description="widths never shrink")] = False,
        reject_gridding: Annotated[
            bool, Field(description="no holes in the receptive field (dilation gridding)")
        ] = False,
        reject_redundant: Annotated[
            bool, Field(description="no layer whose input already sees the whole image")
        ] = False,
        pareto_front: Annotated[bool, Field(description="also the params/MACs/depth Pareto front")] = True,
        max_macs: Annotated[Amount | None, Field(description="max MACs")] = None,
        max_activation_bytes: Annotated[
            Amount | None, Field(description="max total_activation_bytes of the design's spec (float32)")
        ] = None,
        min_output_size: Annotated[
            PxOrPair | None, Field(description="min output size of every conv (no collapse to 1x1)")
        ] = None,
    ) -> Annotated[CallToolResult, DesignReport]:
        """The provably best Conv2d stacks (kernel, stride, dilation, width per layer; padding (k-1)*d//2) for an input shape, a param budget and a target receptive field, by exact search; each design is a `layers` spec for shape_calculator."""
        if time_limit_s is None:
            time_limit_s = min(DEFAULT_TIME_LIMIT_S, LIMITS.max_design_time_s)
        elif time_limit_s > LIMITS.max_design_time_s:
            raise ToolError(
                f"time_limit_s={time_limit_s:g} is more than the server's max_design_time_s={LIMITS.max_design_time_s:g}; "
                f"ask for at most {LIMITS.max_design_time_s:g} s, or {Limits.how_to_raise('max_design_time_s')}"
            )
        stop = threading.Event()
        seen: dict = {"done": 0, "sent": 0, "message": "starting the search"}  # sent: the last progress reported

        def progress(done: int, total: int | None, message: str) -> None:
            seen.update(done=done, message=message)

        def work():
            try:
                return design_architecture(
                    input_shape, param_budget, target_receptive_field, output_size, max_layers=max_layers,
                    kernel_sizes=kernel_sizes, strides=strides, dilations=dilations, widths=widths, objective=objective,
                    top_k=top_k, time_limit_s=time_limit_s, batch_norm=batch_norm, activation=activation,
                    monotone_widths=monotone_widths, reject_gridding=reject_gridding, reject_redundant=reject_redundant,
                    max_states=LIMITS.max_design_states, pareto=pareto_front, progress=progress, should_stop=stop.is_set,
                    max_macs=max_macs, max_activation_bytes=max_activation_bytes, min_output_size=min_output_size,
                )
            except Exception as exc:  # handed to the event loop, raised there
                return exc

        await ctx.report_progress(0, None, "searching")
        try:
            outcome = None
            async with anyio.create_task_group() as tg:

                async def report() -> None:
                    while True:
                        await anyio.sleep(PROGRESS_EVERY_S)
                        if seen["done"] > seen["sent"]:
                            seen["sent"] = seen["done"]
                            await ctx.report_progress(seen["sent"], None, seen["message"])

                tg.start_soon(report)
                outcome = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
                tg.cancel_scope.cancel()
        finally:
            stop.set()  # a cancelled call: the search thread sees the flag at its next check and ends
        if isinstance(outcome, LimitError):
            raise LimitError(
                f"{outcome}; the server allows max_design_states={LIMITS.max_design_states:,} "
                f"({Limits.how_to_raise('max_design_states')}) and max_design_time_s={LIMITS.max_design_time_s:g} "
                f"({Limits.how_to_raise('max_design_time_s')})"
            )
        if isinstance(outcome, BaseException):
            raise outcome
        report_ = outcome
        if report_.stopped_by == "max_states":
            report_.notes.append(
                f"the search hit max_design_states={LIMITS.max_design_states:,}; {Limits.how_to_raise('max_design_states')}"
            )
        if report_.explored > seen["sent"]:  # progress must increase: a search that ended on a report has said it
            await ctx.report_progress(
                report_.explored, report_.explored, f"done: {len(report_.designs)} designs, optimal={report_.optimal}"
            )
        return structured(report_, _table(report_))
