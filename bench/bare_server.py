"""The reference for start-up and latency: a bare MCPServer with one constant tool, over stdio."""

from mcp.server import MCPServer

server = MCPServer(name="bare")


@server.tool()
def constant() -> int:
    """Return 1."""
    return 1


if __name__ == "__main__":
    server.run("stdio")
