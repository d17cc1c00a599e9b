"""Cold start and per-call latency over stdio: this server against a bare MCPServer with one constant tool.

Run: python bench/bench_startup.py [--starts 10] [--calls 300]
Both servers run in the same run, alternating (starts one after the other, calls interleaved between two live
sessions), so machine noise hits both alike; the ratios are the figures.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

HERE = Path(__file__).resolve().parent
OURS = (StdioServerParameters(command=sys.executable, args=["-m", "server"], cwd=str(HERE.parent)), "conv_output_size",
        {"input_size": [224, 224], "kernel_size": 7, "stride": 2, "padding": 3})
BARE = (StdioServerParameters(command=sys.executable, args=[str(HERE / "bare_server.py")], cwd=str(HERE.parent)), "constant", {})


async def cold_start(target) -> float:
    """Seconds from spawning the process to the first tool result."""
    params, tool, args = target
    start = time.perf_counter()
    async with Client(params) as client:
        result = await client.call_tool(tool, args)
        elapsed = time.perf_counter() - start
    assert not result.is_error, result
    return elapsed


async def call_latencies(targets, calls: int) -> list[list[float]]:
    """Per-call seconds for each target, calls alternating between the live sessions so noise hits all alike."""
    from contextlib import AsyncExitStack

    out: list[list[float]] = [[] for _ in targets]
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(params)) for params, _, _ in targets]
        for client, (_, tool, args) in zip(clients, targets, strict=True):
            for _ in range(20):  # warm-up
                await client.call_tool(tool, args)
        for _ in range(calls):
            for i, (client, (_, tool, args)) in enumerate(zip(clients, targets, strict=True)):
                start = time.perf_counter()
                result = await client.call_tool(tool, args)
                out[i].append(time.perf_counter() - start)
                assert not result.is_error
    return out


async def main(starts: int, calls: int) -> None:
    ours_start, bare_start = [], []
    for _ in range(starts):
        bare_start.append(await cold_start(BARE))
        ours_start.append(await cold_start(OURS))
    ours_calls, bare_calls = await call_latencies([OURS, BARE], calls)

    def ms(values):
        return statistics.median(values) * 1000

    rows = [
        ("cold start, spawn to first result (median)", ms(ours_start), ms(bare_start), 1.2),
        ("call p50 over stdio", ms(ours_calls), ms(bare_calls), 1.2),
    ]
    print(f"{'measure':46s} {'ours ms':>9s} {'bare ms':>9s} {'ratio':>6s} {'target':>7s}")
    for name, ours, bare, target in rows:
        print(f"{name:46s} {ours:9.2f} {bare:9.2f} {ours / bare:6.2f} {'<=' + str(target):>7s}")
    p99 = lambda v: sorted(v)[int(len(v) * 0.99)] * 1000  # noqa: E731
    print(f"(call p99: ours {p99(ours_calls):.2f} ms, bare {p99(bare_calls):.2f} ms; {starts} starts alternating, {calls} calls each alternating)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    anyio.run(main, args.starts, args.calls)
