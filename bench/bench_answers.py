"""What an answer costs a client: bytes of the tool list and of each walk answer, this server against the previous
revision's (same run), and shape_calculator(VGG16) over stdio against the bare constant-tool floor.

Run: python bench/bench_answers.py [--calls 300] [--before REV]
The previous revision (default: the commit before the answers were made smaller) is extracted with `git archive`
and served from its own folder (`python -m server` there imports its own packages), beside this checkout's server
and bench/bare_server.py (an MCPServer with one constant tool: the transport's floor). Calls alternate between the
live sessions, so machine noise hits all alike; the ratios are the figures.
Targets: the tool list <= 15 KB; ResNet-50's default structured content <= 20 KB; VGG16 p50 <= 1.3x the floor.
"""

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skills import zoo  # noqa: E402

BEFORE = "b3c474a"  # main when the answers were measured at 42.6 KB of tool list and 48.9 KB for ResNet-50
NETS = {"VGG16": zoo.vgg16(), "ResNet-50": zoo.resnet50(), "MobileNetV2": zoo.mobilenet_v2()}


def previous(rev: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="answers-before-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "server", "skills", "prompts"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


def size(value) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def answer_bytes(result) -> tuple[int, int]:
    text = sum(len(c.text) for c in result.content if getattr(c, "type", "") == "text")
    return text, size(result.structured_content) if result.structured_content is not None else 0


async def tool_list_bytes(client) -> int:
    tools = (await client.list_tools()).tools
    return sum(size(t.model_dump(mode="json", by_alias=True, exclude_none=True)) for t in tools)


async def measure_bytes(before: Path) -> None:
    servers = {
        "before": StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(before)),
        "now": StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(ROOT)),
    }
    rows = []
    async with AsyncExitStack() as stack:
        clients = {k: await stack.enter_async_context(Client(v)) for k, v in servers.items()}
        lists = {k: await tool_list_bytes(c) for k, c in clients.items()}
        print(f"tool list: before {lists['before']:,} B, now {lists['now']:,} B (x{lists['now'] / lists['before']:.2f}; target <= 15,000)")
        for name, layers in NETS.items():
            for tool, extra in (("shape_calculator", {}), ("receptive_field", {}), ("parameter_count", {})):
                args = {"input_shape": [3, 224, 224], "layers": layers, **extra}
                old = answer_bytes(await clients["before"].call_tool(tool, args))
                new = answer_bytes(await clients["now"].call_tool(tool, args))
                cells = [f"{name} {tool}", f"{old[0]:,}", f"{old[1]:,}", f"{new[0]:,}", f"{new[1]:,}", f"{(new[1] or 1) / (old[1] or 1):.2f}"]
                for detail in ("summary", "full"):
                    r = await clients["now"].call_tool(tool, {**args, "detail": detail})
                    cells.append(f"{answer_bytes(r)[1]:,}" if not r.is_error else "-")
                rows.append(cells)
    print(table(["answer", "text before", "structured before", "text now", "structured now (default)", "ratio",
                 "now summary", "now full"], rows))


async def latency(calls: int, before: Path) -> None:
    vgg = {"input_shape": [3, 224, 224], "layers": NETS["VGG16"]}
    targets = {
        "bare constant tool (floor)": (StdioServerParameters(command=sys.executable, args=[str(ROOT / "bench" / "bare_server.py")], cwd=str(ROOT)), "constant", {}),
        "shape_calculator VGG16, now": (StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(ROOT)), "shape_calculator", vgg),
        "shape_calculator VGG16, before": (StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(before)), "shape_calculator", vgg),
        "conv_output_size, now": (StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(ROOT)), "conv_output_size", {"input_size": 224, "kernel_size": 3}),
    }
    samples: dict[str, list[float]] = {k: [] for k in targets}
    async with AsyncExitStack() as stack:
        clients = {k: await stack.enter_async_context(Client(p)) for k, (p, _, _) in targets.items()}
        for _ in range(20):
            for k, (_, tool, args) in targets.items():
                await clients[k].call_tool(tool, args)
        for _ in range(calls):
            for k, (_, tool, args) in targets.items():
                start = time.perf_counter()
                result = await clients[k].call_tool(tool, args)
                samples[k].append(time.perf_counter() - start)
                assert not result.is_error, result
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    floor = p50["bare constant tool (floor)"]
    print(f"\nOver stdio, {calls} calls each, alternating between live sessions, p50:")
    print(table(["call", "p50 ms", "x floor"], [[k, f"{v * 1e3:.3f}", f"{v / floor:.2f}"] for k, v in p50.items()]))
    print("target: shape_calculator VGG16 now <= 1.3x the floor")


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="stdio calls per target (alternating)")
    parser.add_argument("--before", default=BEFORE, help=f"git revision to compare with (default {BEFORE})")
    args = parser.parse_args()
    before = previous(args.before)
    anyio.run(measure_bytes, before)
    anyio.run(latency, args.calls, before)


if __name__ == "__main__":
    main()
