"""The MCP adapter over `skills`: registration, transports, limits."""
