"""python -m server: serve the conv-arithmetic MCP server over stdio (default) or Streamable HTTP."""

import argparse
import ast
import inspect
import json
import logging
import os
import sys
from dataclasses import fields

from .limits import LIMITS, Limits
from .request_id import ID_PREFIX_BYTES, ID_TAIL_BYTES, request_id_from_prefix, request_id_from_tail, too_large_message

TOKEN_ENV = "CONV_MCP_TOKEN"  # same as server.http.TOKEN_ENV (not imported: stdio start-up skips starlette)
# 32 MiB: max_input_elements (1,000,000) numbers written at full float precision (~20 bytes each) fit.
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # same as server.http's (not imported: stdio start-up skips starlette)
TOO_LONG = "\x00line-too-long "  # what the stdin reader hands the SDK instead of an over-long line
# An over-long request is answered with its id, read from bounded ends of it (never the whole thing): the first
# ID_PREFIX_BYTES, where the Python SDK writes it ({"jsonrpc", "id", "method", "params"}), and for stdio also the
# last ID_TAIL_BYTES, where the TypeScript SDK writes it ({...request, jsonrpc: "2.0", id}: after "params").


def _limit_docs() -> dict[str, str]:
    """Each Limits field's docstring (the string under it in server/limits.py), for --help."""
    try:
        tree = ast.parse(inspect.getsource(Limits))
    except (OSError, TypeError):  # no source (frozen build): flags keep a generic help
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = str(after.value.value).rstrip(".")  # type: ignore[attr-defined]
    return docs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description=(
            "Convolution arithmetic and CNN planning over the Model Context Protocol. "
            "stdio (the default) is what MCP clients launch; --transport http serves Streamable HTTP "
            "at http://HOST:PORT/mcp under uvicorn, loopback only by default, with DNS-rebinding protection on "
            "(a foreign Host header gets 421, a foreign Origin 403) and GET /health for load balancers."
        ),
        epilog=(
            "Every limit can also be set by the environment variable CONV_MCP_<NAME> (e.g. "
            "CONV_MCP_MAX_INPUT_ELEMENTS=4000000); the flag wins. In stdio mode nothing but JSON-RPC goes to "
            "stdout; logs and warnings go to stderr."
        ),
    )
    parser.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="stdio (default) or http (Streamable HTTP)"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="log level; logs always go to stderr (default WARNING)",
    )
    parser.add_argument(
        "--model-dir",
        action="append",
        default=[],
        metavar="DIR",
        help=(
            "a directory whose model files (.onnx) the walk tools may read by path (repeatable). Over stdio the working "
            "directory is allowed too; over HTTP only these are, and without one a model comes as model_base64"
        ),
    )
    http = parser.add_argument_group("HTTP (--transport http)")
    http.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    http.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    http.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=(
            f"require 'Authorization: Bearer TOKEN' on every request except GET /health (default: ${TOKEN_ENV}; "
            "prefer the variable, a flag shows in the process list). Required for a non-loopback --host"
        ),
    )
    http.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help=(
            "a Host header value clients may use besides the bound address (repeatable; without a port any port). "
            "Needed for --host 0.0.0.0 and for names behind a proxy; requests with any other Host get 421"
        ),
    )
    http.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help=(
            "a browser Origin allowed besides the allowed hosts' own origins, e.g. https://app.example.com "
            "(repeatable); other Origins get 403"
        ),
    )
    http.add_argument(
        "--stateless",
        action="store_true",
        help=(
            "keep no session state between requests, so several workers or hosts behind any load balancer "
            "serve one deployment (no server-to-client requests or resumable streams)"
        ),
    )
    http.add_argument(
        "--json-response",
        action="store_true",
        help="answer each POST with one JSON body instead of an SSE stream (simplest for proxies; pairs with --stateless)",
    )
    http.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="uvicorn worker processes (default 1; more than 1 needs --stateless)",
    )
    http.add_argument(
        "--max-request-bytes",
        type=int,
        metavar="N",
        default=int(os.environ.get("CONV_MCP_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)),
        help=(
            "largest request in bytes: an HTTP body (larger ones get 413) or one stdio line (larger ones are read "
            "past, unparsed); either way the answer is a JSON-RPC error with the request's id "
            f"(default {DEFAULT_MAX_REQUEST_BYTES}, or $CONV_MCP_MAX_REQUEST_BYTES)"
        ),
    )
    limits = parser.add_argument_group("limits (each named in the error that enforces it)")
    wants_help = any(a in ("-h", "--help") for a in (sys.argv[1:] if argv is None else argv))
    docs = _limit_docs() if wants_help else {}  # reading the source costs ~10 ms of cold start
    for f in fields(Limits):
        current = getattr(LIMITS, f.name)
        limits.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=None,
            metavar="N",
            help=f"{docs.get(f.name, f.name)} (default {current}; env CONV_MCP_{f.name.upper()})",
        )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and not args.stateless:
        parser.error("--workers > 1 needs --stateless: a session opened on one worker is unknown to the others")
    for f in fields(Limits):
        value = getattr(args, f.name)
        if value is not None and value <= 0:
            parser.error(f"--{f.name.replace('_', '-')} must be positive, got {value}")
    for d in args.model_dir:
        if not os.path.isdir(d):
            parser.error(f"--model-dir {d}: not a directory")
    return args


def apply_limits(args: argparse.Namespace) -> dict[str, str]:
    """Write the limit flags into server.limits.LIMITS; returns them as CONV_MCP_* variables for worker processes."""
    env = {}
    for f in fields(Limits):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(LIMITS, f.name, value)
            env[f"CONV_MCP_{f.name.upper()}"] = str(value)
    return env


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m server` and the `conv-mcp` console script."""
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # warnings (numpy's RuntimeWarnings included) become stderr log records
    limit_env = apply_limits(args)
    from .model_files import configure

    configure(args.transport, args.model_dir)  # read at tool time (and by HTTP workers, through the environment)
    if args.transport == "http":
        serve_http(args, limit_env)
        return
    from .app import build_server

    server = build_server()
    logging.getLogger().setLevel(args.log_level)  # the SDK configures logging on construction; ours wins
    import anyio

    anyio.run(serve_stdio, server, args.max_request_bytes)


async def serve_stdio(server, max_line_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
    """Serve over stdio like MCPServer.run('stdio'), but answer lines that are not JSON-RPC with a JSON-RPC error.

    The SDK drops such lines silently (a debug log); a client then waits forever for the answer to a request it
    mistyped. Here an unparsable line gets -32700 (Parse error) and valid JSON that is no JSON-RPC message gets
    -32600 (Invalid Request), with the request's id when one can be read, and the session goes on. A line longer
    than max_line_bytes is read past without being held in memory and answered with -32600 naming the limit, with
    the request's id read from the line's first and last bytes (so the client's call fails at once, not at its
    timeout).
    """
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server
    raw, restore = _claim_stdin()
    try:
        async with stdio_server(stdin=_BoundedLines(raw, max_line_bytes)) as (read_stream, write_stream):
            guarded = _AnswerMalformed(read_stream, write_stream, max_line_bytes)
            await lowlevel.run(guarded, write_stream, lowlevel.create_initialization_options())
    finally:
        restore()


def _claim_stdin():
    """(binary reader of the protocol's stdin, restore()): fd 0 itself then reads /dev/null, as the SDK arranges it."""
    try:
        private = os.dup(0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    except OSError:  # no real fd 0: read it in place
        return sys.stdin.buffer, lambda: None

    def restore() -> None:
        try:
            os.dup2(private, 0)
        except OSError:
            pass

    return os.fdopen(private, "rb", closefd=False), restore


class _BoundedLines:
    """stdin as text lines for the SDK's reader, each at most `limit` bytes; a longer line is read past, not kept.

    In place of a longer line the SDK gets TOO_LONG, the line's size and the request id read from its ends (JSON).
    """

    def __init__(self, raw, limit: int) -> None:
        self.raw = raw
        self.limit = limit

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        import anyio

        line = await anyio.to_thread.run_sync(self._readline, abandon_on_cancel=True)
        if line is None:
            raise StopAsyncIteration
        return line

    def _readline(self) -> str | None:
        line = self.raw.readline(self.limit + 1)
        if not line:
            return None
        if len(line) > self.limit and not line.endswith(b"\n"):
            size, prefix, tail = len(line), line[:ID_PREFIX_BYTES], line[-ID_TAIL_BYTES:]
            while line and not line.endswith(b"\n"):
                line = self.raw.readline(1 << 20)
                size += len(line)
                tail = (tail + line)[-ID_TAIL_BYTES:]
            request_id = request_id_from_prefix(prefix)
            if request_id is None:
                request_id = request_id_from_tail(tail.rstrip())
            return f"{TOO_LONG}{size} {json.dumps(request_id)}\n"
        return line.decode("utf-8", errors="replace")


class _AnswerMalformed:
    """A read stream that replies to decoding errors on the write stream and yields only real messages."""

    def __init__(self, inner, write_stream, max_line_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self._inner = inner
        self._write = write_stream
        self._max_line_bytes = max_line_bytes

    @property
    def last_context(self):
        return getattr(self._inner, "last_context", None)

    async def receive(self):
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            await self._write.send(_error_reply(item, self._max_line_bytes))

    def __aiter__(self):
        return self

    async def __anext__(self):
        import anyio

        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def _error_reply(exc: Exception, max_line_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
    """The JSON-RPC error answering an undecodable line: Parse error, or Invalid Request with the id if readable."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    errors = exc.errors(include_url=False) if hasattr(exc, "errors") else []
    raw = errors[0].get("input") if errors else None
    if isinstance(raw, str) and raw.startswith(TOO_LONG):
        size, _, read_id = raw[len(TOO_LONG) :].strip().partition(" ")
        code, request_id = types.INVALID_REQUEST, json.loads(read_id or "null")
        message = "Invalid Request: " + too_large_message(
            f"a line of {int(size):,} bytes (read past, not parsed)", max_line_bytes
        )
    elif not errors or errors[0].get("type") == "json_invalid":
        code, message, request_id = types.PARSE_ERROR, "Parse error: the line is not valid JSON", None
    else:
        code, message = types.INVALID_REQUEST, "Invalid Request: the line is JSON but not a JSON-RPC 2.0 message"
        request_id = next(
            (
                e["input"]["id"]
                for e in errors
                if isinstance(e.get("input"), dict) and type(e["input"].get("id")) in (int, str)
            ),
            None,
        )
    error = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))
    return SessionMessage(error)


def serve_http(args: argparse.Namespace, limit_env: dict[str, str]) -> None:
    """Serve Streamable HTTP under uvicorn; refuses (exit 2, message on stderr) a configuration it cannot make safe."""
    import uvicorn

    from .http import HTTPConfigError, HTTPOptions, build_http_app, check_bind, security_settings

    options = HTTPOptions(
        host=args.host,
        stateless=args.stateless,
        json_response=args.json_response,
        token=args.token,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
        max_request_bytes=args.max_request_bytes,
    )
    try:
        check_bind(args.host, args.token)
        security_settings(args.host, options.allowed_hosts, options.allowed_origins)
        if args.workers > 1:
            # uvicorn starts workers from an import string; they rebuild the app from the environment
            public = {k: v for k, v in vars(options).items() if k != "token"}
            public["allowed_hosts"], public["allowed_origins"] = (
                list(options.allowed_hosts),
                list(options.allowed_origins),
            )
            os.environ["CONV_MCP_HTTP_OPTIONS"] = json.dumps(public)
            os.environ.update(limit_env)
            if args.token:
                os.environ[TOKEN_ENV] = args.token
            uvicorn.run(
                "server.http:app_from_env",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                log_level=args.log_level.lower(),
            )
            return
        from .app import build_server

        server = build_server()
        logging.getLogger().setLevel(args.log_level)
        app = build_http_app(server, **vars(options))
    except HTTPConfigError as exc:
        print(f"python -m server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())


if __name__ == "__main__":
    main()
