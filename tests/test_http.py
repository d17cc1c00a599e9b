"""Streamable HTTP through a real uvicorn process: DNS-rebinding protection, the bearer token, /health, stateless mode.

Each server is `python -m server --transport http` on a free loopback port, as a user would start it.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from server.http import Gate, HTTPConfigError, build_http_app, check_bind, security_settings

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
POST_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
CALL = {"input_size": 32, "kernel_size": 3}  # nn.Conv2d(k=3) on 32 px -> 30 px


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def http_server(*flags: str, env: dict[str, str] | None = None):
    """`python -m server --transport http` on a free loopback port; yields (base url, process); stops it after."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--transport", "http", "--port", str(port), *flags],
        stdout=log,
        stderr=log,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"server exited with {proc.returncode}: {log.read().decode()[-2000:]}")
            try:
                if httpx2.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not answer /health within 60 s")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def plain():
    with http_server() as (base, _):
        yield base


@pytest.fixture(scope="module")
def guarded():
    with http_server(env={"CONV_MCP_TOKEN": "s3cret-token"}) as (base, _):
        yield base


async def call_over_http(url: str, mode: str = "auto", headers: dict[str, str] | None = None):
    with anyio.fail_after(30):
        async with httpx2.AsyncClient(headers=headers or {}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                return await client.call_tool("conv_output_size", CALL)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_client_calls_a_tool_over_streamable_http_in_both_protocol_eras(plain, mode):
    result = anyio.run(call_over_http, f"{plain}/mcp", mode)
    assert not result.is_error
    assert result.structured_content["output_size"] == [30, 30]


def test_a_foreign_host_header_gets_421_misdirected_request(plain):
    r = httpx2.post(f"{plain}/mcp", json=INIT, headers={**POST_HEADERS, "host": "evil.example:80"})
    assert r.status_code == 421


def test_a_foreign_host_gets_421_in_the_2026_era_and_on_get_and_delete_too(plain):
    modern = {**POST_HEADERS, "host": "evil.example", "mcp-protocol-version": "2026-07-28"}
    assert (
        httpx2.post(
            f"{plain}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=modern
        ).status_code
        == 421
    )
    assert httpx2.get(f"{plain}/mcp", headers={"host": "evil.example"}).status_code == 421
    assert httpx2.delete(f"{plain}/mcp", headers={"host": "evil.example"}).status_code == 421


def test_a_foreign_origin_gets_403_forbidden(plain):
    r = httpx2.post(f"{plain}/mcp", json=INIT, headers={**POST_HEADERS, "origin": "http://evil.example"})
    assert r.status_code == 403


def test_a_same_origin_browser_request_is_served(plain):
    r = httpx2.post(f"{plain}/mcp", json=INIT, headers={**POST_HEADERS, "origin": plain})
    assert r.status_code == 200


@pytest.mark.parametrize("body", [b"this is not json", b"{", b"[" * 100_000, b"[]", b'{"id": 7}', b"\xff\xfe"])
def test_a_malformed_body_gets_400_and_the_server_goes_on(plain, body):
    r = httpx2.post(f"{plain}/mcp", content=body, headers=POST_HEADERS)
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert r.json()["error"]["message"]  # the SDK: -32700 for bad JSON, -32602 for JSON that is no message
    assert anyio.run(call_over_http, f"{plain}/mcp").structured_content["output_size"] == [30, 30]


def test_health_answers_200_with_status_and_version(plain):
    r = httpx2.get(f"{plain}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"]


def test_health_needs_no_token(guarded):
    assert httpx2.get(f"{guarded}/health").status_code == 200


def test_without_the_token_the_server_answers_401_with_www_authenticate(guarded):
    r = httpx2.post(f"{guarded}/mcp", json=INIT, headers=POST_HEADERS)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_token_gets_401_invalid_token(guarded):
    r = httpx2.post(f"{guarded}/mcp", json=INIT, headers={**POST_HEADERS, "authorization": "Bearer s3cret-tokeX"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_a_client_with_the_token_calls_a_tool(guarded):
    result = anyio.run(call_over_http, f"{guarded}/mcp", "auto", {"Authorization": "Bearer s3cret-token"})
    assert result.structured_content["output_size"] == [30, 30]


def test_the_server_refuses_a_non_loopback_bind_without_a_token():
    env = {k: v for k, v in os.environ.items() if k != "CONV_MCP_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode != 0
    assert "non-loopback" in proc.stderr and "--token" in proc.stderr and "CONV_MCP_TOKEN" in proc.stderr
    assert proc.stdout == ""


def test_a_wildcard_bind_without_allowed_hosts_is_refused_even_with_a_token():
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONV_MCP_TOKEN": "t"},
    )
    assert proc.returncode != 0
    assert "--allowed-host" in proc.stderr


def test_several_workers_need_stateless_mode():
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--transport", "http", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--stateless" in proc.stderr


def test_a_non_loopback_address_keeps_rebinding_protection_for_itself_and_the_allowed_hosts():
    settings = security_settings("10.1.2.3", ["mcp.example.com"])
    assert settings.enable_dns_rebinding_protection
    assert {"10.1.2.3:*", "mcp.example.com", "mcp.example.com:*"} <= set(settings.allowed_hosts)
    assert "evil.example:*" not in settings.allowed_hosts
    assert "https://mcp.example.com" in settings.allowed_origins


def test_build_http_app_refuses_a_non_loopback_host_without_a_token():
    from server.app import build_server

    with pytest.raises(HTTPConfigError, match="non-loopback"):
        build_http_app(build_server(), "10.1.2.3")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("10.1.2.3", "t")


def _assert_413_names_the_limit(r, limit: int, request_id) -> None:
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"
    error = r.json()
    assert error["jsonrpc"] == "2.0" and error["id"] == request_id and error["error"]["code"] == -32600
    for named in (f"max_request_bytes={limit}", "--max-request-bytes", "CONV_MCP_MAX_REQUEST_BYTES"):
        assert named in error["error"]["message"], (named, error)


def test_an_oversized_body_gets_413_naming_the_limit_and_the_flag():
    with http_server("--max-request-bytes", "2000") as (base, _):
        big = {**INIT, "padding": "x" * 4000}
        r = httpx2.post(f"{base}/mcp", content=json.dumps(big), headers=POST_HEADERS)
        _assert_413_names_the_limit(r, 2000, 1)
        assert "4,1" in r.json()["error"]["message"]  # the declared size
        assert httpx2.post(f"{base}/mcp", json=INIT, headers=POST_HEADERS).status_code == 200

        def chunks(first: bytes = b""):  # no Content-Length: the SDK counts the streamed bytes
            yield first
            for _ in range(4):
                yield b" " * 1000

        r = httpx2.post(f"{base}/mcp", content=chunks(), headers=POST_HEADERS)
        _assert_413_names_the_limit(r, 2000, None)
        r = httpx2.post(
            f"{base}/mcp", content=chunks(b'{"jsonrpc": "2.0", "method": "x", "id": "c-7", '), headers=POST_HEADERS
        )
        _assert_413_names_the_limit(r, 2000, "c-7")


def test_a_413_carries_the_id_read_from_the_first_bytes_of_the_body():
    pad = {"name": "conv2d", "arguments": {"x": [[1.0] * 1000] * 200}}  # ~800 KB, past the socket buffers
    bodies = [
        ({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": pad}, 11),
        ({"jsonrpc": "2.0", "method": "tools/call", "id": "req-12", "params": pad}, "req-12"),
        ({"method": "tools/call", "params": pad, "jsonrpc": "2.0", "id": 13}, None),  # past the first bytes
        ({"jsonrpc": "2.0", "method": "tools/call", "params": {**pad, "id": 14}}, None),
    ]
    with http_server("--max-request-bytes", "100000") as (base, _):
        with httpx2.Client(timeout=30) as http:  # one connection: the refused bodies must not break keep-alive
            for body, request_id in bodies:
                r = http.post(f"{base}/mcp", content=json.dumps(body), headers=POST_HEADERS)
                _assert_413_names_the_limit(r, 100_000, request_id)
            assert http.post(f"{base}/mcp", json=INIT, headers=POST_HEADERS).status_code == 200


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_an_oversize_call_through_the_sdk_client_fails_at_once_naming_the_limit_and_the_session_goes_on(mode):
    x = [[(i + j) % 7 / 7 for j in range(512)] for i in range(512)]  # ~5 MB of JSON

    async def scenario(url):
        async with Client(url, mode=mode) as client:
            for _ in range(2):
                started = time.monotonic()
                with anyio.fail_after(30), pytest.raises(MCPError) as caught:
                    await client.call_tool("conv2d", {"x": x, "kernel": "blur_3x3"})
                took = time.monotonic() - started
                assert took < 5, f"the oversize call failed after {took:.1f} s"
                assert caught.value.code == -32600
                for named in ("max_request_bytes=100000", "--max-request-bytes", "CONV_MCP_MAX_REQUEST_BYTES"):
                    assert named in caught.value.message, (named, caught.value.message)
            return await client.call_tool("conv_output_size", CALL)

    with http_server("--max-request-bytes", "100000") as (base, _):
        assert anyio.run(scenario, f"{base}/mcp").structured_content["output_size"] == [30, 30]


def test_stateless_mode_serves_requests_that_carry_no_session_id():
    with http_server("--stateless", "--json-response") as (base, _):
        headers = {**POST_HEADERS, "mcp-protocol-version": "2025-11-25"}
        call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "conv_output_size", "arguments": CALL}}
        for request_id in (1, 2):  # two requests, no initialize, no mcp-session-id: any worker could take either
            r = httpx2.post(f"{base}/mcp", json={**call, "id": request_id}, headers=headers)
            assert r.status_code == 200, r.text
            assert "mcp-session-id" not in r.headers
            assert r.json()["result"]["structuredContent"]["output_size"] == [30, 30]
        for mode in ("auto", "legacy"):
            assert anyio.run(call_over_http, f"{base}/mcp", mode).structured_content["output_size"] == [30, 30]


def test_two_stateless_workers_serve_one_deployment():
    with http_server("--stateless", "--workers", "2") as (base, _):
        results = [anyio.run(call_over_http, f"{base}/mcp", mode) for mode in ("auto", "legacy", "auto", "legacy")]
        assert all(r.structured_content["output_size"] == [30, 30] for r in results)


def test_the_gate_compares_the_token_in_constant_time_and_lets_lifespan_through():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    gate = Gate(inner, token="abc", health={"status": "ok"}, max_request_bytes=10)

    async def drive():
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "lifespan.startup"}

        await gate({"type": "lifespan"}, receive, send)
        await gate(
            {"type": "http", "path": "/mcp", "method": "POST", "headers": [(b"authorization", b"Bearer abc")]},
            receive,
            send,
        )
        await gate(
            {"type": "http", "path": "/mcp", "method": "POST", "headers": [(b"authorization", b"Bearer abd")]},
            receive,
            send,
        )
        return sent

    sent = anyio.run(drive)
    assert seen == ["lifespan", "http"]
    assert sent[0]["status"] == 401


def test_help_documents_every_flag_and_every_limit():
    from dataclasses import fields

    from server.limits import Limits

    out = subprocess.run([sys.executable, "-m", "server", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in (
        "--transport",
        "--host",
        "--port",
        "--token",
        "--allowed-host",
        "--allowed-origin",
        "--stateless",
        "--json-response",
        "--workers",
        "--max-request-bytes",
        "CONV_MCP_TOKEN",
        "/health",
    ):
        assert flag in out.stdout, flag
    for f in fields(Limits):
        assert f"--{f.name.replace('_', '-')}" in out.stdout, f.name
        assert f"CONV_MCP_{f.name.upper()}" in out.stdout.replace("\n", "").replace(" ", ""), f.name


def test_limit_flags_are_written_into_the_process_limits():
    from dataclasses import asdict

    from server.__main__ import apply_limits, parse_args
    from server.limits import LIMITS

    saved = asdict(LIMITS)
    try:
        env = apply_limits(parse_args(["--max-input-elements", "1234", "--max-design-time-s", "2.5"]))
        assert LIMITS.max_input_elements == 1234 and LIMITS.max_design_time_s == 2.5
        assert env == {"CONV_MCP_MAX_INPUT_ELEMENTS": "1234", "CONV_MCP_MAX_DESIGN_TIME_S": "2.5"}
    finally:
        for name, value in saved.items():
            setattr(LIMITS, name, value)
    with pytest.raises(SystemExit):
        parse_args(["--max-macs", "0"])


HANG_UP_CLIENT = """
import sys, anyio, json
from mcp import Client
async def main():
    async with Client(sys.argv[1], mode=sys.argv[2]) as client:
        print("calling", flush=True)
        await client.call_tool("conv2d", json.loads(sys.stdin.read()))
anyio.run(main)
"""


def _cpu_seconds(pid: int) -> float:
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("flags", [(), ("--stateless",), ("--stateless", "--json-response")])
def test_a_client_that_hangs_up_mid_call_leaves_no_work_running(flags):
    """2026-07-28 era always; the 2025-11-25 era in stateless mode. (A 2025-11-25 stateful session keeps the call:
    the spec says a disconnect is not a cancellation, the session outlives the connection.)"""
    from test_stdio_faults import SLOW_CALLS, SLOW_ENV

    modes = ["auto"] if not flags else ["auto", "legacy"]
    with http_server(*flags, env=SLOW_ENV) as (base, proc):
        tools = anyio.run(_tool_names, f"{base}/mcp")
        if "conv2d" not in tools:
            pytest.skip("no conv2d tool in this build")
        for mode in modes:
            client = subprocess.Popen(
                [sys.executable, "-c", HANG_UP_CLIENT, f"{base}/mcp", mode],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            client.stdin.write(json.dumps(SLOW_CALLS["conv2d"]).encode())
            client.stdin.close()
            assert client.stdout.readline() == b"calling\n"
            time.sleep(1.0)
            start = _cpu_seconds(proc.pid)
            time.sleep(1.0)
            assert _cpu_seconds(proc.pid) - start > 0.3, "the slow call did not get to work"
            client.kill()  # no notifications/cancelled: the connection just drops
            client.wait()
            client.stdout.close()
            time.sleep(1.0)  # one work chunk may still finish
            before = _cpu_seconds(proc.pid)
            time.sleep(2.0)
            burnt = _cpu_seconds(proc.pid) - before
            assert burnt < 0.5, f"{mode}: the server used {burnt:.2f} s of CPU in the 2 s after its client hung up"
            assert anyio.run(call_over_http, f"{base}/mcp", mode).structured_content["output_size"] == [30, 30]


async def _tool_names(url: str) -> set[str]:
    async with Client(url) as client:
        return {t.name for t in (await client.list_tools()).tools}
