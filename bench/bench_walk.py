"""The network walk's cost: against the previous engine on reference nets (same run, interleaved), graph specs at
1,000 / 10,000 / 100,000 nodes, layer stacks by depth, and shape_calculator on VGG16 over stdio against
conv_output_size in the same server and run.

Run: python bench/bench_walk.py [--repeats 20] [--calls 300] [--baseline REV]
Pure Python on both sides (no numpy or torch is imported), so thread settings do not matter here.
Targets: the 2-D walk no slower than the previous engine (REV, default the commit before the engine was split
into skills/rf.py, layers.py, reports.py; its skills package is extracted with `git archive` and imported beside
this one); a 10,000-node graph under 200 ms, time linear in nodes; 1,000 layers under 20 ms; VGG16 p50 within
1.3x of conv_output_size's p50 over stdio.

A payload-floor stdio phase measures the payload's own cost: this script, started with --canned-server, serves the
same tools the way `python -m server` does (server.__main__.serve_stdio) plus `canned_vgg16`, which takes
shape_calculator's VGG16 arguments and returns its result computed once (same text and structured content,
validated by the SDK against ShapeReport as the real tool's is). canned_vgg16 / conv_output_size is then the ratio
with no walk at all: the part of the VGG16 call that transport, JSON and the SDK's validation cost.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skills import zoo  # noqa: E402
from skills.reports import ABSENT_WHEN_NONE  # noqa: E402
from skills.walk import ShapeReport, parameter_count, receptive_field, report_json, shape_calculator  # noqa: E402

SERVER = StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(ROOT))
CANNED = StdioServerParameters(command=sys.executable, args=[str(Path(__file__).resolve()), "--canned-server"], cwd=str(ROOT))
VGG16_ARGS = {"input_shape": [3, 224, 224], "layers": zoo.vgg16()}
CONV_ARGS = {"input_size": [224, 224], "kernel_size": 3, "stride": 1, "padding": 1}


BASELINE = "b3c474a"  # the last commit with the single-module 2-D walk


def previous_engine(rev: str):
    """The skills package at git revision `rev`, imported as `skills_before` beside this one."""
    import importlib
    import subprocess
    import tarfile
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="walk-before-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "skills"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "skills").rename(root / "skills_before")
    sys.path.insert(0, str(root))
    return importlib.import_module("skills_before.walk")


def timed(call, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def against_previous(repeats: int, rev: str) -> list[list[str]]:
    """This engine and the previous one on the same nets, interleaved call by call so machine noise hits both."""
    before = previous_engine(rev)
    nets = {
        "lesson exercise (4 convs) [1, 128, 128]": ([1, 128, 128], zoo.lesson_exercise()),
        "VGG16 [3, 224, 224]": ([3, 224, 224], zoo.vgg16()),
        "ResNet-50 [3, 224, 224]": ([3, 224, 224], zoo.resnet50()),
        "MobileNetV2 [3, 224, 224]": ([3, 224, 224], zoo.mobilenet_v2()),
    }
    rows = []
    for name, (shape, layers) in nets.items():
        calls = {
            "previous": lambda shape=shape, layers=layers: before.shape_calculator(shape, layers),
            "walk": lambda shape=shape, layers=layers: shape_calculator(shape, layers, memory=False),  # the same answer the previous engine gave
            "walk + memory": lambda shape=shape, layers=layers: shape_calculator(shape, layers),  # the default: the memory block added (issue 13)
        }
        assert calls["walk"]().total_params == calls["previous"]().total_params
        samples: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(5):
            for call in calls.values():
                call()
        for _ in range(repeats * 5):
            for k, call in calls.items():
                start = time.perf_counter()
                call()
                samples[k].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in samples.items()}
        low = {k: min(v) for k, v in samples.items()}
        o = med["previous"]
        rows.append([name, f"{o * 1e3:.3f}", f"{med['walk'] * 1e3:.3f}", f"{med['walk'] / o:.2f}",
                     f"{low['walk'] / low['previous']:.2f}", f"{med['walk + memory'] * 1e3:.3f}", f"{med['walk + memory'] / o:.2f}"])
    return rows


def residual_graph(nodes: int, channels: int = 8) -> list[dict]:
    """A graph of `nodes` nodes: conv3x3 -> relu -> add(skip), repeated (a ResNet-like DAG with one merge per block)."""
    out: list[dict] = []
    prev, i = "input", 0
    while len(out) < nodes:
        out.append({"name": f"c{i}", "inputs": [prev], "type": "conv2d", "out_channels": channels, "kernel_size": 3, "padding": 1})
        out.append({"name": f"r{i}", "inputs": [f"c{i}"], "type": "relu"})
        if prev != "input":
            out.append({"name": f"a{i}", "inputs": [f"r{i}", prev], "type": "add"})
            prev = f"a{i}"
        else:
            prev = f"r{i}"
        i += 1
    return out[:nodes]


def graphs(repeats: int) -> list[list[str]]:
    rows = []
    for n in (1_000, 10_000, 100_000):
        g = residual_graph(n)
        call = lambda g=g: shape_calculator([8, 64, 64], graph=g, max_layers=200_000)  # noqa: E731
        call()
        med, low = timed(call, max(3, repeats // (5 if n < 100_000 else 10)))
        rows.append([f"{n:,}", f"{med * 1e3:.1f}", f"{low * 1e3:.1f}", f"{med / n * 1e6:.1f}"])
    return rows


def dumped(report: Any) -> dict:
    """report.model_dump(mode="json") less the keys report_json leaves out when they are None."""
    out = report.model_dump(mode="json")
    for key in ("layers", "block_layers"):
        out[key] = [{k: v for k, v in row.items() if not (k in ABSENT_WHEN_NONE and v is None)} for row in out[key]]
    if out.get("completeness") is None:
        out.pop("completeness", None)
    return out


def in_process(repeats: int) -> list[list[str]]:
    rows = []
    for depth in (100, 1_000, 10_000):
        layers = zoo.deep_stack(depth)
        timings = {}
        for name, call in (
            ("shape_calculator", lambda layers=layers: shape_calculator([16, 64, 64], layers)),
            ("receptive_field", lambda layers=layers: receptive_field([16, 64, 64], layers, output_position=[5, 5])),
            ("parameter_count", lambda layers=layers: parameter_count(layers, input_shape=[16, 64, 64])),
        ):
            report = call()  # warm-up, and the server's shortcut for model_dump checked on it
            assert report_json(report) == dumped(report), name
            samples = []
            for _ in range(repeats if depth < 10_000 else max(3, repeats // 5)):
                start = time.perf_counter()
                call()
                samples.append(time.perf_counter() - start)
            timings[name] = statistics.median(samples)
            if name == "shape_calculator":
                fastest = min(samples)
        sc = timings["shape_calculator"]
        rows.append([f"{depth:,}", f"{sc * 1e3:.2f}", f"{fastest * 1e3:.2f}", f"{sc / depth * 1e6:.1f}",
                     f"{timings['receptive_field'] * 1e3:.2f}", f"{timings['parameter_count'] * 1e3:.2f}"])
    return rows


async def over_stdio(calls: int, server: StdioServerParameters, targets: dict[str, tuple[str, dict]]) -> dict[str, float]:
    """p50 seconds per call, the calls alternating in one server so machine noise hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    async with Client(server) as client:
        for _ in range(20):  # warm-up
            for tool, arguments in targets.values():
                await client.call_tool(tool, arguments)
        for _ in range(calls):
            for name, (tool, arguments) in targets.items():
                start = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                samples[name].append(time.perf_counter() - start)
                assert not result.is_error, result
                if "VGG16" in name:
                    assert result.structured_content["total_params"] == 138_357_544, result
    return {name: statistics.median(values) for name, values in samples.items()}


def canned_server() -> None:
    """Serve like `python -m server`, plus canned_vgg16: shape_calculator's VGG16 answer, computed once."""
    from mcp.types import CallToolResult, TextContent

    from server.__main__ import serve_stdio
    from server.app import READ_ONLY, build_server
    from server.walk_tools import shape_text

    report = shape_calculator(**VGG16_ARGS)
    answer = CallToolResult(content=[TextContent(type="text", text=shape_text(report))], structured_content=report_json(report))
    server = build_server()

    @server.tool(name="canned_vgg16", annotations=READ_ONLY)
    async def canned_vgg16(input_shape: list[int], layers: list[Any] | None = None) -> Annotated[CallToolResult, ShapeReport]:
        """shape_calculator's answer for VGG16, computed once: the same payload without the walk."""
        return answer

    anyio.run(serve_stdio, server)


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="in-process repetitions per depth (median reported)")
    parser.add_argument("--calls", type=int, default=300, help="stdio calls per tool (alternating)")
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision of the previous engine (default {BASELINE})")
    parser.add_argument("--parts", default="previous,graphs,depth,stdio", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    if "previous" in parts:
        previous_part(args)
    if "graphs" in parts:
        graphs_part(args)
    if "depth" in parts:
        depth_part(args)
    if "stdio" in parts:
        stdio_part(args)


def previous_part(args) -> None:
    rows = against_previous(args.repeats, args.baseline)
    print(f"shape_calculator, this engine against the previous one ({args.baseline}), interleaved, median ms (and min ratio)")
    print(table(["network", "previous ms", "walk ms", "ratio", "min ratio", "walk + memory block ms", "ratio"], rows))
    print("target: walk ratio <= 1.0 (no slower than before); the default answer adds the memory block (memory=False leaves it out)")
    print()


def graphs_part(args) -> None:
    rows = graphs(args.repeats)
    print("Graph specs (conv3x3 -> relu -> add skip, repeated) on [8, 64, 64], shape_calculator, median ms")
    print(table(["nodes", "ms", "(min)", "us/node"], rows))
    per = [float(r[3]) for r in rows]
    print(f"cost per node 1,000 -> 10,000 -> 100,000: x{per[1] / per[0]:.2f}, x{per[2] / per[1]:.2f} (1.0 = linear); "
          f"10,000 nodes: {rows[1][1]} ms (target < 200 ms)")
    print()


def depth_part(args) -> None:
    rows = in_process(args.repeats)
    print("In-process walk of a conv3x3/ReLU stack on [16, 64, 64] (median ms; JSON dicts in, validated, report out)")
    print(table(["layers", "shape_calculator ms", "(min)", "us/layer", "receptive_field ms", "parameter_count ms"], rows))
    per_layer = [float(r[3]) for r in rows]
    print(f"cost per layer 100 -> 10,000 layers: {per_layer[0]:.1f} -> {per_layer[-1]:.1f} us "
          f"(x{per_layer[-1] / per_layer[0]:.2f}; 1.0 = linear); 1,000 layers: {rows[1][1]} ms (target < 20 ms)")
    print()


def stdio_part(args) -> None:
    conv = ("conv_output_size", CONV_ARGS)
    targets = {
        "conv_output_size (one conv)": conv,
        "shape_calculator, one conv layer": ("shape_calculator", {"input_shape": [3, 224, 224], "layers": zoo.vgg16()[:1]}),
        "shape_calculator, VGG16 as JSON layers": ("shape_calculator", VGG16_ARGS),
        "shape_calculator, VGG16 as paper notation": ("shape_calculator", {"input_shape": [3, 224, 224], "spec": zoo.VGG16_NOTATION}),
    }
    p50 = anyio.run(over_stdio, args.calls, SERVER, targets)
    base = p50["conv_output_size (one conv)"]
    print()
    print(f"Over stdio (python -m server), {args.calls} calls each, alternating in one session, p50:")
    print(table(["call", "p50 ms", "ratio"], [[name, f"{v * 1e3:.3f}", f"{v / base:.2f}"] for name, v in p50.items()]))
    print("target: VGG16 ratio <= 1.3")

    floor = {
        "conv_output_size (one conv)": conv,
        "shape_calculator, VGG16 as JSON layers": ("shape_calculator", VGG16_ARGS),
        "canned_vgg16 (same answer, no walk)": ("canned_vgg16", VGG16_ARGS),
    }
    p50 = anyio.run(over_stdio, args.calls, CANNED, floor)
    base = p50["conv_output_size (one conv)"]
    print()
    print(f"Payload floor (this script as the server, same transport as python -m server), {args.calls} calls each, p50:")
    print(table(["call", "p50 ms", "ratio"], [[name, f"{v * 1e3:.3f}", f"{v / base:.2f}"] for name, v in p50.items()]))
    walk_share = p50["shape_calculator, VGG16 as JSON layers"] - p50["canned_vgg16 (same answer, no walk)"]
    print(f"the walk, its rows and its table: {walk_share * 1e3:.3f} ms of the VGG16 call; the rest is the payload's transport")


if __name__ == "__main__":
    if sys.argv[1:] == ["--canned-server"]:
        canned_server()
    else:
        main()
