"""python -m server: serve the conv-arithmetic MCP server over stdio (default) or Streamable HTTP."""

import argparse
import logging
import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description=(
            "Convolution arithmetic and CNN planning over the Model Context Protocol. "
            "stdio (the default) is what MCP clients launch; --transport http serves Streamable HTTP "
            "at http://HOST:PORT/mcp under uvicorn, loopback only by default, with DNS-rebinding protection on."
        ),
    )
    parser.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="stdio (default) or http (Streamable HTTP)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP only: address to bind (default 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP only: port (default 8000)")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="log level; logs always go to stderr (default WARNING)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m server` and the `conv-mcp` console script."""
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    from .app import build_server

    server = build_server()
    logging.getLogger().setLevel(args.log_level)  # the SDK configures logging on construction; ours wins
    if args.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app(host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())


if __name__ == "__main__":
    main()
