"""The Streamable HTTP app: DNS-rebinding protection, an optional bearer token, a request-size bound and /health.

    app = build_http_app(build_server(), "127.0.0.1", token=os.environ.get("CONV_MCP_TOKEN"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

The SDK checks Host (421 when foreign) and Origin (403 when foreign) itself once it is given allowed lists; it only
fills them in on its own for loopback binds, so a non-loopback bind passes them explicitly here. The token gate
sits outside the SDK app and answers 401 before any MCP work is done.
"""

import hmac
import ipaddress
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .request_id import ID_PREFIX_BYTES, request_id_from_prefix, too_large_message

TOKEN_ENV = "CONV_MCP_TOKEN"
MAX_REQUEST_BYTES_ENV = "CONV_MCP_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # max_input_elements numbers at full float precision fit (SDK: 4 MiB)
HEALTH_PATH = "/health"
MCP_PATH = "/mcp"


class HTTPConfigError(ValueError):
    """An HTTP configuration the server refuses to start with; the message says what to pass instead."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost': addresses no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_patterns(host: str) -> list[str]:
    """Host-header patterns for one allowed host: 'name:port' as is; a bare name or address without and with any port."""
    if host.startswith("["):
        return [host] if "]:" in host else [host, f"{host}:*"]
    try:
        ipaddress.IPv6Address(host)
        return [f"[{host}]", f"[{host}]:*"]
    except ValueError:
        pass
    return [host] if ":" in host else [host, f"{host}:*"]


def _origins_for(host_patterns: Iterable[str]) -> list[str]:
    """Same-origin Origin patterns (http and https) for each allowed Host pattern."""
    return [f"{scheme}://{pattern}" for pattern in host_patterns for scheme in ("http", "https")]


@dataclass
class HTTPOptions:
    """Everything `build_http_app` needs besides the server; `python -m server` fills it from its flags."""

    host: str = "127.0.0.1"
    stateless: bool = False
    json_response: bool = False
    token: str | None = None
    allowed_hosts: Sequence[str] = field(default_factory=tuple)
    allowed_origins: Sequence[str] = field(default_factory=tuple)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


def security_settings(
    host: str, allowed_hosts: Sequence[str] = (), allowed_origins: Sequence[str] = ()
) -> TransportSecuritySettings:
    """DNS-rebinding protection, always on: loopback names for a loopback bind, else the bound address and the given names.

    Host entries are 'name' (any port) or 'name:port'; Origin entries are full origins ('https://app.example:443')
    or 'scheme://name:*'. Same-origin Origins of every allowed Host are allowed too.
    """
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"] if is_loopback(host) else []
    if host not in ("0.0.0.0", "::"):
        hosts += _host_patterns(host)  # the bound address itself (127.0.0.2, 10.0.0.5, ...)
    hosts += [pattern for h in allowed_hosts for pattern in _host_patterns(h)]
    if not hosts:
        raise HTTPConfigError(
            f"--host {host} listens on every interface, so the server cannot tell which Host headers are its own: "
            "pass --allowed-host NAME for each name or address clients use (e.g. --allowed-host mcp.example.com)"
        )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys([*_origins_for(hosts), *allowed_origins])),
    )


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a bearer token (anyone on the network could call the tools)."""
    if not is_loopback(host) and not token:
        raise HTTPConfigError(
            f"refusing to serve on non-loopback address {host} without a bearer token: pass --token or set "
            f"{TOKEN_ENV}, or bind 127.0.0.1"
        )


def build_http_app(
    server: MCPServer,
    host: str = "127.0.0.1",
    *,
    stateless: bool = False,
    json_response: bool = False,
    token: str | None = None,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> ASGIApp:
    """The ASGI app serving `server` at /mcp, guarded by Host/Origin checks, the optional token and a body-size bound."""
    check_bind(host, token)
    if max_request_bytes < 1:
        raise HTTPConfigError(f"--max-request-bytes must be at least 1, got {max_request_bytes}")
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        stateless_http=stateless,
        json_response=json_response,
        max_request_body_size=max_request_bytes,
        transport_security=security_settings(host, allowed_hosts, allowed_origins),
    )
    health = {"status": "ok", "name": server.name, "version": server.version, "stateless": stateless}
    if json_response:
        app = CancelOnDisconnect(app)
    return Gate(app, token=token, health=health, max_request_bytes=max_request_bytes)


def app_from_env() -> ASGIApp:
    """uvicorn factory for --workers N: each worker process rebuilds the app from CONV_MCP_* variables."""
    from .app import build_server

    options = HTTPOptions(**json.loads(os.environ["CONV_MCP_HTTP_OPTIONS"]))
    options.token = os.environ.get(TOKEN_ENV) or None
    return build_http_app(build_server(), **vars(options))


class Gate:
    """ASGI middleware: GET /health without auth, the bearer token everywhere else, and a named request-size bound."""

    def __init__(self, app: ASGIApp, *, token: str | None, health: dict, max_request_bytes: int) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.health = json.dumps(health).encode()
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the SDK's session manager starts and stops here
            await self.app(scope, receive, send)
            return
        if scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await _respond(send, 200, self.health, content_type=b"application/json")
            return
        headers = dict(scope["headers"])
        if self.expected is not None:
            given = headers.get(b"authorization")
            if given is None:
                await _respond(
                    send,
                    401,
                    b"missing bearer token: send Authorization: Bearer <token>\n",
                    extra=[(b"www-authenticate", b'Bearer realm="conv-mcp"')],
                )
                return
            # constant-time: the comparison takes as long for a near miss as for a far one
            if not hmac.compare_digest(given, self.expected):
                await _respond(
                    send,
                    401,
                    b"invalid bearer token\n",
                    extra=[(b"www-authenticate", b'Bearer realm="conv-mcp", error="invalid_token"')],
                )
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_request_bytes:
            # read only the body's first bytes, for the request id; uvicorn discards the rest unbuffered
            prefix = await _body_prefix(receive, ID_PREFIX_BYTES)
            body = self._too_large(f"a request body of {int(length):,} bytes", prefix)
            await _respond(send, 413, body, content_type=b"application/json")
            return
        prefix = bytearray()

        async def keeping_prefix() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(prefix) < ID_PREFIX_BYTES:
                prefix.extend(message.get("body", b"")[: ID_PREFIX_BYTES - len(prefix)])
            return message

        await self.app(scope, keeping_prefix, self._naming_413(send, prefix))

    def _too_large(self, what: str, prefix: bytes) -> bytes:
        """A JSON-RPC error naming the limit, with the id read from the body's first bytes (null when not there)."""
        error = {
            "jsonrpc": "2.0",
            "id": request_id_from_prefix(bytes(prefix)),
            "error": {"code": -32600, "message": "Invalid Request: " + too_large_message(what, self.max_request_bytes)},
        }
        return json.dumps(error).encode()

    def _naming_413(self, send: Send, prefix: bytearray) -> Send:
        """`send` with the SDK's bare 413 (a streamed body it counted past the limit) replaced by one naming the limit."""
        replacement: bytes | None = None

        async def wrapped(message: Message) -> None:
            nonlocal replacement
            if message["type"] == "http.response.start" and message["status"] == 413:
                replacement = self._too_large("a streamed request body (no Content-Length)", prefix)
                replaced = (b"content-length", b"content-type")
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in replaced]
                extra = [(b"content-type", b"application/json"), (b"content-length", str(len(replacement)).encode())]
                message = {**message, "headers": [*headers, *extra]}
            elif replacement is not None and message["type"] == "http.response.body":
                message = {**message, "body": replacement, "more_body": False}
            await send(message)

        return wrapped


class CancelOnDisconnect:
    """ASGI middleware: cancel a request whose client hangs up before its response is sent.

    With SSE responses the SDK notices a hang-up itself; with --json-response nobody reads the connection while
    a tool works, so a call whose client is gone would run to the end. Here a task waits for the disconnect
    once the body is read and cancels the request (the SDK then ends that request's work), unless the
    response was already complete.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import anyio

        body_read = anyio.Event()
        done = False

        async def inner_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read.set()
            return message

        async def inner_send(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done = True
            await send(message)

        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await body_read.wait()
                message = await receive()  # the app reads nothing more: the next message is the hang-up
                if message["type"] == "http.disconnect" and not done:
                    tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await self.app(scope, inner_receive, inner_send)
            tg.cancel_scope.cancel()


async def _body_prefix(receive: Receive, size: int) -> bytes:
    """The first `size` bytes of the request body (fewer when it is shorter or the client hangs up)."""
    prefix = bytearray()
    while len(prefix) < size:
        message = await receive()
        if message["type"] != "http.request":
            break
        prefix.extend(message.get("body", b"")[: size - len(prefix)])
        if not message.get("more_body", False):
            break
    return bytes(prefix)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
