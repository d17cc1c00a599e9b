"""Faults on the stdio transport: malformed lines, clients that cancel or vanish mid-call, and a clean stdout.

The server is `python -m server` in a subprocess, as an MCP client launches it. Most tests speak raw JSON-RPC
lines to it so that every byte on its stdout is seen.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters

PROBE = {"name": "conv_output_size", "arguments": {"input_size": 32, "kernel_size": 3}}  # k=3 on 32 px -> 30 px
INIT_PARAMS = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}


class RawSession:
    """`python -m server` driven line by line; every stdout line is kept, stderr goes to a temporary file."""

    def __init__(self, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[bytes] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.next_id = 100

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def send_line(self, line: bytes) -> None:
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_line(json.dumps(message).encode())

    def request(self, method: str, params: dict | None = None) -> int:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        return self.next_id

    def wait_for(self, predicate, timeout: float = 60.0, after: int = 0) -> dict:
        """The first stdout message (parsed) that satisfies predicate, among those after the first `after`."""
        deadline = time.monotonic() + timeout
        seen = after
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    message = json.loads(line)
                    if predicate(message):
                        return message
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no matching message; stdout so far: {self.lines[-5:]!r}")
                self._cond.wait(left)

    def answer(self, request_id, timeout: float = 60.0) -> dict:
        return self.wait_for(lambda m: m.get("id") == request_id, timeout)

    def initialize(self) -> None:
        self.answer(self.request("initialize", INIT_PARAMS))
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=10)
            self.proc.stdout.close()
            self.stderr.close()

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")


def assert_probe_answers(session: RawSession) -> None:
    reply = session.answer(session.request("tools/call", PROBE))
    assert reply["result"]["structuredContent"]["output_size"] == [30, 30]


def assert_only_json_rpc(lines: list[bytes]) -> None:
    for line in lines:
        message = json.loads(line)  # raises on anything that is not one JSON value per line
        assert message.get("jsonrpc") == "2.0", line[:200]


MALFORMED = [
    (b"this is not json", -32700, None),
    (b"{", -32700, None),
    (b"\xff\xfe\x00garbage", -32700, None),
    (b"[" * 100_000, -32700, None),  # nesting far past any parser's recursion limit
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ' + b"x" * 1_000_000 + b"}", -32700, None),
    (b"[]", -32600, None),
    (b"42", -32600, None),
    (b'{"jsonrpc": "2.0"}', -32600, None),
    (b'{"id": 7}', -32600, 7),
    (b'{"jsonrpc": "1.0", "id": "abc", "method": "tools/list"}', -32600, "abc"),
    (b'{"jsonrpc": "2.0", "id": 8, "method": 5}', -32600, 8),
]


def test_malformed_lines_get_a_json_rpc_error_and_the_session_goes_on():
    session = RawSession()
    try:
        session.initialize()
        for line, code, request_id in MALFORMED:
            before = len(session.lines)
            session.send_line(line)
            error = session.wait_for(
                lambda m, code=code, request_id=request_id: (
                    "error" in m and m["error"]["code"] == code and m["id"] == request_id
                )
            )
            assert error["error"]["message"], line[:40]
            assert_probe_answers(session)  # the very next request is served
            assert len(session.lines) == before + 2, "exactly one error and one answer per round"
        unknown = session.answer(session.request("no/such/method"))
        assert unknown["error"]["code"] == -32601
        assert_probe_answers(session)
        assert_only_json_rpc(session.lines)
    finally:
        assert session.close() == 0


def test_a_line_over_max_request_bytes_is_skipped_unread_with_an_error_naming_the_limit():
    session = RawSession(flags=("--max-request-bytes", "100000"))
    try:
        session.initialize()
        call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {**PROBE, "pad": "x" * 3_000_000}}
        session.send(call)
        error = session.wait_for(lambda m: "error" in m)
        assert error["id"] == 5, "the error answers the request by its id, so the client's call fails at once"
        assert error["error"]["code"] == -32600
        message = error["error"]["message"]
        for named in ("max_request_bytes=100000", "--max-request-bytes", "CONV_MCP_MAX_REQUEST_BYTES", "3,000,"):
            assert named in message, (named, message)
        assert_probe_answers(session)
        assert_only_json_rpc(session.lines)
    finally:
        assert session.close() == 0


_PAD = {"name": "conv2d", "arguments": {"x": [[1.0] * 1000] * 200}}  # ~800 KB of JSON, over a 100,000-byte limit
OVERSIZE_LINES = [  # (line, the id its error must carry): where each kind of client puts the id
    # the Python SDK: jsonrpc, id, method, params
    (json.dumps({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": _PAD}), 11),
    # hand-written or other clients: the id after jsonrpc and method, or after a small nested value
    (json.dumps({"jsonrpc": "2.0", "method": "tools/call", "id": "req-12", "params": _PAD}), "req-12"),
    (json.dumps({"jsonrpc": "2.0", "_x": {"a": ["}", "]", {"id": 0}]}, "id": 13, "params": _PAD}), 13),
    # the TypeScript SDK: {...request, jsonrpc: "2.0", id}, so the id comes last, after params
    (json.dumps({"method": "tools/call", "params": _PAD, "jsonrpc": "2.0", "id": 14}), 14),
    (json.dumps({"method": "tools/call", "params": _PAD, "id": "r15", "jsonrpc": "2.0"}), "r15"),
    # no id to read: a notification, an id only inside params, one no answer could carry, not an object at all
    (json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": _PAD}), None),
    (json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": {**_PAD, "id": 16}}), None),
    (json.dumps({"jsonrpc": "2.0", "id": "\ud800", "method": "tools/call", "params": _PAD}), None),
    (json.dumps({"method": "tools/call", "params": _PAD, "id": 1.5}), None),
    (json.dumps([{"jsonrpc": "2.0", "id": 17, "method": "tools/call", "params": _PAD}]), None),
    ("x" * 300_000, None),
]


def test_an_oversize_line_is_answered_with_the_id_read_from_its_first_or_last_bytes():
    session = RawSession(flags=("--max-request-bytes", "100000"))
    try:
        session.initialize()
        for line, request_id in OVERSIZE_LINES:
            before = len(session.lines)
            session.send_line(line.encode())
            error = session.wait_for(lambda m: "error" in m, timeout=30, after=before)
            assert error["id"] == request_id, (line[:80], error)
            assert "max_request_bytes=100000" in error["error"]["message"]
            assert_probe_answers(session)
            assert len(session.lines) == before + 2, "exactly one error and one answer per round"
        assert_only_json_rpc(session.lines)
    finally:
        assert session.close() == 0


def _assert_names_the_limit(exc: MCPError, limit: int) -> None:
    for named in (f"max_request_bytes={limit}", "--max-request-bytes", "CONV_MCP_MAX_REQUEST_BYTES"):
        assert named in exc.message, (named, exc.message)


async def _oversize_calls_fail_at_once(client, x, limit: int, within_s: float) -> list[float]:
    """Two oversize conv2d calls on one session, each refused naming the limit within `within_s`; then a normal call."""
    took = []
    for _ in range(2):
        started = time.monotonic()
        with anyio.fail_after(30), pytest.raises(MCPError) as caught:  # a regression fails in 30 s, not at a timeout
            await client.call_tool("conv2d", {"x": x, "kernel": "blur_3x3"})
        took.append(time.monotonic() - started)
        assert caught.value.code == -32600
        _assert_names_the_limit(caught.value, limit)
        assert took[-1] < within_s, f"the oversize call failed after {took[-1]:.1f} s"
    result = await client.call_tool(PROBE["name"], PROBE["arguments"])
    assert result.structured_content["output_size"] == [30, 30]
    return took


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_an_oversize_call_through_the_sdk_client_fails_at_once_naming_the_limit_and_the_session_goes_on(mode):
    async def scenario():
        params = StdioServerParameters(command=sys.executable, args=["-m", "server", "--max-request-bytes", "100000"])
        async with Client(params, mode=mode) as client:
            x = [[(i + j) % 7 / 7 for j in range(256)] for i in range(256)]  # ~1.2 MB of JSON
            return await _oversize_calls_fail_at_once(client, x, 100_000, within_s=5)

    anyio.run(scenario)


def test_a_50_mb_conv2d_call_over_the_default_limit_fails_within_seconds():
    """The issue's case: a 4096x4096 input (~50 MB of JSON) over the default 32 MiB, once answered only at the
    client's timeout because the error carried id null."""
    from server.__main__ import DEFAULT_MAX_REQUEST_BYTES

    async def scenario():
        params = StdioServerParameters(command=sys.executable, args=["-m", "server"])
        async with Client(params) as client:
            row = [10] * 4096
            x = [row] * 4096  # one row object shared: 50 MB on the wire, little memory here
            return await _oversize_calls_fail_at_once(client, x, DEFAULT_MAX_REQUEST_BYTES, within_s=15)

    took = anyio.run(scenario)
    print(f"50 MB oversize calls answered in {', '.join(f'{t:.2f} s' for t in took)}")


def test_stdout_carries_only_json_rpc_even_when_numpy_overflows():
    """Overflowing float64 arithmetic makes NumPy warn; with PYTHONWARNINGS=always each warning is emitted, to stderr."""
    session = RawSession(env={"PYTHONWARNINGS": "always"})
    try:
        session.initialize()
        tools = {t["name"] for t in session.answer(session.request("tools/list"))["result"]["tools"]}
        calls = [PROBE]
        if "conv2d" in tools:
            huge = [[1e308, -1e308, 1e308], [1e308, 1e308, -1e308], [1e308, 1e308, 1e308]]
            for method in ("naive", "im2col", "both"):
                calls.append(
                    {
                        "name": "conv2d",
                        "arguments": {"x": huge, "weight": [[[[1e308, 1e308], [1e308, 1e308]]]], "method": method},
                    }
                )
                calls.append(
                    {
                        "name": "conv2d",
                        "arguments": {
                            "x": [[0.0, 0.0], [0.0, 0.0]],
                            "kernel": "blur_3x3",
                            "padding": 1,
                            "method": method,
                        },
                    }
                )
        if "conv2d_backward" in tools:
            calls.append(
                {
                    "name": "conv2d_backward",
                    "arguments": {
                        "x": [[[1e308, 1e308], [1e308, 1e308]]],
                        "weight": [[[[1e308]]]],
                        "grad_output": [[[1e308, 1e308], [1e308, 1e308]]],
                    },
                }
            )
        for call in calls:
            reply = session.answer(session.request("tools/call", call))
            assert "result" in reply, reply
        session.answer(session.request("prompts/list"))
        session.answer(session.request("resources/list"))
        assert_probe_answers(session)
    finally:
        assert session.close() == 0
    assert_only_json_rpc(session.lines)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_child_pid() -> int:
    """The `python -m server` process this test process started (the stdio Client does not expose it)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent == me and b"server" in cmdline:
            return int(entry)
    raise AssertionError("no `python -m server` child found")


def _x(h: int, w: int, c: int = 3) -> list:
    return [[[(i * 7 + j * 3 + k) % 10 for j in range(w)] for i in range(h)] for k in range(c)]


# Calls that take many seconds (with SLOW_ENV's limits), per tool; only the tools this build has are tried.
SLOW_CALLS = {
    # naive conv2d: 16*3*15*15 * 186*186 = 374 million MACs, tens of seconds on one core
    "conv2d": {"x": _x(200, 200), "weight": [[[[1] * 15] * 15] * 3] * 16, "method": "naive"},
    # backward by GEMM: 64*3*31*31 * 370*370 * 2 = 50 billion MACs, about 10 s
    "conv2d_backward": {"x": _x(400, 400), "weight": [[[[1] * 31] * 31] * 3] * 64},
    # a search that runs to its time limit
    "design_architecture": {
        "input_shape": [3, 224, 224],
        "param_budget": 10**9,
        "target_receptive_field": [301, 257],
        "output_size": 13,
        "max_layers": 20,
        "kernel_sizes": [1, 2, 3, 4, 5, 6, 7, 9, 11, 13],
        "strides": [1, 2, 3, 4],
        "dilations": [1, 2, 3, 4, 5],
        "widths": list(range(4, 68, 4)),
        "time_limit_s": 30,
    },
}
SLOW_ENV = {
    "CONV_MCP_MAX_MACS": str(10**12),
    "CONV_MCP_MAX_INPUT_ELEMENTS": str(10**7),
    "CONV_MCP_MAX_DESIGN_TIME_S": "60",
}


def _available_slow_tools() -> list[str]:
    from server.app import build_server

    async def names():
        async with Client(build_server()) as client:
            return {t.name for t in (await client.list_tools()).tools}

    present = anyio.run(names)
    return [name for name in SLOW_CALLS if name in present] or ["(none yet)"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("name", _available_slow_tools())
def test_a_cancelled_call_leaves_no_work_running_and_the_session_goes_on(name, mode):
    if name not in SLOW_CALLS:
        pytest.skip("no long-running tool in this build")

    async def scenario():
        params = StdioServerParameters(command=sys.executable, args=["-m", "server"], env={**os.environ, **SLOW_ENV})
        async with Client(params, mode=mode) as client:
            pid = _server_child_pid()
            start = _cpu_seconds(pid)
            with anyio.move_on_after(1.5) as scope:  # the client abandons the call: notifications/cancelled
                result = await client.call_tool(name, SLOW_CALLS[name])
            assert scope.cancelled_caught, f"the slow call ended within 1.5 s: {result.content[0].text[:300]}"
            assert _cpu_seconds(pid) - start > 0.3, "the slow call did not get to work"
            await anyio.sleep(0.5)  # one work chunk may still finish
            before = _cpu_seconds(pid)
            await anyio.sleep(2.0)
            burnt = _cpu_seconds(pid) - before
            result = await client.call_tool(PROBE["name"], PROBE["arguments"])
            return burnt, result

    burnt, result = anyio.run(scenario)
    assert burnt < 0.5, f"the server used {burnt:.2f} s of CPU in the 2 s after the call was cancelled"
    assert result.structured_content["output_size"] == [30, 30]


@pytest.mark.parametrize("name", _available_slow_tools())
def test_a_client_that_disconnects_mid_call_leaves_no_server_running(name):
    if name not in SLOW_CALLS:
        pytest.skip("no long-running tool in this build")
    session = RawSession(env=SLOW_ENV)
    session.initialize()
    session.request("tools/call", {"name": name, "arguments": SLOW_CALLS[name]})
    time.sleep(1.5)  # mid-call
    assert not any(b'"result"' in line for line in session.lines[1:]), "the slow call ended within 1.5 s"
    assert _cpu_seconds(session.proc.pid) > 1.0, "the slow call did not get to work"
    started = time.monotonic()
    session.proc.stdin.close()  # the client goes away
    try:
        session.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - started
    still_running = session.proc.poll() is None
    session.close()
    assert not still_running, "the server kept running after its client disconnected"
    assert took < 15
