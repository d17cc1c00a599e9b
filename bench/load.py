"""Bounded loopback load test: many concurrent HTTP clients, one long stdio session, and the in-memory reference.

    python bench/load.py [--clients 16] [--calls 200] [--stdio-calls 10000] [--max-seconds 600]

Phases, one after the other (never two at once, so they do not share the 2 cores):
  1. in-memory: the same calls through Client(build_server()) in this process: no transport, the reference.
  2. http: `python -m server --transport http` on 127.0.0.1, CLIENTS concurrent sessions x CALLS calls each.
  3. http stateless: the same with --stateless --json-response (the scale-out deployment).
  4. stdio: `python -m server` with one session making STDIO_CALLS calls in sequence.
The calls cycle through conv_output_size (conv, pool, transpose) and, when the build has them, a small conv2d and
a shape_calculator walk. A call counts as an error when it raises or returns isError. The server's resident memory
(VmRSS from /proc/PID/status) is read after a warm-up of WARMUP calls and again at the end; growth over the run is
what a leak would show (HTTP warms up with all clients at once). Server processes run with OMP/OPENBLAS/MKL_NUM_THREADS=1; only loopback is used.
"""

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WARMUP = 50


def call_mix(tools: set[str]) -> list[tuple[str, dict]]:
    """The cycle of calls a client makes; every one must succeed."""
    calls = [
        ("conv_output_size", {"input_size": [224, 224], "kernel_size": 7, "stride": 2, "padding": 3}),
        (
            "conv_output_size",
            {"input_size": 5, "kernel_size": 2, "stride": 2, "padding": 1, "kind": "pool", "ceil_mode": True},
        ),
        ("conv_output_size", {"input_size": 7, "kernel_size": 4, "stride": 2, "padding": 1, "kind": "transpose"}),
    ]
    if "conv2d" in tools:
        calls.append(
            ("conv2d", {"x": [[float((i * 5 + j) % 7) for j in range(8)] for i in range(8)], "kernel": "sobel_x"})
        )
    if "shape_calculator" in tools:
        layers = [
            {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ]
        calls.append(("shape_calculator", {"input_shape": [3, 32, 32], "layers": layers}))
    return calls


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []

    async def timed(self, client: Client, name: str, args: dict) -> None:
        start = time.perf_counter()
        try:
            result = await client.call_tool(name, args)
            if result.is_error:
                self.errors.append(f"{name}: {result.content[0].text[:200]}")
        except Exception as exc:  # a transport failure is an error of the run, not of the bench
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
        self.latencies.append(time.perf_counter() - start)


async def list_tool_names(target) -> set[str]:
    async with Client(target) as client:
        return {t.name for t in (await client.list_tools()).tools}


async def session_calls(target, calls, n: int, stats: Stats, offset: int = 0) -> None:
    async with Client(target) as client:
        for i in range(n):
            name, args = calls[(offset + i) % len(calls)]
            await stats.timed(client, name, args)


def start_http(*flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **SINGLE_THREAD},
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx2.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, f"{base}/mcp"
        except httpx2.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not answer /health within 60 s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def http_phase(url: str, pid: int, clients: int, calls_each: int, tools: set[str]) -> dict:
    calls = call_mix(tools)
    async with anyio.create_task_group() as tg:  # warm up at full concurrency: the peak working set is not a leak
        for c in range(clients):
            tg.start_soon(session_calls, url, calls, WARMUP, Stats(), c)
    before = rss_mb(pid)
    stats = Stats()
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for c in range(clients):
            tg.start_soon(session_calls, url, calls, calls_each, stats, c)
    wall = time.perf_counter() - start
    return row(f"http x{clients} clients", stats, wall, before, rss_mb(pid))


async def stdio_phase(n: int) -> dict:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "server"], env={**os.environ, **SINGLE_THREAD}, cwd=str(ROOT)
    )
    stats = Stats()
    async with Client(params) as client:
        pid = _child_pid()
        tools = {t.name for t in (await client.list_tools()).tools}
        calls = call_mix(tools)
        for i in range(WARMUP):
            await stats.timed(client, *calls[i % len(calls)])
        before = rss_mb(pid)
        stats = Stats()
        start = time.perf_counter()
        for i in range(n):
            await stats.timed(client, *calls[i % len(calls)])
        wall = time.perf_counter() - start
        after = rss_mb(pid)
    return row("stdio, 1 session", stats, wall, before, after)


async def memory_phase(n: int) -> dict:
    from server.app import build_server

    server = build_server()
    logging.getLogger().setLevel(logging.WARNING)  # the SDK turns on INFO logging (one line per HTTP request)
    tools = await list_tool_names(server)
    calls = call_mix(tools)
    await session_calls(server, calls, WARMUP, Stats())
    pid = os.getpid()
    before = rss_mb(pid)
    stats = Stats()
    start = time.perf_counter()
    await session_calls(server, calls, n, stats)
    return row("in-memory (reference)", stats, time.perf_counter() - start, before, rss_mb(pid))


def _child_pid() -> int:
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if parent == me and b"server" in cmdline:
                return int(entry)
    raise SystemExit("stdio server process not found")


def row(label: str, stats: Stats, wall: float, before: float, after: float) -> dict:
    lat = sorted(stats.latencies)
    return {
        "phase": label,
        "calls": len(lat),
        "errors": len(stats.errors),
        "p50 ms": statistics.median(lat) * 1000,
        "p99 ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "calls/s": len(lat) / wall,
        "RSS before MB": before,
        "RSS after MB": after,
        "growth MB": after - before,
        "first_error": stats.errors[0] if stats.errors else "",
    }


def print_table(rows: list[dict]) -> None:
    cols = ["phase", "calls", "errors", "p50 ms", "p99 ms", "calls/s", "RSS before MB", "RSS after MB", "growth MB"]
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) if c == "phase" else c.rjust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(widths[c]) if c == "phase" else _fmt(r[c]).rjust(widths[c]) for c in cols))
    for r in rows:
        if r["first_error"]:
            print(f"first error in {r['phase']}: {r['first_error']}")


def _fmt(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


async def main(args: argparse.Namespace) -> int:
    rows = []
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with anyio.fail_after(args.max_seconds):
        rows.append(await memory_phase(args.clients * args.calls))
        for label, flags in (("http", ()), ("http stateless", ("--stateless", "--json-response"))):
            proc, url = start_http(*flags)
            try:
                tools = await list_tool_names(url)
                r = await http_phase(url, proc.pid, args.clients, args.calls, tools)
                r["phase"] = f"{label} x{args.clients} clients"
                rows.append(r)
            finally:
                stop(proc)
        rows.append(await stdio_phase(args.stdio_calls))
    print(
        f"load test, loopback only; {args.clients} HTTP clients x {args.calls} calls, {args.stdio_calls} stdio calls; "
        f"RSS after a warm-up of {WARMUP} calls per client and at the end; servers single-threaded (OMP/BLAS threads = 1)"
    )
    print(
        f"load average before/after: {load_before} / {Path('/proc/loadavg').read_text().split()[:3]} on {os.cpu_count()} CPUs"
    )
    print_table(rows)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=200, help="calls per HTTP client")
    parser.add_argument("--stdio-calls", type=int, default=10_000)
    parser.add_argument("--max-seconds", type=float, default=900, help="the whole run is cancelled after this")
    sys.exit(anyio.run(main, parser.parse_args()))
